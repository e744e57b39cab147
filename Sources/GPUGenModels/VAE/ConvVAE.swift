// gpugen's convolutional VAE with a vector latent. Its config.json has "_class_name": "ConvVAE"; the
// weights are diffusion_pytorch_model.safetensors with nn.Sequential names, so the same model written in
// PyTorch (Benchmarks/vae_pytorch.py) loads them unchanged:
//
//   encoder: [Conv2d(C, c₀, 4, 2, 1), (norm), ReLU] for each width cᵢ, Flatten, Linear(c_last·s², 2·latent)
//   decoder: Linear(latent, c_last·s²), ReLU, Unflatten(c_last, s, s),
//            [ConvTranspose2d(cᵢ, cᵢ₋₁, 4, 2, 1), (norm), ReLU] down the widths, ConvTranspose2d(c₀, C, 4, 2, 1)
//
// with s = sample_size / 2^depth. The reference config (in_channels 1, sample_size 28, widths [32, 64],
// latent 16) is the one the benchmarks compare with PyTorch.
import Foundation

/// ConvVAE's config.json.
public struct ConvVAEConfig: Equatable, Sendable {
  /// The class name in config.json.
  public static let className = "ConvVAE"
  /// Image channels.
  public var inChannels = 1
  /// Image side (a multiple of 2^depth).
  public var sampleSize = 28
  /// Widths of the stride-2 convolutions, first to last.
  public var blockOutChannels = [32, 64]
  /// Latent dimensions.
  public var latentDim = 16
  /// "bernoulli" or "gaussian".
  public var likelihood = "bernoulli"
  /// Fixed σ of a Gaussian likelihood; nil: a learned scalar log σ.
  public var gaussianSigma: Double? = nil
  /// "none", "batch" (BatchNorm2d) or "group" (GroupNorm, 8 groups or fewer) after each hidden convolution.
  public var norm = "none"

  /// The reference config.
  public init() {}

  static let fields: Set<String> = [
    "_class_name", "_gpugen_version", "in_channels", "sample_size", "block_out_channels", "latent_dim",
    "likelihood", "gaussian_sigma", "norm",
  ]

  /// Reads config.json; unknown fields and bad values are errors naming them.
  public init(json data: Data, source: String = "config.json") throws {
    guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
      throw ModelError.malformed(source, "not a JSON object")
    }
    if let name = obj["_class_name"] as? String, name != ConvVAEConfig.className {
      throw ModelError.unsupported(source, "_class_name \(name) is not \(ConvVAEConfig.className)")
    }
    if let bad = obj.keys.filter({ !ConvVAEConfig.fields.contains($0) }).sorted().first {
      throw ModelError.unsupported(
        source, "field \(bad) (ConvVAE takes \(ConvVAEConfig.fields.sorted().joined(separator: ", ")))")
    }
    func int(_ key: String) throws -> Int? {
      guard let v = obj[key] else { return nil }
      guard let n = v as? NSNumber, Double(truncating: n) == Double(n.intValue) else {
        throw ModelError.malformed(source, "\(key) must be an integer")
      }
      return n.intValue
    }
    inChannels = try int("in_channels") ?? inChannels
    sampleSize = try int("sample_size") ?? sampleSize
    latentDim = try int("latent_dim") ?? latentDim
    if let v = obj["block_out_channels"] {
      guard let a = v as? [NSNumber] else {
        throw ModelError.malformed(source, "block_out_channels must be a list of integers")
      }
      blockOutChannels = a.map(\.intValue)
    }
    if let v = obj["likelihood"] {
      guard let s = v as? String else { throw ModelError.malformed(source, "likelihood must be a string") }
      likelihood = s
    }
    if let v = obj["gaussian_sigma"], !(v is NSNull) {
      guard let d = v as? NSNumber else {
        throw ModelError.malformed(source, "gaussian_sigma must be a number or null")
      }
      gaussianSigma = d.doubleValue
    }
    if let v = obj["norm"] {
      guard let s = v as? String else { throw ModelError.malformed(source, "norm must be a string") }
      norm = s
    }
    try validate(source: source)
  }

  /// Errors for configs no model can have.
  public func validate(source: String = "ConvVAE config") throws {
    func bad(_ s: String) -> ModelError { .unsupported(source, s) }
    guard (1...4).contains(inChannels) else { throw bad("in_channels \(inChannels) is not in 1...4") }
    guard (1...8).contains(blockOutChannels.count), blockOutChannels.allSatisfy({ (1...4096).contains($0) })
    else {
      throw bad("block_out_channels \(blockOutChannels) needs 1 to 8 widths in 1...4096")
    }
    let f = 1 << blockOutChannels.count
    guard sampleSize >= f, sampleSize <= 1024, sampleSize % f == 0 else {
      throw bad("sample_size \(sampleSize) must be a multiple of \(f) (2^depth) and at most 1024")
    }
    guard (1...4096).contains(latentDim) else { throw bad("latent_dim \(latentDim) is not in 1...4096") }
    guard ["bernoulli", "gaussian"].contains(likelihood) else {
      throw bad("likelihood \(likelihood) (choose bernoulli or gaussian)")
    }
    if let s = gaussianSigma, !(s > 0 && s.isFinite) { throw bad("gaussian_sigma \(s) must be positive") }
    guard ["none", "batch", "group"].contains(norm) else {
      throw bad("norm \(norm) (choose none, batch or group)")
    }
  }

  /// The side of the last convolution's output.
  public var finalSize: Int { sampleSize >> blockOutChannels.count }

  /// config.json as gpugen writes it.
  public func jsonData() throws -> Data {
    var o: [String: Any] = [
      "_class_name": ConvVAEConfig.className, "in_channels": inChannels, "sample_size": sampleSize,
      "block_out_channels": blockOutChannels, "latent_dim": latentDim, "likelihood": likelihood, "norm": norm,
    ]
    o["gaussian_sigma"] = gaussianSigma ?? NSNull()
    return try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys])
  }

  /// The likelihood as a value.
  public var likelihoodValue: VAELikelihood {
    likelihood == "bernoulli" ? .bernoulli : .gaussian(sigma: gaussianSigma)
  }
}

/// The convolutional VAE (see the file header for the architecture).
public final class ConvVAE: Module, VariationalAutoencoder {
  /// The architecture.
  public let config: ConvVAEConfig
  /// x → (μ, log σ²) stacked as (N, 2·latent).
  public let encoder: Sequential
  /// z → logits or means.
  public let decoder: Sequential
  /// The learned log σ of a Gaussian likelihood without a fixed σ.
  public let logSigma: Tensor?

  /// A ConvVAE on `device`, with PyTorch's default initialisation drawn from `seed`.
  public init(config: ConvVAEConfig, seed: UInt64 = 0, on device: Device) throws {
    try config.validate()
    self.config = config
    let w = config.blockOutChannels
    let s = config.finalSize
    func norm(_ ch: Int) throws -> [any UnaryLayer] {
      switch config.norm {
      case "batch": return [try BatchNorm2d(ch, on: device)]
      case "group":
        var g = Swift.min(8, ch)
        while ch % g != 0 { g -= 1 }
        return [try GroupNorm(groups: g, channels: ch, on: device)]
      default: return []
      }
    }
    var enc: [any UnaryLayer] = []
    var prev = config.inChannels
    for ch in w {
      enc.append(try Conv2d(prev, ch, kernelSize: 4, stride: 2, padding: 1, on: device))
      enc += try norm(ch)
      enc.append(ActivationLayer(.relu))
      prev = ch
    }
    enc.append(Flatten())
    enc.append(try Linear(w.last! * s * s, 2 * config.latentDim, on: device))
    var dec: [any UnaryLayer] = [
      try Linear(config.latentDim, w.last! * s * s, on: device), ActivationLayer(.relu),
      Unflatten([w.last!, s, s]),
    ]
    for i in stride(from: w.count - 1, to: 0, by: -1) {
      dec.append(try ConvTranspose2d(w[i], w[i - 1], kernelSize: 4, stride: 2, padding: 1, on: device))
      dec += try norm(w[i - 1])
      dec.append(ActivationLayer(.relu))
    }
    dec.append(try ConvTranspose2d(w[0], config.inChannels, kernelSize: 4, stride: 2, padding: 1, on: device))
    encoder = Sequential(enc)
    decoder = Sequential(dec)
    logSigma =
      config.likelihood == "gaussian" && config.gaussianSigma == nil ? try Tensor.zeros([1], on: device) : nil
    super.init()
    child("encoder", encoder)
    child("decoder", decoder)
    if let logSigma { register(parameter: "log_sigma", logSigma, initializer: .normBias) }
    try initialize(seed: seed)
  }

  /// (in_channels, sample_size, sample_size).
  public var imageShape: [Int] { [config.inChannels, config.sampleSize, config.sampleSize] }
  /// [latent_dim].
  public var latentShape: [Int] { [config.latentDim] }
  /// The config's likelihood.
  public var likelihood: VAELikelihood { config.likelihoodValue }
  /// Images in [0, 1].
  public var dataRange: ClosedRange<Float> { 0...1 }

  /// μ and log σ² (N, latent_dim) of images (N, C, S, S) in [0, 1].
  public func encode(_ x: Tensor) throws -> (mean: Tensor, logVariance: Tensor) {
    try checkImages(x.shape)
    let h = try encoder(x)
    let d = config.latentDim
    return (try h.slice(axis: 1, start: 0, end: d), try h.slice(axis: 1, start: d, end: 2 * d))
  }

  /// Logits (Bernoulli) or means (Gaussian) of images for latents (N, latent_dim).
  public func decode(_ z: Tensor) throws -> Tensor {
    try checkLatents(z.shape)
    return try decoder(z)
  }
}
