// Training-side Swift API: optimizers (SGD, Adam, AdamW) with their state, global-norm gradient clipping,
// learning-rate schedules and the EMA of the weights. Each update is one fused kernel per parameter tensor.
import Foundation

/// An optimizer's algorithm and hyperparameters (PyTorch's defaults; `maximize=False, amsgrad=False`).
public enum OptimizerConfig: Sendable, Equatable {
  /// `torch.optim.SGD`: momentum buffer, dampening, Nesterov, L2 weight decay added to the gradient.
  case sgd(momentum: Double = 0, dampening: Double = 0, nesterov: Bool = false, weightDecay: Double = 0)
  /// `torch.optim.Adam`: L2 weight decay added to the gradient.
  case adam(beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8, weightDecay: Double = 0)
  /// `torch.optim.AdamW`: decoupled weight decay.
  case adamW(beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8, weightDecay: Double = 0.01)

  /// The fused update of step `step` (counting from 1) at learning rate `lr`.
  public func update(lr: Double, step: Int, gradScale: Float = 1) -> OptimizerUpdate {
    switch self {
    case .sgd(let momentum, let dampening, let nesterov, let weightDecay):
      return .sgd(
        lr: lr, momentum: momentum, dampening: dampening, nesterov: nesterov, weightDecay: weightDecay,
        step: step, gradScale: gradScale)
    case .adam(let beta1, let beta2, let eps, let weightDecay):
      return .adam(
        lr: lr, beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay, decoupled: false, step: step,
        gradScale: gradScale)
    case .adamW(let beta1, let beta2, let eps, let weightDecay):
      return .adam(
        lr: lr, beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay, decoupled: true, step: step,
        gradScale: gradScale)
    }
  }

  /// The names of the state tensors, in state slot order (PyTorch's state keys).
  var stateNames: [String] {
    switch self {
    case .sgd(let momentum, _, _, _): return momentum != 0 ? ["momentum_buffer"] : []
    case .adam, .adamW: return ["exp_avg", "exp_avg_sq"]
    }
  }
}

/// An optimizer over a fixed list of parameter tensors, updated in place (their buffers), with its state
/// tensors (zeros on each parameter's device, allocated at init) and the step count `t`.
public final class Optimizer {
  public let config: OptimizerConfig
  /// The parameters, updated in place by `step`.
  public let parameters: [Tensor]
  /// Steps taken so far (PyTorch's `state["step"]`); the next step is `stepCount + 1`.
  public private(set) var stepCount = 0
  /// Per parameter: SGD's momentum buffer or Adam's exp_avg (nil for SGD without momentum).
  public private(set) var state1: [Tensor?]
  /// Per parameter: Adam's exp_avg_sq (nil for SGD).
  public private(set) var state2: [Tensor?]

  public init(parameters: [Tensor], config: OptimizerConfig) throws {
    let probe = config.update(lr: 0, step: 1)
    try probe.validate()
    self.config = config
    self.parameters = parameters
    state1 = try parameters.map { p in probe.usesState1 ? try Tensor.zeros(p.shape, on: p.device) : nil }
    state2 = try parameters.map { p in probe.usesState2 ? try Tensor.zeros(p.shape, on: p.device) : nil }
  }

  /// One optimizer step: every parameter is updated from its gradient by one fused kernel. `gradScale`
  /// multiplies every gradient first (pass `clipGradNorm`'s scale to clip without an extra pass).
  /// Nothing is modified when the gradients do not match the parameters.
  public func step(grads: [Tensor], lr: Float, gradScale: Float = 1) throws {
    guard grads.count == parameters.count else {
      throw GPUGenError.invalidArgument(
        "Optimizer.step: \(grads.count) gradients for \(parameters.count) parameters")
    }
    for (p, g) in zip(parameters, grads) {
      guard p.shape == g.shape else {
        throw GPUGenError.shapeMismatch(
          op: "Optimizer.step (parameter vs gradient)", lhs: p.shape, rhs: g.shape)
      }
      try p.sameDevice(g, "Optimizer.step")
    }
    let update = config.update(lr: Double(lr), step: stepCount + 1, gradScale: gradScale)
    try update.validate()
    for i in parameters.indices {
      try Tensor.optimizerStep(
        param: parameters[i], grad: grads[i], state1: state1[i], state2: state2[i], update: update)
    }
    stepCount += 1
  }

  /// The global L2 norm of all gradients and the factor that clips it to `maxNorm`, like
  /// `torch.nn.utils.clip_grad_norm_`: `scale = min(1, maxNorm/(norm + 1e-6))` in float32. The gradients are
  /// not modified: pass `scale` as `step`'s `gradScale`. Each gradient's Σg² is a tree reduction on its device
  /// (`Backend.sumOfSquares`) into one slot of a small buffer, which is read back once and summed in Double.
  public static func clipGradNorm(grads: [Tensor], maxNorm: Float) throws -> (norm: Float, scale: Float) {
    guard maxNorm.isFinite && maxNorm >= 0 else {
      throw GPUGenError.invalidArgument("clipGradNorm: maxNorm \(maxNorm) must be finite and ≥ 0")
    }
    guard let first = grads.first else { return (0, 1) }
    for g in grads { try first.sameDevice(g, "clipGradNorm") }
    let sums = try Tensor.zeros([grads.count], on: first.device)
    for (i, g) in grads.enumerated() where g.count > 0 {
      try first.backend.sumOfSquares(g.buffer, sums.buffer, count: g.count, slot: i)
    }
    let total = try sums.toArray().reduce(0.0) { $0 + Double($1) }
    let norm = Float(total.squareRoot())
    let coef = maxNorm / (norm + 1e-6)
    return (norm, coef > 1 ? 1 : coef)  // NaN stays NaN, as torch.clamp leaves it
  }

  /// The state as named tensors (copies): `exp_avg.<name>` and `exp_avg_sq.<name>` (Adam, AdamW) or
  /// `momentum_buffer.<name>` (SGD with momentum), plus the step count. `names` default to "0", "1", ….
  public func exportState(names: [String]? = nil) throws -> (tensors: [String: Tensor], step: Int) {
    let names = try parameterNames(names)
    var out: [String: Tensor] = [:]
    for (slot, key) in config.stateNames.enumerated() {
      let states = slot == 0 ? state1 : state2
      for (i, name) in names.enumerated() {
        if let s = states[i] { out["\(key).\(name)"] = try s.copy() }
      }
    }
    return (out, stepCount)
  }

  /// Restores a state written by `exportState` (tensors on any device; they are copied to the parameters'
  /// devices). After `step` > 0 steps every state tensor must be present; at step 0 missing ones are zeros.
  /// Nothing changes when a tensor is missing or has the wrong shape.
  public func importState(_ tensors: [String: Tensor], step: Int, names: [String]? = nil) throws {
    guard step >= 0 else { throw GPUGenError.invalidArgument("importState: negative step \(step)") }
    let names = try parameterNames(names)
    var restored: [[Tensor?]] = [state1, state2]
    for (slot, key) in config.stateNames.enumerated() {
      for (i, name) in names.enumerated() {
        let p = parameters[i]
        guard let t = tensors["\(key).\(name)"] else {
          if step > 0 {
            throw GPUGenError.invalidArgument("importState: no '\(key).\(name)' after \(step) steps")
          }
          restored[slot][i] = try Tensor.zeros(p.shape, on: p.device)
          continue
        }
        guard t.shape == p.shape else {
          throw GPUGenError.shapeMismatch(op: "importState (\(key).\(name))", lhs: p.shape, rhs: t.shape)
        }
        restored[slot][i] = t.device === p.device ? try t.copy() : try t.to(p.device)
      }
    }
    state1 = restored[0]
    state2 = restored[1]
    stepCount = step
  }

  private func parameterNames(_ names: [String]?) throws -> [String] {
    let names = names ?? parameters.indices.map(String.init)
    guard names.count == parameters.count, Set(names).count == names.count else {
      throw GPUGenError.invalidArgument(
        "optimizer state: need \(parameters.count) distinct parameter names, got \(names.count)")
    }
    return names
  }
}

/// A learning-rate schedule, exactly diffusers' `get_constant_schedule_with_warmup` and
/// `get_cosine_schedule_with_warmup` (num_cycles 0.5) as `LambdaLR` applies them: the rate of step `s`
/// (counting from 0) is `base·λ(s)`, with `λ(s) = s/warmup` while `s < warmup` — so step 0 has rate 0
/// when there is a warmup — and then 1 (constant) or `max(0, ½(1 + cos(π·p)))` with
/// `p = (s − warmup)/max(1, total − warmup)` (cosine). A cosine `minLR` > 0 maps the post-warmup rate to
/// `minLR + (base − minLR)·λ(s)` (diffusers has no floor: `minLR` 0 is diffusers exactly).
public struct LearningRate: Sendable, Equatable {
  public enum Schedule: Sendable, Equatable {
    case constant
    case cosine(totalSteps: Int, minLR: Double = 0)
  }

  public var base: Double
  public var warmupSteps: Int
  public var schedule: Schedule

  public init(base: Double, warmupSteps: Int = 0, schedule: Schedule = .constant) {
    self.base = base
    self.warmupSteps = warmupSteps
    self.schedule = schedule
  }

  /// diffusers' `lr_lambda(step)`, in Double.
  public func factor(at step: Int) -> Double {
    if step < warmupSteps { return Double(step) / Double(Swift.max(1, warmupSteps)) }
    switch schedule {
    case .constant:
      return 1
    case .cosine(let total, _):
      let progress = Double(step - warmupSteps) / Double(Swift.max(1, total - warmupSteps))
      return Swift.max(0, 0.5 * (1 + Foundation.cos(Double.pi * 0.5 * 2 * progress)))
    }
  }

  /// The learning rate of step `step` (counting from 0).
  public func value(at step: Int) -> Float {
    let f = factor(at: step)
    if case .cosine(_, let minLR) = schedule, step >= warmupSteps, minLR != 0 {
      return Float(minLR + (base - minLR) * f)
    }
    return Float(base * f)
  }
}

/// An exponential moving average of parameters with diffusers' `EMAModel` semantics (`foreach=False`):
/// the shadow starts as a copy of the parameters, and each `step` increments `optimizationStep` and applies
/// `shadow ← shadow − (1 − d)·(shadow − param)` with `d = decay(at: optimizationStep)`.
public final class EMA {
  /// The cap on the decay (diffusers' `decay`), its floor, and how many steps pass before averaging starts.
  public let maxDecay: Double
  public let minDecay: Double
  public let updateAfterStep: Int
  /// The power schedule `1 − (1 + s/invGamma)^(−power)` instead of `(1 + s)/(10 + s)`.
  public let useWarmup: Bool
  public let invGamma: Double
  public let power: Double
  /// The averaged parameters.
  public private(set) var shadow: [Tensor]
  /// Steps taken so far (diffusers' `optimization_step`).
  public private(set) var optimizationStep = 0
  /// The decay the last `step` used (diffusers' `cur_decay_value`).
  public private(set) var lastDecay: Double?

  /// Copies `parameters` as the initial shadow. Defaults are diffusers'.
  public init(
    parameters: [Tensor], maxDecay: Double = 0.9999, minDecay: Double = 0, updateAfterStep: Int = 0,
    useWarmup: Bool = false, invGamma: Double = 1, power: Double = 2.0 / 3.0
  ) throws {
    guard maxDecay.isFinite, minDecay.isFinite, invGamma.isFinite, invGamma > 0, power.isFinite else {
      throw GPUGenError.invalidArgument("EMA: decay bounds, invGamma (> 0) and power must be finite")
    }
    self.maxDecay = maxDecay
    self.minDecay = minDecay
    self.updateAfterStep = updateAfterStep
    self.useWarmup = useWarmup
    self.invGamma = invGamma
    self.power = power
    shadow = try parameters.map { try $0.copy() }
  }

  /// diffusers' `get_decay(optimization_step)`: with `s = max(0, optimizationStep − updateAfterStep − 1)`,
  /// 0 when `s` is 0 (the first averaged step copies the parameters), else `(1 + s)/(10 + s)` or, with
  /// `useWarmup`, `1 − (1 + s/invGamma)^(−power)`, capped at `maxDecay` and then floored at `minDecay`.
  public func decay(at optimizationStep: Int) -> Double {
    let s = Swift.max(0, optimizationStep - updateAfterStep - 1)
    if s <= 0 { return 0 }
    let value =
      useWarmup
      ? 1 - Foundation.pow(1 + Double(s) / invGamma, -power) : Double(1 + s) / Double(10 + s)
    return Swift.max(Swift.min(value, maxDecay), minDecay)
  }

  /// Averages `parameters` into the shadow (one fused kernel per tensor) and returns the decay used.
  @discardableResult
  public func step(parameters: [Tensor]) throws -> Double {
    guard parameters.count == shadow.count else {
      throw GPUGenError.invalidArgument(
        "EMA.step: \(parameters.count) parameters for \(shadow.count) averages")
    }
    for (s, p) in zip(shadow, parameters) {
      guard s.shape == p.shape else {
        throw GPUGenError.shapeMismatch(op: "EMA.step", lhs: s.shape, rhs: p.shape)
      }
      try s.sameDevice(p, "EMA.step")
    }
    optimizationStep += 1
    let d = decay(at: optimizationStep)
    lastDecay = d
    for (s, p) in zip(shadow, parameters) { try Tensor.emaUpdate(ema: s, param: p, decay: d) }
    return d
  }

  /// Restores the shadow (copied onto the current shadow tensors' devices) and the step count.
  public func importState(shadow values: [Tensor], optimizationStep: Int) throws {
    guard values.count == shadow.count, optimizationStep >= 0 else {
      throw GPUGenError.invalidArgument(
        "EMA.importState: \(values.count) tensors for \(shadow.count) averages at step \(optimizationStep)")
    }
    for (s, v) in zip(shadow, values) where s.shape != v.shape {
      throw GPUGenError.shapeMismatch(op: "EMA.importState", lhs: s.shape, rhs: v.shape)
    }
    shadow = try zip(shadow, values).map { s, v in v.device === s.device ? try v.copy() : try v.to(s.device) }
    self.optimizationStep = optimizationStep
  }
}
