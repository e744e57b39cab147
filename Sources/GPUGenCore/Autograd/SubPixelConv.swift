// 4×4 stride-2 padding-1 convolutions (DCGAN/VAE up- and down-sampling) as stride-1 3×3 convolutions, so they
// take the backends' fast stride-1 kernels (Winograd, the CPU's direct kernel and its weight gradient) instead
// of im2col/col2im + GEMM, forward and backward:
//
// - conv2d(x, W, stride 2, pad 1), x (N, C, H, W) with H, W even: x viewed as the space-to-depth
//   (N, 4C, H/2, W/2) (channel c·4 + 2a + b holds x[2i + a, 2j + b]) convolved, 3×3 stride 1 padding 1, with
//   W″[o, c·4 + 2a + b, t, u] = W[o, c, 2t + a − 1, 2u + b − 1] (zero outside the 4×4 kernel);
// - convTranspose2d(x, W, stride 2, pad 1): z = conv2d(x, W_T, 3×3 stride 1 padding 1) with
//   W_T[o·4 + 2a + b, c, t, u] = W[c, o, a + 3 − 2t, b + 3 − 2u], and y[2i + a, 2j + b] = z[o·4 + 2a + b, i, j]
//   (depth-to-space).
//
// On the native CPU backend, where Winograd applies, each runs instead as the 2×2 convolution that has no zero
// taps — over the space-to-depth of x padded by one pixel (2×2, no padding), or, transposed, a 2×2 convolution
// with padding 1 written depth-to-space with its one-pixel border cut — through Winograd F(4×4, 2×2), which
// reads and writes those views in place (`SubPixelLayout`): 25 multiplies per 4×4 tile and channel pair
// against the 3×3 form's 36.
//
// Each is one tape node whose gradients are the other one of the pair (input) and a 2×2 stride-1 weight
// gradient of the padded space-to-depth (weight: only the 16 real taps); the kernel rearrangements and the
// padded space-to-depth are single strided scatters into zeros.
import Foundation

extension Tensor {
  /// Whether `GPUGEN_SUBPIXEL=0` turned these paths off (for comparisons).
  static let subPixelEnabled = ProcessInfo.processInfo.environment["GPUGEN_SUBPIXEL"] != "0"

  /// The sub-pixel paths run on every backend. On the native CPU they beat im2col (reference ConvVAE: encode +
  /// decode 8,845 → 13,424 images/s, training step 22.7 → 17.4 ms). On PoCL a first version lost (step 37 → 53
  /// ms), but with OpenCL's Winograd kernels and tuned GEMM they win there too (alternating runs on this 2-core
  /// machine: DCGAN step 157–185 → 128–139 ms, sampling 3,300–3,500 → 5,100–5,700 images/s; ConvVAE step
  /// 33–38 → 28–29 ms, encode + decode 4,900–5,200 → 7,100–7,300 images/s). The 3×3 forms also need fewer
  /// multiply-adds than im2col + GEMM wherever Winograd takes them (9 against 16 per input/output channel pair
  /// and output).
  var prefersSubPixel: Bool { Tensor.subPixelEnabled }

  /// Whether `GPUGEN_SUBPIXEL_2X2=0` turned the 2×2 Winograd forms off (the 3×3 forms run instead).
  static let subPixel2x2Enabled = ProcessInfo.processInfo.environment["GPUGEN_SUBPIXEL_2X2"] != "0"

  /// A zero tensor of `shape` holding this tensor's values (row-major, viewed as `view`) at the offsets
  /// Σ index·destStrides + destOffset — one strided copy for a pad-and-rearrange. The map must be injective.
  /// Differentiable: the gradient gathers from the same offsets.
  func scattered(into shape: [Int], view: [Int], destStrides: [Int], destOffset: Int) throws -> Tensor {
    let y = try Tensor.zeros(shape, on: device)
    let sourceStrides = Shape.strides(view)
    try backend.copyStrided(
      buffer, y.buffer,
      StridedCopy(
        shape: view, xStrides: sourceStrides, xOffset: 0, yStrides: destStrides, yOffset: destOffset))
    Tape.record(y, [self]) { [shape = self.shape] dy, _ in
      let g = try Tensor(uninitialized: shape, on: dy.device)
      try dy.backend.copyStrided(
        dy.buffer, g.buffer,
        StridedCopy(
          shape: view, xStrides: destStrides, xOffset: destOffset, yStrides: sourceStrides, yOffset: 0))
      return [g]
    }
    return y
  }

  /// The space-to-depth of the input zero-padded by one: (N, C, H, W) → (N, 4C, H/2 + 1, W/2 + 1), channel
  /// 4c + 2a + b holding xpad[c, 2i + a, 2j + b] (one strided copy).
  func paddedSpaceToDepth() throws -> Tensor {
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
    let (hp, wp) = (h / 2 + 1, w / 2 + 1)
    let dc = hp * wp
    // x[n, c, 2i′ + ay, 2j′ + ax] goes to channel 4c + 2(1 − ay) + (1 − ax), row i′ + ay, column j′ + ax.
    return try scattered(
      into: [n, 4 * c, hp, wp], view: [n, c, h / 2, 2, w / 2, 2],
      destStrides: [4 * c * dc, 4 * dc, wp, wp - 2 * dc, 1, 1 - dc], destOffset: 3 * dc)
  }

  /// Whether an activation's derivative can be read from its output (ReLU, and leaky ReLU with a slope ≥ 0),
  /// so that it can stay fused into a kernel's epilogue during training.
  static func activationHasOutputGradient(_ activation: Activation, alpha: Float) -> Bool {
    activation == .none || activation == .relu || (activation == .leakyRelu && alpha >= 0)
  }

  /// Whether a sub-pixel convolution whose 3×3 stride-1 form has `inputs` → `outputs` channels pays: only
  /// where that form has the ≥ 16 channels each way that Winograd needs. With fewer (the first convolution
  /// of a 1- or 3-channel image, the last transposed convolution back to it) the direct 3×3 kernel on 4 or 12
  /// channels, 20 of every 36 taps zero, loses to im2col + GEMM on the 16 real taps (reference DCGAN, batch
  /// 64, one core: D's Conv2d(1, 64) 4.0 → 0.9 ms, its weight gradient 1.8 → 0.5 ms).
  static func subPixelPays(inputs: Int, outputs: Int) -> Bool { inputs >= 16 && outputs >= 16 }

  /// Whether conv2d of this input with `weight` can take the space-to-depth path.
  func canUseSpaceToDepth(weight: Tensor, stride: (Int, Int), padding: (Int, Int, Int, Int)) -> Bool {
    prefersSubPixel && rank == 4 && weight.rank == 4 && weight.shape[2] == 4 && weight.shape[3] == 4
      && stride == (2, 2) && padding == (1, 1, 1, 1) && shape[2] % 2 == 0 && shape[3] % 2 == 0
      && shape[2] >= 2 && shape[3] >= 2 && shape[1] == weight.shape[1]
      && Tensor.subPixelPays(inputs: 4 * weight.shape[1], outputs: weight.shape[0])
  }

  /// Whether convTranspose2d with `weight` (Cin, Cout, KH, KW) can take the sub-pixel path.
  func canUseSubPixelTranspose(weight: Tensor, stride: Int, padding: Int, outputPadding: Int) -> Bool {
    prefersSubPixel && weight.rank == 4 && weight.shape[2] == 4 && weight.shape[3] == 4 && stride == 2
      && padding == 1 && outputPadding == 0
      && Tensor.subPixelPays(inputs: weight.shape[0], outputs: 4 * weight.shape[1])
  }

  /// conv2d with a 4×4 stride-2 padding-1 kernel through the space-to-depth input (see the file header).
  /// Recorded as one tape node: the input gradient is the adjoint 4×4 stride-2 convolution (itself sub-pixel),
  /// the weight gradient `spaceToDepthWeightGradient` (only the 16 real taps per channel).
  func spaceToDepthConv2d(
    weight: Tensor, bias: Tensor?, activation: Activation, activationAlpha: Float, imageBias: Tensor?,
    residual: Tensor?
  ) throws -> Tensor {
    let recording = Tape.recording([self, weight, bias, imageBias, residual]) != nil
    let outputGradient = Tensor.activationHasOutputGradient(activation, alpha: activationAlpha)
    if recording && ((activation != .none && !outputGradient) || imageBias != nil || residual != nil) {
      // Training with extras: the plain convolution's node, then the additions and the activation.
      var y = try spaceToDepthConv2d(
        weight: weight, bias: bias, activation: .none, activationAlpha: 0, imageBias: nil, residual: nil)
      if let imageBias { y = try y + imageBias.reshaped([y.shape[0], y.shape[1], 1, 1]) }
      if let residual { y = try y + residual }
      return activation == .none ? y : try y.apply(activation.unaryOp, alpha: activationAlpha)
    }
    let y = try Tape.noGrad {
      try spaceToDepthForward(
        weight: weight, bias: bias, activation: activation, activationAlpha: activationAlpha,
        imageBias: imageBias,
        residual: residual)
    }
    Tape.record(y, [self, weight] + (bias.map { [$0] } ?? [])) { [shape] dyOut, needs in
      // A fused ReLU / leaky ReLU: its derivative read from the output (y > 0 exactly where z > 0).
      let dy =
        activation == .none
        ? dyOut : try dyOut.unaryGradient(activation.unaryOp, x: y, alpha: activationAlpha)
      var grads: [Tensor?] = [
        needs[0]
          ? try Tensor.subPixelTransposedForward(dy, weight: weight, bias: nil, outputShape: shape) : nil,
        needs[1] ? try Tensor.spaceToDepthWeightGradient(input: self, outputGradient: dy) : nil,
      ]
      if let bias { grads.append(needs[2] ? try dy.sum(axes: [0, 2, 3]).reshaped(bias.shape) : nil) }
      return grads
    }
    return y
  }

  /// The forward pass of `spaceToDepthConv2d` (not recorded).
  func spaceToDepthForward(
    weight: Tensor, bias: Tensor?, activation: Activation, activationAlpha: Float, imageBias: Tensor?,
    residual: Tensor?
  ) throws -> Tensor {
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
    let o = weight.shape[0]
    // The 2×2 form: K₂[o, 4c + 2a + b, t, u] = W[o, c, 2t + a, 2u + b] over the padded space-to-depth.
    let g2 = ConvGeometry(n: n, c: 4 * c, h: h / 2 + 1, w: w / 2 + 1, kh: 2, kw: 2)
    if Tensor.subPixel2x2Enabled, imageBias == nil, residual == nil, let cpu = backend as? CPUBackend,
      n * h * w > 0, CPUBackend.subPixelWinogradApplies(g2, cout: o, layout: .paddedSpaceToDepthInput)
    {
      let y = try Tensor(uninitialized: [n, o, h / 2, w / 2], on: device)
      let k2 = try weight.reshaped([o, c, 2, 2, 2, 2]).permuted([0, 1, 3, 5, 2, 4])
      if cpu.subPixelWinograd(
        buffer, weight: k2.buffer, bias: bias?.buffer, y.buffer, g2, cout: o, activation: activation,
        activationAlpha: activationAlpha, layout: .paddedSpaceToDepthInput)
      {
        return y
      }
    }
    // K[o, 4c + 2a + b, t, u] = W[o, c, 2t + a − 1, 2u + b − 1]: W[…, 2k₂ + a′, …] goes to a = 1 − a′,
    // t = k₂ + a′ (one strided copy into zeros).
    let k = try weight.scattered(
      into: [o, 4 * c, 3, 3], view: [o, c, 2, 2, 2, 2], destStrides: [36 * c, 36, 3, -15, 1, -8],
      destOffset: 27)
    if imageBias == nil, residual == nil, let cpu = backend as? CPUBackend {
      // Winograd reads the space-to-depth view straight from x (no rearranged copy).
      let y = try Tensor(uninitialized: [n, o, h / 2, w / 2], on: device)
      let g = ConvGeometry(
        n: n, c: 4 * c, h: h / 2, w: w / 2, kh: 3, kw: 3, strideH: 1, strideW: 1, padT: 1, padL: 1, padB: 1,
        padR: 1)
      if y.count > 0
        && cpu.subPixelWinograd(
          buffer, weight: k.buffer, bias: bias?.buffer, y.buffer, g, cout: o, activation: activation,
          activationAlpha: activationAlpha, layout: .spaceToDepthInput)
      {
        return y
      }
    }
    let s2d = try reshaped([n, c, h / 2, 2, w / 2, 2]).permuted([0, 1, 3, 5, 2, 4]).reshaped([
      n, 4 * c, h / 2, w / 2,
    ])
    return try s2d.conv2d(
      weight: k, bias: bias, stride: (1, 1), padding: (1, 1, 1, 1), activation: activation,
      activationAlpha: activationAlpha, imageBias: imageBias, residual: residual)
  }

  /// dW (O, C, 4, 4) of y = conv2d(x, W, stride 2, padding 1) for input x (N, C, H, W) and dY (N, O, H/2, W/2):
  /// dW[o, c, 2t + a, 2u + b] = Σ dY[o, i, j]·xpad[c, 2(i + t) + a, 2(j + u) + b], the 2×2 stride-1 weight
  /// gradient of the padded input's space-to-depth (no zero taps).
  static func spaceToDepthWeightGradient(input x: Tensor, outputGradient dy: Tensor) throws -> Tensor {
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let o = dy.shape[1]
    let (hp, wp) = (h / 2 + 1, w / 2 + 1)
    let g = ConvGeometry(
      n: n, c: 4 * c, h: hp, w: wp, kh: 2, kw: 2, strideH: 1, strideW: 1, padT: 0, padL: 0, padB: 0, padR: 0)
    // The CPU kernel gathers the padded space-to-depth from x itself and writes dW in place; elsewhere the
    // padded space-to-depth is materialised and the result, (O, (c, a, b)·(t, u)), rearranged.
    if let cpu = x.backend as? CPUBackend {
      let out = try Tensor(uninitialized: [o, c, 4, 4], on: x.device)
      if cpu.weightGradient(x.buffer, dy.buffer, out.buffer, g, cout: o, spaceToDepth: true) { return out }
    }
    let grad = try Tensor.convWeightGradient(try x.paddedSpaceToDepth(), dy, g, cout: o)
    return try grad.reshaped([o, c, 2, 2, 2, 2]).permuted([0, 1, 4, 2, 5, 3]).reshaped([o, c, 4, 4])
  }

  /// convTranspose2d with a 4×4 stride-2 padding-1 kernel as a 3×3 convolution and depth-to-space, recorded
  /// as one tape node: the input gradient is the 4×4 stride-2 convolution of dY (sub-pixel too), the weight
  /// gradient `spaceToDepthWeightGradient` with the roles of input and output exchanged.
  func subPixelConvTranspose2d(
    weight: Tensor, bias: Tensor?, activation: Activation = .none, activationAlpha: Float = 0
  ) throws -> Tensor {
    let y = try Tape.noGrad {
      try Tensor.subPixelTransposedForward(
        self, weight: weight, bias: bias,
        outputShape: [shape[0], weight.shape[1], 2 * shape[2], 2 * shape[3]],
        activation: activation, activationAlpha: activationAlpha)
    }
    Tape.record(y, [self, weight] + (bias.map { [$0] } ?? [])) { dyOut, needs in
      let dy =
        activation == .none
        ? dyOut : try dyOut.unaryGradient(activation.unaryOp, x: y, alpha: activationAlpha)
      var grads: [Tensor?] = [
        needs[0]
          ? try dy.spaceToDepthForward(
            weight: weight, bias: nil, activation: .none, activationAlpha: 0, imageBias: nil, residual: nil)
          : nil,
        needs[1] ? try Tensor.spaceToDepthWeightGradient(input: dy, outputGradient: self) : nil,
      ]
      if let bias { grads.append(needs[2] ? try dy.sum(axes: [0, 2, 3]).reshaped(bias.shape) : nil) }
      return grads
    }
    return y
  }

  /// The transposed convolution's forward pass (not recorded): x (N, C, H, W), weight (C, O, 4, 4) →
  /// `outputShape` (N, O, 2H, 2W).
  static func subPixelTransposedForward(
    _ x: Tensor, weight: Tensor, bias: Tensor?, outputShape: [Int], activation: Activation = .none,
    activationAlpha: Float = 0
  ) throws -> Tensor {
    let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
    let (c, o) = (weight.shape[0], weight.shape[1])
    // The bias of output channel o is that of its four phases (o, a, b).
    let zBias = try bias.map {
      try ($0.reshaped([o, 1]) + Tensor.zeros([o, 4], on: x.device)).reshaped([4 * o])
    }
    // The 2×2 form, padding 1: K₂[4o + 2a + b, c, t, u] = W[c, o, 2(1 − t) + a, 2(1 − u) + b] (one strided
    // copy), its (H + 1) × (W + 1) output written depth-to-space with the border cut.
    let g2 = ConvGeometry(n: n, c: c, h: h, w: w, kh: 2, kw: 2, padT: 1, padL: 1, padB: 1, padR: 1)
    if Tensor.subPixel2x2Enabled, let cpu = x.backend as? CPUBackend, n * h * w > 0,
      CPUBackend.subPixelWinogradApplies(g2, cout: 4 * o, layout: .paddedDepthToSpaceOutput)
    {
      let y = try Tensor(uninitialized: outputShape, on: x.device)
      let k2 = try weight.scattered(
        into: [4 * o, c, 2, 2], view: [c, o, 2, 2, 2, 2], destStrides: [4, 16 * c, -2, 8 * c, -1, 4 * c],
        destOffset: 3)
      if cpu.subPixelWinograd(
        x.buffer, weight: k2.buffer, bias: zBias?.buffer, y.buffer, g2, cout: 4 * o, activation: activation,
        activationAlpha: activationAlpha, layout: .paddedDepthToSpaceOutput)
      {
        return y
      }
    }
    // K[4o + 2a + b, c, t, u] = W[c, o, a + 3 − 2t, b + 3 − 2u]: W[…, 2k₂ + a′, …] goes to a = 1 − a′,
    // t = 2 − k₂ − a′ (one strided copy into zeros).
    let kc = 9 * c
    let k = try weight.scattered(
      into: [4 * o, c, 3, 3], view: [c, o, 2, 2, 2, 2],
      destStrides: [9, 4 * kc, -3, -2 * kc - 3, -1, -kc - 1],
      destOffset: 3 * kc + 8)
    if let cpu = x.backend as? CPUBackend {
      // Winograd writes the depth-to-space output directly (no rearranged copy).
      let y = try Tensor(uninitialized: outputShape, on: x.device)
      let g = ConvGeometry(
        n: n, c: c, h: h, w: w, kh: 3, kw: 3, strideH: 1, strideW: 1, padT: 1, padL: 1, padB: 1, padR: 1)
      if y.count > 0
        && cpu.subPixelWinograd(
          x.buffer, weight: k.buffer, bias: zBias?.buffer, y.buffer, g, cout: 4 * o, activation: activation,
          activationAlpha: activationAlpha, layout: .depthToSpaceOutput)
      {
        return y
      }
    }
    // The activation commutes with depth-to-space, so it is fused into the convolution.
    let z = try x.conv2d(
      weight: k, bias: zBias, stride: (1, 1), padding: (1, 1, 1, 1), activation: activation,
      activationAlpha: activationAlpha)  // (N, 4·O, H, W)
    return try z.reshaped([n, o, 2, 2, h, w]).permuted([0, 1, 4, 2, 5, 3]).reshaped(outputShape)
  }
}
