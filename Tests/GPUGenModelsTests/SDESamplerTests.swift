// DPM++ 2M SDE and 3M SDE beyond step parity: their noise is keyed by (seed, sample, step), so the seed
// changes the samples and a seed reproduces them at any batch size; the CLI knows them by their diffusers
// users' names.
import Foundation
import XCTest

@testable import GPUGenModels

final class SDESamplerTests: XCTestCase {
  func sample(
    _ kind: SamplerKind = .dpmpp2mSDE, seed: UInt64, batchSize: Int, count: Int = 6, karras: Bool = false
  ) throws -> [Float] {
    let mixture = GaussianMixture.standard
    var c = try SamplerPlanner.config(kind, schedulerConfig: nil, karras: karras)
    c.clipSample = false
    let schedule = try NoiseSchedule(config: c)
    let plan = try SamplerPlanner.plan(kind, schedule: schedule, steps: 10)
    XCTAssertTrue(plan.evaluations.dropLast().allSatisfy(\.stochastic))
    let d = GaussianMixtureDenoiser(mixture: mixture, schedule: schedule, device: .cpu)
    return try DiffusionSampler(unet: d, plan: plan).sample(
      SampleRequest(count: count, batchSize: batchSize, seed: seed))
  }

  func testSeedChangesSamplesAndReproducesThemAtAnyBatchSize() throws {
    for kind in [SamplerKind.dpmpp2mSDE, .dpmpp3mSDE] {
      for karras in [false, true] {
        let base = try sample(kind, seed: 5, batchSize: 6, karras: karras)
        for batch in [1, 4] {
          let other = try sample(kind, seed: 5, batchSize: batch, karras: karras)
          XCTAssertLessThanOrEqual(
            zip(base, other).map { Swift.abs($0 - $1) }.max()!, 1e-4,
            "\(kind) batch \(batch), karras \(karras)")
        }
        let reseeded = try sample(kind, seed: 6, batchSize: 6, karras: karras)
        XCTAssertGreaterThan(
          zip(base, reseeded).map { Swift.abs($0 - $1) }.max()!, 0.1, "\(kind) karras \(karras)")
      }
    }
  }

  func testCLIName() throws {
    XCTAssertEqual(SamplerKind(rawValue: "dpmpp-2m-sde"), .dpmpp2mSDE)
    XCTAssertEqual(SamplerKind(rawValue: "dpmpp-3m-sde"), .dpmpp3mSDE)
    XCTAssertEqual(SamplerKind.dpmpp2mSDE.family, .dpmSolverMultistep)
    XCTAssertEqual(SamplerKind.dpmpp3mSDE.family, .dpmSolverMultistep)
    let c = try SamplerPlanner.config(.dpmpp2mSDE, schedulerConfig: nil, karras: true)
    XCTAssertEqual(c.algorithmType, .sdeDPMSolverPlusPlus)
    XCTAssertTrue(c.useKarrasSigmas)
    let c3 = try SamplerPlanner.config(.dpmpp3mSDE, schedulerConfig: nil, karras: true)
    XCTAssertEqual(c3.algorithmType, .sdeDPMSolverPlusPlus)
    XCTAssertEqual(c3.solverOrder, 3)
    XCTAssertTrue(c3.useKarrasSigmas)
    // Karras sigmas reach the plan: its first step goes from the largest Karras sigma.
    let plain = try SamplerPlanner.plan(.dpmpp3mSDE, schedulerConfig: nil, steps: 10)
    let karras = try SamplerPlanner.plan(.dpmpp3mSDE, schedulerConfig: nil, steps: 10, karras: true)
    XCTAssertNotEqual(plain.evaluations.map(\.timestep), karras.evaluations.map(\.timestep))
    let (status, out, err) = try runGpugen(["sample", "--help"])
    XCTAssertEqual(status, 0, err)
    XCTAssertTrue(out.contains("dpmpp-2m-sde") && out.contains("dpmpp-3m-sde"), out)
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
    let c3 = try SamplerPlanner.config(.dpmpp3mSDE, schedulerJSON: json)
    XCTAssertEqual(c3.algorithmType, .sdeDPMSolverPlusPlus)
    XCTAssertEqual(c3.solverOrder, 3)
    XCTAssertEqual(c3.solverType, .heun)
    XCTAssertEqual(c3.predictionType, .vPrediction)
    XCTAssertFalse(c3.lowerOrderFinal)
  }

  func testThirdOrderStepsReadTwoEarlierOutputs() throws {
    // 10 steps with lower_order_final: orders 1, 2, then 3 until the last two steps (2, 1).
    let plan = try SamplerPlanner.plan(.dpmpp3mSDE, schedulerConfig: nil, steps: 10)
    XCTAssertEqual(plan.evaluations.map(\.update.historyDepth), [0, 1, 2, 2, 2, 2, 2, 2, 1, 0])
    XCTAssertTrue(plan.evaluations.allSatisfy(\.update.writesAux))
    // solver_order is fixed to 3 by the name, whatever the pipeline's config says.
    let two = try SamplerPlanner.plan(
      .dpmpp3mSDE, schedulerJSON: #"{"solver_order": 2}"#, steps: 10)
    XCTAssertEqual(two.evaluations.map(\.update.historyDepth), [0, 1, 2, 2, 2, 2, 2, 2, 1, 0])
    // lower_order_final false: third order up to the (first-order) step to σ = 0.
    let long = try SamplerPlanner.plan(
      .dpmpp3mSDE, schedulerJSON: #"{"lower_order_final": false}"#, steps: 10)
    XCTAssertEqual(long.evaluations.map(\.update.historyDepth), [0, 1, 2, 2, 2, 2, 2, 2, 2, 0])
  }
}
