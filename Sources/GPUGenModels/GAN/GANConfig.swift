// The configs of a GAN model folder:
//
//   gan_config.json                 latent_dim, loss, conditional, num_classes, data
//   generator/config.json           _class_name DCGANGenerator or MLPGenerator
//   discriminator/config.json       _class_name DCGANDiscriminator or MLPDiscriminator
//
// Each network's weights sit beside its config as diffusion_pytorch_model.safetensors (PyTorch state_dict
// names). `GANModelConfig.check` says whether a generator and a discriminator fit together.
import Foundation

/// The adversarial loss.
public enum GANLoss: String, Codable, Sendable, CaseIterable {
  /// Non-saturating: D minimises softplus(−D(x)) + softplus(D(G(z))), G minimises softplus(−D(G(z))).
  case ns
  /// Hinge: D minimises relu(1 − D(x)) + relu(1 + D(G(z))), G minimises −D(G(z)).
  case hinge
}

/// The normalisation of a network's hidden layers.
public enum GANNorm: String, Codable, Sendable, CaseIterable {
  /// BatchNorm2d after each hidden convolution (conditional batch norm in a class-conditional generator), or
  /// BatchNorm1d after each hidden Linear of an MLP generator.
  case batch
  /// Spectral normalisation of every weight (Linear, Conv2d, ConvTranspose2d, Embedding); no batch norm.
  case spectral
  /// Neither.
  case none
}

/// The two architectures of a GAN network.
public enum GANArchitecture: String, Codable, Sendable, CaseIterable {
  /// DCGAN-style convolutions (images).
  case dcgan
  /// A multilayer perceptron (2-D toy data).
  case mlp
}

/// Which network of the pair a config describes.
public enum GANRole: String, Codable, Sendable {
  case generator, discriminator
}

/// One network's config.json (generator or discriminator; DCGAN or MLP).
public struct GANNetworkConfig: Equatable, Sendable {
  /// DCGAN or MLP.
  public var architecture: GANArchitecture
  /// Generator or discriminator.
  public var role: GANRole
  /// Latent dimensions (the generator's input).
  public var latentDim = 64
  /// Image channels (DCGAN).
  public var channels = 1
  /// Image side (DCGAN: a multiple of 2^depth).
  public var sampleSize = 28
  /// Widths of the stride-2 layers in the discriminator's order, first to last (DCGAN); the generator runs them
  /// backwards.
  public var blockOutChannels = [64, 128]
  /// Point dimensions (MLP).
  public var dataDim = 2
  /// Hidden widths (MLP).
  public var hiddenDims = [256, 256, 256]
  /// Normalisation of the hidden layers.
  public var norm = GANNorm.batch
  /// Classes of a class-conditional network (0: unconditional).
  public var numClasses = 0
  /// Samples the discriminator sees at once, concatenated along the channels (PacGAN; discriminator only).
  public var pack = 1

  /// The reference DCGAN generator or discriminator for 28×28×1 (the benchmarks' config).
  public init(architecture: GANArchitecture = .dcgan, role: GANRole) {
    self.architecture = architecture
    self.role = role
    if architecture == .mlp { (norm, latentDim) = (.none, 2) }
  }

  /// The MLP generator `gpugen train gan` trains on toy data without --config (docs/GAN_TOY.md): latent 2,
  /// hidden 400, 400, 400, 400 (PacGAN's grid25 generator), each Linear → BatchNorm1d → ReLU. Batch norm lets it
  /// make the steep transitions between grid25's modes (without it most samples lie between modes), and the
  /// fourth, wider layer makes them steeper: 89–93 % of the samples land within 3σ of a mode after 40,000 steps
  /// (93–96 % after the default 60,000), where 256, 256, 256 left 72–85 %.
  public static var toyGenerator: GANNetworkConfig {
    var c = GANNetworkConfig(architecture: .mlp, role: .generator)
    (c.norm, c.hiddenDims) = (.batch, [400, 400, 400, 400])
    return c
  }

  /// The MLP discriminator `gpugen train gan` trains on toy data without --config: hidden 256, 256, 256,
  /// LeakyReLU 0.2, no normalisation (--spectral-norm adds it).
  public static var toyDiscriminator: GANNetworkConfig {
    GANNetworkConfig(architecture: .mlp, role: .discriminator)
  }

  /// The config.json class name.
  public var className: String {
    (architecture == .dcgan ? "DCGAN" : "MLP") + (role == .generator ? "Generator" : "Discriminator")
  }

  /// Every class name a GAN network folder may hold.
  public static let classNames = ["DCGANGenerator", "DCGANDiscriminator", "MLPGenerator", "MLPDiscriminator"]

  static let commonFields: Set<String> = ["_class_name", "_gpugen_version", "norm", "num_classes"]
  var fields: Set<String> {
    var f = GANNetworkConfig.commonFields
    f.formUnion(
      architecture == .dcgan
        ? ["channels", "sample_size", "block_out_channels"] : ["data_dim", "hidden_dims"])
    f.insert(role == .generator ? "latent_dim" : "pack")
    return f
  }

  /// Reads config.json; unknown fields and bad values are errors naming them.
  public init(json data: Data, source: String = "config.json") throws {
    let obj = try JSONFields(data, source: source)
    let name = try obj.string("_class_name")
    guard let name, let i = GANNetworkConfig.classNames.firstIndex(of: name) else {
      throw ModelError.unsupported(
        source,
        "_class_name \(name ?? "(missing)") is not one of \(GANNetworkConfig.classNames.joined(separator: ", "))"
      )
    }
    self.init(architecture: i < 2 ? .dcgan : .mlp, role: i % 2 == 0 ? .generator : .discriminator)
    try obj.rejectUnknown(fields)
    latentDim = try obj.int("latent_dim") ?? latentDim
    channels = try obj.int("channels") ?? channels
    sampleSize = try obj.int("sample_size") ?? sampleSize
    blockOutChannels = try obj.ints("block_out_channels") ?? blockOutChannels
    dataDim = try obj.int("data_dim") ?? dataDim
    hiddenDims = try obj.ints("hidden_dims") ?? hiddenDims
    if let s = try obj.string("norm") {
      guard let n = GANNorm(rawValue: s) else {
        throw ModelError.unsupported(source, "norm \(s) (choose batch, spectral or none)")
      }
      norm = n
    }
    numClasses = try obj.int("num_classes") ?? numClasses
    pack = try obj.int("pack") ?? pack
    try validate(source: source)
  }

  /// Errors for configs no network can have.
  public func validate(source: String = "GAN config") throws {
    func bad(_ s: String) -> ModelError { .unsupported(source, s) }
    guard (0...100_000).contains(numClasses) else {
      throw bad("num_classes \(numClasses) is not in 0...100000")
    }
    guard (1...64).contains(pack) else { throw bad("pack \(pack) is not in 1...64") }
    if pack > 1 && numClasses > 0 { throw bad("pack > 1 (PacGAN) with a class-conditional discriminator") }
    guard (1...4096).contains(latentDim) else { throw bad("latent_dim \(latentDim) is not in 1...4096") }
    switch architecture {
    case .dcgan:
      guard (1...4).contains(channels) else { throw bad("channels \(channels) is not in 1...4") }
      guard (1...6).contains(blockOutChannels.count), blockOutChannels.allSatisfy({ (1...4096).contains($0) })
      else { throw bad("block_out_channels \(blockOutChannels) needs 1 to 6 widths in 1...4096") }
      let f = 1 << blockOutChannels.count
      guard sampleSize >= f, sampleSize <= 1024, sampleSize % f == 0 else {
        throw bad("sample_size \(sampleSize) must be a multiple of \(f) (2^depth) and at most 1024")
      }
      if role == .generator && numClasses > 0 && norm != .batch {
        throw bad(
          "a class-conditional DCGAN generator needs norm batch (its classes enter through conditional batch norm)"
        )
      }
    case .mlp:
      guard (1...64).contains(dataDim) else { throw bad("data_dim \(dataDim) is not in 1...64") }
      guard (1...16).contains(hiddenDims.count), hiddenDims.allSatisfy({ (1...65536).contains($0) }) else {
        throw bad("hidden_dims \(hiddenDims) needs 1 to 16 widths in 1...65536")
      }
      if role == .generator && numClasses > 0 {
        throw bad("a class-conditional MLP generator is not supported (the discriminator may be conditional)")
      }
      if role == .discriminator && norm == .batch {
        throw bad(
          "norm batch in an MLP discriminator (it would mix the samples of a batch): choose spectral or none")
      }
    }
  }

  /// The per-sample shape the generator makes and the discriminator takes: (C, S, S) or (data_dim).
  public var sampleShape: [Int] { architecture == .dcgan ? [channels, sampleSize, sampleSize] : [dataDim] }

  /// The side of the last stride-2 layer's output (DCGAN).
  public var finalSize: Int { sampleSize >> blockOutChannels.count }

  /// config.json as gpugen writes it.
  public func jsonData() throws -> Data {
    var o: [String: Any] = ["_class_name": className, "norm": norm.rawValue, "num_classes": numClasses]
    if architecture == .dcgan {
      (o["channels"], o["sample_size"], o["block_out_channels"]) = (channels, sampleSize, blockOutChannels)
    } else {
      (o["data_dim"], o["hidden_dims"]) = (dataDim, hiddenDims)
    }
    if role == .generator { o["latent_dim"] = latentDim } else { o["pack"] = pack }
    return try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys])
  }
}

/// gan_config.json: what the pair was trained as.
public struct GANModelConfig: Codable, Equatable, Sendable {
  /// Latent dimensions.
  public var latentDim: Int
  /// The adversarial loss it was trained with.
  public var loss: GANLoss
  /// Whether it is class-conditional.
  public var conditional: Bool
  /// Number of classes (0 when unconditional).
  public var numClasses: Int
  /// The training data (fashion-mnist, toy:ring8, …): toy models draw its modes in their plots.
  public var data: String

  enum CodingKeys: String, CodingKey {
    case latentDim = "latent_dim", loss, conditional, numClasses = "num_classes", data
  }

  /// A config.
  public init(latentDim: Int, loss: GANLoss, conditional: Bool, numClasses: Int, data: String) {
    (self.latentDim, self.loss, self.conditional, self.numClasses, self.data) =
      (latentDim, loss, conditional, numClasses, data)
  }

  /// The file name in a GAN folder.
  public static let fileName = "gan_config.json"

  /// Reads gan_config.json (unknown fields are errors naming them).
  public init(json data: Data, source: String = GANModelConfig.fileName) throws {
    let obj = try JSONFields(data, source: source)
    try obj.rejectUnknown(["latent_dim", "loss", "conditional", "num_classes", "data", "_gpugen_version"])
    guard let latent = try obj.int("latent_dim") else {
      throw ModelError.malformed(source, "latent_dim is missing")
    }
    let lossName = try obj.string("loss") ?? "ns"
    guard let loss = GANLoss(rawValue: lossName) else {
      throw ModelError.unsupported(source, "loss \(lossName) (choose ns or hinge)")
    }
    self.init(
      latentDim: latent, loss: loss, conditional: try obj.bool("conditional") ?? false,
      numClasses: try obj.int("num_classes") ?? 0, data: try obj.string("data") ?? "fashion-mnist")
    if conditional != (numClasses > 0) {
      throw ModelError.unsupported(source, "conditional \(conditional) with num_classes \(numClasses)")
    }
  }

  /// gan_config.json as gpugen writes it.
  public func jsonData() throws -> Data {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    return try enc.encode(self)
  }

  /// Throws unless `generator` and `discriminator` fit each other and this config: the generator's samples
  /// are what the discriminator takes, and latent size and classes agree. The error names both sides.
  public func check(generator g: GANNetworkConfig, discriminator d: GANNetworkConfig, source: String) throws {
    func bad(_ s: String) -> ModelError {
      .input("the generator and discriminator configs do not fit together (\(source)): \(s)")
    }
    guard g.role == .generator, d.role == .discriminator else {
      throw bad("generator/config.json is a \(g.className), discriminator/config.json a \(d.className)")
    }
    guard g.sampleShape == d.sampleShape else {
      throw bad(
        "the generator makes samples of shape \(g.sampleShape), the discriminator takes \(d.sampleShape)")
    }
    guard g.latentDim == latentDim else {
      throw bad("gan_config.json has latent_dim \(latentDim), the generator \(g.latentDim)")
    }
    if conditional {
      guard d.numClasses == numClasses else {
        throw bad("\(numClasses) classes, but the discriminator has num_classes \(d.numClasses)")
      }
      guard g.numClasses == numClasses else {
        throw bad("\(numClasses) classes, but the generator has num_classes \(g.numClasses)")
      }
    } else if g.numClasses != 0 || d.numClasses != 0 {
      throw bad(
        "an unconditional model with num_classes \(g.numClasses) (generator), \(d.numClasses) (discriminator)"
      )
    }
  }
}

/// A JSON object read for a config, with typed field access whose errors name the file and field.
struct JSONFields {
  let obj: [String: Any]
  let source: String

  init(_ data: Data, source: String) throws {
    guard let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
      throw ModelError.malformed(source, "not a JSON object")
    }
    (obj, self.source) = (o, source)
  }

  /// Throws for the first field (sorted) not in `known`, listing the known ones.
  func rejectUnknown(_ known: Set<String>) throws {
    if let bad = obj.keys.filter({ !known.contains($0) }).sorted().first {
      throw ModelError.unsupported(
        source, "field \(bad) (this config takes \(known.sorted().joined(separator: ", ")))")
    }
  }

  func int(_ key: String) throws -> Int? {
    guard let v = obj[key], !(v is NSNull) else { return nil }
    guard let n = v as? NSNumber, Double(truncating: n) == Double(n.intValue) else {
      throw ModelError.malformed(source, "\(key) must be an integer")
    }
    return n.intValue
  }

  func ints(_ key: String) throws -> [Int]? {
    guard let v = obj[key], !(v is NSNull) else { return nil }
    guard let a = v as? [NSNumber], a.allSatisfy({ Double(truncating: $0) == Double($0.intValue) }) else {
      throw ModelError.malformed(source, "\(key) must be a list of integers")
    }
    return a.map(\.intValue)
  }

  func string(_ key: String) throws -> String? {
    guard let v = obj[key], !(v is NSNull) else { return nil }
    guard let s = v as? String else { throw ModelError.malformed(source, "\(key) must be a string") }
    return s
  }

  func bool(_ key: String) throws -> Bool? {
    guard let v = obj[key], !(v is NSNull) else { return nil }
    guard let b = v as? Bool else { throw ModelError.malformed(source, "\(key) must be true or false") }
    return b
  }
}
