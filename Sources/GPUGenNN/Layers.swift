// The layers of GPUGenNN, PyTorch's names and default initialisation: Linear, Conv2d, ConvTranspose2d,
// GroupNorm, BatchNorm2d, ConditionalBatchNorm2d, Embedding, Dropout, activations, Flatten/Unflatten and
// Sequential. Linear, Conv2d, ConvTranspose2d and Embedding take spectral normalisation (SpectralNorm.swift).
import Foundation

/// An activation function with its parameter (the LeakyReLU slope travels with it, into fused kernels too).
public enum ActivationFunction: Equatable, Sendable {
  case identity
  case relu
  /// max(x, 0) + slope·min(x, 0).
  case leakyRelu(slope: Float)
  case silu
  case gelu
  case sigmoid
  case tanh

  /// The backend's fused epilogue and its parameter.
  public var fused: (activation: Activation, alpha: Float) {
    switch self {
    case .identity: return (.none, 0)
    case .relu: return (.relu, 0)
    case .leakyRelu(let s): return (.leakyRelu, s)
    case .silu: return (.silu, 0)
    case .gelu: return (.gelu, 0)
    case .sigmoid: return (.sigmoid, 0)
    case .tanh: return (.tanh, 0)
    }
  }

  /// Applies the function elementwise.
  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    let f = fused
    return f.activation == .none ? x : try x.apply(f.activation.unaryOp, alpha: f.alpha)
  }

  /// Reads a name: identity/none/linear, relu, leaky_relu[:slope] (default 0.2), silu/swish, gelu, sigmoid, tanh.
  public init?(name: String) {
    let parts = name.lowercased().split(separator: ":", maxSplits: 1).map(String.init)
    switch parts.first ?? "" {
    case "identity", "none", "linear": self = .identity
    case "relu": self = .relu
    case "leaky_relu", "leakyrelu", "lrelu":
      guard let s = parts.count > 1 ? Float(parts[1]) : 0.2, s.isFinite else { return nil }
      self = .leakyRelu(slope: s)
    case "silu", "swish": self = .silu
    case "gelu": self = .gelu
    case "sigmoid": self = .sigmoid
    case "tanh": self = .tanh
    default: return nil
    }
  }
}

/// A parameter-free activation layer (for `Sequential`).
public final class ActivationLayer: Module, UnaryLayer {
  /// The function applied.
  public let function: ActivationFunction
  /// A layer applying `function`.
  public init(_ function: ActivationFunction) {
    self.function = function
  }
  /// Applies the function.
  public func callAsFunction(_ x: Tensor) throws -> Tensor { try function(x) }
}

/// A layer whose output can take a fused activation (Linear, Conv2d, ConvTranspose2d, BatchNorm2d):
/// `Sequential` fuses a following `ActivationLayer` into it.
public protocol FusableLayer: UnaryLayer {
  /// The layer followed by `activation`, fused where the backend can.
  func callAsFunction(_ x: Tensor, activation: ActivationFunction) throws -> Tensor
}

/// y = x·Wᵀ + b over the last axis; weight (out, in).
public final class Linear: Module, FusableLayer, SpectralNormalizable {
  /// (outFeatures, inFeatures): the trained tensor (weight_orig under spectral normalisation).
  public let weight: Tensor
  /// (outFeatures), or nil.
  public let bias: Tensor?
  /// The spectral normalisation (`applySpectralNorm`), or nil.
  public private(set) var spectralNorm: SpectralNorm?

  /// A Linear layer with PyTorch's default initialisation (drawn by `initialize(seed:)`).
  public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, on device: Device) throws {
    guard inFeatures > 0, outFeatures > 0 else {
      throw ModuleError.invalidArgument("Linear(\(inFeatures), \(outFeatures)): sizes must be positive")
    }
    self.weight = try Module.make([outFeatures, inFeatures], .weight, device)
    let biasInit = Init.Parameter.bias(fanIn: inFeatures)
    self.bias = bias ? try Module.make([outFeatures], biasInit, device) : nil
    super.init()
    register(parameter: "weight", weight, initializer: .weight)
    if let b = self.bias { register(parameter: "bias", b, initializer: biasInit) }
  }

  /// A Linear layer holding existing tensors (weight (out, in), bias (out)).
  public init(weight: Tensor, bias: Tensor?) {
    self.weight = weight
    self.bias = bias
    super.init()
    register(parameter: "weight", weight, initializer: .weight)
    if let bias { register(parameter: "bias", bias, initializer: .bias(fanIn: weight.shape[1])) }
  }

  /// The input and output widths.
  public var features: (in: Int, out: Int) { (weight.shape[1], weight.shape[0]) }

  /// Spectral normalisation of the (out, in) weight (torch's `spectral_norm(linear)`).
  public func applySpectralNorm(powerIterations: Int = 1, eps: Float = 1e-12) throws {
    spectralNorm = try attachSpectralNorm(
      to: weight, dim: 0, existing: spectralNorm, powerIterations: powerIterations, eps: eps)
  }

  /// The forward pass.
  public func callAsFunction(_ x: Tensor) throws -> Tensor { try self(x, activation: .identity) }

  /// The layer followed by `activation` (fused into the kernel where the backend can).
  public func callAsFunction(_ x: Tensor, activation: ActivationFunction) throws -> Tensor {
    let f = activation.fused
    return try x.linear(
      weight: try forwardWeight(weight), bias: bias, activation: f.activation, activationAlpha: f.alpha)
  }
}

/// 2-D convolution over NCHW; weight (out, in/groups = in, kh, kw).
public final class Conv2d: Module, FusableLayer, SpectralNormalizable {
  /// (out, in, kh, kw): the trained tensor (weight_orig under spectral normalisation).
  public let weight: Tensor
  /// (out), or nil.
  public let bias: Tensor?
  /// (vertical, horizontal) stride.
  public let stride: (Int, Int)
  /// (top, left, bottom, right) zero padding.
  public let padding: (Int, Int, Int, Int)
  /// The spectral normalisation (`applySpectralNorm`), or nil.
  public private(set) var spectralNorm: SpectralNorm?

  /// A Conv2d with a square kernel, symmetric padding and PyTorch's default initialisation.
  public convenience init(
    _ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
    bias: Bool = true, on device: Device
  ) throws {
    try self.init(
      inChannels, outChannels, kernelSize: (kernelSize, kernelSize), stride: (stride, stride),
      padding: (padding, padding, padding, padding), bias: bias, on: device)
  }

  /// A Conv2d with any kernel, stride and (top, left, bottom, right) padding.
  public init(
    _ inChannels: Int, _ outChannels: Int, kernelSize: (Int, Int), stride: (Int, Int),
    padding: (Int, Int, Int, Int), bias: Bool = true, on device: Device
  ) throws {
    guard inChannels > 0, outChannels > 0, kernelSize.0 > 0, kernelSize.1 > 0, stride.0 > 0, stride.1 > 0,
      [padding.0, padding.1, padding.2, padding.3].allSatisfy({ $0 >= 0 })
    else {
      throw ModuleError.invalidArgument(
        "Conv2d(\(inChannels), \(outChannels), kernel \(kernelSize), stride \(stride), padding \(padding)): "
          + "sizes and strides must be positive, padding ≥ 0")
    }
    let fanIn = inChannels * kernelSize.0 * kernelSize.1
    weight = try Module.make([outChannels, inChannels, kernelSize.0, kernelSize.1], .weight, device)
    let biasInit = Init.Parameter.bias(fanIn: fanIn)
    self.bias = bias ? try Module.make([outChannels], biasInit, device) : nil
    self.stride = stride
    self.padding = padding
    super.init()
    register(parameter: "weight", weight, initializer: .weight)
    if let b = self.bias { register(parameter: "bias", b, initializer: biasInit) }
  }

  /// A Conv2d holding existing tensors (weight (out, in, kh, kw), bias (out)).
  public init(weight: Tensor, bias: Tensor?, stride: (Int, Int), padding: (Int, Int, Int, Int)) {
    self.weight = weight
    self.bias = bias
    self.stride = stride
    self.padding = padding
    super.init()
    register(parameter: "weight", weight, initializer: .weight)
    let fanIn = weight.shape.dropFirst().reduce(1, *)
    if let bias { register(parameter: "bias", bias, initializer: .bias(fanIn: fanIn)) }
  }

  /// Spectral normalisation of the weight viewed as (out, in·kh·kw) (torch's `spectral_norm(conv)`).
  public func applySpectralNorm(powerIterations: Int = 1, eps: Float = 1e-12) throws {
    spectralNorm = try attachSpectralNorm(
      to: weight, dim: 0, existing: spectralNorm, powerIterations: powerIterations, eps: eps)
  }

  /// The forward pass.
  public func callAsFunction(_ x: Tensor) throws -> Tensor { try self(x, activation: .identity) }

  /// The layer followed by `activation` (fused into the kernel where the backend can).
  public func callAsFunction(_ x: Tensor, activation: ActivationFunction) throws -> Tensor {
    let f = activation.fused
    return try x.conv2d(
      weight: try forwardWeight(weight), bias: bias, stride: stride, padding: padding,
      activation: f.activation, activationAlpha: f.alpha)
  }

  /// The convolution plus a per-image bias (N, out) and/or a residual (shaped like the output), fused where
  /// the backend can.
  public func callAsFunction(_ x: Tensor, imageBias: Tensor? = nil, residual: Tensor?) throws -> Tensor {
    try x.conv2d(
      weight: try forwardWeight(weight), bias: bias, stride: stride, padding: padding, imageBias: imageBias,
      residual: residual)
  }

  /// The convolution plus a per-image bias (N, out), fused where the backend can.
  public func callAsFunction(_ x: Tensor, imageBias: Tensor) throws -> Tensor {
    try self(x, imageBias: imageBias, residual: nil)
  }
}

/// Transposed 2-D convolution (`nn.ConvTranspose2d`); weight (in, out, kh, kw).
public final class ConvTranspose2d: Module, FusableLayer, SpectralNormalizable {
  /// (in, out, kh, kw): the trained tensor (weight_orig under spectral normalisation).
  public let weight: Tensor
  /// (out), or nil.
  public let bias: Tensor?
  /// Stride, padding and output padding (square).
  public let stride: Int, padding: Int, outputPadding: Int
  /// The spectral normalisation (`applySpectralNorm`), or nil.
  public private(set) var spectralNorm: SpectralNorm?

  /// A ConvTranspose2d with PyTorch's default initialisation (fan-in = out·kh·kw, as PyTorch computes it).
  public init(
    _ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
    outputPadding: Int = 0, bias: Bool = true, on device: Device
  ) throws {
    guard inChannels > 0, outChannels > 0, kernelSize > 0, stride > 0, padding >= 0, outputPadding >= 0,
      outputPadding < stride
    else {
      throw ModuleError.invalidArgument(
        "ConvTranspose2d(\(inChannels), \(outChannels), kernel \(kernelSize), stride \(stride), padding "
          + "\(padding), output padding \(outputPadding)): need positive sizes, padding ≥ 0, output padding < stride"
      )
    }
    weight = try Module.make([inChannels, outChannels, kernelSize, kernelSize], .weight, device)
    let biasInit = Init.Parameter.bias(fanIn: outChannels * kernelSize * kernelSize)
    self.bias = bias ? try Module.make([outChannels], biasInit, device) : nil
    (self.stride, self.padding, self.outputPadding) = (stride, padding, outputPadding)
    super.init()
    register(parameter: "weight", weight, initializer: .weight)
    if let b = self.bias { register(parameter: "bias", b, initializer: biasInit) }
  }

  /// Spectral normalisation of the weight viewed as (out, in·kh·kw): axis 1 of (in, out, kh, kw) becomes
  /// the rows, as torch's `spectral_norm` does for a transposed convolution.
  public func applySpectralNorm(powerIterations: Int = 1, eps: Float = 1e-12) throws {
    spectralNorm = try attachSpectralNorm(
      to: weight, dim: 1, existing: spectralNorm, powerIterations: powerIterations, eps: eps)
  }

  /// The forward pass.
  public func callAsFunction(_ x: Tensor) throws -> Tensor { try self(x, activation: .identity) }

  /// The transposed convolution followed by `activation` (fused where the backend can).
  public func callAsFunction(_ x: Tensor, activation: ActivationFunction) throws -> Tensor {
    let f = activation.fused
    return try x.convTranspose2d(
      weight: try forwardWeight(weight), bias: bias, stride: stride, padding: padding,
      outputPadding: outputPadding, activation: f.activation, activationAlpha: f.alpha)
  }
}

/// Group normalisation (`nn.GroupNorm`) with an optional fused SiLU.
public final class GroupNorm: Module, UnaryLayer {
  /// Per-channel scale (ones) and shift (zeros).
  public let weight: Tensor, bias: Tensor
  /// Number of groups.
  public let groups: Int
  /// Variance epsilon.
  public let eps: Float

  /// GroupNorm(groups, channels).
  public init(groups: Int, channels: Int, eps: Float = 1e-5, on device: Device) throws {
    guard groups > 0, channels > 0, channels % groups == 0 else {
      throw ModuleError.invalidArgument("GroupNorm: \(groups) groups do not divide \(channels) channels")
    }
    weight = try Module.make([channels], .normWeight, device)
    bias = try Module.make([channels], .normBias, device)
    (self.groups, self.eps) = (groups, eps)
    super.init()
    register(parameter: "weight", weight, initializer: .normWeight)
    register(parameter: "bias", bias, initializer: .normBias)
  }

  /// A GroupNorm holding existing affine tensors.
  public init(groups: Int, weight: Tensor, bias: Tensor, eps: Float) {
    self.weight = weight
    self.bias = bias
    (self.groups, self.eps) = (groups, eps)
    super.init()
    register(parameter: "weight", weight, initializer: .normWeight)
    register(parameter: "bias", bias, initializer: .normBias)
  }

  /// The forward pass.
  public func callAsFunction(_ x: Tensor) throws -> Tensor { try self(x, silu: false) }

  /// The normalisation, followed by SiLU when `silu`.
  public func callAsFunction(_ x: Tensor, silu: Bool) throws -> Tensor {
    try x.groupNorm(groups: groups, weight: weight, bias: bias, eps: eps, silu: silu)
  }
}

/// Batch normalisation over (N, C, H, W) (`nn.BatchNorm2d`), or over (N, C) features as `nn.BatchNorm1d`
/// (same state): buffers running_mean, running_var and num_batches_tracked. Training normalises with the batch
/// statistics and updates the running ones (momentum, or a cumulative average when `momentum` is nil);
/// evaluation uses the running ones. One fused op; a following ReLU or leaky ReLU runs inside it
/// (`Sequential` fuses an `ActivationLayer`).
public final class BatchNorm2d: Module, FusableLayer {
  /// Affine scale (ones) and shift (zeros); nil without `affine` (no weight/bias parameters, as torch).
  public let weight: Tensor?, bias: Tensor?
  /// Running statistics.
  public let runningMean: Tensor, runningVar: Tensor
  /// Batches seen in training (a Float32 scalar buffer, saved as PyTorch's num_batches_tracked).
  public let numBatchesTracked: Tensor
  /// Variance epsilon and momentum (nil: cumulative moving average).
  public let eps: Float, momentum: Float?
  /// In a data-parallel job, the processes whose batches share the training statistics (PyTorch's
  /// SyncBatchNorm); nil: each process normalises with its own batch's statistics.
  public var synchronization: Communicator?

  /// BatchNorm2d(channels), with a learnt per-channel affine unless `affine` is false.
  public init(
    _ channels: Int, eps: Float = 1e-5, momentum: Float? = 0.1, affine: Bool = true, on device: Device
  ) throws {
    guard channels > 0 else { throw ModuleError.invalidArgument("BatchNorm2d: channels must be positive") }
    if let m = momentum, !(m >= 0 && m <= 1) {
      throw ModuleError.invalidArgument("BatchNorm2d: momentum \(m) is not in [0, 1]")
    }
    weight = affine ? try Module.make([channels], .normWeight, device) : nil
    bias = affine ? try Module.make([channels], .normBias, device) : nil
    runningMean = try Tensor.zeros([channels], on: device)
    runningVar = try Tensor.full(1, shape: [channels], on: device)
    numBatchesTracked = try Tensor.zeros([], on: device)
    (self.eps, self.momentum) = (eps, momentum)
    super.init()
    if let weight, let bias {
      register(parameter: "weight", weight, initializer: .normWeight)
      register(parameter: "bias", bias, initializer: .normBias)
    }
    buffer("running_mean", runningMean)
    buffer("running_var", runningVar)
    buffer("num_batches_tracked", numBatchesTracked)
  }

  /// The forward pass.
  public func callAsFunction(_ x: Tensor) throws -> Tensor { try self(x, activation: .identity) }

  /// The normalisation followed by `activation` (ReLU and leaky ReLU fused into its kernels).
  public func callAsFunction(_ x: Tensor, activation: ActivationFunction) throws -> Tensor {
    // (N, C) features (`nn.BatchNorm1d`): normalised as (N, C, 1, 1).
    if x.rank == 2, x.shape[1] == runningMean.count {
      let h = try self(try x.reshaped([x.shape[0], x.shape[1], 1, 1]), activation: activation)
      return try h.reshaped(x.shape)
    }
    guard x.rank == 4, x.shape[1] == runningMean.count else {
      throw GPUGenError.shapeMismatch(
        op: "BatchNorm2d (input NCHW vs channels)", lhs: x.shape, rhs: runningMean.shape)
    }
    let f = activation.fused
    if isTraining {
      // The count is bumped on the device; only the cumulative average (momentum nil) reads it back.
      try Tape.noGrad { try numBatchesTracked.assign(try numBatchesTracked + 1) }
      let m = try momentum ?? Tape.noGrad { 1 / (try numBatchesTracked.toArray()[0]) }
      if let group = synchronization, group.isDistributed {
        return try activation(try synchronized(x, over: group, momentum: m))
      }
      return try x.batchNorm(
        weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar, training: true,
        momentum: m, eps: eps, activation: f.activation, activationAlpha: f.alpha)
    }
    return try x.batchNorm(
      weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar, training: false, eps: eps,
      activation: f.activation, activationAlpha: f.alpha)
  }

  /// Training-mode normalisation with the statistics of every rank's batch: the mean, then the biased
  /// variance about it (two all-reduces, differentiable), and the running statistics updated with the
  /// unbiased variance of the whole global batch.
  func synchronized(_ x: Tensor, over group: Communicator, momentum m: Float) throws -> Tensor {
    let c = x.shape[1]
    let column = [1, c, 1, 1]
    let total = try group.allGather(Double(x.shape[0] * x.shape[2] * x.shape[3])).reduce(0, +)
    let mean = try x.sum(axes: [0, 2, 3]).allReduceSum(over: group) / Float(total)
    let centred = try x - mean.reshaped(column)
    let variance = try (centred * centred).sum(axes: [0, 2, 3]).allReduceSum(over: group) / Float(total)
    var y = try centred * (variance + eps).rsqrt().reshaped(column)
    if let weight, let bias { y = try y * weight.reshaped(column) + bias.reshaped(column) }
    try Tape.noGrad {
      let unbiased = Float(total / Swift.max(total - 1, 1))
      try runningMean.assign(try runningMean * (1 - m) + mean * m)
      try runningVar.assign(try runningVar * (1 - m) + variance * (unbiased * m))
    }
    return y
  }
}

extension Module {
  /// Sets `synchronization` on every BatchNorm2d below this module (nil: local statistics).
  public func synchronizeBatchNorm(over group: Communicator?) {
    if let bn = self as? BatchNorm2d { bn.synchronization = group }
    for child in children { child.module.synchronizeBatchNorm(over: group) }
  }
}

/// A lookup table (`nn.Embedding`), initialised N(0, 1).
public final class Embedding: Module, SpectralNormalizable {
  /// (count, dim): the trained tensor (weight_orig under spectral normalisation).
  public let weight: Tensor
  /// The spectral normalisation (`applySpectralNorm`), or nil.
  public private(set) var spectralNorm: SpectralNorm?

  /// Embedding(count, dim), initialised by `initializer` (N(0, 1) by default, as torch).
  public init(_ count: Int, _ dim: Int, initializer: Init.Parameter = .embedding, on device: Device) throws {
    guard count > 0, dim > 0 else {
      throw ModuleError.invalidArgument("Embedding(\(count), \(dim)): sizes must be positive")
    }
    weight = try Module.make([count, dim], initializer, device)
    super.init()
    register(parameter: "weight", weight, initializer: initializer)
  }

  /// An Embedding holding an existing table (count, dim).
  public init(weight: Tensor) {
    self.weight = weight
    super.init()
    register(parameter: "weight", weight, initializer: .embedding)
  }

  /// Spectral normalisation of the (count, dim) table (torch's `spectral_norm(embedding)`).
  public func applySpectralNorm(powerIterations: Int = 1, eps: Float = 1e-12) throws {
    spectralNorm = try attachSpectralNorm(
      to: weight, dim: 0, existing: spectralNorm, powerIterations: powerIterations, eps: eps)
  }

  /// The rows of `indices` (N, dim); differentiable with respect to the table.
  public func callAsFunction(_ indices: [Int]) throws -> Tensor {
    try Tensor.gemm(
      try Tensor.oneHot(indices, classes: weight.shape[0], on: weight.device), try forwardWeight(weight))
  }
}

/// Class-conditional batch normalisation (BigGAN / cGAN with projection): a non-affine `BatchNorm2d` child
/// "bn" and an `Embedding` child "embed" of (classes, 2·channels) whose first C columns are the per-class
/// scales γ (initialised to 1) and last C the shifts β (initialised to 0): out = γ[y]·BN(x) + β[y].
public final class ConditionalBatchNorm2d: Module {
  /// The normalisation, without affine parameters (running statistics as in `BatchNorm2d`).
  public let bn: BatchNorm2d
  /// The per-class (γ, β) table, (classes, 2·channels).
  public let embed: Embedding
  /// Number of channels C and of classes.
  public let channels: Int, classes: Int

  /// ConditionalBatchNorm2d with `classes` classes over `channels` channels.
  public init(
    channels: Int, classes: Int, eps: Float = 1e-5, momentum: Float? = 0.1, on device: Device
  ) throws {
    guard channels > 0, classes > 0 else {
      throw ModuleError.invalidArgument(
        "ConditionalBatchNorm2d(channels \(channels), classes \(classes)): sizes must be positive")
    }
    (self.channels, self.classes) = (channels, classes)
    bn = try BatchNorm2d(channels, eps: eps, momentum: momentum, affine: false, on: device)
    embed = try Embedding(
      classes, 2 * channels, initializer: .conditionalNormEmbedding(channels: channels), on: device)
    super.init()
    child("bn", bn)
    child("embed", embed)
  }

  /// γ[labels]·BN(x) + β[labels] for x (N, C, H, W) and one label in 0..<classes per image.
  public func callAsFunction(_ x: Tensor, labels: [Int]) throws -> Tensor {
    guard x.rank == 4, x.shape[1] == channels else {
      throw ModuleError.invalidArgument(
        "ConditionalBatchNorm2d: input \(x.shape) is not (N, \(channels), H, W)")
    }
    guard labels.count == x.shape[0] else {
      throw ModuleError.invalidArgument(
        "ConditionalBatchNorm2d: \(labels.count) labels for \(x.shape[0]) images")
    }
    if let bad = labels.first(where: { !(0..<classes).contains($0) }) {
      throw ModuleError.invalidArgument(
        "ConditionalBatchNorm2d: label \(bad) is out of range 0..<\(classes)")
    }
    let table = try embed(labels)
    let gamma = try table.slice(axis: 1, start: 0, end: channels).reshaped([labels.count, channels, 1, 1])
    let beta = try table.slice(axis: 1, start: channels).reshaped([labels.count, channels, 1, 1])
    return try bn(x) * gamma + beta
  }

  /// `activation`(γ[labels]·BN(x) + β[labels]): the per-sample affine and the activation are composed after
  /// the fused normalisation.
  public func callAsFunction(_ x: Tensor, labels: [Int], activation: ActivationFunction) throws -> Tensor {
    try activation(try self(x, labels: labels))
  }
}

/// Inverted dropout (`nn.Dropout`): in training, each element is zeroed with probability p and the rest are
/// scaled by 1/(1 − p); in evaluation it is the identity. The mask is a device draw of Philox uniforms
/// keyed by (seed, sample index, step, stream), so it does not depend on the batch size or the device.
public final class Dropout: Module, UnaryLayer {
  /// The drop probability.
  public let p: Float
  /// The noise key: set by `Dropout.setNoise(of:seed:step:)` before each training forward.
  public var seed: UInt64 = 0, step = 0, stream = Streams.dropout, firstSample = 0

  /// Dropout(p), p in [0, 1).
  public init(p: Float = 0.5) throws {
    guard p >= 0 && p < 1 else { throw ModuleError.invalidArgument("Dropout: p \(p) is not in [0, 1)") }
    self.p = p
  }

  /// The forward pass.
  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    guard isTraining, p > 0 else { return x }
    let mask = try Tape.noGrad {
      let u = try Tensor.randomUniform(
        shape: x.shape, seed: seed, step: step, stream: stream, firstSample: firstSample, on: x.device)
      // u ∈ (0, 1]: keep (scaled by 1/(1 − p)) where u > p, i.e. where relu(u − p) ≠ 0.
      return try Tensor.where(
        u.sub(p).relu(), Tensor.full(1 / (1 - p), shape: [1], on: x.device), Tensor.zeros([1], on: x.device))
    }
    return try x * mask
  }

  /// Keys every Dropout of `module` for one training step: the k-th (in module order) draws from stream
  /// `Streams.dropout + k`, sample rows numbered from `firstSample`.
  public static func setNoise(of module: Module, seed: UInt64, step: Int, firstSample: Int = 0) {
    var k = 0
    for (_, m) in module.namedModules {
      guard let d = m as? Dropout else { continue }
      (d.seed, d.step, d.stream, d.firstSample) = (seed, step, Streams.dropout + k, firstSample)
      k += 1
    }
  }
}

/// Flattens all axes after the first: (N, …) → (N, ∏…).
public final class Flatten: Module, UnaryLayer {
  /// A Flatten layer.
  public override init() {}
  /// The forward pass.
  public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.reshaped([x.shape[0], -1]) }
}

/// Reshapes (N, ∏shape) to (N, shape…).
public final class Unflatten: Module, UnaryLayer {
  /// The per-sample shape.
  public let shape: [Int]
  /// An Unflatten layer to (N, shape…).
  public init(_ shape: [Int]) { self.shape = shape }
  /// The forward pass.
  public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.reshaped([x.shape[0]] + shape) }
}

/// Layers applied in order; children are named "0", "1", … as in `nn.Sequential`. A `FusableLayer` (Linear,
/// Conv2d, ConvTranspose2d, BatchNorm2d) followed by an activation runs as one fused call where the backend can.
public final class Sequential: Module, UnaryLayer {
  /// The layers, in order.
  public let layers: [any UnaryLayer]

  /// A chain of `layers`.
  public init(_ layers: [any UnaryLayer]) {
    self.layers = layers
    super.init()
    for (i, l) in layers.enumerated() { child("\(i)", l) }
  }

  /// The forward pass.
  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    var h = x
    var i = 0
    while i < layers.count {
      if let f = layers[i] as? any FusableLayer, i + 1 < layers.count,
        let a = layers[i + 1] as? ActivationLayer
      {
        h = try f(h, activation: a.function)
        i += 2
      } else {
        h = try layers[i](h)
        i += 1
      }
    }
    return h
  }
}

extension Module {
  /// A parameter tensor holding its initialiser's constant (layers create theirs before `super.init`, then
  /// register them).
  static func make(_ shape: [Int], _ initializer: Init.Parameter, _ device: Device) throws -> Tensor {
    if case .conditionalNormEmbedding = initializer {
      return try Init.pytorchDefault(initializer, shape: shape, seed: 0, stream: 0, on: device)
    }
    return try Tensor.full(initializer == .normWeight ? 1 : 0, shape: shape, on: device)
  }
}

extension SpectralNormalizable {
  /// The weight a forward uses: `weight` itself, or W/σ(W) under spectral normalisation (after the power
  /// iterations in training mode). No extra op without spectral normalisation.
  func forwardWeight(_ weight: Tensor) throws -> Tensor {
    guard let sn = spectralNorm else { return weight }
    return try sn.normalizedWeight(weight, training: isTraining)
  }
}
