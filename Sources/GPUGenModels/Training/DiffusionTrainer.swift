// Training a UNet2DModel denoiser with the L2 loss (docs/TRAINING.md is the contract this follows).
import Foundation

/// The options every family's training run has (the CLI's shared training option group sets them).
public protocol CommonTrainingOptions {
  /// Training images: fashion-mnist, an IDX file or a PNG folder.
  var data: String { get set }
  /// Optimizer steps in total.
  var steps: Int { get set }
  /// Images per step.
  var batchSize: Int { get set }
  /// Peak learning rate.
  var lr: Double { get set }
  /// Linear learning-rate warmup steps.
  var warmup: Int { get set }
  /// "constant" or "cosine" after the warmup.
  var lrSchedule: String { get set }
  /// EMA decay cap.
  var emaDecay: Double { get set }
  /// Global gradient-norm clip (0: off).
  var clipGrad: Double { get set }
  /// Steps between checkpoints.
  var checkpointEvery: Int { get set }
  /// Steps between sample grids (0: never).
  var sampleEvery: Int { get set }
  /// Seed of every draw.
  var seed: UInt64 { get set }
}

extension CommonTrainingOptions {
  /// Errors for common values no run can use (each names its flag).
  public func validateCommon() throws {
    func bad(_ s: String) -> TrainingError { .invalidOption(s) }
    if steps < 0 { throw bad("--steps must be ≥ 0") }
    if batchSize <= 0 { throw bad("--batch-size must be positive") }
    if !(lr > 0) || !lr.isFinite { throw bad("--lr must be a positive number") }
    if warmup < 0 { throw bad("--warmup must be ≥ 0") }
    if !["constant", "cosine"].contains(lrSchedule) { throw bad("--lr-schedule must be constant or cosine") }
    if !(emaDecay >= 0 && emaDecay < 1) { throw bad("--ema-decay must be in [0, 1)") }
    if !(clipGrad >= 0) || !clipGrad.isFinite { throw bad("--clip-grad must be ≥ 0 (0 disables clipping)") }
    if checkpointEvery <= 0 { throw bad("--checkpoint-every must be positive") }
    if sampleEvery < 0 { throw bad("--sample-every must be ≥ 0 (0 disables sample grids)") }
  }

  /// Applies what --resume changed, then checks the result as a new run's options are checked.
  public mutating func apply(_ changes: ResumeChanges) throws {
    if let v = changes.steps { steps = v }
    if let v = changes.checkpointEvery { checkpointEvery = v }
    if let v = changes.sampleEvery { sampleEvery = v }
    try validateCommon()
  }

  /// Throws unless a training batch fits on `device`, naming --batch-size: `batchSize` samples of
  /// `valuesPerSample` values (a lower bound: the widest activation), `live` such tensors kept for backward.
  public func checkBatchFits(valuesPerSample: Int, live: Int, on device: Device) throws {
    let one = checkedProduct([batchSize, valuesPerSample, 4])
    try MemoryBudget.check(
      one.flatMap { checkedProduct([$0, live]) }, largestBuffer: one,
      for: "a training batch of \(batchSize)", on: device, flag: "--batch-size")
  }
}

/// What `--resume` may change in a saved run: the total step count and how often checkpoints and sample grids
/// are written. None of them enters the arithmetic, so the resumed run stays bitwise identical to one that was
/// never stopped.
public struct ResumeChanges: Equatable, Sendable {
  /// A new total step count.
  public var steps: Int?
  /// A new checkpoint interval in steps.
  public var checkpointEvery: Int?
  /// A new sample-grid interval in steps (0: never).
  public var sampleEvery: Int?
  /// The changes; nil keeps the saved value.
  public init(steps: Int? = nil, checkpointEvery: Int? = nil, sampleEvery: Int? = nil) {
    self.steps = steps
    self.checkpointEvery = checkpointEvery
    self.sampleEvery = sampleEvery
  }
}

/// Everything that defines a training run (saved in each checkpoint's state.json).
public struct DiffusionTrainingOptions: Codable, Equatable, Sendable, CommonTrainingOptions {
  public var data = "fashion-mnist"
  public var steps = 20_000
  public var batchSize = 64
  public var lr = 1e-4
  public var warmup = 500
  /// "constant" or "cosine" (after the warmup).
  public var lrSchedule = "constant"
  /// "epsilon" or "v_prediction".
  public var prediction = "epsilon"
  public var emaDecay = 0.9999
  public var emaWarmup = false
  public var clipGrad = 1.0
  public var weightDecay = 0.0
  public var checkpointEvery = 500
  public var sampleEvery = 500
  public var seed: UInt64 = 0
  /// Classifier-free guidance training (`--class-dropout p`): each sample's label is replaced by the model's
  /// null label with probability p. nil (absent from older checkpoints) and 0 train plainly.
  public var classDropout: Double? = nil

  public init() {}

  /// Errors for values no run can use.
  public func validate() throws {
    try validateCommon()
    if !["epsilon", "v_prediction"].contains(prediction) {
      throw TrainingError.invalidOption("--prediction must be epsilon or v (v_prediction)")
    }
    if !(weightDecay >= 0) || !weightDecay.isFinite {
      throw TrainingError.invalidOption("--weight-decay must be ≥ 0")
    }
    if let p = classDropout, !(p >= 0 && p <= 1) {
      throw TrainingError.invalidOption("--class-dropout must be in [0, 1], got \(p)")
    }
  }
}

/// Why training stopped early.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
  case invalidOption(String)
  /// A NaN or Inf appeared; `term` names it (the loss, or the gradient of a parameter).
  case diverged(step: Int, term: String, value: Float)
  case checkpoint(String)

  public var description: String {
    switch self {
    case .invalidOption(let s): return s
    case .diverged(let step, let term, let value):
      return "training diverged at step \(step): \(term) is \(value); the last checkpoint is intact"
    case .checkpoint(let s): return "checkpoint: \(s)"
    }
  }
}

/// One optimizer step's figures.
public struct TrainingStepStats: Sendable {
  public var step: Int
  public var loss: Float
  public var lr: Float
  public var gradNorm: Float
  public var emaDecay: Double
}

/// A training run: the model, its optimizer and EMA, the data and the step counter.
public final class DiffusionTrainer {
  public let config: UNet2DConfig
  public let options: DiffusionTrainingOptions
  public let schedulerJSON: [String: Any]
  /// `schedulerJSON` as the text SchedulerConfig parses (for the training schedule and sampling plans).
  let schedulerText: String
  public let device: Device
  public let unet: UNet2D
  public let names: [String]
  public let parameters: [Tensor]
  public let optimizer: Optimizer
  public let ema: EMA
  public let schedule: NoiseSchedule
  let learningRate: LearningRate
  let data: TrainingImages
  /// Optimizer steps done.
  public internal(set) var step = 0
  /// The training data's fingerprint (`TrainingImages.fingerprint`).
  public var dataFingerprint: String { data.fingerprint }
  /// The processes that share each global batch (one by default).
  public var parallel = DataParallel.single
  private lazy var batches = EpochBatches(seed: options.seed, count: data.count, batchSize: options.batchSize)

  /// The DDPM scheduler config a new run writes (linear betas, 1000 steps; trailing spacing so that
  /// few-step samplers start at the last timestep).
  public static func defaultSchedulerJSON(prediction: String) -> [String: Any] {
    [
      "_class_name": "DDPMScheduler", "num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02,
      "beta_schedule": "linear", "variance_type": "fixed_small", "clip_sample": true,
      "clip_sample_range": 1.0, "prediction_type": prediction, "timestep_spacing": "trailing",
      "steps_offset": 0, "rescale_betas_zero_snr": false, "thresholding": false,
    ]
  }

  /// A new run: PyTorch's default initialisation drawn from Philox (docs/TRAINING.md).
  public convenience init(
    config: UNet2DConfig, data: TrainingImages, options: DiffusionTrainingOptions, device: Device
  ) throws {
    let weights = try DiffusionTrainer.initialWeights(config: config, seed: options.seed)
    try self.init(
      config: config, schedulerJSON: DiffusionTrainer.defaultSchedulerJSON(prediction: options.prediction),
      weights: weights, data: data, options: options, device: device)
  }

  init(
    config: UNet2DConfig, schedulerJSON: [String: Any], weights: [String: TensorData], data: TrainingImages,
    options: DiffusionTrainingOptions, device: Device
  ) throws {
    try options.validate()
    guard data.channels == config.inChannels, data.size == config.sampleSize else {
      throw TrainingError.invalidOption(
        "the data is \(data.channels)×\(data.size)×\(data.size) but the model expects "
          + "\(config.inChannels)×\(config.sampleSize)×\(config.sampleSize)")
    }
    guard data.count >= options.batchSize else {
      throw TrainingError.invalidOption(
        "--batch-size \(options.batchSize) is larger than the dataset (\(data.count) images)")
    }
    try options.checkBatchFits(
      valuesPerSample: (config.blockOutChannels.max() ?? 1) * config.sampleSize * config.sampleSize, live: 16,
      on: device)
    if let k = config.numClassEmbeds {
      guard data.labels != nil else {
        throw TrainingError.invalidOption("the model is class-conditional but the data has no labels")
      }
      let real = config.realClassCount ?? k
      guard data.classCount <= real else {
        throw TrainingError.invalidOption(
          "the data has \(data.classCount) classes but the model embeds \(real)"
            + (config.hasNullClass ? " (and the null label)" : ""))
      }
    }
    if let p = options.classDropout, p > 0, config.nullClassLabel == nil {
      throw TrainingError.invalidOption(
        "--class-dropout needs a class-conditional model with a null label (--class-conditional)")
    }
    self.config = config
    self.options = options
    self.schedulerJSON = schedulerJSON
    self.device = device
    self.data = data
    unet = try UNet2D(
      config: config, weights: { name, _ in weights[name].map { ($0.shape, $0.values) } },
      names: Array(weights.keys), device: device)
    names = unet.parameters.map(\.name)
    parameters = unet.parameters.map(\.tensor)
    optimizer = try Optimizer(
      parameters: parameters,
      config: .adamW(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: options.weightDecay))
    ema = try EMA(
      parameters: parameters, maxDecay: options.emaDecay, useWarmup: options.emaWarmup, invGamma: 1,
      power: 0.75)
    schedulerText = String(
      decoding: try JSONSerialization.data(withJSONObject: schedulerJSON, options: [.sortedKeys]),
      as: UTF8.self)
    schedule = try NoiseSchedule(config: try SchedulerConfig(json: schedulerText, family: .ddpm))
    learningRate = LearningRate(
      base: options.lr, warmupSteps: options.warmup,
      schedule: options.lrSchedule == "cosine" ? .cosine(totalSteps: options.steps) : .constant)
  }

  /// A new run whose weights start from `start` (`--init-from`: a trained model's weights) instead of the
  /// initialisation; optimizer, EMA (a copy of the weights) and step start afresh. See `mergedWeights`.
  public convenience init(
    config: UNet2DConfig, schedulerJSON: [String: Any], startingFrom start: [String: TensorData],
    data: TrainingImages, options: DiffusionTrainingOptions, device: Device
  ) throws {
    let fresh = try DiffusionTrainer.initialWeights(config: config, seed: options.seed)
    try self.init(
      config: config, schedulerJSON: schedulerJSON,
      weights: try DiffusionTrainer.mergedWeights(start, into: fresh), data: data, options: options,
      device: device)
  }

  /// `start`'s tensors over the run's initial weights `fresh`: every tensor of `fresh` must be in `start`
  /// with its shape, except that a tensor may have fewer rows (axis 0) in `start` — the class embedding
  /// gaining the null label — and then its remaining rows keep `fresh`'s values (nn.Embedding's N(0, 1),
  /// drawn from Philox as `initialWeights` draws them). Anything else is an error naming the tensor.
  public static func mergedWeights(_ start: [String: TensorData], into fresh: [String: TensorData]) throws
    -> [String: TensorData]
  {
    let extra = Set(start.keys).subtracting(fresh.keys)
    if let name = extra.sorted().first {
      throw TrainingError.invalidOption("--init-from: the model has a tensor \(name) the run's UNet lacks")
    }
    var out = fresh
    for (name, f) in fresh {
      guard let s = start[name] else {
        throw TrainingError.invalidOption("--init-from: the model lacks \(name)")
      }
      if s.shape == f.shape {
        out[name] = s
      } else if s.shape.count == f.shape.count, !s.shape.isEmpty, s.shape[0] < f.shape[0],
        s.shape.dropFirst() == f.shape.dropFirst()
      {
        var v = f.values
        v.replaceSubrange(0..<s.values.count, with: s.values)
        out[name] = TensorData(shape: f.shape, values: v)
      } else {
        throw TrainingError.invalidOption(
          "--init-from: \(name) is \(s.shape) in the model but \(f.shape) in the run")
      }
    }
    return out
  }

  /// Labels with class dropout applied: row i (sample `firstSample + i` of global step `step`'s batch) becomes
  /// `nullLabel` where its uniform u (`Streams.classDropout`, counter (0, sample, step)) is ≤ p, so the choice
  /// depends on the global sample index only, never on the batch split or the device.
  public static func droppingClasses(
    _ labels: [Int], nullLabel: Int, p: Double, seed: UInt64, step: Int, firstSample: Int
  ) throws -> [Int] {
    guard p > 0, !labels.isEmpty else { return labels }
    let u = try Tensor.randomUniform(
      shape: [labels.count], seed: seed, step: step, stream: Streams.classDropout, firstSample: firstSample,
      on: .cpu
    ).toArray()
    return zip(labels, u).map { Double($1) <= p ? nullLabel : $0 }
  }

  /// PyTorch's default initialisation for every parameter of `config`, drawn from Philox stream
  /// 20 + i for the i-th parameter in name order (`Module.initialize`).
  public static func initialWeights(config: UNet2DConfig, seed: UInt64) throws -> [String: TensorData] {
    // A build on the CPU with placeholder values, then the Module initialisation.
    let unet = try Tape.noGrad {
      try UNet2D(
        config: config, weights: { _, shape in (shape, [Float](repeating: 0, count: shape.reduce(1, *))) },
        names: [], device: .cpu)
    }
    try unet.initialize(seed: seed)
    return Dictionary(
      uniqueKeysWithValues: try unet.namedParameters.map { ($0.name, try $0.tensor.toTensorData()) })
  }

  // MARK: Data, timesteps and noise (docs/TRAINING.md)

  /// The dataset indices of global step `s`'s batch.
  public func batchIndices(step s: Int) -> [Int] {
    batches.indices(step: s)
  }

  /// The stable argsort of Philox words (stream 10): epoch `epoch`'s order of `count` images.
  public static func epochOrder(seed: UInt64, count: Int, epoch: Int) -> [Int] {
    let key = Philox4x32.key(seed: seed)
    let keys = (0..<count).map { i in
      Philox4x32.block(counter: SIMD4(0, UInt32(i), UInt32(epoch), UInt32(Streams.dataOrder)), key: key)[0]
    }
    return (0..<count).sorted { keys[$0] != keys[$1] ? keys[$0] < keys[$1] : $0 < $1 }
  }

  /// The training timesteps of global step `s` (stream 11).
  public static func timesteps(seed: UInt64, batch: Int, step s: Int, trainSteps: Int) -> [Int] {
    let key = Philox4x32.key(seed: seed)
    return (0..<batch).map { j in
      Int(
        Philox4x32.block(
          counter: SIMD4(0, UInt32(j), UInt32(s), UInt32(Streams.diffusionTimesteps)), key: key)[0]
          % UInt32(trainSteps))
    }
  }

  /// The forward process on a batch x0 (N, …) at timesteps t (N): x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε with ε keyed by
  /// (seed, sample, step, `Streams.diffusionNoise`), and the regression target (ε, or v = √ᾱ·ε − √(1 − ᾱ)·x0).
  /// Row i is sample `firstSample + i` of the global batch.
  public static func noisedBatch(
    _ x0: Tensor, timesteps t: [Int], seed: UInt64, step s: Int, schedule: NoiseSchedule, prediction: String,
    firstSample: Int = 0
  ) throws -> (xt: Tensor, target: Tensor) {
    let device = x0.device
    let noise = try Tensor.randomNormal(
      shape: x0.shape, seed: seed, step: s, stream: Streams.diffusionNoise, firstSample: firstSample,
      on: device)
    let a = t.map { Float(schedule.alphasCumprod[$0]).squareRoot() }
    let sg = t.map { Float(1 - schedule.alphasCumprod[$0]).squareRoot() }
    let column = [t.count] + Array(repeating: 1, count: x0.rank - 1)
    let at = try Tensor(a, shape: column, on: device), st = try Tensor(sg, shape: column, on: device)
    let xt = try x0 * at + noise * st
    return (xt, prediction == "v_prediction" ? try noise * at - x0 * st : noise)
  }

  // MARK: Training

  /// One optimizer step. Throws `TrainingError.diverged` (before touching the weights) on a NaN/Inf.
  /// Under data parallelism this rank computes its share of the global batch, and the loss and gradients
  /// are averaged over the ranks.
  public func trainStep() throws -> TrainingStepStats {
    let s = step
    let share = try parallel.share(ofBatch: options.batchSize)
    let b = share.count
    let per = data.imageElements
    let idx = Array(batchIndices(step: s)[share])
    var x0v = [Float](repeating: 0, count: b * per)
    data.images.withUnsafeBufferPointer { src in
      x0v.withUnsafeMutableBufferPointer { dst in
        for (row, i) in idx.enumerated() {
          (dst.baseAddress! + row * per).update(from: src.baseAddress! + i * per, count: per)
        }
      }
    }
    let shape = [b, data.channels, data.size, data.size]
    let x0 = try Tensor(x0v, shape: shape, on: device)
    let t = Array(
      DiffusionTrainer.timesteps(
        seed: options.seed, batch: options.batchSize, step: s, trainSteps: schedule.numTrainTimesteps)[share])
    let (xt, target) = try DiffusionTrainer.noisedBatch(
      x0, timesteps: t, seed: options.seed, step: s, schedule: schedule, prediction: options.prediction,
      firstSample: share.lowerBound)
    var labels = config.numClassEmbeds != nil ? idx.map { data.labels![$0] } : nil
    if let l = labels, let p = options.classDropout, let null = config.nullClassLabel {
      labels = try DiffusionTrainer.droppingClasses(
        l, nullLabel: null, p: p, seed: options.seed, step: s, firstSample: share.lowerBound)
    }

    let tape = Tape()
    tape.watch(parameters)
    let loss = try tape.record {
      try Tensor.mseLoss(try unet(xt, timesteps: t.map(Double.init), classLabels: labels), target)
    }
    let lossValue = try parallel.average(try loss.toArray())[0]
    guard lossValue.isFinite else {
      tape.reset()
      throw TrainingError.diverged(step: s + 1, term: "the loss (MSE)", value: lossValue)
    }
    let grads = try parallel.averageGradients(
      try zip(tape.gradients(of: loss, wrt: parameters), names).map { g, name in
        guard let g else { throw TrainingError.invalidOption("parameter \(name) got no gradient") }
        return g
      })
    let clip = try Optimizer.clipOrStop(grads: grads, names: names, maxNorm: options.clipGrad, step: s + 1)
    let lr = learningRate.value(at: s + 1)  // step s trains at lr·min(1, (s+1)/warmup)
    try optimizer.step(grads: grads, lr: lr, gradScale: clip.scale)
    let decay = try ema.step(parameters: parameters)
    step += 1
    return TrainingStepStats(step: step, loss: lossValue, lr: lr, gradNorm: clip.norm, emaDecay: decay)
  }

  /// The plan of a `kind` sampler with `steps` steps on this run's noise schedule.
  public func samplingPlan(_ kind: SamplerKind, steps: Int) throws -> SamplingPlan {
    let c = try SchedulerConfig(json: schedulerText, family: kind.family)
    return try SamplerPlanner.plan(kind, schedule: try NoiseSchedule(config: c), steps: steps)
  }

  /// A UNet holding the EMA weights (for sample grids).
  public func emaUNet() throws -> UNet2D {
    let values = try Dictionary(
      uniqueKeysWithValues: zip(names, ema.shadow).map { ($0, try $1.toTensorData()) })
    return try Tape.noGrad {
      try UNet2D(
        config: config, weights: { name, _ in values[name].map { ($0.shape, $0.values) } }, names: names,
        device: device)
    }
  }
}
