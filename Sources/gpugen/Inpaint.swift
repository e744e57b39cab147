// `gpugen inpaint`: fill the masked region of images with a diffusion model (RePaint).
import ArgumentParser
import Foundation
import GPUGenModels

struct Inpaint: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Inpaint images with a diffusion model (RePaint, as diffusers' RePaintScheduler).",
    discussion: """
      At every step the model fills the unknown region (a DDIM step, --eta for noise), the known region is
      noised to the same level, and the two are merged by the mask; --jump-length J and --jump-n-sample R go
      back up the schedule J steps at a time, R − 1 times at every J-th step (diffusers' defaults 10, 10);
      R = 1 is the plain "replace the known region" baseline. Known pixels come out exactly as given.

      --image is one PNG or a float32 .npy (n, C, H, W) in [-1, 1] of the model's size and channels. --mask is a
      PNG or .npy of the image's size ((H, W), (1, H, W) or (1, 1, H, W) for every image; (n, H, W) or
      (n, 1, H, W) one per image; values ≥ 0.5 are white) or a preset: half (bottom half filled), center (the
      central square), lines (every second row), sr2 (only every second pixel of every second row kept).
      --mask-convention says what white means: white-keeps (diffusers' convention, the default) or
      white-fills. Classes cycle over the images as in `gpugen sample`; the noise of image i depends only on
      (seed, i), so any --batch-size gives the same images.
      """)

  @Option(help: "Diffusion model folder (pipeline or UNet) or bundled name. Default: the bundled model.")
  var model: String?

  @OptionGroup var deviceOptions: DeviceOptions

  @Option(help: "The image: a PNG, or a float32 .npy of shape (n, C, H, W) in [-1, 1].")
  var image: String

  @Option(
    help:
      "The mask: a PNG, a .npy, or a preset (\(Inpainting.MaskPreset.allCases.map(\.rawValue).joined(separator: ", ")))."
  )
  var mask: String

  @Option(help: "What white mask pixels mean: white-keeps (default, as diffusers) or white-fills.")
  var maskConvention: Inpainting.MaskConvention = .whiteKeeps

  @Option(help: "RePaint's jump length J ≥ 1 (default 10).")
  var jumpLength = 10

  @Option(help: "RePaint's jump count R ≥ 1: each jump is taken R − 1 times (default 10; 1: no resampling).")
  var jumpNSample = 10

  @Option(help: "Steps down the schedule (default 50).")
  var steps = 50

  @Option(
    help: "η of the model's step in the filled region (0 deterministic, as diffusers' default; 1 DDPM-like).")
  var eta: Double = 0

  @Option(help: "Random seed.")
  var seed: UInt64 = 0

  @Option(
    name: .customLong("class"),
    help: "Class label, or a comma-separated list cycled over the images (default: every class in turn).")
  var classes: String?

  @Option(name: .customLong("batch-size"), help: "Images per model batch (default: min(n, 64)).")
  var batchSize: Int?

  @OptionGroup(title: "Classifier-free guidance") var guidanceOptions: GuidanceOptions

  @OptionGroup(title: "x̂₀ clipping and dynamic thresholding") var x0Options: X0Options

  @OptionGroup var output: ImageOutputOptions

  func run() throws {
    try reportingUserErrors { try inpaint() }
  }

  func inpaint() throws {
    try output.validate()
    let bounding = try x0Options.bounding(guidance: try guidanceOptions.guidance())
    guard jumpLength >= 1 else {
      throw ModelError.input("--jump-length J must be at least 1, got \(jumpLength)")
    }
    guard jumpNSample >= 1 else {
      throw ModelError.input("--jump-n-sample R must be at least 1, got \(jumpNSample)")
    }
    guard steps >= 1 else { throw ModelError.input("--steps must be at least 1, got \(steps)") }
    try SamplingBounds.checkEta(eta)
    if let b = batchSize, b <= 0 { throw ModelError.input("--batch-size must be positive") }
    let labels = try parseClassList(classes)
    let folderURL = try ModelFolder.locate(model)
    let kind = try ModelFolder.classify(folderURL)
    guard case .diffusion(let folder) = kind else {
      throw ModelError.input(
        "inpaint needs a diffusion model; \(folderURL.path) is a \(kind.family.rawValue) model")
    }
    let device = try deviceOptions.resolve()
    let unet = try UNet2DModelLoader.load(from: folder.unet, device: device)
    let shape = unet.imageShape
    let (images, n) = try Self.readImages(image, shape: shape)
    let keep = try Self.readMask(
      mask, convention: maskConvention, count: n, height: shape[1], width: shape[2])
    let classLabels = try diffusionClassLabels(labels, config: unet.config)
    let denoiser = try guidanceOptions.denoiser(unet)
    let schedule = try NoiseSchedule(
      config: try Inpainting.config(schedulerConfig: folder.schedulerConfig, bounding: bounding))
    let plan = try Inpainting.plan(
      schedule: schedule, steps: steps, jumpLength: jumpLength, jumpNSample: jumpNSample, eta: eta)
    let batch = min(batchSize ?? min(n, 64), n)
    let batches = (n + batch - 1) / batch
    FileHandle.standardError.write(
      Data(
        "gpugen: RePaint, \(steps) steps, J = \(jumpLength), R = \(jumpNSample)\(bounding == .scheduler ? "" : ", \(bounding.summary)"): \(plan.modelEvaluations) model evaluations per image (\(plan.actions.count - plan.modelEvaluations) undo steps), \(n) image\(n == 1 ? "" : "s") in batches of \(batch) on \(device)\n"
          .utf8))
    let bar = ProgressBar(total: plan.actions.count * batches, label: "inpainting")
    let start = Date()
    let request = Inpainting.Request(
      images: images, count: n, keep: keep, batchSize: batch, seed: seed, classLabels: classLabels)
    let completed = try Inpainting.inpaint(
      denoiser, plan: plan, request: request, progress: { bar.advance($0) })
    let seconds = Date().timeIntervalSince(start)
    // The grid: each masked input (filled pixels grey) beside its completion.
    let per = shape.reduce(1, *), hw = shape[1] * shape[2]
    var tiles: [Float] = []
    tiles.reserveCapacity(2 * n * per)
    for i in 0..<n {
      let maskBase = keep.count == hw ? 0 : i * hw
      for k in 0..<per { tiles.append(keep[maskBase + k % hw] == 1 ? images[i * per + k] : 0) }
      tiles += completed[(i * per)..<((i + 1) * per)]
    }
    let columns = 2 * min(n, 8)
    let outputs = StagedOutputs()  // the grid and the .npy, all or nothing
    try outputs.stage(URL(fileURLWithPath: output.png(or: "inpaint.png"))) {
      try Image8.grid(tiles, shape: [2 * n] + shape, columns: columns).zoomed(output.zoom).writePNG(to: $0)
    }
    if let npy = output.npy {
      try outputs.stage(URL(fileURLWithPath: npy)) { try NPY.write(completed, shape: [n] + shape, to: $0) }
    }
    try outputs.commit()
    let filled = keep.reduce(0) { $0 + ($1 == 0 ? 1 : 0) } * (keep.count == hw ? n : 1)
    print(
      String(
        format:
          "%@: %d image%@ inpainted (%d of %d pixels filled) with %d model evaluations (%d per image) in %.2f s → %@",
        device.description, n, n == 1 ? "" : "s", filled, n * hw, plan.modelEvaluations * n,
        plan.modelEvaluations, seconds, output.png(or: "inpaint.png")))
  }

  /// The images of --image (values in [−1, 1]) and their count; the size and channels must be the model's.
  static func readImages(_ path: String, shape: [Int]) throws -> ([Float], Int) {
    if path.hasSuffix(".npy") { return try VAEInput.npy(path, imageShape: shape) }
    let header = try Image8.pngHeader(of: URL(fileURLWithPath: path))
    let channels = header.colour ? 3 : 1
    guard header.width == shape[2], header.height == shape[1], channels == shape[0] else {
      throw ModelError.input(
        "\(path) is \(header.width)×\(header.height) with \(channels) channel\(channels == 1 ? "" : "s"); the model "
          + "takes \(shape[2])×\(shape[1]) images with \(shape[0]) channel\(shape[0] == 1 ? "" : "s")")
    }
    return (try VAEInput.pngs([path], channels: shape[0], size: shape[1], resize: false), 1)
  }

  /// The keep mask of --mask (1 = known): H × W for every image, or count × H × W.
  static func readMask(
    _ spec: String, convention: Inpainting.MaskConvention, count: Int, height h: Int, width w: Int
  ) throws -> [Float] {
    if let preset = Inpainting.MaskPreset(rawValue: spec), !FileManager.default.fileExists(atPath: spec) {
      return preset.keepMask(height: h, width: w)
    }
    let values: [Float]
    if spec.hasSuffix(".npy") {
      let a = try NPY.read(from: URL(fileURLWithPath: spec))
      let s = a.shape
      let shared = s == [h, w] || s == [1, h, w] || s == [1, 1, h, w]
      let perImage = s == [count, h, w] || s == [count, 1, h, w]
      guard shared || perImage else {
        throw ModelError.input(
          "the mask \(spec) has shape \(s) but the image is \(w)×\(h) (\(count) image\(count == 1 ? "" : "s")): "
            + "give (\(h), \(w)), (1, 1, \(h), \(w)) or (\(count), 1, \(h), \(w))")
      }
      values = a.values
    } else if spec.hasSuffix(".png") || FileManager.default.fileExists(atPath: spec) {
      let header = try Image8.pngHeader(of: URL(fileURLWithPath: spec))
      guard header.width == w, header.height == h else {
        throw ModelError.input(
          "the mask \(spec) is \(header.width)×\(header.height) but the image is \(w)×\(h)")
      }
      values = try Image8.readPNGConverted(from: URL(fileURLWithPath: spec), channels: 1).pixels.map {
        Float($0) / 255
      }
    } else {
      throw ModelError.input(
        "--mask \(spec) is neither a file nor a preset (\(Inpainting.MaskPreset.allCases.map(\.rawValue).joined(separator: ", ")))"
      )
    }
    guard values.allSatisfy({ $0.isFinite }) else {
      throw ModelError.input("the mask \(spec) holds NaN or infinity")
    }
    return Inpainting.keepMask(values, convention: convention)
  }
}

extension Inpainting.MaskConvention: ExpressibleByArgument {}
