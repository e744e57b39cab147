// Training a ConvVAE by maximising the ELBO (docs/TRAINING.md, "VAE"): Adam, optional KL warm-up and free
// bits, an EMA of the weights, Philox draws keyed by the seed (data order, ε, binarisation/dequantisation).
import Foundation

/// Everything that defines a VAE training run (saved in each checkpoint's state.json).
public struct VAETrainingOptions: Codable, Equatable, Sendable, CommonTrainingOptions {
  /// Training images: fashion-mnist, an IDX file or a PNG folder.
  public var data = "fashion-mnist"
  /// Optimizer steps in total.
  public var steps = 10_000
  /// Images per step.
  public var batchSize = 64
  /// Peak learning rate (Adam).
  public var lr = 1e-3
  /// Linear learning-rate warmup steps.
  public var warmup = 0
  /// "constant" or "cosine" (after the warmup).
  public var lrSchedule = "constant"
  /// KL weight after the warm-up.
  public var beta = 1.0
  /// Steps over which β rises linearly from 0.
  public var klWarmup = 0
  /// Free bits λ (nats per latent dimension; 0: off).
  public var freeBits = 0.0
  /// Resample binary pixels from the grey levels at every step (Bernoulli likelihood only).
  public var dynamicBinarization = false
  /// EMA decay cap.
  public var emaDecay = 0.999
  /// Global gradient-norm clip (0: off).
  public var clipGrad = 0.0
  /// Steps between checkpoints.
  public var checkpointEvery = 500
  /// Steps between sample and reconstruction grids (0: never).
  public var sampleEvery = 1_000
  /// Seed of every draw (weights, data order, ε, binarisation).
  public var seed: UInt64 = 0

  /// The reference defaults.
  public init() {}

  /// The ELBO knobs.
  public var elbo: ELBOOptions { ELBOOptions(beta: beta, klWarmup: klWarmup, freeBits: freeBits) }

  /// Errors for values no run can use.
  public func validate() throws {
    try validateCommon()
    func bad(_ s: String) -> TrainingError { .invalidOption(s) }
    if !(beta >= 0) || !beta.isFinite { throw bad("--beta must be ≥ 0") }
    if klWarmup < 0 { throw bad("--kl-warmup must be ≥ 0") }
    if !(freeBits >= 0) || !freeBits.isFinite { throw bad("--free-bits must be ≥ 0") }
  }
}

/// The architecture a VAE run trains.
public enum VAEArchitecture: Equatable, Sendable {
  case convVAE(ConvVAEConfig)
  case autoencoderKL(AutoencoderKLConfig)

  /// A freshly initialised model (PyTorch defaults from `seed`).
  public func make(seed: UInt64, on device: Device) throws -> any VariationalAutoencoder {
    switch self {
    case .convVAE(let c): return try ConvVAE(config: c, seed: seed, on: device)
    case .autoencoderKL(let c): return try AutoencoderKL(config: c, seed: seed, on: device)
    }
  }

  /// config.json of the model folder.
  public func jsonData() throws -> Data {
    switch self {
    case .convVAE(let c): return try c.jsonData()
    case .autoencoderKL(let c): return try c.jsonData()
    }
  }

  /// Image channels and side.
  public var imageChannels: Int {
    switch self {
    case .convVAE(let c): return c.inChannels
    case .autoencoderKL(let c): return c.inChannels
    }
  }
  /// Image side.
  public var sampleSize: Int {
    switch self {
    case .convVAE(let c): return c.sampleSize
    case .autoencoderKL(let c): return c.sampleSize
    }
  }

  /// The architecture of the model folder at `dir` (config.json's `_class_name`).
  public static func read(_ dir: URL) throws -> VAEArchitecture {
    let url = dir.appendingPathComponent("config.json")
    guard let d = FileManager.default.contents(atPath: url.path) else { throw ModelError.missing(url.path) }
    switch try ModelFolder.classify(dir) {
    case .convVAE: return .convVAE(try ConvVAEConfig(json: d, source: url.path))
    case .autoencoderKL: return .autoencoderKL(try AutoencoderKLConfig(json: d, source: url.path))
    case .diffusion: throw ModelError.input("\(dir.path) holds a diffusion model, not a VAE")
    case .gan: throw ModelError.input("\(dir.path) holds a GAN, not a VAE")
    case .toyDiffusion: throw ModelError.input("\(dir.path) holds a toy 2-D diffusion model, not a VAE")
    case .toyVAE: throw ModelError.input("\(dir.path) holds a toy 2-D VAE (ToyVAETrainer trains it)")
    }
  }
}

/// One VAE optimizer step's figures (per image, nats).
public struct VAEStepStats: Sendable {
  /// Steps done after this one.
  public var step: Int
  /// The objective (NLL + β·KL with free bits).
  public var loss: Float
  /// Reconstruction NLL, nats per image.
  public var reconstruction: Float
  /// KL to the prior, nats per image.
  public var kl: Float
  /// The KL weight of this step.
  public var beta: Double
  /// The learning rate of this step.
  public var lr: Float
  /// The global gradient norm before clipping.
  public var gradNorm: Float
}

/// A VAE training run: model, Adam, EMA, data and step counter.
public final class VAETrainer {
  /// The model architecture.
  public let architecture: VAEArchitecture
  /// The run's options.
  public let options: VAETrainingOptions
  /// The device it trains on.
  public let device: Device
  /// The model being trained (training mode).
  public let model: any VariationalAutoencoder
  /// Parameter names in optimizer order (sorted).
  public let names: [String]
  /// The trainable tensors, named by `names`.
  public let parameters: [Tensor]
  /// Adam over `parameters`.
  public let optimizer: Optimizer
  /// The EMA of `parameters` (what checkpoints export).
  public let ema: EMA
  let learningRate: LearningRate
  /// The training images.
  public let data: TrainingImages
  /// Optimizer steps done.
  public internal(set) var step = 0
  /// The processes that share each global batch (one by default). Free bits act on each rank's share, and
  /// so do BatchNorm statistics unless synchronised (`DataParallel.synchronizeBatchNorm`).
  public var parallel = DataParallel.single {
    didSet { parallel.configure([model]) }
  }
  private lazy var batches = EpochBatches(seed: options.seed, count: data.count, batchSize: options.batchSize)

  /// A new ConvVAE run (PyTorch's default initialisation from `options.seed`).
  public convenience init(
    config: ConvVAEConfig, data: TrainingImages, options: VAETrainingOptions, device: Device
  ) throws {
    try config.validate()
    try self.init(architecture: .convVAE(config), data: data, options: options, device: device)
  }

  /// A new run of any VAE architecture.
  public init(
    architecture: VAEArchitecture, data: TrainingImages, options: VAETrainingOptions, device: Device
  ) throws {
    try options.validate()
    let (ch, size) = (architecture.imageChannels, architecture.sampleSize)
    guard data.channels == ch, data.size == size else {
      throw TrainingError.invalidOption(
        "the data is \(data.channels)×\(data.size)×\(data.size) but the model expects \(ch)×\(size)×\(size)")
    }
    try options.checkBatchFits(valuesPerSample: ch * size * size, live: 64, on: device)
    guard data.count >= options.batchSize else {
      throw TrainingError.invalidOption(
        "--batch-size \(options.batchSize) is larger than the dataset (\(data.count) images)")
    }
    model = try architecture.make(seed: options.seed, on: device)
    if options.dynamicBinarization && model.likelihood != .bernoulli {
      throw TrainingError.invalidOption("--binarize needs the Bernoulli likelihood")
    }
    self.architecture = architecture
    self.options = options
    self.device = device
    self.data = data
    model.train()
    let sorted = model.sortedParameters
    names = sorted.map(\.name)
    parameters = sorted.map(\.tensor)
    optimizer = try Optimizer(parameters: parameters, config: .adam())
    ema = try EMA(parameters: parameters, maxDecay: options.emaDecay)
    learningRate = LearningRate(
      base: options.lr, warmupSteps: options.warmup,
      schedule: options.lrSchedule == "cosine" ? .cosine(totalSteps: options.steps) : .constant)
  }

  /// The dataset indices of global step `s`'s batch (the diffusion trainer's epoch order).
  public func batchIndices(step s: Int) -> [Int] {
    batches.indices(step: s)
  }

  /// Images `idx` of `data` as a (n, C, H, W) host array in [0, 1].
  public static func unitImages(_ data: TrainingImages, _ idx: [Int]) -> [Float] {
    let per = data.imageElements
    var v = [Float](repeating: 0, count: idx.count * per)
    for (row, i) in idx.enumerated() {
      for e in 0..<per { v[row * per + e] = (data.images[i * per + e] + 1) * 0.5 }
    }
    return v
  }

  /// The training input of step `s` in the model's data range: binarised (dynamic binarisation) or
  /// dequantised (Gaussian: (k + u)/256 for the 8-bit level k) with Philox uniforms u keyed by (seed, position
  /// in the global batch, step); row i is position `firstSample + i`.
  func trainingBatch(step s: Int, indices idx: [Int], firstSample: Int = 0) throws -> Tensor {
    let shape = [idx.count, data.channels, data.size, data.size]
    let unit = VAETrainer.unitImages(data, idx)
    var x: Tensor
    if options.dynamicBinarization || model.likelihood != .bernoulli {
      let u = try Tensor.randomUniform(
        shape: shape, seed: options.seed, step: s, stream: Streams.binarisation, firstSample: firstSample,
        on: device)
      x =
        options.dynamicBinarization
        ? try VAETrainer.binarise(try Tensor(unit, shape: shape, on: device), uniforms: u)
        : try VAETrainer.dequantise(unit, shape: shape, uniforms: u)
    } else {
      x = try Tensor(unit, shape: shape, on: device)
    }
    let r = model.dataRange
    if r != 0...1 { x = try x * (r.upperBound - r.lowerBound) + r.lowerBound }
    return x
  }

  /// 1 where u < x, else 0 (u in (0, 1]).
  public static func binarise(_ x: Tensor, uniforms u: Tensor) throws -> Tensor {
    try Tensor.where(
      (x - u).relu(), Tensor.full(1, shape: [1], on: x.device), Tensor.zeros([1], on: x.device))
  }

  /// Uniform dequantisation of images in [0, 1] holding 8-bit levels k = round(255·x): (k + u)/256 with u in
  /// (0, 1], so that a continuous density's bound converts to the discrete data's likelihood.
  public static func dequantise(_ unit: [Float], shape: [Int], uniforms u: Tensor) throws -> Tensor {
    let levels = unit.map { ($0 * 255).rounded() }
    return try (try Tensor(levels, shape: shape, on: u.device) + u) / 256
  }

  /// One optimizer step. Throws `TrainingError.diverged` (before touching the weights) on a NaN/Inf.
  public func trainStep() throws -> VAEStepStats {
    let s = step
    let share = try parallel.share(ofBatch: options.batchSize)
    let idx = Array(batchIndices(step: s)[share])
    let x = try trainingBatch(step: s, indices: idx, firstSample: share.lowerBound)
    let eps = try Tensor.randomNormal(
      shape: [idx.count] + model.latentShape, seed: options.seed, step: s,
      stream: Streams.vaeReparameterisation, firstSample: share.lowerBound, on: device)
    let beta = options.elbo.beta(atStep: s + 1)
    let tape = Tape()
    tape.watch(parameters)
    let terms = try tape.record {
      try model.negativeELBO(x, noise: eps, beta: beta, freeBits: options.freeBits)
    }
    let mean = try parallel.average([terms.reconstruction, terms.kl, terms.lossValue])
    for (name, v) in [("the reconstruction NLL", mean[0]), ("the KL", mean[1])] where !v.isFinite {
      tape.reset()
      throw TrainingError.diverged(step: s + 1, term: name, value: v)
    }
    let lossValue = mean[2]
    guard lossValue.isFinite else {
      tape.reset()
      throw TrainingError.diverged(step: s + 1, term: "the loss (negative ELBO)", value: lossValue)
    }
    let grads = try parallel.averageGradients(
      try zip(tape.gradients(of: terms.loss, wrt: parameters), zip(names, parameters)).map {
        g, np -> Tensor in
        try g ?? Tensor.zeros(np.1.shape, on: device)
      })
    let clip = try Optimizer.clipOrStop(grads: grads, names: names, maxNorm: options.clipGrad, step: s + 1)
    let lr = learningRate.value(at: s + 1)
    try optimizer.step(grads: grads, lr: lr, gradScale: clip.scale)
    try ema.step(parameters: parameters)
    step += 1
    return VAEStepStats(
      step: step, loss: lossValue, reconstruction: mean[0], kl: mean[1], beta: beta, lr: lr,
      gradNorm: clip.norm)
  }

  /// A model holding the EMA weights and the current buffers, in evaluation mode.
  public func emaModel() throws -> any VariationalAutoencoder {
    let m = try architecture.make(seed: 0, on: device)
    var state: [String: TensorData] = [:]
    for (n, t) in zip(names, ema.shadow) { state[n] = try t.toTensorData() }
    for (n, t) in model.namedBuffers { state[n] = try t.toTensorData() }
    try m.load(state)
    m.eval()
    return m
  }

  // MARK: Checkpoints

  /// The EMA weights and buffers under the model's names (the exported model).
  func exportedState() -> [(name: String, tensor: LazyTensor)] {
    CheckpointWriter.lazy(Array(zip(names, ema.shadow)).map { (name: $0.0, tensor: $0.1) })
      + CheckpointWriter.lazy(model.namedBuffers)
  }

  /// Writes checkpoint-<step> (a ConvVAE model folder with the EMA weights, plus training_state/).
  @discardableResult
  public func writeCheckpoint(to outDir: URL) throws -> URL {
    let state = VAECheckpointState(
      step: step, optimizerStep: optimizer.stepCount, emaStep: ema.optimizationStep, options: options,
      device: device.spec, dataCount: data.count)
    return try CheckpointWriter.write(
      [
        ("config.json", .data(try architecture.jsonData())),
        (ModelFolder.weightsFile, .tensors(exportedState(), metadata: ["format": "pt"])),
        ("training_state/model.safetensors", .tensors(model.lazyState(), metadata: ["format": "pt"])),
        (
          "training_state/optimizer.safetensors", try CheckpointWriter.optimizerState(optimizer, names: names)
        ),
        (CheckpointWriter.stateFile, .data(try JSONEncoder.sorted.encode(state))),
      ], step: step, to: outDir)
  }

  /// The options saved with the latest checkpoint in `outDir`.
  public static func savedState(in outDir: URL) throws -> (
    options: VAETrainingOptions, architecture: VAEArchitecture
  ) {
    let dir = try CheckpointWriter.latest(in: outDir)
    let url = dir.appendingPathComponent(CheckpointWriter.stateFile)
    guard let d = try? Data(contentsOf: url),
      let s = try? JSONDecoder().decode(VAECheckpointState.self, from: d)
    else { throw TrainingError.checkpoint("\(url.path) is missing or is not a VAE training state") }
    return (s.options, try VAEArchitecture.read(dir))
  }

  /// Resumes the run whose latest checkpoint is in `outDir`, bit for bit, with what --resume changed (`changes`).
  public static func resume(
    from outDir: URL, data: TrainingImages, device: Device, changes: ResumeChanges = ResumeChanges()
  ) throws
    -> VAETrainer
  {
    let dir = try CheckpointWriter.latest(in: outDir)
    let url = dir.appendingPathComponent(CheckpointWriter.stateFile)
    guard let d = try? Data(contentsOf: url),
      let state = try? JSONDecoder().decode(VAECheckpointState.self, from: d)
    else { throw TrainingError.checkpoint("\(url.path) is missing or is not a VAE training state") }
    var options = state.options
    try options.apply(changes)
    let (_, architecture) = try savedState(in: outDir)
    let trainer = try VAETrainer(architecture: architecture, data: data, options: options, device: device)
    do {
      try trainer.model.load(try CheckpointWriter.read("training_state/model.safetensors", in: dir).tensors)
    } catch let e as ModuleError {
      throw TrainingError.checkpoint("training_state/model.safetensors: \(e)")
    }
    let exported = try CheckpointWriter.readFinite(ModelFolder.weightsFile, in: dir)
    let shadow = try trainer.names.map { name -> Tensor in
      guard let t = exported.tensors[name] else {
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
}

/// training_state/state.json of a VAE run.
struct VAECheckpointState: Codable {
  var family = "vae"
  var step: Int
  var optimizerStep: Int
  var emaStep: Int
  var options: VAETrainingOptions
  var device: String
  var dataCount: Int
}
