// Output folders and files, for every command and family: one writer per folder (an advisory flock), outputs
// written next to their destination and renamed into place only once all of them exist, and file-system
// failures as one line naming the path and the reason.
import Foundation

/// A file-system operation that failed: the path and the reason (strerror of the errno).
public struct FileSystemError: Error, CustomStringConvertible, Equatable {
  /// The file or folder.
  public var path: String
  /// What was being done ("write", "create folder", "rename to …").
  public var operation: String
  /// The errno.
  public var code: Int32

  /// A failure of `operation` on `path` with errno `code`.
  public init(path: String, operation: String, code: Int32) {
    (self.path, self.operation, self.code) = (path, operation, code)
  }

  /// The reason in words ("read-only file system", "no space left on device", "is a directory", …).
  public var reason: String { String(cString: strerror(code)).lowercased() }

  /// "cannot OPERATION PATH: REASON".
  public var description: String { "cannot \(operation) \(path): \(reason)" }

  /// The path and errno of a Foundation file error (nil when it carries neither).
  public static func from(_ error: Error, path fallback: String? = nil) -> FileSystemError? {
    if let e = error as? FileSystemError { return e }
    let ns = error as NSError
    let path =
      (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
      ?? fallback
    var code: Int32?
    if ns.domain == NSPOSIXErrorDomain { code = Int32(ns.code) }
    if let u = ns.userInfo[NSUnderlyingErrorKey] as? NSError, u.domain == NSPOSIXErrorDomain {
      code = Int32(u.code)
    }
    if code == nil, ns.domain == NSCocoaErrorDomain {
      switch CocoaError.Code(rawValue: ns.code) {
      case .fileWriteNoPermission, .fileReadNoPermission: code = EACCES
      case .fileWriteVolumeReadOnly: code = EROFS
      case .fileWriteOutOfSpace: code = ENOSPC
      case .fileNoSuchFile, .fileReadNoSuchFile: code = ENOENT
      case .fileWriteFileExists: code = EEXIST
      default: break
      }
    }
    guard let path, let code else { return nil }
    return FileSystemError(path: path, operation: "write", code: code)
  }
}

/// An advisory lock (flock) on an output folder, held until this object is released or the process ends
/// (also when it is killed): a second writer fails at once with an error naming the holder's PID.
public final class OutputFolderLock {
  /// The lock file inside the folder; it holds the holder's PID.
  public static let fileName = ".gpugen.lock"
  /// The locked folder.
  public let folder: URL
  /// Whether taking the lock created the folder (so a run that fails before its first output removes it).
  public let createdFolder: Bool
  /// The topmost folder taking the lock created (the folder itself, or a parent that was missing too).
  private let createdRoot: URL?
  private var fd: Int32

  /// Creates `folder` if needed and locks it, or throws naming the process that holds it.
  public init(_ folder: URL) throws {
    self.folder = folder
    var isDir: ObjCBool = false
    let existed = FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir)
    if existed && !isDir.boolValue {
      throw FileSystemError(path: folder.path, operation: "use", code: ENOTDIR)
    }
    // The folder and any missing parents (as `mkdir -p`); the topmost one made is what a failed run removes.
    var topmostCreated: URL?
    if !existed {
      var missing: [URL] = []
      var u = folder.standardizedFileURL
      while u.path != "/" && !FileManager.default.fileExists(atPath: u.path) {
        missing.append(u)
        u = u.deletingLastPathComponent()
      }
      for dir in missing.reversed() {
        guard mkdir(dir.path, 0o755) == 0 || errno == EEXIST else {
          let code = errno
          if let made = topmostCreated { try? FileManager.default.removeItem(at: made) }
          throw FileSystemError(path: dir.path, operation: "create folder", code: code)
        }
        if topmostCreated == nil { topmostCreated = dir }
      }
    }
    createdFolder = !existed
    createdRoot = topmostCreated
    let path = folder.appendingPathComponent(Self.fileName).path
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
      let code = errno
      if let createdRoot = topmostCreated { try? FileManager.default.removeItem(at: createdRoot) }
      throw FileSystemError(path: path, operation: "create", code: code)
    }
    guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
      let code = errno
      var buf = [UInt8](repeating: 0, count: 32)
      let n = pread(fd, &buf, buf.count, 0)
      close(fd)
      fd = -1
      guard code == EWOULDBLOCK else { throw FileSystemError(path: path, operation: "lock", code: code) }
      let holder = Int(
        String(decoding: buf.prefix(Swift.max(n, 0)), as: UTF8.self).trimmingCharacters(
          in: .whitespacesAndNewlines))
      throw OutputFolderLocked(folder: folder.path, pid: holder)
    }
    let pid = Array("\(getpid())\n".utf8)
    _ = ftruncate(fd, 0)
    _ = pwrite(fd, pid, pid.count, 0)
  }

  /// Releases the lock; with `removingFolder`, also removes the folders it created (a run that wrote nothing).
  public func release(removingFolder: Bool = false) {
    if removingFolder, let createdRoot { try? FileManager.default.removeItem(at: createdRoot) }
    if fd >= 0 { close(fd) }
    fd = -1
  }

  deinit { if fd >= 0 { close(fd) } }
}

/// Another process holds an output folder's lock.
public struct OutputFolderLocked: Error, CustomStringConvertible, Equatable {
  /// The folder.
  public var folder: String
  /// The holder's PID, as it wrote it into the lock file (nil if unreadable).
  public var pid: Int?

  /// The one-line message.
  public var description: String {
    "\(folder) is in use by another gpugen run (\(pid.map { "process \($0)" } ?? "unknown process")); "
      + "wait for it to finish or choose another output"
  }
}

/// Output files and folders written all or nothing: each is written to a temporary file or hidden folder
/// beside its destination, and `commit` renames them all into place; anything not committed is removed.
public final class StagedOutputs {
  private var staged: [(temp: URL, final: URL, folder: Bool)] = []

  /// An empty set.
  public init() {}

  /// Throws unless `path` can become an output file: not a folder, in a folder that exists.
  public static func checkDestination(_ path: String) throws {
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
      throw FileSystemError(path: path, operation: "write", code: EISDIR)
    }
    try checkParent(of: URL(fileURLWithPath: path))
  }

  /// Throws unless the folder that is to hold `url` exists.
  static func checkParent(of url: URL) throws {
    var isDir: ObjCBool = false
    let parent = url.deletingLastPathComponent().path
    if !FileManager.default.fileExists(atPath: parent, isDirectory: &isDir) {
      throw FileSystemError(path: parent, operation: "write into", code: ENOENT)
    }
    if !isDir.boolValue { throw FileSystemError(path: parent, operation: "write into", code: ENOTDIR) }
  }

  /// The temporary beside `url` for this process's `index`-th staged output: `.NAME.tmp-PID-INDEX`.
  static func temporary(for url: URL, index: Int) -> URL {
    url.deletingLastPathComponent().appendingPathComponent(
      ".\(url.lastPathComponent).tmp-\(getpid())-\(index)")
  }

  /// Removes the temporaries of `url` that processes no longer running left beside it (a killed or crashed
  /// writer's half-written file or folder). Returns their names.
  @discardableResult
  public static func removeStaleTemporaries(of url: URL) -> [String] {
    let dir = url.deletingLastPathComponent()
    let prefix = ".\(url.lastPathComponent).tmp-"
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
    var removed: [String] = []
    for name in names.sorted() where name.hasPrefix(prefix) {
      guard let pid = Int32(name.dropFirst(prefix.count).prefix { $0 != "-" }), pid > 0,
        pid != getpid(), kill(pid, 0) != 0, errno == ESRCH
      else { continue }
      try? FileManager.default.removeItem(at: dir.appendingPathComponent(name))
      removed.append(name)
    }
    return removed
  }

  /// Writes one output through `write`, which is handed the temporary path beside `url`.
  public func stage(_ url: URL, _ write: (URL) throws -> Void) throws {
    try Self.checkDestination(url.path)
    let temp = Self.temporary(for: url, index: staged.count)
    // Create the file first, so that a folder that cannot take it fails with its errno, whatever `write` says.
    let fd = open(temp.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw FileSystemError(path: url.path, operation: "write", code: errno) }
    close(fd)
    try Self.fill(temp, for: url, write)
    staged.append((temp, url, false))
  }

  /// Runs `write` on the temporary `temp` of `url`; on failure removes it and names `url` in a file-system error.
  private static func fill(_ temp: URL, for url: URL, _ write: (URL) throws -> Void) throws {
    do { try write(temp) } catch {
      try? FileManager.default.removeItem(at: temp)
      if let fs = FileSystemError.from(error, path: url.path) {
        throw FileSystemError(path: url.path, operation: "write", code: fs.code)
      }
      throw error
    }
  }

  /// Writes one output folder through `write`, which is handed an empty hidden folder beside `url` to fill.
  /// On `commit` the folder replaces `url` (a folder `url` already held is removed only then: the caller
  /// decides beforehand whether it may be replaced).
  public func stageFolder(_ folder: URL, _ write: (URL) throws -> Void) throws {
    let url = folder.standardizedFileURL
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue {
      throw FileSystemError(path: url.path, operation: "write folder", code: ENOTDIR)
    }
    try Self.checkParent(of: url)
    Self.removeStaleTemporaries(of: url)
    let temp = Self.temporary(for: url, index: staged.count)
    try? FileManager.default.removeItem(at: temp)
    guard mkdir(temp.path, 0o755) == 0 else {
      throw FileSystemError(path: url.path, operation: "write folder", code: errno)
    }
    try Self.fill(temp, for: url, write)
    staged.append((temp, url, true))
  }

  /// Writes one file through `write` (handed a temporary path beside `url`) and renames it over `url` at
  /// once: a kill or a failure part way leaves the previous file whole (or none), never a truncated one.
  public static func replace(_ url: URL, _ write: (URL) throws -> Void) throws {
    removeStaleTemporaries(of: url)
    let outputs = StagedOutputs()
    try outputs.stage(url, write)
    try outputs.commit()
  }

  /// Renames every staged file and folder into place (a folder that held the destination is removed).
  public func commit() throws {
    while let (temp, final, folder) = staged.first {
      var isDir: ObjCBool = false
      if folder, FileManager.default.fileExists(atPath: final.path, isDirectory: &isDir), isDir.boolValue {
        // A folder cannot be renamed over a non-empty one: move the old aside, put the new in place, then
        // remove the old (restored if the new cannot take its place).
        let old = final.deletingLastPathComponent().appendingPathComponent(
          ".\(final.lastPathComponent).tmp-\(getpid())-old")
        try? FileManager.default.removeItem(at: old)
        guard rename(final.path, old.path) == 0 else {
          throw FileSystemError(path: final.path, operation: "replace", code: errno)
        }
        guard rename(temp.path, final.path) == 0 else {
          let code = errno
          _ = rename(old.path, final.path)
          throw FileSystemError(path: final.path, operation: "write", code: code)
        }
        try? FileManager.default.removeItem(at: old)
      } else {
        guard rename(temp.path, final.path) == 0 else {
          throw FileSystemError(path: final.path, operation: "write", code: errno)
        }
      }
      staged.removeFirst()
    }
  }

  /// Removes what was staged and not committed.
  public func discard() {
    for (temp, _, _) in staged { try? FileManager.default.removeItem(at: temp) }
    staged = []
  }

  deinit { discard() }
}
