// On-disk cache of compiled OpenCL program binaries, keyed by platform, device, driver version,
// build options and source hash. A corrupt or truncated entry is a miss (with a warning), never a crash.
import Foundation

/// The on-disk cache folder and its entries.
public struct BinaryCache: Sendable {
  /// Folder holding the entries.
  public let directory: URL

  /// The default folder: $GPUGEN_CACHE_DIR, else $XDG_CACHE_HOME/gpugen, else ~/.cache/gpugen.
  public static var defaultDirectory: URL {
    if let d = Environment.get("GPUGEN_CACHE_DIR") { return URL(fileURLWithPath: d) }
    if let x = Environment.get("XDG_CACHE_HOME") {
      return URL(fileURLWithPath: x).appendingPathComponent("gpugen")
    }
    return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/gpugen")
  }

  public init(directory: URL = BinaryCache.defaultDirectory) { self.directory = directory }

  private static let magic = Array("GPUGENB1".utf8)

  /// The entry file for a key.
  public func url(forKey key: String) -> URL {
    directory.appendingPathComponent("\(key).bin")
  }

  /// Reads an entry. Returns nil on a miss; on a corrupt entry, warns and returns nil.
  func load(key: String) -> [UInt8]? {
    let url = url(forKey: key)
    guard let data = try? Data(contentsOf: url) else { return nil }
    let bytes = [UInt8](data)
    func corrupt(_ why: String) -> [UInt8]? {
      Diagnostics.warn("kernel cache entry \(url.path) is corrupt (\(why)); rebuilding it")
      return nil
    }
    guard bytes.count >= 24, Array(bytes[0..<8]) == Self.magic else { return corrupt("bad header") }
    let length = bytes[8..<16].enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
    let sum = bytes[16..<24].enumerated().reduce(UInt64(0)) {
      $0 | (UInt64($1.element) << (8 * UInt64($1.offset)))
    }
    guard bytes.count - 24 == length else {
      return corrupt("truncated: \(bytes.count - 24) of \(length) bytes")
    }
    let payload = Array(bytes[24...])
    guard fnv1a64(payload) == sum else { return corrupt("checksum mismatch") }
    return payload
  }

  /// Writes an entry atomically (temporary file, then rename). Failures only warn.
  func store(key: String, binary: [UInt8]) {
    var out = Self.magic
    out += withUnsafeBytes(of: UInt64(binary.count).littleEndian, Array.init)
    out += withUnsafeBytes(of: fnv1a64(binary).littleEndian, Array.init)
    out += binary
    do {
      try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
      let tmp = directory.appendingPathComponent(".\(key).\(getpid()).tmp")
      try Data(out).write(to: tmp)
      if rename(tmp.path, url(forKey: key).path) != 0 {
        try? FileManager.default.removeItem(at: tmp)
      }
    } catch {
      Diagnostics.warn("could not write kernel cache entry in \(directory.path): \(error)")
    }
  }

  /// The cache key of a program: a 128-bit hash of everything that determines its binary.
  static func key(platform: String, device: String, driver: String, options: String, source: String)
    -> String
  {
    let text = [platform, device, driver, options, source].joined(separator: "\u{1}")
    let bytes = Array(text.utf8)
    let a = fnv1a64(bytes), b = fnv1a64(bytes, basis: 0x84222325_cbf29ce4)
    return String(format: "%016llx%016llx", a, b)
  }
}

/// 64-bit FNV-1a.
func fnv1a64(_ bytes: [UInt8], basis: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 {
  var h = basis
  for b in bytes {
    h ^= UInt64(b)
    h = h &* 0x100_0000_01b3
  }
  return h
}
