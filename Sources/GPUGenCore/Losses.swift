// Training losses (differentiable compositions of the tensor ops, except BCE-with-logits, whose gradient
// σ(x) − z is recorded directly for accuracy at every x) and batch normalisation (one fused backend op with
// its own backward, Backend.batchNormTraining/Inference/Backward).

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

  /// Batch normalisation of (N, C, …) per channel, one fused op (one tape node). In training the batch
  /// statistics are used (biased variance) and `runningMean`/`runningVar` (if given) are updated in place with
  /// `momentum` and the unbiased variance, as PyTorch does; otherwise the running statistics normalise. The
  /// affine `weight` and `bias` (C) are optional (nil: none applied, as torch's affine=False). `activation`
  /// (ReLU, or leaky ReLU with slope `activationAlpha`) is fused into the kernels (any other runs after them).
  public func batchNorm(
    weight: Tensor?, bias: Tensor?, runningMean: Tensor? = nil, runningVar: Tensor? = nil, training: Bool,
    momentum: Float = 0.1, eps: Float = 1e-5, activation: Activation = .none, activationAlpha: Float = 0.01
  ) throws -> Tensor {
    guard rank >= 2, (weight?.count ?? shape[1]) == shape[1], (bias?.count ?? shape[1]) == shape[1] else {
      throw GPUGenError.shapeMismatch(op: "batchNorm", lhs: shape, rhs: (weight ?? bias)?.shape ?? [])
    }
    let recording = Tape.recording([self, weight, bias]) != nil
    // Fused: ReLU, and leaky ReLU whose derivative the backward can read from the output.
    let fused =
      activation == .none || activation == .relu
      || (activation == .leakyRelu && (activationAlpha >= 0 || !recording))
    if !fused {
      return try batchNorm(
        weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar, training: training,
        momentum: momentum, eps: eps
      ).apply(activation.unaryOp, alpha: activationAlpha)
    }
    let c = shape[1]
    for t in [weight, bias, runningMean, runningVar].compactMap({ $0 }) {
      try sameDevice(t, "batchNorm")
    }
    for t in [runningMean, runningVar].compactMap({ $0 }) where t.count != c {
      throw GPUGenError.shapeMismatch(op: "batchNorm (running statistics)", lhs: t.shape, rhs: [c])
    }
    let g = BatchNormGeometry(
      n: shape[0], c: c, hw: shape[2...].reduce(1, *), eps: eps, activation: activation,
      activationAlpha: activationAlpha)
    let y = try Tensor(uninitialized: shape, on: device)
    // The statistics the backward uses: the batch's (written by the kernel), or the running ones (copied, so
    // that a later update cannot change them).
    let mean: Tensor, invstd: Tensor
    if training {
      mean = try Tensor(uninitialized: [c], on: device)
      invstd = try Tensor(uninitialized: [c], on: device)
      if count > 0 {
        let running = runningMean != nil && runningVar != nil
        try backend.batchNormTraining(
          buffer, y.buffer, gamma: weight?.buffer, beta: bias?.buffer, mean: mean.buffer,
          invstd: invstd.buffer,
          runningMean: running ? runningMean?.buffer : nil, runningVar: running ? runningVar?.buffer : nil,
          momentum: momentum, g)
      }
    } else {
      guard let runningMean, let runningVar else {
        throw GPUGenError.invalidArgument("batchNorm: evaluation needs running statistics")
      }
      if count > 0 {
        try backend.batchNormInference(
          buffer, y.buffer, gamma: weight?.buffer, beta: bias?.buffer, runningMean: runningMean.buffer,
          runningVar: runningVar.buffer, g)
      }
      guard recording else { return y }
      (mean, invstd) = try Tape.noGrad {
        let m = try Tensor(uninitialized: [c], on: device)
        try m.assign(runningMean)
        return (m, try (runningVar.reshaped([c]) + eps).rsqrt())
      }
    }
    Tape.record(y, [self] + [weight, bias].compactMap { $0 }) { dy, needs in
      try Tensor.batchNormBackward(
        self, output: y, dy, weight: weight, bias: bias, mean: mean, invstd: invstd, training: training, g,
        needs: needs)
    }
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
