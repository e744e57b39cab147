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
  /// DPM++ 3M SDE: DPMSolverMultistepScheduler with algorithm_type "sde-dpmsolver++" and solver_order 3.
  case dpmpp3mSDE = "dpmpp-3m-sde"
  case euler
  case eulerA = "euler-a"
  case heun
  /// UniPC: diffusers' UniPCMultistepScheduler (bh1/bh2, orders 1–3, with the corrector).
  case unipc

  /// The diffusers scheduler class this sampler reproduces.
  public var family: SchedulerFamily {
    switch self {
    case .ddpm: return .ddpm
    case .ddim: return .ddim
    case .dpmpp2m, .dpmpp2mSDE, .dpmpp3mSDE: return .dpmSolverMultistep
    case .euler: return .eulerDiscrete
    case .eulerA: return .eulerAncestralDiscrete
    case .heun: return .heunDiscrete
    case .unipc: return .uniPCMultistep
    }
  }
}

/// Builds sampling plans.
public enum SamplerPlanner {
  /// The scheduler config a sampler uses: the model's scheduler_config.json read as the sampler's
  /// diffusers class (as `Scheduler.from_config(pipe.scheduler.config)` does), or that class's defaults.
  /// `bounding` overrides its clip_sample and thresholding.
  public static func config(
    _ kind: SamplerKind, schedulerConfig url: URL?, karras: Bool = false, bounding: X0Bounding = .scheduler
  ) throws -> SchedulerConfig {
    try adjusted(
      try url.map { try SchedulerConfig(contentsOf: $0, family: kind.family) }
        ?? SchedulerConfig(family: kind.family), for: kind, karras: karras, bounding: bounding)
  }

  /// The scheduler config a sampler uses when the model's scheduler_config.json is held as text (`json`).
  public static func config(
    _ kind: SamplerKind, schedulerJSON json: String, karras: Bool = false, bounding: X0Bounding = .scheduler
  ) throws -> SchedulerConfig {
    try adjusted(
      try SchedulerConfig(json: json, family: kind.family), for: kind, karras: karras, bounding: bounding)
  }

  /// `c` with what the sampler fixes (DPM-Solver++ of order 2), Karras sigmas when asked for and `bounding`,
  /// validated.
  static func adjusted(
    _ config: SchedulerConfig, for kind: SamplerKind, karras: Bool, bounding: X0Bounding = .scheduler
  ) throws -> SchedulerConfig {
    var c = try bounding.applied(to: config, sampler: kind.rawValue)
    if [.dpmpp2m, .dpmpp2mSDE, .dpmpp3mSDE].contains(kind) {
      c.algorithmType = kind == .dpmpp2m ? .dpmSolverPlusPlus : .sdeDPMSolverPlusPlus
      c.solverOrder = kind == .dpmpp3mSDE ? 3 : 2
    }
    if karras {
      let sigmaSpace: [SamplerKind] = [.dpmpp2m, .dpmpp2mSDE, .dpmpp3mSDE, .euler, .heun, .unipc]
      guard sigmaSpace.contains(kind) else {
        throw ModelError.input(
          "--karras applies to \(sigmaSpace.map(\.rawValue).joined(separator: ", ")), not \(kind.rawValue)")
      }
      c.useKarrasSigmas = true
    }
    try c.validate()
    return c
  }

  /// The plan for `kind` with `steps` steps (nil: 1000 for DDPM, else 20), DDIM's `eta` and x̂₀'s `bounding`.
  public static func plan(
    _ kind: SamplerKind, schedulerConfig url: URL?, steps: Int?, eta: Double = 0, karras: Bool = false,
    bounding: X0Bounding = .scheduler
  ) throws -> SamplingPlan {
    let c = try config(kind, schedulerConfig: url, karras: karras, bounding: bounding)
    let schedule = try NoiseSchedule(config: c)
    return try plan(
      kind, schedule: schedule, steps: steps ?? (kind == .ddpm ? c.numTrainTimesteps : 20), eta: eta)
  }

  /// The plan for `kind` with `steps` steps (nil: as above) on a scheduler config held as text.
  public static func plan(
    _ kind: SamplerKind, schedulerJSON json: String, steps: Int?, eta: Double = 0, karras: Bool = false,
    bounding: X0Bounding = .scheduler
  ) throws -> SamplingPlan {
    let c = try config(kind, schedulerJSON: json, karras: karras, bounding: bounding)
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
    // Thresholding takes precedence over clip_sample, as in diffusers.
    let threshold = c.dynamicThreshold
    let clip = threshold == nil && c.clipSample ? c.clipSampleRange : nil
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
        (u.clipRange, u.threshold) = (clip, threshold)
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

    case .dpmpp2m, .dpmpp2mSDE, .dpmpp3mSDE:
      // DPM-Solver++ (2M) and its SDE variants (diffusers' sde-dpmsolver++, noise z each step; 3M: order 3).
      let sde = kind != .dpmpp2m
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
        u.threshold = threshold
        u.writesAux = true
        (u.dx, u.d0) = (0, 1)
        let lowerOrderFinal =
          i == inf.timesteps.count - 1
          && (c.eulerAtFinal || (c.lowerOrderFinal && inf.timesteps.count < 15) || c.finalSigmasType == .zero)
        let firstOrder = c.solverOrder == 1 || lowerOrderNums < 1 || lowerOrderFinal
        let lowerOrderSecond =
          i == inf.timesteps.count - 2 && c.lowerOrderFinal && inf.timesteps.count < 15
        let secondOrder = c.solverOrder == 2 || lowerOrderNums < 2 || lowerOrderSecond
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
            } else if !secondOrder {
              // Third order: D1 and D2 from the last three x̂₀ (m0 = this step's, m1, m2 = prev, prev2):
              // x_t = … + α_t(1 − e^{−2h})·D0 + k1·D1 + k2·D2.
              let r0 = (lambda(sig[i]) - lambda(sig[i - 1])) / h
              let r1 = (lambda(sig[i - 1]) - lambda(sig[i - 2])) / h
              let k1 = aT * (em2 / (-2 * h) + 1)
              let k2 = aT * ((em2 - 2 * h) / (4 * h * h) - 0.5)
              // D1 = D1_0 + r0/(r0+r1)·(D1_0 − D1_1), D2 = (D1_0 − D1_1)/(r0+r1), D1_0 = (m0 − m1)/r0,
              // D1_1 = (m1 − m2)/r1: k1·D1 + k2·D2 = (k1 + g)·D1_0 − g·D1_1 with g = (k1·r0 + k2)/(r0 + r1).
              let g = (k1 * r0 + k2) / (r0 + r1)
              u.c0 = aT * em2 + (k1 + g) / r0
              u.cp = -(k1 + g) / r0 - g / r1
              u.cq = g / r1
              u.historyDepth = 2
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

    case .unipc:
      return try uniPCPlan(c, inf, restartingAt: restart)

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

  /// Solves the small dense system a·x = b (Gaussian elimination with partial pivoting, in Double).
  static func solve(_ a: [[Double]], _ b: [Double]) throws -> [Double] {
    var a = a, b = b
    let n = b.count
    for col in 0..<n {
      let pivot = (col..<n).max { Swift.abs(a[$0][col]) < Swift.abs(a[$1][col]) }!
      guard a[pivot][col] != 0, a[pivot][col].isFinite else {
        throw ModelError.input("UniPC: the order conditions are singular at this step")
      }
      a.swapAt(col, pivot)
      b.swapAt(col, pivot)
      for row in (col + 1)..<n {
        let f = a[row][col] / a[col][col]
        for k in col..<n { a[row][k] -= f * a[col][k] }
        b[row] -= f * b[col]
      }
    }
    var x = [Double](repeating: 0, count: n)
    for row in stride(from: n - 1, through: 0, by: -1) {
      var v = b[row]
      for k in (row + 1)..<n { v -= a[row][k] * x[k] }
      x[row] = v / a[row][row]
    }
    return x
  }

  /// UniPC (UniPCMultistepScheduler.step): per step the corrector UniC of the sample the last step predicted,
  /// then the predictor UniP from the corrected sample. The corrected sample is the predicted one plus a
  /// combination of converted model outputs (both start from the same x_{i−1} with the same h and m0), so one
  /// update per step gives x_{i+1} from x_i, this step's output M_i and the history M_{i−1}, M_{i−2}, M_{i−3}
  /// (aux = M_i: x̂₀, or ε̂ without predict_x0).
  static func uniPCPlan(_ c: SchedulerConfig, _ inf: InferenceSchedule, restartingAt restart: Int) throws
    -> SamplingPlan
  {
    let sig = inf.sigmas, n = inf.timesteps.count
    func alphaSigma(_ s: Double) -> (Double, Double) {
      let a = 1 / (s * s + 1).squareRoot()
      return (a, s * a)
    }
    func lambda(_ j: Int) -> Double {
      let (a, sg) = alphaSigma(sig[j])
      return Foundation.log(a) - Foundation.log(sg)
    }
    /// The step from sigma index j to j + 1 with order p: (A, P, hφ₁, B(h), rks, b) as diffusers builds them.
    struct Step {
      var a = 0.0, p = 0.0, hphi1 = 0.0, bh = 0.0, rks: [Double] = [], b: [Double] = []
    }
    func step(from j: Int, order: Int, needB: Bool) -> Step {
      var st = Step()
      let (aT, sT) = alphaSigma(sig[j + 1]), (aS, sS) = alphaSigma(sig[j])
      (st.a, st.p) = c.predictX0 ? (sT / sS, aT) : (aT / aS, sT)
      let h = lambda(j + 1) - lambda(j)
      let hh = c.predictX0 ? -h : h
      st.hphi1 = Foundation.expm1(hh)
      st.bh = c.uniPCSolverType == .bh1 ? hh : Foundation.expm1(hh)
      st.rks = (1..<Swift.max(order, 1)).map { k in (lambda(j - k) - lambda(j)) / h } + [1]
      if needB {
        var hphik = st.hphi1 / hh - 1, factorial = 1.0
        for k in 1...order {
          st.b.append(hphik * factorial / st.bh)
          factorial *= Double(k + 1)
          hphik = hphik / hh - 1 / factorial
        }
      }
      return st
    }
    func matrix(_ rks: [Double], _ size: Int) -> [[Double]] {
      (0..<size).map { r in (0..<size).map { Foundation.pow(rks[$0], Double(r)) } }
    }
    var evals: [SamplingPlan.Evaluation] = []
    var lowerOrderNums = 0, lastOrder = 0
    var lastRhosP: [Double] = []
    for (i, tv) in inf.timesteps.enumerated() {
      if i == restart { lowerOrderNums = 0 }
      let (aS, sS) = alphaSigma(sig[i])
      var u = SamplerUpdate()
      switch c.predictionType {
      case .epsilon: (u.ax, u.am, u.ex, u.em) = (1 / aS, -sS / aS, 0, 1)
      case .vPrediction: (u.ax, u.am, u.ex, u.em) = (aS, -sS, sS, aS)
      case .sample: (u.ax, u.am, u.ex, u.em) = (0, 1, 1 / sS, -aS / sS)
      }
      u.writesAux = true
      // diffusers thresholds UniPC's x̂₀ only with predict_x0 (its noise prediction is never thresholded).
      if c.predictX0 { (u.d0, u.threshold) = (1, c.dynamicThreshold) } else { u.de = 1 }
      // coef[k]: the coefficient of M_{i−k} (k = 0: this step's converted output) in the corrected sample
      // minus x_i, then in x_{i+1}.
      var corr = [Double](repeating: 0, count: 4)
      let useCorrector = i > restart && !c.disableCorrector.contains(i - 1)
      if useCorrector {
        let q = lastOrder
        let st = step(from: i - 1, order: q, needB: q > 1)
        let rc = q == 1 ? [0.5] : try solve(matrix(st.rks, q), st.b)
        let pb = st.p * st.bh
        // x^c_i − x_i = −P·B·[Σ_k (rc_k − rp_k)·(M_{i−1−k} − M_{i−1})/r_k + rc_last·(M_i − M_{i−1})]
        for k in 1..<q {
          let w = -pb * (rc[k - 1] - lastRhosP[k - 1]) / st.rks[k - 1]
          corr[1 + k] += w
          corr[1] -= w
        }
        corr[0] -= pb * rc[q - 1]
        corr[1] += pb * rc[q - 1]
      }
      var order = c.lowerOrderFinal ? Swift.min(c.solverOrder, n - i) : c.solverOrder
      order = Swift.min(order, lowerOrderNums + 1)
      var coef = [Double](repeating: 0, count: 4)
      if sig[i + 1] == 0 || sig[i + 1] == sig[i] {
        // σ_t = 0 (x̂₀) or h = 0 (x unchanged): only the first-order update is finite (diffusers gives NaN
        // for higher orders, and for bh1 at σ_t = 0, where gpugen takes the limit x̂₀).
        guard order == 1, c.predictX0 || sig[i + 1] != 0 else {
          let fix =
            sig[i + 1] == 0
            ? "lower_order_final or final_sigmas_type \"sigma_min\""
            : "lower_order_final or final_sigmas_type \"zero\""
          throw ModelError.input(
            "UniPC: a step of order \(order) from σ = \(sig[i]) to σ = \(sig[i + 1]) is undefined (diffusers "
              + "gives NaN); use \(fix)")
        }
        if sig[i + 1] == 0 {
          u.cx = 0
          coef[0] = 1
        } else {
          u.cx = 1
          coef = corr
        }
        lastRhosP = []
      } else {
        let st = step(from: i, order: order, needB: order > 2)
        let rp: [Double] =
          order == 1
          ? [] : order == 2 ? [0.5] : try solve(matrix(st.rks, order - 1), Array(st.b.prefix(order - 1)))
        u.cx = st.a
        coef = corr.map { st.a * $0 }
        coef[0] -= st.p * st.hphi1
        let pb = st.p * st.bh
        for k in 1..<order {
          let w = -pb * rp[k - 1] / st.rks[k - 1]
          coef[k] += w
          coef[0] -= w
        }
        lastRhosP = rp
      }
      if c.predictX0 { u.c0 = coef[0] } else { u.ce = coef[0] }
      (u.cp, u.cq, u.cr) = (coef[1], coef[2], coef[3])
      u.historyDepth = coef[3] != 0 ? 3 : coef[2] != 0 ? 2 : coef[1] != 0 ? 1 : 0
      lastOrder = order
      if lowerOrderNums < c.solverOrder { lowerOrderNums += 1 }
      evals.append(SamplingPlan.Evaluation(timestep: tv, inputScale: 1, update: u))
    }
    return SamplingPlan(initNoiseSigma: inf.initNoiseSigma, evaluations: evals)
  }
}

/// How a run bounds the predicted x̂₀, overriding the scheduler config's `clip_sample` and `thresholding`.
public enum X0Bounding: Sendable, Equatable {
  /// As the scheduler config says (diffusers' behaviour).
  case scheduler
  /// Never bound x̂₀ (clip_sample and thresholding off).
  case none
  /// Dynamic thresholding with these settings (`thresholding` on; it takes precedence over clip_sample).
  case threshold(DynamicThreshold)

  /// `config` with this bounding; thresholding for a family whose diffusers class has none is an error
  /// naming `sampler`.
  public func applied(to config: SchedulerConfig, sampler: String) throws -> SchedulerConfig {
    var c = config
    switch self {
    case .scheduler: break
    case .none: (c.clipSample, c.thresholding) = (false, false)
    case .threshold(let t):
      guard SchedulerConfig.supportsThresholding(c.family) else {
        throw ModelError.input(
          "--thresholding applies to ddpm, ddim, dpmpp-2m, dpmpp-2m-sde, dpmpp-3m-sde and unipc "
            + "(diffusers' \(c.family.rawValue) has no dynamic thresholding), not \(sampler)")
      }
      do { try t.validate(ratioName: "--dynamic-thresholding-ratio", maxName: "--sample-max-value") } catch {
        throw ModelError.input("\(error)")
      }
      (c.thresholding, c.dynamicThresholdingRatio, c.sampleMaxValue) = (true, t.ratio, t.maxValue)
    }
    return c
  }

  /// The bounding in words, for run headers.
  public var summary: String {
    switch self {
    case .scheduler: return "x̂₀ bounded as the scheduler config says"
    case .none: return "x̂₀ unclipped"
    case .threshold(let t): return "dynamic thresholding (ratio \(t.ratio), max \(t.maxValue))"
    }
  }
}
