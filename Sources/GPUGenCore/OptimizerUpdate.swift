// The fused optimizer update shared by SGD, Adam and AdamW (see Kernels/optim.cl for the formulas).
import Foundation

/// The update rule of an `OptimizerUpdate`.
public enum OptimizerKind: Int32, CaseIterable, Sendable {
  /// `torch.optim.SGD` (momentum, dampening, Nesterov, L2 weight decay added to the gradient).
  case sgd = 0
  /// `torch.optim.Adam` (L2 weight decay added to the gradient).
  case adam = 1
  /// `torch.optim.AdamW` (decoupled weight decay: `p ← p·(1 − lr·wd)` before the Adam update).
  case adamW = 2
}

/// The host-computed scalars of one fused optimizer step over one parameter tensor, PyTorch's
/// single-tensor algorithm with `maximize=False, amsgrad=False`, in PyTorch's order of float operations.
/// Per element, in float32 (`fma` where PyTorch's CPU kernels fuse):
///
///     g = grad·gradScale
///     SGD:   g = fma(p, wd, g)                                  (weight decay ≠ 0)
///            b = first step ? g : fma(g, 1 − dampening, b·momentum)   (momentum ≠ 0)
///            g = nesterov ? fma(b, momentum, g) : b
///            p = fma(g, −lr, p)
///     Adam:  p = p·(1 − lr·wd)                                  (AdamW, weight decay ≠ 0)
///            g = fma(p, wd, g)                                  (Adam, weight decay ≠ 0)
///            m = lerp(m, g, 1 − β1)                             (torch.lerp: fma, two branches)
///            v = fma((1 − β2)·g, g, v·β2)
///            p = p + (−(lr/bc1)·m) / (√v / bc2^½ + eps)
///
/// where bc1 = 1 − β1ᵗ and bc2 = 1 − β2ᵗ are PyTorch's `bias_correction1/2` at step t (counting from 1).
/// The scalars (lr/bc1, bc2^½, 1 − lr·wd, …) are computed in Double as PyTorch computes its Python floats
/// and rounded once to float32.
public struct OptimizerUpdate: Sendable, Equatable {
  public var kind: OptimizerKind
  /// The learning rate.
  public var lr: Double
  /// SGD: momentum factor (0 disables the momentum buffer), dampening, Nesterov momentum.
  public var momentum: Double = 0
  public var dampening: Double = 0
  public var nesterov = false
  /// Adam/AdamW: moment decay rates and the denominator's epsilon.
  public var beta1: Double = 0.9
  public var beta2: Double = 0.999
  public var eps: Double = 1e-8
  /// L2 penalty (SGD, Adam) or decoupled decay (AdamW); 0 disables it.
  public var weightDecay: Double = 0
  /// PyTorch's bias corrections `1 − β1ᵗ` and `1 − β2ᵗ`, in Double (1 when unused). Kept as PyTorch keeps them
  /// (not as reciprocals) so that `lr / biasCorrection1` is the very Double PyTorch computes.
  public var biasCorrection1: Double = 1
  public var biasCorrection2: Double = 1
  /// Multiplies the gradient before anything else (the global-norm clipping factor; 1 = none).
  public var gradScale: Float = 1
  /// SGD with momentum: this is the first step, so the momentum buffer is set to the gradient.
  public var firstStep = false

  public init(kind: OptimizerKind, lr: Double) {
    self.kind = kind
    self.lr = lr
  }

  /// An SGD step (`step` counts from 1).
  public static func sgd(
    lr: Double, momentum: Double = 0, dampening: Double = 0, nesterov: Bool = false, weightDecay: Double = 0,
    step: Int, gradScale: Float = 1
  ) -> OptimizerUpdate {
    var u = OptimizerUpdate(kind: .sgd, lr: lr)
    (u.momentum, u.dampening, u.nesterov, u.weightDecay) = (momentum, dampening, nesterov, weightDecay)
    u.firstStep = step <= 1
    u.gradScale = gradScale
    return u
  }

  /// An Adam (or, with `decoupled`, AdamW) step at `step`, counting from 1.
  public static func adam(
    lr: Double, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8, weightDecay: Double = 0,
    decoupled: Bool, step: Int, gradScale: Float = 1
  ) -> OptimizerUpdate {
    var u = OptimizerUpdate(kind: decoupled ? .adamW : .adam, lr: lr)
    (u.beta1, u.beta2, u.eps, u.weightDecay) = (beta1, beta2, eps, weightDecay)
    let t = Double(step)
    u.biasCorrection1 = 1 - Foundation.pow(beta1, t)
    u.biasCorrection2 = 1 - Foundation.pow(beta2, t)
    u.gradScale = gradScale
    return u
  }

  /// Whether the step reads and writes the first state buffer (momentum buffer, or Adam's exp_avg).
  public var usesState1: Bool { kind != .sgd || momentum != 0 }
  /// Whether the step reads and writes the second state buffer (Adam's exp_avg_sq).
  public var usesState2: Bool { kind != .sgd }

  /// Throws unless the hyperparameters are ones PyTorch accepts.
  public func validate() throws {
    func check(_ ok: Bool, _ what: String) throws {
      if !ok { throw GPUGenError.invalidArgument("optimizer: \(what)") }
    }
    try check(lr.isFinite && lr >= 0, "learning rate \(lr) must be finite and ≥ 0")
    try check(weightDecay.isFinite && weightDecay >= 0, "weight decay \(weightDecay) must be ≥ 0")
    try check(gradScale.isFinite, "gradient scale \(gradScale) is not finite")
    switch kind {
    case .sgd:
      try check(momentum.isFinite && momentum >= 0, "momentum \(momentum) must be ≥ 0")
      try check(dampening.isFinite, "dampening \(dampening) is not finite")
      try check(
        !nesterov || (momentum > 0 && dampening == 0), "Nesterov momentum needs momentum > 0 and no dampening"
      )
    case .adam, .adamW:
      try check(beta1 >= 0 && beta1 < 1, "beta1 \(beta1) must be in [0, 1)")
      try check(beta2 >= 0 && beta2 < 1, "beta2 \(beta2) must be in [0, 1)")
      try check(eps.isFinite && eps >= 0, "eps \(eps) must be ≥ 0")
      try check(
        biasCorrection1 > 0 && biasCorrection2 > 0 && biasCorrection1 <= 1 && biasCorrection2 <= 1,
        "bias corrections 1 − βᵗ must be in (0, 1] (step ≥ 1), got \(biasCorrection1), \(biasCorrection2)")
    }
  }

  // Flag bits shared with Kernels/optim.cl (OPT_*).
  static let flagL2: Int32 = 1
  static let flagDecoupled: Int32 = 2
  static let flagMomentum: Int32 = 4
  static let flagNesterov: Int32 = 8
  static let flagFirst: Int32 = 16
  static let flagLerpSmall: Int32 = 32

  /// The float32 scalars the kernels use, rounded once from Double as PyTorch rounds its Python scalars:
  /// `coef` = (gradScale, L2 weight decay, AdamW's 1 − lr·wd, −lr (SGD) or −lr·bc1 (Adam),
  /// momentum or 1 − β1, 1 − dampening or β2, 1 − β2, bc2^½); `coef2` = (eps, (1 − β1) − 1, 0, 0).
  var kernelArguments: (coef: [Float], coef2: [Float], flags: Int32) {
    var flags: Int32 = 0
    let decay = weightDecay != 0
    switch kind {
    case .sgd:
      if decay { flags |= Self.flagL2 }
      if momentum != 0 { flags |= Self.flagMomentum }
      if nesterov { flags |= Self.flagNesterov }
      if firstStep { flags |= Self.flagFirst }
      let coef = [
        gradScale, Float(weightDecay), 1, Float(-lr), Float(momentum), Float(1 - dampening), 0, 0,
      ]
      return (coef, [0, 0, 0, 0], flags)
    case .adam, .adamW:
      if decay { flags |= kind == .adamW ? Self.flagDecoupled : Self.flagL2 }
      let weight = Float(1 - beta1)
      if Swift.abs(weight) < 0.5 { flags |= Self.flagLerpSmall }
      let stepSize = lr / biasCorrection1
      let coef = [
        gradScale, kind == .adam ? Float(weightDecay) : 0, kind == .adamW ? Float(1 - lr * weightDecay) : 1,
        Float(-stepSize), weight, Float(beta2), Float(1 - beta2), Float(Foundation.pow(biasCorrection2, 0.5)),
      ]
      return (coef, [Float(eps), weight - 1, 0, 0], flags)
    }
  }
}

extension Tensor {
  /// One fused optimizer step on `param` in place: reads `grad` and updates the state tensors (`state1`: SGD's
  /// momentum buffer or Adam's exp_avg; `state2`: Adam's exp_avg_sq), which must have the parameter's shape
  /// and device when `update.usesState1`/`usesState2`.
  public static func optimizerStep(
    param: Tensor, grad: Tensor, state1: Tensor?, state2: Tensor?, update: OptimizerUpdate
  ) throws {
    try update.validate()
    guard param.shape == grad.shape else {
      throw GPUGenError.shapeMismatch(
        op: "optimizerStep (parameter vs gradient)", lhs: param.shape, rhs: grad.shape)
    }
    try param.sameDevice(grad, "optimizerStep")
    for (used, state) in [(update.usesState1, state1), (update.usesState2, state2)] where used {
      guard let state, state.shape == param.shape else {
        throw GPUGenError.shapeMismatch(
          op: "optimizerStep (optimizer state)", lhs: param.shape, rhs: state?.shape ?? [])
      }
      try param.sameDevice(state, "optimizerStep")
    }
    if param.count == 0 { return }
    try param.backend.optimizerStep(
      param.buffer, grad.buffer, update.usesState1 ? state1!.buffer : nil,
      update.usesState2 ? state2!.buffer : nil, count: param.count, update: update)
  }

  /// `ema ← ema − (1 − decay)·(ema − param)` in place (diffusers' `EMAModel.step`).
  public static func emaUpdate(ema: Tensor, param: Tensor, decay: Double) throws {
    guard ema.shape == param.shape else {
      throw GPUGenError.shapeMismatch(op: "emaUpdate", lhs: ema.shape, rhs: param.shape)
    }
    guard decay.isFinite else { throw GPUGenError.invalidArgument("emaUpdate: decay \(decay) is not finite") }
    try ema.sameDevice(param, "emaUpdate")
    if ema.count > 0 { try ema.backend.emaUpdate(ema.buffer, param.buffer, count: ema.count, decay: decay) }
  }

  /// Σ x² over every element, as a one-element tensor on the same device (accumulated in a tree).
  public func sumOfSquares() throws -> Tensor {
    let y = try Tensor.zeros([1], on: device)
    if count > 0 { try backend.sumOfSquares(buffer, y.buffer, count: count, slot: 0) }
    return y
  }
}
