// One checkpoint writer for every family: a checkpoint is a folder of files (configs, safetensors of any set
// of components, optimizer states, EMA, RNG/step state), written atomically. Every file is written and
// fsynced in a temporary folder, which is fsynced and renamed to checkpoint-<step>; the `checkpoint`
// symlink is then switched with one rename and the parent folder fsynced. A kill at any moment leaves the
// previous checkpoint (or the new one) complete.
import Foundation

/// One file of a checkpoint.
public enum CheckpointFile {
  /// Bytes written as they are (JSON configs, state).
  case data(Data)
  /// Tensors fetched one at a time as they are written (device weights, optimizer moments).
  case tensors([(name: String, tensor: LazyTensor)], metadata: [String: String])
}

/// Writes and finds checkpoints in a run's output folder.
public enum CheckpointWriter {
  /// The name of the symlink to the latest checkpoint inside the output folder.
  public static let latestLink = "checkpoint"
  /// The file every complete checkpoint holds (written last, so its presence marks completeness).
  public static let stateFile = "training_state/state.json"

  /// Writes `files` (relative paths) as checkpoint-<step> in `outDir`, points `checkpoint` at it and drops
  /// older checkpoints. Returns the new folder.
  @discardableResult
  public static func write(_ files: [(path: String, file: CheckpointFile)], step: Int, to outDir: URL) throws
    -> URL
  {
    let fm = FileManager.default
    try fm.createDirectory(at: outDir, withIntermediateDirectories: true)
    let name = String(format: "checkpoint-%08d", step)
    let tmp = outDir.appendingPathComponent(".\(name).tmp-\(getpid())")
    try? fm.removeItem(at: tmp)
    // A failed write (a full disk, a read-only folder) leaves no temporary folder behind.
    do { return try write(files, name: name, tmp: tmp, to: outDir) } catch {
      try? fm.removeItem(at: tmp)
      try? fm.removeItem(at: outDir.appendingPathComponent(".\(latestLink).tmp-\(getpid())"))
      throw error
    }
  }

  /// Whether `name` is a temporary entry a write makes in the output folder: a checkpoint's folder or link,
  /// or a file `StagedOutputs` writes before renaming it (`.loss.png.tmp-PID-N`, …).
  static func isTemporary(_ name: String) -> Bool {
    name.hasPrefix(".") && name.contains(".tmp-")
  }

  /// Removes the temporary folders, links and files that killed or failed writes (checkpoints, the loss and
  /// collapse plots, sample grids) left in `outDir` and its samples/ folder (call it holding the folder's
  /// `OutputFolderLock`, so no other writer's are removed). Returns their paths relative to `outDir`.
  @discardableResult
  public static func removeStaleTemporaries(in outDir: URL) -> [String] {
    let fm = FileManager.default
    var stale: [String] = []
    for sub in ["", "samples/"] {
      let dir = outDir.appendingPathComponent(sub)
      for name in ((try? fm.contentsOfDirectory(atPath: dir.path)) ?? []).filter(isTemporary).sorted() {
        try? fm.removeItem(at: dir.appendingPathComponent(name))
        stale.append(sub + name)
      }
    }
    return stale
  }

  private static func write(
    _ files: [(path: String, file: CheckpointFile)], name: String, tmp: URL, to outDir: URL
  ) throws -> URL {
    let fm = FileManager.default
    var folders: Set<String> = [""]
    for (path, _) in files {
      let dir = (path as NSString).deletingLastPathComponent
      if !dir.isEmpty { folders.insert(dir) }
    }
    for sub in folders where !sub.isEmpty {
      try fm.createDirectory(at: tmp.appendingPathComponent(sub), withIntermediateDirectories: true)
    }
    try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
    // The state file goes last: a folder without it is never taken for a checkpoint.
    let ordered = files.filter { $0.path != stateFile } + files.filter { $0.path == stateFile }
    for (path, file) in ordered {
      let url = tmp.appendingPathComponent(path)
      switch file {
      case .data(let d): try writeSynced(d, to: url)
      case .tensors(let t, let metadata): try SafeTensors.write(lazy: t, metadata: metadata, to: url)
      }
    }
    for sub in folders.sorted(by: { $0.count > $1.count }) { try fsyncPath(tmp.appendingPathComponent(sub)) }

    let final = outDir.appendingPathComponent(name)
    if fm.fileExists(atPath: final.path) { try fm.removeItem(at: final) }
    try rename(tmp, final)
    try fsyncPath(outDir)
    let link = outDir.appendingPathComponent(latestLink)
    let linkTmp = outDir.appendingPathComponent(".\(latestLink).tmp-\(getpid())")
    try? fm.removeItem(at: linkTmp)
    try fm.createSymbolicLink(atPath: linkTmp.path, withDestinationPath: name)
    // A run resumed from a copied `checkpoint` folder (cp -L, an archive): move that folder aside under a
    // checkpoint- name that sorts below every step, so the rename below can replace it with the link and the
    // loop after it removes it; a kill in between leaves the new checkpoint-<step> as the newest.
    if (try? fm.destinationOfSymbolicLink(atPath: link.path)) == nil, fm.fileExists(atPath: link.path) {
      let aside = outDir.appendingPathComponent("\(latestLink)-0-copied")
      try? fm.removeItem(at: aside)
      try rename(link, aside)
    }
    try rename(linkTmp, link)
    try fsyncPath(outDir)
    for old in try fm.contentsOfDirectory(atPath: outDir.path)
    where old.hasPrefix("checkpoint-") && old != name {
      try? fm.removeItem(at: outDir.appendingPathComponent(old))
    }
    return final
  }

  /// The folder the `checkpoint` link points at (or, if a kill came between the two renames, the newest
  /// complete checkpoint-<step> folder; or `checkpoint` itself where a copy made it a plain folder).
  public static func latest(in outDir: URL) throws -> URL {
    let fm = FileManager.default
    let link = outDir.appendingPathComponent(latestLink)
    if let target = try? fm.destinationOfSymbolicLink(atPath: link.path) {
      let dir = outDir.appendingPathComponent(target)
      if fm.fileExists(atPath: dir.appendingPathComponent(stateFile).path) { return dir }
    }
    let candidates = ((try? fm.contentsOfDirectory(atPath: outDir.path)) ?? [])
      .filter { $0.hasPrefix("checkpoint-") }.sorted().reversed()
    for c in candidates where fm.fileExists(atPath: outDir.appendingPathComponent("\(c)/\(stateFile)").path) {
      return outDir.appendingPathComponent(c)
    }
    // `checkpoint` as a plain folder, as a copy that followed the link leaves it.
    if fm.fileExists(atPath: link.appendingPathComponent(stateFile).path) { return link }
    throw TrainingError.checkpoint("no checkpoint in \(outDir.path) to resume from")
  }

  /// Named tensors as lazily fetched checkpoint tensors.
  public static func lazy(_ named: [(name: String, tensor: Tensor)]) -> [(name: String, tensor: LazyTensor)] {
    named.map { name, t in (name, LazyTensor(shape: t.shape) { try t.toArray() }) }
  }

  /// An optimizer's state under PyTorch's names (`exp_avg.<name>`, …), as `Optimizer.importState` reads it.
  public static func optimizerState(_ optimizer: Optimizer, names: [String]) throws -> CheckpointFile {
    var moments: [(name: String, tensor: LazyTensor)] = []
    for (key, states) in [("exp_avg", optimizer.state1), ("exp_avg_sq", optimizer.state2)] {
      for (name, t) in zip(names, states) {
        guard let t else { throw TrainingError.checkpoint("optimizer state \(key).\(name) is missing") }
        moments.append(("\(key).\(name)", LazyTensor(shape: t.shape) { try t.toArray() }))
      }
    }
    return .tensors(moments, metadata: ["step": "\(optimizer.stepCount)"])
  }

  /// Reads a safetensors file of a checkpoint folder, naming it in errors.
  public static func read(_ path: String, in dir: URL) throws -> SafeTensorsFile {
    do { return try SafeTensors.read(contentsOf: dir.appendingPathComponent(path)) } catch {
      throw TrainingError.checkpoint("\(dir.appendingPathComponent(path).path): \(error)")
    }
  }

  /// Reads a safetensors file of a checkpoint folder (optimizer moments, EMA weights) and refuses a NaN or
  /// ±Inf in any of its tensors as a model's weights are refused on load, naming the file and the tensor.
  public static func readFinite(_ path: String, in dir: URL) throws -> SafeTensorsFile {
    let file = try read(path, in: dir)
    for name in file.order {
      do { try ModuleError.checkFinite(name, file.tensors[name]?.values ?? []) } catch let e as ModuleError {
        throw TrainingError.checkpoint("\(path): \(e)")
      }
    }
    return file
  }
}
