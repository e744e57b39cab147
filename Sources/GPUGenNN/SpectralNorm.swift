// Spectral normalisation (Miyato et al., ICLR 2018) with the semantics of PyTorch's classic
// `torch.nn.utils.spectral_norm`: the layer's weight parameter is renamed weight_orig, buffers weight_u (rows)
// and weight_v (columns) hold the singular-vector estimates, and every forward uses W/σ(W) with
// σ = uᵀ·W·v. A training-mode forward first runs the power iterations (v = normalize(Wᵀu), u = normalize(Wv),
// in place, not recorded); σ is then differentiated with respect to W with u and v held constant.
import Foundation

/// The spectral normalisation state of one layer (`applySpectralNorm`): the estimates u and v and the
/// iteration settings. The layer's `weight` tensor stays the trained parameter (saved as weight_orig).
public final class SpectralNorm {
  /// The left singular vector estimate (length = the weight matrix's rows), saved as weight_u.
  public let u: Tensor
  /// The right singular vector estimate (length = the weight matrix's columns), saved as weight_v.
  public let v: Tensor
  /// Power iterations run by each training-mode forward (≥ 1).
  public let powerIterations: Int
  /// The normalisation's guard: x / max(‖x‖, eps).
  public let eps: Float
  /// The weight axis that becomes the matrix rows: 0, or 1 for ConvTranspose2d's (in, out, kh, kw).
  public let dim: Int
  /// The weight matrix's (rows, columns).
  public let matrixShape: (rows: Int, columns: Int)

  /// State for a weight of `weightShape` viewed as (shape[dim], the rest), with valid (unit) u and v drawn
  /// from seed 0 until `Module.initialize` redraws them.
  init(weightShape: [Int], dim: Int, powerIterations: Int, eps: Float, on device: Device) throws {
    guard powerIterations >= 1 else {
      throw ModuleError.invalidArgument(
        "spectral norm: powerIterations must be at least 1, got \(powerIterations)")
    }
    guard eps > 0, eps.isFinite else {
      throw ModuleError.invalidArgument("spectral norm: eps must be positive and finite, got \(eps)")
    }
    guard weightShape.count >= 2, (0..<weightShape.count).contains(dim) else {
      throw ModuleError.invalidArgument(
        "spectral norm: cannot take axis \(dim) of a weight shaped \(weightShape)")
    }
    let rows = weightShape[dim]
    let columns = weightShape.reduce(1, *) / Swift.max(rows, 1)
    guard rows > 0, columns > 0 else {
      throw ModuleError.invalidArgument("spectral norm: the weight \(weightShape) is empty")
    }
    (self.powerIterations, self.eps, self.dim) = (powerIterations, eps, dim)
    matrixShape = (rows, columns)
    u = try SpectralNorm.unitNormal(count: rows, eps: eps, seed: 0, stream: Streams.buffer(0), on: device)
    v = try SpectralNorm.unitNormal(count: columns, eps: eps, seed: 0, stream: Streams.buffer(1), on: device)
  }

  /// A standard normal vector (host Philox, `Init.normalValues`) divided by max(its norm, eps): the
  /// initial u and v (torch's `normalize(W.new_empty(n).normal_(0, 1))`).
  public static func unitNormal(count: Int, eps: Float, seed: UInt64, stream: Int, on device: Device) throws
    -> Tensor
  {
    let z = try Init.normalValues(count: count, seed: seed, stream: stream)
    let norm = z.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    let scale = 1 / Swift.max(norm, Double(eps))
    return try Tensor(z.map { Float(Double($0) * scale) }, shape: [count], on: device)
  }

  /// The weight as the (rows, columns) matrix whose largest singular value is σ (differentiable): a reshape
  /// for dim 0, axis `dim` moved first then a reshape otherwise (torch's `reshape_weight_to_matrix`).
  public func matrix(_ weight: Tensor) throws -> Tensor {
    let w = dim == 0 ? weight : try weight.permuted([dim] + (0..<weight.rank).filter { $0 != dim })
    return try w.reshaped([matrixShape.rows, matrixShape.columns])
  }

  /// Runs `powerIterations` updates v = normalize(Wᵀu), u = normalize(Wv) in place (not recorded).
  public func powerIterate(_ weight: Tensor) throws {
    try Tape.noGrad {
      let m = try matrix(weight)
      for _ in 0..<powerIterations {
        try v.assign(try normalized(try Tensor.gemm(m, try u.reshaped([matrixShape.rows, 1]), transA: true)))
        try u.assign(try normalized(try Tensor.gemm(m, try v.reshaped([matrixShape.columns, 1]))))
      }
    }
  }

  /// σ = uᵀ·W·v with the stored u and v (constants: copied when a tape records, since a later training
  /// forward updates them in place), differentiable with respect to `weight`; shape [1].
  public func sigma(of weight: Tensor) throws -> Tensor {
    let (uc, vc) = Tape.isRecording ? try Tape.noGrad { (try u.copy(), try v.copy()) } : (u, v)
    let wv = try Tensor.gemm(try matrix(weight), try vc.reshaped([matrixShape.columns, 1]))
    return try Tensor.gemm(try uc.reshaped([1, matrixShape.rows]), wv).reshaped([1])
  }

  /// W/σ(W): after `powerIterate` when `training`, with the stored u and v otherwise.
  public func normalizedWeight(_ weight: Tensor, training: Bool) throws -> Tensor {
    if training { try powerIterate(weight) }
    return try weight / sigma(of: weight)
  }

  /// x / max(‖x‖, eps) for a vector (any shape), flattened to 1-D.
  private func normalized(_ x: Tensor) throws -> Tensor {
    let norm = try (x * x).sum().sqrt().maximum(eps)
    return try (x / norm).reshaped([x.count])
  }
}

/// A layer whose weight can be spectrally normalised: `Linear`, `Conv2d`, `ConvTranspose2d`, `Embedding`.
public protocol SpectralNormalizable: Module {
  /// The spectral normalisation, once `applySpectralNorm` has run (nil before).
  var spectralNorm: SpectralNorm? { get }
  /// Divides the weight by its largest singular value in every forward (torch's `spectral_norm`): the
  /// parameter weight becomes weight_orig, and buffers weight_u and weight_v are added to the layer. Apply
  /// it before `Module.initialize(seed:slot:)`, which then draws u and v from the run's seed.
  func applySpectralNorm(powerIterations: Int, eps: Float) throws
}

extension Module {
  /// Attaches spectral normalisation to the parameter "weight" (`weight`, matrix rows along `dim`): renames
  /// it weight_orig and registers weight_u and weight_v, redrawn by `initialize(seed:slot:)`.
  func attachSpectralNorm(
    to weight: Tensor, dim: Int, existing: SpectralNorm?, powerIterations: Int, eps: Float
  ) throws -> SpectralNorm {
    guard existing == nil else {
      throw ModuleError.invalidArgument("spectral norm is already applied to this \(type(of: self))")
    }
    let sn = try SpectralNorm(
      weightShape: weight.shape, dim: dim, powerIterations: powerIterations, eps: eps, on: weight.device)
    try renameParameter("weight", to: "weight_orig")
    let device = weight.device
    let (rows, columns) = sn.matrixShape
    buffer("weight_u", sn.u) { seed, stream in
      try SpectralNorm.unitNormal(count: rows, eps: eps, seed: seed, stream: stream, on: device)
    }
    buffer("weight_v", sn.v) { seed, stream in
      try SpectralNorm.unitNormal(count: columns, eps: eps, seed: seed, stream: stream, on: device)
    }
    return sn
  }
}
