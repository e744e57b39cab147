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

  static func isPointwise(_ g: ConvGeometry) -> Bool {
    g.kh == 1 && g.kw == 1 && g.strideH == 1 && g.strideW == 1 && g.padT + g.padL + g.padB + g.padR == 0
  }

  /// The gradient of conv2d with respect to its input: dY (N, Cout, HO, WO) → dX (N, C, H, W).
  static func convInputGradient(_ dy: Tensor, weight: Tensor, _ g: ConvGeometry) throws -> Tensor {
    let cout = weight.shape[0]
    let w2 = try weight.reshaped([cout, g.k])
    let p = g.ho * g.wo
    let per = imagesPerChunk(g)
    var parts: [Tensor] = []
    var start = 0
    while start < g.n {
      let end = Swift.min(g.n, start + per)
      var gc = g
      gc.n = end - start
      gc.batchMajor = true
      let dyc = try dy.images(start, end).reshaped([gc.n, cout, p])
      let col = try gemm(w2, dyc, transA: true)  // (nb, C·KH·KW, HO·WO)
      if isPointwise(g) {
        parts.append(try col.reshaped([gc.n, g.c, g.h, g.w]))
      } else {
        let dx = try Tensor(uninitialized: [gc.n, g.c, g.h, g.w], on: dy.device)
        if dx.count > 0 { try dy.backend.col2im(col.buffer, dx.buffer, gc) }
        parts.append(dx)
      }
      start = end
    }
    return parts.count == 1 ? parts[0] : try concat(parts, axis: 0)
  }

  /// The gradient of conv2d with respect to its weight, as (Cout, C·KH·KW).
  static func convWeightGradient(_ x: Tensor, _ dy: Tensor, _ g: ConvGeometry, cout: Int) throws -> Tensor {
    let p = g.ho * g.wo
    let per = imagesPerChunk(g)
    var total: Tensor?
    var start = 0
    while start < g.n {
      let end = Swift.min(g.n, start + per)
      var gc = g
      gc.n = end - start
      gc.batchMajor = true
      let xc = try x.images(start, end)
      let col: Tensor
      if isPointwise(g) {
        col = try xc.reshaped([gc.n, g.c, p])
      } else {
        col = try Tensor(uninitialized: [gc.n, g.k, p], on: x.device)
        if col.count > 0 { try x.backend.im2col(xc.buffer, col.buffer, gc) }
      }
      let dyc = try dy.images(start, end).reshaped([gc.n, cout, p])
      let part: Tensor
      if gc.n == 1 {
        part = try gemm(try dyc.reshaped([cout, p]), try col.reshaped([g.k, p]), transB: true)
      } else {
        part = try gemm(dyc, col, transB: true).sum(axes: [0])  // (Cout, C·KH·KW)
      }
      if let t = total { total = try t + part } else { total = part }
      start = end
    }
    return try total ?? zeros([cout, g.k], on: x.device)
  }

  /// Transposed convolution (the adjoint of conv2d, as `torch.nn.functional.conv_transpose2d`): x (N, Cin,
  /// H, W), weight (Cin, Cout, KH, KW) → (N, Cout, (H−1)·stride − 2·padding + K + outputPadding, …).
  public func convTranspose2d(
    weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0, outputPadding: Int = 0
  ) throws -> Tensor {
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
