// `gpugen bench unet`: UNet evaluation time and sampling throughput of the reference config.
import ArgumentParser
import Foundation
import GPUGenModels

struct BenchUNet: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "unet",
    abstract: "ms per UNet evaluation at several batch sizes and images/s of 20-step DPM++ 2M sampling.",
    discussion: """
      Without --model, runs the reference config of Benchmarks/unet/config.json (UNet2DModel, 32×32×1,
      channels 32/64/128, attention at the lowest resolution) with seeded random weights. Compare with
      Benchmarks/pytorch_unet_bench.py, which runs the same config in PyTorch.
      """)

  @Option(help: "Model folder; default: the reference config with random weights.")
  var model: String?

  @Option(help: "Device(s): a device spec, or 'all' (default).")
  var device: String = "all"

  @Option(
    name: .customLong("batch"), parsing: .upToNextOption, help: "Batch sizes for the per-evaluation timing.")
  var batches: [Int] = [1, 16, 64]

  @Option(help: "Batch size of the sampling run (0 skips it).")
  var sampleBatch = 64

  @Option(help: "Sampler steps of the sampling run.")
  var steps = 20

  @Option(help: "Minimum seconds of timing per figure.")
  var seconds: Double = 3

  @Flag(help: "Print JSON lines.")
  var json = false

  func run() throws {
    try reportingErrors {
      for d in try benchDevices(device) {
        let unet: UNet2D
        if let model {
          unet = try UNet2DModelLoader.load(
            from: try DiffusionModelFolder.resolve(URL(fileURLWithPath: model)).unet, device: d)
        } else {
          unet = try ReferenceUNet.make(on: d)
        }
        let c = unet.config
        for b in batches {
          let x = try Tensor.randomNormal(
            shape: [b, c.inChannels, c.sampleSize, c.sampleSize], seed: 1, on: d)
          let labels = c.numClassEmbeds.map { k in (0..<b).map { $0 % k } }
          let ms = try Benchmarks.medianMilliseconds(seconds: seconds) {
            _ = try unet(x, timesteps: [500], classLabels: labels).toArray()
          }
          if json {
            print(jsonLine(["impl": "gpugen", "device": d.spec, "what": "unet_eval", "batch": b, "ms": ms]))
          } else {
            print(String(format: "%@ UNet eval batch %3d: %9.2f ms", d.spec, b, ms))
          }
        }
        if sampleBatch > 0 {
          let plan = try SamplerPlanner.plan(.dpmpp2m, schedulerConfig: nil, steps: steps)
          let sampler = DiffusionSampler(unet: unet, plan: plan)
          let labels = c.numClassEmbeds.map { k in (0..<k).map { $0 } }
          let req = SampleRequest(count: sampleBatch, batchSize: sampleBatch, seed: 0, classLabels: labels)
          // Warm-up.
          _ = try sampler.sample(SampleRequest(count: 1, batchSize: 1, seed: 0, classLabels: labels))
          let t0 = Date()
          _ = try sampler.sample(req)
          let s = Date().timeIntervalSince(t0)
          let ips = Double(sampleBatch) / s
          if json {
            print(
              jsonLine([
                "impl": "gpugen", "device": d.spec, "what": "dpmpp2m_\(steps)", "batch": sampleBatch,
                "seconds": s, "images_per_s": ips,
              ]))
          } else {
            print(
              String(
                format: "%@ DPM++ 2M %d steps, batch %d: %.2f s, %.2f images/s", d.spec, steps, sampleBatch,
                s, ips))
          }
        }
      }
    }
  }
}
