// Inpainting with RePaint (Lugmayr et al. 2022), as diffusers' RePaintScheduler and RePaintPipeline run it:
// at every step the model's DDIM-style update fills the unknown region, the known region is noised to the same
// level with q(x_{t−1} | x₀) = N(√ᾱ_{t−1}·x₀, (1 − ᾱ_{t−1})·I), and the two are merged by the mask; resampling
// jumps go back up the schedule J steps at a time, R times, so the filled region can harmonise with the known.
import Foundation

/// RePaint inpainting: masks, the jump schedule, the per-step updates and the sampling loop.
public enum Inpainting {
  /// Which mask pixels mark the known region.
  public enum MaskConvention: String, CaseIterable, Sendable {
    /// White (≥ 0.5) pixels are kept as given, black ones filled (diffusers' RePaintPipeline: 1 = known).
    case whiteKeeps = "white-keeps"
    /// White (≥ 0.5) pixels are filled, black ones kept (the convention of most image editors' masks).
    case whiteFills = "white-fills"
  }

  /// Masks made from the image size alone, for benchmarking.
  public enum MaskPreset: String, CaseIterable, Sendable {
    /// The bottom half is filled (rows ≥ H/2), the top half kept.
    case half
    /// The central H/2 × W/2 square is filled.
    case center
    /// Every second row (the odd rows) is filled.
    case lines
    /// ×2 super-resolution: only the pixels at even row and even column are kept.
    case sr2

    /// The keep mask (H × W, 1 = known, 0 = filled).
    public func keepMask(height h: Int, width w: Int) -> [Float] {
      var m = [Float](repeating: 1, count: h * w)
      for y in 0..<h {
        for x in 0..<w {
          let fill: Bool
          switch self {
          case .half: fill = y >= h / 2
          case .center: fill = y >= h / 4 && y < h / 4 + h / 2 && x >= w / 4 && x < w / 4 + w / 2
          case .lines: fill = y % 2 == 1
          case .sr2: fill = y % 2 == 1 || x % 2 == 1
          }
          if fill { m[y * w + x] = 0 }
        }
      }
      return m
    }
  }

  /// Binarises mask values in [0, 1] (≥ 0.5 is white, as diffusers' `_preprocess_mask`) into a keep mask
  /// (1 = known) under `convention`.
  public static func keepMask(_ values: [Float], convention: MaskConvention) -> [Float] {
    values.map { v in (v >= 0.5) == (convention == .whiteKeeps) ? 1 : 0 }
  }

  /// The timestep list of diffusers' `RePaintScheduler.set_timesteps(N, jump_length, jump_n_sample)`: N
  /// steps down from (N − 1)·T/N, and at every J-th step below N − J a jump J steps back up, taken R − 1 times.
  public static func timesteps(
    numInferenceSteps steps: Int, jumpLength j: Int, jumpNSample r: Int, numTrainTimesteps T: Int
  ) throws -> [Int] {
    guard steps >= 1 else { throw ModelError.input("--steps must be at least 1, got \(steps)") }
    guard j >= 1 else { throw ModelError.input("--jump-length J must be at least 1, got \(j)") }
    guard r >= 1 else { throw ModelError.input("--jump-n-sample R must be at least 1, got \(r)") }
    let n = Swift.min(T, steps)
    var jumps: [Int: Int] = [:]
    for k in stride(from: 0, to: n - j, by: j) { jumps[k] = r - 1 }
    var list: [Int] = []
    var t = n
    while t >= 1 {
      t -= 1
      list.append(t)
      if let left = jumps[t], left > 0 {
        jumps[t] = left - 1
        for _ in 0..<j {
          t += 1
          list.append(t)
        }
      }
    }
    return list.map { $0 * (T / n) }
  }

  /// One action of a RePaint run.
  public enum Action: Sendable, Equatable {
    /// Evaluate the model at `timestep`; the filled region takes `unknown` (x, model output), the known
    /// region `known` (applied to the original image, drawing the same noise), merged by the mask.
    case denoise(timestep: Int, unknown: SamplerUpdate, known: SamplerUpdate)
    /// Go back up the schedule (diffusers' `undo_step` from `timestep`): x ← √a·x + √(1 − a)·z.
    case undo(timestep: Int, update: SamplerUpdate)
  }

  /// A whole RePaint run: its actions in order.
  public struct Plan: Sendable {
    /// The actions; action k draws its noise at Philox step k + 1 (the initial noise is step 0).
    public var actions: [Action]
    /// How many model evaluations the plan makes per image.
    public var modelEvaluations: Int {
      actions.reduce(0) { n, a in if case .denoise = a { return n + 1 } else { return n } }
    }
  }

  /// The scheduler config as diffusers' `RePaintScheduler.from_config` reads a model's scheduler_config.json
  /// (its betas and clip_sample; RePaint clips to ±1 and has no zero-SNR rescaling), or RePaint's defaults.
  /// The prediction type is kept, so v- and x₀-prediction models inpaint correctly (diffusers' RePaint assumes ε).
  /// `bounding` overrides clip_sample; its dynamic thresholding (which diffusers' RePaint lacks) acts on the
  /// denoising steps' x̂₀ as DDPM's does.
  public static func config(schedulerConfig url: URL?, bounding: X0Bounding = .scheduler) throws
    -> SchedulerConfig
  {
    var c: SchedulerConfig
    if let url {
      c = try SchedulerConfig(contentsOf: url, family: .ddpm)  // clip_sample defaults to true, as RePaint's
    } else {
      c = SchedulerConfig(family: .ddpm)
    }
    c.clipSampleRange = 1
    c.rescaleBetasZeroSNR = false
    c = try bounding.applied(to: c, sampler: "inpaint")
    try c.validate()
    return c
  }

  /// The plan of diffusers' RePaint loop with `steps` steps, jumps of `jumpLength` taken `jumpNSample` − 1
  /// times, and DDIM's η (`eta`: 0 deterministic in the filled region, 1 DDPM-like).
  public static func plan(
    schedule: NoiseSchedule, steps: Int, jumpLength: Int, jumpNSample: Int, eta: Double = 0
  ) throws -> Plan {
    try SamplingBounds.checkEta(eta)
    let c = schedule.config
    let T = c.numTrainTimesteps
    let list = try timesteps(
      numInferenceSteps: steps, jumpLength: jumpLength, jumpNSample: jumpNSample, numTrainTimesteps: T)
    let stride = T / Swift.min(T, steps)
    let ac = schedule.alphasCumprod, betas = schedule.betas
    let r = schedule.precision.round
    var actions: [Action] = []
    var tLast = list[0] + 1
    for t in list {
      if t < tLast {
        let prev = t - stride
        let a = ac[t], aPrev = prev >= 0 ? ac[prev] : 1
        var u = SamplerUpdate()
        SamplerPlanner.discretePrediction(c.predictionType, a: a, r: r, into: &u)
        u.threshold = c.dynamicThreshold
        u.clipRange = u.threshold == nil && c.clipSample ? c.clipSampleRange : nil
        let variance = r(r(r(1 - aPrev) / r(1 - a)) * r(1 - r(a / aPrev)))
        let std = r(eta * r(variance.squareRoot()))
        u.c0 = r(aPrev.squareRoot())
        u.ce = r(Swift.max(r(r(1 - aPrev) - r(std * std)), 0).squareRoot())
        u.cz = t > 0 && eta > 0 ? std : 0
        var k = SamplerUpdate()
        k.cx = r(aPrev.squareRoot())
        k.cz = r(r(1 - aPrev).squareRoot())
        actions.append(.denoise(timestep: t, unknown: u, known: k))
      } else {
        guard tLast + stride <= T else {
          throw ModelError.input("undo step from \(tLast) leaves the \(T) training steps")
        }
        // diffusers takes T/N single-β steps; their product is one Gaussian step with the same mean and variance.
        var a = 1.0
        for i in 0..<stride { a *= 1 - betas[tLast + i] }
        var u = SamplerUpdate()
        u.cx = a.squareRoot()
        u.cz = (1 - a).squareRoot()
        actions.append(.undo(timestep: tLast, update: u))
      }
      tLast = t
    }
    return Plan(actions: actions)
  }

  /// What to inpaint.
  public struct Request: Sendable {
    /// The images (count × C × H × W, values in [−1, 1]).
    public var images: [Float]
    /// Number of images.
    public var count: Int
    /// The keep mask (1 = known, 0 = filled): H × W for every image, or count × H × W, one per image.
    public var keep: [Float]
    /// Images per model batch.
    public var batchSize: Int
    /// The seed of the noise: image i at action k draws Philox (seed, i, k + 1, `Streams.sampling`).
    public var seed: UInt64
    /// Class labels cycled over the images (class-conditional models).
    public var classLabels: [Int]?

    /// A request for `count` images with `keep` (H × W or count × H × W, 1 = known).
    public init(
      images: [Float], count: Int, keep: [Float], batchSize: Int, seed: UInt64, classLabels: [Int]? = nil
    ) {
      (self.images, self.count, self.keep, self.batchSize, self.seed, self.classLabels) = (
        images, count, keep, batchSize, seed, classLabels
      )
    }
  }

  /// Runs `plan` with `denoiser` on `request`; returns the completed images (count × C × H × W), whose known
  /// pixels are exactly the given ones. Per model evaluation: the model, the fused update of the filled
  /// region, the fused noising of the known region (same Philox noise) and one masked select; per undo one
  /// fused update. `progress` is called after every action.
  public static func inpaint(
    _ denoiser: any Denoiser, plan: Plan, request q: Request, progress: (Int) -> Void = { _ in }
  ) throws -> [Float] {
    let device = denoiser.device
    let shape = denoiser.imageShape
    let (c, h, w) = (shape[0], shape[1], shape[2])
    let per = c * h * w
    guard q.count > 0, q.batchSize > 0 else {
      throw ModelError.input("the image count and batch size must be positive")
    }
    try denoiser.activationEstimate(batch: Swift.min(q.batchSize, q.count))?.check(on: device)
    try MemoryBudget.check(
      checkedProduct([q.count, per, 4]), for: "\(q.count) images of \(shape) (the result)", on: Device.cpu,
      flag: "--n")
    guard q.images.count == q.count * per else {
      throw ModelError.input(
        "\(q.images.count) image values; \(q.count) images of \(shape) need \(q.count * per)")
    }
    guard q.keep.count == h * w || q.keep.count == q.count * h * w else {
      throw ModelError.input(
        "the mask has \(q.keep.count) values; it must be \(h)×\(w) (one for all images) or one per image")
    }
    guard !plan.actions.isEmpty, case .denoise = plan.actions.last! else {
      throw ModelError.input("a RePaint plan must end with a model step")
    }
    if denoiser.classCount != nil && (q.classLabels ?? []).isEmpty {
      throw ModelError.input("this model is class-conditional: give --class")
    }
    if denoiser.classCount == nil && q.classLabels != nil {
      throw ModelError.input("--class was given but this model is not class-conditional")
    }
    var result: [Float] = []
    result.reserveCapacity(q.count * per)
    var start = 0
    while start < q.count {
      let n = Swift.min(q.batchSize, q.count - start)
      let bshape = [n] + shape
      // keep: (n, C, H, W), the mask repeated over channels.
      var keepValues = [Float](repeating: 0, count: n * per)
      for i in 0..<n {
        let src = q.keep.count == h * w ? 0 : (start + i) * h * w
        for ch in 0..<c {
          for p in 0..<(h * w) { keepValues[i * per + ch * h * w + p] = q.keep[src + p] }
        }
      }
      let keep = try Tensor(keepValues, shape: bshape, on: device)
      let original = try Tensor(
        Array(q.images[(start * per)..<((start + n) * per)]), shape: bshape, on: device)
      let labels = q.classLabels.map { l in (0..<n).map { l[(start + $0) % l.count] } }
      var x = try Tensor.randomNormal(
        shape: bshape, seed: q.seed, step: 0, stream: Streams.sampling, firstSample: start, on: device)
      for (k, action) in plan.actions.enumerated() {
        switch action {
        case .denoise(let t, let unknown, let known):
          let m = try denoiser(x, timesteps: [Double(t)], classLabels: labels)
          let filled = try Tensor.samplerStep(
            x: x, modelOutput: m, prev: nil, update: unknown, seed: q.seed, step: k + 1,
            stream: Streams.sampling, firstSample: start
          ).out
          // The known region at the step's noise level, with the same z as the filled region's update.
          let given = try Tensor.samplerStep(
            x: original, modelOutput: original, prev: nil, update: known, seed: q.seed, step: k + 1,
            stream: Streams.sampling, firstSample: start
          ).out
          x = try Tensor.where(keep, given, filled)
        case .undo(_, let u):
          x = try Tensor.samplerStep(
            x: x, modelOutput: x, prev: nil, update: u, seed: q.seed, step: k + 1, stream: Streams.sampling,
            firstSample: start
          ).out
        }
        try device.backend.synchronize()
        progress(1)
      }
      let batch = try x.toArray()
      try NonFiniteError.check(
        batch, tensor: "the inpainted sample", firstImage: start, perImage: batch.count / Swift.max(n, 1),
        steps: plan.actions.count)
      result += batch
      start += n
    }
    return result
  }

  /// Fills the unknown pixels of a lattice mask (`lines`: rows, `sr2`: rows and columns) by bilinear
  /// interpolation between the nearest known rows/columns (beyond the last known one: its value); known
  /// pixels are kept. The classical baseline for super-resolution-like masks.
  public static func bilinear(_ images: [Float], count: Int, shape: [Int], preset: MaskPreset) throws
    -> [Float]
  {
    guard preset == .lines || preset == .sr2 else {
      throw ModelError.input(
        "bilinear interpolation needs a lattice mask (lines, sr2), not \(preset.rawValue)")
    }
    let (c, h, w) = (shape[0], shape[1], shape[2])
    let sx = preset == .sr2 ? 2 : 1
    // Nearest known coordinates below and above, and the weight of the upper one.
    func axis(_ v: Int, size: Int, step: Int) -> (Int, Int, Float) {
      let lo = v / step * step
      let last = (size - 1) / step * step
      if lo == v || lo + step > last { return (lo, lo, 0) }
      return (lo, lo + step, Float(v - lo) / Float(step))
    }
    var out = images
    for i in 0..<count {
      for ch in 0..<c {
        let base = (i * c + ch) * h * w
        for y in 0..<h {
          let (y0, y1, fy) = axis(y, size: h, step: 2)
          for x in 0..<w {
            let (x0, x1, fx) = axis(x, size: w, step: sx)
            if y0 == y && x0 == x { continue }
            let a = images[base + y0 * w + x0], b = images[base + y0 * w + x1]
            let cc = images[base + y1 * w + x0], d = images[base + y1 * w + x1]
            let top = a + (b - a) * fx, bottom = cc + (d - cc) * fx
            out[base + y * w + x] = top + (bottom - top) * fy
          }
        }
      }
    }
    return out
  }

  /// Mean squared error over the filled pixels (keep = 0, H × W or count × H × W) on the [0, 1] pixel scale.
  public static func filledMSE(
    _ completed: [Float], truth: [Float], keep: [Float], count: Int, shape: [Int]
  ) -> Double {
    let (c, hw) = (shape[0], shape[1] * shape[2])
    var sum = 0.0, n = 0
    for i in 0..<count {
      let maskBase = keep.count == hw ? 0 : i * hw
      for ch in 0..<c {
        for p in 0..<hw where keep[maskBase + p] == 0 {
          let k = (i * c + ch) * hw + p
          let d = Double(completed[k] - truth[k]) / 2
          sum += d * d
          n += 1
        }
      }
    }
    return n > 0 ? sum / Double(n) : 0
  }

  /// How well one method completed a set of images: the filled pixels' error and the completions' KID.
  public struct Score: Sendable, Equatable {
    /// MSE over the filled pixels against the truth, on the [0, 1] pixel scale.
    public var filledMSE: Double
    /// KID of the completed images against a class-balanced real set (`GeneratorEvaluator.evaluate`).
    public var kid: KIDEstimate
    /// KID of a second real set against the same reference set: the floor the completions are read against.
    public var floorKID: KIDEstimate
  }

  /// Scores `completed` (count × C × H × W in [−1, 1]) against `truth` under `keep`, with KID measured by
  /// `classifier` against real sets drawn from `real` (use data disjoint from the truth, e.g. the training
  /// split when the truth is test images); `count` must be a multiple of the classifier's classes.
  public static func score(
    _ completed: [Float], truth: [Float], keep: [Float], count: Int, shape: [Int], real: TrainingImages,
    classifier: ImageClassifier, seed: UInt64 = 0
  ) throws -> Score {
    let evaluation = try GeneratorEvaluator.evaluate(
      samples: completed, count: count, real: real, classifier: classifier,
      featureSpace: "bundled classifier", seed: seed)
    return Score(
      filledMSE: filledMSE(completed, truth: truth, keep: keep, count: count, shape: shape),
      kid: evaluation.samples.kid, floorKID: evaluation.realFloor.kid)
  }
}
