// The VAE family's toy model: an MLP encoder and decoder for 2-D points with a Gaussian likelihood. It is a
// `VariationalAutoencoder` whose "images" are points of shape (2, 1, 1), so the negative ELBO, prior sampling
// and the bounds of VAE.swift and VAESampling.swift apply unchanged:
//
//   encoder: x (N, 2) → Linear(2, h₀), act, …, Linear(h_last, 2·latent) → (μ, log σ²)      (N, latent) each
//   decoder: z (N, latent) → Linear(latent, h_last), act, …, Linear(h₀, 2) → mean           (N, 2)
//   p(x | z) = N(mean, σ²I), σ a learned scalar (log_sigma) or fixed (gaussian_sigma)
//
// Its folder: config.json ("_class_name": "ToyVAE", the data set) and diffusion_pytorch_model.safetensors.
import Foundation

/// ToyVAE's config.json.
public struct ToyVAEConfig: Equatable, Sendable {
  /// The class name in config.json.
  public static let className = "ToyVAE"
  /// The toy data set the model is trained on (toy:ring8, toy:grid25).
  public var data = "toy:grid25"
  /// Latent dimensions.
  public var latentDim = 2
  /// Widths of the encoder's hidden layers (the decoder mirrors them).
  public var hiddenDims = [256, 256, 256]
  /// The hidden layers' activation (`ActivationFunction(name:)`).
  public var activation = "silu"
  /// Fixed σ of the Gaussian likelihood; nil: a learned scalar log σ.
  public var gaussianSigma: Double? = nil

  /// The default toy VAE (3 × 256 SiLU each way, 2-D latent, learned σ).
  public init() {}

  static let fields: Set<String> = [
    "_class_name", "_gpugen_version", "data", "latent_dim", "hidden_dims", "act_fn", "likelihood",
    "gaussian_sigma",
  ]

  /// Reads config.json; unknown fields and bad values are errors naming them.
  public init(json data: Data, source: String = "config.json") throws {
    let r = try ToyConfigReader(
      json: data, source: source, className: ToyVAEConfig.className, fields: ToyVAEConfig.fields)
    self.data = try r.string("data") ?? self.data
    latentDim = try r.int("latent_dim") ?? latentDim
    hiddenDims = try r.ints("hidden_dims") ?? hiddenDims
    activation = try r.string("act_fn") ?? activation
    if let l = try r.string("likelihood"), l != "gaussian" {
      throw ModelError.unsupported(source, "likelihood \(l): a toy VAE's points have a Gaussian likelihood")
    }
    gaussianSigma = try r.double("gaussian_sigma")
    try validate(source: source)
  }

  /// Errors for configs no model can have.
  public func validate(source: String = "ToyVAE config") throws {
    try ToyConfigReader.validate(data: data, hiddenDims: hiddenDims, activation: activation, source: source)
    guard (1...1024).contains(latentDim) else {
      throw ModelError.unsupported(source, "latent_dim \(latentDim) is not in 1...1024")
    }
    if let s = gaussianSigma, !(s > 0 && s.isFinite) {
      throw ModelError.unsupported(source, "gaussian_sigma \(s) must be positive")
    }
  }

  /// The data set (the config is validated, so the name is known).
  public var dataset: ToyDataset { (try? ToyDataset.parse(data)) ?? .grid25 }

  /// config.json as gpugen writes it.
  public func jsonData() throws -> Data {
    var o: [String: Any] = [
      "_class_name": ToyVAEConfig.className, "data": data, "latent_dim": latentDim, "hidden_dims": hiddenDims,
      "act_fn": activation, "likelihood": "gaussian",
    ]
    o["gaussian_sigma"] = gaussianSigma ?? NSNull()
    return try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys])
  }
}

/// The MLP VAE of 2-D points (see the file header).
public final class ToyVAE: Module, VariationalAutoencoder {
  /// The architecture.
  public let config: ToyVAEConfig
  /// x → (μ, log σ²) stacked as (N, 2·latent).
  public let encoder: Sequential
  /// z → the mean of p(x | z).
  public let decoder: Sequential
  /// The learned log σ of the likelihood (nil when σ is fixed).
  public let logSigma: Tensor?

  /// A toy VAE on `device` with PyTorch's default initialisation drawn from `seed`.
  public init(config: ToyVAEConfig, seed: UInt64 = 0, on device: Device) throws {
    try config.validate()
    self.config = config
    encoder = try toyMLP(
      input: 2, hidden: config.hiddenDims, output: 2 * config.latentDim, activation: config.activation,
      on: device)
    decoder = try toyMLP(
      input: config.latentDim, hidden: config.hiddenDims.reversed(), output: 2, activation: config.activation,
      on: device)
    logSigma = config.gaussianSigma == nil ? try Tensor.zeros([1], on: device) : nil
    super.init()
    child("encoder", encoder)
    child("decoder", decoder)
    if let logSigma { register(parameter: "log_sigma", logSigma, initializer: .normBias) }
    try initialize(seed: seed)
  }

  /// A point as an "image": (2, 1, 1).
  public var imageShape: [Int] { [2, 1, 1] }
  /// [latent_dim].
  public var latentShape: [Int] { [config.latentDim] }
  /// Gaussian, σ learned or fixed.
  public var likelihood: VAELikelihood { .gaussian(sigma: config.gaussianSigma) }
  /// The data set's plot range (decoded means are clamped to it; every mode lies well inside).
  public var dataRange: ClosedRange<Float> {
    let r = config.dataset.plotRange
    return Float(r.lowerBound)...Float(r.upperBound)
  }

  /// μ and log σ² (N, latent) of points (N, 2, 1, 1).
  public func encode(_ x: Tensor) throws -> (mean: Tensor, logVariance: Tensor) {
    try checkImages(x.shape)
    let h = try encoder(try x.reshaped([x.shape[0], 2]))
    let d = config.latentDim
    return (try h.slice(axis: 1, start: 0, end: d), try h.slice(axis: 1, start: d, end: 2 * d))
  }

  /// The likelihood's means (N, 2, 1, 1) for latents (N, latent).
  public func decode(_ z: Tensor) throws -> Tensor {
    try checkLatents(z.shape)
    return try decoder(z).reshaped([z.shape[0], 2, 1, 1])
  }
}
