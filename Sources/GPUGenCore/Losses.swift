// Training losses and batch normalisation (differentiable compositions of the tensor ops, except
// BCE-with-logits, whose gradient σ(x) − z is recorded directly for accuracy at every x).

extension Tensor {
  /// Mean squared error over all elements.
  public static func mseLoss(_ prediction: Tensor, _ target: Tensor) throws -> Tensor {
    guard prediction.shape == target.shape else {
      throw GPUGenError.shapeMismatch(op: "mseLoss", lhs: prediction.shape, rhs: target.shape)
    }
    let d = try prediction - target
    return try (d * d).mean()
  }

  /// Binary cross-entropy on logits, averaged over all elements (`BCEWithLogitsLoss`):
  /// mean(max(x, 0) − x·z + log(1 + e^−|x|)).
  public static func bceWithLogitsLoss(_ logits: Tensor, _ targets: Tensor) throws -> Tensor {
    guard logits.shape == targets.shape else {
      throw GPUGenError.shapeMismatch(op: "bceWithLogitsLoss", lhs: logits.shape, rhs: targets.shape)
    }
    return try bceWithLogits(logits, targets).mean()
  }

  /// Elementwise binary cross-entropy on logits, unreduced: max(x, 0) − x·z + log(1 + e^−|x|). The gradient
  /// with respect to the logits is recorded directly as (σ(x) − z)·dy.
  public static func bceWithLogits(_ logits: Tensor, _ targets: Tensor) throws -> Tensor {
    guard logits.shape == targets.shape else {
      throw GPUGenError.shapeMismatch(op: "bceWithLogits", lhs: logits.shape, rhs: targets.shape)
    }
    let y = try Tape.noGrad {
      try logits.maximum(0) - logits * targets + (logits.abs().neg().exp() + 1).log()
    }
    Tape.record(y, [logits, targets]) { dy, needs in
      [
        needs[0] ? try (logits.sigmoid() - targets) * dy : nil,
        needs[1] ? try (logits * dy).neg() : nil,
      ]
    }
    return y
  }

  /// KL(N(μ, e^logσ²) ‖ N(0, 1)) summed over each sample's elements and averaged over the batch (axis 0):
  /// −½·Σ(1 + logσ² − μ² − e^logσ²) / N.
  public static func gaussianKL(mean mu: Tensor, logVariance lv: Tensor) throws -> Tensor {
    guard mu.shape == lv.shape, mu.rank >= 1 else {
      throw GPUGenError.shapeMismatch(op: "gaussianKL", lhs: mu.shape, rhs: lv.shape)
    }
    let terms = try (lv + 1) - mu * mu - lv.exp()
    return try terms.sum() * (-0.5 / Float(Swift.max(mu.shape[0], 1)))
  }

  /// Batch normalisation of (N, C, …) per channel. In training the batch statistics are used (biased
  /// variance) and `runningMean`/`runningVar` (if given) are updated in place with `momentum` and the
  /// unbiased variance, as PyTorch does; otherwise the running statistics normalise. The affine `weight`
  /// and `bias` (C) are optional (nil: none applied, as torch's affine=False).
  public func batchNorm(
    weight: Tensor?, bias: Tensor?, runningMean: Tensor? = nil, runningVar: Tensor? = nil, training: Bool,
    momentum: Float = 0.1, eps: Float = 1e-5
  ) throws -> Tensor {
    guard rank >= 2, (weight?.count ?? shape[1]) == shape[1], (bias?.count ?? shape[1]) == shape[1] else {
      throw GPUGenError.shapeMismatch(op: "batchNorm", lhs: shape, rhs: (weight ?? bias)?.shape ?? [])
    }
    let c = shape[1]
    let bshape = [1, c] + Array(repeating: 1, count: rank - 2)
    let axes = [0] + Array(2..<rank)
    let mean: Tensor, variance: Tensor
    if training {
      mean = try self.mean(axes: axes, keepDims: true)
      let centred = try self - mean
      variance = try (centred * centred).mean(axes: axes, keepDims: true)
      if let runningMean, let runningVar {
        try Tape.noGrad {
          let n = Float(count / Swift.max(c, 1))
          let unbiased = try variance.reshaped([c]) * (n / Swift.max(n - 1, 1))
          let newMean = try runningMean.reshaped([c]) * (1 - momentum) + mean.reshaped([c]) * momentum
          let newVar = try runningVar.reshaped([c]) * (1 - momentum) + unbiased * momentum
          try runningMean.assign(newMean)
          try runningVar.assign(newVar)
        }
      }
    } else {
      guard let runningMean, let runningVar else {
        throw GPUGenError.invalidArgument("batchNorm: evaluation needs running statistics")
      }
      mean = try runningMean.reshaped(bshape)
      variance = try runningVar.reshaped(bshape)
    }
    var y = try (self - mean) * (variance + eps).rsqrt()
    if let weight { y = try y * weight.reshaped(bshape) }
    if let bias { y = try y + bias.reshaped(bshape) }
    return y
  }

  /// Overwrites this tensor's values with `source`'s (same element count; not recorded on a tape).
  public func assign(_ source: Tensor) throws {
    guard source.count == count else {
      throw GPUGenError.shapeMismatch(op: "assign", lhs: shape, rhs: source.shape)
    }
    try sameDevice(source, "assign")
    if count > 0 {
      try backend.copyStrided(
        source.buffer, buffer,
        StridedCopy(shape: [count], xStrides: [1], xOffset: 0, yStrides: [1], yOffset: 0))
    }
  }
}
