// `gpugen bench train`: seconds per training step (forward, backward, optimizer) of the reference config.
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels

struct BenchTrain: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "train",
    abstract: "Training steps/s of the reference UNet (forward + MSE + backward + AdamW).",
    discussion: """
      Runs the reference config of Benchmarks/unet/config.json (32×32×1, channels 32/64/128) with
      seeded weights on random data. Compare with Benchmarks/pytorch_train_bench.py (same config,
      same step) — Benchmarks/train_side_by_side.sh runs both.
      """)

  @Option(help: "Device(s): a device spec, or 'all'.")
  var device: String = "cpu"

  @Option(help: "Batch size.")
  var batchSize = 64

  @Option(help: "Timed steps (after 2 warm-up steps).")
  var steps = 5

  @Option(help: "A UNet2DModel config.json instead of the reference config.")
  var config: String?

  @Flag(help: "Make the UNet class-conditional (10 classes).")
  var classConditional = false

  @Flag(help: "Print a JSON line.")
  var json = false

  func run() throws {
    try reportingErrors {
      guard batchSize > 0, steps > 0 else {
        throw ValidationError("--batch-size and --steps must be positive")
      }
      for d in try benchDevices(device) {
        var cfg = ReferenceUNet.config
        if let path = config {
          guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read --config \(path)")
          }
          cfg = try UNet2DConfig(json: data, source: path)
        }
        if classConditional && cfg.numClassEmbeds == nil { cfg.numClassEmbeds = 10 }
        let unet = try ReferenceUNet.make(on: d, config: cfg)
        let c = unet.config
        let x0 = try Tensor.randomNormal(
          shape: [batchSize, c.inChannels, c.sampleSize, c.sampleSize], seed: 3, on: d)
        let noise = try Tensor.randomNormal(shape: x0.shape, seed: 4, on: d)
        let timesteps = (0..<batchSize).map { Double($0 * 997 % 1000) }
        let labels = c.numClassEmbeds.map { k in (0..<batchSize).map { $0 % k } }
        let params = unet.parameters.map(\.tensor)
        let optimizer = try Optimizer(parameters: params, config: .adamW(weightDecay: 0))
        func step() throws {
          let tape = Tape()
          tape.watch(params)
          let loss = try tape.record {
            try Tensor.mseLoss(try unet(x0, timesteps: timesteps, classLabels: labels), noise)
          }
          let grads = try tape.gradients(of: loss, wrt: params).map { g in
            guard let g else { throw GPUGenError.invalidArgument("a parameter got no gradient") }
            return g
          }
          let clip = try Optimizer.clipGradNorm(grads: grads, maxNorm: 1)
          try optimizer.step(grads: grads, lr: 1e-4, gradScale: clip.scale)
          _ = try loss.toArray()
        }
        for _ in 0..<2 { try step() }
        let t0 = Date()
        for _ in 0..<steps { try step() }
        let s = Date().timeIntervalSince(t0) / Double(steps)
        let rss = peakResidentMegabytes()
        if json {
          print(
            jsonLine([
              "framework": "gpugen", "device": d.spec, "batch": batchSize, "steps_per_s": 1 / s,
              "s_per_step": s, "peak_rss_mb": rss,
            ]))
        } else {
          print(
            String(
              format: "%@ training step, batch %d: %.3f s/step (%.2f steps/s), peak RSS %.0f MB", d.spec,
              batchSize, s, 1 / s, rss))
        }
      }
    }
  }
}

/// Peak resident set size of this process, in MB (getrusage).
func peakResidentMegabytes() -> Double {
  var usage = rusage()
  getrusage(RUSAGE_SELF.rawValue, &usage)
  return Double(usage.ru_maxrss) / 1024
}
