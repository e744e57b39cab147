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
      used.insert(n)
      let t = try Tensor(w.values, shape: shape, on: device)
      loaded.append((name, t))
      return t
    }
    throw ModelError.weight(name, "missing from the weights file")
  }
}

/// The UNet2DModel denoiser: ε(x, t[, class]) or v / x₀ depending on the training objective.
public final class UNet2D {
  public let config: UNet2DConfig
  public let device: Device

  struct Conv {
    var weight: Tensor, bias: Tensor
    var stride = 1
    var padding = (1, 1, 1, 1)
    /// The convolution, plus a per-image bias (N, Cout) or a residual where given (fused where the backend can).
    func callAsFunction(
      _ x: Tensor, activation: Activation = .none, imageBias: Tensor? = nil, residual: Tensor? = nil
    ) throws -> Tensor {
      try x.conv2d(
        weight: weight, bias: bias, stride: (stride, stride), padding: padding, activation: activation,
        imageBias: imageBias, residual: residual)
    }
  }
  struct Norm {
    var weight: Tensor, bias: Tensor, groups: Int, eps: Float
    func callAsFunction(_ x: Tensor, silu: Bool) throws -> Tensor {
      try x.groupNorm(groups: groups, weight: weight, bias: bias, eps: eps, silu: silu)
    }
  }
  struct Linear {
    var weight: Tensor, bias: Tensor
    func callAsFunction(_ x: Tensor, activation: Activation = .none) throws -> Tensor {
      try x.linear(weight: weight, bias: bias, activation: activation)
    }
  }
  struct Resnet {
    var norm1: Norm, conv1: Conv, timeProj: Linear, norm2: Norm, conv2: Conv, shortcut: Conv?
    var outputScale: Float
  }
  struct Attention {
    var norm: Norm, q: Linear, k: Linear, v: Linear, out: Linear
    var heads: Int, headDim: Int
    var outputScale: Float
  }
  struct Block {
    var resnets: [Resnet]
    var attentions: [Attention]
    var resample: Conv?
  }

  let convIn: Conv
  let time1: Linear, time2: Linear
  let classTable: Tensor?
  let downs: [Block]
  let mid: Block?
  let ups: [Block]
  let normOut: Norm
  let convOut: Conv
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
      -> Conv
    {
      Conv(
        weight: try p.load("\(name).weight", [cout, cin, k, k]), bias: try p.load("\(name).bias", [cout]),
        stride: stride,
        padding: (pad, pad, pad, pad))
    }
    func norm(_ name: String, _ ch: Int, groups g: Int = groups, aliases: [String] = []) throws -> Norm {
      Norm(
        weight: try p.load("\(name).weight", [ch], aliases: aliases.map { "\($0).weight" }),
        bias: try p.load("\(name).bias", [ch], aliases: aliases.map { "\($0).bias" }), groups: g, eps: eps)
    }
    func linear(_ name: String, _ cin: Int, _ cout: Int, aliases: [String] = []) throws -> Linear {
      Linear(
        weight: try p.load("\(name).weight", [cout, cin], aliases: aliases.map { "\($0).weight" }),
        bias: try p.load("\(name).bias", [cout], aliases: aliases.map { "\($0).bias" }))
    }
    func resnet(_ name: String, _ cin: Int, _ cout: Int, scale: Double = 1) throws -> Resnet {
      Resnet(
        norm1: try norm("\(name).norm1", cin), conv1: try conv("\(name).conv1", cin, cout),
        timeProj: try linear("\(name).time_emb_proj", temb, cout), norm2: try norm("\(name).norm2", cout),
        conv2: try conv("\(name).conv2", cout, cout),
        shortcut: cin == cout ? nil : try conv("\(name).conv_shortcut", cin, cout, k: 1, pad: 0),
        outputScale: Float(scale))
    }
    func attention(_ name: String, _ ch: Int, headDim: Int?, groups g: Int, scale: Double = 1) throws
      -> Attention
    {
      let d = headDim ?? ch
      let heads = Swift.max(ch / d, 1)
      let inner = heads * d
      return Attention(
        norm: try norm("\(name).group_norm", ch, groups: g, aliases: ["\(name).norm"]),
        q: try linear("\(name).to_q", ch, inner, aliases: ["\(name).query"]),
        k: try linear("\(name).to_k", ch, inner, aliases: ["\(name).key"]),
        v: try linear("\(name).to_v", ch, inner, aliases: ["\(name).value"]),
        out: try linear("\(name).to_out.0", inner, ch, aliases: ["\(name).proj_attn"]), heads: heads,
        headDim: d,
        outputScale: Float(scale))
    }

    let ch = c.blockOutChannels
    convIn = try conv("conv_in", c.inChannels, ch[0])
    time1 = try linear("time_embedding.linear_1", ch[0], temb)
    time2 = try linear("time_embedding.linear_2", temb, temb)
    classTable = try c.numClassEmbeds.map { try p.load("class_embedding.weight", [$0, temb]) }

    var downs: [Block] = []
    var out = ch[0]
    for (i, type) in c.downBlockTypes.enumerated() {
      let input = out
      out = ch[i]
      let final = i == ch.count - 1
      let name = "down_blocks.\(i)"
      var b = Block(resnets: [], attentions: [], resample: nil)
      for j in 0..<c.layersPerBlock {
        b.resnets.append(try resnet("\(name).resnets.\(j)", j == 0 ? input : out, out))
        if type == "AttnDownBlock2D" {
          b.attentions.append(
            try attention("\(name).attentions.\(j)", out, headDim: c.attentionHeadDim ?? out, groups: groups))
        }
      }
      if !final {
        let pad = c.downsamplePadding
        var d = try conv("\(name).downsamplers.0.conv", out, out, stride: 2, pad: pad)
        if pad == 0 { d.padding = (0, 0, 1, 1) }  // diffusers pads (0, 1, 0, 1) before a padding-0 conv
        b.resample = d
      }
      downs.append(b)
    }
    self.downs = downs

    let last = ch[ch.count - 1]
    mid =
      !c.hasMidBlock
      ? nil
      : Block(
        resnets: [
          try resnet("mid_block.resnets.0", last, last, scale: c.midBlockScaleFactor),
          try resnet("mid_block.resnets.1", last, last, scale: c.midBlockScaleFactor),
        ],
        attentions: c.addAttention
          ? [
            try attention(
              "mid_block.attentions.0", last, headDim: c.attentionHeadDim ?? last,
              groups: c.attnNormNumGroups ?? groups,
              scale: c.midBlockScaleFactor)
          ] : [], resample: nil)

    var ups: [Block] = []
    let rev = Array(ch.reversed())
    out = rev[0]
    for (i, type) in c.upBlockTypes.enumerated() {
      let prev = out
      out = rev[i]
      let input = rev[Swift.min(i + 1, ch.count - 1)]
      let final = i == ch.count - 1
      let name = "up_blocks.\(i)"
      var b = Block(resnets: [], attentions: [], resample: nil)
      let layers = c.layersPerBlock + 1
      for j in 0..<layers {
        let skip = j == layers - 1 ? input : out
        let resIn = j == 0 ? prev : out
        b.resnets.append(try resnet("\(name).resnets.\(j)", resIn + skip, out))
        if type == "AttnUpBlock2D" {
          b.attentions.append(
            try attention("\(name).attentions.\(j)", out, headDim: c.attentionHeadDim ?? out, groups: groups))
        }
      }
      if !final { b.resample = try conv("\(name).upsamplers.0.conv", out, out) }
      ups.append(b)
    }
    self.ups = ups
    normOut = try norm("conv_norm_out", ch[0])
    convOut = try conv("conv_out", ch[0], c.outChannels)

    parameters = p.loaded
    let unexpected = Set(names).subtracting(p.used)
    if let first = unexpected.sorted().first {
      throw ModelError.weight(first, "is not used by this config (\(unexpected.count) unexpected weights)")
    }
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
        h = try resnet(r, h, embAct)
        if j < b.attentions.count { h = try attend(b.attentions[j], h) }
        skips.append(h)
      }
      if let d = b.resample {
        h = try d(h)
        skips.append(h)
      }
    }
    if let mid {
      h = try resnet(mid.resnets[0], h, embAct)
      if let a = mid.attentions.first { h = try attend(a, h) }
      h = try resnet(mid.resnets[1], h, embAct)
    }
    for b in ups {
      for (j, r) in b.resnets.enumerated() {
        h = try Tensor.concat([h, skips.removeLast()], axis: 1)
        h = try resnet(r, h, embAct)
        if j < b.attentions.count { h = try attend(b.attentions[j], h) }
      }
      if let u = b.resample { h = try u(try h.upsampleNearest2x()) }
    }
    return try convOut(try normOut(h, silu: true))
  }

  func resnet(_ r: Resnet, _ x: Tensor, _ embAct: Tensor) throws -> Tensor {
    // h = conv1(…) + temb, y = shortcut(x) + conv2(…): both additions are fused into the convolutions
    // where the backend can (inference on the CPU).
    let t = try r.timeProj(embAct)
    var h = try r.conv1(try r.norm1(x, silu: true), imageBias: t)
    h = try r.conv2(try r.norm2(h, silu: true), residual: try r.shortcut.map { try $0(x) } ?? x)
    return r.outputScale != 1 ? try h / r.outputScale : h
  }

  func attend(_ a: Attention, _ x: Tensor) throws -> Tensor {
    let (n, c, hgt, wid) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let l = hgt * wid
    let tokens = try a.norm(x, silu: false).reshaped([n, c, l]).permuted([0, 2, 1])  // (N, L, C)
    func heads(_ t: Tensor) throws -> Tensor {
      try t.reshaped([n, l, a.heads, a.headDim]).permuted([0, 2, 1, 3]).reshaped([n * a.heads, l, a.headDim])
    }
    let q = try heads(try a.q(tokens)), k = try heads(try a.k(tokens)), v = try heads(try a.v(tokens))
    let o = try Tensor.attention(query: q, key: k, value: v)
      .reshaped([n, a.heads, l, a.headDim]).permuted([0, 2, 1, 3]).reshaped([n, l, a.heads * a.headDim])
    let proj = try a.out(o).permuted([0, 2, 1]).reshaped([n, c, hgt, wid])
    var y = try proj + x
    if a.outputScale != 1 { y = try y / a.outputScale }
    return y
  }
}
