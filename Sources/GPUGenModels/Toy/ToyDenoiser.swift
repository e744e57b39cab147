// The diffusion family's toy model: an MLP that predicts ε (or v) for 2-D points. The timestep enters as
// diffusers' sinusoidal embedding (get_timestep_embedding, UNet2DModel's time_proj), concatenated to the input of
// every hidden layer:
//
//   e = [cos(t·f_i), sin(t·f_i)]_i,  f_i = exp(−ln(10000)·i / (E/2 − freq_shift))     (N, E)
//   h₀ = x (N, 2),  h_{i+1} = act(net.i([h_i, e])),  ε̂ = net.last(h_last)             (N, 2)
//
// It is a `Denoiser` (sample shape [2]), so every schedule and sampler drives it as they drive the UNet.
// Its folder: config.json ("_class_name": "ToyDenoiser", the data set), diffusion_pytorch_model.safetensors
// and scheduler_config.json.
import Foundation

/// ToyDenoiser's config.json.
public struct ToyDenoiserConfig: Equatable, Sendable {
  /// The class name in config.json.
  public static let className = "ToyDenoiser"
  /// The toy data set the model is trained on (toy:ring8, toy:grid25).
  public var data = "toy:grid25"
  /// Widths of the hidden layers.
  public var hiddenDims = [256, 256, 256]
  /// Width E of the sinusoidal timestep embedding (even).
  public var timeEmbeddingDim = 64
  /// The hidden layers' activation (`ActivationFunction(name:)`).
  public var activation = "silu"
  /// diffusers' flip_sin_to_cos: cosines first.
  public var flipSinToCos = true
  /// diffusers' freq_shift (downscale_freq_shift).
  public var freqShift = 0.0

  /// The default toy denoiser (3 × 256 SiLU, E = 64).
  public init() {}

  static let fields: Set<String> = [
    "_class_name", "_gpugen_version", "data", "hidden_dims", "time_embedding_dim", "act_fn",
    "flip_sin_to_cos",
    "freq_shift",
  ]

  /// Reads config.json; unknown fields and bad values are errors naming them.
  public init(json data: Data, source: String = "config.json") throws {
    let r = try ToyConfigReader(
      json: data, source: source, className: ToyDenoiserConfig.className, fields: ToyDenoiserConfig.fields)
    self.data = try r.string("data") ?? self.data
    hiddenDims = try r.ints("hidden_dims") ?? hiddenDims
    timeEmbeddingDim = try r.int("time_embedding_dim") ?? timeEmbeddingDim
    activation = try r.string("act_fn") ?? activation
    flipSinToCos = try r.bool("flip_sin_to_cos") ?? flipSinToCos
    freqShift = try r.double("freq_shift") ?? freqShift
    try validate(source: source)
  }

  /// Errors for configs no model can have.
  public func validate(source: String = "ToyDenoiser config") throws {
    try ToyConfigReader.validate(data: data, hiddenDims: hiddenDims, activation: activation, source: source)
    guard timeEmbeddingDim >= 2, timeEmbeddingDim <= 4096, timeEmbeddingDim % 2 == 0 else {
      throw ModelError.unsupported(source, "time_embedding_dim \(timeEmbeddingDim) must be even, 2...4096")
    }
    guard freqShift.isFinite, freqShift < Double(timeEmbeddingDim / 2) else {
      throw ModelError.unsupported(source, "freq_shift \(freqShift) must be below time_embedding_dim / 2")
    }
  }

  /// The data set (the config is validated, so the name is known).
  public var dataset: ToyDataset { (try? ToyDataset.parse(data)) ?? .grid25 }

  /// config.json as gpugen writes it.
  public func jsonData() throws -> Data {
    let o: [String: Any] = [
      "_class_name": ToyDenoiserConfig.className, "data": data, "hidden_dims": hiddenDims,
      "time_embedding_dim": timeEmbeddingDim, "act_fn": activation, "flip_sin_to_cos": flipSinToCos,
      "freq_shift": freqShift,
    ]
    return try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys])
  }
}

/// The MLP denoiser of 2-D points (see the file header).
public final class ToyDenoiser: Module, Denoiser {
  /// The architecture.
  public let config: ToyDenoiserConfig
  /// The device the weights live on.
  public let device: Device
  /// The layers: hidden layer i maps [h_i, e] (h_0 = x), the last h → ε̂ (or v̂).
  public let net: ModuleList<Linear>
  let act: ActivationFunction

  /// A denoiser on `device` with PyTorch's default initialisation drawn from `seed`.
  public init(config: ToyDenoiserConfig, seed: UInt64 = 0, on device: Device) throws {
    try config.validate()
    self.config = config
    self.device = device
    let e = config.timeEmbeddingDim
    var layers: [Linear] = []
    var prev = 2
    for h in config.hiddenDims {
      layers.append(try Linear(prev + e, h, on: device))
      prev = h
    }
    layers.append(try Linear(prev, 2, on: device))
    net = ModuleList(layers)
    act = ActivationFunction(name: config.activation) ?? .silu
    super.init()
    child("net", net)
    try initialize(seed: seed)
  }

  /// One sample is a point: [2].
  public var imageShape: [Int] { [2] }
  /// Toy denoisers are unconditional.
  public var classCount: Int? { nil }

  /// ε̂ (N, 2) for points x (N, 2) at one timestep per point (or one for all).
  public func callAsFunction(_ x: Tensor, timesteps: [Double], classLabels: [Int]? = nil) throws -> Tensor {
    guard x.rank == 2, x.shape[1] == 2 else {
      throw ModelError.input("the toy denoiser takes points of shape (N, 2), got \(x.shape)")
    }
    let n = x.shape[0]
    guard timesteps.count == n || timesteps.count == 1 else {
      throw ModelError.input("\(timesteps.count) timesteps for a batch of \(n)")
    }
    if classLabels != nil { throw ModelError.input("the toy denoiser is not class-conditional") }
    let ts = timesteps.count == n ? timesteps : Array(repeating: timesteps[0], count: n)
    let e = config.timeEmbeddingDim
    let embedding = try Tensor(
      UNet2D.timestepEmbedding(ts, dim: e, flipSinToCos: config.flipSinToCos, freqShift: config.freqShift),
      shape: [n, e], on: device)
    var h = x
    for layer in net.items.dropLast() {
      h = try layer(try Tensor.concat([h, embedding], axis: 1), activation: act)
    }
    return try net.items.last!(h)
  }
}
