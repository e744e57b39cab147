// `gpugen sample`: load a diffusers UNet2DModel folder and sample images on any device.
import ArgumentParser
import Foundation
import GPUGenModels

struct Sample: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Sample images from a diffusion model, a VAE or a GAN.",
    discussion: """
      --model takes a diffusers pipeline folder (model_index.json, unet/, scheduler/), a bare UNet folder
      (config.json + diffusion_pytorch_model.safetensors), a VAE folder (ConvVAE or diffusers AutoencoderKL)
      or a bundled model's name (diffusion, vae); a folder of that name in the working directory wins.
      A VAE decodes z ~ N(0, τ²I) (--temperature τ); the diffusion flags (--sampler, --steps, --eta,
      --karras, --class, --noise, --trajectory) are errors with a VAE, --temperature with a diffusion model.
      A GAN folder (gan_config.json, generator/, discriminator/) draws z ~ N(0, I) keyed by (seed, image) and
      takes --truncation ψ with --truncation-mode resample (redraw every |z_i| > ψ) or scale (z·ψ), and
      --class for a class-conditional generator (classes cycled; default: every class in turn). A toy 2-D
      GAN, diffusion model (ToyDenoiser folder: --sampler, --steps) or VAE (ToyVAE folder: --temperature) writes a
      scatter plot with the true modes marked (--out, default scatter.png), --npy (N, 2) and prints the toy scores.
      Without --model, the small class-conditional
      Fashion-MNIST model that ships with gpugen is used (classes: 0 T-shirt/top, 1 trouser, 2 pullover,
      3 dress, 4 coat, 5 sandal, 6 shirt, 7 sneaker, 8 bag, 9 ankle boot).

      x̂₀ is bounded as the model's scheduler config says (clip_sample, or dynamic thresholding with \
      thresholding: true), except under classifier-free guidance with s > 1, where gpugen's default is \
      \(X0Bounding.guidedDefault.summary): a deliberate difference from diffusers, whose clip_sample saturates \
      guided DDIM samples (README, "Classifier-free guidance"). --scheduler-clipping keeps diffusers' \
      behaviour; --no-clip and --thresholding choose another bounding; the run's header line names any \
      bounding other than the scheduler config's.

      The noise of image i at step s depends only on (seed, i, s): the same seed gives the same images for
      any --batch-size and on every device (within float tolerance).
      """)

  @Option(
    help:
      "Model folder (pipeline, UNet, ConvVAE, AutoencoderKL) or bundled name (diffusion, vae). Default: diffusion."
  )
  var model: String?

  @OptionGroup var deviceOptions: DeviceOptions

  @Option(help: "Number of images.")
  var n = 64

  @Option(name: .customLong("batch-size"), help: "Images per UNet batch (default: min(n, 64)).")
  var batchSize: Int?

  @Option(
    help: "Sampler: \(SamplerKind.allCases.map(\.rawValue).joined(separator: ", ")) (default ddim).",
    transform: parseSampler)
  var sampler: SamplerKind?

  @Option(help: "Sampling steps (DDPM defaults to the model's training steps when not given).")
  var steps: Int?

  @Option(help: "DDIM η (0 = deterministic, 1 = DDPM-like noise; default 0).")
  var eta: Double?

  @Option(help: "VAE: the prior's temperature τ, z ~ N(0, τ²I) (default 1).")
  var temperature: Double?

  @Option(help: "GAN: the truncation ψ > 0 (1 or absent: none); smaller trades diversity for fidelity.")
  var truncation: Double?

  @Option(help: "GAN: resample (redraw every |z_i| > ψ, BigGAN) or scale (z·ψ). Default resample.")
  var truncationMode: TruncationMode?

  @Flag(help: "Use Karras sigmas (dpmpp-2m, dpmpp-2m-sde, dpmpp-3m-sde, euler, heun, unipc).")
  var karras = false

  @Option(help: "Random seed.")
  var seed: UInt64 = 0

  @Option(
    name: .customLong("class"),
    help: "Class label, or a comma-separated list cycled over the images (default: every class in turn).")
  var classes: String?

  @OptionGroup var output: ImageOutputOptions

  @Option(help: "Initial noise as a float32 .npy of shape (n, C, H, W), instead of the seeded noise.")
  var noise: String?

  @OptionGroup(title: "x̂₀ clipping and dynamic thresholding (diffusion)") var x0Options: X0Options

  @OptionGroup(title: "Classifier-free guidance (diffusion)") var guidanceOptions: GuidanceOptions

  @Option(help: "Write a strip of x̂₀ predictions across the steps (first images) to this PNG.")
  var trajectory: String?

  func run() throws {
    try reportingUserErrors { try sample() }
  }

  func sample() throws {
    let t0 = Date()
    let folderURL = try ModelFolder.locate(model)
    let kind = try ModelFolder.classify(folderURL)
    if case .gan(let url) = kind { return try sampleGAN(url, start: t0) }
    if case .toyDiffusion = kind { return try sampleToy(kind, start: t0) }
    if case .toyVAE = kind { return try sampleToy(kind, start: t0) }
    if kind.family == .vae { return try sampleVAE(kind, start: t0) }
    if truncation != nil || truncationMode != nil {
      throw ModelError.input(
        "--truncation and --truncation-mode are GAN options; this is a \(kind.family.rawValue) model")
    }
    if temperature != nil {
      throw ModelError.input(
        "--temperature is a VAE option; this is a diffusion model (use --sampler/--steps/--eta)")
    }
    try sampleDiffusion(folderURL, start: t0)
  }

  /// Parses --class into labels (non-negative integers).
  func parseClasses() throws -> [Int]? { try parseClassList(classes) }

  func sampleGAN(_ url: URL, start t0: Date) throws {
    let diffusionOnly: [(String, Bool)] =
      [
        ("--sampler", sampler != nil), ("--steps", steps != nil), ("--eta", eta != nil), ("--karras", karras),
        ("--noise", noise != nil), ("--trajectory", trajectory != nil), ("--temperature", temperature != nil),
      ] + x0Options.given + guidanceOptions.given
    if let flag = diffusionOnly.first(where: { $0.1 }) {
      throw ModelError.input(
        "\(flag.0) is a \(flag.0 == "--temperature" ? "VAE" : "diffusion") option; this model is a GAN (it takes --truncation, --truncation-mode, --class)"
      )
    }
    if let psi = truncation, !(psi > 0 && psi.isFinite) {
      throw ModelError.input("--truncation ψ must be positive, got \(psi)")
    }
    if truncationMode != nil && truncation == nil {
      throw ModelError.input("--truncation-mode needs --truncation ψ")
    }
    guard n > 0 else { throw ModelError.input("--n must be positive") }
    if let b = batchSize, b <= 0 { throw ModelError.input("--batch-size must be positive") }
    try output.validate()
    let device = try deviceOptions.resolve()
    let gan = try GANModel.load(from: url, device: device)
    var labels = try parseClasses()
    if gan.config.conditional {
      if let bad = labels?.first(where: { $0 >= gan.config.numClasses }) {
        throw ModelError.input(
          "--class \(bad) is out of range: the model has classes 0..<\(gan.config.numClasses)")
      }
      labels = labels ?? Array(0..<gan.config.numClasses)
    } else if labels != nil {
      throw ModelError.input("--class given, but this GAN's generator is unconditional")
    }
    let batch = min(batchSize ?? min(n, 256), n)
    let mode = truncationMode ?? .resample
    FileHandle.standardError.write(
      Data(
        "gpugen: GAN samples\(truncation.map { ", truncation ψ = \($0) (\(mode.rawValue))" } ?? ""), \(n) \(gan.isToy ? "points" : "images") in batches of \(batch) on \(device)\n"
          .utf8))
    let bar = ProgressBar(total: n, label: "generating", unit: gan.isToy ? "points" : "images")
    let sampleStart = Date()
    let samples = try GANOps.sample(
      gan, count: n, batchSize: batch, seed: seed, truncation: truncation, mode: mode, labels: labels,
      device: device, progress: { bar.advance($0) })
    let seconds = Date().timeIntervalSince(sampleStart)
    let shape = [n] + gan.sampleShape
    if gan.isToy {
      let outputs = StagedOutputs()  // the .npy and the scatter plot, all or nothing
      if let npy = output.npy {
        try outputs.stage(URL(fileURLWithPath: npy)) { try NPY.write(samples, shape: shape, to: $0) }
      }
      let toy = try? ToyDataset.parse(gan.config.data)
      var title = "\(n) samples"
      if let toy {
        let s = ToyMetrics.score(samples, dataset: toy)
        title += String(
          format: ": %d/%d modes, %.1f%% high quality", s.modesCoveredHighQuality, s.modes,
          100 * s.highQualityFraction)
        print("\(toy.spec): \(s.summary)")
      }
      try outputs.stage(URL(fileURLWithPath: output.png(or: "scatter.png"))) {
        try ToyScatter.render(samples, dataset: toy, title: title).writePNG(to: $0)
      }
      try outputs.commit()
    } else {
      try output.write(samples, shape: shape, default: "grid.png")
    }
    print(
      String(
        format: "%@: %d samples in %.3f s (%.1f samples/s; startup %.2f s) → %@", device.description, n,
        seconds,
        Double(n) / max(seconds, 1e-9), sampleStart.timeIntervalSince(t0),
        output.png(or: gan.isToy ? "scatter.png" : "grid.png")))
  }

  func sampleVAE(_ kind: ModelFolderKind, start t0: Date) throws {
    let diffusionOnly: [(String, Bool)] =
      [
        ("--sampler", sampler != nil), ("--steps", steps != nil), ("--eta", eta != nil), ("--karras", karras),
        ("--class", classes != nil), ("--noise", noise != nil), ("--trajectory", trajectory != nil),
        ("--truncation", truncation != nil), ("--truncation-mode", truncationMode != nil),
      ] + x0Options.given + guidanceOptions.given
    if let flag = diffusionOnly.first(where: { $0.1 }) {
      throw ModelError.input(
        "\(flag.0) is a \(flag.0.hasPrefix("--truncation") ? "GAN" : "diffusion") option; this model is a VAE (it takes --temperature)"
      )
    }
    let tau = temperature ?? 1
    guard tau > 0, tau.isFinite else { throw ModelError.input("--temperature must be positive, got \(tau)") }
    guard n > 0 else { throw ModelError.input("--n must be positive") }
    if let b = batchSize, b <= 0 { throw ModelError.input("--batch-size must be positive") }
    try output.validate()
    let device = try deviceOptions.resolve()
    let vae = try ModelFolder.loadVAE(kind, device: device)
    let batch = min(batchSize ?? min(n, 256), n)
    FileHandle.standardError.write(
      Data("gpugen: VAE prior samples, τ = \(tau), \(n) images in batches of \(batch) on \(device)\n".utf8))
    let bar = ProgressBar(total: n, label: "decoding", unit: "images")
    let sampleStart = Date()
    let images = try VAEOps.sample(
      vae, count: n, batchSize: batch, seed: seed, temperature: tau, device: device,
      progress: { bar.advance($0) })
    let seconds = Date().timeIntervalSince(sampleStart)
    let shape = [n] + vae.imageShape
    let signed = VAEOps.toSigned(images, range: vae.dataRange)
    try output.write(signed, shape: shape, default: "grid.png")
    print(
      String(
        format: "%@: %d images in %.3f s (%.1f images/s; startup %.2f s) → %@", device.description, n,
        seconds,
        Double(n) / max(seconds, 1e-9), sampleStart.timeIntervalSince(t0), output.png(or: "grid.png")))
  }

  func sampleDiffusion(_ folderURL: URL, start t0: Date) throws {
    try output.validate()
    if let trajectory { try StagedOutputs.checkDestination(trajectory) }
    let kind = self.sampler ?? .ddim
    let eta = self.eta ?? 0
    guard n > 0 else { throw ModelError.input("--n must be positive") }
    if let b = batchSize, b <= 0 { throw ModelError.input("--batch-size must be positive") }
    if let s = steps, s <= 0 { throw ModelError.input("--steps must be positive") }
    try SamplingBounds.checkEta(eta)
    let labels = try parseClasses()
    let bounding = try x0Options.bounding(guidance: try guidanceOptions.guidance())
    let device = try deviceOptions.resolve()
    // Load (or, on a first run, compile) every kernel program up front so startup is measured honestly.
    let k0 = Date()
    try device.openCL?.compileAllKernels()
    let kernelSeconds = Date().timeIntervalSince(k0)
    let folder = try DiffusionModelFolder.resolve(folderURL)
    let unet = try UNet2DModelLoader.load(from: folder.unet, device: device)
    // Before any arithmetic on --n (the batch count, the progress total): the result must fit in RAM.
    try MemoryBudget.check(
      checkedProduct([n, unet.imageShape.reduce(1, *), 4]),
      for: "\(n) images of \(unet.imageShape) (the result)", on: Device.cpu, flag: "--n")
    // A class-conditional model without --class cycles through every real class (never the null label).
    let classLabels = try diffusionClassLabels(labels, config: unet.config)
    let denoiser = try guidanceOptions.denoiser(unet)
    let plan = try SamplerPlanner.plan(
      kind, schedulerConfig: folder.schedulerConfig, steps: steps, eta: eta, karras: karras,
      bounding: bounding)
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
    let request = SampleRequest(
      count: n, batchSize: batch, seed: seed, classLabels: classLabels, initialNoise: initial)
    let sampler = DiffusionSampler(unet: denoiser, plan: plan)
    let batches = (n + batch - 1) / batch
    let startup = Date().timeIntervalSince(t0)
    FileHandle.standardError.write(
      Data(
        "gpugen: \(kind.rawValue), \(plan.evaluations.count) model evaluations\(try guidanceOptions.guidance().map { $0.isActive ? " (guided: s = \($0.scale)\($0.rescale > 0 ? ", φ = \($0.rescale)" : ""), each on a doubled batch)" : "" } ?? "")\(bounding == .scheduler ? "" : ", \(bounding.summary)"), \(n) images in batches of \(batch) on \(device)\n"
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
    // All or nothing: the grid, --npy and --trajectory are renamed into place together.
    let outputs = StagedOutputs()
    try output.write(images, shape: shape, default: "grid.png", into: outputs)
    if let trajectory {
      // Rows: images; columns: steps.
      let per = sampler.imageShape.reduce(1, *)
      let rows = min(stripCount, images.count / per)
      var tiles: [Float] = []
      for r in 0..<rows { for s in strip { tiles += s[(r * per)..<((r + 1) * per)] } }
      try outputs.stage(URL(fileURLWithPath: trajectory)) {
        try Image8.grid(tiles, shape: [rows * strip.count] + sampler.imageShape, columns: strip.count)
          .zoomed(output.zoom).writePNG(to: $0)
      }
    }
    try outputs.commit()
    print(
      String(
        format:
          "%@: %d images in %.2f s (%.2f images/s, %.1f steps/s; startup %.2f s, of which kernels %.2f s) → %@",
        device.description, n, seconds, Double(n) / seconds,
        Double(plan.evaluations.count * batches) / seconds, startup,
        kernelSeconds, output.png(or: "grid.png")))
  }
}
