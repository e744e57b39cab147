// DDIM inversion: deterministic DDIM run backwards, from an image up the schedule to the noise that DDIM
// sampling maps back to it (Song et al. 2021, §4.3), step for step as diffusers' `DDIMInverseScheduler`.
//
// Inverse step at ascending timestep t (diffusers' loop evaluates the model at t on the sample still at the
// level before it): s = min(t − T/N, T − 1), ᾱ_s (the initial ᾱ, 1 with set_alpha_to_one, where s < 0),
//   x̂₀ = (x − √(1−ᾱ_s)·ε̂) / √ᾱ_s        (or the v / x₀ forms),   x_t = √ᾱ_t·x̂₀ + √(1−ᾱ_t)·ε̂,
// with clipping off. That is the DDIM update with other coefficients, so it runs as a `SamplingPlan` through
// the same fused kernel, with the images as the "initial noise".
import Foundation

/// DDIM inversion of images to the noise DDIM sampling maps back to them, and that reconstruction.
public enum DDIMInversion {
  /// The inverse plan on a DDIM-family schedule: `steps` ascending evaluations, clipping off.
  public static func plan(schedule: NoiseSchedule, steps n: Int) throws -> SamplingPlan {
    let c = schedule.config
    guard c.family == .ddim else {
      throw ModelError.input("DDIM inversion needs a DDIM schedule, not \(c.family.rawValue)")
    }
    guard c.timestepSpacing != .linspace else {
      throw ModelError.input(
        "DDIM inversion takes timestep_spacing leading or trailing (as diffusers' DDIMInverseScheduler), not linspace"
      )
    }
    let inf = try schedule.inference(numInferenceSteps: n)
    let T = c.numTrainTimesteps, ac = schedule.alphasCumprod
    let r = schedule.precision.round
    var evals: [SamplingPlan.Evaluation] = []
    for tv in inf.timesteps.reversed() {
      let t = Int(tv)
      guard t >= 0 && t < T else {
        throw ModelError.input("timestep \(t) lies outside the \(T) training steps")
      }
      let s = Swift.min(t - T / n, T - 1)
      var u = SamplerUpdate()
      SamplerPlanner.discretePrediction(
        c.predictionType, a: s >= 0 ? ac[s] : schedule.finalAlphaCumprod, r: r, into: &u)
      u.c0 = r(ac[t].squareRoot())
      u.ce = r(r(1 - ac[t]).squareRoot())
      evals.append(SamplingPlan.Evaluation(timestep: tv, inputScale: 1, update: u))
    }
    return SamplingPlan(initNoiseSigma: 1, evaluations: evals)
  }

  /// The inverse plan for a model's scheduler_config.json (nil: DDIMScheduler's defaults), read as DDIM.
  public static func plan(schedulerConfig url: URL?, steps: Int) throws -> SamplingPlan {
    try plan(
      schedule: try NoiseSchedule(config: try SamplerPlanner.config(.ddim, schedulerConfig: url)),
      steps: steps)
  }

  /// The noise of `count` images (values in [−1, 1], count × C × H × W) after `steps` inverse DDIM steps;
  /// a class-conditional model inverts under `classLabels` (cycled). `progress` counts model evaluations.
  public static func invert(
    _ model: any Denoiser, images: [Float], count: Int, classLabels: [Int]?, steps: Int,
    schedulerConfig: URL?,
    batchSize: Int, progress: (Int) -> Void = { _ in }
  ) throws -> [Float] {
    let plan = try plan(schedulerConfig: schedulerConfig, steps: steps)
    return try DiffusionSampler(unet: model, plan: plan).sample(
      SampleRequest(
        count: count, batchSize: batchSize, seed: 0, classLabels: classLabels, initialNoise: images),
      progress: progress)
  }

  /// Images from inverted `noise` by `steps` deterministic DDIM steps (η = 0), as `gpugen sample --noise
  /// --sampler ddim` runs them; `clip` nil clips x̂₀ as the scheduler config says, false never (the exact
  /// reverse of the inversion).
  public static func reconstruct(
    _ model: any Denoiser, noise: [Float], count: Int, classLabels: [Int]?, steps: Int, schedulerConfig: URL?,
    batchSize: Int, clip: Bool? = nil, progress: (Int) -> Void = { _ in }
  ) throws -> [Float] {
    var config = try SamplerPlanner.config(.ddim, schedulerConfig: schedulerConfig)
    if let clip { config.clipSample = config.clipSample && clip }
    let plan = try SamplerPlanner.plan(.ddim, schedule: try NoiseSchedule(config: config), steps: steps)
    return try DiffusionSampler(unet: model, plan: plan).sample(
      SampleRequest(
        count: count, batchSize: batchSize, seed: 0, classLabels: classLabels, initialNoise: noise),
      progress: progress)
  }
}
