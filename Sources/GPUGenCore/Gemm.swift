// Matrix products on tensors: GEMM with transposes, batching, alpha/beta and a fused epilogue.

extension Tensor {
  /// `act(alpha · op(a) · op(b) + beta · c + bias)`.
  ///
  /// - a: (M, K) or batched (B, M, K); (K, M) / (B, K, M) when `transA`.
  /// - b: (K, N) or (B, K, N), or (N, K) / (B, N, K) when `transB`. A 2-D operand is shared by every batch.
  /// - c: (M, N) or (B, M, N), read when `beta` ≠ 0 (never modified).
  /// - bias: length N (`.perColumn`) or M (`.perRow`).
  public static func gemm(
    _ a: Tensor, _ b: Tensor, transA: Bool = false, transB: Bool = false, alpha: Float = 1, beta: Float = 0,
    c: Tensor? = nil, bias: Tensor? = nil, biasMode: BiasMode = .perColumn, activation: Activation = .none,
    activationAlpha: Float = 0.01
  ) throws -> Tensor {
    if activation != .none, Tape.recording([a, b, c, bias]) != nil {
      // Training: keep the pre-activation so that the activation's gradient can be taken.
      let z = try gemm(
        a, b, transA: transA, transB: transB, alpha: alpha, beta: beta, c: c, bias: bias, biasMode: biasMode)
      return try z.apply(activation.unaryOp, alpha: activationAlpha)
    }
    try a.sameDevice(b, "gemm")
    guard (2...3).contains(a.rank), (2...3).contains(b.rank) else {
      throw GPUGenError.shapeMismatch(op: "gemm (operands must be 2-D or 3-D)", lhs: a.shape, rhs: b.shape)
    }
    let batchA = a.rank == 3 ? a.shape[0] : 1, batchB = b.rank == 3 ? b.shape[0] : 1
    guard batchA == batchB || a.rank == 2 || b.rank == 2 else {
      throw GPUGenError.shapeMismatch(op: "gemm (batch)", lhs: a.shape, rhs: b.shape)
    }
    let batch = Swift.max(batchA, batchB)
    let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
    let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
    let (m, k) = transA ? (ac, ar) : (ar, ac)
    let (k2, n) = transB ? (bc, br) : (br, bc)
    guard k == k2 else {
      throw GPUGenError.shapeMismatch(op: "gemm (inner dimensions)", lhs: a.shape, rhs: b.shape)
    }
    let outShape = (a.rank == 3 || b.rank == 3) ? [batch, m, n] : [m, n]
    var d = GemmDescriptor(m: m, n: n, k: k, transA: transA, transB: transB)
    d.alpha = alpha
    d.beta = c == nil ? 0 : beta
    d.batch = batch
    d.strideA = a.rank == 3 ? m * k : 0
    d.strideB = b.rank == 3 ? k * n : 0
    d.strideC = m * n
    d.activation = activation
    d.activationAlpha = activationAlpha
    let y: Tensor
    if let c, beta != 0 {
      guard c.shape == outShape else {
        throw GPUGenError.shapeMismatch(op: "gemm (C)", lhs: c.shape, rhs: outShape)
      }
      try a.sameDevice(c, "gemm")
      y = try Tape.noGrad { try c.copy() }
    } else {
      y = try Tensor(uninitialized: outShape, on: a.device)
    }
    if let bias {
      try a.sameDevice(bias, "gemm")
      let want = biasMode == .perRow ? m : n
      guard bias.count == want, biasMode != .none else {
        throw GPUGenError.shapeMismatch(op: "gemm (bias)", lhs: bias.shape, rhs: [want])
      }
      d.biasMode = biasMode
    }
    try a.backend.gemm(d, a.buffer, b.buffer, y.buffer, bias: bias?.buffer)
    var inputs = [a, b]
    if let c, beta != 0 { inputs.append(c) }
    if let bias { inputs.append(bias) }
    Tape.record(y, inputs) { [d] dy, needs in
      try Tensor.gemmBackward(
        a, b, c: c != nil && beta != 0 ? c : nil, bias: bias, d: d, dy: dy, needs: needs)
    }
    return y
  }

  /// Matrix product: (M, K)·(K, N), or batched (B, M, K)·(B, K, N) / (B, M, K)·(K, N).
  public func matmul(_ other: Tensor) throws -> Tensor { try Tensor.gemm(self, other) }
}
