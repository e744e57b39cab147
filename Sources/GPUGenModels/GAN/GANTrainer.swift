// Training a GAN (docs/TRAINING.md, "GAN"): per generator step, `nDis` discriminator steps then one generator
// step, two Adam optimizers (TTUR learning rates), an EMA of the generator (what checkpoints export and
// sampling uses), optional DiffAugment on both real and generated batches, PacGAN packing in D.
//
//   D step t (t = s·nDis + j):  x = real batch t, z ~ N(0, I) keyed by (seed, sample, t, ganLatent),
//                              fake = G(z), D minimises the loss's D term (no gradient reaches G)
//   G step s:                   G minimises the loss's G term on the last D step's fake (one generator forward
//                              serves both, as in PyTorch's DCGAN example), through the updated D
//
// Every draw is Philox keyed by the seed and the step, so on the CPU a resumed run is bitwise identical.
import Foundation

/// Everything that defines a GAN training run (saved in each checkpoint's state.json).
public struct GANTrainingOptions: Codable, Equatable, Sendable, CommonTrainingOptions {
  /// Training data: fashion-mnist, an IDX file, a PNG folder, or toy:ring8 / toy:grid25.
  public var data = "fashion-mnist"
  /// Generator steps in total.
  public var steps = 20_000
  /// Samples per step (real and generated alike).
  public var batchSize = 64
  /// The generator's learning rate (Adam).
  public var lr = 2e-4
  /// The discriminator's learning rate (Adam).
  public var lrD = 2e-4
  /// Adam's β₁ and β₂ (both networks).
  public var beta1 = 0.5, beta2 = 0.999
  /// Linear learning-rate warmup steps.
  public var warmup = 0
  /// "constant" or "cosine" (after the warmup).
  public var lrSchedule = "constant"
  /// The adversarial loss.
  public var loss = GANLoss.ns
  /// Discriminator steps per generator step.
  public var nDis = 1
  /// EMA decay cap of the generator's average.
  public var emaDecay = 0.999
  /// Global gradient-norm clip of each network (0: off).
  public var clipGrad = 0.0
  /// DiffAugment policies applied to every batch D sees.
  public var diffAugment: [String] = []
  /// Instance selection: the share of each class's images trained on, the densest under the bundled
  /// classifier's features (`InstanceSelection`); nil: every image.
  public var instanceSelection: Double?
  /// The classifier folder that scores instance selection and the collapse signal (nil: the bundled one).
  public var classifier: String?
  /// Steps between checkpoints.
  public var checkpointEvery = 500
  /// Steps between sample grids and the collapse signal (0: never).
  public var sampleEvery = 1_000
  /// Seed of every draw (weights, data order, latents, augmentation).
  public var seed: UInt64 = 0

  /// The image defaults (the reference DCGAN on Fashion-MNIST).
  public init() {}

  /// The defaults for 2-D toy data (docs/GAN_TOY.md), with `GANNetworkConfig.toyGenerator` (4 × 400, batch
  /// norm) and `toyDiscriminator`: the grid25 recipe — with hinge + spectral norm they cover every grid25
  /// mode by both rules on seeds 0–4, with 93.4–95.7 % of the samples within 3σ of a mode (the target is 90 % on
  /// every seed).
  public static func toyDefaults() -> GANTrainingOptions {
    var o = compareToyDefaults()
    (o.steps, o.batchSize, o.lr, o.lrD, o.lrSchedule) = (60_000, 128, 1e-3, 1e-3, "cosine")
    return o
  }

  /// What `gpugen compare` trains its toy GANs with (`ToyTraining`, with the plain MLP pair: no batch norm, the
  /// non-saturating loss): 5,000 steps of batch 256, Adam lr 2e-4 constant for both networks, β (0, 0.9) — the
  /// toy defaults before the grid25 recipe, kept so that the comparison's plain NS-GAN (and its time) stays as
  /// README's "The three families side by side" measured it.
  public static func compareToyDefaults() -> GANTrainingOptions {
    var o = GANTrainingOptions()
    o.data = "toy:grid25"
    (o.steps, o.batchSize, o.lr, o.lrD, o.beta1, o.beta2) = (5_000, 256, 2e-4, 2e-4, 0, 0.9)
    (o.checkpointEvery, o.sampleEvery) = (1_000, 1_000)
    return o
  }

  /// Errors for values no run can use (each names its flag).
  public func validate() throws {
    try validateCommon()
    func bad(_ s: String) -> TrainingError { .invalidOption(s) }
    if nDis < 1 { throw bad("--n-dis must be ≥ 1 (discriminator steps per generator step), got \(nDis)") }
    if !(lrD > 0) || !lrD.isFinite { throw bad("--lr-d must be positive") }
    for (name, b) in [("β₁", beta1), ("β₂", beta2)] where !(b >= 0 && b < 1) {
      throw bad("--betas: \(name) = \(b) is not in [0, 1)")
    }
    if let r = instanceSelection {
      try InstanceSelection.check(r)
      if ToyDataset.isToy(data) { throw bad("--instance-selection is for image data, not \(data)") }
    }
    if classifier != nil && ToyDataset.isToy(data) {
      throw bad("--classifier judges images; toy data \(data) is scored by its modes")
    }
    for p in diffAugment where DiffAugmentPolicy(rawValue: p) == nil {
      throw bad(
        "--diffaugment: unknown policy '\(p)'; choose from \(DiffAugmentPolicy.allCases.map(\.rawValue).joined(separator: ", "))"
      )
    }
  }
}

/// What a GAN trains on: images (in [−1, 1], with labels for a class-conditional run) or a 2-D toy mixture.
public enum GANData: Sendable {
  case images(TrainingImages)
  case toy(ToyDataset)

  /// The data's fingerprint (`TrainingImages.fingerprint`, or the toy set's name).
  public var fingerprint: String {
    switch self {
    case .images(let d): return d.fingerprint
    case .toy(let t): return t.rawValue
    }
  }

  /// The per-sample shape.
  public var sampleShape: [Int] {
    switch self {
    case .images(let d): return [d.channels, d.size, d.size]
    case .toy: return [2]
    }
  }
}

/// One generator step's figures.
public struct GANStepStats: Sendable {
  /// Generator steps done after this one.
  public var step: Int
  /// The discriminator's loss (last D step) and the generator's.
  public var dLoss: Float, gLoss: Float
  /// Mean D(x) on real and generated samples (probabilities for ns, logits for hinge).
  public var dReal: Float, dFake: Float
  /// Global gradient norms before clipping.
  public var gradNormD: Float, gradNormG: Float
  /// The learning rates this step trained at.
  public var lrG: Float, lrD: Float
}

/// A GAN training run: both networks, both optimizers, the generator's EMA, data and step counter.
public final class GANTrainer {
  /// gan_config.json of the run.
  public let modelConfig: GANModelConfig
  /// The networks' configs.
  public let generatorConfig: GANNetworkConfig, discriminatorConfig: GANNetworkConfig
  /// The run's options.
  public let options: GANTrainingOptions
  /// The instance selection the data was cut to (saved in each checkpoint; nil: every image).
  public var selection: InstanceSelection.Saved?
  /// The device it trains on.
  public let device: Device
  /// The networks (training mode).
  public let generator: GANGenerator, discriminator: GANDiscriminator
  /// Parameter names (sorted) and tensors of each network.
  public let namesG: [String], namesD: [String]
  let paramsG: [Tensor], paramsD: [Tensor]
  /// Adam over each network.
  public let optimizerG: Optimizer, optimizerD: Optimizer
  /// The EMA of the generator's parameters.
  public let ema: EMA
  let lrG: LearningRate, lrD: LearningRate
  /// The training data.
  public let data: GANData
  /// Generator steps done.
  public internal(set) var step = 0
  /// The processes that share each global batch (one by default); BatchNorm statistics are each rank's own
  /// unless `BatchNorm2d` layers are synchronised (`--sync-batchnorm`).
  public var parallel = DataParallel.single {
    didSet { parallel.configure([generator, discriminator]) }
  }
  private var batches: EpochBatches?
  let policies: [DiffAugmentPolicy]

  /// A new run (PyTorch's default initialisation from `options.seed`; the discriminator draws from slot 1).
  public init(
    model: GANModelConfig, generator g: GANNetworkConfig, discriminator d: GANNetworkConfig, data: GANData,
    options: GANTrainingOptions, device: Device
  ) throws {
    try options.validate()
    try model.check(generator: g, discriminator: d, source: "the run's configs")
    guard data.sampleShape == g.sampleShape else {
      throw TrainingError.invalidOption(
        "the data's samples have shape \(data.sampleShape) but the generator makes \(g.sampleShape)")
    }
    try options.checkBatchFits(valuesPerSample: g.sampleShape.reduce(1, *), live: 64, on: device)
    if case .images(let images) = data {
      guard images.count >= options.batchSize else {
        throw TrainingError.invalidOption(
          "--batch-size \(options.batchSize) is larger than the dataset (\(images.count) images)")
      }
      if model.conditional {
        guard images.labels != nil else {
          throw TrainingError.invalidOption(
            "--class-conditional needs labelled data (\(options.data) has no labels)")
        }
        guard images.classCount <= model.numClasses else {
          throw TrainingError.invalidOption(
            "the data has \(images.classCount) classes, the model \(model.numClasses)")
        }
      }
      batches = EpochBatches(seed: options.seed, count: images.count, batchSize: options.batchSize)
    } else {
      if model.conditional {
        throw TrainingError.invalidOption("--class-conditional needs labelled images, not toy data")
      }
      if !options.diffAugment.isEmpty {
        throw TrainingError.invalidOption(
          "--diffaugment \(options.diffAugment.joined(separator: ",")) transforms images; toy data (\(options.data)) takes none"
        )
      }
    }
    guard options.batchSize % d.pack == 0 else {
      throw TrainingError.invalidOption(
        "--batch-size \(options.batchSize) is not a multiple of --pack \(d.pack)")
    }
    (modelConfig, generatorConfig, discriminatorConfig) = (model, g, d)
    (self.options, self.device, self.data) = (options, device, data)
    policies = options.diffAugment.compactMap(DiffAugmentPolicy.init(rawValue:))
    generator = try GANGenerator(config: g, seed: options.seed, slot: 0, on: device)
    discriminator = try GANDiscriminator(config: d, seed: options.seed, slot: 1, on: device)
    generator.train()
    discriminator.train()
    (namesG, paramsG) = (generator.sortedParameters.map(\.name), generator.sortedParameters.map(\.tensor))
    (namesD, paramsD) = (
      discriminator.sortedParameters.map(\.name), discriminator.sortedParameters.map(\.tensor)
    )
    let adam = OptimizerConfig.adam(beta1: options.beta1, beta2: options.beta2)
    optimizerG = try Optimizer(parameters: paramsG, config: adam)
    optimizerD = try Optimizer(parameters: paramsD, config: adam)
    ema = try EMA(parameters: paramsG, maxDecay: options.emaDecay)
    let schedule: LearningRate.Schedule =
      options.lrSchedule == "cosine" ? .cosine(totalSteps: options.steps) : .constant
    lrG = LearningRate(base: options.lr, warmupSteps: options.warmup, schedule: schedule)
    lrD = LearningRate(base: options.lrD, warmupSteps: options.warmup, schedule: schedule)
  }

  /// Real samples and labels of discriminator step `t` (this rank's `share` of the global batch, by default
  /// all of it): image
  /// batch t of the epoch order, or toy points keyed by (seed, sample, t).
  func realBatch(_ t: Int, share: Range<Int>? = nil) throws -> (x: Tensor, labels: [Int]?) {
    let share = share ?? 0..<options.batchSize
    let b = share.count
    switch data {
    case .toy(let toy):
      return (
        try Tensor(
          toy.sample(count: b, seed: options.seed, step: t, firstSample: share.lowerBound), shape: [b, 2],
          on: device), nil
      )
    case .images(let images):
      let idx = Array(batches!.indices(step: t)[share])
      let v = GeneratorEvaluator.gather(images, idx)
      let labels = modelConfig.conditional ? idx.map { images.labels![$0] } : nil
      return (try Tensor(v, shape: [b, images.channels, images.size, images.size], on: device), labels)
    }
  }

  /// Latents and (class-conditional) uniformly drawn labels for the samples `share` of the global batch at
  /// `step` of `stream`.
  func latents(step: Int, stream: Int, share: Range<Int>) throws -> (z: Tensor, labels: [Int]?) {
    let b = share.count
    let z = try Tensor.randomNormal(
      shape: [b, modelConfig.latentDim], seed: options.seed, step: step, stream: stream,
      firstSample: share.lowerBound, on: device)
    guard modelConfig.conditional else { return (z, nil) }
    let u = try Tensor.randomUniform(
      shape: [b, 1], seed: options.seed, step: step, stream: stream + 1, firstSample: share.lowerBound,
      on: .cpu
    ).toArray()
    let k = modelConfig.numClasses
    return (z, u.map { Swift.min(Int($0 * Float(k)), k - 1) })
  }

  /// D's view of a batch whose row i is sample `firstSample + i`: DiffAugment (keyed by seed, sample, the
  /// step and `stream`) when asked for.
  func augment(_ x: Tensor, step: Int, stream: Int, firstSample: Int = 0) throws -> Tensor {
    guard !policies.isEmpty else { return x }
    return try DiffAugment.apply(
      x, policies: policies, seed: options.seed, step: step, stream: stream, firstSample: firstSample)
  }

  /// The loss terms: D's (real logits, fake logits) and G's (fake logits).
  func dLoss(real: Tensor, fake: Tensor) throws -> Tensor {
    switch options.loss {
    case .ns:
      // softplus(−r) + softplus(f) = BCE(r, 1) + BCE(f, 0).
      return try Tensor.bceWithLogitsLoss(real, try Tensor.full(1, shape: real.shape, on: device))
        + Tensor.bceWithLogitsLoss(fake, try Tensor.zeros(fake.shape, on: device))
    case .hinge:
      return try (1 - real).relu().mean() + (1 + fake).relu().mean()
    }
  }

  func gLoss(fake: Tensor) throws -> Tensor {
    switch options.loss {
    case .ns: return try Tensor.bceWithLogitsLoss(fake, try Tensor.full(1, shape: fake.shape, on: device))
    case .hinge: return try -(fake.mean())
    }
  }

  /// The readable D(x): mean probability (ns) or mean logit (hinge).
  func readable(_ logits: Tensor) throws -> Tensor {
    options.loss == .ns ? try logits.sigmoid().mean() : try logits.mean()
  }

  /// One generator step (after `nDis` discriminator steps). Throws `TrainingError.diverged` when a loss or
  /// gradient is not finite, before the network it belongs to steps (a non-finite G loss is found after this
  /// step's D update; the checkpoint on disk is never touched).
  public func trainStep() throws -> GANStepStats {
    let s = step
    let share = try parallel.share(ofBatch: options.batchSize)
    guard share.count % discriminatorConfig.pack == 0 else {
      throw TrainingError.invalidOption(
        "each of the \(parallel.processes) processes gets \(share.count) samples of --batch-size \(options.batchSize), not a multiple of --pack \(discriminatorConfig.pack)"
      )
    }
    let first = share.lowerBound
    var dFigures: [Float] = [0, 0, 0]
    var normD: Float = 0
    let (rateG, rateD) = (lrG.value(at: s + 1), lrD.value(at: s + 1))
    // The generator's tape records its forward on the last D step's latents; the G step reuses that fake.
    let tapeG = Tape()
    tapeG.watch(paramsG)
    var fakeForG: (x: Tensor, labels: [Int]?)?
    for j in 0..<options.nDis {
      let t = s * options.nDis + j
      let (x, yReal) = try realBatch(t, share: share)
      let (z, yFake) = try latents(step: t, stream: Streams.ganLatent, share: share)
      let fake: Tensor
      if j == options.nDis - 1 {
        fake = try tapeG.record { try generator(z, labels: yFake) }
        fakeForG = (fake, yFake)
      } else {
        fake = try Tape.noGrad { try generator(z, labels: yFake) }
      }
      // D's tape tracks only D's parameters: nothing flows back into the generator here.
      let tape = Tape()
      tape.watch(paramsD)
      let (loss, figures) = try tape.record { () throws -> (Tensor, Tensor) in
        let r = try discriminator(
          try augment(x, step: t, stream: Streams.ganAugmentReal, firstSample: first), labels: yReal)
        let f = try discriminator(
          try augment(fake, step: t, stream: Streams.ganAugmentFake, firstSample: first), labels: yFake)
        let l = try dLoss(real: r, fake: f)
        let figs = try Tape.noGrad {
          try Tensor.concat(
            [l.reshaped([1]), try readable(r).reshaped([1]), try readable(f).reshaped([1])], axis: 0)
        }
        return (l, figs)
      }
      dFigures = try parallel.average(try figures.toArray())
      guard dFigures[0].isFinite else {
        tape.reset()
        tapeG.reset()
        throw TrainingError.diverged(step: s + 1, term: "the discriminator's loss", value: dFigures[0])
      }
      let grads = try parallel.averageGradients(
        try zip(tape.gradients(of: loss, wrt: paramsD), paramsD).map { g, p in
          try g ?? Tensor.zeros(p.shape, on: device)
        })
      let clip = try Optimizer.clipOrStop(grads: grads, names: namesD, maxNorm: options.clipGrad, step: s + 1)
      normD = clip.norm
      try optimizerD.step(grads: grads, lr: rateD, gradScale: clip.scale)
    }
    // The generator step, on the last D step's fake through the updated D.
    let (fake, y) = fakeForG!
    let loss = try tapeG.record { () throws -> Tensor in
      let f = try discriminator(
        try augment(fake, step: s, stream: Streams.ganAugmentGenerator, firstSample: first), labels: y)
      return try gLoss(fake: f)
    }
    let gValue = try parallel.average(try loss.toArray())[0]
    guard gValue.isFinite else {
      tapeG.reset()
      throw TrainingError.diverged(step: s + 1, term: "the generator's loss", value: gValue)
    }
    let grads = try parallel.averageGradients(
      try zip(tapeG.gradients(of: loss, wrt: paramsG), paramsG).map { g, p in
        try g ?? Tensor.zeros(p.shape, on: device)
      })
    let clip = try Optimizer.clipOrStop(grads: grads, names: namesG, maxNorm: options.clipGrad, step: s + 1)
    try optimizerG.step(grads: grads, lr: rateG, gradScale: clip.scale)
    try ema.step(parameters: paramsG)
    step += 1
    return GANStepStats(
      step: step, dLoss: dFigures[0], gLoss: gValue, dReal: dFigures[1], dFake: dFigures[2], gradNormD: normD,
      gradNormG: clip.norm, lrG: rateG, lrD: rateD)
  }

  /// A generator holding the EMA weights and the current buffers, in evaluation mode.
  public func emaGenerator() throws -> GANGenerator {
    let g = try GANGenerator(config: generatorConfig, on: device)
    var state: [String: TensorData] = [:]
    for (n, t) in zip(namesG, ema.shadow) { state[n] = try t.toTensorData() }
    for (n, t) in generator.namedBuffers { state[n] = try t.toTensorData() }
    try g.load(state)
    g.eval()
    return g
  }

  /// The EMA generator and the discriminator as a `GANModel` (evaluation mode), for sampling during training.
  public func emaModel() throws -> GANModel {
    GANModel(config: modelConfig, generator: try emaGenerator(), discriminator: nil)
  }

  // MARK: Checkpoints

  /// Writes checkpoint-<step>: a GAN folder (EMA generator, discriminator) plus training_state/ (the raw
  /// generator, both optimizers, state.json).
  @discardableResult
  public func writeCheckpoint(to outDir: URL) throws -> URL {
    let state = GANCheckpointState(
      step: step, optimizerStepG: optimizerG.stepCount, optimizerStepD: optimizerD.stepCount,
      emaStep: ema.optimizationStep, options: options, device: device.spec)
    let exportedG =
      CheckpointWriter.lazy(Array(zip(namesG, ema.shadow)).map { (name: $0.0, tensor: $0.1) })
      + CheckpointWriter.lazy(generator.namedBuffers)
    let g = GANModel.generatorFolder, d = GANModel.discriminatorFolder
    return try CheckpointWriter.write(
      [
        (GANModelConfig.fileName, .data(try modelConfig.jsonData())),
        ("\(g)/config.json", .data(try generatorConfig.jsonData())),
        ("\(g)/\(ModelFolder.weightsFile)", .tensors(exportedG, metadata: ["format": "pt"])),
        ("\(d)/config.json", .data(try discriminatorConfig.jsonData())),
        ("\(d)/\(ModelFolder.weightsFile)", .tensors(discriminator.lazyState(), metadata: ["format": "pt"])),
        ("training_state/generator.safetensors", .tensors(generator.lazyState(), metadata: ["format": "pt"])),
        (
          "training_state/optimizer_g.safetensors",
          try CheckpointWriter.optimizerState(optimizerG, names: namesG)
        ),
        (
          "training_state/optimizer_d.safetensors",
          try CheckpointWriter.optimizerState(optimizerD, names: namesD)
        ),
        (CheckpointWriter.stateFile, .data(try JSONEncoder.sorted.encode(state))),
      ]
        + (try selection.map {
          [(InstanceSelection.checkpointFile, .data(try JSONEncoder.sorted.encode($0)))]
        } ?? []),
      step: step, to: outDir)
  }

  /// Loads the networks of the GAN folder `dir`: the discriminator, the EMA generator (its `generator/`, with
  /// `emaStep` updates behind it) and the trained generator from `rawGenerator` (a path in `dir`), or from the
  /// EMA weights when `rawGenerator` is nil or absent.
  func loadWeights(from dir: URL, emaStep: Int, rawGenerator: String?) throws {
    func read(_ path: String) throws -> [String: TensorData] {
      try CheckpointWriter.readFinite(path, in: dir).tensors
    }
    func load(_ m: Module, _ path: String) throws {
      do { try m.load(try read(path)) } catch let e as ModuleError {
        throw TrainingError.checkpoint("\(dir.appendingPathComponent(path).path): \(e)")
      }
    }
    let emaPath = "\(GANModel.generatorFolder)/\(ModelFolder.weightsFile)"
    let raw = rawGenerator.flatMap {
      FileManager.default.fileExists(atPath: dir.appendingPathComponent($0).path) ? $0 : nil
    }
    try load(generator, raw ?? emaPath)
    try load(discriminator, "\(GANModel.discriminatorFolder)/\(ModelFolder.weightsFile)")
    let exported = try read(emaPath)
    let shadow = try namesG.map { name -> Tensor in
      guard let v = exported[name] else { throw TrainingError.checkpoint("EMA weight \(name) is missing") }
      return try Tensor(v, on: device)
    }
    try ema.importState(shadow: shadow, optimizationStep: emaStep)
  }

  /// Starts from the trained GAN folder `dir` (`--init-from`) instead of the initialisation: its discriminator,
  /// its generator (the trained one of a checkpoint's training_state/, else the EMA one) and its EMA generator.
  /// The optimizers, the EMA's update count and the step start afresh; the configs must be the folder's.
  public func initialize(from dir: URL) throws {
    guard GANModel.isGANFolder(dir) else {
      throw TrainingError.invalidOption("--init-from: \(dir.path) is not a GAN folder")
    }
    guard
      FileManager.default.fileExists(
        atPath: dir.appendingPathComponent("\(GANModel.discriminatorFolder)/\(ModelFolder.weightsFile)").path)
    else {
      throw TrainingError.invalidOption(
        "--init-from: \(dir.path) has no discriminator weights, which training needs")
    }
    try loadWeights(from: dir, emaStep: 0, rawGenerator: "training_state/generator.safetensors")
  }

  /// The instance selection saved with the checkpoint folder `dir` (nil when the run trains on every image).
  public static func savedSelection(in dir: URL) throws -> InstanceSelection.Saved? {
    let url = dir.appendingPathComponent(InstanceSelection.checkpointFile)
    guard FileManager.default.fileExists(atPath: url.path) else { return nil }
    guard let d = try? Data(contentsOf: url),
      let s = try? JSONDecoder().decode(InstanceSelection.Saved.self, from: d)
    else { throw TrainingError.checkpoint("\(url.path) is not an instance selection") }
    return s
  }

  /// The options and configs saved with the latest checkpoint in `outDir`.
  public static func savedState(in outDir: URL) throws -> (
    options: GANTrainingOptions, model: GANModelConfig, generator: GANNetworkConfig,
    discriminator: GANNetworkConfig, state: URL
  ) {
    let dir = try CheckpointWriter.latest(in: outDir)
    let url = dir.appendingPathComponent(CheckpointWriter.stateFile)
    guard let d = try? Data(contentsOf: url),
      let s = try? JSONDecoder().decode(GANCheckpointState.self, from: d)
    else { throw TrainingError.checkpoint("\(url.path) is missing or is not a GAN training state") }
    let (m, g, disc) = try GANModel.readConfigs(dir)
    guard let disc else { throw TrainingError.checkpoint("\(dir.path) has no discriminator") }
    return (s.options, m, g, disc, dir)
  }

  /// Resumes the run whose latest checkpoint is in `outDir`, bit for bit, with what --resume changed (`changes`).
  public static func resume(
    from outDir: URL, data: GANData, device: Device, changes: ResumeChanges = ResumeChanges()
  ) throws
    -> GANTrainer
  {
    let saved = try savedState(in: outDir)
    let dir = saved.state
    let stateURL = dir.appendingPathComponent(CheckpointWriter.stateFile)
    guard let d = try? Data(contentsOf: stateURL),
      let state = try? JSONDecoder().decode(GANCheckpointState.self, from: d)
    else { throw TrainingError.checkpoint("\(stateURL.path) is not a GAN training state") }
    var options = saved.options
    try options.apply(changes)
    let t = try GANTrainer(
      model: saved.model, generator: saved.generator, discriminator: saved.discriminator, data: data,
      options: options, device: device)
    try t.loadWeights(from: dir, emaStep: state.emaStep, rawGenerator: "training_state/generator.safetensors")
    for (opt, file, names, n) in [
      (t.optimizerG, "optimizer_g", t.namesG, state.optimizerStepG),
      (t.optimizerD, "optimizer_d", t.namesD, state.optimizerStepD),
    ] {
      let o = try CheckpointWriter.readFinite("training_state/\(file).safetensors", in: dir)
      try opt.importState(try o.tensors.mapValues { try Tensor($0, on: device) }, step: n, names: names)
    }
    t.step = state.step
    t.selection = try savedSelection(in: dir)
    return t
  }
}

/// training_state/state.json of a GAN run.
struct GANCheckpointState: Codable {
  var family = "gan"
  var step: Int
  var optimizerStepG: Int
  var optimizerStepD: Int
  var emaStep: Int
  var options: GANTrainingOptions
  var device: String
}
