// Every sampler driven by the exact ε of a Gaussian mixture (no training): the samples' component
// weights and means must match the target distribution.
import Foundation
import XCTest

@testable import GPUGenModels

final class OracleTests: XCTestCase {
  /// Samples `n` points with `kind` at `steps` and returns the worst weight and mean errors.
  /// `json`: a scheduler_config.json for the sampler's class (its options), else the class defaults.
  static func run(
    _ kind: SamplerKind, steps: Int, n: Int, device: Device = .cpu, seed: UInt64 = 3, json: String? = nil
  ) throws
    -> (weight: Double, mean: Double)
  {
    let mixture = GaussianMixture.standard
    let config =
      try json.map { try SamplerPlanner.config(kind, schedulerJSON: $0) }
      ?? SamplerPlanner.config(kind, schedulerConfig: nil)
    var c = config
    c.clipSample = false  // the mixture lives outside [-1, 1]
    let schedule = try NoiseSchedule(config: c)
    let plan = try SamplerPlanner.plan(kind, schedule: schedule, steps: steps)
    let denoiser = GaussianMixtureDenoiser(mixture: mixture, schedule: schedule, device: device)
    let values = try DiffusionSampler(unet: denoiser, plan: plan).sample(
      SampleRequest(count: n, batchSize: n, seed: seed))
    let points = (0..<n).map { i in (0..<2).map { Double(values[i * 2 + $0]) } }
    let s = mixture.statistics(points)
    let we = zip(s.weights, mixture.weights).map { Swift.abs($0 - $1) }.max()!
    let me = zip(s.means, mixture.means).map { zip($0, $1).map { Swift.abs($0 - $1) }.max()! }.max()!
    return (we, me)
  }

  func testSamplersReproduceTheMixture() throws {
    // n = 2000: the standard error of a weight is ≤ √(0.25/2000) ≈ 0.011, so 0.045 is ~4σ; mean errors of
    // well-sampled components are ~0.01, so 0.08 catches a biased sampler (a wrong step is off by ≫ 0.1).
    let cases: [(SamplerKind, Int, Double, Double)] = [
      (.ddpm, 1000, 0.045, 0.08), (.ddim, 50, 0.045, 0.08), (.dpmpp2m, 20, 0.045, 0.08),
      (.dpmpp2m, 10, 0.045, 0.1), (.dpmpp2mSDE, 20, 0.045, 0.08), (.dpmpp2mSDE, 10, 0.045, 0.1),
      (.heun, 10, 0.045, 0.1), (.euler, 50, 0.045, 0.1), (.eulerA, 50, 0.045, 0.1),
      // DPM++ 3M SDE at 10 steps only: diffusers' third-order SDE term (reproduced exactly) keeps a bias that
      // does not fall with more steps (README, Sampling), so at 20 steps its mean error is 0.14.
      (.dpmpp3mSDE, 10, 0.045, 0.1), (.unipc, 20, 0.045, 0.08),
      (.unipc, 10, 0.045, 0.1),
    ]
    // UniPC's other solver types and orders, set as a pipeline's scheduler_config.json would.
    let uniPC = [
      #"{"solver_type": "bh1", "solver_order": 3}"#, #"{"solver_type": "bh2", "solver_order": 3}"#,
      #"{"solver_type": "bh1", "solver_order": 1}"#,
      #"{"solver_order": 3, "predict_x0": false, "final_sigmas_type": "sigma_min"}"#,
    ]
    for (kind, steps, wTol, mTol, json) in cases.map({ ($0.0, $0.1, $0.2, $0.3, String?.none) })
      + uniPC.map({ (SamplerKind.unipc, 10, 0.045, 0.1, $0) })
    {
      let e = try Self.run(kind, steps: steps, n: 2000, json: json)
      let label = "\(kind.rawValue) \(json ?? "") \(steps) steps"
      print("oracle \(label): weight error \(e.weight), mean error \(e.mean)")
      XCTAssertLessThanOrEqual(e.weight, wTol, label)
      XCTAssertLessThanOrEqual(e.mean, mTol, label)
    }
  }

  func testAWrongSamplerIsCaught() throws {
    // A deliberately broken plan (DDIM with the x̂₀ coefficient halved) must fail the same check.
    let kind = SamplerKind.ddim
    var c = try SamplerPlanner.config(kind, schedulerConfig: nil)
    c.clipSample = false
    let schedule = try NoiseSchedule(config: c)
    var plan = try SamplerPlanner.plan(kind, schedule: schedule, steps: 50)
    for i in plan.evaluations.indices { plan.evaluations[i].update.c0 *= 0.97 }
    let mixture = GaussianMixture.standard
    let values = try DiffusionSampler(
      unet: GaussianMixtureDenoiser(mixture: mixture, schedule: schedule, device: .cpu), plan: plan
    ).sample(SampleRequest(count: 2000, batchSize: 2000, seed: 3))
    let s = mixture.statistics((0..<2000).map { i in (0..<2).map { Double(values[i * 2 + $0]) } })
    let me = zip(s.means, mixture.means).map { zip($0, $1).map { Swift.abs($0 - $1) }.max()! }.max()!
    XCTAssertGreaterThan(me, 0.08)
  }
}
