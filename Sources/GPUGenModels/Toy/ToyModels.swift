// Toy model folders of every family and sampling points from them: a toy GAN folder (an MLP generator;
// gan_config.json names the data set), a ToyDenoiser folder (config.json, diffusion_pytorch_model.safetensors,
// scheduler_config.json) and a ToyVAE folder (config.json, diffusion_pytorch_model.safetensors). `ToyModel`
// loads any of them and samples (N, 2) points with the family's own sampling, so the toy scores of the three
// families are measured the same way.
import Foundation

extension ToyDenoiser {
  /// The scheduler config's file name inside a toy diffusion folder.
  public static let schedulerFile = "scheduler_config.json"

  /// The config of the toy diffusion folder at `dir` and its scheduler config's URL.
  public static func readFolder(_ dir: URL) throws -> (config: ToyDenoiserConfig, scheduler: URL) {
    let url = dir.appendingPathComponent("config.json")
    guard let d = FileManager.default.contents(atPath: url.path) else { throw ModelError.missing(url.path) }
    let config = try ToyDenoiserConfig(json: d, source: url.path)
    let sched = dir.appendingPathComponent(schedulerFile)
    guard FileManager.default.fileExists(atPath: sched.path) else {
      throw ModelError.missing("\(sched.path) (a toy diffusion folder holds its noise schedule)")
    }
    return (config, sched)
  }

  /// Loads the toy diffusion folder at `dir` onto `device` (strict weights), in evaluation mode.
  public static func load(from dir: URL, device: Device) throws -> ToyDenoiser {
    let (config, _) = try readFolder(dir)
    let model = try ToyDenoiser(config: config, on: device)
    try loadToyWeights(model, dir)
    return model
  }
}

extension ToyVAE {
  /// The config of the toy VAE folder at `dir`.
  public static func readConfig(_ dir: URL) throws -> ToyVAEConfig {
    let url = dir.appendingPathComponent("config.json")
    guard let d = FileManager.default.contents(atPath: url.path) else { throw ModelError.missing(url.path) }
    return try ToyVAEConfig(json: d, source: url.path)
  }

  /// Loads the toy VAE folder at `dir` onto `device` (strict weights), in evaluation mode.
  public static func load(from dir: URL, device: Device) throws -> ToyVAE {
    let model = try ToyVAE(config: try readConfig(dir), on: device)
    try loadToyWeights(model, dir)
    return model
  }
}

/// Loads `dir`/diffusion_pytorch_model.safetensors into `model` (strict) and sets evaluation mode.
func loadToyWeights(_ model: Module, _ dir: URL) throws {
  let w = dir.appendingPathComponent(ModelFolder.weightsFile)
  guard FileManager.default.fileExists(atPath: w.path) else { throw ModelError.missing(w.path) }
  do { try model.load(contentsOf: w) } catch let e as ModuleError {
    throw ModelError.weight(w.lastPathComponent, "\(e)")
  }
  model.eval()
}

/// How a toy model samples: each family's own knobs (the others are ignored).
public struct ToySamplingOptions: Sendable, Equatable {
  /// Diffusion: the sampler.
  public var sampler: SamplerKind = .ddim
  /// Diffusion: sampling steps (nil: 20, DDPM every training step).
  public var steps: Int? = 20
  /// Diffusion: DDIM's η.
  public var eta = 0.0
  /// Diffusion: Karras sigmas (DPM-Solver++, Euler, Heun).
  public var karras = false
  /// VAE: the prior's temperature τ.
  public var temperature = 1.0
  /// GAN: the truncation ψ (nil: none).
  public var truncation: Double? = nil
  /// GAN: how to truncate.
  public var truncationMode = TruncationMode.resample

  /// The defaults: DDIM with 20 steps, τ = 1, no truncation.
  public init() {}
}

/// A loaded toy model of any family.
public enum ToyModel {
  /// A GAN with an MLP generator.
  case gan(GANModel)
  /// A toy denoiser and its scheduler_config.json (text).
  case diffusion(ToyDenoiser, schedulerJSON: String)
  /// A toy VAE.
  case vae(ToyVAE)

  /// The model's family.
  public var family: ModelFamily {
    switch self {
    case .gan: return .gan
    case .diffusion: return .diffusion
    case .vae: return .vae
    }
  }

  /// Whether the folder of `kind` holds a toy 2-D model (for a GAN folder: an MLP generator).
  public static func isToy(_ kind: ModelFolderKind) -> Bool {
    switch kind {
    case .toyDiffusion, .toyVAE: return true
    case .gan(let url): return (try? GANModel.readConfigs(url).generator.architecture) == .mlp
    case .diffusion, .convVAE, .autoencoderKL: return false
    }
  }

  /// The toy model in the folder of `kind` on `device`, or nil when the folder holds an image model.
  public static func load(_ kind: ModelFolderKind, device: Device) throws -> ToyModel? {
    switch kind {
    case .toyDiffusion(let url):
      let (_, sched) = try ToyDenoiser.readFolder(url)
      return .diffusion(
        try ToyDenoiser.load(from: url, device: device),
        schedulerJSON: try String(contentsOf: sched, encoding: .utf8))
    case .toyVAE(let url): return .vae(try ToyVAE.load(from: url, device: device))
    case .gan(let url):
      guard isToy(kind) else { return nil }
      let gan = try GANModel.load(from: url, device: device)
      guard (try? ToyDataset.parse(gan.config.data)) != nil else {
        throw ModelError.input(
          "\(url.path): gan_config.json's data '\(gan.config.data)' is not a toy data set (toy:ring8, toy:grid25)"
        )
      }
      return .gan(gan)
    case .diffusion, .convVAE, .autoencoderKL: return nil
    }
  }

  /// The data set the model was trained on.
  public var dataset: ToyDataset {
    switch self {
    case .gan(let g): return (try? ToyDataset.parse(g.config.data)) ?? .grid25
    case .diffusion(let m, _): return m.config.dataset
    case .vae(let m): return m.config.dataset
    }
  }

  /// The device the model runs on.
  var device: Device {
    let module: Module
    switch self {
    case .gan(let g): module = g.generator
    case .diffusion(let m, _): return m.device
    case .vae(let m): module = m
    }
    return module.sortedParameters.first?.tensor.device ?? .cpu
  }

  /// The progress units `sample` reports for `count` points in batches of `batchSize`: model evaluations
  /// (diffusion) or points.
  public func progressTotal(count: Int, batchSize: Int, options: ToySamplingOptions = .init()) throws -> (
    total: Int, unit: String
  ) {
    guard case .diffusion(_, let json) = self else { return (count, "points") }
    let plan = try SamplerPlanner.plan(
      options.sampler, schedulerJSON: json, steps: options.steps, eta: options.eta, karras: options.karras)
    return (plan.evaluations.count * ((count + batchSize - 1) / Swift.max(batchSize, 1)), "steps")
  }

  /// `count` points (row-major (x, y) pairs) in batches of `batchSize`: the family's sampling (diffusion: the
  /// sampler's plan on the folder's schedule, noise keyed by (seed, point, step); VAE: decoder means of
  /// τ·z, z keyed by (seed, point); GAN: G(z), z keyed by (seed, point), with truncation when asked for).
  public func sample(
    count: Int, seed: UInt64, batchSize: Int = 2_500, options: ToySamplingOptions = .init(),
    progress: (Int) -> Void = { _ in }
  ) throws -> [Float] {
    guard count > 0, batchSize > 0 else { throw ModelError.input("--n and --batch-size must be positive") }
    try MemoryBudget.check(
      checkedProduct([count, 2, 4]), for: "\(count) points (the result)", on: Device.cpu, flag: "--n")
    switch self {
    case .gan(let g):
      return try GANOps.sample(
        g, count: count, batchSize: batchSize, seed: seed, truncation: options.truncation,
        mode: options.truncationMode, device: device, progress: progress)
    case .diffusion(let m, let json):
      if let s = options.steps, s <= 0 { throw ModelError.input("--steps must be positive") }
      try SamplingBounds.checkEta(options.eta)
      let plan = try SamplerPlanner.plan(
        options.sampler, schedulerJSON: json, steps: options.steps, eta: options.eta, karras: options.karras)
      return try Tape.noGrad {
        try DiffusionSampler(unet: m, plan: plan).sample(
          SampleRequest(count: count, batchSize: batchSize, seed: seed), progress: progress)
      }
    case .vae(let m):
      return try VAEOps.sample(
        m, count: count, batchSize: batchSize, seed: seed, temperature: options.temperature, device: device,
        progress: progress)
    }
  }
}
