// Convolution gradients (and transposed convolution) from im2col, GEMM and col2im.
//
// Both passes work on chunks of whole images so that the unfolded matrix stays bounded
// (`maxColumnFloats`): input gradient  col = Wᵀ·dY per image, then col2im;
//                     weight gradient  dW = Σₙ dYₙ · colₙᵀ (a strided-batched GEMM, summed over the chunk).

extension Tensor {
  /// The largest unfolded matrix (floats) one chunk may use.
  static let maxColumnFloats = 1 << 24

  static func imagesPerChunk(_ g: ConvGeometry) -> Int {
    Swift.max(1, Swift.min(g.n, maxColumnFloats / Swift.max(g.k * g.ho * g.wo, 1)))
  }

  /// Images `start..<end` of an NCHW batch (self when that is all of it).
  func images(_ start: Int, _ end: Int) throws -> Tensor {
    start == 0 && end == shape[0] ? self : try slice(axis: 0, start: start, end: end)
  }

  /// The gradient of conv2d with respect to its input: dY (N, Cout, HO, WO) → dX (N, C, H, W).
  static func convInputGradient(_ dy: Tensor, weight: Tensor, _ g: ConvGeometry) throws -> Tensor {
    try convBackward(x: nil, weight: weight, dy, g, cout: weight.shape[0], input: true, weight: false).dx!
  }

  /// The gradient of conv2d with respect to its weight, as (Cout, C·KH·KW).
  static func convWeightGradient(_ x: Tensor, _ dy: Tensor, _ g: ConvGeometry, cout: Int) throws -> Tensor {
    try convBackward(x: x, weight: nil, dy, g, cout: cout, input: false, weight: true).dw!
  }

  /// Both conv2d gradients. The backend's direct kernels come first (a weight-gradient kernel where it has
  /// one; stride-1 input gradients as a forward convolution); the rest takes one pass over image chunks.
  /// Per chunk, dY is laid out as (Cout, n·HO·WO) so that each gradient is one large GEMM over the whole
  /// chunk (no per-image products to sum):
  /// dW += dY′ · colᵀ with col = im2col(x) (C·KH·KW, n·HO·WO), and col′ = Wᵀ · dY′ folded back by col2im.
  static func convBackward(
    x: Tensor?, weight: Tensor?, _ dy: Tensor, _ g: ConvGeometry, cout: Int, input: Bool, weight needW: Bool
  ) throws -> (dx: Tensor?, dw: Tensor?) {
    var input = input
    var direct: Tensor?
    var dw: Tensor?
    var needW = needW
    if needW, let x {
      // A backend kernel for the weight gradient (the CPU's stride-1 one) when there is one.
      let out = try Tensor(uninitialized: [cout, g.k], on: dy.device)
      if try dy.backend.conv2dWeightGradient(x.buffer, dy.buffer, out.buffer, g, cout: cout) {
        dw = out
        needW = false
      }
    }
    if input, let weight, canUseTransposedConvolution(g) {
      // Stride 1: the input gradient is itself a stride-1 convolution of dY with the flipped, transposed
      // kernel, so it takes the backend's (fast, direct on the CPU) forward convolution.
      direct = try dy.conv2d(
        weight: try flippedTransposed(weight),
        padding: (g.kh - 1 - g.padT, g.kw - 1 - g.padL, g.kh - 1 - g.padB, g.kw - 1 - g.padR))
      input = false
    }
    if !input && !needW { return (direct, dw) }
    let p = g.ho * g.wo
    let per = imagesPerChunk(g)
    let pointwise = g.isPointwise
    let w2 = try weight.map { try $0.reshaped([cout, g.k]) }
    var parts: [Tensor] = []
    var start = 0
    while start < g.n {
      let end = Swift.min(g.n, start + per)
      let nb = end - start
      var gc = g
      gc.n = nb
      gc.batchMajor = false
      let dyT =
        nb == 1
        ? try dy.images(start, end).reshaped([cout, p])
        : try dy.images(start, end).reshaped([nb, cout, p]).permuted([1, 0, 2]).reshaped([cout, nb * p])
      if needW, let x {
        let xc = try x.images(start, end)
        let col: Tensor
        if pointwise {
          col =
            nb == 1
            ? try xc.reshaped([g.c, p])
            : try xc.reshaped([nb, g.c, p]).permuted([1, 0, 2])
              .reshaped([g.c, nb * p])
        } else {
          col = try Tensor(uninitialized: [g.k, nb * p], on: x.device)
          if col.count > 0 { try x.backend.im2col(xc.buffer, col.buffer, gc) }
        }
        if let acc = dw {
          dw = try gemm(dyT, col, transB: true, beta: 1, c: acc)
        } else {
          dw = try gemm(dyT, col, transB: true)
        }
      }
      if input, let w2 {
        let colG = try gemm(w2, dyT, transA: true)  // (C·KH·KW, n·HO·WO)
        if pointwise {
          parts.append(
            nb == 1
              ? try colG.reshaped([1, g.c, g.h, g.w])
              : try colG.reshaped([g.c, nb, p]).permuted([1, 0, 2]).reshaped([nb, g.c, g.h, g.w]))
        } else {
          let dx = try Tensor(uninitialized: [nb, g.c, g.h, g.w], on: dy.device)
          if dx.count > 0 { try dy.backend.col2im(colG.buffer, dx.buffer, gc) }
          parts.append(dx)
        }
      }
      start = end
    }
    let dx = input ? (parts.count == 1 ? parts[0] : try concat(parts, axis: 0)) : direct
    if needW && dw == nil { dw = try zeros([cout, g.k], on: dy.device) }
    return (dx, dw)
  }

  /// Whether the input gradient is a plain convolution: stride 1 and padding below the kernel size.
  static func canUseTransposedConvolution(_ g: ConvGeometry) -> Bool {
    g.strideH == 1 && g.strideW == 1 && g.padT < g.kh && g.padB < g.kh && g.padL < g.kw && g.padR < g.kw
      && !g.isPointwise
  }

  /// W′[c, o, y, x] = W[o, c, KH−1−y, KW−1−x]: the kernel of the transposed (adjoint) convolution.
  static func flippedTransposed(_ w: Tensor) throws -> Tensor {
    let (o, c, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
    let y = try Tensor(uninitialized: [c, o, kh, kw], on: w.device)
    if y.count > 0 {
      try w.backend.copyStrided(
        w.buffer, y.buffer,
        StridedCopy(
          shape: [c, o, kh, kw], xStrides: [kh * kw, c * kh * kw, -kw, -1], xOffset: kh * kw - 1,
          yStrides: [o * kh * kw, kh * kw, kw, 1], yOffset: 0))
    }
    return y
  }

  /// Transposed convolution (the adjoint of conv2d, as `torch.nn.functional.conv_transpose2d`): x (N, Cin,
  /// H, W), weight (Cin, Cout, KH, KW) → (N, Cout, (H−1)·stride − 2·padding + K + outputPadding, …).
  /// `activation` (with `activationAlpha`, leaky ReLU's slope) follows the bias; the CPU's sub-pixel path fuses it.
  public func convTranspose2d(
    weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0, outputPadding: Int = 0,
    activation: Activation = .none, activationAlpha: Float = 0.01
  ) throws -> Tensor {
    if activation != .none
      && !(canUseSubPixelTranspose(
        weight: weight, stride: stride, padding: padding, outputPadding: outputPadding)
        && Tensor.activationHasOutputGradient(activation, alpha: activationAlpha))
    {
      return try convTranspose2d(
        weight: weight, bias: bias, stride: stride, padding: padding, outputPadding: outputPadding
      ).apply(activation.unaryOp, alpha: activationAlpha)
    }
    guard rank == 4, weight.rank == 4, weight.shape[0] == shape[1] else {
      throw GPUGenError.shapeMismatch(
        op: "convTranspose2d (input NCHW vs weight (Cin, Cout, KH, KW))",
        lhs: shape, rhs: weight.shape)
    }
    guard stride > 0, padding >= 0, outputPadding >= 0, outputPadding < stride else {
      throw GPUGenError.invalidArgument(
        "convTranspose2d: need stride > 0, padding ≥ 0 and 0 ≤ outputPadding < stride")
    }
    try sameDevice(weight, "convTranspose2d")
    let (cout, kh, kw) = (weight.shape[1], weight.shape[2], weight.shape[3])
    let ho = (shape[2] - 1) * stride - 2 * padding + kh + outputPadding
    let wo = (shape[3] - 1) * stride - 2 * padding + kw + outputPadding
    guard ho > 0, wo > 0 else {
      throw GPUGenError.invalidArgument("convTranspose2d: output size \(ho)×\(wo) is not positive")
    }
    if let bias, bias.count != cout {
      throw GPUGenError.shapeMismatch(op: "convTranspose2d (bias)", lhs: bias.shape, rhs: [cout])
    }
    if canUseSubPixelTranspose(weight: weight, stride: stride, padding: padding, outputPadding: outputPadding)
    {
      return try subPixelConvTranspose2d(
        weight: weight, bias: bias, activation: activation, activationAlpha: activationAlpha)
    }
    // The convolution whose input gradient this is: from (N, Cout, HO, WO) back to (N, Cin, H, W).
    let g = ConvGeometry(
      n: shape[0], c: cout, h: ho, w: wo, kh: kh, kw: kw, strideH: stride, strideW: stride, padT: padding,
      padL: padding, padB: padding, padR: padding)
    var y = try Tape.noGrad { try Tensor.convInputGradient(self, weight: weight, g) }
    if let bias { y = try Tape.noGrad { try y + bias.reshaped([1, cout, 1, 1]) } }
    Tape.record(y, [self, weight] + (bias.map { [$0] } ?? [])) { [shape] dy, needs in
      var grads: [Tensor?] = [
        needs[0]
          ? try dy.conv2d(
            weight: weight, stride: (stride, stride), padding: (padding, padding, padding, padding)) : nil,
        needs[1]
          ? try Tensor.convWeightGradient(dy, self, g, cout: shape[1]).reshaped(weight.shape) : nil,
      ]
      if let bias { grads.append(needs[2] ? try dy.sum(axes: [0, 2, 3]).reshaped(bias.shape) : nil) }
      return grads
    }
    return y
  }
}
