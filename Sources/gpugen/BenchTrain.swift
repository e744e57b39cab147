// `gpugen bench train`: seconds per training step (forward, backward, optimizer) of the reference config.
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels

struct BenchTrain: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "train",
    abstract: "Training steps/s of a family's reference model (diffusion UNet, ConvVAE or DCGAN).",
    discussion: """
      --family diffusion (default) runs the reference config of Benchmarks/unet/config.json (32×32×1,
      channels 32/64/128): forward + MSE + backward + AdamW. Compare with Benchmarks/pytorch_train_bench.py;
      Benchmarks/train_side_by_side.sh runs both.
      --family vae runs the reference ConvVAE (28×28×1, widths 32/64, latent 16, Bernoulli): forward +
      negative ELBO + backward + Adam, then encode + decode in images/s at --infer-batch. Compare with
      Benchmarks/vae_pytorch.py; Benchmarks/vae_side_by_side.sh runs both.
      --family gan runs the reference DCGAN (28×28×1, latent 64, G 128·7·7 → 64 → 1, D 64 → 128 → 1, batch
      norm, non-saturating loss): one discriminator step plus one generator step (gpugen's GAN trainer on a
      fixed synthetic data set), then sampling in images/s at --infer-batch. Compare with
      Benchmarks/gan_pytorch.py; Benchmarks/gan_side_by_side.sh runs both.
      JSON keys: ms_per_step, steps_per_s (and images_per_s for the VAE's encode + decode,
      sample_images_per_s for the GAN).
      """)

  @Option(help: "The model family: diffusion, vae or gan.")
  var family: BenchFamily = .diffusion

  @Option(help: "VAE: batch of the encode + decode timing; GAN: batch of the sampling timing.")
  var inferBatch = 256

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
      if family == .vae {
        for d in try benchDevices(device) { try benchVAE(d) }
        return
      }
      if family == .gan {
        for d in try benchDevices(device) { try benchGAN(d) }
        return
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
              "framework": "gpugen", "family": "diffusion", "device": d.spec, "batch": batchSize,
              "steps_per_s": 1 / s, "s_per_step": s, "ms_per_step": 1000 * s, "peak_rss_mb": rss,
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

/// The families `bench train` measures.
enum BenchFamily: String, ExpressibleByArgument, CaseIterable {
  case diffusion, vae, gan
}

extension BenchTrain {
  /// The reference ConvVAE's training step and encode + decode throughput on `d`.
  func benchVAE(_ d: Device) throws {
    let model = try ConvVAE(config: ConvVAEConfig(), seed: 0, on: d)
    let params = model.trainableParameters
    let optimizer = try Optimizer(parameters: params, config: .adam())
    // Binary-ish data in [0, 1]: a fixed seeded batch.
    let x = try Tensor.randomUniform(shape: [batchSize, 1, 28, 28], seed: 5, on: d)
    var step = 0
    func trainStep() throws {
      let eps = try Tensor.randomNormal(shape: [batchSize, 16], seed: 6, step: step, on: d)
      let tape = Tape()
      tape.watch(params)
      let terms = try tape.record { try model.negativeELBO(x, noise: eps, beta: 1) }
      let grads = try zip(tape.gradients(of: terms.loss, wrt: params), params).map { g, p in
        try g ?? Tensor.zeros(p.shape, on: d)
      }
      try optimizer.step(grads: grads, lr: 1e-3)
      step += 1
    }
    for _ in 0..<3 { try trainStep() }
    let timed = max(steps, 20)
    var best = Double.infinity
    for _ in 0..<3 {
      let t0 = Date()
      for _ in 0..<timed { try trainStep() }
      _ = try params[0].toArray()
      best = min(best, Date().timeIntervalSince(t0) / Double(timed))
    }
    let xi = try Tensor.randomUniform(shape: [inferBatch, 1, 28, 28], seed: 7, on: d)
    func infer() throws {
      try Tape.noGrad {
        let (mu, _) = try model.encode(xi)
        _ = try model.decodeImages(mu).toArray()
      }
    }
    try infer()
    var bestInfer = Double.infinity
    for _ in 0..<3 {
      let t0 = Date()
      for _ in 0..<5 { try infer() }
      bestInfer = min(bestInfer, Date().timeIntervalSince(t0) / 5)
    }
    let rss = peakResidentMegabytes()
    let ips = Double(inferBatch) / bestInfer
    if json {
      print(
        jsonLine([
          "framework": "gpugen", "family": "vae", "device": d.spec, "batch": batchSize,
          "steps_per_s": 1 / best,
          "ms_per_step": 1000 * best, "infer_batch": inferBatch, "images_per_s": ips, "peak_rss_mb": rss,
        ]))
    } else {
      print(
        String(
          format:
            "%@ ConvVAE training step, batch %d: %.2f ms/step (%.1f steps/s); encode + decode, batch %d: %.0f images/s",
          d.spec, batchSize, 1000 * best, 1 / best, inferBatch, ips))
    }
  }
}

extension BenchTrain {
  /// The reference DCGAN's training step (one D step + one G step) and sampling throughput on `d`.
  func benchGAN(_ d: Device) throws {
    let count = max(4 * batchSize, 1024)
    // A fixed synthetic data set in [−1, 1] (the step's cost does not depend on the pixels).
    let pixels = try Tensor.randomUniform(shape: [count, 1, 28, 28], seed: 5, on: .cpu).toArray().map {
      2 * $0 - 1
    }
    let data = TrainingImages(
      images: pixels, labels: nil, count: count, channels: 1, size: 28, classCount: 0)
    var options = GANTrainingOptions()
    (options.batchSize, options.steps, options.data) = (batchSize, 1_000_000, "synthetic")
    let g = GANNetworkConfig(role: .generator), dc = GANNetworkConfig(role: .discriminator)
    let model = GANModelConfig(
      latentDim: g.latentDim, loss: .ns, conditional: false, numClasses: 0, data: "synthetic")
    let trainer = try GANTrainer(
      model: model, generator: g, discriminator: dc, data: .images(data), options: options, device: d)
    for _ in 0..<3 { _ = try trainer.trainStep() }
    let timed = max(steps, 20)
    var best = Double.infinity
    for _ in 0..<3 {
      let t0 = Date()
      for _ in 0..<timed { _ = try trainer.trainStep() }
      best = min(best, Date().timeIntervalSince(t0) / Double(timed))
    }
    let sampler = GANModel(config: model, generator: try trainer.emaGenerator(), discriminator: nil)
    func sample() throws {
      _ = try GANOps.sample(sampler, count: inferBatch, batchSize: inferBatch, seed: 0, device: d)
    }
    try sample()
    var bestSample = Double.infinity
    for _ in 0..<3 {
      let t0 = Date()
      for _ in 0..<5 { try sample() }
      bestSample = min(bestSample, Date().timeIntervalSince(t0) / 5)
    }
    let ips = Double(inferBatch) / bestSample
    if json {
      print(
        jsonLine([
          "framework": "gpugen", "family": "gan", "device": d.spec, "batch": batchSize,
          "steps_per_s": 1 / best,
          "ms_per_step": 1000 * best, "sample_batch": inferBatch, "sample_images_per_s": ips,
          "parameters_g": trainer.generator.parameterCount,
          "parameters_d": trainer.discriminator.parameterCount,
          "peak_rss_mb": peakResidentMegabytes(),
        ]))
    } else {
      print(
        String(
          format:
            "%@ DCGAN training step (D + G), batch %d: %.2f ms/step (%.1f steps/s); sampling, batch %d: %.0f images/s",
          d.spec, batchSize, 1000 * best, 1 / best, inferBatch, ips))
    }
  }
}

/// Peak resident set size of this process, in MB (getrusage).
func peakResidentMegabytes() -> Double {
  var usage = rusage()
  getrusage(RUSAGE_SELF.rawValue, &usage)
  return Double(usage.ru_maxrss) / 1024
}
