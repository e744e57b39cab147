// Dynamic thresholding and the x̂₀ bounding flags: the scheduler config's fields, the planner's updates, the
// default of a guided run (X0Bounding.guidedDefault for s > 1), and the flags of sample, img2img, inpaint and
// evaluate on the bundled model. Parity with diffusers' step is in SamplerParityTests (Fixtures/schedulers,
// cases *_thresh*).
import Foundation
import XCTest

@testable import GPUGenModels

final class ThresholdingTests: XCTestCase {
  func tmp() throws -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent(
      "gpugen-thresh-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: d) }
    return d
  }

  func testConfigAndPlannerThresholdWhereDiffusersDoes() throws {
    let json = #"{"thresholding": true, "dynamic_thresholding_ratio": 0.9, "sample_max_value": 1.5}"#
    let t = DynamicThreshold(ratio: 0.9, maxValue: 1.5)
    for kind in [SamplerKind.ddpm, .ddim, .dpmpp2m, .dpmpp2mSDE, .dpmpp3mSDE, .unipc] {
      let plan = try SamplerPlanner.plan(kind, schedulerJSON: json, steps: 4)
      for e in plan.evaluations {
        XCTAssertEqual(e.update.threshold, t, "\(kind)")
        XCTAssertNil(e.update.clipRange, "\(kind): thresholding takes precedence over clip_sample")
      }
    }
    // Families without thresholding in diffusers ignore the field (as from_config does); the flag refuses them.
    for kind in [SamplerKind.euler, .eulerA, .heun] {
      let plan = try SamplerPlanner.plan(kind, schedulerJSON: json, steps: 4)
      XCTAssertTrue(plan.evaluations.allSatisfy { $0.update.threshold == nil }, "\(kind)")
      XCTAssertThrowsError(
        try SamplerPlanner.plan(kind, schedulerJSON: "{}", steps: 4, bounding: .threshold(t)), "\(kind)")
    }
    // UniPC's noise prediction is never thresholded by diffusers.
    let noisePred = try SamplerPlanner.plan(
      .unipc,
      schedulerJSON: #"{"thresholding": true, "predict_x0": false, "final_sigmas_type": "sigma_min"}"#,
      steps: 4)
    XCTAssertTrue(noisePred.evaluations.allSatisfy { $0.update.threshold == nil })
    // The override: none drops clip_sample, threshold replaces it.
    let clipped = try SamplerPlanner.plan(.ddim, schedulerJSON: #"{"clip_sample": true}"#, steps: 4)
    XCTAssertTrue(clipped.evaluations.allSatisfy { $0.update.clipRange == 1 && $0.update.threshold == nil })
    let none = try SamplerPlanner.plan(
      .ddim, schedulerJSON: #"{"clip_sample": true}"#, steps: 4, bounding: .none)
    XCTAssertTrue(none.evaluations.allSatisfy { $0.update.clipRange == nil && $0.update.threshold == nil })
    let th = try SamplerPlanner.plan(
      .ddim, schedulerJSON: #"{"clip_sample": true}"#, steps: 4, bounding: .threshold(t))
    XCTAssertTrue(th.evaluations.allSatisfy { $0.update.clipRange == nil && $0.update.threshold == t })
    XCTAssertThrowsError(
      try SamplerPlanner.plan(
        .ddim, schedulerJSON: "{}", steps: 4, bounding: .threshold(DynamicThreshold(ratio: 2, maxValue: 1))))
  }

  /// The default bounding of a guided run: the scheduler config's at s ≤ 1 (s = 1 stays plain conditional
  /// sampling), `guidedDefault` above, which is the measured choice of README's guidance section.
  func testGuidedRunsDefaultToTheMeasuredBounding() throws {
    XCTAssertEqual(X0Bounding.guidedDefault, .none)
    XCTAssertEqual(X0Bounding.defaultBounding(guidanceScale: nil), .scheduler)
    XCTAssertEqual(X0Bounding.defaultBounding(guidanceScale: 1), .scheduler)
    XCTAssertEqual(X0Bounding.defaultBounding(guidanceScale: 0), .scheduler)
    for s in [1.5, 2, 3, 5] {
      XCTAssertEqual(X0Bounding.defaultBounding(guidanceScale: s), .none, "s = \(s)")
    }
  }

  /// `gpugen sample` on the bundled model (two images, three DDIM steps): the default at s = 3 is the guided
  /// default (printed in the header) and not diffusers' clip_sample, which --scheduler-clipping keeps; every
  /// flag changes the images.
  func testSampleFlagsAndTheGuidedDefault() throws {
    let d = try tmp()
    func sample(_ extra: [String]) throws -> (values: [Float], header: String) {
      let npy = d.appendingPathComponent("s\(UUID().uuidString).npy")
      let r = try runGpugen(
        [
          "sample", "--n", "2", "--steps", "3", "--class", "0,7", "--device", "cpu", "--npy", npy.path,
          "--out",
          d.appendingPathComponent("g.png").path,
        ] + extra)
      XCTAssertEqual(r.0, 0, "\(extra): \(r.2)")
      return (try NPY.read(from: npy).values, r.2)
    }
    let guided = ["--guidance-scale", "3"]
    let byDefault = try sample(guided), diffusers = try sample(guided + ["--scheduler-clipping"])
    let noClip = try sample(guided + ["--no-clip"])
    XCTAssertEqual(byDefault.values, noClip.values, "s = 3 without a flag is --no-clip")
    XCTAssertNotEqual(byDefault.values, diffusers.values, "the default at s = 3 is not clip_sample")
    XCTAssertTrue(byDefault.header.contains(X0Bounding.guidedDefault.summary), byDefault.header)
    XCTAssertFalse(diffusers.header.contains(X0Bounding.guidedDefault.summary), diffusers.header)
    // s = 1 keeps the scheduler's clip_sample: plain conditional sampling, bit for bit.
    let plain = try sample([])
    XCTAssertEqual(try sample(["--guidance-scale", "1"]).values, plain.values)
    XCTAssertEqual(try sample(["--scheduler-clipping"]).values, plain.values)
    XCTAssertNotEqual(try sample(["--no-clip"]).values, plain.values)
    // Thresholding: its cap and its ratio each change the images (cap 1 is clipping to ±1: clip_sample).
    let cap1 = try sample(guided + ["--thresholding"])
    XCTAssertEqual(cap1.values, diffusers.values, "sample_max_value 1 is clip_sample's clamp to ±1")
    XCTAssertTrue(cap1.header.contains("dynamic thresholding (ratio 0.995, max 1.0)"), cap1.header)
    let cap2 = try sample(guided + ["--thresholding", "--sample-max-value", "2"])
    XCTAssertNotEqual(cap2.values, cap1.values)
    XCTAssertNotEqual(cap2.values, noClip.values)
    let ratio = try sample(
      guided + ["--thresholding", "--sample-max-value", "2", "--dynamic-thresholding-ratio", "0.5"])
    XCTAssertNotEqual(ratio.values, cap2.values)
  }

  func testEditingAndEvaluateTakeTheFlags() throws {
    let d = try tmp()
    let image = d.appendingPathComponent("x.npy")
    try NPY.write((0..<(2 * 784)).map { Float(sin(Double($0) / 7)) }, shape: [2, 1, 28, 28], to: image)
    for command in [
      ["img2img", "--strength", "0.8", "--steps", "4"],
      ["inpaint", "--mask", "center", "--steps", "4", "--jump-length", "1", "--jump-n-sample", "1"],
    ] {
      func edit(_ extra: [String]) throws -> [Float] {
        let npy = d.appendingPathComponent("e\(UUID().uuidString).npy")
        let r = try runGpugen(
          command + [
            "--image", image.path, "--class", "3", "--device", "cpu", "--npy", npy.path, "--out",
            d.appendingPathComponent("e.png").path,
          ] + extra)
        XCTAssertEqual(r.0, 0, "\(command) \(extra): \(r.2)")
        return try NPY.read(from: npy).values
      }
      let guided = ["--guidance-scale", "4"]
      let byDefault = try edit(guided), diffusers = try edit(guided + ["--scheduler-clipping"])
      XCTAssertEqual(byDefault, try edit(guided + ["--no-clip"]), "\(command)")
      XCTAssertNotEqual(byDefault, diffusers, "\(command)")
      let th = try edit(guided + ["--thresholding", "--sample-max-value", "2"])
      XCTAssertNotEqual(th, diffusers, "\(command)")
      XCTAssertNotEqual(th, byDefault, "\(command)")
      XCTAssertNotEqual(
        try edit(
          guided + ["--thresholding", "--sample-max-value", "2", "--dynamic-thresholding-ratio", "0.5"]), th,
        "\(command)")
    }
    // evaluate: the bounding reaches the samples (JSON figures) and is named in the knobs.
    func evaluate(_ extra: [String]) throws -> [String: Any] {
      let r = try runGpugen(
        ["evaluate", "--n", "10", "--steps", "2", "--device", "cpu", "--json", "--guidance-scale", "3"]
          + extra)
      XCTAssertEqual(r.0, 0, "\(extra): \(r.2)")
      return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.1.utf8)) as? [String: Any])
    }
    let byDefault = try evaluate([]), diffusers = try evaluate(["--scheduler-clipping"])
    let noClip = try evaluate(["--no-clip"])
    XCTAssertEqual(byDefault["x0_bounding"] as? String, X0Bounding.guidedDefault.summary)
    XCTAssertEqual(byDefault["fid"] as? Double, noClip["fid"] as? Double)
    XCTAssertNotEqual(byDefault["fid"] as? Double, diffusers["fid"] as? Double)
    let th = try evaluate(["--thresholding", "--sample-max-value", "2"])
    XCTAssertEqual(th["x0_bounding"] as? String, "dynamic thresholding (ratio 0.995, max 2.0)")
    XCTAssertNotEqual(th["fid"] as? Double, diffusers["fid"] as? Double)
    let ratio = try evaluate([
      "--thresholding", "--sample-max-value", "2", "--dynamic-thresholding-ratio", "0.5",
    ])
    XCTAssertNotEqual(ratio["fid"] as? Double, th["fid"] as? Double)
  }

  func testBadBoundingFlagsAreErrors() throws {
    let bad: [([String], String)] = [
      (["sample", "--n", "1", "--no-clip", "--thresholding"], "contradict"),
      (["sample", "--n", "1", "--scheduler-clipping", "--no-clip"], "contradict"),
      (["sample", "--n", "1", "--sample-max-value", "2"], "--sample-max-value needs --thresholding"),
      (["sample", "--n", "1", "--dynamic-thresholding-ratio", "0.9"], "--dynamic-thresholding-ratio needs"),
      (
        ["sample", "--n", "1", "--thresholding", "--dynamic-thresholding-ratio", "1.5"],
        "--dynamic-thresholding-ratio"
      ),
      (["sample", "--n", "1", "--thresholding", "--sample-max-value", "0"], "--sample-max-value"),
      (["sample", "--n", "1", "--thresholding", "--sampler", "euler"], "--thresholding"),
      (["sample", "--model", "vae", "--n", "1", "--thresholding"], "--thresholding"),
      (["evaluate", "--model", "vae", "--n", "10", "--no-clip"], "--no-clip"),
    ]
    for (args, word) in bad {
      let r = try runGpugen(args + ["--device", "cpu"])
      XCTAssertEqual(r.0, 2, "\(args): \(r.2)")
      XCTAssertTrue(r.2.contains("gpugen: error:") && r.2.contains(word), "\(args): \(r.2)")
    }
  }
}
