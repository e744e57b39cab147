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
  /// True when the last class embedding is the null label of classifier-free guidance (diffusers'
  /// convention: `num_class_embeds` = classes + 1); stored as `_gpugen_null_class` in config.json, a
  /// private field diffusers ignores.
  public var hasNullClass = false
  public var timeEmbeddingDim: Int? = nil
  /// False when `mid_block_type` is null (no mid block).
  public var hasMidBlock = true

  public init() {}

  /// The null label (`num_class_embeds − 1`) of a model trained with class dropout, else nil.
  public var nullClassLabel: Int? { hasNullClass ? numClassEmbeds.map { $0 - 1 } : nil }

  /// The real classes: `num_class_embeds` less the null label (nil for an unconditional model).
  public var realClassCount: Int? { numClassEmbeds.map { hasNullClass ? $0 - 1 : $0 } }

  /// Channels of the time embedding (4 × the first block's channels).
  public var timeEmbedDim: Int { timeEmbeddingDim ?? blockOutChannels[0] * 4 }

  static let downTypes: Set = ["DownBlock2D", "AttnDownBlock2D"]
  static let upTypes: Set = ["UpBlock2D", "AttnUpBlock2D"]

  /// Fields diffusers writes that carry no meaning for sampling.
  static let ignored: Set = ["_class_name", "_diffusers_version", "_name_or_path", "num_train_timesteps"]

  /// Parses config.json; any unsupported field, value or block type is an error naming it.
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
      if case .number(let d) = v { return d }
      throw bad(key, "expected a number, got \(v.summary)")
    }
    func bool(_ key: String, _ v: JSONValue) throws -> Bool {
      if case .bool(let b) = v { return b }
      throw bad(key, "expected true/false, got \(v.summary)")
    }
    func strings(_ key: String, _ v: JSONValue) throws -> [String] {
      if case .array(let a) = v {
        return try a.map {
          if case .string(let s) = $0 { return s }
          throw bad(key, "expected a list of strings, got \(v.summary)")
        }
      }
      throw bad(key, "expected a list of strings, got \(v.summary)")
    }
    func ints(_ key: String, _ v: JSONValue) throws -> [Int] {
      guard case .array(let a) = v else { throw bad(key, "expected a list of integers, got \(v.summary)") }
      return try a.map { try int(key, $0) }
    }
    /// The field must be null/absent or equal to the one value gpugen implements.
    func only(_ key: String, _ v: JSONValue, _ allowed: String) throws {
      if v == .null || v == .string(allowed) { return }
      throw bad(key, "only \(allowed) is supported, got \(v.summary)")
    }

    for (key, v) in dict {
      switch key {
      case _ where Self.ignored.contains(key): continue
      case "sample_size":
        if case .array = v {
          let s = try ints(key, v)
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
      case "attention_head_dim": attentionHeadDim = v == .null ? nil : try int(key, v)
      case "norm_num_groups": normNumGroups = try int(key, v)
      case "attn_norm_num_groups": attnNormNumGroups = v == .null ? nil : try int(key, v)
      case "norm_eps": normEps = try double(key, v)
      case "resnet_time_scale_shift": try only(key, v, "default")
      case "add_attention": addAttention = try bool(key, v)
      case "class_embed_type":
        if v != .null { throw bad(key, "only null (a class-embedding table) is supported, got \(v.summary)") }
      case "num_class_embeds": numClassEmbeds = v == .null ? nil : try int(key, v)
      case "_gpugen_null_class": hasNullClass = try bool(key, v)
      case "time_embedding_dim": timeEmbeddingDim = v == .null ? nil : try int(key, v)
      case "mid_block_type":
        if v == .null { hasMidBlock = false } else { try only(key, v, "UNetMidBlock2D") }
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
    // One image's widest activation must be countable in the kernels' 32-bit indices (checked arithmetic: a
    // sample_size of 2^31 must not trap), which also bounds what a batch of one allocates.
    let widest = Swift.max(blockOutChannels.max() ?? 1, inChannels, outChannels)
    guard let values = checkedProduct([widest, sampleSize, sampleSize]), values <= Int(Int32.max) else {
      throw bad(
        "sample_size: \(sampleSize) makes one image's \(widest)-channel activation larger than \(Int32.max) values"
      )
    }
    guard normNumGroups >= 1 else { throw bad("norm_num_groups: \(normNumGroups) must be positive") }
    for c in blockOutChannels where c % normNumGroups != 0 {
      throw bad("norm_num_groups \(normNumGroups) does not divide block channels \(c)")
    }
    if let g = attnNormNumGroups {
      guard g >= 1 else { throw bad("attn_norm_num_groups: \(g) must be positive") }
      for c in blockOutChannels where c % g != 0 {
        throw bad("attn_norm_num_groups \(g) does not divide block channels \(c)")
      }
    }
    guard normEps > 0, normEps.isFinite else { throw bad("norm_eps: \(normEps) must be a finite number > 0") }
    guard (0...1).contains(dropout) else { throw bad("dropout: \(dropout) must be in [0, 1]") }
    guard freqShift.isFinite else { throw bad("freq_shift: \(freqShift) must be finite") }
    guard midBlockScaleFactor.isFinite else {
      throw bad("mid_block_scale_factor: \(midBlockScaleFactor) must be finite")
    }
    if let d = timeEmbeddingDim, d <= 0 { throw bad("time_embedding_dim: \(d) must be positive") }
    if let h = attentionHeadDim, h <= 0 { throw bad("attention_head_dim must be positive") }
    if let n = numClassEmbeds, n <= 0 { throw bad("num_class_embeds must be positive") }
    if hasNullClass && (numClassEmbeds ?? 0) < 2 {
      throw bad("_gpugen_null_class needs num_class_embeds ≥ 2 (the real classes and the null label)")
    }
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
