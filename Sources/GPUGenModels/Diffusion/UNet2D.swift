// A denoiser that is architecture- and weight-compatible with diffusers' UNet2DModel.
import Foundation

/// Host-side weights by diffusers parameter name: (shape, row-major Float32 values). The second
/// argument is the shape the config expects (weights read from a file ignore it).
public typealias WeightLookup = (_ name: String, _ expectedShape: [Int]) -> (shape: [Int], values: [Float])?

/// Loads parameters onto a device by name, checking shapes and recording which names were used.
final class ParameterLoader {
  let lookup: WeightLookup
  let device: Device
  var used: Set<String> = []
  /// Every parameter loaded, by its canonical (current diffusers) name, in creation order.
  var loaded: [(name: String, tensor: Tensor)] = []

  init(_ lookup: @escaping WeightLookup, device: Device) {
    self.lookup = lookup
    self.device = device
  }

  /// The tensor `name` (or the first of its aliases present), which must have `shape`.
  func load(_ name: String, _ shape: [Int], aliases: [String] = []) throws -> Tensor {
    for n in [name] + aliases {
      guard let w = lookup(n, shape) else { continue }
      guard w.shape == shape else {
        throw ModelError.weight(n, "shape \(w.shape) does not match the config's \(shape)")
      }
      if let i = w.values.firstIndex(where: { !$0.isFinite }) {
        throw ModelError.weight(n, "holds \(w.values[i]) at flat index \(i); weights must be finite")
      }
      used.insert(n)
      let t = try Tensor(w.values, shape: shape, on: device)
      loaded.append((name, t))
      return t
    }
    throw ModelError.weight(name, "missing from the weights file")
  }
}

/// A diffusers ResnetBlock2D with a time-embedding projection: norm1, conv1, time_emb_proj, norm2, conv2,
/// conv_shortcut (when the widths differ).
final class UNetResnet: Module {
  let norm1: GroupNorm, conv1: Conv2d, timeProj: Linear, norm2: GroupNorm, conv2: Conv2d, shortcut: Conv2d?
  let outputScale: Float

  init(
    norm1: GroupNorm, conv1: Conv2d, timeProj: Linear, norm2: GroupNorm, conv2: Conv2d, shortcut: Conv2d?,
    outputScale: Float
  ) {
    (self.norm1, self.conv1, self.timeProj, self.norm2, self.conv2) = (norm1, conv1, timeProj, norm2, conv2)
    (self.shortcut, self.outputScale) = (shortcut, outputScale)
    super.init()
    child("norm1", norm1)
    child("conv1", conv1)
    child("time_emb_proj", timeProj)
    child("norm2", norm2)
    child("conv2", conv2)
    if let shortcut { child("conv_shortcut", shortcut) }
  }

  /// h = conv1(…) + temb, y = shortcut(x) + conv2(…): both additions are fused into the convolutions where the
  /// backend can (inference on the CPU).
  func callAsFunction(_ x: Tensor, _ embAct: Tensor) throws -> Tensor {
    let t = try timeProj(embAct)
    var h = try conv1(try norm1(x, silu: true), imageBias: t)
    h = try conv2(try norm2(h, silu: true), residual: try shortcut.map { try $0(x) } ?? x)
    return outputScale != 1 ? try h / outputScale : h
  }
}

/// A diffusers Attention block (group_norm, to_q, to_k, to_v, to_out.0) over the pixels of a feature map.
final class UNetAttention: Module {
  let norm: GroupNorm, q: Linear, k: Linear, v: Linear, out: Linear
  let heads: Int, headDim: Int, outputScale: Float

  init(
    norm: GroupNorm, q: Linear, k: Linear, v: Linear, out: Linear, heads: Int, headDim: Int,
    outputScale: Float
  ) {
    (self.norm, self.q, self.k, self.v, self.out) = (norm, q, k, v, out)
    (self.heads, self.headDim, self.outputScale) = (heads, headDim, outputScale)
    super.init()
    child("group_norm", norm)
    child("to_q", q)
    child("to_k", k)
    child("to_v", v)
    child("to_out", ModuleList([out]))
  }

  func callAsFunction(_ x: Tensor) throws -> Tensor {
    let (n, c, hgt, wid) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let l = hgt * wid
    let tokens = try norm(x, silu: false).reshaped([n, c, l]).permuted([0, 2, 1])  // (N, L, C)
    func split(_ t: Tensor) throws -> Tensor {
      try t.reshaped([n, l, heads, headDim]).permuted([0, 2, 1, 3]).reshaped([n * heads, l, headDim])
    }
    let o = try Tensor.attention(
      query: try split(try q(tokens)), key: try split(try k(tokens)), value: try split(try v(tokens))
    )
    .reshaped([n, heads, l, headDim]).permuted([0, 2, 1, 3]).reshaped([n, l, heads * headDim])
    let proj = try out(o).permuted([0, 2, 1]).reshaped([n, c, hgt, wid])
    var y = try proj + x
    if outputScale != 1 { y = try y / outputScale }
    return y
  }
}

/// A down, mid or up block: resnets, attentions (one after each resnet, or none) and a resampling conv
/// (`downsamplers.0.conv` / `upsamplers.0.conv`).
final class UNetBlock: Module {
  let resnets: [UNetResnet]
  let attentions: [UNetAttention]
  let resample: Conv2d?

  init(resnets: [UNetResnet], attentions: [UNetAttention], resample: Conv2d?, resampleName: String?) {
    (self.resnets, self.attentions, self.resample) = (resnets, attentions, resample)
    super.init()
    child("resnets", ModuleList(resnets))
    if !attentions.isEmpty { child("attentions", ModuleList(attentions)) }
    if let resample, let resampleName {
      let holder = Module()
      holder.child("conv", resample)
      child(resampleName, ModuleList([holder]))
    }
  }
}

/// The UNet2DModel denoiser on the Module framework: ε(x, t[, class]) or v / x₀ depending on the training
/// objective. Its module tree and parameter names are diffusers' (conv_in, time_embedding.linear_1, …).
public final class UNet2D: Module {
  /// The architecture.
  public let config: UNet2DConfig
  /// The device holding the weights.
  public let device: Device

  let convIn: Conv2d
  let time1: Linear, time2: Linear
  let classTable: Tensor?
  let downs: [UNetBlock]
  let mid: UNetBlock?
  let ups: [UNetBlock]
  let normOut: GroupNorm
  let convOut: Conv2d
  /// Every parameter by its diffusers name, in creation order (the tensors the forward pass reads, so
  /// updating them in place updates the model).
  public let parameters: [(name: String, tensor: Tensor)]

  /// Builds the network from `config`, loading every parameter through `weights` (diffusers names).
  /// Missing, misshapen or unexpected weights are errors naming the weight.
  public init(config: UNet2DConfig, weights: @escaping WeightLookup, names: [String], device: Device) throws {
    self.config = config
    self.device = device
    let p = ParameterLoader(weights, device: device)
    let c = config
    let eps = Float(c.normEps), groups = c.normNumGroups
    let temb = c.timeEmbedDim

    func conv(_ name: String, _ cin: Int, _ cout: Int, k: Int = 3, stride: Int = 1, pad: Int = 1) throws
      -> Conv2d
    {
      Conv2d(
        weight: try p.load("\(name).weight", [cout, cin, k, k]), bias: try p.load("\(name).bias", [cout]),
        stride: (stride, stride), padding: (pad, pad, pad, pad))
    }
    func norm(_ name: String, _ ch: Int, groups g: Int = groups, aliases: [String] = []) throws -> GroupNorm {
      GroupNorm(
        groups: g, weight: try p.load("\(name).weight", [ch], aliases: aliases.map { "\($0).weight" }),
        bias: try p.load("\(name).bias", [ch], aliases: aliases.map { "\($0).bias" }), eps: eps)
    }
    func linear(_ name: String, _ cin: Int, _ cout: Int, aliases: [String] = []) throws -> Linear {
      Linear(
        weight: try p.load("\(name).weight", [cout, cin], aliases: aliases.map { "\($0).weight" }),
        bias: try p.load("\(name).bias", [cout], aliases: aliases.map { "\($0).bias" }))
    }
    func resnet(_ name: String, _ cin: Int, _ cout: Int, scale: Double = 1) throws -> UNetResnet {
      UNetResnet(
        norm1: try norm("\(name).norm1", cin), conv1: try conv("\(name).conv1", cin, cout),
        timeProj: try linear("\(name).time_emb_proj", temb, cout), norm2: try norm("\(name).norm2", cout),
        conv2: try conv("\(name).conv2", cout, cout),
        shortcut: cin == cout ? nil : try conv("\(name).conv_shortcut", cin, cout, k: 1, pad: 0),
        outputScale: Float(scale))
    }
    func attention(_ name: String, _ ch: Int, headDim: Int?, groups g: Int, scale: Double = 1) throws
      -> UNetAttention
    {
      let d = headDim ?? ch
      let heads = Swift.max(ch / d, 1)
      let inner = heads * d
      return UNetAttention(
        norm: try norm("\(name).group_norm", ch, groups: g, aliases: ["\(name).norm"]),
        q: try linear("\(name).to_q", ch, inner, aliases: ["\(name).query"]),
        k: try linear("\(name).to_k", ch, inner, aliases: ["\(name).key"]),
        v: try linear("\(name).to_v", ch, inner, aliases: ["\(name).value"]),
        out: try linear("\(name).to_out.0", inner, ch, aliases: ["\(name).proj_attn"]), heads: heads,
        headDim: d, outputScale: Float(scale))
    }

    let ch = c.blockOutChannels
    convIn = try conv("conv_in", c.inChannels, ch[0])
    time1 = try linear("time_embedding.linear_1", ch[0], temb)
    time2 = try linear("time_embedding.linear_2", temb, temb)
    classTable = try c.numClassEmbeds.map { try p.load("class_embedding.weight", [$0, temb]) }

    var downs: [UNetBlock] = []
    var out = ch[0]
    for (i, type) in c.downBlockTypes.enumerated() {
      let input = out
      out = ch[i]
      let final = i == ch.count - 1
      let name = "down_blocks.\(i)"
      var resnets: [UNetResnet] = [], attentions: [UNetAttention] = []
      for j in 0..<c.layersPerBlock {
        resnets.append(try resnet("\(name).resnets.\(j)", j == 0 ? input : out, out))
        if type == "AttnDownBlock2D" {
          attentions.append(
            try attention("\(name).attentions.\(j)", out, headDim: c.attentionHeadDim ?? out, groups: groups))
        }
      }
      var resample: Conv2d?
      if !final {
        let pad = c.downsamplePadding
        let n = "\(name).downsamplers.0.conv"
        // diffusers pads (0, 1, 0, 1) before a padding-0 conv.
        resample = Conv2d(
          weight: try p.load("\(n).weight", [out, out, 3, 3]), bias: try p.load("\(n).bias", [out]),
          stride: (2, 2),
          padding: pad == 0 ? (0, 0, 1, 1) : (pad, pad, pad, pad))
      }
      downs.append(
        UNetBlock(resnets: resnets, attentions: attentions, resample: resample, resampleName: "downsamplers"))
    }
    self.downs = downs

    let last = ch[ch.count - 1]
    if c.hasMidBlock {
      let r0 = try resnet("mid_block.resnets.0", last, last, scale: c.midBlockScaleFactor)
      let a0 =
        c.addAttention
        ? [
          try attention(
            "mid_block.attentions.0", last, headDim: c.attentionHeadDim ?? last,
            groups: c.attnNormNumGroups ?? groups,
            scale: c.midBlockScaleFactor)
        ] : []
      let r1 = try resnet("mid_block.resnets.1", last, last, scale: c.midBlockScaleFactor)
      mid = UNetBlock(resnets: [r0, r1], attentions: a0, resample: nil, resampleName: nil)
    } else {
      mid = nil
    }

    var ups: [UNetBlock] = []
    let rev = Array(ch.reversed())
    out = rev[0]
    for (i, type) in c.upBlockTypes.enumerated() {
      let prev = out
      out = rev[i]
      let input = rev[Swift.min(i + 1, ch.count - 1)]
      let final = i == ch.count - 1
      let name = "up_blocks.\(i)"
      var resnets: [UNetResnet] = [], attentions: [UNetAttention] = []
      let layers = c.layersPerBlock + 1
      for j in 0..<layers {
        let skip = j == layers - 1 ? input : out
        let resIn = j == 0 ? prev : out
        resnets.append(try resnet("\(name).resnets.\(j)", resIn + skip, out))
        if type == "AttnUpBlock2D" {
          attentions.append(
            try attention("\(name).attentions.\(j)", out, headDim: c.attentionHeadDim ?? out, groups: groups))
        }
      }
      let resample = final ? nil : try conv("\(name).upsamplers.0.conv", out, out)
      ups.append(
        UNetBlock(resnets: resnets, attentions: attentions, resample: resample, resampleName: "upsamplers"))
    }
    self.ups = ups
    normOut = try norm("conv_norm_out", ch[0])
    convOut = try conv("conv_out", ch[0], c.outChannels)

    parameters = p.loaded
    let unexpected = Set(names).subtracting(p.used)
    if let first = unexpected.sorted().first {
      throw ModelError.weight(first, "is not used by this config (\(unexpected.count) unexpected weights)")
    }
    super.init()
    child("conv_in", convIn)
    let timeEmbedding = Module()
    timeEmbedding.child("linear_1", time1)
    timeEmbedding.child("linear_2", time2)
    child("time_embedding", timeEmbedding)
    if let classTable { child("class_embedding", Embedding(weight: classTable)) }
    child("down_blocks", ModuleList(downs))
    if let mid { child("mid_block", mid) }
    child("up_blocks", ModuleList(ups))
    child("conv_norm_out", normOut)
    child("conv_out", convOut)
  }

  /// diffusers' sinusoidal timestep embedding, in Float32 arithmetic as PyTorch computes it.
  public static func timestepEmbedding(_ t: [Double], dim: Int, flipSinToCos: Bool, freqShift: Double)
    -> [Float]
  {
    let half = dim / 2
    let freqs = (0..<half).map { i -> Float in
      let exponent = -Float(log(10000.0)) * Float(i)
      return Foundation.exp(exponent / Float(Double(half) - freqShift))
    }
    var out = [Float](repeating: 0, count: t.count * dim)
    for (b, tv) in t.enumerated() {
      for i in 0..<half {
        let arg = Float(tv) * freqs[i]
        let s = Float(Foundation.sin(Double(arg))), co = Float(Foundation.cos(Double(arg)))
        out[b * dim + i] = flipSinToCos ? co : s
        out[b * dim + half + i] = flipSinToCos ? s : co
      }
    }
    return out
  }

  /// One evaluation: x (N, C, H, W), one timestep per sample, class labels when class-conditional.
  public func callAsFunction(_ x: Tensor, timesteps: [Double], classLabels: [Int]? = nil) throws -> Tensor {
    let n = x.shape[0]
    guard x.rank == 4, x.shape[1] == config.inChannels else {
      throw ModelError.input("UNet input must be (N, \(config.inChannels), H, W), got \(x.shape)")
    }
    let factor = 1 << (config.blockOutChannels.count - 1)
    guard x.shape[2] % factor == 0, x.shape[3] % factor == 0 else {
      throw ModelError.input("UNet input height and width must be multiples of \(factor), got \(x.shape)")
    }
    guard timesteps.count == n || timesteps.count == 1 else {
      throw ModelError.input("\(timesteps.count) timesteps for a batch of \(n)")
    }
    let ts = timesteps.count == n ? timesteps : Array(repeating: timesteps[0], count: n)
    let ch0 = config.blockOutChannels[0]
    let tEmb = try Tensor(
      UNet2D.timestepEmbedding(ts, dim: ch0, flipSinToCos: config.flipSinToCos, freqShift: config.freqShift),
      shape: [n, ch0], on: device)
    var emb = try time2(try time1(tEmb, activation: .silu))
    if let table = classTable {
      guard let labels = classLabels, labels.count == n || labels.count == 1 else {
        throw ModelError.input("this model is class-conditional: give one class label per sample")
      }
      let l = labels.count == n ? labels : Array(repeating: labels[0], count: n)
      emb = try emb + Tensor.gemm(try Tensor.oneHot(l, classes: table.shape[0], on: device), table)
    } else if classLabels != nil {
      throw ModelError.input("this model is not class-conditional (num_class_embeds is not set)")
    }
    let embAct = try emb.silu()

    var h = config.centerInputSample ? try x.mul(2).sub(1) : x
    h = try convIn(h)
    var skips = [h]
    for b in downs {
      for (j, r) in b.resnets.enumerated() {
        h = try r(h, embAct)
        if j < b.attentions.count { h = try b.attentions[j](h) }
        skips.append(h)
      }
      if let d = b.resample {
        h = try d(h)
        skips.append(h)
      }
    }
    if let mid {
      h = try mid.resnets[0](h, embAct)
      if let a = mid.attentions.first { h = try a(h) }
      h = try mid.resnets[1](h, embAct)
    }
    for b in ups {
      for (j, r) in b.resnets.enumerated() {
        h = try Tensor.concat([h, skips.removeLast()], axis: 1)
        h = try r(h, embAct)
        if j < b.attentions.count { h = try b.attentions[j](h) }
      }
      if let u = b.resample { h = try u(try h.upsampleNearest2x()) }
    }
    return try convOut(try normOut(h, silu: true))
  }
}
