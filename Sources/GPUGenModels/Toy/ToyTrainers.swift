// Training the diffusion and VAE families' toy models on 2-D mixtures. The batch of step s is the toy data set's
// points (seed, sample, s) (ToyData.swift); the rest is each family's image contract:
//
//   diffusion  t ~ U{0..T−1} keyed by (seed, sample, s) (DiffusionTrainer.timesteps), ε keyed by (seed, sample,
//              s) (DiffusionTrainer.noisedBatch), L2 loss on ε (or v), AdamW, global-norm clipping, EMA
//   VAE        ε keyed by (seed, sample, s, vaeReparameterisation), negative ELBO (VAE.swift) with β, KL
//              warm-up and free bits, Adam, clipping, EMA
//
// A checkpoint is the toy model folder (config.json, the EMA weights, the diffusion model's
// scheduler_config.json) plus training_state/ (raw weights, optimizer moments, state.json). Every draw is keyed
// by the seed and the step, so a resumed run is bitwise identical on the CPU.
import Foundation

extension DiffusionTrainingOptions {
  /// The defaults for 2-D toy data: an MLP trains in a couple of minutes on two CPU cores and covers every
  /// ring8 and grid25 mode (README, "Toy 2-D data").
  public static func toyDefaults() -> DiffusionTrainingOptions {
    var o = DiffusionTrainingOptions()
    o.data = "toy:grid25"
    (o.steps, o.batchSize, o.lr, o.warmup, o.lrSchedule) = (8_000, 512, 3e-3, 100, "cosine")
    (o.emaDecay, o.clipGrad) = (0.999, 1)
    (o.checkpointEvery, o.sampleEvery) = (1_000, 1_000)
    return o
  }
}

extension VAETrainingOptions {
  /// The defaults for 2-D toy data: an MLP VAE trains in about two minutes on two idle CPU cores and covers
  /// every ring8 and grid25 mode by both rules (README, "Toy 2-D data"). 20,000 steps, not fewer: the latent
  /// regions of the 25 grid modes even out slowly, and at 12,000 steps a mode or two on some seeds still
  /// decodes to under 10 % of its fair share.
  public static func toyDefaults() -> VAETrainingOptions {
    var o = VAETrainingOptions()
    o.data = "toy:grid25"
    (o.steps, o.batchSize, o.lr, o.lrSchedule, o.emaDecay) = (20_000, 256, 3e-3, "cosine", 0.999)
    (o.checkpointEvery, o.sampleEvery) = (1_000, 1_000)
    return o
  }
}

/// training_state/state.json of a toy run.
struct ToyCheckpointState<Options: Codable>: Codable {
  var family: String
  var step: Int
  var optimizerStep: Int
  var emaStep: Int
  var options: Options
  var device: String
}

/// The parts the two toy trainers share: the model's parameters, the optimizer, the EMA and the learning rate,
/// one optimizer step from a loss, and the checkpoint files.
final class ToyOptimization {
  let model: Module
  let names: [String]
  let parameters: [Tensor]
  let optimizer: Optimizer
  let ema: EMA
  let learningRate: LearningRate
  let clipGrad: Double

  init(
    model: Module, optimizer config: OptimizerConfig, ema makeEMA: ([Tensor]) throws -> EMA,
    options: CommonTrainingOptions
  ) throws {
    model.train()
    self.model = model
    let sorted = model.sortedParameters
    (names, parameters) = (sorted.map(\.name), sorted.map(\.tensor))
    optimizer = try Optimizer(parameters: parameters, config: config)
    ema = try makeEMA(parameters)
    learningRate = LearningRate(
      base: options.lr, warmupSteps: options.warmup,
      schedule: options.lrSchedule == "cosine" ? .cosine(totalSteps: options.steps) : .constant)
    clipGrad = options.clipGrad
  }

  /// Backpropagates `loss` (recorded on `tape`), clips, steps the optimizer at step `s` + 1's learning rate and
  /// the EMA; returns (gradient norm, learning rate, EMA decay).
  func step(_ loss: Tensor, tape: Tape, step s: Int) throws -> (gradNorm: Float, lr: Float, decay: Double) {
    let grads = try zip(tape.gradients(of: loss, wrt: parameters), parameters).map { g, p in
      try g ?? Tensor.zeros(p.shape, on: p.device)
    }
    let clip = try Optimizer.clipOrStop(grads: grads, names: names, maxNorm: clipGrad, step: s + 1)
    let lr = learningRate.value(at: s + 1)
    try optimizer.step(grads: grads, lr: lr, gradScale: clip.scale)
    let decay = try ema.step(parameters: parameters)
    return (clip.norm, lr, decay)
  }

  /// The EMA weights and the buffers under the model's names (the exported model).
  func exported() -> [(name: String, tensor: LazyTensor)] {
    CheckpointWriter.lazy(Array(zip(names, ema.shadow)).map { (name: $0.0, tensor: $0.1) })
      + CheckpointWriter.lazy(model.namedBuffers)
  }

  /// The EMA weights and the buffers as a state dict (to load into a fresh model).
  func exportedState() throws -> [String: TensorData] {
    var state: [String: TensorData] = [:]
    for (n, t) in zip(names, ema.shadow) { state[n] = try t.toTensorData() }
    for (n, t) in model.namedBuffers { state[n] = try t.toTensorData() }
    return state
  }

  /// Writes checkpoint-<step>: `files` (the folder's configs), the EMA weights, training_state/.
  func writeCheckpoint<O: Codable>(
    files: [(path: String, file: CheckpointFile)], state: ToyCheckpointState<O>, to outDir: URL
  ) throws -> URL {
    try CheckpointWriter.write(
      files + [
        (ModelFolder.weightsFile, .tensors(exported(), metadata: ["format": "pt"])),
        ("training_state/model.safetensors", .tensors(model.lazyState(), metadata: ["format": "pt"])),
        (
          "training_state/optimizer.safetensors", try CheckpointWriter.optimizerState(optimizer, names: names)
        ),
        (CheckpointWriter.stateFile, .data(try JSONEncoder.sorted.encode(state))),
      ], step: state.step, to: outDir)
  }

  /// The saved state of the latest checkpoint in `outDir` and its folder.
  static func savedState<O: Codable>(in outDir: URL, family: String, as: O.Type) throws -> (
    ToyCheckpointState<O>, URL
  ) {
    let dir = try CheckpointWriter.latest(in: outDir)
    let url = dir.appendingPathComponent(CheckpointWriter.stateFile)
    guard let d = try? Data(contentsOf: url),
      let s = try? JSONDecoder().decode(ToyCheckpointState<O>.self, from: d), s.family == family
    else { throw TrainingError.checkpoint("\(url.path) is missing or is not a toy \(family) training state") }
    return (s, dir)
  }

  /// Restores the raw weights, the EMA and the optimizer from checkpoint `dir`.
  func restore(from dir: URL, optimizerStep: Int, emaStep: Int) throws {
    do {
      try model.load(try CheckpointWriter.read("training_state/model.safetensors", in: dir).tensors)
    } catch let e as ModuleError {
      throw TrainingError.checkpoint("training_state/model.safetensors: \(e)")
    }
    let exported = try CheckpointWriter.readFinite(ModelFolder.weightsFile, in: dir)
    let device = parameters.first?.device ?? .cpu
    let shadow = try names.map { name -> Tensor in
      guard let t = exported.tensors[name] else {
        throw TrainingError.checkpoint("EMA weight \(name) is missing")
      }
      return try Tensor(t, on: device)
    }
    try ema.importState(shadow: shadow, optimizationStep: emaStep)
    let opt = try CheckpointWriter.readFinite("training_state/optimizer.safetensors", in: dir)
    try optimizer.importState(
      try opt.tensors.mapValues { try Tensor($0, on: device) }, step: optimizerStep, names: names)
  }
}

/// The toy data set of a run's `data` option, checked against the model config's.
func toyDataset(options data: String, config: String) throws -> ToyDataset {
  guard ToyDataset.isToy(data) else {
    throw TrainingError.invalidOption("a toy model trains on toy data (toy:ring8, toy:grid25), not \(data)")
  }
  let d = try ToyDataset.parse(data)
  guard try ToyDataset.parse(config) == d else {
    throw TrainingError.invalidOption("the data is \(d.spec) but the model's config says \(config)")
  }
  return d
}

/// A toy diffusion run: the MLP denoiser, AdamW, EMA, the noise schedule and the step counter.
public final class ToyDiffusionTrainer {
  /// The denoiser's config (its `data` is the run's data set).
  public let config: ToyDenoiserConfig
  /// The run's options.
  public let options: DiffusionTrainingOptions
  /// The data set.
  public let dataset: ToyDataset
  /// scheduler_config.json of the run.
  public let schedulerJSON: [String: Any]
  let schedulerText: String
  /// The device it trains on.
  public let device: Device
  /// The denoiser being trained (training mode).
  public let model: ToyDenoiser
  /// The training noise schedule.
  public let schedule: NoiseSchedule
  let core: ToyOptimization
  /// Optimizer steps done.
  public internal(set) var step = 0

  /// The DDPM scheduler config a toy run writes: the image runs' (linear betas, 1000 steps, trailing spacing)
  /// without x̂₀ clipping, since toy points lie outside [−1, 1].
  public static func defaultSchedulerJSON(prediction: String) -> [String: Any] {
    var j = DiffusionTrainer.defaultSchedulerJSON(prediction: prediction)
    j["clip_sample"] = false
    return j
  }

  /// A new run (PyTorch's default initialisation from `options.seed`); `options.data` must be the config's
  /// data set.
  public convenience init(config: ToyDenoiserConfig, options: DiffusionTrainingOptions, device: Device) throws
  {
    try self.init(
      config: config, schedulerJSON: ToyDiffusionTrainer.defaultSchedulerJSON(prediction: options.prediction),
      options: options, device: device)
  }

  init(
    config: ToyDenoiserConfig, schedulerJSON: [String: Any], options: DiffusionTrainingOptions, device: Device
  )
    throws
  {
    try options.validate()
    try config.validate()
    dataset = try toyDataset(options: options.data, config: config.data)
    (self.config, self.options, self.schedulerJSON, self.device) = (config, options, schedulerJSON, device)
    schedulerText = String(
      decoding: try JSONSerialization.data(withJSONObject: schedulerJSON, options: [.sortedKeys]),
      as: UTF8.self)
    schedule = try NoiseSchedule(config: try SchedulerConfig(json: schedulerText, family: .ddpm))
    model = try ToyDenoiser(config: config, seed: options.seed, on: device)
    core = try ToyOptimization(
      model: model,
      optimizer: .adamW(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: options.weightDecay),
      ema: {
        try EMA(
          parameters: $0, maxDecay: options.emaDecay, useWarmup: options.emaWarmup, invGamma: 1, power: 0.75)
      }, options: options)
  }

  /// Parameter names (sorted) and tensors.
  public var names: [String] { core.names }
  /// The trainable tensors, named by `names`.
  public var parameters: [Tensor] { core.parameters }

  /// One optimizer step. Throws `TrainingError.diverged` (before touching the weights) on a NaN/Inf.
  public func trainStep() throws -> TrainingStepStats {
    let s = step, b = options.batchSize
    let x0 = try dataset.sample(count: b, seed: options.seed, step: s, on: device)
    let t = DiffusionTrainer.timesteps(
      seed: options.seed, batch: b, step: s, trainSteps: schedule.numTrainTimesteps)
    let (xt, target) = try DiffusionTrainer.noisedBatch(
      x0, timesteps: t, seed: options.seed, step: s, schedule: schedule, prediction: options.prediction)
    let tape = Tape()
    tape.watch(core.parameters)
    let loss = try tape.record { try Tensor.mseLoss(try model(xt, timesteps: t.map(Double.init)), target) }
    let value = try loss.toArray()[0]
    guard value.isFinite else {
      tape.reset()
      throw TrainingError.diverged(step: s + 1, term: "the loss (MSE)", value: value)
    }
    let r = try core.step(loss, tape: tape, step: s)
    step += 1
    return TrainingStepStats(step: step, loss: value, lr: r.lr, gradNorm: r.gradNorm, emaDecay: r.decay)
  }

  /// The plan of a `kind` sampler with `steps` steps (nil: 20, DDPM all) on this run's noise schedule.
  public func samplingPlan(_ kind: SamplerKind, steps: Int?, eta: Double = 0, karras: Bool = false) throws
    -> SamplingPlan
  {
    try SamplerPlanner.plan(kind, schedulerJSON: schedulerText, steps: steps, eta: eta, karras: karras)
  }

  /// A denoiser holding the EMA weights, in evaluation mode.
  public func emaModel() throws -> ToyDenoiser {
    let m = try ToyDenoiser(config: config, on: device)
    try m.load(try core.exportedState())
    m.eval()
    return m
  }

  /// Writes checkpoint-<step>: a toy diffusion folder (config.json, the EMA weights, scheduler_config.json)
  /// plus training_state/.
  @discardableResult
  public func writeCheckpoint(to outDir: URL) throws -> URL {
    let state = ToyCheckpointState(
      family: ModelFamily.diffusion.rawValue, step: step, optimizerStep: core.optimizer.stepCount,
      emaStep: core.ema.optimizationStep, options: options, device: device.spec)
    return try core.writeCheckpoint(
      files: [
        ("config.json", .data(try config.jsonData())),
        (
          ToyDenoiser.schedulerFile,
          .data(
            try JSONSerialization.data(withJSONObject: schedulerJSON, options: [.prettyPrinted, .sortedKeys]))
        ),
      ], state: state, to: outDir)
  }

  /// The options saved with the latest checkpoint in `outDir`.
  public static func savedOptions(in outDir: URL) throws -> DiffusionTrainingOptions {
    try ToyOptimization.savedState(in: outDir, family: "diffusion", as: DiffusionTrainingOptions.self).0
      .options
  }

  /// Resumes the run whose latest checkpoint is in `outDir`, bit for bit, with what --resume changed (`changes`).
  public static func resume(from outDir: URL, device: Device, changes: ResumeChanges = ResumeChanges()) throws
    -> ToyDiffusionTrainer
  {
    let (state, dir) = try ToyOptimization.savedState(
      in: outDir, family: "diffusion", as: DiffusionTrainingOptions.self)
    var options = state.options
    try options.apply(changes)
    let (config, _) = try ToyDenoiser.readFolder(dir)
    let schedURL = dir.appendingPathComponent(ToyDenoiser.schedulerFile)
    guard let d = try? Data(contentsOf: schedURL),
      let sched = try? JSONSerialization.jsonObject(with: d) as? [String: Any]
    else { throw TrainingError.checkpoint("\(schedURL.path) is missing or malformed") }
    let t = try ToyDiffusionTrainer(config: config, schedulerJSON: sched, options: options, device: device)
    try t.core.restore(from: dir, optimizerStep: state.optimizerStep, emaStep: state.emaStep)
    t.step = state.step
    return t
  }
}

/// A toy VAE run: the MLP VAE, Adam, EMA and the step counter.
public final class ToyVAETrainer {
  /// The VAE's config (its `data` is the run's data set).
  public let config: ToyVAEConfig
  /// The run's options.
  public let options: VAETrainingOptions
  /// The data set.
  public let dataset: ToyDataset
  /// The device it trains on.
  public let device: Device
  /// The VAE being trained (training mode).
  public let model: ToyVAE
  let core: ToyOptimization
  /// Optimizer steps done.
  public internal(set) var step = 0

  /// A new run (PyTorch's default initialisation from `options.seed`); `options.data` must be the config's
  /// data set.
  public init(config: ToyVAEConfig, options: VAETrainingOptions, device: Device) throws {
    try options.validate()
    try config.validate()
    if options.dynamicBinarization {
      throw TrainingError.invalidOption("--binarize needs the Bernoulli likelihood; a toy VAE's is Gaussian")
    }
    dataset = try toyDataset(options: options.data, config: config.data)
    (self.config, self.options, self.device) = (config, options, device)
    model = try ToyVAE(config: config, seed: options.seed, on: device)
    core = try ToyOptimization(
      model: model, optimizer: .adam(), ema: { try EMA(parameters: $0, maxDecay: options.emaDecay) },
      options: options)
  }

  /// Parameter names (sorted) and tensors.
  public var names: [String] { core.names }
  /// The trainable tensors, named by `names`.
  public var parameters: [Tensor] { core.parameters }

  /// One optimizer step. Throws `TrainingError.diverged` (before touching the weights) on a NaN/Inf.
  public func trainStep() throws -> VAEStepStats {
    let s = step, b = options.batchSize
    let x = try dataset.sample(count: b, seed: options.seed, step: s, on: device).reshaped([b, 2, 1, 1])
    let eps = try Tensor.randomNormal(
      shape: [b] + model.latentShape, seed: options.seed, step: s, stream: Streams.vaeReparameterisation,
      on: device)
    let beta = options.elbo.beta(atStep: s + 1)
    let tape = Tape()
    tape.watch(core.parameters)
    let terms = try tape.record {
      try model.negativeELBO(x, noise: eps, beta: beta, freeBits: options.freeBits)
    }
    for (name, v) in [
      ("the reconstruction NLL", terms.reconstruction), ("the KL", terms.kl),
      ("the loss (negative ELBO)", terms.lossValue),
    ] where !v.isFinite {
      tape.reset()
      throw TrainingError.diverged(step: s + 1, term: name, value: v)
    }
    let r = try core.step(terms.loss, tape: tape, step: s)
    step += 1
    return VAEStepStats(
      step: step, loss: terms.lossValue, reconstruction: terms.reconstruction, kl: terms.kl, beta: beta,
      lr: r.lr, gradNorm: r.gradNorm)
  }

  /// A VAE holding the EMA weights, in evaluation mode.
  public func emaModel() throws -> ToyVAE {
    let m = try ToyVAE(config: config, on: device)
    try m.load(try core.exportedState())
    m.eval()
    return m
  }

  /// Writes checkpoint-<step>: a toy VAE folder (config.json, the EMA weights) plus training_state/.
  @discardableResult
  public func writeCheckpoint(to outDir: URL) throws -> URL {
    let state = ToyCheckpointState(
      family: ModelFamily.vae.rawValue, step: step, optimizerStep: core.optimizer.stepCount,
      emaStep: core.ema.optimizationStep, options: options, device: device.spec)
    return try core.writeCheckpoint(
      files: [("config.json", .data(try config.jsonData()))], state: state, to: outDir)
  }

  /// The options saved with the latest checkpoint in `outDir`.
  public static func savedOptions(in outDir: URL) throws -> VAETrainingOptions {
    try ToyOptimization.savedState(in: outDir, family: "vae", as: VAETrainingOptions.self).0.options
  }

  /// Resumes the run whose latest checkpoint is in `outDir`, bit for bit, with what --resume changed (`changes`).
  public static func resume(from outDir: URL, device: Device, changes: ResumeChanges = ResumeChanges()) throws
    -> ToyVAETrainer
  {
    let (state, dir) = try ToyOptimization.savedState(in: outDir, family: "vae", as: VAETrainingOptions.self)
    var options = state.options
    try options.apply(changes)
    let config = try ToyVAE.readConfig(dir)
    let t = try ToyVAETrainer(config: config, options: options, device: device)
    try t.core.restore(from: dir, optimizerStep: state.optimizerStep, emaStep: state.emaStep)
    t.step = state.step
    return t
  }
}
