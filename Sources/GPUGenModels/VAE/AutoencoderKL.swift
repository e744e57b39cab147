// diffusers' AutoencoderKL (the VAE of Stable Diffusion) on gpugen's Module framework. A folder written by
// `AutoencoderKL.save_pretrained(..., safe_serialization=True)` (config.json +
// diffusion_pytorch_model.safetensors) loads unchanged, and `save(to:)` writes one diffusers loads:
//
//   encoder: conv_in(C → c₀), down_blocks[i] = DownEncoderBlock2D (layers_per_block ResnetBlock2D, then a
//            stride-2 conv except in the last block), mid_block (resnet, attention, resnet),
//            GroupNorm + SiLU, conv_out(c_last → 2·latent)
//   quant_conv: 1×1 conv on the 2·latent moments (optional); the moments split into mean and log-variance,
//            the log-variance clamped to [-30, 20] (DiagonalGaussianDistribution)
//   post_quant_conv: 1×1 conv on z (optional)
//   decoder: conv_in(latent → c_last), mid_block, up_blocks[i] = UpDecoderBlock2D (layers_per_block + 1
//            resnets, then nearest ×2 + conv except in the last block), GroupNorm + SiLU, conv_out(c₀ → C)
//
// Every GroupNorm has eps 1e-6; the resnets have no time embedding; the mid-block attention has one head
// of dim = channels. diffusers' Downsample2D pads (0, 1, 0, 1) before its padding-0 stride-2 conv, which is
// gpugen's conv padding (top 0, left 0, bottom 1, right 1).
import Foundation

/// AutoencoderKL's config.json (diffusers' field names and defaults).
public struct AutoencoderKLConfig: Equatable, Sendable {
  /// The class name in config.json.
  public static let className = "AutoencoderKL"
  /// The only down block type: DownEncoderBlock2D.
  public static let downBlockType = "DownEncoderBlock2D"
  /// The only up block type: UpDecoderBlock2D.
  public static let upBlockType = "UpDecoderBlock2D"

  /// Image channels in.
  public var inChannels = 3
  /// Image channels out (equal to `inChannels`: the VAE reconstructs its input).
  public var outChannels = 3
  /// One DownEncoderBlock2D per entry of `blockOutChannels`.
  public var downBlockTypes = [AutoencoderKLConfig.downBlockType]
  /// One UpDecoderBlock2D per entry of `blockOutChannels`.
  public var upBlockTypes = [AutoencoderKLConfig.upBlockType]
  /// Widths of the blocks, first (full resolution) to last.
  public var blockOutChannels = [64]
  /// Resnets per encoder block (the decoder's blocks have one more).
  public var layersPerBlock = 1
  /// The activation: only "silu".
  public var actFn = "silu"
  /// Latent channels.
  public var latentChannels = 4
  /// Groups of every GroupNorm.
  public var normNumGroups = 32
  /// Image side (a multiple of 2^(blocks − 1)).
  public var sampleSize = 32
  /// The factor pipelines scale latents by (not used by the model itself).
  public var scalingFactor = 0.18215
  /// The shift pipelines subtract from latents before scaling (not used by the model itself).
  public var shiftFactor: Double? = nil
  /// Per-channel latent means pipelines may use (not used by the model itself).
  public var latentsMean: [Double]? = nil
  /// Per-channel latent standard deviations pipelines may use (not used by the model itself).
  public var latentsStd: [Double]? = nil
  /// diffusers' hint to run the VAE in float32 under half precision (gpugen always computes in float32).
  public var forceUpcast = true
  /// Whether the 1×1 quant_conv follows the encoder.
  public var useQuantConv = true
  /// Whether the 1×1 post_quant_conv precedes the decoder.
  public var usePostQuantConv = true
  /// Whether the mid blocks have their attention layer.
  public var midBlockAddAttention = true

  /// diffusers' default config.
  public init() {}

  /// Bookkeeping keys diffusers writes that carry no meaning for the model.
  static let ignored: Set<String> = ["_diffusers_version", "_name_or_path"]

  /// Reads config.json; an unknown field or an unsupported value is an error naming the field.
  public init(json data: Data, source: String = "config.json") throws {
    guard let value = try? JSONValue(parsing: String(decoding: data, as: UTF8.self)), let dict = value.object
    else {
      throw ModelError.malformed(source, "not a JSON object")
    }
    func bad(_ key: String, _ why: String) -> ModelError { .unsupported(source, "\(key): \(why)") }
    func int(_ key: String, _ v: JSONValue) throws -> Int {
      if case .number(let d) = v, d == d.rounded(), Swift.abs(d) < 1e15 { return Int(d) }
      throw bad(key, "expected an integer, got \(v.summary)")
    }
    func double(_ key: String, _ v: JSONValue) throws -> Double {
      if case .number(let d) = v, d.isFinite { return d }
      throw bad(key, "expected a finite number, got \(v.summary)")
    }
    func bool(_ key: String, _ v: JSONValue) throws -> Bool {
      if case .bool(let b) = v { return b }
      throw bad(key, "expected true/false, got \(v.summary)")
    }
    func string(_ key: String, _ v: JSONValue) throws -> String {
      if case .string(let s) = v { return s }
      throw bad(key, "expected a string, got \(v.summary)")
    }
    func strings(_ key: String, _ v: JSONValue) throws -> [String] {
      guard case .array(let a) = v else { throw bad(key, "expected a list of strings, got \(v.summary)") }
      return try a.map { try string(key, $0) }
    }
    func ints(_ key: String, _ v: JSONValue) throws -> [Int] {
      guard case .array(let a) = v else { throw bad(key, "expected a list of integers, got \(v.summary)") }
      return try a.map { try int(key, $0) }
    }
    func doubles(_ key: String, _ v: JSONValue) throws -> [Double]? {
      if v == .null { return nil }
      guard case .array(let a) = v else {
        throw bad(key, "expected null or a list of numbers, got \(v.summary)")
      }
      return try a.map { try double(key, $0) }
    }

    for (key, v) in dict.sorted(by: { $0.key < $1.key }) {
      switch key {
      case _ where Self.ignored.contains(key): continue
      case "_class_name":
        guard v == .string(Self.className) else {
          throw bad(key, "expected \(Self.className), got \(v.summary)")
        }
      case "in_channels": inChannels = try int(key, v)
      case "out_channels": outChannels = try int(key, v)
      case "down_block_types": downBlockTypes = try strings(key, v)
      case "up_block_types": upBlockTypes = try strings(key, v)
      case "block_out_channels": blockOutChannels = try ints(key, v)
      case "layers_per_block": layersPerBlock = try int(key, v)
      case "act_fn": actFn = try string(key, v)
      case "latent_channels": latentChannels = try int(key, v)
      case "norm_num_groups": normNumGroups = try int(key, v)
      case "sample_size":
        if case .array = v {
          let s = try ints(key, v)
          guard s.count == 2, s[0] == s[1] else {
            throw bad(key, "only square images are supported, got \(s)")
          }
          sampleSize = s[0]
        } else {
          sampleSize = try int(key, v)
        }
      case "scaling_factor": scalingFactor = try double(key, v)
      case "shift_factor": shiftFactor = v == .null ? nil : try double(key, v)
      case "latents_mean": latentsMean = try doubles(key, v)
      case "latents_std": latentsStd = try doubles(key, v)
      case "force_upcast": forceUpcast = try bool(key, v)
      case "use_quant_conv": useQuantConv = try bool(key, v)
      case "use_post_quant_conv": usePostQuantConv = try bool(key, v)
      case "mid_block_add_attention": midBlockAddAttention = try bool(key, v)
      default: throw ModelError.unsupported(source, "unknown field \(key)")
      }
    }
    try validate(source: source)
  }

  /// Errors (naming the field) for values gpugen's AutoencoderKL does not support.
  public func validate(source: String = "AutoencoderKL config") throws {
    func bad(_ key: String, _ why: String) -> ModelError { .unsupported(source, "\(key): \(why)") }
    guard inChannels >= 1 else { throw bad("in_channels", "\(inChannels) must be positive") }
    guard outChannels == inChannels else {
      throw bad(
        "out_channels", "\(outChannels) differs from in_channels \(inChannels) (a VAE reconstructs its input)"
      )
    }
    guard !blockOutChannels.isEmpty, blockOutChannels.allSatisfy({ $0 > 0 }) else {
      throw bad("block_out_channels", "\(blockOutChannels) needs at least one positive width")
    }
    guard downBlockTypes.count == blockOutChannels.count else {
      throw bad(
        "down_block_types", "needs one entry per block_out_channels entry (\(blockOutChannels.count))")
    }
    if let t = downBlockTypes.first(where: { $0 != Self.downBlockType }) {
      throw bad("down_block_types", "block type \(t) (only \(Self.downBlockType) is supported)")
    }
    guard upBlockTypes.count == blockOutChannels.count else {
      throw bad("up_block_types", "needs one entry per block_out_channels entry (\(blockOutChannels.count))")
    }
    if let t = upBlockTypes.first(where: { $0 != Self.upBlockType }) {
      throw bad("up_block_types", "block type \(t) (only \(Self.upBlockType) is supported)")
    }
    guard layersPerBlock >= 1 else { throw bad("layers_per_block", "\(layersPerBlock) must be positive") }
    guard actFn == "silu" else { throw bad("act_fn", "\(actFn) (only silu is supported)") }
    guard latentChannels >= 1 else { throw bad("latent_channels", "\(latentChannels) must be positive") }
    guard normNumGroups >= 1, blockOutChannels.allSatisfy({ $0 % normNumGroups == 0 }) else {
      throw bad("norm_num_groups", "\(normNumGroups) does not divide every block width \(blockOutChannels)")
    }
    guard sampleSize >= 1, sampleSize % downsampleFactor == 0 else {
      throw bad(
        "sample_size", "\(sampleSize) must be a positive multiple of \(downsampleFactor) (2^(blocks − 1))")
    }
    // One image's widest activation must be countable (checked: a sample_size of 2^31 must not trap).
    let widest = Swift.max(blockOutChannels.max() ?? 1, inChannels)
    guard let values = checkedProduct([widest, sampleSize, sampleSize]), values <= Int(Int32.max) else {
      throw bad(
        "sample_size",
        "\(sampleSize) makes one image's \(widest)-channel activation larger than \(Int32.max) values")
    }
    guard scalingFactor.isFinite, scalingFactor != 0 else {
      throw bad("scaling_factor", "\(scalingFactor) must be a finite, non-zero number")
    }
    if let s = shiftFactor, !s.isFinite { throw bad("shift_factor", "\(s) must be finite") }
    for (key, list) in [("latents_mean", latentsMean), ("latents_std", latentsStd)] {
      if let list, list.count != latentChannels {
        throw bad(key, "has \(list.count) entries for \(latentChannels) latent channels")
      }
      if let v = list?.first(where: { !$0.isFinite || (key == "latents_std" && !($0 > 0)) }) {
        throw bad(key, "\(v) must be finite\(key == "latents_std" ? " and > 0" : "")")
      }
    }
  }

  /// How much the encoder shrinks each side: 2^(blocks − 1).
  public var downsampleFactor: Int { 1 << (blockOutChannels.count - 1) }

  /// The latent's side for a `sampleSize` image.
  public var latentSize: Int { sampleSize / downsampleFactor }

  /// The config as diffusers writes it (every field, under diffusers' names).
  public var diffusersJSON: [String: Any] {
    func orNull(_ v: Any?) -> Any { v ?? NSNull() }
    return [
      "_class_name": Self.className,
      "in_channels": inChannels,
      "out_channels": outChannels,
      "down_block_types": downBlockTypes,
      "up_block_types": upBlockTypes,
      "block_out_channels": blockOutChannels,
      "layers_per_block": layersPerBlock,
      "act_fn": actFn,
      "latent_channels": latentChannels,
      "norm_num_groups": normNumGroups,
      "sample_size": sampleSize,
      "scaling_factor": scalingFactor,
      "shift_factor": orNull(shiftFactor),
      "latents_mean": orNull(latentsMean),
      "latents_std": orNull(latentsStd),
      "force_upcast": forceUpcast,
      "use_quant_conv": useQuantConv,
      "use_post_quant_conv": usePostQuantConv,
      "mid_block_add_attention": midBlockAddAttention,
    ]
  }

  /// config.json as gpugen writes it (sorted keys, indented), which diffusers' AutoencoderKL reads.
  public func jsonData() throws -> Data {
    try JSONSerialization.data(withJSONObject: diffusersJSON, options: [.prettyPrinted, .sortedKeys])
  }
}

/// diffusers' AutoencoderKL (see the file header): parameters under diffusers' names, so its safetensors
/// weights load strictly and gpugen's saved folders load in diffusers.
public final class AutoencoderKL: Module, VariationalAutoencoder {
  /// The weights file in a model folder.
  public static let weightsFile = "diffusion_pytorch_model.safetensors"
  /// Epsilon of every GroupNorm (diffusers' VAE uses 1e-6 throughout).
  static let normEps: Float = 1e-6

  /// The architecture.
  public let config: AutoencoderKLConfig
  /// x → the 2·latent moments (before quant_conv).
  public let encoder: Encoder
  /// z (after post_quant_conv) → images.
  public let decoder: Decoder
  /// The 1×1 conv on the moments, when `use_quant_conv`.
  public let quantConv: Conv2d?
  /// The 1×1 conv on the latents, when `use_post_quant_conv`.
  public let postQuantConv: Conv2d?

  /// An AutoencoderKL on `device`, with PyTorch's default initialisation drawn from `seed` (nil: leave the
  /// parameters at their constants, for a model whose weights are loaded next).
  public init(config: AutoencoderKLConfig, seed: UInt64? = 0, on device: Device) throws {
    try config.validate()
    self.config = config
    let lc = config.latentChannels
    encoder = try Encoder(config, on: device)
    decoder = try Decoder(config, on: device)
    quantConv = config.useQuantConv ? try Conv2d(2 * lc, 2 * lc, kernelSize: 1, on: device) : nil
    postQuantConv = config.usePostQuantConv ? try Conv2d(lc, lc, kernelSize: 1, on: device) : nil
    super.init()
    child("encoder", encoder)
    child("decoder", decoder)
    if let quantConv { child("quant_conv", quantConv) }
    if let postQuantConv { child("post_quant_conv", postQuantConv) }
    if let seed { try initialize(seed: seed) }
  }

  /// (in_channels, sample_size, sample_size).
  public var imageShape: [Int] { [config.inChannels, config.sampleSize, config.sampleSize] }
  /// (latent_channels, sample_size / 2^(blocks − 1), same).
  public var latentShape: [Int] { [config.latentChannels, config.latentSize, config.latentSize] }
  /// A Gaussian with σ = 1 (the decoder's output is the mean).
  public var likelihood: VAELikelihood { .gaussian(sigma: 1) }
  /// Images live in [-1, 1].
  public var dataRange: ClosedRange<Float> { -1...1 }
  /// None: σ is fixed.
  public var logSigma: Tensor? { nil }

  /// The posterior's mean and log-variance (clamped to [-30, 20]) for images x (N, C, H, W) in [-1, 1].
  public func encode(_ x: Tensor) throws -> (mean: Tensor, logVariance: Tensor) {
    try checkImages(x.shape)
    var moments = try encoder(x)
    if let quantConv { moments = try quantConv(moments) }
    let lc = config.latentChannels
    let mean = try moments.slice(axis: 1, start: 0, end: lc)
    let logVariance = try moments.slice(axis: 1, start: lc, end: 2 * lc).clamp(min: -30, max: 20)
    return (mean, logVariance)
  }

  /// The decoder's output (image means, not clamped) for latents z (N, latent_channels, h, w).
  public func decode(_ z: Tensor) throws -> Tensor {
    try checkLatents(z.shape)
    return try decoder(try postQuantConv.map { try $0(z) } ?? z)
  }

  /// Loads a folder written by diffusers' `save_pretrained(..., safe_serialization=True)` or by
  /// `save(to:)`: config.json and diffusion_pytorch_model.safetensors. Strict: a missing, misshapen or
  /// unused weight is an error naming it.
  public static func load(from folder: URL, device: Device) throws -> AutoencoderKL {
    let configURL = folder.appendingPathComponent("config.json")
    guard let data = try? Data(contentsOf: configURL) else { throw ModelError.missing(configURL.path) }
    let config = try AutoencoderKLConfig(json: data, source: configURL.path)
    let weightsURL = folder.appendingPathComponent(weightsFile)
    guard FileManager.default.fileExists(atPath: weightsURL.path) else {
      if FileManager.default.fileExists(
        atPath: folder.appendingPathComponent("diffusion_pytorch_model.bin").path)
      {
        throw ModelError.unsupported(
          folder.path, "PyTorch .bin weights; save the model with safe_serialization=True")
      }
      throw ModelError.missing(weightsURL.path)
    }
    let file: SafeTensorsFile
    do { file = try SafeTensors.read(contentsOf: weightsURL) } catch {
      throw ModelError.malformed(weightsURL.path, "\(error)")
    }
    let model = try AutoencoderKL(config: config, seed: nil, on: device)
    try model.load(file.tensors)
    return model
  }

  /// Writes config.json and diffusion_pytorch_model.safetensors (float32) into `folder` (created if needed),
  /// a folder diffusers' `AutoencoderKL.from_pretrained` loads.
  public func save(to folder: URL) throws {
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try config.jsonData().write(to: folder.appendingPathComponent("config.json"), options: .atomic)
    try save(to: folder.appendingPathComponent(Self.weightsFile), dtype: .f32, metadata: ["format": "pt"])
  }
}

extension AutoencoderKL {
  /// Modules named "0", "1", … (`nn.ModuleList`).
  final class List<Element: Module>: Module {
    /// The modules, in order.
    let items: [Element]
    /// A list of `items`.
    init(_ items: [Element]) {
      self.items = items
      super.init()
      for (i, m) in items.enumerated() { child("\(i)", m) }
    }
  }

  /// The GroupNorm of the VAE: `groups` groups, eps 1e-6.
  static func norm(_ channels: Int, _ groups: Int, on device: Device) throws -> GroupNorm {
    try GroupNorm(groups: groups, channels: channels, eps: normEps, on: device)
  }

  /// diffusers' ResnetBlock2D without a time embedding:
  /// conv2(SiLU(norm2(conv1(SiLU(norm1(x)))))) + shortcut(x), the shortcut a 1×1 conv when the width changes.
  final class ResnetBlock: Module {
    let norm1: GroupNorm, conv1: Conv2d, norm2: GroupNorm, conv2: Conv2d
    let convShortcut: Conv2d?

    /// A block from `cin` to `cout` channels.
    init(_ cin: Int, _ cout: Int, groups: Int, on device: Device) throws {
      norm1 = try AutoencoderKL.norm(cin, groups, on: device)
      conv1 = try Conv2d(cin, cout, kernelSize: 3, padding: 1, on: device)
      norm2 = try AutoencoderKL.norm(cout, groups, on: device)
      conv2 = try Conv2d(cout, cout, kernelSize: 3, padding: 1, on: device)
      convShortcut = cin == cout ? nil : try Conv2d(cin, cout, kernelSize: 1, on: device)
      super.init()
      child("norm1", norm1)
      child("conv1", conv1)
      child("norm2", norm2)
      child("conv2", conv2)
      if let convShortcut { child("conv_shortcut", convShortcut) }
    }

    /// The block (the residual sum fused into conv2 where the backend can).
    func callAsFunction(_ x: Tensor) throws -> Tensor {
      let h = try conv1(try norm1(x, silu: true))
      return try conv2(try norm2(h, silu: true), residual: try convShortcut.map { try $0(x) } ?? x)
    }
  }

  /// The mid block's self-attention: one head of dim = channels over the H·W positions, after a GroupNorm,
  /// plus the input.
  final class Attention: Module {
    let groupNorm: GroupNorm
    let toQ: Linear, toK: Linear, toV: Linear
    let toOut: List<Linear>

    /// Attention over `channels` channels.
    init(_ channels: Int, groups: Int, on device: Device) throws {
      groupNorm = try AutoencoderKL.norm(channels, groups, on: device)
      toQ = try Linear(channels, channels, on: device)
      toK = try Linear(channels, channels, on: device)
      toV = try Linear(channels, channels, on: device)
      toOut = List([try Linear(channels, channels, on: device)])
      super.init()
      child("group_norm", groupNorm)
      child("to_q", toQ)
      child("to_k", toK)
      child("to_v", toV)
      child("to_out", toOut)
    }

    /// x + attention(norm(x)) for x (N, C, H, W).
    func callAsFunction(_ x: Tensor) throws -> Tensor {
      let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
      let tokens = try groupNorm(x).reshaped([n, c, h * w]).permuted([0, 2, 1])  // (N, L, C)
      let o = try Tensor.attention(query: try toQ(tokens), key: try toK(tokens), value: try toV(tokens))
      return try toOut.items[0](o).permuted([0, 2, 1]).reshaped([n, c, h, w]) + x
    }
  }

  /// diffusers' Downsample2D with padding 0: pad (0, 1, 0, 1), then a 3×3 stride-2 conv.
  final class Downsample: Module {
    let conv: Conv2d
    /// A downsampler over `channels` channels.
    init(_ channels: Int, on device: Device) throws {
      conv = try Conv2d(
        channels, channels, kernelSize: (3, 3), stride: (2, 2), padding: (0, 0, 1, 1), on: device)
      super.init()
      child("conv", conv)
    }
    /// The halved feature map.
    func callAsFunction(_ x: Tensor) throws -> Tensor { try conv(x) }
  }

  /// diffusers' Upsample2D: nearest ×2, then a 3×3 conv.
  final class Upsample: Module {
    let conv: Conv2d
    /// An upsampler over `channels` channels.
    init(_ channels: Int, on device: Device) throws {
      conv = try Conv2d(channels, channels, kernelSize: 3, padding: 1, on: device)
      super.init()
      child("conv", conv)
    }
    /// The doubled feature map.
    func callAsFunction(_ x: Tensor) throws -> Tensor { try conv(try x.upsampleNearest2x()) }
  }

  /// DownEncoderBlock2D (resnets, then a Downsample) or UpDecoderBlock2D (resnets, then an Upsample).
  final class Block: Module {
    let resnets: List<ResnetBlock>
    let downsampler: Downsample?, upsampler: Upsample?

    /// A block of `layers` resnets from `cin` to `cout` channels, with an optional resampler.
    init(
      _ cin: Int, _ cout: Int, layers: Int, groups: Int, downsample: Bool, upsample: Bool, on device: Device
    ) throws {
      resnets = List(
        try (0..<layers).map { try ResnetBlock($0 == 0 ? cin : cout, cout, groups: groups, on: device) })
      downsampler = downsample ? try Downsample(cout, on: device) : nil
      upsampler = upsample ? try Upsample(cout, on: device) : nil
      super.init()
      child("resnets", resnets)
      if let downsampler { child("downsamplers", List([downsampler])) }
      if let upsampler { child("upsamplers", List([upsampler])) }
    }

    /// The block.
    func callAsFunction(_ x: Tensor) throws -> Tensor {
      var h = x
      for r in resnets.items { h = try r(h) }
      if let downsampler { h = try downsampler(h) }
      if let upsampler { h = try upsampler(h) }
      return h
    }
  }

  /// UNetMidBlock2D without a time embedding: resnet, attention (optional), resnet.
  final class MidBlock: Module {
    let resnets: List<ResnetBlock>
    let attention: Attention?

    /// A mid block over `channels` channels.
    init(_ channels: Int, groups: Int, attention: Bool, on device: Device) throws {
      resnets = List(try (0..<2).map { _ in try ResnetBlock(channels, channels, groups: groups, on: device) })
      self.attention = attention ? try Attention(channels, groups: groups, on: device) : nil
      super.init()
      if let a = self.attention { child("attentions", List([a])) }
      child("resnets", resnets)
    }

    /// The block.
    func callAsFunction(_ x: Tensor) throws -> Tensor {
      var h = try resnets.items[0](x)
      if let attention { h = try attention(h) }
      return try resnets.items[1](h)
    }
  }

  /// The encoder: images (N, C, H, W) → moments (N, 2·latent, h, w).
  public final class Encoder: Module {
    let convIn: Conv2d
    let downBlocks: List<Block>
    let midBlock: MidBlock
    let convNormOut: GroupNorm
    let convOut: Conv2d

    init(_ c: AutoencoderKLConfig, on device: Device) throws {
      let ch = c.blockOutChannels, g = c.normNumGroups
      convIn = try Conv2d(c.inChannels, ch[0], kernelSize: 3, padding: 1, on: device)
      downBlocks = List(
        try ch.indices.map { i in
          try Block(
            ch[Swift.max(i - 1, 0)], ch[i], layers: c.layersPerBlock, groups: g, downsample: i < ch.count - 1,
            upsample: false, on: device)
        })
      midBlock = try MidBlock(ch[ch.count - 1], groups: g, attention: c.midBlockAddAttention, on: device)
      convNormOut = try AutoencoderKL.norm(ch[ch.count - 1], g, on: device)
      convOut = try Conv2d(ch[ch.count - 1], 2 * c.latentChannels, kernelSize: 3, padding: 1, on: device)
      super.init()
      child("conv_in", convIn)
      child("down_blocks", downBlocks)
      child("mid_block", midBlock)
      child("conv_norm_out", convNormOut)
      child("conv_out", convOut)
    }

    /// The moments (mean and log-variance stacked on the channel axis, before quant_conv).
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
      var h = try convIn(x)
      for b in downBlocks.items { h = try b(h) }
      h = try midBlock(h)
      return try convOut(try convNormOut(h, silu: true))
    }
  }

  /// The decoder: latents (N, latent, h, w), after post_quant_conv → images (N, C, H, W).
  public final class Decoder: Module {
    let convIn: Conv2d
    let midBlock: MidBlock
    let upBlocks: List<Block>
    let convNormOut: GroupNorm
    let convOut: Conv2d

    init(_ c: AutoencoderKLConfig, on device: Device) throws {
      let rev = Array(c.blockOutChannels.reversed()), g = c.normNumGroups
      convIn = try Conv2d(c.latentChannels, rev[0], kernelSize: 3, padding: 1, on: device)
      midBlock = try MidBlock(rev[0], groups: g, attention: c.midBlockAddAttention, on: device)
      upBlocks = List(
        try rev.indices.map { i in
          try Block(
            rev[Swift.max(i - 1, 0)], rev[i], layers: c.layersPerBlock + 1, groups: g, downsample: false,
            upsample: i < rev.count - 1, on: device)
        })
      convNormOut = try AutoencoderKL.norm(rev[rev.count - 1], g, on: device)
      convOut = try Conv2d(rev[rev.count - 1], c.outChannels, kernelSize: 3, padding: 1, on: device)
      super.init()
      child("conv_in", convIn)
      child("mid_block", midBlock)
      child("up_blocks", upBlocks)
      child("conv_norm_out", convNormOut)
      child("conv_out", convOut)
    }

    /// The images (the decoder's raw output, not clamped).
    public func callAsFunction(_ z: Tensor) throws -> Tensor {
      var h = try midBlock(try convIn(z))
      for b in upBlocks.items { h = try b(h) }
      return try convOut(try convNormOut(h, silu: true))
    }
  }
}
