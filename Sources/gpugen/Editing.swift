// Editing with a diffusion model: `gpugen img2img` (SDEdit) and `gpugen encode`'s DDIM inversion.
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels

/// A diffusion model for the editing commands: the UNet, its scheduler config and the device.
struct EditingModel {
  let unet: UNet2D
  let schedulerConfig: URL?
  let device: Device

  /// Loads `name` (nil: the bundled diffusion model); any other family is an error naming it.
  static func load(_ name: String?, device: Device, command: String) throws -> EditingModel {
    let kind = try ModelFolder.classify(try ModelFolder.locate(name))
    guard case .diffusion(let folder) = kind else {
      throw ModelError.input(
        "\(command) needs an image diffusion model (a pipeline or UNet folder, or diffusion); \(name ?? "the model") is a \(kind.family.rawValue) model"
      )
    }
    return EditingModel(
      unet: try UNet2DModelLoader.load(from: folder.unet, device: device),
      schedulerConfig: folder.schedulerConfig,
      device: device)
  }

  /// `--class` checked against the model; a class-conditional model without it cycles every class.
  func classLabels(_ text: String?) throws -> [Int]? {
    try diffusionClassLabels(try parseClassList(text), config: unet.config)
  }
}

/// Mean per-pixel squared difference of two image sets in [−1, 1], measured on [0, 1].
func meanSquaredDistance01(_ a: [Float], _ b: [Float]) -> Double {
  var s = 0.0
  for (x, y) in zip(a, b) {
    let d = Double(x - y) / 2
    s += d * d
  }
  return s / Double(max(a.count, 1))
}

struct Img2ImgCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "img2img",
    abstract: "Edit images with a diffusion model (SDEdit): noise them part way, then denoise.",
    discussion: """
      diffusers' semantics: the --steps N schedule of --sampler is cut to its last int(N·s) steps (--strength s) \
      and the image is noised to the first of them, with the noise gpugen sample draws for the same --seed and \
      image. Strength 0 returns the input unchanged (no model evaluation); strength 1 is plain sampling from the \
      seed, bit for bit (no trace of the image). Classes as in sample: --class cycled over the images, by default \
      every class in turn. The PNG shows the inputs above their edits.
      """)

  @Option(help: "Diffusion model folder (pipeline or UNet) or bundled name. Default: diffusion.")
  var model: String?

  @OptionGroup var deviceOptions: DeviceOptions

  @Option(
    parsing: .upToNextOption,
    help:
      "The input: PNG files of the model's size and channels, or one float32 .npy (n, C, H, W) in [-1, 1].")
  var image: [String] = []

  @Option(help: "How far to noise the input, in [0, 1]: 0 keeps it, 1 ignores it.")
  var strength: Double

  @Option(
    help: "Sampler: \(SamplerKind.allCases.map(\.rawValue).joined(separator: ", ")) (default ddim).",
    transform: parseSampler)
  var sampler: SamplerKind?

  @Option(help: "Steps of the full schedule (DDPM defaults to the model's training steps, others to 20).")
  var steps: Int?

  @Option(help: "DDIM η (default 0).")
  var eta: Double?

  @Flag(help: "Use Karras sigmas (dpmpp-2m, dpmpp-2m-sde, dpmpp-3m-sde, euler, heun, unipc).")
  var karras = false

  @Option(help: "Random seed (the same noise as gpugen sample --seed).")
  var seed: UInt64 = 0

  @Option(
    name: .customLong("class"),
    help: "Class label, or a comma-separated list cycled over the images (default: every class in turn).")
  var classes: String?

  @Option(name: .customLong("batch-size"), help: "Images per UNet batch (default: min(n, 64)).")
  var batchSize: Int?

  @OptionGroup(title: "Classifier-free guidance") var guidanceOptions: GuidanceOptions

  @OptionGroup(title: "x̂₀ clipping and dynamic thresholding") var x0Options: X0Options

  @OptionGroup var output: ImageOutputOptions

  func run() throws {
    try reportingUserErrors {
      try output.validate()
      let bounding = try x0Options.bounding(guidance: try guidanceOptions.guidance())
      guard strength >= 0 && strength <= 1 else {
        throw ModelError.input("--strength must lie in [0, 1], got \(strength)")
      }
      guard !image.isEmpty else { throw ModelError.input("give the input with --image x.png|x.npy") }
      if let s = steps, s <= 0 { throw ModelError.input("--steps must be positive") }
      if let b = batchSize, b <= 0 { throw ModelError.input("--batch-size must be positive") }
      let eta = self.eta ?? 0
      try SamplingBounds.checkEta(eta)
      let kind = sampler ?? .ddim
      let m = try EditingModel.load(model, device: try deviceOptions.resolve(), command: "img2img")
      let labels = try m.classLabels(classes)
      let shape = m.unet.imageShape
      let x: [Float], n: Int
      if image.count == 1 && image[0].hasSuffix(".npy") {
        (x, n) = try VAEInput.npy(image[0], imageShape: shape)
      } else {
        (x, n) = (try VAEInput.pngs(image, channels: shape[0], size: shape[1], resize: false), image.count)
      }
      guard n > 0 else { throw ModelError.input("no images given") }
      let plan = try Img2Img.plan(
        kind, schedulerConfig: m.schedulerConfig, steps: steps, strength: strength, eta: eta, karras: karras,
        bounding: bounding)
      let batch = min(batchSize ?? min(n, 64), n)
      let batches = (n + batch - 1) / batch
      FileHandle.standardError.write(
        Data(
          "gpugen: img2img, \(kind.rawValue), strength \(strength)\(bounding == .scheduler ? "" : ", \(bounding.summary)"): \(plan.evaluations.count) model evaluations per image, \(n) images in batches of \(batch) on \(m.device)\n"
            .utf8))
      let bar = ProgressBar(total: max(plan.evaluations.count * batches, 1), label: "editing")
      let t0 = Date()
      let y = try Img2Img.run(
        try guidanceOptions.denoiser(m.unet), images: x, count: n, classLabels: labels, plan: plan,
        seed: seed, batchSize: batch,
        progress: { bar.advance($0) })
      if plan.evaluations.isEmpty { bar.advance() }
      let seconds = Date().timeIntervalSince(t0)
      let per = shape.reduce(1, *), cols = min(n, 16)
      var tiles: [Float] = []
      var lo = 0
      while lo < n {
        let hi = min(n, lo + cols), pad = [Float](repeating: -1, count: (cols - (hi - lo)) * per)
        tiles += Array(x[(lo * per)..<(hi * per)]) + pad + Array(y[(lo * per)..<(hi * per)]) + pad
        lo = hi
      }
      let outputs = StagedOutputs()  // the grid and the .npy, all or nothing
      try outputs.stage(URL(fileURLWithPath: output.png(or: "img2img.png"))) {
        try Image8.grid(tiles, shape: [tiles.count / per] + shape, columns: cols).zoomed(output.zoom)
          .writePNG(to: $0)
      }
      if let npy = output.npy {
        try outputs.stage(URL(fileURLWithPath: npy)) { try NPY.write(y, shape: [n] + shape, to: $0) }
      }
      try outputs.commit()
      print(
        String(
          format:
            "%d images, strength %g: %d model evaluations in %.2f s, mean squared distance to the input %.5f (pixels in [0, 1]) → %@",
          n, strength, plan.evaluations.count * (plan.evaluations.isEmpty ? 0 : batches), seconds,
          meanSquaredDistance01(x, y), output.png(or: "img2img.png")))
    }
  }
}

extension Encode {
  /// DDIM inversion of the images under a diffusion model: the noise that `gpugen sample --noise` with DDIM
  /// and the same steps and classes turns back into them.
  func invertDiffusion() throws {
    let vaeOnly: [(String, Bool)] = [
      ("--sample", sample), ("--grid", grid != nil), ("--lr", lr != nil),
      ("--feature-weight", featureWeight != nil),
    ]
    if let flag = vaeOnly.first(where: { $0.1 }) {
      throw ModelError.input("\(flag.0) does not apply to a diffusion model (it inverts by DDIM)")
    }
    if let kind = sampler, kind != .ddim {
      let plan = try SamplerPlanner.plan(kind, schedulerConfig: nil, steps: 2)
      throw ModelError.input(
        plan.evaluations.contains(where: \.stochastic) || kind == .ddpm
          ? "\(kind.rawValue) is a stochastic sampler and cannot be inverted; encode inverts deterministic DDIM (--sampler ddim)"
          : "encode inverts deterministic DDIM only (as diffusers' DDIMInverseScheduler); --sampler \(kind.rawValue) has no inverse here"
      )
    }
    let steps = self.steps ?? 50
    guard steps >= 1 else { throw ModelError.input("--steps must be at least 1") }
    let m = try EditingModel.load(
      modelOption.model, device: try modelOption.deviceOptions.resolve(), command: "encode")
    let labels = try m.classLabels(classes)
    let (x, n) = try input.load(imageShape: m.unet.imageShape)
    let batch = min(batchSize, 64, n)
    let batches = (n + batch - 1) / batch
    FileHandle.standardError.write(
      Data("gpugen: DDIM inversion, \(steps) steps, \(n) images in batches of \(batch) on \(m.device)\n".utf8)
    )
    let bar = ProgressBar(total: steps * batches, label: "inverting")
    let t0 = Date()
    let z = try DDIMInversion.invert(
      m.unet, images: x, count: n, classLabels: labels, steps: steps, schedulerConfig: m.schedulerConfig,
      batchSize: batch, progress: { bar.advance($0) })
    try NPY.write(z, shape: [n] + m.unet.imageShape, to: URL(fileURLWithPath: out))
    let mean = z.reduce(0.0) { $0 + Double($1) } / Double(z.count)
    let std = (z.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(z.count))
      .squareRoot()
    print(
      String(
        format:
          "inverted %d images with %d DDIM steps (%d model evaluations, %.2f s): noise mean %.3f, std %.3f → %@; reconstruct with gpugen sample --noise %@ --n %d --sampler ddim --steps %d --no-clip%@",
        n, steps, steps * batches, Date().timeIntervalSince(t0), mean, std, out, out, n, steps,
        classes.map { " --class \($0)" } ?? ""))
  }
}
