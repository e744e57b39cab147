// The fused sampler update shared by every sampler (see Kernels/sampler.cl for the formula).

/// Scalar coefficients of one fused sampler update:
/// x0 = clip(ax·x + am·m), eps = ex·x + em·m,
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

  /// The update applied to one element in Double (the reference the kernels are tested against).
  public func apply(
    x: Double, m: Double, prev: Double = 0, prev2: Double = 0, prev3: Double = 0, z: Double = 0
  ) -> (out: Double, aux: Double) {
    var x0 = ax * x + am * m
    if let r = clipRange { x0 = Swift.min(Swift.max(x0, -r), r) }
    let eps = ex * x + em * m
    var out = cx * x + c0 * x0 + ce * eps + cz * z
    if historyDepth >= 1 { out += cp * prev }
    if historyDepth >= 2 { out += cq * prev2 }
    if historyDepth >= 3 { out += cr * prev3 }
    return (out, dx * x + d0 * x0 + de * eps)
  }
}

extension Tensor {
  /// Runs one fused sampler update on x (N, …) with model output `m`; `prev` is read when
  /// `update.usesPrev`, and `older` (prev2, prev3: the auxiliary outputs before `prev`, newest first) when
  /// `update.historyDepth` asks for them. Noise for sample i comes from Philox(seed, firstSample + i, step,
  /// stream). Returns the new sample and, when `update.writesAux`, the auxiliary output.
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
    let out = try Tensor(uninitialized: x.shape, on: x.device)
    let aux = update.writesAux ? try Tensor(uninitialized: x.shape, on: x.device) : nil
    if x.count > 0 {
      try x.backend.samplerStep(
        x.buffer, m.buffer, prev: update.usesPrev ? prev!.buffer : nil,
        older: older.prefix(needOlder).map(\.buffer), out: out.buffer, aux: aux?.buffer,
        update: update,
        samples: samples, perSample: perSample, firstSample: firstSample, seed: seed, step: step,
        stream: stream)
    }
    return (out, aux)
  }
}
