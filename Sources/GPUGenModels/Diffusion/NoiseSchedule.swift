// Noise schedules, computed in Double on the host exactly as diffusers' schedulers compute them:
// betas, ᾱ, inference timesteps for each spacing, sigmas (with Karras spacing and log-sigma
// interpolation back to timesteps) and the DDPM posterior variance.
//
// diffusers keeps betas, alphas, ᾱ and sigmas in float32 tensors and converts some timesteps to
// float32. With `Precision.float32` (the default) every value diffusers stores as float32 is rounded to
// float32 at the same point (the arithmetic itself is Double, which rounds +, −, ×, ÷ and √ exactly as
// float32 would after the final rounding), so the results match diffusers to float32 rounding instead
// of differing by the 1e-4 relative that float32 cancellation in 1 − ᾱ causes near t = 0.
// `Precision.float64` skips those roundings: the exact schedule, for analysis.
import Foundation

/// The schedule for one inference run: what diffusers' `set_timesteps` leaves in `scheduler.timesteps`,
/// `scheduler.sigmas` and `scheduler.init_noise_sigma`.
public struct InferenceSchedule: Sendable, Equatable {
  /// The timesteps fed to the denoiser, in order (integers for DDPM, DDIM and DPM-Solver).
  public var timesteps: [Double]
  /// The sigmas of the sigma-space families (one more than the timesteps, ending in the final sigma;
  /// Heun repeats the inner ones); empty for DDPM and DDIM.
  public var sigmas: [Double]
  /// The standard deviation of the initial noise (1, or the largest sigma for Euler/Heun).
  public var initNoiseSigma: Double
}

/// A diffusion noise schedule for one scheduler family: betas, alphas, ᾱ and inference timesteps.
public struct NoiseSchedule: Sendable {
  /// Whether values diffusers stores as float32 are rounded to float32 like diffusers does.
  public enum Precision: Sendable, Equatable {
    /// Round where diffusers stores float32 (matches diffusers).
    case float32
    /// Never round (the exact schedule).
    case float64

    @inline(__always) func round(_ x: Double) -> Double {
      self == .float32 ? Double(Float(x)) : x
    }
  }

  /// The config this schedule was built from (its `family` decides defaults and timesteps).
  public let config: SchedulerConfig
  /// The rounding mode used.
  public let precision: Precision
  /// βₜ for t = 0..<T.
  public let betas: [Double]
  /// αₜ = 1 − βₜ.
  public let alphas: [Double]
  /// ᾱₜ = ∏_{s≤t} αₛ (DPM-Solver and Euler set the last to 2⁻²⁴ under zero-terminal-SNR rescaling).
  public let alphasCumprod: [Double]
  /// σₜ = √((1 − ᾱₜ)/ᾱₜ) for t = 0..<T (the sigma-space families' training sigmas).
  public let trainingSigmas: [Double]
  /// ln σₜ, as stored by diffusers (used to map sigmas back to timesteps).
  public let logSigmas: [Double]

  /// Number of training timesteps T.
  public var numTrainTimesteps: Int { config.numTrainTimesteps }

  /// ᾱ before the first training step: DDIM's `final_alpha_cumprod` (1 with `set_alpha_to_one`, else ᾱ₀);
  /// 1 for the other families.
  public var finalAlphaCumprod: Double {
    config.family == .ddim && !config.setAlphaToOne ? alphasCumprod[0] : 1
  }

  /// Builds the schedule of `config` (validated first).
  public init(config: SchedulerConfig, precision: Precision = .float32) throws {
    try config.validate()
    if config.rescaleBetasZeroSNR && config.family == .heunDiscrete {
      throw SchedulerConfigError.unsupported(
        field: "rescale_betas_zero_snr", value: "true", reason: "HeunDiscreteScheduler has no such option")
    }
    self.config = config
    self.precision = precision
    let r = precision.round
    let t = config.numTrainTimesteps
    var b = Self.betas(config, precision)
    if config.rescaleBetasZeroSNR { b = Self.rescaleZeroTerminalSNR(b, precision) }
    betas = b
    alphas = b.map { r(1 - $0) }
    var ac = Self.cumprod(alphas, precision)
    if config.rescaleBetasZeroSNR && config.family.usesSigmas {
      ac[t - 1] = 0x1p-24  // diffusers: "close to 0 without being 0 so first sigma is not inf".
    }
    alphasCumprod = ac
    trainingSigmas = ac.map { r(r(r(1 - $0) / $0).squareRoot()) }
    logSigmas = trainingSigmas.map { r(Foundation.log($0)) }
  }

  /// Reads `scheduler_config.json` text (see `SchedulerConfig.init(json:family:)`) and builds its schedule.
  public init(json: String, family: SchedulerFamily? = nil, precision: Precision = .float32) throws {
    try self.init(config: try SchedulerConfig(json: json, family: family), precision: precision)
  }

  // MARK: Betas

  static func betas(_ c: SchedulerConfig, _ p: Precision) -> [Double] {
    let t = c.numTrainTimesteps
    if let trained = c.trainedBetas { return trained.map(p.round) }
    // torch.linspace(..., dtype=float32) for float32, the exact line otherwise.
    func line(_ a: Double, _ b: Double) -> [Double] {
      p == .float32 ? Reference.torchLinspaceFloat32(a, b, t) : Reference.linspace(a, b, t)
    }
    switch c.betaSchedule {
    case .linear:
      return line(c.betaStart, c.betaEnd)
    case .scaledLinear:
      return line(c.betaStart.squareRoot(), c.betaEnd.squareRoot()).map { p.round($0 * $0) }
    case .squaredcosCapV2:
      return betasForAlphaBar(t) { Foundation.pow(Foundation.cos((($0 + 0.008) / 1.008) * Double.pi / 2), 2) }
        .map(p.round)
    case .laplace:
      return betasForAlphaBar(t) { u in
        let lmb = -0.5 * (0.5 - u < 0 ? -1.0 : 1.0) * Foundation.log(1 - 2 * Swift.abs(0.5 - u) + 1e-6)
        let snr = Foundation.exp(lmb)
        return (snr / (1 + snr)).squareRoot()
      }.map(p.round)
    case .exp:
      return betasForAlphaBar(t) { Foundation.exp($0 * -12.0) }.map(p.round)
    case .sigmoid:
      // torch.sigmoid(torch.linspace(-6, 6, T)) * (beta_end - beta_start) + beta_start, in float32.
      let range = p.round(c.betaEnd - c.betaStart), start = p.round(c.betaStart)
      return line(-6, 6).map { x in
        let s = p.round(1 / (1 + Foundation.exp(-x)))
        return p.round(p.round(s * range) + start)
      }
    }
  }

  /// diffusers' `betas_for_alpha_bar`: βᵢ = min(1 − ᾱ((i+1)/T)/ᾱ(i/T), 0.999), in Double.
  static func betasForAlphaBar(_ t: Int, maxBeta: Double = 0.999, _ alphaBar: (Double) -> Double) -> [Double]
  {
    (0..<t).map { i in
      let t1 = Double(i) / Double(t), t2 = Double(i + 1) / Double(t)
      return Swift.min(1 - alphaBar(t2) / alphaBar(t1), maxBeta)
    }
  }

  /// torch.cumprod: a Double accumulator, each partial product stored (rounded) as it goes.
  static func cumprod(_ x: [Double], _ p: Precision) -> [Double] {
    var acc = 1.0
    return x.map {
      acc *= $0
      return p.round(acc)
    }
  }

  /// Lin et al. 2023 (Algorithm 1), as diffusers' `rescale_zero_terminal_snr`: shift and scale √ᾱ so
  /// that √ᾱ₀ is kept and √ᾱ_{T−1} = 0, then recover the betas.
  static func rescaleZeroTerminalSNR(_ betas: [Double], _ p: Precision) -> [Double] {
    let r = p.round
    let ac = cumprod(betas.map { r(1 - $0) }, p)
    var s = ac.map { r($0.squareRoot()) }
    let s0 = s[0], sLast = s[s.count - 1]
    let scale = r(s0 / r(s0 - sLast))
    s = s.map { r(r($0 - sLast) * scale) }
    let bar = s.map { r($0 * $0) }
    let a = [bar[0]] + (1..<bar.count).map { r(bar[$0] / bar[$0 - 1]) }
    return a.map { r(1 - $0) }
  }

  // MARK: Inference timesteps and sigmas

  /// The inference timesteps for `numInferenceSteps` steps (`scheduler.timesteps` after `set_timesteps`).
  public func timesteps(numInferenceSteps n: Int) throws -> [Double] {
    try inference(numInferenceSteps: n).timesteps
  }

  /// The inference sigmas (`scheduler.sigmas`; empty for DDPM and DDIM).
  public func sigmas(numInferenceSteps n: Int) throws -> [Double] {
    try inference(numInferenceSteps: n).sigmas
  }

  /// Everything `set_timesteps(numInferenceSteps)` of this schedule's family computes.
  public func inference(numInferenceSteps n: Int) throws -> InferenceSchedule {
    guard n >= 1 else {
      throw SchedulerConfigError.invalidValue(
        field: "num_inference_steps", value: "\(n)", expected: "at least 1")
    }
    switch config.family {
    case .ddpm, .ddim:
      guard n <= numTrainTimesteps else {
        throw SchedulerConfigError.invalidValue(
          field: "num_inference_steps", value: "\(n)",
          expected: "at most num_train_timesteps = \(numTrainTimesteps)")
      }
      return InferenceSchedule(
        timesteps: discreteTimesteps(n).map(Double.init), sigmas: [], initNoiseSigma: 1)
    case .dpmSolverMultistep, .uniPCMultistep:
      return dpmSolverSchedule(n)
    case .eulerDiscrete, .eulerAncestralDiscrete, .heunDiscrete:
      return eulerSchedule(n)
    }
  }

  /// DDPM/DDIM `set_timesteps`.
  func discreteTimesteps(_ n: Int) -> [Int] {
    let t = numTrainTimesteps
    switch config.timestepSpacing {
    case .linspace:
      return Reference.linspace(0, Double(t - 1), n).reversed().map { Int(Reference.round($0)) }
    case .leading:
      let ratio = t / n
      return (0..<n).reversed().map { $0 * ratio + config.stepsOffset }
    case .trailing:
      return Reference.arange(Double(t), 0, -Double(t) / Double(n)).map { Int(Reference.round($0)) - 1 }
    }
  }

  /// Log-SNR λₜ = ln √ᾱₜ − ln √(1 − ᾱₜ), as DPM-Solver stores it.
  var lambdas: [Double] {
    let r = precision.round
    return alphasCumprod.map { a in
      r(r(Foundation.log(r(a.squareRoot()))) - r(Foundation.log(r(r(1 - a).squareRoot()))))
    }
  }

  /// The last sigma: 0, or σ₀ (`final_sigmas_type` = sigma_min).
  func finalSigma(_ type: FinalSigmasType) -> Double {
    let r = precision.round, a = alphasCumprod[0]
    return type == .zero ? 0 : r(r(r(1 - a) / a).squareRoot())
  }

  /// DPMSolverMultistepScheduler.set_timesteps (and UniPCMultistepScheduler's: no λ clipping there, its
  /// Karras timesteps always rounded, sigma_min/sigma_max overriding the Karras range, and a sigma_min final
  /// sigma of the last Karras sigma).
  func dpmSolverSchedule(_ n: Int) -> InferenceSchedule {
    let r = precision.round
    let t = numTrainTimesteps
    // Skip the timesteps whose λ is below lambda_min_clipped: searchsorted(flip(λ), λ_min), left side.
    let flipped = Array(lambdas.reversed())
    var lo = 0, hi = flipped.count
    while lo < hi {
      let mid = (lo + hi) / 2
      if flipped[mid] < config.lambdaMinClipped { lo = mid + 1 } else { hi = mid }
    }
    let last = t - lo
    var steps: [Double]
    switch config.timestepSpacing {
    case .linspace:
      steps = Array(Reference.linspace(0, Double(last - 1), n + 1).map(Reference.round).reversed().dropLast())
    case .leading:
      let ratio = last / (n + 1)
      steps = (1...n).reversed().map { Double($0 * ratio + config.stepsOffset) }
    case .trailing:
      steps = Reference.arange(Double(last), 0, -Double(t) / Double(n)).map { Reference.round($0) - 1 }
    }
    var sigmas: [Double]
    let uniPC = config.family == .uniPCMultistep
    var final = finalSigma(config.finalSigmasType)
    if config.useKarrasSigmas {
      sigmas = Self.karrasSigmas(
        sigmaMin: (uniPC ? config.sigmaMin : nil) ?? trainingSigmas[0],
        sigmaMax: (uniPC ? config.sigmaMax : nil) ?? trainingSigmas[t - 1], count: n)
      steps = sigmas.map { sigmaToTimestep($0) }
      if config.betaSchedule != .squaredcosCapV2 || uniPC { steps = steps.map(Reference.round) }
      if uniPC && config.finalSigmasType == .sigmaMin { final = sigmas[sigmas.count - 1] }
    } else {
      sigmas = steps.map { Reference.interp($0, trainingSigmas) }
    }
    sigmas = (sigmas + [final]).map(r)
    // .to(torch.int64) truncates toward zero.
    return InferenceSchedule(
      timesteps: steps.map { $0.rounded(.towardZero) }, sigmas: sigmas, initNoiseSigma: 1)
  }

  /// EulerDiscrete/EulerAncestralDiscrete/HeunDiscrete `set_timesteps`.
  func eulerSchedule(_ n: Int) -> InferenceSchedule {
    let r = precision.round
    let t = numTrainTimesteps
    let family = config.family
    var steps: [Double]
    switch config.timestepSpacing {
    case .linspace:
      steps = Reference.linspace(0, Double(t - 1), n).map(r).reversed()
    case .leading:
      let ratio = t / n
      steps = (0..<n).reversed().map { Double($0 * ratio + config.stepsOffset) }
    case .trailing:
      steps = Reference.arange(Double(t), 0, -Double(t) / Double(n)).map { r(Reference.round($0)) - 1 }
    }
    var sigmas: [Double]
    if family == .eulerDiscrete && config.interpolationType == .logLinear {
      // torch.linspace(ln σ_{T−1}, ln σ₀, n + 1).exp(), in float32.
      let a = r(Foundation.log(trainingSigmas[t - 1])), b = r(Foundation.log(trainingSigmas[0]))
      let line =
        precision == .float32 ? Reference.torchLinspaceFloat32(a, b, n + 1) : Reference.linspace(a, b, n + 1)
      sigmas = line.map { r(Foundation.exp($0)) }
    } else {
      sigmas = steps.map { Reference.interp($0, trainingSigmas) }
    }
    if config.useKarrasSigmas && family != .eulerAncestralDiscrete {
      let custom = family == .eulerDiscrete
      sigmas = Self.karrasSigmas(
        sigmaMin: (custom ? config.sigmaMin : nil) ?? sigmas[sigmas.count - 1],
        sigmaMax: (custom ? config.sigmaMax : nil) ?? sigmas[0], count: n)
      steps = sigmas.map { sigmaToTimestep($0) }
    }
    let final = family == .eulerDiscrete ? finalSigma(config.finalSigmasType) : 0
    sigmas = (sigmas + [final]).map(r)
    if family == .eulerDiscrete && config.timestepType == .continuous && config.predictionType == .vPrediction
    {
      steps = sigmas.dropLast().map { r(0.25 * r(Foundation.log($0))) }
    } else {
      steps = steps.map(r)
    }
    if family == .heunDiscrete {
      // Heun evaluates twice per step: inner sigmas and all but the first timestep repeat.
      sigmas = [sigmas[0]] + sigmas.dropFirst().dropLast().flatMap { [$0, $0] } + [sigmas[sigmas.count - 1]]
      steps = [steps[0]] + steps.dropFirst().flatMap { [$0, $0] }
    }
    let largest = sigmas.max() ?? 0
    let initSigma = config.timestepSpacing == .leading ? r(r(r(largest * largest) + 1).squareRoot()) : largest
    return InferenceSchedule(timesteps: steps, sigmas: sigmas, initNoiseSigma: initSigma)
  }

  // MARK: Sigmas

  /// Karras et al. (2022) sigmas, as diffusers' `_convert_to_karras`: `count` values from `sigmaMax` down
  /// to `sigmaMin`, evenly spaced in σ^(1/ρ).
  public static func karrasSigmas(sigmaMin: Double, sigmaMax: Double, count: Int, rho: Double = 7) -> [Double]
  {
    let minInv = Foundation.pow(sigmaMin, 1 / rho), maxInv = Foundation.pow(sigmaMax, 1 / rho)
    return Reference.linspace(0, 1, count).map { Foundation.pow(maxInv + $0 * (minInv - maxInv), rho) }
  }

  /// The fractional training timestep of `sigma`, as diffusers' `_sigma_to_t`: linear interpolation of
  /// ln σ between the two neighbouring training log-sigmas (clamped to the training range).
  public func sigmaToTimestep(_ sigma: Double) -> Double {
    let logSigma = Foundation.log(Swift.max(sigma, 1e-10))
    // low = the last index whose log-sigma ≤ ln σ (0 when none), at most T − 2.
    var low = 0
    for (k, s) in logSigmas.enumerated() where logSigma - s >= 0 { low = k }
    low = Swift.min(low, logSigmas.count - 2)
    let a = logSigmas[low], b = logSigmas[low + 1]
    // (low − ln σ) is float64 in numpy; (low − high) is a float32 difference.
    let w = Swift.min(Swift.max((a - logSigma) / precision.round(a - b), 0), 1)
    return (1 - w) * Double(low) + w * Double(low + 1)
  }

  // MARK: DDPM variance

  /// DDPM's posterior variance β̃ₜ = (1 − ᾱ_prev)/(1 − ᾱₜ) · (1 − ᾱₜ/ᾱ_prev) (`fixed_small`), clamped
  /// below at 1e-20. `previousTimestep` < 0 means ᾱ_prev = 1 (the last step).
  public func posteriorVariance(timestep t: Int, previousTimestep prev: Int) -> Double {
    let r = precision.round
    let a = alphasCumprod[t], aPrev = prev >= 0 ? alphasCumprod[prev] : 1
    let beta = r(1 - r(a / aPrev))
    return Swift.max(r(r(r(1 - aPrev) / r(1 - a)) * beta), r(1e-20))
  }

  /// The standard deviation of the noise a DDPM step from `t` to `previousTimestep` adds, for the config's
  /// `variance_type` (diffusers adds it only when t > 0).
  public func ddpmNoiseStd(timestep t: Int, previousTimestep prev: Int) -> Double {
    let r = precision.round
    switch config.varianceType {
    case .fixedSmall:
      return r(posteriorVariance(timestep: t, previousTimestep: prev).squareRoot())
    case .fixedSmallLog:
      return r(
        Foundation.exp(r(0.5 * r(Foundation.log(posteriorVariance(timestep: t, previousTimestep: prev))))))
    case .fixedLarge:
      let aPrev = prev >= 0 ? alphasCumprod[prev] : 1
      return r(r(1 - r(alphasCumprod[t] / aPrev)).squareRoot())
    }
  }
}

/// NumPy's and PyTorch's numerics, reproduced exactly where diffusers' results depend on them.
enum Reference {
  /// numpy.linspace(a, b, n): i·step + a, the last value exactly b.
  static func linspace(_ a: Double, _ b: Double, _ n: Int) -> [Double] {
    if n <= 0 { return [] }
    if n == 1 { return [a] }
    let step = (b - a) / Double(n - 1)
    var out = (0..<n).map { Double($0) * step + a }
    out[n - 1] = b
    return out
  }

  /// torch.linspace(a, b, n, dtype=float32) on the CPU: a float32 step, then a fused multiply-add from
  /// the start for the first half and from the end for the second half.
  static func torchLinspaceFloat32(_ a: Double, _ b: Double, _ n: Int) -> [Double] {
    if n <= 0 { return [] }
    let s = Float(a), e = Float(b)
    if n == 1 { return [Double(s)] }
    let step = (e - s) / Float(n - 1)
    return (0..<n).map { i in
      Double(i < n / 2 ? s.addingProduct(step, Float(i)) : e.addingProduct(-step, Float(n - 1 - i)))
    }
  }

  /// numpy.arange(start, stop, step) for floats: ⌈(stop − start)/step⌉ values start + i·δ, where
  /// δ = (start + step) − start.
  static func arange(_ start: Double, _ stop: Double, _ step: Double) -> [Double] {
    let count = Int(Swift.max(0, ((stop - start) / step).rounded(.up)))
    if count == 0 { return [] }
    let delta = (start + step) - start
    return (0..<count).map { $0 == 0 ? start : ($0 == 1 ? start + step : start + Double($0) * delta) }
  }

  /// numpy.round: to nearest, ties to even.
  static func round(_ x: Double) -> Double { x.rounded(.toNearestOrEven) }

  /// numpy.interp(x, arange(fp.count), fp): linear interpolation, clamped to the end values.
  static func interp(_ x: Double, _ fp: [Double]) -> Double {
    let n = fp.count
    if x.isNaN { return x }
    if x >= Double(n - 1) { return fp[n - 1] }
    if x < 0 { return fp[0] }
    let j = Int(x.rounded(.down))
    if x == Double(j) { return fp[j] }
    let slope = fp[j + 1] - fp[j]  // divided by x[j + 1] − x[j] = 1
    return slope * (x - Double(j)) + fp[j]
  }
}
