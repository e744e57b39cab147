// Neural-network forward ops on tensors: convolution, group norm, linear, upsampling, attention.
import Foundation

extension Tensor {
  /// 2-D convolution of an NCHW batch with `weight` (Cout, Cin, KH, KW) and optional `bias` (Cout).
  /// Padding is (top, left, bottom, right); the activation is fused into the GEMM epilogue.
  /// `imageBias` (N, Cout: a per-image, per-channel bias such as a ResNet block's projected time embedding)
  /// and `residual` (shaped like the output) are added to the output before the activation; backends that
  /// can (the CPU's direct kernel) add them while writing it, saving two passes. One tape node either way.
  public func conv2d(
    weight: Tensor, bias: Tensor? = nil, stride: (Int, Int) = (1, 1),
    padding: (Int, Int, Int, Int) = (0, 0, 0, 0),
    activation: Activation = .none, activationAlpha: Float = 0.01, imageBias: Tensor? = nil,
    residual: Tensor? = nil
  ) throws -> Tensor {
    if canUseSpaceToDepth(weight: weight, stride: stride, padding: padding) {
      return try spaceToDepthConv2d(
        weight: weight, bias: bias, activation: activation, activationAlpha: activationAlpha,
        imageBias: imageBias,
        residual: residual)
    }
    let extras = imageBias != nil || residual != nil
    // Training keeps a ReLU / leaky ReLU fused: its derivative is read from the output.
    let fusedGradient = Tensor.activationHasOutputGradient(activation, alpha: activationAlpha)
    if activation != .none, extras || (!fusedGradient && Tape.recording([self, weight, bias]) != nil) {
      return try conv2d(
        weight: weight, bias: bias, stride: stride, padding: padding, imageBias: imageBias, residual: residual
      ).apply(activation.unaryOp, alpha: activationAlpha)
    }
    guard rank == 4, weight.rank == 4, weight.shape[1] == shape[1] else {
      throw GPUGenError.shapeMismatch(op: "conv2d (input NCHW vs weight OIHW)", lhs: shape, rhs: weight.shape)
    }
    guard stride.0 > 0, stride.1 > 0, [padding.0, padding.1, padding.2, padding.3].allSatisfy({ $0 >= 0 })
    else {
      throw GPUGenError.invalidArgument("conv2d: stride must be positive and padding non-negative")
    }
    try sameDevice(weight, "conv2d")
    let g = ConvGeometry(
      n: shape[0], c: shape[1], h: shape[2], w: shape[3], kh: weight.shape[2], kw: weight.shape[3],
      strideH: stride.0, strideW: stride.1, padT: padding.0, padL: padding.1, padB: padding.2, padR: padding.3
    )
    guard g.ho > 0, g.wo > 0 else {
      throw GPUGenError.shapeMismatch(
        op: "conv2d (kernel larger than padded input)", lhs: shape, rhs: weight.shape)
    }
    let cout = weight.shape[0]
    if let bias, bias.count != cout {
      throw GPUGenError.shapeMismatch(op: "conv2d (bias)", lhs: bias.shape, rhs: [cout])
    }
    if let imageBias, imageBias.count != g.n * cout {
      throw GPUGenError.shapeMismatch(op: "conv2d (per-image bias)", lhs: imageBias.shape, rhs: [g.n, cout])
    }
    let outShape = [g.n, cout, g.ho, g.wo]
    if let residual, residual.shape != outShape {
      throw GPUGenError.shapeMismatch(op: "conv2d (residual)", lhs: residual.shape, rhs: outShape)
    }
    for t in [imageBias, residual].compactMap({ $0 }) { try sameDevice(t, "conv2d") }
    let y = try Tensor(uninitialized: outShape, on: device)
    if y.count > 0 && extras {
      try backend.conv2dAdding(
        buffer, weight: weight.buffer, bias: bias?.buffer, imageBias: imageBias?.buffer,
        residual: residual?.buffer, y.buffer, g, cout: cout)
    } else if y.count > 0 {
      try backend.conv2d(
        buffer, weight: weight.buffer, bias: bias?.buffer, y.buffer, g, cout: cout, activation: activation,
        activationAlpha: activationAlpha)
    }
    // The convolution's gradients, plus Σ_hw dY for the per-image bias and dY itself for the residual.
    Tape.record(y, [self, weight] + [bias, imageBias, residual].compactMap { $0 }) { dyOut, needs in
      let dy =
        activation == .none
        ? dyOut : try dyOut.unaryGradient(activation.unaryOp, x: y, alpha: activationAlpha)
      let (dx, dw) = try Tensor.convBackward(
        x: self, weight: weight, dy, g, cout: cout, input: needs[0], weight: needs[1])
      var grads: [Tensor?] = [dx, try dw?.reshaped(weight.shape)]
      if let bias {
        grads.append(needs[grads.count] ? try dy.sum(axes: [0, 2, 3]).reshaped(bias.shape) : nil)
      }
      if let imageBias {
        grads.append(needs[grads.count] ? try dy.sum(axes: [2, 3]).reshaped(imageBias.shape) : nil)
      }
      if residual != nil { grads.append(needs[grads.count] ? dy : nil) }
      return grads
    }
    return y
  }

  public func conv2d(weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0) throws -> Tensor
  {
    try conv2d(
      weight: weight, bias: bias, stride: (stride, stride), padding: (padding, padding, padding, padding))
  }

  /// Group normalisation of (N, C, …) over each group of C/groups channels, with per-channel affine
  /// `weight`/`bias` (C), optionally followed by SiLU.
  public func groupNorm(groups: Int, weight: Tensor, bias: Tensor, eps: Float = 1e-5, silu: Bool = false)
    throws
    -> Tensor
  {
    guard rank >= 2, groups > 0, shape[1] % groups == 0 else {
      throw GPUGenError.invalidArgument("groupNorm: \(groups) groups do not divide the channels of \(shape)")
    }
    guard weight.count == shape[1], bias.count == shape[1] else {
      throw GPUGenError.shapeMismatch(op: "groupNorm (affine)", lhs: shape, rhs: weight.shape)
    }
    let y = try Tensor(uninitialized: shape, on: device)
    let hw = shape[2...].reduce(1, *)
    if count > 0 {
      try backend.groupNorm(
        buffer, y.buffer, gamma: weight.buffer, beta: bias.buffer, n: shape[0], c: shape[1], hw: hw,
        groups: groups,
        eps: eps, silu: silu)
    }
    Tape.record(y, [self, weight, bias]) { dy, needs in
      try Tensor.groupNormBackward(
        self, dy, weight: weight, bias: bias, groups: groups, eps: eps, silu: silu, needs: needs)
    }
    return y
  }

  /// `x · weightᵀ + bias` over the last axis, with `weight` (out, in) as PyTorch stores it; `activationAlpha`
  /// is the negative slope of a fused leaky ReLU.
  public func linear(
    weight: Tensor, bias: Tensor? = nil, activation: Activation = .none, activationAlpha: Float = 0.01
  ) throws -> Tensor {
    guard weight.rank == 2, rank >= 1, shape[rank - 1] == weight.shape[1] else {
      throw GPUGenError.shapeMismatch(op: "linear", lhs: shape, rhs: weight.shape)
    }
    let rows = count / Swift.max(shape[rank - 1], 1)
    let y = try Tensor.gemm(
      try reshaped([rows, shape[rank - 1]]), weight, transB: true, bias: bias, biasMode: .perColumn,
      activation: activation, activationAlpha: activationAlpha)
    return try y.reshaped(Array(shape.dropLast()) + [weight.shape[0]])
  }

  /// Nearest-neighbour ×2 upsampling of the last two axes (N, C, H, W) → (N, C, 2H, 2W).
  public func upsampleNearest2x() throws -> Tensor {
    guard rank >= 2 else {
      throw GPUGenError.invalidArgument("upsampleNearest2x: need rank ≥ 2, got \(shape)")
    }
    let (h, w) = (shape[rank - 2], shape[rank - 1])
    let lead = shape.dropLast(2).reduce(1, *)
    let y = try Tensor(uninitialized: Array(shape.dropLast(2)) + [2 * h, 2 * w], on: device)
    guard y.count > 0 else { return y }
    // y viewed as (lead, H, 2, W, 2) reads x with stride 0 along both repeat axes.
    try backend.copyStrided(
      buffer, y.buffer,
      StridedCopy(
        shape: [lead, h, 2, w, 2], xStrides: [h * w, w, 0, 1, 0], xOffset: 0,
        yStrides: [4 * h * w, 4 * w, 2 * w, 2, 1], yOffset: 0))
    Tape.record(y, [self]) { [shape] dy, _ in
      [try dy.reshaped([lead, h, 2, w, 2]).sum(axes: [2, 4]).reshaped(shape)]
    }
    return y
  }

  /// softmax(Q·Kᵀ·scale)·V for (B, L, D) queries and (B, S, D) keys/values (B = batch × heads).
  public static func attention(query q: Tensor, key k: Tensor, value v: Tensor, scale: Float? = nil) throws
    -> Tensor
  {
    guard q.rank == 3, k.rank == 3, v.rank == 3, q.shape[0] == k.shape[0], q.shape[2] == k.shape[2],
      k.shape[0] == v.shape[0], k.shape[1] == v.shape[1]
    else { throw GPUGenError.shapeMismatch(op: "attention (query vs key)", lhs: q.shape, rhs: k.shape) }
    let s = scale ?? 1 / Float(q.shape[2]).squareRoot()
    let scores = try Tensor.gemm(q, k, transB: true, alpha: s)
    return try Tensor.gemm(try scores.softmax(axis: -1), v)
  }

  /// One-hot rows (N, classes) for integer labels, on `device`.
  public static func oneHot(_ labels: [Int], classes: Int, on device: Device) throws -> Tensor {
    var v = [Float](repeating: 0, count: labels.count * classes)
    for (i, l) in labels.enumerated() {
      guard l >= 0 && l < classes else {
        throw GPUGenError.invalidArgument("class label \(l) is out of range 0..<\(classes)")
      }
      v[i * classes + l] = 1
    }
    return try Tensor(v, shape: [labels.count, classes], on: device)
  }
}
