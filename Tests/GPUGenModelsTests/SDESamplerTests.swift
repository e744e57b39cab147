// DPM++ 2M SDE beyond step parity: its noise is keyed by (seed, sample, step), so the seed changes the
// samples and a seed reproduces them at any batch size; the CLI knows it by its diffusers users' name.
import Foundation
import XCTest

@testable import GPUGenModels

final class SDESamplerTests: XCTestCase {
  func sample(seed: UInt64, batchSize: Int, count: Int = 6, karras: Bool = false) throws -> [Float] {
    let mixture = GaussianMixture.standard
    var c = try SamplerPlanner.config(.dpmpp2mSDE, schedulerConfig: nil, karras: karras)
    c.clipSample = false
    let schedule = try NoiseSchedule(config: c)
    let plan = try SamplerPlanner.plan(.dpmpp2mSDE, schedule: schedule, steps: 10)
    XCTAssertTrue(plan.evaluations.dropLast().allSatisfy(\.stochastic))
    let d = GaussianMixtureDenoiser(mixture: mixture, schedule: schedule, device: .cpu)
    return try DiffusionSampler(unet: d, plan: plan).sample(
      SampleRequest(count: count, batchSize: batchSize, seed: seed))
  }

  func testSeedChangesSamplesAndReproducesThemAtAnyBatchSize() throws {
    for karras in [false, true] {
      let base = try sample(seed: 5, batchSize: 6, karras: karras)
      for batch in [1, 4] {
        let other = try sample(seed: 5, batchSize: batch, karras: karras)
        XCTAssertLessThanOrEqual(
          zip(base, other).map { Swift.abs($0 - $1) }.max()!, 1e-4, "batch \(batch), karras \(karras)")
      }
      let reseeded = try sample(seed: 6, batchSize: 6, karras: karras)
      XCTAssertGreaterThan(zip(base, reseeded).map { Swift.abs($0 - $1) }.max()!, 0.1, "karras \(karras)")
    }
  }

  func testCLIName() throws {
    XCTAssertEqual(SamplerKind(rawValue: "dpmpp-2m-sde"), .dpmpp2mSDE)
    XCTAssertEqual(SamplerKind.dpmpp2mSDE.family, .dpmSolverMultistep)
    let c = try SamplerPlanner.config(.dpmpp2mSDE, schedulerConfig: nil, karras: true)
    XCTAssertEqual(c.algorithmType, .sdeDPMSolverPlusPlus)
    XCTAssertTrue(c.useKarrasSigmas)
    let (status, out, err) = try runGpugen(["sample", "--help"])
    XCTAssertEqual(status, 0, err)
    XCTAssertTrue(out.contains("dpmpp-2m-sde"), out)
  }

  func testSchedulerConfigOptionsAreRead() throws {
    // A pipeline's dpmsolver++ config read as DPM++ 2M SDE keeps its options, as from_config does.
    let json =
      #"{"_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "dpmsolver++", "#
      + #""solver_type": "heun", "lower_order_final": false, "prediction_type": "v_prediction"}"#
    let c = try SamplerPlanner.config(.dpmpp2mSDE, schedulerJSON: json)
    XCTAssertEqual(c.algorithmType, .sdeDPMSolverPlusPlus)
    XCTAssertEqual(c.solverType, .heun)
    XCTAssertEqual(c.predictionType, .vPrediction)
    XCTAssertFalse(c.lowerOrderFinal)
  }
}
