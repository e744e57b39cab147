// Checkpoints of a diffusion training run: a diffusers pipeline folder (EMA weights in unet/) plus the raw
// weights, optimizer state and step in training_state/, written atomically by `CheckpointWriter`.
import Foundation

extension DiffusionTrainer {
  /// The name of the symlink to the latest checkpoint inside the output folder.
  public static let latestLink = CheckpointWriter.latestLink

  /// Writes the checkpoint of the current step into `outDir` and returns its folder.
  @discardableResult
  public func writeCheckpoint(to outDir: URL) throws -> URL {
    let pipeline: [String: Any] = [
      "_class_name": "DDPMPipeline", "_diffusers_version": "0.42.1",
      "scheduler": ["diffusers", "DDPMScheduler"],
      "unet": ["diffusers", "UNet2DModel"],
    ]
    let state = CheckpointState(
      step: step, optimizerStep: optimizer.stepCount, emaStep: ema.optimizationStep, options: options,
      device: device.spec, dataCount: data.count)
    // Tensors are streamed to disk one at a time, each fetched to the host only when it is written.
    return try CheckpointWriter.write(
      [
        (
          "model_index.json",
          .data(try JSONSerialization.data(withJSONObject: pipeline, options: [.prettyPrinted, .sortedKeys]))
        ),
        (
          "scheduler/scheduler_config.json",
          .data(
            try JSONSerialization.data(withJSONObject: schedulerJSON, options: [.prettyPrinted, .sortedKeys]))
        ),
        ("unet/config.json", .data(try config.diffusersJSONData())),
        ("unet/diffusion_pytorch_model.safetensors", .tensors(named(ema.shadow), metadata: ["format": "pt"])),
        ("training_state/model.safetensors", .tensors(named(parameters), metadata: ["format": "pt"])),
        (
          "training_state/optimizer.safetensors", try CheckpointWriter.optimizerState(optimizer, names: names)
        ),
        (CheckpointWriter.stateFile, .data(try JSONEncoder.sorted.encode(state))),
      ], step: step, to: outDir)
  }

  private func named(_ tensors: [Tensor]) -> [(name: String, tensor: LazyTensor)] {
    CheckpointWriter.lazy(Array(zip(names, tensors)).map { (name: $0.0, tensor: $0.1) })
  }

  /// Resumes the run whose latest checkpoint is in `outDir`: model, optimizer, EMA and step, bit for bit.
  /// `changes` are what --resume changed (ResumeChanges).
  public static func resume(
    from outDir: URL, data: TrainingImages, device: Device, changes: ResumeChanges = ResumeChanges()
  ) throws
    -> DiffusionTrainer
  {
    let dir = try latestCheckpoint(in: outDir)
    func read(_ path: String) throws -> SafeTensorsFile { try CheckpointWriter.read(path, in: dir) }
    let stateURL = dir.appendingPathComponent("training_state/state.json")
    guard let stateData = try? Data(contentsOf: stateURL),
      let state = try? JSONDecoder().decode(CheckpointState.self, from: stateData)
    else { throw TrainingError.checkpoint("\(stateURL.path) is missing or malformed") }
    var options = state.options
    try options.apply(changes)
    let config = try UNet2DConfig(
      json: try Data(contentsOf: dir.appendingPathComponent("unet/config.json")), source: "unet/config.json")
    let schedURL = dir.appendingPathComponent("scheduler/scheduler_config.json")
    guard let schedData = try? Data(contentsOf: schedURL),
      let sched = try? JSONSerialization.jsonObject(with: schedData) as? [String: Any]
    else { throw TrainingError.checkpoint("\(schedURL.path) is missing or malformed") }
    let raw = try read("training_state/model.safetensors")
    let trainer = try DiffusionTrainer(
      config: config, schedulerJSON: sched, weights: raw.tensors, data: data, options: options, device: device
    )
    let emaFile = try CheckpointWriter.readFinite("unet/diffusion_pytorch_model.safetensors", in: dir)
    let shadow = try trainer.names.map { name -> Tensor in
      guard let t = emaFile.tensors[name] else {
        throw TrainingError.checkpoint("EMA weight \(name) is missing")
      }
      return try Tensor(t, on: device)
    }
    try trainer.ema.importState(shadow: shadow, optimizationStep: state.emaStep)
    let opt = try CheckpointWriter.readFinite("training_state/optimizer.safetensors", in: dir)
    try trainer.optimizer.importState(
      try opt.tensors.mapValues { try Tensor($0, on: device) }, step: state.optimizerStep,
      names: trainer.names)
    trainer.step = state.step
    return trainer
  }

  /// The folder the `checkpoint` link points at (see `CheckpointWriter.latest(in:)`).
  public static func latestCheckpoint(in outDir: URL) throws -> URL {
    try CheckpointWriter.latest(in: outDir)
  }
}

/// training_state/state.json.
struct CheckpointState: Codable {
  var step: Int
  var optimizerStep: Int
  var emaStep: Int
  var options: DiffusionTrainingOptions
  var device: String
  var dataCount: Int
}

extension JSONEncoder {
  static var sorted: JSONEncoder {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    return e
  }
}

/// Writes `data` to `url` and fsyncs it.
func writeSynced(_ data: Data, to url: URL) throws {
  let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
  guard fd >= 0 else {
    throw TrainingError.checkpoint("cannot create \(url.path): \(String(cString: strerror(errno)))")
  }
  defer { close(fd) }
  try data.withUnsafeBytes { raw in
    var off = 0
    while off < raw.count {
      let n = write(fd, raw.baseAddress! + off, raw.count - off)
      if n < 0 {
        if errno == EINTR { continue }
        throw TrainingError.checkpoint("cannot write \(url.path): \(String(cString: strerror(errno)))")
      }
      off += n
    }
  }
  guard fsync(fd) == 0 else { throw TrainingError.checkpoint("fsync \(url.path) failed") }
}

/// fsync of a file or folder.
func fsyncPath(_ url: URL) throws {
  let fd = open(url.path, O_RDONLY | O_CLOEXEC)
  guard fd >= 0 else { throw TrainingError.checkpoint("cannot open \(url.path) to fsync") }
  defer { close(fd) }
  guard fsync(fd) == 0 else { throw TrainingError.checkpoint("fsync \(url.path) failed") }
}

func rename(_ from: URL, _ to: URL) throws {
  guard Foundation.rename(from.path, to.path) == 0 else {
    throw TrainingError.checkpoint(
      "cannot rename \(from.path) to \(to.path): \(String(cString: strerror(errno)))")
  }
}

extension DiffusionTrainer {
  /// The options saved with the latest checkpoint in `outDir`.
  public static func savedOptions(in outDir: URL) throws -> DiffusionTrainingOptions {
    let url = try latestCheckpoint(in: outDir).appendingPathComponent("training_state/state.json")
    guard let d = try? Data(contentsOf: url), let s = try? JSONDecoder().decode(CheckpointState.self, from: d)
    else { throw TrainingError.checkpoint("\(url.path) is missing or malformed") }
    return s.options
  }

  /// The UNet config of the latest checkpoint in `outDir`.
  public static func savedConfig(in outDir: URL) throws -> UNet2DConfig {
    let url = try latestCheckpoint(in: outDir).appendingPathComponent("unet/config.json")
    return try UNet2DConfig(json: try Data(contentsOf: url), source: url.path)
  }
}
