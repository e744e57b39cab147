// DDIM inversion and img2img: parity with diffusers' DDIMInverseScheduler and its img2img pipeline on
// fixtures (Fixtures/editing, made by make_fixtures.py there), the strength 0 / 1 properties, the inversion
// round trip, every parameter, and the commands (`gpugen encode` on a diffusion model, `gpugen img2img`,
// `gpugen sample --no-clip`, `gpugen bench editing`) with their bad input.
import Foundation
import GPUGenNN
import XCTest

@testable import GPUGenModels

/// The fixtures' fake model on (N, 1, 4, 4), plus a class-dependent shift so that ignored labels show.
struct FakeConditionalDenoiser: Denoiser {
  var device: Device = .cpu
  var imageShape: [Int] { [1, 4, 4] }
  var classCount: Int? { 3 }
  func callAsFunction(_ x: Tensor, timesteps: [Double], classLabels: [Int]?) throws -> Tensor {
    let v = try x.toArray(), per = 16
    var out = [Float](repeating: 0, count: v.count)
    for i in 0..<x.shape[0] {
      let t = timesteps.count == x.shape[0] ? timesteps[i] : timesteps[0]
      let shift = Float(classLabels.map { $0[i] } ?? 0) * 0.05
      for k in 0..<per {
        out[i * per + k] = 0.3 * v[i * per + k] + 0.1 * Float(sin(t / 100 + Double(k))) + shift
      }
    }
    return try Tensor(out, shape: x.shape, on: device)
  }
}

final class EditingTests: XCTestCase {
  static let kinds: [String: SamplerKind] = [
    "DDPMScheduler": .ddpm, "DDIMScheduler": .ddim, "DPMSolverMultistepScheduler": .dpmpp2m,
    "EulerDiscreteScheduler": .euler, "EulerAncestralDiscreteScheduler": .eulerA,
    "HeunDiscreteScheduler": .heun, "UniPCMultistepScheduler": .unipc,
  ]

  func fixtures(_ prefix: String) throws -> [URL] {
    let root = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/editing", withExtension: nil))
    return try FileManager.default.contentsOfDirectory(at: root, includingPropertiesForKeys: nil)
      .filter { $0.lastPathComponent.hasPrefix(prefix) }.sorted { $0.path < $1.path }
  }

  /// Replays `plan` on a fixture's recorded samples, model outputs and noise; returns the worst relative error
  /// of `prev_sample`.
  func replay(_ plan: SamplingPlan, _ t: [String: TensorData], _ name: String) throws -> Double {
    let per = 32
    let timesteps = try XCTUnwrap(t["timestep"]).values
    XCTAssertEqual(plan.evaluations.count, timesteps.count, name)
    let sample = try XCTUnwrap(t["sample"]).values, out = try XCTUnwrap(t["model_output"]).values
    let noise = try XCTUnwrap(t["noise"]).values, drawn = try XCTUnwrap(t["noise_drawn"]).values
    let want = try XCTUnwrap(t["prev_sample"]).values
    var history = [[Double]](repeating: [Double](repeating: 0, count: per), count: 3)  // newest first
    var worst = 0.0
    for (s, e) in plan.evaluations.enumerated() where s < timesteps.count {
      XCTAssertEqual(Float(e.timestep), timesteps[s], accuracy: 1e-3, "\(name) step \(s) timestep")
      if e.stochastic { XCTAssertEqual(drawn[s], 1, "\(name) step \(s): noise drawn") }
      if let mi = t["model_input"]?.values {
        XCTAssertEqual(
          Float(Double(sample[s * per]) * e.inputScale), mi[s * per],
          accuracy: 1e-5 * Swift.max(1, abs(mi[s * per])),
          name)
      } else {
        XCTAssertEqual(e.inputScale, 1, name)
      }
      var aux = [Double](repeating: 0, count: per)
      for k in 0..<per {
        let r = e.update.apply(
          x: Double(sample[s * per + k]), m: Double(out[s * per + k]), prev: history[0][k],
          prev2: history[1][k], prev3: history[2][k], z: Double(noise[s * per + k]))
        let w = Double(want[s * per + k])
        worst = Swift.max(worst, abs(r.out - w) / Swift.max(1, abs(w)))
        aux[k] = r.aux
      }
      if e.update.writesAux { history = [aux] + history.prefix(2) }
    }
    return worst
  }

  func testDDIMInversionMatchesDiffusersInverseScheduler() throws {
    let cases = try fixtures("inversion_")
    XCTAssertGreaterThanOrEqual(cases.count, 5)
    for dir in cases {
      let file = try SafeTensors.read(contentsOf: dir.appendingPathComponent("steps.safetensors"))
      let meta = try JSONValue(parsing: try XCTUnwrap(file.metadata["case"]))
      let n = Int(try XCTUnwrap(meta["num_inference_steps"]?.double))
      let url = dir.appendingPathComponent("scheduler_config.json")
      let plan = try DDIMInversion.plan(schedulerConfig: url, steps: n)
      XCTAssertEqual(plan.initNoiseSigma, 1)
      XCTAssertEqual(
        try XCTUnwrap(file.tensors["x_0"]).values,
        try XCTUnwrap(file.tensors["sample"]).values.prefix(32).map { $0 })
      XCTAssertFalse(
        plan.evaluations.contains { $0.stochastic || $0.update.clipRange != nil }, dir.lastPathComponent)
      let worst = try replay(plan, file.tensors, dir.lastPathComponent)
      print("inversion parity \(dir.lastPathComponent): worst relative step error \(worst)")
      XCTAssertLessThanOrEqual(worst, 1e-5, dir.lastPathComponent)
    }
  }

  func testImg2ImgMatchesDiffusersCutScheduleAndNoising() throws {
    let cases = try fixtures("img2img_")
    var covered = Set<SamplerKind>()
    for dir in cases {
      let name = dir.lastPathComponent
      let file = try SafeTensors.read(contentsOf: dir.appendingPathComponent("steps.safetensors"))
      let meta = try JSONValue(parsing: try XCTUnwrap(file.metadata["case"]))
      var kind = try XCTUnwrap(Self.kinds[try XCTUnwrap(meta["scheduler"]?.string)], name)
      let config = try SchedulerConfig(
        contentsOf: dir.appendingPathComponent("scheduler_config.json"), family: kind.family)
      kind = SamplerParityTests.kind(kind, config)
      covered.insert(kind)
      let n = Int(try XCTUnwrap(meta["num_inference_steps"]?.double))
      let strength = try XCTUnwrap(meta["strength"]?.double)
      let plan = try Img2Img.plan(
        kind, schedulerConfig: dir.appendingPathComponent("scheduler_config.json"), steps: n,
        strength: strength,
        eta: meta["step_kwargs"]?["eta"]?.double ?? 0)
      let t = file.tensors
      let x0 = try XCTUnwrap(t["x_0"]).values, z = try XCTUnwrap(t["z"]).values
      let start = try XCTUnwrap(t["start"]).values
      var worst = 0.0
      for k in 0..<32 {
        let s = plan.imageScale * Double(x0[k]) + plan.initNoiseSigma * Double(z[k])
        worst = Swift.max(worst, abs(s - Double(start[k])) / Swift.max(1, abs(Double(start[k]))))
      }
      XCTAssertLessThanOrEqual(worst, 1e-5, "\(name): the noised start")
      let stepError = try replay(plan, t, name)
      print("img2img parity \(name): start \(worst), worst relative step error \(stepError)")
      XCTAssertLessThanOrEqual(stepError, 1e-5, name)
      XCTAssertEqual(
        plan.firstStep, (n - Img2Img.keptSteps(steps: n, strength: strength)) * (kind == .heun ? 2 : 1))
    }
    XCTAssertEqual(covered, Set(SamplerKind.allCases))
  }

  /// The exact ε of a Gaussian mixture: inversion then reconstruction returns the points, closer with more
  /// steps; the inversion's parameters each change the noise.
  func testInversionRoundTripOnTheExactMixtureDenoiser() throws {
    let mixture = GaussianMixture.standard
    var c = try SamplerPlanner.config(.ddim, schedulerConfig: nil)
    c.timestepSpacing = .trailing
    let schedule = try NoiseSchedule(config: c)
    let model = GaussianMixtureDenoiser(mixture: mixture, schedule: schedule, device: .cpu)
    let count = 12
    let points: [Float] = (0..<count).flatMap { i -> [Float] in
      let k = i % 3
      return mixture.means[k].map { Float($0 + 0.1 * sin(Double(7 * i + 1))) }
    }
    var errors: [Double] = []
    var calls = 0
    for steps in [10, 50, 200] {
      let z = try DDIMInversion.invert(
        model, images: points, count: count, classLabels: nil, steps: steps, schedulerConfig: nil,
        batchSize: 5,
        progress: { calls += $0 })
      let back = try DDIMInversion.reconstruct(
        model, noise: z, count: count, classLabels: nil, steps: steps, schedulerConfig: nil, batchSize: 5,
        clip: false)
      errors.append(
        zip(points, back).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +) / Double(points.count))
      if steps == 50 {
        // batch size changes nothing; the noise is near N(0, 1) in scale.
        XCTAssertEqual(
          z,
          try DDIMInversion.invert(
            model, images: points, count: count, classLabels: nil, steps: steps, schedulerConfig: nil,
            batchSize: count))
        let std = (z.map { Double($0 * $0) }.reduce(0, +) / Double(z.count)).squareRoot()
        XCTAssertGreaterThan(std, 0.3)
        XCTAssertLessThan(std, 3)
        // The default DDIM config clips x̂₀ to [-1, 1]: the mixture's means at ±1.5 cannot come back.
        let clipped = try DDIMInversion.reconstruct(
          model, noise: z, count: count, classLabels: nil, steps: steps, schedulerConfig: nil, batchSize: 5)
        let e =
          zip(points, clipped).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +) / Double(points.count)
        XCTAssertGreaterThan(e, 10 * errors.last!)
      }
    }
    XCTAssertEqual(calls, 3 * (10 + 50 + 200))  // 3 batches of ≤ 5
    print("mixture inversion round trip MSE at 10, 50, 200 steps: \(errors)")
    XCTAssertGreaterThan(errors[0], errors[1])
    XCTAssertGreaterThan(errors[1], errors[2])
    XCTAssertLessThan(errors[2], 1e-4)
  }

  func testInversionParametersEachMatter() throws {
    let model = FakeConditionalDenoiser()
    let x: [Float] = (0..<32).map { Float(sin(Double($0))) }
    func invert(labels: [Int] = [0, 1], steps: Int = 10, config: URL? = nil) throws -> [Float] {
      try DDIMInversion.invert(
        model, images: x, count: 2, classLabels: labels, steps: steps, schedulerConfig: config, batchSize: 2)
    }
    let base = try invert()
    XCTAssertNotEqual(base, x)
    XCTAssertNotEqual(base, try invert(labels: [2, 2]))
    XCTAssertEqual(base, try invert(labels: [0, 1, 0, 1]))  // cycled
    XCTAssertNotEqual(base, try invert(steps: 20))
    let trailing = try XCTUnwrap(try fixtures("inversion_eps_trailing").first)
      .appendingPathComponent("scheduler_config.json")
    XCTAssertNotEqual(base, try invert(config: trailing))
    XCTAssertThrowsError(try invert(labels: []))  // class-conditional: labels needed
    // linspace spacing has no DDIMInverseScheduler counterpart.
    var c = SchedulerConfig(family: .ddim)
    c.timestepSpacing = .linspace
    XCTAssertThrowsError(try DDIMInversion.plan(schedule: try NoiseSchedule(config: c), steps: 10))
  }

  /// Strength 0 is the input with no model evaluation; strength 1 is `DiffusionSampler.sample` bit for bit, for
  /// every sampler; in between, the image, the seed and the classes each change the result.
  func testImg2ImgStrengthZeroAndOneOnEverySampler() throws {
    let model = FakeConditionalDenoiser()
    let count = 3
    let x: [Float] = (0..<(count * 16)).map { Float(cos(Double($0) * 0.7)) * 0.9 }
    let labels = [2, 0, 1]
    for kind in SamplerKind.allCases {
      let steps = kind == .ddpm ? 20 : 8
      var calls = 0
      let zero = try Img2Img.plan(kind, schedulerConfig: nil, steps: steps, strength: 0)
      XCTAssertTrue(zero.evaluations.isEmpty)
      let same = try Img2Img.run(
        model, images: x, count: count, classLabels: labels, plan: zero, seed: 1, batchSize: 2,
        progress: { calls += $0 })
      XCTAssertEqual(same, x, kind.rawValue)
      XCTAssertEqual(calls, 0, kind.rawValue)

      let full = try SamplerPlanner.plan(kind, schedulerConfig: nil, steps: steps)
      let one = try Img2Img.plan(kind, schedulerConfig: nil, steps: steps, strength: 1)
      let sampled = try DiffusionSampler(unet: model, plan: full).sample(
        SampleRequest(count: count, batchSize: 2, seed: 7, classLabels: labels))
      let edited = try Img2Img.run(
        model, images: x, count: count, classLabels: labels, plan: one, seed: 7, batchSize: 3,
        progress: { calls += $0 })
      XCTAssertEqual(edited.map(\.bitPattern), sampled.map(\.bitPattern), kind.rawValue)
      XCTAssertEqual(calls, 1 * full.evaluations.count, kind.rawValue)  // one batch of 3

      let half = try Img2Img.plan(kind, schedulerConfig: nil, steps: steps, strength: 0.5)
      XCTAssertEqual(half.evaluations.count, (kind == .heun ? 2 * (steps / 2) - 1 : steps / 2), kind.rawValue)
      func edit(_ images: [Float]? = nil, seed: UInt64 = 7, classes: [Int]? = nil, batch: Int = 2) throws
        -> [Float]
      {
        try Img2Img.run(
          model, images: images ?? x, count: count, classLabels: classes ?? labels, plan: half, seed: seed,
          batchSize: batch)
      }
      let e = try edit()
      XCTAssertNotEqual(e, x, kind.rawValue)
      XCTAssertNotEqual(e, sampled, kind.rawValue)
      XCTAssertNotEqual(e, try edit(x.map { -$0 }), kind.rawValue)
      XCTAssertNotEqual(e, try edit(seed: 8), kind.rawValue)
      XCTAssertNotEqual(e, try edit(classes: [1, 1, 1]), kind.rawValue)
      XCTAssertEqual(e, try edit(batch: 1), kind.rawValue)  // any batch size, the same noise
    }
    // Options of the plan: η, Karras sigmas and the scheduler config change it.
    let ddim = try Img2Img.plan(.ddim, schedulerConfig: nil, steps: 10, strength: 0.6)
    XCTAssertFalse(ddim.evaluations.contains { $0.stochastic })
    XCTAssertTrue(
      try Img2Img.plan(.ddim, schedulerConfig: nil, steps: 10, strength: 0.6, eta: 1).evaluations.contains {
        $0.stochastic
      })
    XCTAssertNotEqual(
      try Img2Img.plan(.dpmpp2m, schedulerConfig: nil, steps: 10, strength: 0.6).initNoiseSigma,
      try Img2Img.plan(.dpmpp2m, schedulerConfig: nil, steps: 10, strength: 0.6, karras: true).initNoiseSigma)
    XCTAssertEqual(Img2Img.keptSteps(steps: 10, strength: 0.35), 3)
    XCTAssertEqual(Img2Img.keptSteps(steps: 50, strength: 1), 50)
    for bad in [-0.1, 1.5, Double.nan] {
      XCTAssertThrowsError(try Img2Img.plan(.ddim, schedulerConfig: nil, steps: 10, strength: bad))
    }
  }

  // MARK: - Commands

  func tmp() throws -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("gpugen-edit-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: d) }
    return d
  }

  /// Per-pixel MSE on [0, 1] of two image sets in [−1, 1].
  func mse(_ a: [Float], _ b: [Float]) -> Double {
    zip(a, b).map { Double($0 - $1) * Double($0 - $1) / 4 }.reduce(0, +) / Double(a.count)
  }

  func testEncodeInvertsAndSampleNoClipReconstructs() throws {
    let d = try tmp()
    let z = d.appendingPathComponent("z.npy"), r = d.appendingPathComponent("r.npy")
    let truth = try VAEInput.dataset("fashion-mnist:test:4", channels: 1, size: 28)
    var (status, out, err) = try runGpugen([
      "encode", "--model", "diffusion", "--data", "fashion-mnist:test:4", "--class", "9,2,1,1", "--steps",
      "50", "--out", z.path, "--device", "cpu",
    ])
    XCTAssertEqual(status, 0, err)
    XCTAssertTrue(err.contains("inverting"), err)  // the progress bar
    XCTAssertTrue(out.contains("--no-clip"), out)
    XCTAssertEqual(try NPY.read(from: z).shape, [4, 1, 28, 28])
    func reconstruct(_ extra: [String]) throws -> [Float] {
      let (status, _, err) = try runGpugen(
        [
          "sample", "--noise", z.path, "--n", "4", "--class", "9,2,1,1", "--sampler", "ddim", "--steps", "50",
          "--npy", r.path, "--out", d.appendingPathComponent("r.png").path, "--device", "cpu",
        ] + extra)
      XCTAssertEqual(status, 0, err)
      return try NPY.read(from: r).values
    }
    let exact = mse(try reconstruct(["--no-clip"]), truth.images)
    let clipped = mse(try reconstruct([]), truth.images)
    print("bundled model, 4 test images, 50 steps: reconstruction MSE \(exact) (no clip), \(clipped) (clip)")
    XCTAssertLessThan(exact, 0.006)
    XCTAssertGreaterThan(clipped, 2 * exact)
    // --class and --steps change the noise.
    let z2 = d.appendingPathComponent("z2.npy")
    (status, _, err) = try runGpugen([
      "encode", "--data", "fashion-mnist:test:4", "--model", "diffusion", "--class", "0", "--steps", "50",
      "--out", z2.path, "--device", "cpu",
    ])
    XCTAssertEqual(status, 0, err)
    XCTAssertNotEqual(try NPY.read(from: z).values, try NPY.read(from: z2).values)
    (status, _, err) = try runGpugen([
      "encode", "--data", "fashion-mnist:test:4", "--model", "diffusion", "--class", "0", "--steps", "5",
      "--out", z2.path, "--device", "cpu", "--sampler", "ddim", "--batch-size", "3",
    ])
    XCTAssertEqual(status, 0, err)
    XCTAssertTrue(err.contains("batches of 3"), err)
    XCTAssertNotEqual(try NPY.read(from: z).values, try NPY.read(from: z2).values)
  }

  func testImg2ImgCommandStrengthsAndOptions() throws {
    let d = try tmp()
    let input = d.appendingPathComponent("in.npy"), y = d.appendingPathComponent("y.npy")
    let truth = try VAEInput.dataset("fashion-mnist:test:3", channels: 1, size: 28)
    try NPY.write(truth.images, shape: [3, 1, 28, 28], to: input)
    func edit(_ extra: [String], image: String? = nil) throws -> (values: [Float], out: String, err: String) {
      let (status, out, err) = try runGpugen(
        [
          "img2img", "--image", image ?? input.path, "--npy", y.path, "--out",
          d.appendingPathComponent("e.png").path,
          "--device", "cpu", "--steps", "6",
        ] + extra)
      XCTAssertEqual(status, 0, "\(extra): \(err)")
      return (try NPY.read(from: y).values, out, err)
    }
    let zero = try edit(["--strength", "0"])
    XCTAssertEqual(zero.values, truth.images)
    XCTAssertTrue(zero.out.contains("0 model evaluations"), zero.out)
    let png = try Image8.readPNG(from: d.appendingPathComponent("e.png"), channels: 1)
    XCTAssertGreaterThan(png.height, 2 * 28)  // inputs above edits
    // Strength 1 is gpugen sample with the same seed and classes, bit for bit.
    let one = try edit(["--strength", "1", "--seed", "5", "--class", "3,4,5"])
    let s = d.appendingPathComponent("s.npy")
    let (status, _, err) = try runGpugen([
      "sample", "--n", "3", "--seed", "5", "--class", "3,4,5", "--steps", "6", "--npy", s.path, "--out",
      d.appendingPathComponent("s.png").path, "--device", "cpu",
    ])
    XCTAssertEqual(status, 0, err)
    XCTAssertEqual(one.values.map(\.bitPattern), try NPY.read(from: s).values.map(\.bitPattern))
    // In between: close to the input, and each option changes the result.
    let half = try edit(["--strength", "0.5"])
    XCTAssertTrue(half.err.contains("editing"), half.err)  // the progress bar
    XCTAssertTrue(half.out.contains("3 model evaluations"), half.out)
    XCTAssertLessThan(mse(half.values, truth.images), mse(one.values, truth.images))
    for extra in [
      ["--seed", "1"], ["--class", "0"], ["--sampler", "euler"], ["--steps", "10"], ["--eta", "1"],
      ["--strength", "0.7"],
    ] {
      XCTAssertNotEqual(try edit(["--strength", "0.5"] + extra).values, half.values, "\(extra)")
    }
    let dpm = try edit(["--strength", "0.5", "--sampler", "dpmpp-2m"]).values
    XCTAssertNotEqual(try edit(["--strength", "0.5", "--sampler", "dpmpp-2m", "--karras"]).values, dpm)
    let batched = try edit(["--strength", "0.5", "--batch-size", "1"])
    // Any batch size draws the same noise (the UNet's float rounding may differ with the batch).
    XCTAssertLessThan(zip(batched.values, half.values).map { abs($0 - $1) }.max()!, 1e-3)
    XCTAssertTrue(batched.err.contains("batches of 1"), batched.err)
    // PNG input: the first image written as a 28×28 gray PNG.
    let p = d.appendingPathComponent("x.png")
    try Image8.grid(Array(truth.images.prefix(784)), shape: [1, 1, 28, 28], gutter: 0).writePNG(to: p)
    let fromPNG = try edit(["--strength", "0"], image: p.path).values
    XCTAssertLessThan(mse(fromPNG, Array(truth.images.prefix(784))), 1e-5)
  }

  func testEditingBadInputExitsWithStatus2() throws {
    let d = try tmp()
    let good = d.appendingPathComponent("in.npy")
    try NPY.write([Float](repeating: 0, count: 784), shape: [1, 1, 28, 28], to: good)
    let wrongSize = d.appendingPathComponent("big.npy")
    try NPY.write([Float](repeating: 0, count: 3 * 32 * 32), shape: [1, 3, 32, 32], to: wrongSize)
    let rgb = d.appendingPathComponent("rgb.png")
    try Image8(width: 28, height: 28, channels: 3, pixels: [UInt8](repeating: 9, count: 28 * 28 * 3))
      .writePNG(to: rgb)
    let small = d.appendingPathComponent("small.png")
    try Image8(width: 16, height: 16, channels: 1, pixels: [UInt8](repeating: 9, count: 256)).writePNG(
      to: small)
    let out = ["--out", d.appendingPathComponent("o.png").path, "--device", "cpu"]
    let cases: [([String], String)] = [
      (["img2img", "--image", good.path, "--strength", "1.5"], "--strength"),
      (["img2img", "--image", good.path, "--strength", "-0.1"], "--strength"),
      (["img2img", "--image", rgb.path, "--strength", "0.5"], "3 channels"),
      (["img2img", "--image", small.path, "--strength", "0.5"], "16×16"),
      (["img2img", "--image", wrongSize.path, "--strength", "0.5"], "shape"),
      (["img2img", "--strength", "0.5"], "--image"),
      (["img2img", "--image", good.path, "--strength", "0.5", "--model", "vae"], "diffusion"),
      (["img2img", "--image", good.path, "--strength", "0.5", "--class", "10"], "out of range"),
      (["img2img", "--image", good.path, "--strength", "0.5", "--sampler", "ddim", "--karras"], "--karras"),
      (["encode", "--model", "diffusion", "--images", good.path, "--sampler", "euler-a"], "stochastic"),
      (["encode", "--model", "diffusion", "--images", good.path, "--sampler", "ddpm"], "stochastic"),
      (["encode", "--model", "diffusion", "--images", good.path, "--sampler", "dpmpp-2m-sde"], "stochastic"),
      (["encode", "--model", "diffusion", "--images", good.path, "--sampler", "dpmpp-3m-sde"], "stochastic"),
      (["encode", "--model", "diffusion", "--images", good.path, "--sampler", "unipc"], "DDIM"),
      (["encode", "--model", "diffusion", "--images", good.path, "--sampler", "heun"], "DDIM"),
      (["encode", "--model", "diffusion", "--images", wrongSize.path], "shape"),
      (["encode", "--model", "diffusion", "--images", good.path, "--steps", "0"], "--steps"),
      (["encode", "--model", "diffusion", "--images", good.path, "--sample"], "--sample"),
      (["encode", "--model", "vae", "--images", good.path, "--sampler", "ddim"], "--sampler"),
      (["sample", "--model", "vae", "--no-clip", "--n", "1"], "--no-clip"),
    ]
    for (args, needle) in cases {
      let extra =
        args[0] == "encode" ? ["--out", d.appendingPathComponent("z.npy").path, "--device", "cpu"] : out
      let (status, _, err) = try runGpugen(args + extra)
      XCTAssertEqual(status, 2, "\(args): \(err)")
      XCTAssertTrue(err.contains("error") && err.contains(needle), "\(args): \(err)")
    }
  }

  func testBenchEditingReportsBothTasks() throws {
    let (status, out, err) = try runGpugen([
      "bench", "editing", "--n", "10", "--inversion-steps", "3", "--strengths", "0,1", "--steps", "2",
      "--json",
      "--device", "cpu",
    ])
    XCTAssertEqual(status, 0, err)
    let lines = out.split(separator: "\n").compactMap {
      try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
    XCTAssertEqual(lines.count, 3, out)
    XCTAssertEqual(lines[0]["task"] as? String, "inversion")
    XCTAssertEqual(lines[0]["steps"] as? Int, 3)
    XCTAssertEqual(lines[1]["distance"] as? Double, 0)
    XCTAssertEqual(lines[1]["evaluations"] as? Int, 0)
    XCTAssertGreaterThan(try XCTUnwrap(lines[2]["distance"] as? Double), 0.01)
    // KID at N = 10 is mostly noise; it is there and finite.
    for l in lines[1...] { XCTAssertTrue(try XCTUnwrap(l["kid"] as? Double).isFinite) }
  }
}
