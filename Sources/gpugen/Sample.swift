// `gpugen sample`: load a diffusers UNet2DModel folder and sample images on any device.
import ArgumentParser
import Foundation
import GPUGenModels

struct Sample: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Sample images from a diffusion model (a diffusers UNet2DModel folder).",
    discussion: """
      --model takes a diffusers pipeline folder (model_index.json, unet/, scheduler/) or a bare UNet folder
      (config.json + diffusion_pytorch_model.safetensors). Without --model, the small class-conditional
      Fashion-MNIST model that ships with gpugen is used (classes: 0 T-shirt/top, 1 trouser, 2 pullover,
      3 dress, 4 coat, 5 sandal, 6 shirt, 7 sneaker, 8 bag, 9 ankle boot).

      The noise of image i at step s depends only on (seed, i, s): the same seed gives the same images for
      any --batch-size and on every device (within float tolerance).
      """)

  @Option(help: "Model folder (pipeline or bare UNet). Default: the bundled Fashion-MNIST model.")
  var model: String?

  @OptionGroup var deviceOptions: DeviceOptions

  @Option(help: "Number of images.")
  var n = 64

  @Option(name: .customLong("batch-size"), help: "Images per UNet batch (default: min(n, 64)).")
  var batchSize: Int?

  @Option(help: "Sampler: \(SamplerKind.allCases.map(\.rawValue).joined(separator: ", ")).")
  var sampler: String = "ddim"

  @Option(help: "Sampling steps (DDPM defaults to the model's training steps when not given).")
  var steps: Int?

  @Option(help: "DDIM η (0 = deterministic, 1 = DDPM-like noise).")
  var eta: Double = 0

  @Flag(help: "Use Karras sigmas (DPM-Solver++ and Euler samplers).")
  var karras = false

  @Option(help: "Random seed.")
  var seed: UInt64 = 0

  @Option(
    name: .customLong("class"),
    help: "Class label, or a comma-separated list cycled over the images (default: every class in turn).")
  var classes: String?

  @Option(help: "Nearest-neighbour zoom of the PNG grid.")
  var zoom = 2

  @Option(help: "Output PNG grid.")
  var out: String = "grid.png"

  @Option(help: "Also write the images as float32 NCHW .npy (values in [-1, 1]).")
  var npy: String?

  @Option(help: "Initial noise as a float32 .npy of shape (n, C, H, W), instead of the seeded noise.")
  var noise: String?

  @Option(help: "Write a strip of x̂₀ predictions across the steps (first images) to this PNG.")
  var trajectory: String?

  func run() throws {
    try reportingUserErrors { try sample() }
  }

  func sample() throws {
    let t0 = Date()
    guard let kind = SamplerKind(rawValue: sampler.lowercased()) else {
      throw ModelError.input(
        "unknown sampler '\(sampler)'; choose one of \(SamplerKind.allCases.map(\.rawValue).joined(separator: ", "))"
      )
    }
    guard n > 0 else { throw ModelError.input("--n must be positive") }
    if let b = batchSize, b <= 0 { throw ModelError.input("--batch-size must be positive") }
    if let s = steps, s <= 0 { throw ModelError.input("--steps must be positive") }
    guard eta >= 0 else { throw ModelError.input("--eta must be ≥ 0") }
    let labels = try classes.map { text -> [Int] in
      try text.split(separator: ",").map {
        guard let v = Int($0.trimmingCharacters(in: .whitespaces)), v >= 0 else {
          throw ModelError.input("--class takes non-negative integers, got '\(text)'")
        }
        return v
      }
    }
    let device = try deviceOptions.resolve()
    // Load (or, on a first run, compile) every kernel program up front so startup is measured honestly.
    let k0 = Date()
    try device.openCL?.compileAllKernels()
    let kernelSeconds = Date().timeIntervalSince(k0)
    let folderURL = try model.map { URL(fileURLWithPath: $0) } ?? DefaultModel.url()
    let folder = try DiffusionModelFolder.resolve(folderURL)
    let unet = try UNet2DModelLoader.load(from: folder.unet, device: device)
    if let l = labels, let classes = unet.config.numClassEmbeds, let bad = l.first(where: { $0 >= classes }) {
      throw ModelError.input("--class \(bad) is out of range: the model has classes 0..<\(classes)")
    }
    let plan = try SamplerPlanner.plan(
      kind, schedulerConfig: folder.schedulerConfig, steps: steps, eta: eta, karras: karras)
    var initial: [Float]?
    if let path = noise {
      let a = try NPY.read(from: URL(fileURLWithPath: path))
      let want = [n, unet.config.inChannels, unet.config.sampleSize, unet.config.sampleSize]
      guard a.shape == want else {
        throw ModelError.input("--noise \(path) has shape \(a.shape); this run needs \(want) (n, C, H, W)")
      }
      initial = a.values
    }
    let batch = min(batchSize ?? min(n, 64), n)
    // A class-conditional model without --class cycles through every class.
    let classLabels = labels ?? unet.config.numClassEmbeds.map { Array(0..<$0) }
    let request = SampleRequest(
      count: n, batchSize: batch, seed: seed, classLabels: classLabels, initialNoise: initial)
    let sampler = DiffusionSampler(unet: unet, plan: plan)
    let batches = (n + batch - 1) / batch
    let startup = Date().timeIntervalSince(t0)
    FileHandle.standardError.write(
      Data(
        "gpugen: \(kind.rawValue), \(plan.evaluations.count) model evaluations, \(n) images in batches of \(batch) on \(device)\n"
          .utf8))
    let bar = ProgressBar(total: plan.evaluations.count * batches, label: "sampling")
    var strip: [[Float]] = []
    let stripCount = min(n, 8)
    let sampleStart = Date()
    let images = try sampler.sample(
      request, progress: { bar.advance($0) },
      trajectory: trajectory == nil
        ? nil
        : { _, x0 in
          strip.append(Array(try x0.toArray().prefix(stripCount * sampler.imageShape.reduce(1, *))))
        })
    let seconds = Date().timeIntervalSince(sampleStart)
    let shape = [n] + sampler.imageShape
    guard zoom >= 1 && zoom <= 16 else { throw ModelError.input("--zoom must be 1…16") }
    try Image8.grid(images, shape: shape).zoomed(zoom).writePNG(to: URL(fileURLWithPath: out))
    if let npy { try NPY.write(images, shape: shape, to: URL(fileURLWithPath: npy)) }
    if let trajectory {
      // Rows: images; columns: steps.
      let per = sampler.imageShape.reduce(1, *)
      let rows = min(stripCount, images.count / per)
      var tiles: [Float] = []
      for r in 0..<rows { for s in strip { tiles += s[(r * per)..<((r + 1) * per)] } }
      try Image8.grid(tiles, shape: [rows * strip.count] + sampler.imageShape, columns: strip.count)
        .zoomed(zoom).writePNG(to: URL(fileURLWithPath: trajectory))
    }
    print(
      String(
        format:
          "%@: %d images in %.2f s (%.2f images/s, %.1f steps/s; startup %.2f s, of which kernels %.2f s) → %@",
        device.description, n, seconds, Double(n) / seconds,
        Double(plan.evaluations.count * batches) / seconds, startup,
        kernelSeconds, out))
  }
}
