// Writing a UNet2DConfig as the config.json diffusers' UNet2DModel.from_pretrained reads.
import Foundation

extension UNet2DConfig {
  /// The config as diffusers writes it (every field gpugen supports, under diffusers' names).
  public var diffusersJSON: [String: Any] {
    var d: [String: Any] = [
      "_class_name": "UNet2DModel",
      "sample_size": sampleSize,
      "in_channels": inChannels,
      "out_channels": outChannels,
      "center_input_sample": centerInputSample,
      "time_embedding_type": "positional",
      "flip_sin_to_cos": flipSinToCos,
      "freq_shift": freqShift == freqShift.rounded() ? Int(freqShift) as Any : freqShift as Any,
      "down_block_types": downBlockTypes,
      "up_block_types": upBlockTypes,
      "block_out_channels": blockOutChannels,
      "layers_per_block": layersPerBlock,
      "mid_block_scale_factor": midBlockScaleFactor,
      "downsample_padding": downsamplePadding,
      "downsample_type": "conv",
      "upsample_type": "conv",
      "dropout": dropout,
      "act_fn": "silu",
      "attention_head_dim": attentionHeadDim.map { $0 as Any } ?? NSNull(),
      "norm_num_groups": normNumGroups,
      "attn_norm_num_groups": attnNormNumGroups.map { $0 as Any } ?? NSNull(),
      "norm_eps": normEps,
      "resnet_time_scale_shift": "default",
      "add_attention": addAttention,
      "class_embed_type": NSNull(),
      "num_class_embeds": numClassEmbeds.map { $0 as Any } ?? NSNull(),
      "time_embedding_dim": timeEmbeddingDim.map { $0 as Any } ?? NSNull(),
      "mid_block_type": hasMidBlock ? "UNetMidBlock2D" as Any : NSNull(),
    ]
    if hasNullClass { d["_gpugen_null_class"] = true }
    d["num_train_timesteps"] = NSNull()
    return d
  }

  /// `diffusersJSON` serialised (sorted keys, indented), as written to config.json.
  public func diffusersJSONData() throws -> Data {
    try JSONSerialization.data(withJSONObject: diffusersJSON, options: [.prettyPrinted, .sortedKeys])
  }
}
