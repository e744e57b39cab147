// The generator and the discriminator, DCGAN or MLP, as `GANNetworkConfig` describes them. The reference
// DCGAN (28×28×1, widths [64, 128], latent 64, norm batch):
//
//   G: z (N, 64) → Linear(64, 128·7·7) → Unflatten(128, 7, 7) → BatchNorm2d(128) → ReLU
//        → ConvTranspose2d(128, 64, 4, 2, 1) → BatchNorm2d(64) → ReLU → ConvTranspose2d(64, 1, 4, 2, 1) → tanh
//   D: x (N, 1, 28, 28) → Conv2d(1, 64, 4, 2, 1) → LeakyReLU(0.2) → Conv2d(64, 128, 4, 2, 1) → BatchNorm2d(128)
//        → LeakyReLU(0.2) → Flatten → (N, 6272) → Linear(6272, 1)
//
// Other widths and depths follow the same pattern (s = sample_size / 2^depth). norm spectral drops the batch
// norms and spectrally normalises every weight; norm none drops the batch norms. A class-conditional generator
// has conditional batch norms (class-dependent γ, β); an MLP generator with norm batch has Linear → BatchNorm1d →
// ReLU in each hidden layer (the PacGAN/VEEGAN toy generator); a class-conditional discriminator adds the projection
// term ⟨embed(y), h⟩ to its output (Miyato & Koyama 2018). PacGAN's discriminator takes `pack` samples
// concatenated along the channels.
import Foundation

/// Layers applied in order (children "0", "1", … as in `nn.Sequential`), where conditional batch norms take
/// the class labels. A `FusableLayer` (Linear, convolutions, BatchNorm2d) followed by an activation runs fused;
/// a conditional batch norm takes the activation after its per-sample affine.
public final class ConditionalSequential: Module {
  /// The layers: `UnaryLayer`s and `ConditionalBatchNorm2d`s.
  public let layers: [Module]

  /// A chain of `layers`.
  public init(_ layers: [Module]) {
    self.layers = layers
    super.init()
    for (i, l) in layers.enumerated() { child("\(i)", l) }
  }

  /// The forward pass; `labels` feed the conditional batch norms.
  public func callAsFunction(_ x: Tensor, labels: [Int]?) throws -> Tensor {
    var h = x
    var i = 0
    while i < layers.count {
      if let f = layers[i] as? any FusableLayer, i + 1 < layers.count,
        let a = layers[i + 1] as? ActivationLayer
      {
        h = try f(h, activation: a.function)
        i += 2
        continue
      }
      if let c = layers[i] as? ConditionalBatchNorm2d {
        guard let labels else {
          throw ModelError.input("this generator is class-conditional: give class labels")
        }
        if i + 1 < layers.count, let a = layers[i + 1] as? ActivationLayer {
          h = try c(h, labels: labels, activation: a.function)
          i += 2
          continue
        }
        h = try c(h, labels: labels)
      } else if let u = layers[i] as? any UnaryLayer {
        h = try u(h)
      }
      i += 1
    }
    return h
  }
}

/// Spectrally normalises every Linear, Conv2d, ConvTranspose2d and Embedding of `module`.
func applySpectralNorm(to module: Module) throws {
  for (_, m) in module.namedModules {
    switch m {
    case let l as Linear: try l.applySpectralNorm()
    case let c as Conv2d: try c.applySpectralNorm()
    case let c as ConvTranspose2d: try c.applySpectralNorm()
    case let e as Embedding: try e.applySpectralNorm()
    default: break
    }
  }
}

/// The generator: z (N, latent) [and class labels] → samples (N, C, S, S) in [−1, 1] or points (N, data_dim).
public final class GANGenerator: Module {
  /// The architecture.
  public let config: GANNetworkConfig
  /// The layers.
  public let net: ConditionalSequential

  /// A generator with PyTorch's default initialisation drawn from `seed` (parameter slot `slot`).
  public init(config: GANNetworkConfig, seed: UInt64 = 0, slot: Int = 0, on device: Device) throws {
    try config.validate()
    guard config.role == .generator else {
      throw ModelError.input("\(config.className) is not a generator config")
    }
    self.config = config
    var layers: [Module] = []
    switch config.architecture {
    case .dcgan:
      let w = config.blockOutChannels, s = config.finalSize
      let classes = config.numClasses
      func norm(_ ch: Int) throws -> [Module] {
        guard config.norm == .batch else { return [] }
        return classes > 0
          ? [try ConditionalBatchNorm2d(channels: ch, classes: classes, on: device)]
          : [try BatchNorm2d(ch, on: device)]
      }
      let top = w.last!
      layers.append(try Linear(config.latentDim, top * s * s, on: device))
      if config.norm == .batch {
        layers.append(Unflatten([top, s, s]))
        layers += try norm(top)
        layers.append(ActivationLayer(.relu))
      } else {
        layers += [ActivationLayer(.relu), Unflatten([top, s, s])]
      }
      for i in stride(from: w.count - 1, to: 0, by: -1) {
        layers.append(try ConvTranspose2d(w[i], w[i - 1], kernelSize: 4, stride: 2, padding: 1, on: device))
        layers += try norm(w[i - 1])
        layers.append(ActivationLayer(.relu))
      }
      layers.append(
        try ConvTranspose2d(w[0], config.channels, kernelSize: 4, stride: 2, padding: 1, on: device))
      layers.append(ActivationLayer(.tanh))
    case .mlp:
      var prev = config.latentDim
      for h in config.hiddenDims {
        layers.append(try Linear(prev, h, on: device))
        if config.norm == .batch { layers.append(try BatchNorm2d(h, on: device)) }
        layers.append(ActivationLayer(.relu))
        prev = h
      }
      layers.append(try Linear(prev, config.dataDim, on: device))
    }
    net = ConditionalSequential(layers)
    super.init()
    child("net", net)
    if config.norm == .spectral { try applySpectralNorm(to: self) }
    try initialize(seed: seed, slot: slot)
  }

  /// The per-sample output shape.
  public var sampleShape: [Int] { config.sampleShape }

  /// Samples for latents `z` (N, latent_dim); `labels` (N classes) for a class-conditional generator.
  public func callAsFunction(_ z: Tensor, labels: [Int]? = nil) throws -> Tensor {
    guard z.rank == 2, z.shape[1] == config.latentDim else {
      throw ModelError.input("the generator takes latents of shape (N, \(config.latentDim)), got \(z.shape)")
    }
    try checkLabels(labels, count: z.shape[0], classes: config.numClasses)
    return try net(z, labels: labels)
  }
}

/// The discriminator: samples (N, …) [and class labels] → one logit per pack of samples (N/pack, 1).
public final class GANDiscriminator: Module {
  /// The architecture.
  public let config: GANNetworkConfig
  /// The feature layers (ending in the flattened features h).
  public let net: Sequential
  /// The output layer h → logit.
  public let linear: Linear
  /// The class embedding of the projection term ⟨embed(y), h⟩ (class-conditional only).
  public let embed: Embedding?

  /// A discriminator with PyTorch's default initialisation drawn from `seed` (parameter slot `slot`; a GAN
  /// run gives its discriminator slot 1, so the two networks draw different numbers).
  public init(config: GANNetworkConfig, seed: UInt64 = 0, slot: Int = 1, on device: Device) throws {
    try config.validate()
    guard config.role == .discriminator else {
      throw ModelError.input("\(config.className) is not a discriminator config")
    }
    self.config = config
    var layers: [any UnaryLayer] = []
    let features: Int
    let lrelu = ActivationLayer(.leakyRelu(slope: 0.2))
    switch config.architecture {
    case .dcgan:
      let w = config.blockOutChannels, s = config.finalSize
      var prev = config.channels * config.pack
      for (i, ch) in w.enumerated() {
        layers.append(try Conv2d(prev, ch, kernelSize: 4, stride: 2, padding: 1, on: device))
        if i > 0 && config.norm == .batch { layers.append(try BatchNorm2d(ch, on: device)) }
        layers.append(ActivationLayer(.leakyRelu(slope: 0.2)))
        prev = ch
      }
      layers.append(Flatten())
      features = w.last! * s * s
    case .mlp:
      var prev = config.dataDim * config.pack
      for h in config.hiddenDims {
        layers += [try Linear(prev, h, on: device), ActivationLayer(lrelu.function)]
        prev = h
      }
      features = prev
    }
    net = Sequential(layers)
    linear = try Linear(features, 1, on: device)
    // The projection embedding starts like a Linear(features, classes) weight (uniform, bound 1/√features), as
    // projection discriminators initialise it: torch's N(0, 1) embedding default would make ⟨embed(y), h⟩ of
    // order √features and swamp the logits at the start.
    embed =
      config.numClasses > 0
      ? try Embedding(config.numClasses, features, initializer: .weight, on: device) : nil
    super.init()
    child("net", net)
    child("linear", linear)
    if let embed { child("embed", embed) }
    if config.norm == .spectral { try applySpectralNorm(to: self) }
    try initialize(seed: seed, slot: slot)
  }

  /// Logits (N/pack, 1) for samples `x` (N, …); `labels` (N classes) for a class-conditional discriminator.
  public func callAsFunction(_ x: Tensor, labels: [Int]? = nil) throws -> Tensor {
    guard Array(x.shape.dropFirst()) == config.sampleShape else {
      throw ModelError.input(
        "the discriminator takes samples of shape \(config.sampleShape), got \(Array(x.shape.dropFirst()))")
    }
    let n = x.shape[0], p = config.pack
    guard n % p == 0 else {
      throw ModelError.input(
        "a PacGAN discriminator with pack \(p) needs a batch divisible by \(p), got \(n)")
    }
    try checkLabels(labels, count: n, classes: config.numClasses)
    // PacGAN: consecutive samples side by side along the channels (a reshape of contiguous rows).
    var shape = config.sampleShape
    shape[0] *= p
    let packed = p == 1 ? x : try x.reshaped([n / p] + shape)
    let h = try net(packed)
    let out = try linear(h)
    guard let embed, let labels else { return out }
    // Projection: + ⟨embed(y), h⟩ per sample.
    return try out + (try embed(labels) * h).sum(axes: [1], keepDims: true)
  }
}

/// Throws unless `labels` suit a network with `classes` classes (nil when unconditional) for `count` samples.
func checkLabels(_ labels: [Int]?, count: Int, classes: Int) throws {
  switch (labels, classes) {
  case (nil, 0): return
  case (nil, _):
    throw ModelError.input("this model is class-conditional (\(classes) classes): give class labels")
  case (.some, 0): throw ModelError.input("this model is unconditional: it takes no class labels")
  case (let l?, _):
    guard l.count == count else { throw ModelError.input("\(l.count) class labels for \(count) samples") }
    if let bad = l.first(where: { $0 < 0 || $0 >= classes }) {
      throw ModelError.input("class \(bad) is out of range: the model has classes 0..<\(classes)")
    }
  }
}
