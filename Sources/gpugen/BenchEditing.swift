// `gpugen bench editing`: DDIM inversion's reconstruction error against the step count, and img2img's distance
// to the input and KID against the strength, on Fashion-MNIST test images.
import ArgumentParser
import Foundation
import GPUGenModels

struct BenchEditing: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "editing",
    abstract: "DDIM inversion MSE against steps, img2img distance and KID against strength, on test images.",
    discussion: """
      Takes the first --n images of Fashion-MNIST's t10k split with their true classes. Inversion: each N of \
      --inversion-steps inverts them (gpugen encode) and reconstructs them with N DDIM steps (gpugen sample \
      --noise --no-clip), and with the scheduler's clipping left on; the per-pixel MSE on [0, 1] to the \
      originals. img2img: each strength of --strengths edits them with --sampler and --steps (gpugen img2img, \
      --seed); the mean squared distance to the input (pixels in [0, 1]) and the KID of the edits against \
      t10k in the bundled classifier's features (as gpugen evaluate; the floor row is s = 0: real images).
      """)

  @Option(help: "Diffusion model folder or bundled name. Default: diffusion.") var model: String?
  @OptionGroup var deviceOptions: DeviceOptions
  @Option(help: "Test images (a multiple of 10).") var n = 200
  @Option(help: "Comma-separated inversion step counts (empty: skip).") var inversionSteps = "10,20,50,100"
  @Option(help: "Comma-separated img2img strengths (empty: skip).") var strengths = "0,0.2,0.4,0.6,0.8,1"
  @Option(help: "img2img sampler.", transform: parseSampler) var sampler: SamplerKind = .ddim
  @Option(help: "img2img steps of the full schedule.") var steps = 50
  @Option(help: "Seed of the img2img noise and of the KID subsets.") var seed: UInt64 = 0
  @Option(help: "Images per UNet batch.") var batchSize = 64
  @Flag(help: "Print JSON lines.") var json = false

  func run() throws {
    try reportingUserErrors {
      let stepList = try inversionSteps.split(separator: ",").map { s -> Int in
        guard let v = Int(s.trimmingCharacters(in: .whitespaces)), v > 0 else {
          throw ModelError.input("--inversion-steps takes positive integers, got '\(inversionSteps)'")
        }
        return v
      }
      let strengthList = try strengths.split(separator: ",").map { s -> Double in
        guard let v = Double(s.trimmingCharacters(in: .whitespaces)), v >= 0, v <= 1 else {
          throw ModelError.input("--strengths takes values in [0, 1], got '\(strengths)'")
        }
        return v
      }
      guard batchSize > 0 else { throw ModelError.input("--batch-size must be positive") }
      let device = try deviceOptions.resolve()
      let m = try EditingModel.load(model, device: device, command: "bench editing")
      let data = try VAEInput.dataset(
        "fashion-mnist:test:\(n)", channels: m.unet.imageShape[0], size: m.unet.imageShape[1])
      let labels = m.unet.config.numClassEmbeds == nil ? nil : data.labels
      let x = data.images, batch = min(batchSize, n)
      if !stepList.isEmpty && !json {
        print("DDIM inversion, \(n) test images: steps  MSE (no clip)  MSE (clip)")
      }
      for s in stepList {
        let bar = ProgressBar(total: 3 * s * ((n + batch - 1) / batch), label: "inversion \(s)")
        let z = try DDIMInversion.invert(
          m.unet, images: x, count: n, classLabels: labels, steps: s, schedulerConfig: m.schedulerConfig,
          batchSize: batch, progress: { bar.advance($0) })
        let mse = try [false, true].map { clip in
          meanSquaredDistance01(
            x,
            try DDIMInversion.reconstruct(
              m.unet, noise: z, count: n, classLabels: labels, steps: s, schedulerConfig: m.schedulerConfig,
              batchSize: batch, clip: clip ? nil : false, progress: { bar.advance($0) }))
        }
        if json {
          print(jsonLine(["task": "inversion", "n": n, "steps": s, "mse": mse[0], "mse_clipped": mse[1]]))
        } else {
          print(String(format: "  %4d  %.5f  %.5f", s, mse[0], mse[1]))
        }
      }
      guard !strengthList.isEmpty else { return }
      let classifier = try ImageClassifier.bundled(device: device)
      let real = try TrainingImages.load(
        source: TrainingImages.fashionMNISTFolder().appendingPathComponent("t10k-images-idx3-ubyte.gz").path,
        sampleSize: classifier.config.imageSize, channels: classifier.config.inChannels)
      if !json {
        print(
          "img2img, \(sampler.rawValue), \(steps) steps, \(n) test images: strength  evals  distance  KID×1000"
        )
      }
      for s in strengthList {
        let plan = try Img2Img.plan(sampler, schedulerConfig: m.schedulerConfig, steps: steps, strength: s)
        let bar = ProgressBar(
          total: max(plan.evaluations.count * ((n + batch - 1) / batch), 1), label: "img2img \(s)")
        let y = try Img2Img.run(
          m.unet, images: x, count: n, classLabels: labels, plan: plan, seed: seed, batchSize: batch,
          progress: { bar.advance($0) })
        let e = try GeneratorEvaluator.evaluate(
          samples: y, count: n, real: real, classifier: classifier, featureSpace: "bundled classifier",
          seed: seed)
        let d = meanSquaredDistance01(x, y)
        if json {
          print(
            jsonLine([
              "task": "img2img", "n": n, "sampler": sampler.rawValue, "steps": steps, "strength": s,
              "evaluations": plan.evaluations.count, "distance": d, "kid": e.samples.kid.mean,
              "kid_std": e.samples.kid.std, "kid_real_floor": e.realFloor.kid.mean,
            ]))
        } else {
          print(
            String(
              format: "  %.2f  %4d  %.5f  %6.2f ± %.2f (real floor %.2f)", s, plan.evaluations.count, d,
              e.samples.kid.mean * 1000, e.samples.kid.std * 1000, e.realFloor.kid.mean * 1000))
        }
      }
    }
  }
}
