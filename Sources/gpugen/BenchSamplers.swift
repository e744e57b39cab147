// `gpugen bench samplers`: sampler error against model evaluations, with an exact Gaussian-mixture ε.
import ArgumentParser
import Foundation
import GPUGenModels

struct BenchSamplers: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "samplers",
    abstract:
      "Error against model evaluations for each sampler, driven by an exact Gaussian-mixture ε(x, t).",
    discussion: """
      The target is a 2-D mixture of three Gaussians (weights 0.5/0.3/0.2). Each sampler draws --n points;
      'weight err' is the largest error in a component's share of the samples, 'mean err' the largest error
      in a component mean. No training is involved, so this isolates the samplers.
      """)

  @Option(help: "Samples per run.") var n = 4000
  @Option(help: "Random seed.") var seed: UInt64 = 0
  @Flag(help: "Print JSON lines.") var json = false

  func run() throws {
    try reportingErrors {
      let sweep: [SamplerKind: [Int]] = [
        .ddpm: [50, 100, 250, 1000], .ddim: [5, 10, 20, 50], .dpmpp2m: [5, 10, 20, 50],
        .dpmpp2mSDE: [5, 10, 20, 50], .dpmpp3mSDE: [5, 10, 20, 50],
        .euler: [5, 10, 20, 50],
        .eulerA: [5, 10, 20, 50], .heun: [3, 5, 10, 25], .unipc: [5, 10, 20, 50],
      ]
      let mixture = GaussianMixture.standard
      if !json { print("sampler        steps  evals  weight err  mean err") }
      for kind in SamplerKind.allCases {
        for steps in sweep[kind]! {
          var c = try SamplerPlanner.config(kind, schedulerConfig: nil)
          c.clipSample = false
          let schedule = try NoiseSchedule(config: c)
          let plan = try SamplerPlanner.plan(kind, schedule: schedule, steps: steps)
          let d = GaussianMixtureDenoiser(mixture: mixture, schedule: schedule, device: .cpu)
          let v = try DiffusionSampler(unet: d, plan: plan).sample(
            SampleRequest(count: n, batchSize: n, seed: seed))
          let s = mixture.statistics((0..<n).map { i in [Double(v[2 * i]), Double(v[2 * i + 1])] })
          let we = zip(s.weights, mixture.weights).map { abs($0 - $1) }.max()!
          let me = zip(s.means, mixture.means).map { zip($0, $1).map { abs($0 - $1) }.max()! }.max()!
          if json {
            print(
              jsonLine([
                "sampler": kind.rawValue, "steps": steps, "evaluations": plan.evaluations.count,
                "weight_error": we, "mean_error": me,
              ]))
          } else {
            print(
              String(
                format: "%@ %6d %6d %11.4f %9.4f",
                kind.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0),
                steps, plan.evaluations.count, we, me))
          }
        }
      }
    }
  }
}
