// The subset of diffusers' UNet2DModel config.json that gpugen supports, with errors naming the rest.
import Foundation

/// A diffusers `UNet2DModel` configuration.
public struct UNet2DConfig: Equatable, Sendable {
  public var sampleSize: Int = 64
  public var inChannels: Int = 3
  public var outChannels: Int = 3
  public var centerInputSample = false
  public var flipSinToCos = true
  public var freqShift: Double = 0
  public var downBlockTypes = ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"]
  public var upBlockTypes = ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"]
  public var blockOutChannels = [224, 448, 672, 896]
  public var layersPerBlock = 2
  public var midBlockScaleFactor: Double = 1
  public var downsamplePadding = 1
  public var dropout: Double = 0
  public var attentionHeadDim: Int? = 8
  public var normNumGroups = 32
  public var attnNormNumGroups: Int? = nil
  public var normEps: Double = 1e-5
  public var addAttention = true
  public var numClassEmbeds: Int? = nil
  public var timeEmbeddingDim: Int? = nil
  /// False when `mid_block_type` is null (no mid block).
  public var hasMidBlock = true

  public init() {}

  /// Channels of the time embedding (4 × the first block's channels).
  public var timeEmbedDim: Int { timeEmbeddingDim ?? blockOutChannels[0] * 4 }

  static let downTypes: Set = ["DownBlock2D", "AttnDownBlock2D"]
  static let upTypes: Set = ["UpBlock2D", "AttnUpBlock2D"]

  /// Fields diffusers writes that carry no meaning for sampling.
  static let ignored: Set = ["_class_name", "_diffusers_version", "_name_or_path", "num_train_timesteps"]

  /// Parses config.json; any unsupported field, value or block type is an error naming it.
  public init(json data: Data, source: String = "config.json") throws {
    guard let obj = try? JSONSerialization.jsonObject(with: data), let dict = obj as? [String: Any] else {
      throw ModelError.malformed(source, "not a JSON object")
    }
    func bad(_ key: String, _ why: String) -> ModelError { .unsupported(source, "\(key): \(why)") }
    func int(_ key: String, _ v: Any) throws -> Int {
      if let n = v as? NSNumber, n.doubleValue == n.doubleValue.rounded(), !(v is Bool) { return n.intValue }
      throw bad(key, "expected an integer, got \(v)")
    }
    func double(_ key: String, _ v: Any) throws -> Double {
      if let n = v as? NSNumber, !(v is Bool) { return n.doubleValue }
      throw bad(key, "expected a number, got \(v)")
    }
    func bool(_ key: String, _ v: Any) throws -> Bool {
      if let b = v as? Bool { return b }
      throw bad(key, "expected true/false, got \(v)")
    }
    func strings(_ key: String, _ v: Any) throws -> [String] {
      if let a = v as? [String] { return a }
      throw bad(key, "expected a list of strings, got \(v)")
    }
    func ints(_ key: String, _ v: Any) throws -> [Int] {
      guard let a = v as? [Any] else { throw bad(key, "expected a list of integers, got \(v)") }
      return try a.map { try int(key, $0) }
    }
    /// The field must be null/absent or equal to the one value gpugen implements.
    func only(_ key: String, _ v: Any, _ allowed: String) throws {
      if v is NSNull { return }
      if let s = v as? String, s == allowed { return }
      throw bad(key, "only \(allowed) is supported, got \(v)")
    }

    for (key, v) in dict {
      switch key {
      case _ where Self.ignored.contains(key): continue
      case "sample_size":
        if let a = v as? [Any] {
          let s = try a.map { try int(key, $0) }
          guard s.count == 2, s[0] == s[1] else {
            throw bad(key, "only square samples are supported, got \(s)")
          }
          sampleSize = s[0]
        } else {
          sampleSize = try int(key, v)
        }
      case "in_channels": inChannels = try int(key, v)
      case "out_channels": outChannels = try int(key, v)
      case "center_input_sample": centerInputSample = try bool(key, v)
      case "time_embedding_type": try only(key, v, "positional")
      case "flip_sin_to_cos": flipSinToCos = try bool(key, v)
      case "freq_shift": freqShift = try double(key, v)
      case "down_block_types": downBlockTypes = try strings(key, v)
      case "up_block_types": upBlockTypes = try strings(key, v)
      case "block_out_channels": blockOutChannels = try ints(key, v)
      case "layers_per_block": layersPerBlock = try int(key, v)
      case "mid_block_scale_factor": midBlockScaleFactor = try double(key, v)
      case "downsample_padding": downsamplePadding = try int(key, v)
      case "downsample_type", "upsample_type": try only(key, v, "conv")
      case "dropout": dropout = try double(key, v)
      case "act_fn": try only(key, v, "silu")
      case "attention_head_dim": attentionHeadDim = v is NSNull ? nil : try int(key, v)
      case "norm_num_groups": normNumGroups = try int(key, v)
      case "attn_norm_num_groups": attnNormNumGroups = v is NSNull ? nil : try int(key, v)
      case "norm_eps": normEps = try double(key, v)
      case "resnet_time_scale_shift": try only(key, v, "default")
      case "add_attention": addAttention = try bool(key, v)
      case "class_embed_type":
        if !(v is NSNull) { throw bad(key, "only null (a class-embedding table) is supported, got \(v)") }
      case "num_class_embeds": numClassEmbeds = v is NSNull ? nil : try int(key, v)
      case "time_embedding_dim": timeEmbeddingDim = v is NSNull ? nil : try int(key, v)
      case "mid_block_type":
        if v is NSNull { hasMidBlock = false } else { try only(key, v, "UNetMidBlock2D") }
      default: throw ModelError.unsupported(source, "unknown field \(key)")
      }
    }
    try validate(source)
  }

  func validate(_ source: String) throws {
    func bad(_ why: String) -> ModelError { .unsupported(source, why) }
    guard !blockOutChannels.isEmpty, blockOutChannels.allSatisfy({ $0 > 0 }) else {
      throw bad("block_out_channels must be positive")
    }
    guard downBlockTypes.count == blockOutChannels.count, upBlockTypes.count == blockOutChannels.count else {
      throw bad("down_block_types and up_block_types need one entry per block_out_channels entry")
    }
    for t in downBlockTypes where !Self.downTypes.contains(t) {
      throw bad("down block type \(t) (supported: DownBlock2D, AttnDownBlock2D)")
    }
    for t in upBlockTypes where !Self.upTypes.contains(t) {
      throw bad("up block type \(t) (supported: UpBlock2D, AttnUpBlock2D)")
    }
    guard layersPerBlock >= 1, inChannels >= 1, outChannels >= 1, sampleSize >= 1 else {
      throw bad("layers_per_block, in_channels, out_channels and sample_size must be positive")
    }
    for c in blockOutChannels where c % normNumGroups != 0 {
      throw bad("norm_num_groups \(normNumGroups) does not divide block channels \(c)")
    }
    if let h = attentionHeadDim, h <= 0 { throw bad("attention_head_dim must be positive") }
    if let n = numClassEmbeds, n <= 0 { throw bad("num_class_embeds must be positive") }
  }
}

/// Errors loading or running a model.
public enum ModelError: Error, CustomStringConvertible, Equatable {
  /// A required file is missing.
  case missing(String)
  /// A file exists but is malformed.
  case malformed(String, String)
  /// A config uses a field, value or block type gpugen does not support.
  case unsupported(String, String)
  /// A weight is missing or has the wrong shape.
  case weight(String, String)
  /// Invalid input to a model call.
  case input(String)

  public var description: String {
    switch self {
    case .missing(let what): return "missing \(what)"
    case .malformed(let file, let why): return "malformed \(file): \(why)"
    case .unsupported(let file, let why): return "unsupported in \(file): \(why)"
    case .weight(let name, let why): return "weight \(name): \(why)"
    case .input(let why): return why
    }
  }
}
