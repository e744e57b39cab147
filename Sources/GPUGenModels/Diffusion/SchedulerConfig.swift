// diffusers' `scheduler_config.json`, read the way a given diffusers scheduler class reads it: the
// fields that class's `__init__` takes, that class's defaults for missing ones, every other field
// ignored (as `from_config` ignores them). Unsupported values are errors naming the field.
import Foundation

/// The diffusers scheduler classes whose schedules gpugen reproduces.
public enum SchedulerFamily: String, CaseIterable, Sendable {
  /// DDPMScheduler (ancestral sampling, Ho et al. 2020).
  case ddpm = "DDPMScheduler"
  /// DDIMScheduler (Song et al. 2021).
  case ddim = "DDIMScheduler"
  /// DPMSolverMultistepScheduler (DPM-Solver and DPM-Solver++, Lu et al. 2022).
  case dpmSolverMultistep = "DPMSolverMultistepScheduler"
  /// EulerDiscreteScheduler (Karras et al. 2022, Algorithm 2 without churn).
  case eulerDiscrete = "EulerDiscreteScheduler"
  /// EulerAncestralDiscreteScheduler.
  case eulerAncestralDiscrete = "EulerAncestralDiscreteScheduler"
  /// HeunDiscreteScheduler (Karras et al. 2022, second order).
  case heunDiscrete = "HeunDiscreteScheduler"
  /// UniPCMultistepScheduler (UniPC predictor–corrector, Zhao et al. 2023).
  case uniPCMultistep = "UniPCMultistepScheduler"

  /// Whether the family steps in sigma space (scheduler.sigmas), not with ᾱ indexed by timestep.
  public var usesSigmas: Bool {
    switch self {
    case .ddpm, .ddim: return false
    case .dpmSolverMultistep, .eulerDiscrete, .eulerAncestralDiscrete, .heunDiscrete, .uniPCMultistep:
      return true
    }
  }

  /// The beta schedules the diffusers class accepts.
  public var betaSchedules: [BetaSchedule] {
    switch self {
    case .ddpm: return [.linear, .scaledLinear, .squaredcosCapV2, .laplace, .sigmoid]
    case .heunDiscrete: return [.linear, .scaledLinear, .squaredcosCapV2, .exp]
    case .ddim, .dpmSolverMultistep, .eulerDiscrete, .eulerAncestralDiscrete, .uniPCMultistep:
      return [.linear, .scaledLinear, .squaredcosCapV2]
    }
  }
}

/// How betas are laid out over the training timesteps (diffusers' `beta_schedule`).
public enum BetaSchedule: String, CaseIterable, Sendable {
  /// β evenly spaced from beta_start to beta_end.
  case linear
  /// √β evenly spaced (Stable Diffusion's schedule).
  case scaledLinear = "scaled_linear"
  /// The "cosine" schedule: betas from ᾱ(t) = cos²((t + 0.008)/1.008 · π/2), capped at 0.999.
  case squaredcosCapV2 = "squaredcos_cap_v2"
  /// β = sigmoid(linspace(−6, 6))·(beta_end − beta_start) + beta_start (DDPM only).
  case sigmoid
  /// Betas from a Laplace log-SNR ᾱ(t) (DDPM only).
  case laplace
  /// Betas from ᾱ(t) = exp(−12t) (Heun only).
  case exp
}

/// What the denoiser predicts (diffusers' `prediction_type`).
public enum PredictionType: String, CaseIterable, Sendable {
  /// The added noise ε.
  case epsilon
  /// v = √ᾱ·ε − √(1 − ᾱ)·x₀ (Salimans & Ho 2022).
  case vPrediction = "v_prediction"
  /// The clean sample x₀.
  case sample
}

/// How inference timesteps are spread over the training range (diffusers' `timestep_spacing`).
public enum TimestepSpacing: String, CaseIterable, Sendable {
  /// Multiples of T // N from 0 (plus steps_offset).
  case leading
  /// Multiples of T/N counted down from T, minus 1 (always includes T − 1).
  case trailing
  /// N evenly spaced points over [0, T − 1].
  case linspace
}

/// DDPM's `variance_type` (the learned types need model outputs and are not supported).
public enum DDPMVarianceType: String, CaseIterable, Sendable {
  /// The posterior variance β̃ₜ.
  case fixedSmall = "fixed_small"
  /// β̃ₜ through exp(½ ln β̃ₜ) (the same std, computed in log space).
  case fixedSmallLog = "fixed_small_log"
  /// βₜ (between the visited timesteps).
  case fixedLarge = "fixed_large"
}

/// DPM-Solver's `algorithm_type`.
public enum DPMSolverAlgorithm: String, CaseIterable, Sendable {
  /// DPM-Solver++ (data prediction).
  case dpmSolverPlusPlus = "dpmsolver++"
  /// SDE DPM-Solver++ (stochastic).
  case sdeDPMSolverPlusPlus = "sde-dpmsolver++"
  /// DPM-Solver (noise prediction; deprecated in diffusers).
  case dpmSolver = "dpmsolver"
  /// SDE DPM-Solver (deprecated in diffusers).
  case sdeDPMSolver = "sde-dpmsolver"
}

/// DPM-Solver's second-order `solver_type`.
public enum DPMSolverType: String, CaseIterable, Sendable {
  /// The midpoint second-order update.
  case midpoint
  /// The Heun second-order update.
  case heun
}

/// UniPC's `solver_type`: the B(h) of the UniPC update.
public enum UniPCSolverType: String, CaseIterable, Sendable {
  /// B(h) = h (recommended by the paper for unconditional sampling with few steps).
  case bh1
  /// B(h) = e^h − 1.
  case bh2
}

/// The last sigma of a sigma schedule (`final_sigmas_type`).
public enum FinalSigmasType: String, CaseIterable, Sendable {
  /// End at σ = 0 (a clean sample).
  case zero
  /// End at σ₀, the smallest training sigma.
  case sigmaMin = "sigma_min"
}

/// Euler's `interpolation_type` between training sigmas.
public enum SigmaInterpolation: String, CaseIterable, Sendable {
  /// σ interpolated linearly in t between training sigmas.
  case linear
  /// N + 1 sigmas evenly spaced in ln σ between the extremes.
  case logLinear = "log_linear"
}

/// Euler's `timestep_type`: discrete timesteps, or EDM's continuous 0.25·ln σ (v-prediction only).
public enum TimestepType: String, CaseIterable, Sendable {
  /// Training-timestep values.
  case discrete
  /// 0.25·ln σ (only with v_prediction, as in diffusers).
  case continuous
}

/// A scheduler config that cannot be used, naming the field and the value.
public enum SchedulerConfigError: Error, CustomStringConvertible, Equatable {
  /// The file is not JSON (even with NaN/Infinity allowed).
  case invalidJSON(String)
  /// A value diffusers or gpugen does not support for this field.
  case unsupported(field: String, value: String, reason: String)
  /// A value of the wrong type or out of range.
  case invalidValue(field: String, value: String, expected: String)

  /// The offending field.
  public var field: String? {
    switch self {
    case .invalidJSON: return nil
    case .unsupported(let f, _, _), .invalidValue(let f, _, _): return f
    }
  }

  /// The message, naming the field and the value.
  public var description: String {
    switch self {
    case .invalidJSON(let m): return "scheduler config: \(m)"
    case .unsupported(let f, let v, let reason): return "scheduler config: unsupported \(f) = \(v): \(reason)"
    case .invalidValue(let f, let v, let expected):
      return "scheduler config: \(f) = \(v): expected \(expected)"
    }
  }
}

/// A diffusers scheduler config as one scheduler class reads it; fields default as in that class.
public struct SchedulerConfig: Sendable, Equatable {
  /// The scheduler class whose reading (defaults, accepted fields) this is.
  public var family: SchedulerFamily
  /// `_class_name` from the file (nil when built in code or absent); may name a class not in `family`.
  public var className: String?
  /// Every member of the JSON object, including those this family ignores.
  public var fields: [String: JSONValue]

  /// `num_train_timesteps` (T).
  public var numTrainTimesteps = 1000
  /// The most training timesteps a config may ask for (diffusers' models use 1000–4000; the schedule's
  /// tables are allocated from this number before anything else runs).
  public static let maxTrainTimesteps = 1_000_000
  /// `beta_start`.
  public var betaStart = 0.0001
  /// `beta_end`.
  public var betaEnd = 0.02
  /// `beta_schedule`.
  public var betaSchedule = BetaSchedule.linear
  /// `trained_betas`: explicit betas that replace the schedule when present.
  public var trainedBetas: [Double]?
  /// `prediction_type`.
  public var predictionType = PredictionType.epsilon
  /// `timestep_spacing`.
  public var timestepSpacing = TimestepSpacing.leading
  /// `steps_offset` (added to `leading` timesteps).
  public var stepsOffset = 0
  /// `rescale_betas_zero_snr`: rescale betas so ᾱ at the last training step is 0.
  public var rescaleBetasZeroSNR = false
  /// `clip_sample` (DDPM, DDIM, Heun): clip the predicted x₀ to ±`clipSampleRange`.
  public var clipSample = false
  /// `clip_sample_range`.
  public var clipSampleRange = 1.0
  /// `thresholding` (DDPM, DDIM, DPM-Solver, UniPC): diffusers' dynamic thresholding of x̂₀; it takes
  /// precedence over `clip_sample`.
  public var thresholding = false
  /// `dynamic_thresholding_ratio`: the quantile of |x̂₀| dynamic thresholding takes.
  public var dynamicThresholdingRatio = 0.995
  /// `sample_max_value`: the largest threshold dynamic thresholding uses.
  public var sampleMaxValue = 1.0

  /// Whether `family`'s diffusers class takes `thresholding` (DDPM, DDIM, DPM-Solver, UniPC).
  public static func supportsThresholding(_ family: SchedulerFamily) -> Bool {
    [.ddpm, .ddim, .dpmSolverMultistep, .uniPCMultistep].contains(family)
  }

  /// The dynamic thresholding this config asks for (nil: none, or a family without it).
  public var dynamicThreshold: DynamicThreshold? {
    thresholding && Self.supportsThresholding(family)
      ? DynamicThreshold(ratio: dynamicThresholdingRatio, maxValue: sampleMaxValue) : nil
  }
  /// `variance_type` (DDPM).
  public var varianceType = DDPMVarianceType.fixedSmall
  /// `set_alpha_to_one` (DDIM): ᾱ before the first step is 1, else ᾱ₀.
  public var setAlphaToOne = true
  /// `solver_order` (DPM-Solver): 1, 2 or 3.
  public var solverOrder = 2
  /// `algorithm_type` (DPM-Solver).
  public var algorithmType = DPMSolverAlgorithm.dpmSolverPlusPlus
  /// `solver_type` (DPM-Solver).
  public var solverType = DPMSolverType.midpoint
  /// `solver_type` (UniPC): bh1 or bh2 (diffusers reads midpoint, heun and logrho as bh2).
  public var uniPCSolverType = UniPCSolverType.bh2
  /// `predict_x0` (UniPC): run the update on x̂₀ (data prediction), else on ε̂.
  public var predictX0 = true
  /// `disable_corrector` (UniPC): the step indices after which the corrector is skipped.
  public var disableCorrector: [Int] = []
  /// `lower_order_final` (DPM-Solver, UniPC): lower the order for the last steps.
  public var lowerOrderFinal = true
  /// `euler_at_final` (DPM-Solver): a first-order last step.
  public var eulerAtFinal = false
  /// `lambda_min_clipped` (DPM-Solver): timesteps whose log-SNR λ is below it are skipped.
  public var lambdaMinClipped = -Double.infinity
  /// `use_karras_sigmas` (DPM-Solver, Euler, Heun, UniPC): Karras et al. (ρ = 7) sigma spacing.
  public var useKarrasSigmas = false
  /// `final_sigmas_type` (DPM-Solver, Euler, UniPC).
  public var finalSigmasType = FinalSigmasType.zero
  /// `interpolation_type` (Euler).
  public var interpolationType = SigmaInterpolation.linear
  /// `timestep_type` (Euler).
  public var timestepType = TimestepType.discrete
  /// `sigma_min` (Euler, UniPC): overrides the smallest Karras sigma.
  public var sigmaMin: Double?
  /// `sigma_max` (Euler, UniPC): overrides the largest Karras sigma.
  public var sigmaMax: Double?

  /// The defaults of `family`'s diffusers class (what `Class()` gives).
  public init(family: SchedulerFamily) {
    self.family = family
    className = nil
    fields = [:]
    switch family {
    case .ddpm, .ddim:
      timestepSpacing = .leading
      clipSample = true
    case .dpmSolverMultistep, .eulerDiscrete, .eulerAncestralDiscrete, .uniPCMultistep:
      timestepSpacing = .linspace
    case .heunDiscrete:
      timestepSpacing = .linspace
      betaStart = 0.00085
      betaEnd = 0.012
    }
  }

  /// Reads `scheduler_config.json` text as `family`'s class would (nil: the class named by `_class_name`,
  /// which must then be one of `SchedulerFamily`).
  public init(json text: String, family: SchedulerFamily? = nil) throws {
    let value: JSONValue
    do { value = try JSONValue(parsing: text) } catch let e as JSONValue.ParseError {
      throw SchedulerConfigError.invalidJSON(e.description)
    }
    guard let object = value.object else {
      throw SchedulerConfigError.invalidJSON("the top-level value is \(value.summary), not an object")
    }
    try self.init(fields: object, family: family)
  }

  /// Reads a `scheduler_config.json` file (see `init(json:family:)`).
  public init(contentsOf url: URL, family: SchedulerFamily? = nil) throws {
    try self.init(json: try String(contentsOf: url, encoding: .utf8), family: family)
  }

  /// Reads the members of a config object as `family`'s class would (see `init(json:family:)`).
  public init(fields: [String: JSONValue], family: SchedulerFamily? = nil) throws {
    let className = fields["_class_name"]?.string
    let resolved: SchedulerFamily
    if let family {
      resolved = family
    } else if let name = className, let f = SchedulerFamily(rawValue: name) {
      resolved = f
    } else {
      throw SchedulerConfigError.unsupported(
        field: "_class_name", value: fields["_class_name"]?.summary ?? "(missing)",
        reason: "not one of \(SchedulerFamily.allCases.map(\.rawValue).joined(separator: ", ")); "
          + "pass a family to read the config as one of them")
    }
    self.init(family: resolved)
    self.className = className
    self.fields = fields
    try read(fields)
    try validate()
  }

  /// The same file read by another scheduler class (its fields and defaults).
  public func reinterpreted(as family: SchedulerFamily) throws -> SchedulerConfig {
    try SchedulerConfig(fields: fields, family: family)
  }

  /// The fields `family`'s diffusers class takes (others are ignored, as diffusers ignores them).
  static func acceptedFields(_ family: SchedulerFamily) -> Set<String> {
    var f: Set<String> = [
      "num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "prediction_type",
      "timestep_spacing", "steps_offset",
    ]
    switch family {
    case .ddpm:
      f.formUnion([
        "variance_type", "clip_sample", "clip_sample_range", "thresholding", "dynamic_thresholding_ratio",
        "sample_max_value", "rescale_betas_zero_snr",
      ])
    case .ddim:
      f.formUnion([
        "clip_sample", "clip_sample_range", "set_alpha_to_one", "thresholding", "dynamic_thresholding_ratio",
        "sample_max_value", "rescale_betas_zero_snr",
      ])
    case .dpmSolverMultistep:
      f.formUnion([
        "solver_order", "thresholding", "dynamic_thresholding_ratio", "sample_max_value", "algorithm_type",
        "solver_type", "lower_order_final",
        "euler_at_final",
        "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas", "use_flow_sigmas",
        "final_sigmas_type", "lambda_min_clipped", "variance_type", "rescale_betas_zero_snr",
        "use_dynamic_shifting",
      ])
    case .eulerDiscrete:
      f.formUnion([
        "interpolation_type", "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "sigma_min",
        "sigma_max", "timestep_type", "rescale_betas_zero_snr", "final_sigmas_type",
      ])
    case .eulerAncestralDiscrete:
      f.formUnion(["rescale_betas_zero_snr"])
    case .heunDiscrete:
      f.formUnion([
        "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "clip_sample", "clip_sample_range",
      ])
    case .uniPCMultistep:
      f.formUnion([
        "solver_order", "thresholding", "dynamic_thresholding_ratio", "sample_max_value", "predict_x0",
        "solver_type", "lower_order_final", "disable_corrector",
        "solver_p", "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "use_flow_sigmas",
        "final_sigmas_type", "rescale_betas_zero_snr", "use_dynamic_shifting", "sigma_min", "sigma_max",
      ])
    }
    return f
  }

  private mutating func read(_ all: [String: JSONValue]) throws {
    // diffusers drops the keys listed in `_use_default_values` (they were defaults when saved).
    let defaulted = Set((all["_use_default_values"]?.array ?? []).compactMap(\.string))
    let accepted = Self.acceptedFields(family)
    let f = all.filter { accepted.contains($0.key) && !defaulted.contains($0.key) }

    func number(_ key: String) throws -> Double? {
      guard let v = f[key] else { return nil }
      guard let d = v.double else {
        throw SchedulerConfigError.invalidValue(field: key, value: v.summary, expected: "a number")
      }
      return d
    }
    func integer(_ key: String) throws -> Int? {
      guard let d = try number(key) else { return nil }
      guard d.isFinite, d == d.rounded(), abs(d) < 1e15 else {
        throw SchedulerConfigError.invalidValue(field: key, value: f[key]!.summary, expected: "an integer")
      }
      return Int(d)
    }
    // Python reads a null flag as false.
    func flag(_ key: String) throws -> Bool? {
      guard let v = f[key] else { return nil }
      if v == .null { return false }
      guard let b = v.bool else {
        throw SchedulerConfigError.invalidValue(field: key, value: v.summary, expected: "true or false")
      }
      return b
    }
    func choice<E: RawRepresentable & CaseIterable>(_ key: String, _: E.Type) throws -> E?
    where E.RawValue == String {
      guard let v = f[key] else { return nil }
      guard let s = v.string, let e = E(rawValue: s) else {
        throw SchedulerConfigError.unsupported(
          field: key, value: v.summary,
          reason: "expected one of " + E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))
      }
      return e
    }
    func unsupportedIfTrue(_ key: String, _ reason: String) throws {
      if try flag(key) == true {
        throw SchedulerConfigError.unsupported(field: key, value: "true", reason: reason)
      }
    }

    if let v = try integer("num_train_timesteps") { numTrainTimesteps = v }
    if let v = try number("beta_start") { betaStart = v }
    if let v = try number("beta_end") { betaEnd = v }
    if let v = try choice("beta_schedule", BetaSchedule.self) { betaSchedule = v }
    if let v = f["trained_betas"], v != .null {
      let betas = v.array?.compactMap(\.double)
      guard let betas, betas.count == v.array?.count else {
        throw SchedulerConfigError.invalidValue(
          field: "trained_betas", value: v.summary, expected: "a list of numbers")
      }
      trainedBetas = betas
    }
    if let v = try choice("prediction_type", PredictionType.self) { predictionType = v }
    if let v = try choice("timestep_spacing", TimestepSpacing.self) { timestepSpacing = v }
    if let v = try integer("steps_offset") { stepsOffset = v }
    if let v = try flag("rescale_betas_zero_snr") { rescaleBetasZeroSNR = v }
    if let v = try flag("clip_sample") { clipSample = v }
    if let v = try number("clip_sample_range") { clipSampleRange = v }
    if let v = try flag("set_alpha_to_one") { setAlphaToOne = v }
    if let v = try flag("thresholding") { thresholding = v }
    if let v = try number("dynamic_thresholding_ratio") { dynamicThresholdingRatio = v }
    if let v = try number("sample_max_value") { sampleMaxValue = v }
    // A null variance_type behaves as fixed_small in DDPM and as the default (none) in DPM-Solver.
    if let v = f["variance_type"], v != .null {
      if family == .dpmSolverMultistep {
        // DPM-Solver only acts on the learned types (it drops the variance channels); any other value,
        // such as a DDPM config's "fixed_small" read through from_config, is ignored as diffusers does.
        if v == .string("learned") || v == .string("learned_range") {
          throw SchedulerConfigError.unsupported(
            field: "variance_type", value: v.summary, reason: "learned variances are not supported")
        }
      } else if let t = try choice("variance_type", DDPMVarianceType.self) {
        varianceType = t
      }
    }
    if let v = try integer("solver_order") { solverOrder = v }
    if let v = f["algorithm_type"], v.string == "deis" {
      algorithmType = .dpmSolverPlusPlus  // diffusers maps DEIS configs to DPM-Solver++.
    } else if let v = try choice("algorithm_type", DPMSolverAlgorithm.self) {
      algorithmType = v
    }
    if family == .uniPCMultistep {
      if let v = f["solver_type"] {
        // diffusers registers the DPM-Solver/DEIS types as bh2 and refuses the rest.
        guard let s = v.string, ["bh1", "bh2", "midpoint", "heun", "logrho"].contains(s) else {
          throw SchedulerConfigError.unsupported(
            field: "solver_type", value: v.summary, reason: "expected \"bh1\" or \"bh2\"")
        }
        uniPCSolverType = s == "bh1" ? .bh1 : .bh2
      }
    } else if let v = f["solver_type"], ["logrho", "bh1", "bh2"].contains(v.string ?? "") {
      solverType = .midpoint  // diffusers maps DEIS/UniPC solver types to midpoint.
    } else if let v = try choice("solver_type", DPMSolverType.self) {
      solverType = v
    }
    if let v = try flag("lower_order_final") { lowerOrderFinal = v }
    if let v = try flag("predict_x0") { predictX0 = v }
    if let v = f["disable_corrector"], v != .null {
      let steps = v.array?.compactMap(\.double)
      guard let steps, steps.count == v.array?.count,
        steps.allSatisfy({ $0 == $0.rounded() && abs($0) < 1e9 })
      else {
        throw SchedulerConfigError.invalidValue(
          field: "disable_corrector", value: v.summary, expected: "a list of step indices")
      }
      disableCorrector = steps.map { Int($0) }
    }
    if let v = f["solver_p"], v != .null {
      throw SchedulerConfigError.unsupported(
        field: "solver_p", value: v.summary, reason: "a separate predictor scheduler is not supported")
    }
    if let v = try flag("euler_at_final") { eulerAtFinal = v }
    if let v = try number("lambda_min_clipped") { lambdaMinClipped = v }
    if let v = try flag("use_karras_sigmas") { useKarrasSigmas = v }
    try unsupportedIfTrue("use_exponential_sigmas", "exponential sigmas are not implemented")
    try unsupportedIfTrue("use_beta_sigmas", "beta sigmas are not implemented")
    try unsupportedIfTrue("use_lu_lambdas", "Lu lambdas are not implemented")
    try unsupportedIfTrue("use_flow_sigmas", "flow-matching sigmas are not implemented")
    try unsupportedIfTrue("use_dynamic_shifting", "dynamic shifting is not implemented")
    if let v = try choice("final_sigmas_type", FinalSigmasType.self) { finalSigmasType = v }
    if let v = try choice("interpolation_type", SigmaInterpolation.self) { interpolationType = v }
    if let v = try choice("timestep_type", TimestepType.self) { timestepType = v }
    if let v = f["sigma_min"], v != .null { sigmaMin = try number("sigma_min") }
    if let v = f["sigma_max"], v != .null { sigmaMax = try number("sigma_max") }
  }

  /// Checks the combination: values this family does not accept, and out-of-range numbers.
  public func validate() throws {
    func invalid(_ field: String, _ value: String, _ expected: String) -> SchedulerConfigError {
      .invalidValue(field: field, value: value, expected: expected)
    }
    guard (2...Self.maxTrainTimesteps).contains(numTrainTimesteps) else {
      throw invalid("num_train_timesteps", "\(numTrainTimesteps)", "2...\(Self.maxTrainTimesteps)")
    }
    if let betas = trainedBetas {
      guard betas.count == numTrainTimesteps else {
        throw invalid(
          "trained_betas", "\(betas.count) values", "num_train_timesteps = \(numTrainTimesteps) values")
      }
      if let i = betas.firstIndex(where: { !($0 >= 0 && $0 < 1) }) {
        throw invalid("trained_betas", "\(betas[i]) at index \(i)", "betas in [0, 1)")
      }
    } else if !family.betaSchedules.contains(betaSchedule) {
      throw SchedulerConfigError.unsupported(
        field: "beta_schedule", value: "\"\(betaSchedule.rawValue)\"",
        reason: "\(family.rawValue) accepts " + family.betaSchedules.map(\.rawValue).joined(separator: ", "))
    }
    // β must lie in (0, 1): β = 1 makes ᾱ = 0 and every later step divides by it; β ≤ 0 is not a noise level.
    if trainedBetas == nil && [.linear, .scaledLinear, .sigmoid].contains(betaSchedule) {
      for (field, v) in [("beta_start", betaStart), ("beta_end", betaEnd)] where !(v > 0 && v < 1) {
        throw invalid(field, "\(v)", "a number in (0, 1)")
      }
    }
    guard stepsOffset >= 0 else { throw invalid("steps_offset", "\(stepsOffset)", "≥ 0") }
    guard clipSampleRange > 0, clipSampleRange.isFinite else {
      throw invalid("clip_sample_range", "\(clipSampleRange)", "> 0")
    }
    guard dynamicThresholdingRatio >= 0, dynamicThresholdingRatio <= 1 else {
      throw invalid("dynamic_thresholding_ratio", "\(dynamicThresholdingRatio)", "a number in [0, 1]")
    }
    guard sampleMaxValue > 0, sampleMaxValue.isFinite else {
      throw invalid("sample_max_value", "\(sampleMaxValue)", "> 0")
    }
    guard (1...3).contains(solverOrder) else { throw invalid("solver_order", "\(solverOrder)", "1, 2 or 3") }
    if family == .dpmSolverMultistep && finalSigmasType == .zero
      && [.dpmSolver, .sdeDPMSolver].contains(algorithmType)
    {
      throw SchedulerConfigError.unsupported(
        field: "final_sigmas_type", value: "\"zero\"",
        reason: "algorithm_type \(algorithmType.rawValue) needs \"sigma_min\" (as in diffusers)")
    }
    if family == .uniPCMultistep && !predictX0 && finalSigmasType == .zero {
      throw SchedulerConfigError.unsupported(
        field: "final_sigmas_type", value: "\"zero\"",
        reason: "predict_x0 false needs \"sigma_min\" (diffusers' last step is NaN at σ = 0)")
    }
    if let s = sigmaMin, !(s > 0) { throw invalid("sigma_min", "\(s)", "> 0") }
    if let s = sigmaMax, !(s > 0) { throw invalid("sigma_max", "\(s)", "> 0") }
  }
}
