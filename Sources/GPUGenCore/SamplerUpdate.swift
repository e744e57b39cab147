// The fused sampler update shared by every sampler (see Kernels/sampler.cl for the formula).

/// Scalar coefficients of one fused sampler update:
/// x0 = clip(ax·x + am·m) (or, with `threshold`, clamp(ax·x + am·m, −s, s)/s with s per sample), eps = ex·x + em·m,
/// out = cx·x + c0·x0 + ce·eps + cp·prev + cq·prev2 + cr·prev3 + cz·z, aux = dx·x + d0·x0 + de·eps,
/// with z ~ N(0, 1) from Philox(seed, sample, step, stream); prev, prev2 and prev3 are the last three
/// auxiliary outputs, newest first (multistep history).
public struct SamplerUpdate: Sendable, Equatable {
  public var ax: Double = 0, am: Double = 0
  public var ex: Double = 0, em: Double = 0
  public var cx: Double = 0, c0: Double = 0, ce: Double = 0, cp: Double = 0, cz: Double = 0
  /// Coefficients of the second and third newest auxiliary outputs (read when `historyDepth` ≥ 2, 3).
  public var cq: Double = 0, cr: Double = 0
  public var dx: Double = 0, d0: Double = 0
  /// Coefficient of eps in `aux`.
  public var de: Double = 0
  /// Clamp x0 to ±clipRange when set.
  public var clipRange: Double? = nil
  /// diffusers' dynamic thresholding of x0 (`thresholding`); when set it replaces `clipRange`.
  public var threshold: DynamicThreshold? = nil
  /// How many earlier auxiliary outputs `out` reads (0 to 3: prev, prev2, prev3).
  public var historyDepth = 0
  /// Whether `out` reads the previous auxiliary output (`historyDepth` ≥ 1; setting true asks for at least 1).
  public var usesPrev: Bool {
    get { historyDepth > 0 }
    set { historyDepth = newValue ? Swift.max(historyDepth, 1) : 0 }
  }
  /// Whether this update writes `aux`.
  public var writesAux = false

  public init() {}

  /// The update applied to one element in Double (the reference the kernels are tested against);
  /// `thresholdScale` is the sample's s when `threshold` is set (see `DynamicThreshold.scales`).
  public func apply(
    x: Double, m: Double, prev: Double = 0, prev2: Double = 0, prev3: Double = 0, z: Double = 0,
    thresholdScale: Double = 1
  ) -> (out: Double, aux: Double) {
    var x0 = ax * x + am * m
    if threshold != nil {
      x0 = Swift.min(Swift.max(x0, -thresholdScale), thresholdScale) / thresholdScale
    } else if let r = clipRange {
      x0 = Swift.min(Swift.max(x0, -r), r)
    }
    let eps = ex * x + em * m
    var out = cx * x + c0 * x0 + ce * eps + cz * z
    if historyDepth >= 1 { out += cp * prev }
    if historyDepth >= 2 { out += cq * prev2 }
    if historyDepth >= 3 { out += cr * prev3 }
    return (out, dx * x + d0 * x0 + de * eps)
  }
}

/// diffusers' dynamic thresholding (`_threshold_sample`, Saharia et al. 2022): per sample
/// s = clamp(quantile(|x̂₀|, ratio), 1, maxValue) over all its values, then x̂₀ ← clamp(x̂₀, −s, s)/s.
public struct DynamicThreshold: Sendable, Equatable {
  /// `dynamic_thresholding_ratio`: the quantile of |x̂₀| taken as s (diffusers' default 0.995).
  public var ratio: Double
  /// `sample_max_value`: the largest s (diffusers' default 1: plain clipping to ±1).
  public var maxValue: Double

  /// Thresholding at quantile `ratio` with s capped at `maxValue`.
  public init(ratio: Double = 0.995, maxValue: Double = 1) {
    (self.ratio, self.maxValue) = (ratio, maxValue)
  }

  /// The per-sample scales s of `x0` (samples × perSample values, row-major): torch.quantile's linear
  /// interpolation between the sorted |x̂₀| at rank ratio·(perSample − 1), then torch.clamp(·, 1, maxValue)
  /// (a row holding NaN gives NaN, as torch's does).
  public func scales(_ x0: [Float], samples: Int, perSample: Int) -> [Float] {
    precondition(x0.count >= samples * perSample, "DynamicThreshold.scales: too few values")
    let rank = ratio * Double(Swift.max(perSample - 1, 0))
    let below = Int(rank.rounded(.down)), above = Int(rank.rounded(.up))
    let w = rank - Double(below)
    return (0..<samples).map { i in
      let row = x0[(i * perSample)..<((i + 1) * perSample)]
      if perSample == 0 { return 1 }
      if row.contains(where: \.isNaN) { return .nan }
      let sorted = row.map(\.magnitude).sorted()
      let lo = Double(sorted[below]), hi = Double(sorted[above])
      let q = Float(w < 0.5 ? lo + w * (hi - lo) : hi - (hi - lo) * (1 - w))
      return Swift.min(Swift.max(q, 1), Float(maxValue))
    }
  }

  /// Errors for values diffusers cannot use (a ratio outside [0, 1], a non-positive cap), naming `ratioName`
  /// and `maxName`.
  public func validate(ratioName: String, maxName: String) throws {
    guard ratio >= 0, ratio <= 1 else {
      throw GPUGenError.invalidArgument("\(ratioName) must lie in [0, 1], got \(ratio)")
    }
    guard maxValue > 0, maxValue.isFinite else {
      throw GPUGenError.invalidArgument("\(maxName) must be a positive number, got \(maxValue)")
    }
  }
}

extension Tensor {
  /// Runs one fused sampler update on x (N, …) with model output `m`; `prev` is read when
  /// `update.usesPrev`, and `older` (prev2, prev3: the auxiliary outputs before `prev`, newest first) when
  /// `update.historyDepth` asks for them. Noise for sample i comes from Philox(seed, firstSample + i, step,
  /// stream). With `update.threshold`, a first pass computes x̂₀, the host takes each sample's quantile
  /// (`DynamicThreshold.scales`) and the fused update divides by it. Returns the new sample and, when
  /// `update.writesAux`, the auxiliary output.
  public static func samplerStep(
    x: Tensor, modelOutput m: Tensor, prev: Tensor?, older: [Tensor] = [], update: SamplerUpdate,
    seed: UInt64,
    step: Int,
    stream: Int = 0,
    firstSample: Int = 0
  ) throws -> (out: Tensor, aux: Tensor?) {
    guard x.shape == m.shape, x.rank >= 1 else {
      throw GPUGenError.shapeMismatch(op: "samplerStep (sample vs model output)", lhs: x.shape, rhs: m.shape)
    }
    try x.sameDevice(m, "samplerStep")
    if update.usesPrev {
      guard let prev, prev.shape == x.shape else {
        throw GPUGenError.shapeMismatch(
          op: "samplerStep (previous output)", lhs: x.shape, rhs: prev?.shape ?? [])
      }
      try x.sameDevice(prev, "samplerStep")
    }
    guard (0...3).contains(update.historyDepth) else {
      throw GPUGenError.invalidArgument("samplerStep: historyDepth \(update.historyDepth) is not 0 to 3")
    }
    let needOlder = Swift.max(update.historyDepth - 1, 0)
    guard older.count >= needOlder else {
      throw GPUGenError.invalidArgument(
        "samplerStep: historyDepth \(update.historyDepth) needs \(needOlder) older outputs, got \(older.count)"
      )
    }
    for o in older.prefix(needOlder) {
      guard o.shape == x.shape else {
        throw GPUGenError.shapeMismatch(op: "samplerStep (older output)", lhs: x.shape, rhs: o.shape)
      }
      try x.sameDevice(o, "samplerStep")
    }
    let samples = x.shape[0], perSample = x.count / Swift.max(samples, 1)
    try checkNoiseArguments(
      samples: samples, perSample: perSample, firstSample: firstSample, step: step, stream: stream)
    var scales: Tensor?
    if let t = update.threshold, x.count > 0 {
      var pre = SamplerUpdate()
      (pre.ax, pre.am, pre.c0) = (update.ax, update.am, 1)
      let x0 = try samplerStep(x: x, modelOutput: m, prev: nil, update: pre, seed: 0, step: 0).out
      scales = try Tensor(
        t.scales(try x0.toArray(), samples: samples, perSample: perSample), shape: [samples], on: x.device)
    }
    let out = try Tensor(uninitialized: x.shape, on: x.device)
    let aux = update.writesAux ? try Tensor(uninitialized: x.shape, on: x.device) : nil
    if x.count > 0 {
      try x.backend.samplerStep(
        x.buffer, m.buffer, prev: update.usesPrev ? prev!.buffer : nil,
        older: older.prefix(needOlder).map(\.buffer), out: out.buffer, aux: aux?.buffer,
        thresholdScales: scales?.buffer,
        update: update,
        samples: samples, perSample: perSample, firstSample: firstSample, seed: seed, step: step,
        stream: stream)
    }
    return (out, aux)
  }
}
