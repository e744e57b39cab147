// The device seam: one protocol that both the OpenCL and the native CPU backend implement in full.
import Foundation

/// Elementwise unary operations.
public enum UnaryOp: String, CaseIterable, Sendable {
  case neg, abs, exp, log, sqrt, rsqrt, sin, cos, tanh, sigmoid, relu
  case leakyRelu = "leaky_relu"
  case silu, gelu
}

/// Elementwise binary operations (NumPy broadcasting).
public enum BinaryOp: String, CaseIterable, Sendable {
  case add, sub, mul, div, pow, maximum, minimum
}

/// Reductions over a set of axes.
public enum ReduceOp: Int32, CaseIterable, Sendable {
  case sum = 0
  case mean = 1
  case max = 2
  case variance = 3
}

/// Activation applied in the GEMM epilogue. Raw values match `ACT_*` in Kernels/common.cl.
public enum Activation: Int32, Sendable {
  case none = 0
  case relu = 1
  case leakyRelu = 2
  case silu = 3
  case gelu = 4
  case sigmoid = 5
  case tanh = 6
}

/// Which way a GEMM bias is broadcast.
public enum BiasMode: Int32, Sendable {
  case none = 0
  /// One value per column of C (length N): `y = x·Wᵀ + b`.
  case perColumn = 1
  /// One value per row of C (length M): convolution as `W · im2col`.
  case perRow = 2
}

/// A row-major, strided-batched GEMM: C = act(alpha·op(A)·op(B) + beta·C + bias).
public struct GemmDescriptor: Sendable, Equatable {
  public var m: Int, n: Int, k: Int
  public var transA = false, transB = false
  public var alpha: Float = 1, beta: Float = 0
  public var lda: Int, ldb: Int, ldc: Int
  public var batch = 1
  public var strideA = 0, strideB = 0, strideC = 0
  public var biasMode = BiasMode.none
  public var activation = Activation.none
  public var activationAlpha: Float = 0.01

  /// A dense GEMM with leading dimensions implied by the shapes.
  public init(m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false) {
    self.m = m
    self.n = n
    self.k = k
    self.transA = transA
    self.transB = transB
    lda = transA ? m : k
    ldb = transB ? k : n
    ldc = n
    strideA = m * k
    strideB = k * n
    strideC = m * n
  }
}

/// The layout of a broadcast elementwise operation: an output shape plus, per operand, element
/// strides into that operand (0 along broadcast axes).
public struct BroadcastLayout: Sendable, Equatable {
  public var shape: [Int]
  public var strides: [[Int]]
  public var count: Int { shape.reduce(1, *) }
}

/// A strided copy: for every index `i` of `shape`, `y[yOffset + i·yStrides] = x[xOffset + i·xStrides]`.
public struct StridedCopy: Sendable, Equatable {
  public var shape: [Int]
  public var xStrides: [Int], xOffset: Int
  public var yStrides: [Int], yOffset: Int
}

/// Device memory: a handle owned by one backend. Returned to the backend's pool when released. The capacity is
/// the request rounded up to the pool's size class.
public final class Buffer: @unchecked Sendable {
  /// Backend-specific handle (`cl_mem` or a host pointer).
  public let handle: UnsafeMutableRawPointer
  /// Capacity in floats.
  public let capacity: Int
  let backend: any Backend

  init(handle: UnsafeMutableRawPointer, capacity: Int, backend: any Backend) {
    self.handle = handle
    self.capacity = capacity
    self.backend = backend
  }

  deinit { backend.recycle(handle: handle, capacity: capacity) }
}

/// Counters that make the engine's steady-state behaviour observable.
public struct BackendStats: Sendable, Equatable {
  /// Device buffers created (pool misses).
  public var allocations = 0
  /// Buffers served from the pool.
  public var poolHits = 0
  /// Kernel programs compiled from source.
  public var programsCompiled = 0
  /// Kernel programs loaded from the on-disk binary cache.
  public var programsFromCache = 0
  /// Kernel launches.
  public var launches = 0
  /// Bytes of free buffers held in the pool for reuse (never above the pool's cap).
  public var pooledBytes = 0
}

/// The device seam. Both backends implement every method.
public protocol Backend: AnyObject {
  /// A human-readable device name.
  var name: String { get }
  /// Counters (allocations, pool hits, compiles).
  var stats: BackendStats { get }

  // Memory.
  func allocate(_ count: Int) throws -> Buffer
  func recycle(handle: UnsafeMutableRawPointer, capacity: Int)
  func freePool()
  func upload(_ values: UnsafeBufferPointer<Float>, to buffer: Buffer) throws
  func download(_ buffer: Buffer, count: Int) throws -> [Float]
  func synchronize() throws

  // Math. Every output buffer is distinct from the inputs unless stated otherwise.
  func fill(_ y: Buffer, count: Int, value: Float) throws
  func unary(_ op: UnaryOp, _ x: Buffer, _ y: Buffer, count: Int, alpha: Float) throws
  func binary(_ op: BinaryOp, _ a: Buffer, _ b: Buffer, _ y: Buffer, layout: BroadcastLayout) throws
  func binaryScalar(
    _ op: BinaryOp, _ a: Buffer, scalar: Float, scalarFirst: Bool, _ y: Buffer, count: Int) throws
  func clamp(_ x: Buffer, _ y: Buffer, count: Int, lower: Float, upper: Float) throws
  func select(_ cond: Buffer, _ a: Buffer, _ b: Buffer, _ y: Buffer, layout: BroadcastLayout) throws
  func copyStrided(_ x: Buffer, _ y: Buffer, _ copy: StridedCopy) throws
  /// Reduces the middle axis of an (outer, r, inner) contiguous view into (outer, inner).
  func reduce(
    _ op: ReduceOp, _ x: Buffer, _ y: Buffer, outer: Int, r: Int, inner: Int, correction: Int) throws
  /// Softmax (or log-softmax) along the middle axis of an (outer, r, inner) view.
  func softmax(_ x: Buffer, _ y: Buffer, outer: Int, r: Int, inner: Int, log: Bool) throws
  func gemm(_ d: GemmDescriptor, _ a: Buffer, _ b: Buffer, _ c: Buffer, bias: Buffer?) throws

  // Convolution and normalisation.
  /// Unfolds NCHW `x` into `col` of shape (C·KH·KW, N·HO·WO) (or (N, C·KH·KW, HO·WO) when
  /// `g.batchMajor`), zero-padded, so a convolution is one GEMM (or one strided-batched GEMM).
  func im2col(_ x: Buffer, _ col: Buffer, _ g: ConvGeometry) throws
  /// 2-D convolution of NCHW `x` with `weight` (Cout, C, KH, KW) into `y` (N, Cout, HO, WO), with the bias
  /// and activation fused.
  func conv2d(
    _ x: Buffer, weight: Buffer, bias: Buffer?, _ y: Buffer, _ g: ConvGeometry, cout: Int,
    activation: Activation,
    activationAlpha: Float) throws
  /// conv2d (no activation) plus `imageBias` (N, Cout: a per-image, per-channel bias such as a projected
  /// time embedding) and `residual` (shaped like `y`), added as the output is written where the backend
  /// fuses it (the protocol extension's version adds them afterwards).
  func conv2dAdding(
    _ x: Buffer, weight: Buffer, bias: Buffer?, imageBias: Buffer?, residual: Buffer?, _ y: Buffer,
    _ g: ConvGeometry, cout: Int) throws
  /// Group normalisation of (N, C, HW) with per-channel `gamma`/`beta`, optionally followed by SiLU.
  func groupNorm(
    _ x: Buffer, _ y: Buffer, gamma: Buffer, beta: Buffer, n: Int, c: Int, hw: Int, groups: Int, eps: Float,
    silu: Bool) throws

  /// Training-mode batch normalisation of (N, C, HW) per channel: the batch mean and biased variance (two
  /// passes), y = act((x − mean)·invstd·γ + β) with invstd = 1/√(var + eps) (γ, β nil: 1 and 0); writes
  /// `mean` and `invstd` (C each) for the backward and, when `runningMean` and `runningVar` are given, updates
  /// them in place: r ← r·(1 − momentum) + s·momentum, with the unbiased variance (as PyTorch).
  func batchNormTraining(
    _ x: Buffer, _ y: Buffer, gamma: Buffer?, beta: Buffer?, mean: Buffer, invstd: Buffer,
    runningMean: Buffer?,
    runningVar: Buffer?, momentum: Float, _ g: BatchNormGeometry) throws
  /// Evaluation-mode batch normalisation: y = act((x − runningMean)/√(runningVar + eps)·γ + β).
  func batchNormInference(
    _ x: Buffer, _ y: Buffer, gamma: Buffer?, beta: Buffer?, runningMean: Buffer, runningVar: Buffer,
    _ g: BatchNormGeometry) throws

  // Gradients (the backward halves that are not compositions of the forward ops).
  /// `dx = dy · f′(x)` for a unary op (`alpha` as in `unary`). ReLU′ and leaky ReLU′ at 0 are 0 and
  /// `alpha`, |x|′ at 0 is 0 (as in PyTorch).
  func unaryGrad(_ op: UnaryOp, _ x: Buffer, _ dy: Buffer, _ dx: Buffer, count: Int, alpha: Float) throws
  /// `dx = dy` where `lower ≤ x ≤ upper`, else 0 (clamp's gradient, as in PyTorch).
  func clampGrad(_ x: Buffer, _ dy: Buffer, _ dx: Buffer, count: Int, lower: Float, upper: Float) throws
  /// The adjoint of `im2col`: every element of NCHW `x` becomes the sum of the `col` entries that
  /// `im2col` copies from it (the whole of `x` is written). Used by conv2d's input gradient and by
  /// transposed convolution.
  func col2im(_ col: Buffer, _ x: Buffer, _ g: ConvGeometry) throws
  /// conv2d's weight gradient computed directly, `dw` (Cout, C, KH, KW) = Σₙ dYₙ ⋆ xₙ, for the geometries
  /// the backend has a kernel for; returns false (writing nothing) otherwise, and the caller takes the
  /// im2col + GEMM path.
  func conv2dWeightGradient(_ x: Buffer, _ dy: Buffer, _ dw: Buffer, _ g: ConvGeometry, cout: Int) throws
    -> Bool
  /// Group norm (+ fused SiLU) backward over (N, C, HW): writes `dx`, and per (n, c) the partial sums
  /// `dgamma` = Σ_hw dA·x̂ and `dbeta` = Σ_hw dA (each (N, C); the caller sums over N).
  func groupNormBackward(
    _ x: Buffer, _ dy: Buffer, gamma: Buffer, beta: Buffer, dx: Buffer, dgamma: Buffer, dbeta: Buffer, n: Int,
    c: Int, hw: Int, groups: Int, eps: Float, silu: Bool) throws

  /// Batch norm backward over (N, C, HW): dA = dy·act′ (read from the output `y`, nil without an
  /// activation), per channel `dgamma` = Σ dA·x̂ and `dbeta` = Σ dA with x̂ = (x − mean)·invstd, and
  /// dx = γ·invstd·(dA − Σ dA/M − x̂·Σ dA·x̂/M) over the M = N·HW values of a channel when `training` (the
  /// statistics came from the batch), else dx = γ·invstd·dA.
  func batchNormBackward(
    _ x: Buffer, _ y: Buffer?, _ dy: Buffer, gamma: Buffer?, mean: Buffer, invstd: Buffer, dx: Buffer,
    dgamma: Buffer, dbeta: Buffer, training: Bool, _ g: BatchNormGeometry) throws

  // Noise.
  /// Fills `y` (samples × perSample, row-major) with standard normals: Philox4x32-10 with key = `seed`
  /// and counter (block, firstSample + i, step, stream) gives elements 4·block..<4·block+4 of row i
  /// (Box–Muller). Throws `invalidArgument` unless every counter word (sample, step, stream) fits in 32 bits.
  func randomNormal(
    _ y: Buffer, samples: Int, perSample: Int, firstSample: Int, seed: UInt64, step: Int, stream: Int) throws
  /// Fills `y` like `randomNormal`, with the uniforms in (0, 1] of the same Philox words
  /// (`Philox4x32.uniform`): element 4·block + e of row i is the uniform of word e.
  func randomUniform(
    _ y: Buffer, samples: Int, perSample: Int, firstSample: Int, seed: UInt64, step: Int, stream: Int) throws

  // Sampling.
  /// One fused sampler update over (samples, perSample) with Philox noise (see `SamplerUpdate`); `older` holds
  /// prev2 and prev3 as far as `update.historyDepth` reads them. With `thresholdScales` (one s per sample),
  /// x0 becomes clamp(x0, −s, s)/s instead of being clipped to `update.clipRange`.
  func samplerStep(
    _ x: Buffer, _ m: Buffer, prev: Buffer?, older: [Buffer], out: Buffer, aux: Buffer?,
    thresholdScales: Buffer?,
    update: SamplerUpdate,
    samples: Int,
    perSample: Int, firstSample: Int, seed: UInt64, step: Int, stream: Int) throws

  // Training.
  /// One fused optimizer step over `count` elements (see `OptimizerUpdate`): updates `param` in place from
  /// `grad`, reading and writing `state1` (SGD's momentum buffer, Adam's exp_avg) and `state2` (Adam's
  /// exp_avg_sq); each is non-nil exactly when `update.usesState1` / `update.usesState2`.
  func optimizerStep(
    _ param: Buffer, _ grad: Buffer, _ state1: Buffer?, _ state2: Buffer?, count: Int,
    update: OptimizerUpdate) throws
  /// `ema ← ema − (1 − decay)·(ema − param)` over `count` elements, in place: diffusers' `EMAModel.step`, with
  /// `1 − decay` computed in Double and rounded once to float32.
  func emaUpdate(_ ema: Buffer, _ param: Buffer, count: Int, decay: Double) throws
  /// `y[slot] = Σ x[i]²` over `count` elements, accumulated in a tree (pairs of partial sums), not in one
  /// running float sum.
  func sumOfSquares(_ x: Buffer, _ y: Buffer, count: Int, slot: Int) throws
}

extension ConvGeometry {
  /// GPUGEN_WINOGRAD=0 turns the Winograd convolutions off on every backend (for comparisons).
  static let winogradEnabled = ProcessInfo.processInfo.environment["GPUGEN_WINOGRAD"] != "0"

  /// A 3×3 stride-1 convolution with at least 16 input and output channels: the backends run these as
  /// Winograd F(4×4, 3×3) (4× fewer multiply-adds; relative error ≈ 3e-6 of the output's magnitude).
  func winogradCandidate(cout: Int) -> Bool {
    Self.winogradEnabled && kh == 3 && kw == 3 && strideH == 1 && strideW == 1 && c >= 16 && cout >= 16
  }
}

extension Backend {
  public func conv2dAdding(
    _ x: Buffer, weight: Buffer, bias: Buffer?, imageBias: Buffer?, residual: Buffer?, _ y: Buffer,
    _ g: ConvGeometry, cout: Int
  ) throws {
    try conv2dThenAdd(
      x, weight: weight, bias: bias, imageBias: imageBias, residual: residual, y, g, cout: cout)
  }

  /// conv2dAdding as conv2d followed by two broadcast additions.
  func conv2dThenAdd(
    _ x: Buffer, weight: Buffer, bias: Buffer?, imageBias: Buffer?, residual: Buffer?, _ y: Buffer,
    _ g: ConvGeometry, cout: Int
  ) throws {
    try conv2d(x, weight: weight, bias: bias, y, g, cout: cout, activation: .none, activationAlpha: 0)
    let p = g.ho * g.wo
    if let imageBias {
      try binary(
        .add, y, imageBias, y, layout: BroadcastLayout(shape: [g.n * cout, p], strides: [[p, 1], [1, 0]]))
    }
    if let residual {
      let count = g.n * cout * p
      try binary(.add, y, residual, y, layout: BroadcastLayout(shape: [count], strides: [[1], [1]]))
    }
  }

  public func conv2dWeightGradient(_ x: Buffer, _ dy: Buffer, _ dw: Buffer, _ g: ConvGeometry, cout: Int)
    throws
    -> Bool
  { false }

  /// `y[0] = Σ x[i]²` over `count` elements.
  public func sumOfSquares(_ x: Buffer, _ y: Buffer, count: Int) throws {
    try sumOfSquares(x, y, count: count, slot: 0)
  }
}

/// A batch normalisation over (N, C, HW), per channel, and its fused epilogue.
public struct BatchNormGeometry: Sendable, Equatable {
  /// Images, channels and values per image and channel (H·W).
  public var n: Int, c: Int, hw: Int
  /// Variance epsilon.
  public var eps: Float
  /// `.none`, `.relu` or `.leakyRelu` (slope `activationAlpha`), applied after the affine.
  public var activation: Activation
  /// The leaky ReLU slope.
  public var activationAlpha: Float

  /// A batch normalisation of (n, c, hw) followed by `activation`.
  public init(
    n: Int, c: Int, hw: Int, eps: Float, activation: Activation = .none, activationAlpha: Float = 0
  ) {
    (self.n, self.c, self.hw, self.eps) = (n, c, hw, eps)
    (self.activation, self.activationAlpha) = (activation, activationAlpha)
  }

  /// The values normalised together per channel (N·HW).
  public var perChannel: Int { n * hw }

  /// Throws unless the activation is one the batch-norm kernels fuse.
  func validate() throws {
    guard activation == .none || activation == .relu || activation == .leakyRelu else {
      throw GPUGenError.invalidArgument(
        "batch norm fuses no activation, ReLU or leaky ReLU, not \(activation)")
    }
  }
}

/// The geometry of a 2-D convolution over an NCHW batch.
public struct ConvGeometry: Sendable, Equatable {
  public var n: Int, c: Int, h: Int, w: Int
  public var kh: Int, kw: Int
  public var strideH: Int, strideW: Int
  /// Zero padding before (top, left) and after (bottom, right) the image.
  public var padT: Int, padL: Int, padB: Int, padR: Int
  /// Unfold to (N, C·KH·KW, HO·WO) instead of (C·KH·KW, N·HO·WO).
  public var batchMajor = false

  public init(
    n: Int, c: Int, h: Int, w: Int, kh: Int, kw: Int, strideH: Int = 1, strideW: Int = 1, padT: Int = 0,
    padL: Int = 0, padB: Int = 0, padR: Int = 0
  ) {
    (self.n, self.c, self.h, self.w, self.kh, self.kw) = (n, c, h, w, kh, kw)
    (self.strideH, self.strideW, self.padT, self.padL, self.padB, self.padR) = (
      strideH, strideW, padT, padL, padB, padR
    )
  }

  /// Output height and width.
  public var ho: Int { (h + padT + padB - kh) / strideH + 1 }
  public var wo: Int { (w + padL + padR - kw) / strideW + 1 }
  /// Rows of the unfolded matrix (C·KH·KW).
  public var k: Int { c * kh * kw }
  /// Columns of the unfolded matrix (N·HO·WO).
  public var columns: Int { n * ho * wo }
  /// A 1×1, stride-1, unpadded convolution: the input already is the unfolded matrix.
  public var isPointwise: Bool {
    kh == 1 && kw == 1 && strideH == 1 && strideW == 1 && padT + padL + padB + padR == 0
  }
}
