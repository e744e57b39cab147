// Convolution unfolding and group normalisation on the native CPU backend.
import CBLAS
import CPUPeak
import Dispatch
import Foundation

extension CPUBackend {
  public func im2col(_ x: Buffer, _ col: Buffer, _ g: ConvGeometry) throws {
    timed(
      Self.profiling
        ? "im2col \(g.n)x\(g.c)x\(g.h)x\(g.w) k\(g.kh) s\(g.strideH) bm\(g.batchMajor)" : "im2col"
    ) { unfold(ptr(x), into: ptr(col), g) }
  }

  /// The im2col loop; rows are split across cores when `parallel`.
  func unfold(
    _ xp: UnsafeMutablePointer<Float>, into cp: UnsafeMutablePointer<Float>, _ g: ConvGeometry,
    parallel: Bool = true
  ) {
    let (ho, wo) = (g.ho, g.wo)
    let p = ho * wo, q = g.n * p
    // One task per row (c, ky, kx) of col; each writes N·HO·WO contiguous values.
    let task: (Range<Int>) -> Void = { rows in
      for r in rows {
        let kx = r % g.kw, ky = (r / g.kw) % g.kh, c = r / (g.kw * g.kh)
        for n in 0..<g.n {
          let out = g.batchMajor ? cp + (n * g.k + r) * p : cp + r * q + n * p
          let plane = xp + (n * g.c + c) * g.h * g.w
          for oy in 0..<ho {
            let iy = oy * g.strideH - g.padT + ky
            let row = out + oy * wo
            guard iy >= 0 && iy < g.h else {
              row.update(repeating: 0, count: wo)
              continue
            }
            let src = plane + iy * g.w
            // Columns whose input is inside the row: [lo, hi). Outside them the value is padding.
            let first = g.padL - kx
            let lo = Swift.min(wo, Swift.max(0, (first + g.strideW - 1) / g.strideW))
            let hi = Swift.max(lo, Swift.min(wo, (g.w + first + g.strideW - 1) / g.strideW))
            if lo > 0 { row.update(repeating: 0, count: lo) }
            if g.strideW == 1 {
              if hi > lo { (row + lo).update(from: src + (lo - first), count: hi - lo) }
            } else {
              for ox in lo..<hi { row[ox] = src[ox * g.strideW - first] }
            }
            if hi < wo { (row + hi).update(repeating: 0, count: wo - hi) }
          }
        }
      }
    }
    if parallel { Parallel.forEach(g.k, cost: q, task) } else { task(0..<g.k) }
  }

  /// 3×3 stride-1 convolutions with enough channels and outputs run as Winograd F(4×4, 3×3) (`winograd`). Other
  /// stride-1 convolutions run the direct kernel (gpugen_conv_s1): images split across cores, or, with fewer
  /// images than cores, each image's output channels. Other convolutions: images are split across cores;
  /// each core unfolds one image at a time into a private, cache-sized buffer and runs a single-threaded
  /// GEMM on it, writing NCHW with the bias and activation fused (fewer images than cores: one
  /// multi-threaded GEMM per image).
  public func conv2d(
    _ x: Buffer, weight: Buffer, bias: Buffer?, _ y: Buffer, _ g: ConvGeometry, cout: Int,
    activation: Activation,
    activationAlpha: Float
  ) throws {
    convolve(
      x, weight: weight, bias: bias, imageBias: nil, residual: nil, y, g, cout: cout, activation: activation,
      activationAlpha: activationAlpha)
  }

  /// The direct kernel adds a per-image bias and a residual as it writes the output; the other paths add
  /// them per image right after the GEMM, while the image's output is in cache.
  public func conv2dAdding(
    _ x: Buffer, weight: Buffer, bias: Buffer?, imageBias: Buffer?, residual: Buffer?, _ y: Buffer,
    _ g: ConvGeometry, cout: Int
  ) throws {
    convolve(
      x, weight: weight, bias: bias, imageBias: imageBias, residual: residual, y, g, cout: cout,
      activation: .none, activationAlpha: 0)
  }

  func convolve(
    _ x: Buffer, weight: Buffer, bias: Buffer?, imageBias: Buffer?, residual: Buffer?, _ y: Buffer,
    _ g: ConvGeometry, cout: Int, activation: Activation, activationAlpha: Float
  ) {
    timed(Self.profiling ? "conv2d \(g.n)x\(g.c)x\(g.h)x\(g.w)->\(cout) k\(g.kh) s\(g.strideH)" : "conv2d") {
      let xp = ptr(x), wp = ptr(weight), yp = ptr(y), rp = residual.map(ptr)
      // Per-image biases: bias[o] + imageBias[n, o] (bp(n) is image n's Cout values, or nil).
      let shared = bias.map(ptr)
      let combined: UnsafeMutablePointer<Float>? = imageBias.map { ib in
        let c = UnsafeMutablePointer<Float>.allocate(capacity: g.n * cout)
        let ip = ptr(ib)
        for i in 0..<(g.n * cout) { c[i] = ip[i] + (shared?[i % cout] ?? 0) }
        return c
      }
      defer { combined?.deallocate() }
      let bp: (Int) -> UnsafeMutablePointer<Float>? = { n in combined.map { $0 + n * cout } ?? shared }
      let p = g.ho * g.wo, k = g.k
      let pointwise = g.isPointwise
      let workers = g.n >= Parallel.cores ? Parallel.cores : 1
      // Stride-1 convolutions run directly (no im2col, no BLAS); strided ones unfold.
      let direct = !pointwise && g.strideH == 1 && g.strideW == 1
      // BLAS per image on each worker: one BLAS thread each (left alone when BLAS is not called).
      let threads = openblas_get_num_threads()
      let single = workers > 1 && !direct
      if single { openblas_set_num_threads(1) }
      defer { if single { openblas_set_num_threads(threads) } }
      // Bias and activation on one image's output, while it is in cache.
      // (The direct kernel adds the bias and residual itself.)
      func epilogue(
        _ out: UnsafeMutablePointer<Float>, bias bp: UnsafeMutablePointer<Float>?,
        residual res: UnsafeMutablePointer<Float>?
      ) {
        if let res { for i in 0..<(cout * p) { out[i] += res[i] } }
        guard bp != nil || activation != .none else { return }
        for r in 0..<cout {
          Self.biasActivate(out + r * p, count: p, bias: bp?[r] ?? 0, activation, activationAlpha)
        }
      }
      if direct && Self.winogradApplies(g, cout: cout) {
        winograd(xp, wp, yp, g, cout: cout, bias: bp, biasStride: combined == nil ? 0 : cout, residual: rp)
        if activation != .none {
          Parallel.forEach(g.n, cost: cout * p) { images in
            for n in images { epilogue(yp + n * cout * p, bias: nil, residual: nil) }
          }
        }
        return
      }
      // The direct kernel's weight layout, packed once for every image (not once per image).
      let blocks = (cout + 7) / 8
      let packed = direct ? UnsafeMutablePointer<Float>.allocate(capacity: blocks * 8 * k) : nil
      defer { packed?.deallocate() }
      if let packed {
        Parallel.forEach(blocks, cost: 8 * k) { r in
          gpugen_pack_conv_weights(
            wp, packed, Int32(cout), Int32(k), Int32(r.lowerBound), Int32(r.upperBound))
        }
      }
      let padded = gpugen_conv_s1_workspace(Int32(g.c), Int32(g.ho), Int32(g.wo), Int32(g.kh), Int32(g.kw))
      if let packed, workers == 1 {
        // Fewer images than cores (sampling one image): each image's output channels are split across the
        // cores, which share its padded copy.
        let xpad = UnsafeMutablePointer<Float>.allocate(capacity: padded)
        defer { xpad.deallocate() }
        let parts = Swift.min(Parallel.cores, blocks)
        for n in 0..<g.n {
          let out = yp + n * cout * p
          gpugen_conv_s1_pad(
            xp + n * g.c * g.h * g.w, Int32(g.c), Int32(g.h), Int32(g.w), Int32(g.kh), Int32(g.kw),
            Int32(g.padT),
            Int32(g.padL), Int32(g.ho), Int32(g.wo), xpad)
          DispatchQueue.concurrentPerform(iterations: parts) { part in
            gpugen_conv_s1_blocks(
              xpad, out, Int32(g.c), Int32(cout), Int32(g.kh), Int32(g.kw), Int32(g.ho), Int32(g.wo), packed,
              bp(n), rp.map { $0 + n * cout * p }, Int32(blocks * part / parts),
              Int32(blocks * (part + 1) / parts))
          }
          epilogue(out, bias: nil, residual: nil)
        }
        return
      }
      DispatchQueue.concurrentPerform(iterations: workers) { wi in
        let col = pointwise || direct ? nil : UnsafeMutablePointer<Float>.allocate(capacity: k * p)
        let xpad = direct ? UnsafeMutablePointer<Float>.allocate(capacity: padded) : nil
        defer {
          col?.deallocate()
          xpad?.deallocate()
        }
        // Contiguous image ranges, as the elementwise and normalisation ops split their work: each core
        // mostly reads what it wrote (in its own L2).
        for n in (g.n * wi / workers)..<(g.n * (wi + 1) / workers) {
          let out = yp + n * cout * p
          if let xpad, let packed {
            gpugen_conv_s1(
              xp + n * g.c * g.h * g.w, out, Int32(g.c), Int32(g.h), Int32(g.w), Int32(cout), Int32(g.kh),
              Int32(g.kw), Int32(g.padT), Int32(g.padL), Int32(g.ho), Int32(g.wo), xpad, packed, bp(n),
              rp.map { $0 + n * cout * p })
            epilogue(out, bias: nil, residual: nil)
            continue
          }
          let src: UnsafeMutablePointer<Float>
          if let col {
            var one = g
            one.n = 1
            one.batchMajor = true
            unfold(xp + n * g.c * g.h * g.w, into: col, one, parallel: workers == 1)
            src = col
          } else {
            src = xp + n * g.c * p
          }
          cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(cout), Int32(p), Int32(k), 1, wp, Int32(k), src,
            Int32(p),
            0, out, Int32(p))
          epilogue(out, bias: bp(n), residual: rp.map { $0 + n * cout * p })
        }
      }
    }
  }

  /// Winograd F(4×4, 3×3) (Sources/CPUPeak/winograd.c; see `ConvGeometry.winogradCandidate`), and F(4×4, 2×2)
  /// for the sub-pixel paths (`subPixelWinograd`). Each call
  /// transforms the weights (≈ 30 ns per input/output channel pair); that is won back from about 500 output
  /// positions (batch × height × width) on, so it runs from 1,024 on.
  /// The transformed weights are 4× the weights; above 64 MB of them (e.g. 1,024 → 1,024 channels) the direct
  /// kernel runs instead.
  static func winogradApplies(_ g: ConvGeometry, cout: Int) -> Bool {
    g.winogradCandidate(cout: cout) && winogradFits(g, cout: cout)
  }

  /// Whether Winograd F(4×4, r×r) suits geometry `g` beyond its kernel shape: the padding, enough output
  /// positions, and transformed weights within 64 MB.
  static func winogradFits(_ g: ConvGeometry, cout: Int) -> Bool {
    g.padL <= 16 && g.n * g.ho * g.wo >= winogradMinimumPositions
      && gpugen_wino_weights_size(Int32(g.c), Int32(cout), Int32(g.kh)) <= 16 << 20
  }

  /// Output positions (batch × height × width) from which a call runs Winograd; tests lower it to run small
  /// models through the Winograd kernel.
  nonisolated(unsafe) static var winogradMinimumPositions = 1024

  /// The weights are transformed once (output-channel blocks split across the cores); then each core runs its
  /// contiguous range of images, in blocks that keep the Winograd matrices in its L2 (groups of whole images,
  /// or rows of 4×4 output tiles of an image too large for one block), or, with fewer images than cores, each
  /// image's tile rows are split across the cores.
  func winograd(
    _ xp: UnsafeMutablePointer<Float>, _ wp: UnsafeMutablePointer<Float>, _ yp: UnsafeMutablePointer<Float>,
    _ g: ConvGeometry, cout: Int, bias bp: (Int) -> UnsafeMutablePointer<Float>?, biasStride: Int,
    residual rp: UnsafeMutablePointer<Float>?, layout: SubPixelLayout = .plain
  ) {
    let (c, k, r) = (Int32(g.c), Int32(cout), Int32(g.kh))
    let u = UnsafeMutablePointer<Float>.allocate(capacity: gpugen_wino_weights_size(c, k, r))
    defer { u.deallocate() }
    Parallel.forEach((cout + 31) / 32, cost: 36 * 32 * g.c) { blocks in
      let scratch = UnsafeMutablePointer<Float>.allocate(capacity: gpugen_wino_weights_scratch(c, r))
      defer { scratch.deallocate() }
      gpugen_wino_weights(wp, u, c, k, Int32(blocks.lowerBound), Int32(blocks.upperBound), scratch, r)
    }
    // The one-pixel-offset layouts read and write images one pixel smaller on every side than the views.
    let inImage = layout == .paddedSpaceToDepthInput ? g.c * (g.h - 1) * (g.w - 1) : g.c * g.h * g.w
    let outImage = layout == .paddedDepthToSpaceOutput ? cout * (g.ho - 1) * (g.wo - 1) : cout * g.ho * g.wo
    let tileRows = (g.ho + 3) / 4
    let group = Int(gpugen_wino_group(c, Int32(g.ho), Int32(g.wo), r))
    // One block: `group` whole images, or (group 1) up to `blockRows` tile rows of one image.
    let blockRows = Int(gpugen_wino_rows(c, Int32(g.ho), Int32(g.wo), r))
    // Images [images], tile rows [rows] of each, one call per block.
    func run(_ images: Range<Int>, rows: Range<Int>) {
      let size = Swift.min(group, images.count)
      let step = size > 1 ? rows.count : Swift.min(blockRows, rows.count)
      let work = UnsafeMutablePointer<Float>.allocate(
        capacity: gpugen_wino_workspace(
          Int32(size), c, Int32(g.w), Int32(g.wo), k, Int32(g.padL), Int32(step), r))
      defer { work.deallocate() }
      for n in stride(from: images.lowerBound, to: images.upperBound, by: size) {
        for row in stride(from: rows.lowerBound, to: rows.upperBound, by: step) {
          gpugen_wino_conv(
            xp + n * inImage, yp + n * outImage, Int32(Swift.min(size, images.upperBound - n)), c, Int32(g.h),
            Int32(g.w), k, Int32(g.padT), Int32(g.padL), Int32(g.ho), Int32(g.wo), Int32(row),
            Int32(Swift.min(row + step, rows.upperBound)), u, bp(n), biasStride, rp.map { $0 + n * outImage },
            work, layout.rawValue, r)
        }
      }
    }
    if g.n >= Parallel.cores {
      DispatchQueue.concurrentPerform(iterations: Parallel.cores) { wi in
        run((g.n * wi / Parallel.cores)..<(g.n * (wi + 1) / Parallel.cores), rows: 0..<tileRows)
      }
    } else {
      let parts = Swift.min(Parallel.cores, tileRows)
      for n in 0..<g.n {
        DispatchQueue.concurrentPerform(iterations: parts) { part in
          run(n..<(n + 1), rows: (tileRows * part / parts)..<(tileRows * (part + 1) / parts))
        }
      }
    }
  }

  /// Whether `subPixelWinograd` runs geometry `g` with `layout` (so callers can skip preparing its inputs).
  static func subPixelWinogradApplies(_ g: ConvGeometry, cout: Int, layout: SubPixelLayout) -> Bool {
    let taps = layout.offset ? 2 : 3
    return g.kh == taps && g.kw == taps && g.strideH == 1 && g.strideW == 1 && ConvGeometry.winogradEnabled
      && g.c >= 16 && cout >= 16 && winogradFits(g, cout: cout) && (!layout.readsSpaceToDepth || g.c % 4 == 0)
      && (!layout.writesDepthToSpace || cout % 4 == 0)
  }

  /// `activation(v + bias)` over `count` floats in place, through the vectorised kernels where one exists.
  static func biasActivate(
    _ v: UnsafeMutablePointer<Float>, count: Int, bias: Float, _ activation: Activation, _ alpha: Float
  ) {
    switch activation {
    case .none, .silu: gpugen_affine(v, v, count, 1, bias, activation == .silu ? 1 : 0)
    case .relu, .leakyRelu: gpugen_bias_act(v, count, bias, activation == .relu ? 1 : 0, alpha)
    default: for j in 0..<count { v[j] = cpuActivate(v[j] + bias, activation, alpha) }
    }
  }

  /// A 3×3 (or, with the one-pixel-offset layouts, 2×2) stride-1 convolution of geometry `g` (+ `bias`, then
  /// `activation`) through Winograd, reading x as its space-to-depth view or writing y depth-to-space
  /// (`layout`), so that the sub-pixel convolutions need no rearranging copy. False (nothing written) where
  /// Winograd does not apply.
  func subPixelWinograd(
    _ x: Buffer, weight: Buffer, bias: Buffer?, _ y: Buffer, _ g: ConvGeometry, cout: Int,
    activation: Activation, activationAlpha: Float, layout: SubPixelLayout
  ) -> Bool {
    guard Self.subPixelWinogradApplies(g, cout: cout, layout: layout) else { return false }
    let label =
      Self.profiling ? "conv2d \(g.n)x\(g.c)x\(g.h)x\(g.w)->\(cout) k\(g.kh) s1 \(layout)" : "conv2d"
    timed(label) {
      // The cut border of the offset depth-to-space layout is not in y.
      let yp = ptr(y), p = layout == .paddedDepthToSpaceOutput ? (g.ho - 1) * (g.wo - 1) : g.ho * g.wo
      let shared = bias.map(ptr)
      winograd(
        ptr(x), ptr(weight), yp, g, cout: cout, bias: { _ in shared }, biasStride: 0, residual: nil,
        layout: layout)
      guard activation != .none else { return }
      // Elementwise, so the layout of y does not matter.
      Parallel.forEach(g.n * cout * p, cost: 2) { r in
        Self.biasActivate(yp + r.lowerBound, count: r.count, bias: 0, activation, activationAlpha)
      }
    }
    return true
  }

  public func groupNorm(
    _ x: Buffer, _ y: Buffer, gamma: Buffer, beta: Buffer, n: Int, c: Int, hw: Int, groups: Int, eps: Float,
    silu: Bool
  ) throws {
    timed("groupNorm") {
      let xp = ptr(x), yp = ptr(y), gp = ptr(gamma), bp = ptr(beta)
      let cpg = c / groups, count = cpg * hw
      Parallel.forEach(n * groups, cost: count * 4) { items in
        for item in items {
          let base = (item / groups * c + item % groups * cpg) * hw
          let src = xp + base, dst = yp + base
          let mean = Float(gpugen_sum(src, count) / Double(count))
          let v = Float(gpugen_squared_deviation(src, count, mean))
          let rstd = 1 / (v / Float(count) + eps).squareRoot()
          for ch in 0..<cpg {
            let channel = item % groups * cpg + ch
            let scale = gp[channel] * rstd, shift = bp[channel] - mean * scale
            let s0 = src + ch * hw, d0 = dst + ch * hw
            gpugen_affine(s0, d0, hw, scale, shift, silu ? 1 : 0)
          }
        }
      }
    }
  }
}

/// How `CPUBackend.subPixelWinograd` reads its input and writes its output (the factor is 2).
enum SubPixelLayout: Int32 {
  /// Plain NCHW in and out.
  case plain = 0
  /// The input (N, C/4, 2H, 2W) is read as its space-to-depth view (N, C, H, W): channel 4c + 2a + b holds
  /// x[c, 2i + a, 2j + b].
  case spaceToDepthInput = 1
  /// The output (N, K, H, W) is written depth-to-space as (N, K/4, 2H, 2W): channel 4o + 2a + b goes to
  /// y[o, 2i + a, 2j + b].
  case depthToSpaceOutput = 2
  /// The input (N, C/4, 2H − 2, 2W − 2) is read as the space-to-depth view (N, C, H, W) of itself padded by one
  /// pixel: channel 4c + 2a + b holds x[c, 2i + a − 1, 2j + b − 1] (zero outside x).
  case paddedSpaceToDepthInput = 5
  /// The output (N, K, H, W) is written depth-to-space with its one-pixel border cut, as (N, K/4, 2H − 2, 2W − 2):
  /// channel 4o + 2a + b goes to y[o, 2i + a − 1, 2j + b − 1] where that is inside y.
  case paddedDepthToSpaceOutput = 6

  /// Whether the input is read as a space-to-depth view.
  var readsSpaceToDepth: Bool { rawValue & 1 != 0 }
  /// Whether the output is written depth-to-space.
  var writesDepthToSpace: Bool { rawValue & 2 != 0 }
  /// Whether the view is shifted by one pixel (the 2×2 forms of the 4×4 stride-2 convolutions).
  var offset: Bool { rawValue & 4 != 0 }
}
