// One face over the three families' image generators, for the commands that measure any of them (`gpugen
// evaluate`, `gpugen compare`): load a model folder, say how many network evaluations an image costs, and draw
// images in [−1, 1] with the family's own knobs (diffusion: sampler, steps, η; VAE: temperature τ; GAN:
// truncation ψ), class-conditional or not. Image i's noise depends on (seed, i) only, in every family.
import Foundation
import GPUGenCore

/// The sampling knobs of every family; each family reads its own.
public struct GeneratorKnobs: Sendable, Equatable {
  /// Diffusion: the sampler, its steps (nil: 1,000 for DDPM, else 20) and DDIM's η.
  public var sampler: SamplerKind = .ddim
  public var steps: Int? = nil
  public var eta: Double = 0
  /// Diffusion: classifier-free guidance (nil: none; needs a model with a null label).
  public var guidance: ClassifierFreeGuidance? = nil
  /// Diffusion: how x̂₀ is bounded (default: as the scheduler config says).
  public var bounding: X0Bounding = .scheduler
  /// VAE: the prior's temperature τ.
  public var temperature: Double = 1
  /// GAN: the truncation ψ (nil: none) and how it truncates.
  public var truncation: Double? = nil
  public var truncationMode: TruncationMode = .resample

  /// The defaults of every family.
  public init() {}

  /// The knobs `family` uses, in words ("ddim, 20 steps, η 0", "τ 1", "ψ 0.7 (resample)").
  public func describe(_ family: ModelFamily) -> String {
    switch family {
    case .diffusion:
      return "\(sampler.rawValue), \(steps.map(String.init) ?? (sampler == .ddpm ? "all" : "20")) steps"
        + (sampler == .ddim && eta != 0 ? ", η \(eta)" : "")
        + (guidance.map { ", guidance s \($0.scale)" + ($0.rescale > 0 ? " φ \($0.rescale)" : "") } ?? "")
        + (bounding == .scheduler ? "" : ", \(bounding.summary)")
    case .vae: return "τ \(temperature)"
    case .gan: return truncation.map { "ψ \($0) (\(truncationMode.rawValue))" } ?? "no truncation"
    }
  }
}

/// A loaded image generator of any family.
public final class ImageGenerator {
  enum Network {
    case diffusion(UNet2D, schedulerConfig: URL?)
    case vae(any VariationalAutoencoder)
    case gan(GANModel)
  }

  /// The model's family.
  public let family: ModelFamily
  /// The folder it was loaded from.
  public let url: URL
  /// (C, H, W) of one image.
  public let imageShape: [Int]
  /// The number of classes of a class-conditional model, else nil.
  public let classCount: Int?
  /// The device it runs on.
  public let device: Device
  let network: Network

  init(family: ModelFamily, url: URL, imageShape: [Int], classCount: Int?, device: Device, network: Network) {
    (self.family, self.url, self.imageShape, self.classCount, self.device, self.network) = (
      family, url, imageShape, classCount, device, network
    )
  }

  /// Loads the model folder at `url` (any family's image model) onto `device`.
  public static func load(_ url: URL, device: Device) throws -> ImageGenerator {
    let kind = try ModelFolder.classify(url)
    switch kind {
    case .diffusion(let folder):
      let unet = try UNet2DModelLoader.load(from: folder.unet, device: device)
      return ImageGenerator(
        family: .diffusion, url: url, imageShape: unet.imageShape, classCount: unet.classCount,
        device: device,
        network: .diffusion(unet, schedulerConfig: folder.schedulerConfig))
    case .convVAE, .autoencoderKL:
      let vae = try ModelFolder.loadVAE(kind, device: device)
      return ImageGenerator(
        family: .vae, url: url, imageShape: vae.imageShape, classCount: nil, device: device,
        network: .vae(vae))
    case .toyDiffusion, .toyVAE:
      throw ModelError.input("\(url.path) is a toy 2-D \(kind.family.rawValue) model, not an image model")
    case .gan(let u):
      let gan = try GANModel.load(from: u, device: device)
      guard !gan.isToy else {
        throw ModelError.input("\(url.path) is a toy 2-D GAN, not an image model")
      }
      return ImageGenerator(
        family: .gan, url: url, imageShape: gan.sampleShape,
        classCount: gan.config.conditional ? gan.config.numClasses : nil, device: device, network: .gan(gan))
    }
  }

  /// Network evaluations per image with `knobs` (the sampler's model evaluations; 1 for a VAE or a GAN).
  public func evaluationsPerImage(_ knobs: GeneratorKnobs) throws -> Int {
    switch network {
    case .diffusion(_, let scheduler): return try plan(knobs, scheduler).evaluations.count
    case .vae, .gan: return 1
    }
  }

  func plan(_ knobs: GeneratorKnobs, _ scheduler: URL?) throws -> SamplingPlan {
    if let s = knobs.steps, s <= 0 { throw ModelError.input("--steps must be positive, got \(s)") }
    try SamplingBounds.checkEta(knobs.eta)
    return try SamplerPlanner.plan(
      knobs.sampler, schedulerConfig: scheduler, steps: knobs.steps, eta: knobs.eta, bounding: knobs.bounding)
  }

  /// The progress units `sample` reports for `count` images in batches of `batchSize`: model evaluations of
  /// each batch for diffusion, images otherwise.
  public func progressUnits(count: Int, batchSize: Int, knobs: GeneratorKnobs) throws -> Int {
    switch network {
    case .diffusion:
      return try evaluationsPerImage(knobs) * ((count + batchSize - 1) / Swift.max(batchSize, 1))
    case .vae, .gan: return count
    }
  }

  /// `count` images (count × C × H × W, in [−1, 1]) in batches of `batchSize`. `labels` gives image i's class
  /// (cycled) and is required exactly when the model is class-conditional.
  public func sample(
    count: Int, batchSize: Int, seed: UInt64, knobs: GeneratorKnobs = GeneratorKnobs(), labels: [Int]? = nil,
    progress: (Int) -> Void = { _ in }
  ) throws -> [Float] {
    guard count > 0, batchSize > 0 else { throw ModelError.input("--n and --batch-size must be positive") }
    if classCount != nil && (labels ?? []).isEmpty {
      throw ModelError.input("\(url.path) is class-conditional: it needs class labels")
    }
    if classCount == nil && labels != nil {
      throw ModelError.input("\(url.path) is not class-conditional: it takes no class labels")
    }
    if let k = classCount, let bad = labels?.first(where: { $0 < 0 || $0 >= k }) {
      throw ModelError.input("class \(bad) is not one of the model's \(k) classes (0..<\(k))")
    }
    switch network {
    case .diffusion(let unet, let scheduler):
      let p = try plan(knobs, scheduler)
      let denoiser: any Denoiser =
        try knobs.guidance.map { try GuidedDenoiser(model: unet, guidance: $0) } ?? unet
      return try Tape.noGrad {
        try DiffusionSampler(unet: denoiser, plan: p).sample(
          SampleRequest(count: count, batchSize: batchSize, seed: seed, classLabels: labels),
          progress: progress)
      }
    case .vae(let vae):
      let x = try VAEOps.sample(
        vae, count: count, batchSize: batchSize, seed: seed, temperature: knobs.temperature, device: device,
        progress: progress)
      return VAEOps.toSigned(x, range: vae.dataRange)
    case .gan(let gan):
      return try GANOps.sample(
        gan, count: count, batchSize: batchSize, seed: seed, truncation: knobs.truncation,
        mode: knobs.truncationMode, labels: labels, device: device, progress: progress)
    }
  }
}

extension ImageGenerator {
  /// The GAN, when the model is one (for projection).
  public var ganModel: GANModel? {
    if case .gan(let g) = network { return g }
    return nil
  }

  /// The VAE, when the model is one (for encoding).
  public var variationalAutoencoder: (any VariationalAutoencoder)? {
    if case .vae(let v) = network { return v }
    return nil
  }
}

extension ImageGenerator {
  /// The diffusion model's denoiser and scheduler config, when the model is one (for inversion and editing).
  public var diffusionModel: (unet: UNet2D, schedulerConfig: URL?)? {
    if case .diffusion(let u, let s) = network { return (u, s) }
    return nil
  }
}
