// The samplers as plans: per step, the timestep the model sees, the input scaling and the coefficients
// of the fused update (Kernels/sampler.cl), derived in Double from the schedule exactly as the matching
// diffusers scheduler's `step` computes them.
import Foundation

/// The samplers `gpugen sample --sampler` offers.
public enum SamplerKind: String, CaseIterable, Sendable {
  case ddpm, ddim
  case dpmpp2m = "dpmpp-2m"
  /// DPM++ 2M SDE: diffusers' DPMSolverMultistepScheduler with algorithm_type "sde-dpmsolver++".
  case dpmpp2mSDE = "dpmpp-2m-sde"
  case euler
  case eulerA = "euler-a"
  case heun

  /// The diffusers scheduler class this sampler reproduces.
  public var family: SchedulerFamily {
    switch self {
    case .ddpm: return .ddpm
    case .ddim: return .ddim
    case .dpmpp2m, .dpmpp2mSDE: return .dpmSolverMultistep
    case .euler: return .eulerDiscrete
    case .eulerA: return .eulerAncestralDiscrete
    case .heun: return .heunDiscrete
    }
  }
}

/// Builds sampling plans.
public enum SamplerPlanner {
  /// The scheduler config a sampler uses: the model's scheduler_config.json read as the sampler's
  /// diffusers class (as `Scheduler.from_config(pipe.scheduler.config)` does), or that class's defaults.
  public static func config(_ kind: SamplerKind, schedulerConfig url: URL?, karras: Bool = false) throws
    -> SchedulerConfig
  {
    try adjusted(
      try url.map { try SchedulerConfig(contentsOf: $0, family: kind.family) }
        ?? SchedulerConfig(family: kind.family), for: kind, karras: karras)
  }

  /// The scheduler config a sampler uses when the model's scheduler_config.json is held as text (`json`).
  public static func config(_ kind: SamplerKind, schedulerJSON json: String, karras: Bool = false) throws
    -> SchedulerConfig
  {
    try adjusted(try SchedulerConfig(json: json, family: kind.family), for: kind, karras: karras)
  }

  /// `c` with what the sampler fixes (DPM-Solver++ of order 2) and Karras sigmas when asked for, validated.
  static func adjusted(_ config: SchedulerConfig, for kind: SamplerKind, karras: Bool) throws
    -> SchedulerConfig
  {
    var c = config
    if kind == .dpmpp2m || kind == .dpmpp2mSDE {
      c.algorithmType = kind == .dpmpp2m ? .dpmSolverPlusPlus : .sdeDPMSolverPlusPlus
      c.solverOrder = 2
    }
    if karras {
      guard [.dpmpp2m, .dpmpp2mSDE, .euler, .heun].contains(kind) else {
        throw ModelError.input(
          "--karras applies to dpmpp-2m, dpmpp-2m-sde, euler and heun, not \(kind.rawValue)")
      }
      c.useKarrasSigmas = true
    }
    try c.validate()
    return c
  }

  /// The plan for `kind` with `steps` steps (nil: 1000 for DDPM, else 20) and DDIM's `eta`.
  public static func plan(
    _ kind: SamplerKind, schedulerConfig url: URL?, steps: Int?, eta: Double = 0, karras: Bool = false
  ) throws -> SamplingPlan {
    let c = try config(kind, schedulerConfig: url, karras: karras)
    let schedule = try NoiseSchedule(config: c)
    return try plan(
      kind, schedule: schedule, steps: steps ?? (kind == .ddpm ? c.numTrainTimesteps : 20), eta: eta)
  }

  /// The plan for `kind` with `steps` steps (nil: as above) on a scheduler config held as text.
  public static func plan(
    _ kind: SamplerKind, schedulerJSON json: String, steps: Int?, eta: Double = 0, karras: Bool = false
  ) throws -> SamplingPlan {
    let c = try config(kind, schedulerJSON: json, karras: karras)
    return try plan(
      kind, schedule: try NoiseSchedule(config: c),
      steps: steps ?? (kind == .ddpm ? c.numTrainTimesteps : 20),
      eta: eta)
  }

  /// x̂₀ and ε̂ as linear combinations of (x, model output) for ᾱ = `a` (rounded like diffusers' float32).
  static func discretePrediction(
    _ p: PredictionType, a: Double, r: (Double) -> Double, into u: inout SamplerUpdate
  ) {
    let sa = r(a.squareRoot()), sb = r(r(1 - a).squareRoot())
    switch p {
    case .epsilon: (u.ax, u.am, u.ex, u.em) = (1 / sa, -sb / sa, 0, 1)
    case .vPrediction: (u.ax, u.am, u.ex, u.em) = (sa, -sb, sb, sa)
    case .sample: (u.ax, u.am, u.ex, u.em) = (0, 1, 1 / sb, -sa / sb)
    }
  }

  /// x̂₀ for the sigma-space samplers (Euler, Heun): x is in σ-scaled space.
  static func sigmaPrediction(_ p: PredictionType, sigma s: Double, into u: inout SamplerUpdate) {
    switch p {
    case .epsilon: (u.ax, u.am) = (1, -s)
    case .vPrediction: (u.ax, u.am) = (1 / (s * s + 1), -s / (s * s + 1).squareRoot())
    case .sample: (u.ax, u.am) = (0, 1)
    }
  }

  /// The plan for a schedule already built for `kind`'s family; a multistep history restarts at step
  /// `restart` (img2img's cut schedule, as diffusers' fresh scheduler does).
  public static func plan(
    _ kind: SamplerKind, schedule: NoiseSchedule, steps n: Int, eta: Double = 0, restartingAt restart: Int = 0
  ) throws -> SamplingPlan {
    let c = schedule.config
    guard c.family == kind.family else {
      throw ModelError.input("schedule is for \(c.family.rawValue), not \(kind.family.rawValue)")
    }
    let inf = try schedule.inference(numInferenceSteps: n)
    let ac = schedule.alphasCumprod
    let T = c.numTrainTimesteps
    let clip = c.clipSample ? c.clipSampleRange : nil
    // diffusers computes step coefficients in float32: round where it rounds.
    let r = schedule.precision.round
    var evals: [SamplingPlan.Evaluation] = []
    func add(_ t: Double, _ scale: Double, _ u: SamplerUpdate) {
      evals.append(SamplingPlan.Evaluation(timestep: t, inputScale: scale, update: u))
    }
    switch kind {
    case .ddpm, .ddim:
      for tv in inf.timesteps {
        let t = Int(tv), prev = t - T / n
        guard t >= 0 && t < T else {
          throw ModelError.input("timestep \(t) lies outside the \(T) training steps")
        }
        let a = ac[t]
        var u = SamplerUpdate()
        discretePrediction(c.predictionType, a: a, r: r, into: &u)
        u.clipRange = clip
        let bt = r(1 - a)
        if kind == .ddpm {
          let aPrev = prev >= 0 ? ac[prev] : 1
          let bPrev = r(1 - aPrev), curAlpha = r(a / aPrev), curBeta = r(1 - curAlpha)
          u.c0 = r(r(r(aPrev.squareRoot()) * curBeta) / bt)
          u.cx = r(r(r(curAlpha.squareRoot()) * bPrev) / bt)
          u.cz = t > 0 ? schedule.ddpmNoiseStd(timestep: t, previousTimestep: prev) : 0
        } else {
          let aPrev = prev >= 0 ? ac[prev] : schedule.finalAlphaCumprod
          let variance = r(r(r(1 - aPrev) / bt) * r(1 - r(a / aPrev)))
          let std = r(eta * r(variance.squareRoot()))
          u.c0 = r(aPrev.squareRoot())
          u.ce = r(Swift.max(r(r(1 - aPrev) - r(std * std)), 0).squareRoot())
          u.cz = eta > 0 ? std : 0
        }
        add(tv, 1, u)
      }
      return SamplingPlan(initNoiseSigma: 1, evaluations: evals)

    case .dpmpp2m, .dpmpp2mSDE:
      // DPM-Solver++ (2M) and its SDE variant (diffusers' sde-dpmsolver++, noise z each step).
      let sde = kind == .dpmpp2mSDE
      let sig = inf.sigmas
      func alphaSigma(_ s: Double) -> (Double, Double) {
        let a = 1 / (s * s + 1).squareRoot()
        return (a, s * a)
      }
      func lambda(_ s: Double) -> Double {
        let (a, sg) = alphaSigma(s)
        return Foundation.log(a) - Foundation.log(sg)
      }
      var lowerOrderNums = 0
      for (i, tv) in inf.timesteps.enumerated() {
        if i == restart { lowerOrderNums = 0 }
        let (aS, sS) = alphaSigma(sig[i])
        var u = SamplerUpdate()
        switch c.predictionType {
        case .epsilon: (u.ax, u.am) = (1 / aS, -sS / aS)
        case .vPrediction: (u.ax, u.am) = (aS, -sS)
        case .sample: (u.ax, u.am) = (0, 1)
        }
        u.writesAux = true
        (u.dx, u.d0) = (0, 1)
        let lowerOrderFinal =
          i == inf.timesteps.count - 1
          && (c.eulerAtFinal || (c.lowerOrderFinal && inf.timesteps.count < 15) || c.finalSigmasType == .zero)
        let firstOrder = c.solverOrder == 1 || lowerOrderNums < 1 || lowerOrderFinal
        let st = sig[i + 1]
        if st == 0 {
          (u.cx, u.c0) = (0, 1)  // σ_t = 0: the update returns x̂₀
        } else {
          let (aT, sT) = alphaSigma(st)
          let h = lambda(st) - lambda(sig[i])
          if sde {
            // x_t = σ_t/σ_s·e^{−h}·x + α_t(1 − e^{−2h})·D + σ_t·√(1 − e^{−2h})·z
            let em2 = -Foundation.expm1(-2 * h)
            u.cx = sT / sS * Foundation.exp(-h)
            u.cz = sT * em2.squareRoot()
            if firstOrder {
              u.c0 = aT * em2
            } else {
              let r0 = (lambda(sig[i]) - lambda(sig[i - 1])) / h
              u.usesPrev = true
              switch c.solverType {
              case .midpoint:
                u.c0 = aT * em2 * (1 + 0.5 / r0)
                u.cp = -0.5 * aT * em2 / r0
              case .heun:
                let k = aT * (em2 / (-2 * h) + 1) / r0
                u.c0 = aT * em2 + k
                u.cp = -k
              }
            }
            if lowerOrderNums < c.solverOrder { lowerOrderNums += 1 }
            add(tv, 1, u)
            continue
          }
          let em1 = Foundation.expm1(-h)
          u.cx = sT / sS
          if firstOrder {
            u.c0 = -aT * em1
          } else {
            let r0 = (lambda(sig[i]) - lambda(sig[i - 1])) / h
            u.usesPrev = true
            switch c.solverType {
            case .midpoint:
              u.c0 = -aT * em1 * (1 + 0.5 / r0)
              u.cp = 0.5 * aT * em1 / r0
            case .heun:
              let k = aT * (em1 / h + 1) / r0
              u.c0 = -aT * em1 + k
              u.cp = -k
            }
          }
        }
        if lowerOrderNums < c.solverOrder { lowerOrderNums += 1 }
        add(tv, 1, u)
      }
      return SamplingPlan(initNoiseSigma: inf.initNoiseSigma, evaluations: evals)

    case .euler, .eulerA:
      let sig = inf.sigmas
      for (i, tv) in inf.timesteps.enumerated() {
        let s = sig[i], sn = sig[i + 1]
        var u = SamplerUpdate()
        sigmaPrediction(c.predictionType, sigma: s, into: &u)
        var dt = sn - s
        if kind == .eulerA {
          let up = (sn * sn * (s * s - sn * sn) / (s * s)).squareRoot()
          let down = Swift.max(sn * sn - up * up, 0).squareRoot()
          dt = down - s
          u.cz = up
        }
        (u.cx, u.c0) = (1 + dt / s, -dt / s)
        add(tv, 1 / (s * s + 1).squareRoot(), u)
      }
      return SamplingPlan(initNoiseSigma: inf.initNoiseSigma, evaluations: evals)

    case .heun:
      let sig = inf.sigmas
      var dt = 0.0
      for (k, tv) in inf.timesteps.enumerated() {
        var u = SamplerUpdate()
        u.clipRange = clip
        if k % 2 == 0 {
          // First order: Euler step to σ_next, and the half-step state for the correction.
          let s = sig[k], sn = sig[k + 1]
          sigmaPrediction(c.predictionType, sigma: s, into: &u)
          dt = sn - s
          (u.cx, u.c0) = (1 + dt / s, -dt / s)
          if k + 1 < inf.timesteps.count {
            u.writesAux = true
            (u.dx, u.d0) = (1 + dt / (2 * s), -dt / (2 * s))
          }
          add(tv, 1 / (s * s + 1).squareRoot(), u)
        } else {
          // Second order: average the two slopes (prev holds x + dt/2 · d₁).
          let sn = sig[k]
          sigmaPrediction(c.predictionType, sigma: sn, into: &u)
          u.usesPrev = true
          (u.cp, u.cx, u.c0) = (1, dt / (2 * sn), -dt / (2 * sn))
          add(tv, 1 / (sn * sn + 1).squareRoot(), u)
        }
      }
      return SamplingPlan(initNoiseSigma: inf.initNoiseSigma, evaluations: evals)
    }
  }
}
