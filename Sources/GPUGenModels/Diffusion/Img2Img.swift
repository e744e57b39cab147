// Image-to-image (SDEdit, Meng et al. 2022) with diffusers' semantics: the N-step schedule is cut to its last
// int(N·s) steps and the image is noised to the first of them, as the scheduler's `add_noise` does
// (√ᾱ·x + √(1−ᾱ)·z for DDPM/DDIM, α·x + σα·z for DPM-Solver, x + σ·z for Euler and Heun), with the Philox
// noise sampling draws (seed, image, step 0). Two departures, both at the ends: strength 1 starts from the
// noise alone, so it is plain sampling bit for bit (diffusers keeps √ᾱ_T of the image), and a cut that keeps
// no step returns the image unchanged without evaluating the model.
import Foundation

/// SDEdit image-to-image on any sampler.
public enum Img2Img {
  /// The steps that run: min(int(N·s), N), as diffusers' `get_timesteps`.
  public static func keptSteps(steps n: Int, strength s: Double) -> Int { Swift.min(Int(Double(n) * s), n) }

  /// The plan of `kind` with `steps` steps (nil: the sampler's default) at `strength` s ∈ [0, 1]: the last
  /// int(N·s) steps (Heun: their evaluations), noise keys and multistep history as a fresh diffusers scheduler
  /// with `set_begin_index` would have them, and the image and noise scales of the start; `bounding` overrides
  /// the scheduler config's x̂₀ clipping.
  public static func plan(
    _ kind: SamplerKind, schedulerConfig url: URL?, steps: Int?, strength: Double, eta: Double = 0,
    karras: Bool = false, bounding: X0Bounding = .scheduler
  ) throws -> SamplingPlan {
    try SamplingBounds.checkEta(eta)
    guard strength >= 0 && strength <= 1 else {
      throw ModelError.input("--strength must lie in [0, 1], got \(strength)")
    }
    let c = try SamplerPlanner.config(kind, schedulerConfig: url, karras: karras, bounding: bounding)
    let schedule = try NoiseSchedule(config: c)
    let n = steps ?? (kind == .ddpm ? c.numTrainTimesteps : 20)
    guard n >= 1 else { throw ModelError.input("--steps must be positive") }
    let start = n - keptSteps(steps: n, strength: strength)
    // Heun evaluates twice per step; its first-order evaluations sit at even places.
    let begin = start * (kind == .heun ? 2 : 1)
    var p = try SamplerPlanner.plan(kind, schedule: schedule, steps: n, eta: eta, restartingAt: begin)
    guard start > 0 else { return p }
    p.evaluations = Array(p.evaluations.dropFirst(begin))
    p.firstStep = begin
    guard start < n else {
      (p.imageScale, p.initNoiseSigma) = (1, 0)
      return p
    }
    let inf = try schedule.inference(numInferenceSteps: n)
    let r = schedule.precision.round
    switch kind {
    case .ddpm, .ddim:
      let a = schedule.alphasCumprod[Int(inf.timesteps[start])]
      (p.imageScale, p.initNoiseSigma) = (r(a.squareRoot()), r(r(1 - a).squareRoot()))
    case .dpmpp2m, .dpmpp2mSDE, .dpmpp3mSDE, .unipc:
      let s = inf.sigmas[start], alpha = 1 / (s * s + 1).squareRoot()
      (p.imageScale, p.initNoiseSigma) = (alpha, s * alpha)
    case .euler, .eulerA, .heun:
      (p.imageScale, p.initNoiseSigma) = (1, inf.sigmas[begin])
    }
    return p
  }

  /// Edits `count` images (values in [−1, 1], count × C × H × W) with a plan from `plan(…)`: noise keyed by
  /// `seed` and the image index as `gpugen sample` draws it, classes cycled. An empty plan returns the images.
  public static func run(
    _ model: any Denoiser, images: [Float], count: Int, classLabels: [Int]?, plan: SamplingPlan, seed: UInt64,
    batchSize: Int, progress: (Int) -> Void = { _ in }
  ) throws -> [Float] {
    let per = model.imageShape.reduce(1, *)
    guard images.count == count * per else {
      throw ModelError.input(
        "\(images.count) image values given; \(count) images of \(model.imageShape) need \(count * per)")
    }
    if plan.evaluations.isEmpty { return images }
    return try DiffusionSampler(unet: model, plan: plan).sample(
      SampleRequest(
        count: count, batchSize: batchSize, seed: seed, classLabels: classLabels,
        images: plan.imageScale != 0 ? images : nil),
      progress: progress)
  }
}
