// UniPC beyond step parity (SamplerParityTests): what each scheduler_config.json option does to the plan, the
// cases where diffusers' step is NaN (refused, or the limit taken), and the CLI name and pipeline options.
import Foundation
import XCTest

@testable import GPUGenModels

final class UniPCTests: XCTestCase {
  func plan(_ json: String, steps: Int = 10, karras: Bool = false) throws -> SamplingPlan {
    try SamplerPlanner.plan(.unipc, schedulerJSON: json, steps: steps, karras: karras)
  }

  func testSchedulerConfigOptionsAreRead() throws {
    let json =
      #"{"_class_name": "DPMSolverMultistepScheduler", "solver_type": "bh1", "solver_order": 3, "#
      + #""lower_order_final": false, "predict_x0": false, "disable_corrector": [2, 5], "#
      + #""final_sigmas_type": "sigma_min", "sigma_min": 0.1, "sigma_max": 20, "use_karras_sigmas": true}"#
    let c = try SamplerPlanner.config(.unipc, schedulerJSON: json)
    XCTAssertEqual(c.family, .uniPCMultistep)
    XCTAssertEqual(c.uniPCSolverType, .bh1)
    XCTAssertEqual(c.solverOrder, 3)
    XCTAssertFalse(c.lowerOrderFinal)
    XCTAssertFalse(c.predictX0)
    XCTAssertEqual(c.disableCorrector, [2, 5])
    XCTAssertEqual(c.finalSigmasType, .sigmaMin)
    XCTAssertTrue(c.useKarrasSigmas)
    // diffusers registers DPM-Solver's solver types as bh2; the defaults are bh2, order 2, predict_x0.
    let d = try SamplerPlanner.config(.unipc, schedulerJSON: #"{"solver_type": "midpoint"}"#)
    XCTAssertEqual(d.uniPCSolverType, .bh2)
    XCTAssertEqual(d.solverOrder, 2)
    XCTAssertTrue(d.predictX0 && d.lowerOrderFinal && d.disableCorrector.isEmpty)
  }

  func testEveryOptionChangesThePlan() throws {
    let base = try plan("{}")
    func updates(_ p: SamplingPlan) -> [SamplerUpdate] { p.evaluations.map(\.update) }
    for json in [
      #"{"solver_type": "bh1", "final_sigmas_type": "sigma_min"}"#, #"{"solver_order": 3}"#,
      #"{"solver_order": 1}"#, #"{"predict_x0": false, "final_sigmas_type": "sigma_min"}"#,
      #"{"disable_corrector": [3]}"#, #"{"final_sigmas_type": "sigma_min"}"#,
      #"{"prediction_type": "v_prediction"}"#,
    ] {
      XCTAssertNotEqual(updates(try plan(json)), updates(base), json)
    }
    // lower_order_final: with it the second-to-last step is of order 2, without it of order 3.
    let lof = try plan(#"{"solver_order": 3, "final_sigmas_type": "sigma_min"}"#, steps: 20)
    let noLof = try plan(
      #"{"solver_order": 3, "final_sigmas_type": "sigma_min", "lower_order_final": false}"#, steps: 20)
    XCTAssertEqual(updates(lof).prefix(18), updates(noLof).prefix(18))
    XCTAssertNotEqual(lof.evaluations[18].update, noLof.evaluations[18].update)
    // disable_corrector [3]: only the updates of step 4 (whose corrector it skips) change.
    let skipped = try plan(#"{"disable_corrector": [3]}"#)
    for i in 0..<10 {
      XCTAssertEqual(skipped.evaluations[i].update == base.evaluations[i].update, i != 4, "step \(i)")
    }
    // Karras sigmas (with sigma_max overriding the largest) reach the timesteps.
    let karras = try plan("{}", karras: true)
    XCTAssertNotEqual(karras.evaluations.map(\.timestep), base.evaluations.map(\.timestep))
    let capped = try plan(#"{"sigma_max": 20}"#, karras: true)
    XCTAssertLessThan(capped.evaluations[0].timestep, karras.evaluations[0].timestep)
    func sigmas(_ json: String) throws -> [Double] {
      try NoiseSchedule(config: try SamplerPlanner.config(.unipc, schedulerJSON: json, karras: true))
        .sigmas(numInferenceSteps: 10)
    }
    XCTAssertEqual(try sigmas(#"{"sigma_max": 20}"#)[0], 20, accuracy: 1e-4)
    XCTAssertEqual(try sigmas(#"{"sigma_min": 0.5}"#)[9], 0.5, accuracy: 1e-5)
    // sigma_min as the final sigma of a Karras schedule is its last sigma, as diffusers' UniPC has it.
    let k = try sigmas(#"{"final_sigmas_type": "sigma_min"}"#)
    XCTAssertEqual(k[10], k[9])
  }

  func testCorrectorFoldsIntoOneUpdateWithAtMostThreeEarlierOutputs() throws {
    // Order 3, 10 steps, lower_order_final: predictor orders 1 2 3 3 3 3 3 3 2 1; step i's corrector has the
    // order of step i − 1 and reads back to M_{i−order}; the last step, to σ = 0, is x̂₀ alone.
    let p = try plan(#"{"solver_order": 3}"#)
    XCTAssertEqual(p.evaluations.map(\.update.historyDepth), [0, 1, 2, 3, 3, 3, 3, 3, 3, 0])
    // Order 1 without the corrector is DDIM-like: no history at all.
    let plain = try plan(#"{"solver_order": 1, "disable_corrector": [0, 1, 2, 3, 4, 5, 6, 7, 8]}"#)
    XCTAssertTrue(plain.evaluations.allSatisfy { $0.update.historyDepth == 0 })
  }

  func testStepsWhereDiffusersIsNaN() throws {
    // bh1 at σ = 0: diffusers' B(h) = −∞ makes the last step NaN; gpugen takes the limit, x̂₀.
    let bh1 = try plan(#"{"solver_type": "bh1"}"#)
    let last = try XCTUnwrap(bh1.evaluations.last).update
    XCTAssertEqual(last.cx, 0)
    XCTAssertEqual(last.c0, 1)
    XCTAssertEqual(last.historyDepth, 0)
    XCTAssertTrue(
      bh1.evaluations.allSatisfy { [$0.update.cx, $0.update.c0, $0.update.cp].allSatisfy(\.isFinite) })
    // Undefined steps are refused: order 3 to σ = 0 (a singular system), noise prediction at σ = 0.
    XCTAssertThrowsError(try plan(#"{"solver_order": 3, "lower_order_final": false}"#)) {
      XCTAssertTrue("\($0)".contains("NaN"), "\($0)")
    }
    XCTAssertThrowsError(try plan(#"{"predict_x0": false}"#)) {
      XCTAssertTrue("\($0)".contains("sigma_min"), "\($0)")
    }
    // Karras with final sigma_min ends on h = 0 (diffusers repeats the last sigma): only order 1 is finite.
    XCTAssertNoThrow(try plan(#"{"use_karras_sigmas": true, "final_sigmas_type": "sigma_min"}"#))
    XCTAssertThrowsError(
      try plan(#"{"use_karras_sigmas": true, "final_sigmas_type": "sigma_min", "lower_order_final": false}"#)
    ) {
      XCTAssertTrue("\($0)".contains("\"zero\""), "\($0)")
    }
    XCTAssertThrowsError(try plan(#"{"solver_p": {"x": 1}}"#))
    XCTAssertThrowsError(try plan(#"{"solver_type": "dpm"}"#))
    XCTAssertThrowsError(try plan(#"{"disable_corrector": ["a"]}"#))
  }

  func testCLINameAndPipelineOptions() throws {
    XCTAssertEqual(SamplerKind(rawValue: "unipc"), .unipc)
    XCTAssertEqual(SamplerKind.unipc.family, .uniPCMultistep)
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("gpugen-unipc-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: d) }
    // A pipeline folder: the bundled model with the scheduler config replaced.
    func pipeline(_ name: String, _ json: String) throws -> URL {
      let p = d.appendingPathComponent(name)
      try FileManager.default.copyItem(at: try DefaultModel.url(), to: p)
      try Data(json.utf8).write(to: p.appendingPathComponent("scheduler/scheduler_config.json"))
      return p
    }
    func sample(_ model: URL?, _ extra: [String] = []) throws -> (Int32, [Float], String) {
      let npy = d.appendingPathComponent("out-\(UUID().uuidString).npy")
      let (status, _, err) = try runGpugen(
        [
          "sample", "--sampler", "unipc", "--n", "2", "--steps", "4", "--device", "cpu",
          "--npy", npy.path, "--out", d.appendingPathComponent("g.png").path,
        ]
          + (model.map { ["--model", $0.path] } ?? []) + extra)
      return (status, status == 0 ? try NPY.read(from: npy).values : [], err)
    }
    let class_ =
      #""_class_name": "DDPMScheduler", "num_train_timesteps": 1000, "beta_schedule": "linear", "#
      + #""beta_start": 0.0001, "beta_end": 0.02, "clip_sample": true, "timestep_spacing": "trailing""#
    let (s0, bh2, e0) = try sample(try pipeline("bh2", "{\(class_)}"))
    XCTAssertEqual(s0, 0, e0)
    let (s1, bh1, e1) = try sample(
      try pipeline("bh1", "{\(class_), \"solver_type\": \"bh1\", \"solver_order\": 3}"))
    XCTAssertEqual(s1, 0, e1)
    XCTAssertEqual(bh2.count, 2 * 28 * 28)
    XCTAssertGreaterThan(zip(bh1, bh2).map { Swift.abs($0 - $1) }.max()!, 1e-3)
    let (s2, karras, e2) = try sample(try pipeline("k", "{\(class_)}"), ["--karras"])
    XCTAssertEqual(s2, 0, e2)
    XCTAssertGreaterThan(zip(karras, bh2).map { Swift.abs($0 - $1) }.max()!, 1e-3)
    let (s3, _, e3) = try sample(try pipeline("bad", "{\(class_), \"predict_x0\": false}"))
    XCTAssertEqual(s3, 2, e3)
    XCTAssertTrue(e3.contains("gpugen: error:") && e3.contains("predict_x0"), e3)
  }
}
