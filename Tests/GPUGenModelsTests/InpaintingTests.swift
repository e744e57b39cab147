// RePaint inpainting: diffusers' RePaintScheduler on fixtures (Fixtures/repaint, made by make_fixtures.py
// there), the library loop on a small fake model, and `gpugen inpaint` as a user runs it.
import Foundation
import GPUGenCore
import XCTest

@testable import GPUGenModels

/// ε̂ = 0.3·x + 0.1·sin(t/100) (+ 0.05·class per image): cheap, and sensitive to every input.
private struct FakeDenoiser: Denoiser {
  var device: Device = .cpu
  var imageShape = [2, 6, 6]
  var classCount: Int?
  func callAsFunction(_ x: Tensor, timesteps: [Double], classLabels: [Int]?) throws -> Tensor {
    var y = try x.mul(0.3).add(Float(0.1 * Foundation.sin(timesteps[0] / 100)))
    if let l = classLabels {
      let shift = try Tensor(l.map { Float($0) * 0.05 }, shape: [l.count, 1, 1, 1], on: device)
      y = try y.add(shift)
    }
    return y
  }
}

final class InpaintingTests: XCTestCase {
  func fixtures() throws -> URL {
    try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/repaint", withExtension: nil))
  }

  func tmp() throws -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent(
      "gpugen-inpaint-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: d) }
    return d
  }

  /// `set_timesteps(N, jump_length, jump_n_sample)` of diffusers, list for list.
  func testTimestepsMatchDiffusers() throws {
    let json = try JSONValue(
      parsing: try String(
        contentsOf: try fixtures().appendingPathComponent("timesteps.json"), encoding: .utf8))
    let cases = try XCTUnwrap(json["cases"]?.array)
    XCTAssertGreaterThanOrEqual(cases.count, 8)
    for c in cases {
      func int(_ k: String) throws -> Int { Int(try XCTUnwrap(c[k]?.double)) }
      let want = try XCTUnwrap(c["timesteps"]?.array).map { Int($0.double ?? -1) }
      let got = try Inpainting.timesteps(
        numInferenceSteps: try int("num_inference_steps"), jumpLength: try int("jump_length"),
        jumpNSample: try int("jump_n_sample"), numTrainTimesteps: try int("num_train_timesteps"))
      XCTAssertEqual(got, want, "\(c)")
    }
  }

  /// Every action of diffusers' RePaint loop (step with its mask merge, and undo_step) from the recorded
  /// sample, model output and noise, to 1e-5.
  func testStepAndUndoStepMatchDiffusers() throws {
    let dirs = try FileManager.default.contentsOfDirectory(
      at: try fixtures(), includingPropertiesForKeys: nil
    )
    .filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent("steps.safetensors").path) }
    .sorted { $0.path < $1.path }
    XCTAssertEqual(dirs.count, 4)
    var sawUndo = false, sawNoisyStep = false
    for dir in dirs {
      let name = dir.lastPathComponent
      let file = try SafeTensors.read(contentsOf: dir.appendingPathComponent("steps.safetensors"))
      let meta = try JSONValue(parsing: try XCTUnwrap(file.metadata["case"]))
      let configURL = dir.appendingPathComponent("scheduler_config.json")
      let eta = try SchedulerConfig(contentsOf: configURL, family: .ddpm).fields["eta"]?.double ?? 0
      func int(_ k: String) throws -> Int { Int(try XCTUnwrap(meta[k]?.double)) }
      let plan = try Inpainting.plan(
        schedule: try NoiseSchedule(config: try Inpainting.config(schedulerConfig: configURL)),
        steps: try int("num_inference_steps"), jumpLength: try int("jump_length"),
        jumpNSample: try int("jump_n_sample"), eta: eta)
      let t = file.tensors
      let kinds = try XCTUnwrap(t["kind"]).values, timesteps = try XCTUnwrap(t["timestep"]).values
      let sample = try XCTUnwrap(t["sample"]).values, out = try XCTUnwrap(t["model_output"]).values
      let noise = try XCTUnwrap(t["noise"]).values, want = try XCTUnwrap(t["prev_sample"]).values
      let original = try XCTUnwrap(t["original"]).values, mask = try XCTUnwrap(t["mask"]).values
      XCTAssertEqual(plan.actions.count, kinds.count, name)
      let per = 32
      var worst = 0.0
      for (s, action) in plan.actions.enumerated() {
        for k in 0..<per {
          let x = Double(sample[s * per + k]), z = Double(noise[s * per + k])
          let got: Double
          switch action {
          case .denoise(let ts, let unknown, let known):
            XCTAssertEqual(kinds[s], 0, "\(name) action \(s)")
            XCTAssertEqual(Float(ts), timesteps[s], "\(name) action \(s)")
            if unknown.cz != 0 { sawNoisyStep = true }
            let o = Double(original[k])
            got =
              mask[k] == 1
              ? known.apply(x: o, m: o, z: z).out : unknown.apply(x: x, m: Double(out[s * per + k]), z: z).out
          case .undo(let ts, let u):
            sawUndo = true
            XCTAssertEqual(kinds[s], 1, "\(name) action \(s)")
            XCTAssertEqual(Float(ts), timesteps[s], "\(name) action \(s)")
            got = u.apply(x: x, m: 0, z: z).out
          }
          let w = Double(want[s * per + k])
          worst = Swift.max(worst, Swift.abs(got - w) / Swift.max(1, Swift.abs(w)))
        }
      }
      print("RePaint parity \(name): worst relative action error \(worst)")
      XCTAssertLessThanOrEqual(worst, 1e-5, name)
    }
    XCTAssertTrue(sawUndo)
    XCTAssertTrue(sawNoisyStep)
  }

  /// Known pixels exact, filled pixels changed; the same images for any batch size; seed, η, steps, J, R,
  /// classes and the per-image masks each change the result.
  func testLibraryLoopKeepsKnownPixelsAndHonoursEveryParameter() throws {
    let den = FakeDenoiser(classCount: 10)
    let schedule = try NoiseSchedule(config: try Inpainting.config(schedulerConfig: nil))
    let count = 3, per = 72
    let images = (0..<(count * per)).map { Float(Foundation.sin(Double($0) * 0.37)) * 0.9 }
    let keep = Inpainting.MaskPreset.center.keepMask(height: 6, width: 6)
    func run(
      steps: Int = 6, j: Int = 2, r: Int = 2, eta: Double = 0, batch: Int = 3, seed: UInt64 = 1,
      labels: [Int] = [0, 1, 2], mask: [Float]? = nil
    ) throws -> [Float] {
      let plan = try Inpainting.plan(
        schedule: schedule, steps: steps, jumpLength: j, jumpNSample: r, eta: eta)
      var calls = 0
      let out = try Inpainting.inpaint(
        den, plan: plan,
        request: .init(
          images: images, count: count, keep: mask ?? keep, batchSize: batch, seed: seed, classLabels: labels),
        progress: { calls += $0 })
      XCTAssertEqual(calls, plan.actions.count * ((count + batch - 1) / batch))
      return out
    }
    let base = try run()
    for i in 0..<count {
      for c in 0..<2 {
        for p in 0..<36 {
          let k = i * per + c * 36 + p
          if keep[p] == 1 {
            XCTAssertEqual(base[k], images[k], "known pixel \(k) must come out exactly")
          } else {
            XCTAssertNotEqual(base[k], images[k])
          }
        }
      }
    }
    XCTAssertEqual(try run(batch: 1), base, "batch size must not change the images")
    XCTAssertEqual(try run(batch: 2), base)
    XCTAssertNotEqual(try run(seed: 2), base, "seed")
    XCTAssertNotEqual(try run(eta: 1), base, "eta")
    XCTAssertNotEqual(try run(steps: 5), base, "steps")
    XCTAssertNotEqual(try run(j: 1), base, "jump length")
    XCTAssertNotEqual(try run(r: 1), base, "jump count")
    XCTAssertNotEqual(try run(labels: [3]), base, "classes")
    // Per-image masks: image 1 all known comes back unchanged.
    var perImage = keep + [Float](repeating: 1, count: 36) + keep
    let mixed = try run(mask: perImage)
    XCTAssertEqual(Array(mixed[per..<(2 * per)]), Array(images[per..<(2 * per)]))
    XCTAssertEqual(Array(mixed[0..<per]), Array(base[0..<per]))
    perImage[0] = 1 - perImage[0]
    XCTAssertThrowsError(
      try Inpainting.inpaint(
        den, plan: try Inpainting.plan(schedule: schedule, steps: 2, jumpLength: 1, jumpNSample: 1),
        request: .init(images: images, count: count, keep: [1, 0], batchSize: 1, seed: 0, classLabels: [0])))
  }

  /// Steps, J and R set the number of model evaluations as diffusers' schedule has them; R = 1 has none to undo.
  func testPlanCountsAndBadJumpArguments() throws {
    let schedule = try NoiseSchedule(config: try Inpainting.config(schedulerConfig: nil))
    let p = try Inpainting.plan(schedule: schedule, steps: 3, jumpLength: 1, jumpNSample: 2)
    XCTAssertEqual(p.modelEvaluations, 5)  // 2, 1, ↑2, 1, 0, ↑1, 0
    XCTAssertEqual(p.actions.count, 7)
    let r1 = try Inpainting.plan(schedule: schedule, steps: 20, jumpLength: 5, jumpNSample: 1)
    XCTAssertEqual(r1.modelEvaluations, 20)
    XCTAssertEqual(r1.actions.count, 20)
    let j5 = try Inpainting.plan(schedule: schedule, steps: 20, jumpLength: 5, jumpNSample: 3)
    XCTAssertEqual(j5.modelEvaluations, 20 + 3 * 2 * 5)
    XCTAssertThrowsError(try Inpainting.plan(schedule: schedule, steps: 20, jumpLength: 0, jumpNSample: 3))
    XCTAssertThrowsError(try Inpainting.plan(schedule: schedule, steps: 20, jumpLength: 2, jumpNSample: 0))
    XCTAssertThrowsError(
      try Inpainting.plan(schedule: schedule, steps: 20, jumpLength: 2, jumpNSample: 2, eta: -1))
    // The last action of every plan is a model step to ᾱ = 1: the known part is the original, noise-free.
    guard case .denoise(let t, _, let known) = try XCTUnwrap(j5.actions.last) else { return XCTFail() }
    XCTAssertEqual(t, 0)
    XCTAssertEqual(known.cx, 1)
    XCTAssertEqual(known.cz, 0)
  }

  /// The presets' shapes, binarisation at 0.5 and the two conventions.
  func testPresetsAndMaskConventions() throws {
    func filled(_ p: Inpainting.MaskPreset) -> Int {
      p.keepMask(height: 28, width: 28).filter { $0 == 0 }.count
    }
    XCTAssertEqual(filled(.half), 14 * 28)
    XCTAssertEqual(filled(.center), 14 * 14)
    XCTAssertEqual(filled(.lines), 14 * 28)
    XCTAssertEqual(filled(.sr2), 28 * 28 - 14 * 14)
    let half = Inpainting.MaskPreset.half.keepMask(height: 4, width: 2)
    XCTAssertEqual(half, [1, 1, 1, 1, 0, 0, 0, 0])
    XCTAssertEqual(Inpainting.MaskPreset.center.keepMask(height: 4, width: 4)[5], 0)
    XCTAssertEqual(Inpainting.MaskPreset.center.keepMask(height: 4, width: 4)[0], 1)
    XCTAssertEqual(Inpainting.MaskPreset.lines.keepMask(height: 2, width: 2), [1, 1, 0, 0])
    XCTAssertEqual(Inpainting.MaskPreset.sr2.keepMask(height: 2, width: 2), [1, 0, 0, 0])
    let raw: [Float] = [0, 0.49, 0.5, 1]
    XCTAssertEqual(Inpainting.keepMask(raw, convention: .whiteKeeps), [0, 0, 1, 1])
    XCTAssertEqual(Inpainting.keepMask(raw, convention: .whiteFills), [1, 1, 0, 0])
  }

  /// Bilinear interpolation is exact on ramps and keeps known pixels; the MSE counts filled pixels only.
  func testBilinearBaselineAndFilledMSE() throws {
    let (h, w) = (5, 6)
    let ramp = (0..<(h * w)).map { Float($0 / w) * 0.2 + Float($0 % w) * 0.1 - 0.5 }
    for preset in [Inpainting.MaskPreset.lines, .sr2] {
      let keep = preset.keepMask(height: h, width: w)
      var holed = ramp
      for k in ramp.indices where keep[k] == 0 { holed[k] = 9 }
      let filled = try Inpainting.bilinear(holed, count: 1, shape: [1, h, w], preset: preset)
      for y in 0..<h {
        for x in 0..<w {
          // sr2's last column (odd, beyond the last known one) repeats the known column before it.
          let want = preset == .sr2 && x == w - 1 ? ramp[y * w + x - 1] : ramp[y * w + x]
          XCTAssertEqual(filled[y * w + x], want, accuracy: 1e-6, "\(preset) \(y),\(x)")
        }
      }
      XCTAssertEqual(Inpainting.filledMSE(ramp, truth: ramp, keep: keep, count: 1, shape: [1, h, w]), 0)
    }
    XCTAssertThrowsError(try Inpainting.bilinear(ramp, count: 1, shape: [1, h, w], preset: .center))
    let keep: [Float] = [1, 0]
    XCTAssertEqual(
      Inpainting.filledMSE([5, 1], truth: [0, 0], keep: keep, count: 1, shape: [1, 1, 2]), 0.25,
      accuracy: 1e-12)
  }

  /// `score`: the MSE over filled pixels and the KID from `GeneratorEvaluator`; the seed picks the real sets.
  func testScoreMeasuresFilledMSEAndKID() throws {
    let n = 10, per = 784
    // 40 labelled "real" images, 4 per class, and 10 completions.
    let real = TrainingImages(
      images: (0..<(40 * per)).map { Float(Foundation.sin(Double($0) * 0.013)) * 0.9 },
      labels: (0..<40).map { $0 % 10 }, count: 40, channels: 1, size: 28, classCount: 10)
    let truth = Array(real.images[0..<(n * per)])
    var completed = truth
    let keep = Inpainting.MaskPreset.half.keepMask(height: 28, width: 28)
    for i in 0..<n { for p in 392..<784 { completed[i * per + p] = -1 } }
    let clf = try ImageClassifier.bundled(device: .cpu)
    let a = try Inpainting.score(
      completed, truth: truth, keep: keep, count: n, shape: [1, 28, 28], real: real, classifier: clf, seed: 0)
    let want = Inpainting.filledMSE(completed, truth: truth, keep: keep, count: n, shape: [1, 28, 28])
    XCTAssertEqual(a.filledMSE, want)
    XCTAssertGreaterThan(a.filledMSE, 0.01)
    XCTAssertTrue(a.kid.mean.isFinite && a.floorKID.mean.isFinite)
    let b = try Inpainting.score(
      completed, truth: truth, keep: keep, count: n, shape: [1, 28, 28], real: real, classifier: clf, seed: 3)
    XCTAssertNotEqual(a.kid, b.kid, "seed")
    XCTAssertEqual(Inpainting.filledMSE(truth, truth: truth, keep: keep, count: n, shape: [1, 28, 28]), 0)
  }

  // MARK: gpugen inpaint

  /// Two 28×28 test images as .npy, in [-1, 1].
  func writeImages(_ d: URL, count: Int = 2) throws -> (URL, [Float]) {
    let v = (0..<(count * 784)).map { Float(Foundation.cos(Double($0) * 0.05)) * 0.8 }
    let url = d.appendingPathComponent("x.npy")
    try NPY.write(v, shape: [count, 1, 28, 28], to: url)
    return (url, v)
  }

  /// `gpugen inpaint` on the bundled model with 3 steps, J = 1, R = 2 (5 evaluations per image) and `extra`;
  /// returns the completed images of the .npy.
  func inpaint(_ image: URL, in d: URL, _ extra: [String], npy: String) throws -> [Float] {
    let (status, out, err) = try runGpugen(
      [
        "inpaint", "--device", "cpu", "--image", image.path, "--steps", "3", "--jump-length", "1",
        "--jump-n-sample", "2", "--npy", d.appendingPathComponent(npy).path, "--out",
        d.appendingPathComponent("g.png").path,
      ] + extra)
    XCTAssertEqual(status, 0, err)
    XCTAssertTrue(out.contains("with 10 model evaluations (5 per image)"), out)
    XCTAssertTrue(err.contains("inpainting"), err)
    let a = try NPY.read(from: d.appendingPathComponent(npy))
    XCTAssertEqual(a.shape, [2, 1, 28, 28])
    return a.values
  }

  /// The bundled class-conditional model: known pixels exact under both conventions and with a preset, the
  /// evaluations printed, the grid and the .npy written.
  func testInpaintCommandKeepsKnownPixelsUnderBothConventions() throws {
    let d = try tmp()
    let (image, truth) = try writeImages(d)
    // A mask PNG: white on the left 14 columns.
    let maskPx = (0..<784).map { UInt8($0 % 28 < 14 ? 255 : 0) }
    let maskURL = d.appendingPathComponent("m.png")
    try Image8(width: 28, height: 28, channels: 1, pixels: maskPx).writePNG(to: maskURL)
    let keeps = try inpaint(image, in: d, ["--mask", maskURL.path], npy: "a.npy")
    let fills = try inpaint(
      image, in: d, ["--mask", maskURL.path, "--mask-convention", "white-fills"], npy: "b.npy")
    for k in truth.indices {
      let white = k % 28 < 14
      if white {
        XCTAssertEqual(keeps[k], truth[k], "white-keeps: pixel \(k)")
        XCTAssertNotEqual(fills[k], truth[k])
      } else {
        XCTAssertEqual(fills[k], truth[k], "white-fills: pixel \(k)")
        XCTAssertNotEqual(keeps[k], truth[k])
      }
    }
    let grid = try Image8.readPNG(from: d.appendingPathComponent("g.png"), channels: 1)
    XCTAssertGreaterThan(grid.width, 2 * grid.height)  // one row: (input, completion) for each of 2 images
    let center = try inpaint(image, in: d, ["--mask", "center"], npy: "e.npy")
    let keep = Inpainting.MaskPreset.center.keepMask(height: 28, width: 28)
    for k in truth.indices {
      if keep[k % 784] == 1 {
        XCTAssertEqual(center[k], truth[k])
      } else {
        XCTAssertNotEqual(center[k], truth[k])
      }
    }
  }

  /// --class, --seed, --eta, --model, --steps, --jump-n-sample, --batch-size and --zoom each reach the result.
  func testInpaintCommandHonoursItsOptions() throws {
    let d = try tmp()
    let (image, _) = try writeImages(d)
    let center = try inpaint(image, in: d, ["--mask", "center"], npy: "e.npy")
    XCTAssertNotEqual(try inpaint(image, in: d, ["--mask", "center", "--class", "7"], npy: "c.npy"), center)
    XCTAssertNotEqual(try inpaint(image, in: d, ["--mask", "center", "--seed", "5"], npy: "d.npy"), center)
    XCTAssertNotEqual(try inpaint(image, in: d, ["--mask", "center", "--eta", "1"], npy: "f.npy"), center)
    XCTAssertEqual(
      try inpaint(image, in: d, ["--mask", "center", "--model", "diffusion"], npy: "g.npy"), center)
    let grid = try Image8.readPNG(from: d.appendingPathComponent("g.png"), channels: 1)
    var (status, out, err) = try runGpugen([
      "inpaint", "--device", "cpu", "--image", image.path, "--mask", "lines", "--steps", "4",
      "--jump-n-sample", "1", "--batch-size", "1", "--zoom", "1", "--npy",
      d.appendingPathComponent("h.npy").path,
      "--out", d.appendingPathComponent("h.png").path,
    ])
    XCTAssertEqual(status, 0, err)
    XCTAssertTrue(out.contains("with 8 model evaluations (4 per image)"), out)
    XCTAssertTrue(err.contains("in batches of 1") && err.contains("8/8 steps"), err)  // 4 actions × 2 batches
    let zoomed = try Image8.readPNG(from: d.appendingPathComponent("h.png"), channels: 1)
    XCTAssertLessThan(zoomed.width, grid.width)  // --zoom 1 against the default 2
    // The same images with both at once (within float tolerance: the model's sums depend on the batch).
    (status, _, err) = try runGpugen([
      "inpaint", "--device", "cpu", "--image", image.path, "--mask", "lines", "--steps", "4",
      "--jump-n-sample", "1", "--npy", d.appendingPathComponent("i.npy").path,
      "--out", d.appendingPathComponent("i.png").path,
    ])
    XCTAssertEqual(status, 0, err)
    let one = try NPY.read(from: d.appendingPathComponent("h.npy")).values
    let both = try NPY.read(from: d.appendingPathComponent("i.npy")).values
    XCTAssertLessThan(zip(one, both).map { Swift.abs($0 - $1) }.max() ?? 1, 1e-3)
    (status, _, err) = try runGpugen([
      "inpaint", "--device", "cpu", "--image", image.path, "--mask", "lines", "--model",
      d.appendingPathComponent("none").path,
    ])
    XCTAssertEqual(status, 2, err)
  }

  /// Bad input: exit status 2 and a message naming the problem.
  func testInpaintCommandRejectsBadInputWithStatus2() throws {
    let d = try tmp()
    let (image, _) = try writeImages(d)
    let small = d.appendingPathComponent("small.png")
    try Image8(width: 10, height: 10, channels: 1, pixels: [UInt8](repeating: 255, count: 100)).writePNG(
      to: small)
    let rgb = d.appendingPathComponent("rgb.png")
    try Image8(width: 28, height: 28, channels: 3, pixels: [UInt8](repeating: 90, count: 28 * 28 * 3))
      .writePNG(to: rgb)
    let badNpy = d.appendingPathComponent("m.npy")
    try NPY.write([Float](repeating: 1, count: 27 * 28), shape: [27, 28], to: badNpy)
    let cases: [([String], String)] = [
      (["--image", image.path, "--mask", small.path], "10×10 but the image is 28×28"),
      (["--image", image.path, "--mask", badNpy.path], "has shape [27, 28]"),
      (["--image", rgb.path, "--mask", "half"], "3 channels"),
      (
        ["--image", image.path, "--mask", "half", "--jump-length", "0"], "--jump-length J must be at least 1"
      ),
      (
        ["--image", image.path, "--mask", "half", "--jump-n-sample", "0"],
        "--jump-n-sample R must be at least 1"
      ),
      (["--image", image.path, "--mask", "blob"], "neither a file nor a preset"),
      (["--image", image.path, "--mask", "half", "--class", "10"], "--class 10 is out of range"),
    ]
    for (args, message) in cases {
      let (status, _, err) = try runGpugen(["inpaint", "--device", "cpu"] + args)
      XCTAssertEqual(status, 2, "\(args): \(err)")
      XCTAssertTrue(err.contains(message), "\(args): \(err)")
    }
  }
}
