// A GAN model folder and sampling from it:
//
//   gan_config.json
//   generator/config.json + diffusion_pytorch_model.safetensors       (the EMA generator in a trained folder)
//   discriminator/config.json + diffusion_pytorch_model.safetensors   (kept for fine-tuning)
//
// Sampling draws z ~ N(0, I) keyed by (seed, sample index) only, so any batch size gives the same samples;
// the truncation trick either redraws every |z_i| > ψ (BigGAN's resampling, round r keyed by step r) or
// scales z by ψ.
import Foundation

/// How the truncation trick trades diversity for fidelity.
public enum TruncationMode: String, Sendable, CaseIterable, Codable {
  /// Redraw every coordinate with |z_i| > ψ until it falls inside (BigGAN).
  case resample
  /// z·ψ.
  case scale
}

/// A loaded GAN: its config, the generator (evaluation mode) and, when asked for, the discriminator.
public struct GANModel {
  /// gan_config.json.
  public let config: GANModelConfig
  /// The generator, in evaluation mode.
  public let generator: GANGenerator
  /// The discriminator (loaded only on request), in evaluation mode.
  public let discriminator: GANDiscriminator?

  /// A GAN from its parts.
  public init(config: GANModelConfig, generator: GANGenerator, discriminator: GANDiscriminator?) {
    (self.config, self.generator, self.discriminator) = (config, generator, discriminator)
  }

  /// The sub-folders of a GAN folder.
  public static let generatorFolder = "generator", discriminatorFolder = "discriminator"

  /// Whether `url` looks like a GAN folder: it holds gan_config.json, generator/ or discriminator/ (a folder
  /// with only some of them is then an error naming what is missing).
  public static func isGANFolder(_ url: URL) -> Bool {
    [GANModelConfig.fileName, generatorFolder, discriminatorFolder].contains {
      FileManager.default.fileExists(atPath: url.appendingPathComponent($0).path)
    }
  }

  /// The configs of the folder at `url`, checked against each other (the discriminator's config is read when
  /// present; a folder without a generator is an error naming what is missing).
  public static func readConfigs(_ url: URL) throws -> (
    model: GANModelConfig, generator: GANNetworkConfig, discriminator: GANNetworkConfig?
  ) {
    func read(_ path: String) throws -> (Data, String)? {
      let u = url.appendingPathComponent(path)
      guard let d = FileManager.default.contents(atPath: u.path) else { return nil }
      return (d, u.path)
    }
    guard let (m, mSource) = try read(GANModelConfig.fileName) else {
      throw ModelError.missing("\(url.path)/\(GANModelConfig.fileName)")
    }
    let model = try GANModelConfig(json: m, source: mSource)
    guard let (g, gSource) = try read("\(generatorFolder)/config.json") else {
      throw ModelError.missing(
        "generator: \(url.appendingPathComponent(generatorFolder).path)/config.json (a GAN folder holds generator/ and discriminator/)"
      )
    }
    let gen = try GANNetworkConfig(json: g, source: gSource)
    var disc: GANNetworkConfig?
    if let (d, dSource) = try read("\(discriminatorFolder)/config.json") {
      disc = try GANNetworkConfig(json: d, source: dSource)
      try model.check(generator: gen, discriminator: disc!, source: url.path)
    } else {
      guard gen.role == .generator, gen.latentDim == model.latentDim else {
        throw ModelError.input("\(gSource) is not a generator with latent_dim \(model.latentDim)")
      }
    }
    return (model, gen, disc)
  }

  /// Loads the GAN folder at `url` onto `device` (strict weights): the generator, and the discriminator when
  /// `discriminator` is true (then it must be there).
  public static func load(from url: URL, device: Device, discriminator loadD: Bool = false) throws -> GANModel
  {
    let (model, gConfig, dConfig) = try readConfigs(url)
    let g = try GANGenerator(config: gConfig, on: device)
    try loadWeights(g, url.appendingPathComponent(generatorFolder))
    g.eval()
    var d: GANDiscriminator?
    if loadD {
      guard let dConfig else {
        throw ModelError.missing(
          "discriminator: \(url.appendingPathComponent(discriminatorFolder).path)/config.json")
      }
      d = try GANDiscriminator(config: dConfig, on: device)
      try loadWeights(d!, url.appendingPathComponent(discriminatorFolder))
      d!.eval()
    }
    return GANModel(config: model, generator: g, discriminator: d)
  }

  static func loadWeights(_ m: Module, _ dir: URL) throws {
    let w = dir.appendingPathComponent(ModelFolder.weightsFile)
    guard FileManager.default.fileExists(atPath: w.path) else { throw ModelError.missing(w.path) }
    do { try m.load(contentsOf: w) } catch let e as ModuleError {
      throw ModelError.weight("\(dir.lastPathComponent)/\(w.lastPathComponent)", "\(e)")
    }
  }

  /// The per-sample shape the generator makes.
  public var sampleShape: [Int] { generator.sampleShape }
  /// Whether the samples are 2-D points (an MLP toy model) rather than images.
  public var isToy: Bool { generator.config.architecture == .mlp }
}

/// Sampling a GAN generator: latents keyed by (seed, sample index), truncation, class labels.
public enum GANOps {
  /// The latents of samples `start..<start+count` (count × latentDim): z ~ N(0, I) keyed by (seed, index), then
  /// truncated with ψ (ψ ≥ 1 or nil: untouched for `resample`; ψ = 1 untouched for `scale`). Resampling redraws
  /// a coordinate from round r = 1, 2, … (step r of the same stream) until |z| ≤ ψ.
  public static func latents(
    start: Int = 0, count: Int, latentDim: Int, seed: UInt64, truncation psi: Double? = nil,
    mode: TruncationMode = .resample, device: Device
  ) throws -> Tensor {
    if let psi, !(psi > 0 && psi.isFinite) {
      throw ModelError.input("--truncation ψ must be positive, got \(psi)")
    }
    let shape = [count, latentDim]
    let z = try Tensor.randomNormal(
      shape: shape, seed: seed, step: 0, stream: Streams.priorSample, firstSample: start, on: device)
    guard let psi, psi != 1 else { return z }
    switch mode {
    case .scale: return try z * Float(psi)
    case .resample:
      if psi >= 6.8 { return z }  // Box–Muller normals are bounded by 6.77.
      var values = try z.toArray()
      var round = 1
      let bound = Float(psi)
      while values.contains(where: { Swift.abs($0) > bound }) {
        guard round < 100_000 else { throw ModelError.input("--truncation \(psi) is too small to resample") }
        let fresh = try Tensor.randomNormal(
          shape: shape, seed: seed, step: round, stream: Streams.priorSample, firstSample: start, on: .cpu
        ).toArray()
        for i in values.indices where Swift.abs(values[i]) > bound { values[i] = fresh[i] }
        round += 1
      }
      return try Tensor(values, shape: shape, on: device)
    }
  }

  /// `count` samples of `model`'s generator in batches (values in [−1, 1] for images; points for toy models);
  /// `labels` gives sample i's class (cycled), required exactly when the model is class-conditional.
  public static func sample(
    _ model: GANModel, count: Int, batchSize: Int, seed: UInt64, truncation: Double? = nil,
    mode: TruncationMode = .resample, labels: [Int]? = nil, device: Device, progress: (Int) -> Void = { _ in }
  ) throws -> [Float] {
    guard count > 0, batchSize > 0 else { throw ModelError.input("--n and --batch-size must be positive") }
    if let l = labels, l.isEmpty { throw ModelError.input("--class: no classes given") }
    try MemoryBudget.check(
      checkedProduct([count, model.sampleShape.reduce(1, *), 4]),
      for: "\(count) samples of \(model.sampleShape) (the result)", on: Device.cpu, flag: "--n")
    var out: [Float] = []
    out.reserveCapacity(count * model.sampleShape.reduce(1, *))
    var start = 0
    while start < count {
      let n = Swift.min(batchSize, count - start)
      let z = try latents(
        start: start, count: n, latentDim: model.config.latentDim, seed: seed, truncation: truncation,
        mode: mode,
        device: device)
      let y = labels.map { l in (start..<(start + n)).map { l[$0 % l.count] } }
      let samples = try Tape.noGrad { try model.generator(z, labels: y).toArray() }
      try NonFiniteError.check(
        samples, tensor: "the generator output", firstImage: start, perImage: model.sampleShape.reduce(1, *))
      out += samples
      start += n
      progress(n)
    }
    return out
  }
}
