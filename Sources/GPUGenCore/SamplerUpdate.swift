// The fused sampler update shared by every sampler (see Kernels/sampler.cl for the formula).

/// Scalar coefficients of one fused sampler update:
/// x0 = clip(ax·x + am·m), eps = ex·x + em·m, out = cx·x + c0·x0 + ce·eps + cp·prev + cz·z,
/// aux = dx·x + d0·x0, with z ~ N(0, 1) from Philox(seed, sample, step, stream).
public struct SamplerUpdate: Sendable, Equatable {
  public var ax: Double = 0, am: Double = 0
  public var ex: Double = 0, em: Double = 0
  public var cx: Double = 0, c0: Double = 0, ce: Double = 0, cp: Double = 0, cz: Double = 0
  public var dx: Double = 0, d0: Double = 0
  /// Clamp x0 to ±clipRange when set.
  public var clipRange: Double? = nil
  /// Whether `out` reads the previous auxiliary output.
  public var usesPrev = false
  /// Whether this update writes `aux`.
  public var writesAux = false

  public init() {}

  /// The update applied to one element in Double (the reference the kernels are tested against).
  public func apply(x: Double, m: Double, prev: Double = 0, z: Double = 0) -> (out: Double, aux: Double) {
    var x0 = ax * x + am * m
    if let r = clipRange { x0 = Swift.min(Swift.max(x0, -r), r) }
    let eps = ex * x + em * m
    let out = cx * x + c0 * x0 + ce * eps + (usesPrev ? cp * prev : 0) + cz * z
    return (out, dx * x + d0 * x0)
  }
}

extension Tensor {
  /// Runs one fused sampler update on x (N, …) with model output `m`; `prev` is read when
  /// `update.usesPrev`. Noise for sample i comes from Philox(seed, firstSample + i, step, stream).
  /// Returns the new sample and, when `update.writesAux`, the auxiliary output.
  public static func samplerStep(
    x: Tensor, modelOutput m: Tensor, prev: Tensor?, update: SamplerUpdate, seed: UInt64, step: Int,
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
    let samples = x.shape[0], perSample = x.count / Swift.max(samples, 1)
    try checkNoiseArguments(
      samples: samples, perSample: perSample, firstSample: firstSample, step: step, stream: stream)
    let out = try Tensor(uninitialized: x.shape, on: x.device)
    let aux = update.writesAux ? try Tensor(uninitialized: x.shape, on: x.device) : nil
    if x.count > 0 {
      try x.backend.samplerStep(
        x.buffer, m.buffer, prev: update.usesPrev ? prev!.buffer : nil, out: out.buffer, aux: aux?.buffer,
        update: update,
        samples: samples, perSample: perSample, firstSample: firstSample, seed: seed, step: step,
        stream: stream)
    }
    return (out, aux)
  }
}
