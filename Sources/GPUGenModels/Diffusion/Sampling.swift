// The sampling loop: initial noise, one UNet evaluation and one fused update per planned step.
import Foundation

/// A sampler's whole schedule as a list of model evaluations, each followed by a fused update.
public struct SamplingPlan: Sendable {
  /// One model evaluation and the update that follows it.
  public struct Evaluation: Sendable {
    /// The timestep passed to the model.
    public var timestep: Double
    /// The model sees `inputScale · x` (Euler-family samplers scale by 1/√(σ²+1)).
    public var inputScale: Double
    /// The fused update applied after the evaluation.
    public var update: SamplerUpdate
    /// Whether this update draws fresh noise.
    public var stochastic: Bool { update.cz != 0 }
  }

  /// The initial noise is N(0, 1) · initNoiseSigma.
  public var initNoiseSigma: Double
  /// The model evaluations, in order.
  public var evaluations: [Evaluation]
  /// With `SampleRequest.images`, the start is imageScale · image + initNoiseSigma · noise (img2img).
  public var imageScale: Double = 0
  /// Evaluation i's fresh noise is keyed by step firstStep + i + 1 (a cut schedule keeps the full one's keys).
  public var firstStep = 0
}

/// What to sample.
public struct SampleRequest: Sendable {
  /// Number of images.
  public var count: Int
  /// Images per UNet batch.
  public var batchSize: Int
  public var seed: UInt64
  /// Class label per image (cycled), for class-conditional models.
  public var classLabels: [Int]?
  /// Initial noise (count × C × H × W, N(0, 1) before scaling), instead of Philox noise.
  public var initialNoise: [Float]?
  /// Images (count × C × H × W) the plan's `imageScale` mixes into the start (img2img).
  public var images: [Float]?

  /// A request; `images` only matters to a plan with an `imageScale`.
  public init(
    count: Int, batchSize: Int, seed: UInt64, classLabels: [Int]? = nil, initialNoise: [Float]? = nil,
    images: [Float]? = nil
  ) {
    (self.count, self.batchSize, self.seed, self.classLabels, self.initialNoise, self.images) = (
      count, batchSize, seed, classLabels, initialNoise, images
    )
  }
}

/// The device memory one model call on a batch needs at once, as its denoiser estimates it (a lower bound).
public struct ActivationEstimate: Sendable, Equatable {
  /// The bytes live at once (nil: more than `Int` can count).
  public var bytes: Int?
  /// The largest single buffer among them (nil: more than `Int` can count).
  public var largestBuffer: Int?
  /// What needs them, for the message ("a batch of 8 images through the UNet").
  public var what: String

  /// An estimate of `bytes` in all, `largestBuffer` at most in one buffer, for `what`.
  public init(bytes: Int?, largestBuffer: Int?, what: String) {
    (self.bytes, self.largestBuffer, self.what) = (bytes, largestBuffer, what)
  }

  /// Throws unless the estimate fits on `device` (see `MemoryBudget.check`), naming --batch-size.
  public func check(on device: Device) throws {
    try MemoryBudget.check(bytes, largestBuffer: largestBuffer, for: what, on: device, flag: "--batch-size")
  }
}

/// A model the samplers can drive: ε̂ (or v̂ / x̂₀) for a batch at one timestep.
public protocol Denoiser {
  /// The device the model runs on.
  var device: Device { get }
  /// (C, H, W) of one sample.
  var imageShape: [Int] { get }
  /// Number of classes when class-conditional, else nil.
  var classCount: Int? { get }
  /// Evaluates the model on x (N, C, H, W).
  func callAsFunction(_ x: Tensor, timesteps: [Double], classLabels: [Int]?) throws -> Tensor
  /// The device memory one call on a batch of `batch` samples needs at once; nil when the model gives none.
  func activationEstimate(batch: Int) -> ActivationEstimate?
}

extension Denoiser {
  /// No estimate (models small enough that any batch whose result fits in RAM fits).
  public func activationEstimate(batch: Int) -> ActivationEstimate? { nil }
}

extension UNet2D: Denoiser {
  public var imageShape: [Int] { [config.inChannels, config.sampleSize, config.sampleSize] }
  public var classCount: Int? { config.realClassCount }

  /// A batch's widest activation (level i holds block_out_channels[i] channels at sample_size / 2^i), and
  /// three such live at once (a convolution's input, its output and the residual): a lower bound, as the
  /// convolution workspaces run in chunks that fit (issue #14).
  public func activationEstimate(batch: Int) -> ActivationEstimate? {
    var widest = Swift.max(config.inChannels, config.outChannels) * config.sampleSize * config.sampleSize
    for (i, c) in config.blockOutChannels.enumerated() {
      let side = Swift.max(config.sampleSize >> Swift.min(i, 62), 1)
      widest = Swift.max(widest, checkedProduct([c, side, side]) ?? Int.max)
    }
    let one = checkedProduct([batch, widest, 4])
    return ActivationEstimate(
      bytes: one.flatMap { checkedProduct([$0, 3]) }, largestBuffer: one,
      what: "a batch of \(batch) images through the UNet")
  }
}

/// Runs plans with a denoiser.
public struct DiffusionSampler {
  public let unet: any Denoiser
  public let plan: SamplingPlan

  public init(unet: any Denoiser, plan: SamplingPlan) {
    self.unet = unet
    self.plan = plan
  }

  /// The (C, H, W) of one image.
  public var imageShape: [Int] { unet.imageShape }

  /// Samples `request.count` images; returns (count, C, H, W) values. `progress` is called after
  /// every model evaluation; `trajectory` (if given) receives x̂₀ of the first batch after each step.
  public func sample(
    _ request: SampleRequest, progress: (Int) -> Void = { _ in },
    trajectory: ((Int, Tensor) throws -> Void)? = nil
  ) throws -> [Float] {
    let device = unet.device
    let per = imageShape.reduce(1, *)
    guard request.count > 0, request.batchSize > 0 else {
      throw ModelError.input("--n and --batch-size must be positive")
    }
    // What one model call on a batch needs must fit on the device (a guided model's call runs on twice the
    // batch: it reports that).
    try unet.activationEstimate(batch: Swift.min(request.batchSize, request.count))?.check(on: device)
    // The result is held on the host: check it fits before anything is allocated.
    try MemoryBudget.check(
      checkedProduct([request.count, per, 4]), for: "\(request.count) images of \(imageShape) (the result)",
      on: Device.cpu, flag: "--n")
    if let noise = request.initialNoise, noise.count != request.count * per {
      throw ModelError.input(
        "initial noise has \(noise.count) values; \(request.count) images of \(imageShape) need \(request.count * per)"
      )
    }
    if let images = request.images, images.count != request.count * per {
      throw ModelError.input(
        "\(images.count) image values given; \(request.count) images of \(imageShape) need \(request.count * per)"
      )
    }
    if unet.classCount != nil && (request.classLabels ?? []).isEmpty {
      throw ModelError.input("this model is class-conditional: give --class")
    }
    if unet.classCount == nil && request.classLabels != nil {
      throw ModelError.input("--class was given but this model is not class-conditional")
    }
    var result = [Float]()
    result.reserveCapacity(request.count * per)
    var start = 0
    while start < request.count {
      let n = Swift.min(request.batchSize, request.count - start)
      let batch = try run(request, start: start, count: n, progress: progress, trajectory: trajectory)
      // One pass over values already on the host: a non-finite image stops the run (exit status 3). The
      // batch is then run again, checked after every step, to say where the first NaN or Inf appeared.
      if batch.contains(where: { !$0.isFinite }) {
        throw try locateNonFinite(request, start: start, count: n)
      }
      result += batch
      start += n
    }
    return result
  }

  /// Runs images start..<start+count of `request` through every step; with `check`, throws at the first step
  /// whose model output or sample holds a non-finite value.
  func run(
    _ request: SampleRequest, start: Int, count n: Int, progress: (Int) -> Void,
    trajectory: ((Int, Tensor) throws -> Void)?, check: Bool = false
  ) throws -> [Float] {
    let device = unet.device
    let per = imageShape.reduce(1, *)
    let shape = [n] + imageShape
    var x: Tensor
    if let noise = request.initialNoise {
      x = try Tensor(Array(noise[(start * per)..<((start + n) * per)]), shape: shape, on: device)
    } else {
      x = try Tensor.randomNormal(
        shape: shape, seed: request.seed, step: 0, stream: Streams.sampling, firstSample: start, on: device)
    }
    if plan.initNoiseSigma != 1 { x = try x.mul(Float(plan.initNoiseSigma)) }
    if let images = request.images, plan.imageScale != 0 {
      let image = try Tensor(Array(images[(start * per)..<((start + n) * per)]), shape: shape, on: device)
      x = try x.add(plan.imageScale == 1 ? image : try image.mul(Float(plan.imageScale)))
    }
    let labels = request.classLabels.map { l in (0..<n).map { l[(start + $0) % l.count] } }
    let keep = Swift.max(plan.evaluations.map(\.update.historyDepth).max() ?? 1, 1)
    var history: [Tensor] = []  // the auxiliary outputs so far, newest first (as many as the plan reads)
    func checked(_ t: Tensor, _ name: String, _ step: Int) throws {
      guard check else { return }
      let v = try t.toArray()
      if let i = v.firstIndex(where: { !$0.isFinite }) {
        throw NonFiniteError(
          tensor: name, step: step, of: plan.evaluations.count, image: start + i / per, value: v[i])
      }
    }
    for (s, e) in plan.evaluations.enumerated() {
      let input = e.inputScale == 1 ? x : try x.mul(Float(e.inputScale))
      let m = try unet(input, timesteps: [e.timestep], classLabels: labels)
      try checked(m, "the model output", s + 1)
      if let trajectory, start == 0 {
        var u = SamplerUpdate()
        (u.ax, u.am, u.clipRange, u.c0) = (e.update.ax, e.update.am, e.update.clipRange, 1)
        u.threshold = e.update.threshold
        try trajectory(
          s, try Tensor.samplerStep(x: x, modelOutput: m, prev: nil, update: u, seed: 0, step: 0).out)
      }
      let r = try Tensor.samplerStep(
        x: x, modelOutput: m, prev: history.first, older: Array(history.dropFirst()), update: e.update,
        seed: request.seed,
        step: plan.firstStep + s + 1,
        stream: Streams.sampling,
        firstSample: start)
      x = r.out
      try checked(x, "the sample", s + 1)
      if let aux = r.aux { history = Array(([aux] + history).prefix(keep)) }
      // OpenCL runs ahead of the host: wait for the step so the progress bar reports real steps/s.
      try device.backend.synchronize()
      progress(1)
    }
    return try x.toArray()
  }

  /// The error for a batch whose images came out non-finite: the batch run again, checked at every step.
  func locateNonFinite(_ request: SampleRequest, start: Int, count n: Int) throws -> NonFiniteError {
    do {
      _ = try run(request, start: start, count: n, progress: { _ in }, trajectory: nil, check: true)
    } catch let e as NonFiniteError { return e }
    // A rerun that stays finite (it should not: sampling is deterministic) still refuses the output.
    return NonFiniteError(
      tensor: "the output", step: nil, of: plan.evaluations.count, image: start, value: .nan)
  }
}

/// A run produced NaN or ±Inf (exit status 3): where it first appeared.
public struct NonFiniteError: Error, CustomStringConvertible, Equatable {
  /// Which tensor: "the model output", "the sample", or a family's output ("the decoder output", …).
  public var tensor: String
  /// The 1-based step it appeared at (nil: found only at the end).
  public var step: Int?
  /// The run's number of steps.
  public var of: Int
  /// The first image that holds it.
  public var image: Int
  /// The value found.
  public var value: Float

  /// Names the tensor, step and image.
  public init(tensor: String, step: Int?, of: Int, image: Int, value: Float) {
    (self.tensor, self.step, self.of, self.image, self.value) = (tensor, step, of, image, value)
  }

  /// Throws for the first non-finite value of `values` (a batch whose first image is `firstImage`, of
  /// `perImage` values each), found only at the end of a run of `steps` steps (1: a single pass).
  public static func check(
    _ values: [Float], tensor: String, firstImage: Int, perImage: Int, steps: Int = 1
  ) throws {
    guard let i = values.firstIndex(where: { !$0.isFinite }) else { return }
    throw NonFiniteError(
      tensor: tensor, step: nil, of: steps, image: firstImage + i / Swift.max(perImage, 1), value: values[i])
  }

  /// The one-line message.
  public var description: String {
    let at = step.map { " at step \($0) of \(of)" } ?? ""
    return "non-finite value (\(value)) in \(tensor)\(at), image \(image); no output was written"
  }
}
