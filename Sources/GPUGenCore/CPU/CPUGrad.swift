// Backward kernels of the native CPU backend: unary derivatives, clamp's mask, col2im, group norm.
import CPUPeak
import Dispatch
import Foundation

extension CPUBackend {
  public func unaryGrad(_ op: UnaryOp, _ x: Buffer, _ dy: Buffer, _ dx: Buffer, count: Int, alpha: Float)
    throws
  {
    timed("unaryGrad") {
      let xp = ptr(x), gp = ptr(dy), yp = ptr(dx)
      // Inlined with a non-escaping f, so each case compiles to its own (vectorisable) loop.
      @inline(__always) func each(cost: Int = 2, _ f: (Float, Float) -> Float) {
        Parallel.forEach(count, cost: cost) { r in
          for i in r { yp[i] = f(xp[i], gp[i]) }
        }
      }
      switch op {
      case .neg: each { _, g in -g }
      case .abs: each { v, g in v > 0 ? g : (v < 0 ? -g : 0) }
      case .exp: each(cost: 8) { v, g in g * Foundation.exp(v) }
      case .log: each { v, g in g / v }
      case .sqrt: each { v, g in g * 0.5 / v.squareRoot() }
      case .rsqrt: each { v, g in -0.5 * g / (v * v.squareRoot()) }
      case .sin: each(cost: 8) { v, g in g * Foundation.cos(v) }
      case .cos: each(cost: 8) { v, g in -g * Foundation.sin(v) }
      case .tanh:
        each(cost: 8) { v, g in
          let t = Foundation.tanh(v)
          return g * (1 - t * t)
        }
      case .sigmoid:
        each(cost: 8) { v, g in
          let s = 1 / (1 + Foundation.exp(-v))
          return g * s * (1 - s)
        }
      case .relu, .leakyRelu:
        Parallel.forEach(count, cost: 2) { r in
          let o = r.lowerBound
          gpugen_relu_grad(xp + o, gp + o, yp + o, r.count, op == .relu ? 1 : 0, alpha)
        }
      case .silu:
        Parallel.forEach(count, cost: 8) { r in
          gpugen_silu_grad(xp + r.lowerBound, gp + r.lowerBound, yp + r.lowerBound, r.count)
        }
      case .gelu:
        each(cost: 12) { v, g in
          // d/dx x·Φ(x) = Φ(x) + x·φ(x)
          let cdf = 0.5 * (1 + Foundation.erf(v * 0.70710678118654752))
          let pdf = Foundation.exp(-0.5 * v * v) * 0.39894228040143268
          return g * (cdf + v * pdf)
        }
      }
    }
  }

  public func clampGrad(_ x: Buffer, _ dy: Buffer, _ dx: Buffer, count: Int, lower: Float, upper: Float)
    throws
  {
    timed("clampGrad") {
      let xp = ptr(x), gp = ptr(dy), yp = ptr(dx)
      Parallel.forEach(count, cost: 1) { r in
        for i in r { yp[i] = xp[i] >= lower && xp[i] <= upper ? gp[i] : 0 }
      }
    }
  }

  public func col2im(_ col: Buffer, _ x: Buffer, _ g: ConvGeometry) throws {
    timed("col2im") {
      let cp = ptr(col), xp = ptr(x)
      let (ho, wo) = (g.ho, g.wo)
      let p = ho * wo, q = g.n * p
      // One task per (n, c) plane; each output element gathers its KH·KW contributions in a fixed
      // order, so the result does not depend on the thread count.
      Parallel.forEach(g.n * g.c, cost: g.h * g.w * g.kh * g.kw) { planes in
        for plane in planes {
          let n = plane / g.c, c = plane % g.c
          let dst = xp + plane * g.h * g.w
          dst.update(repeating: 0, count: g.h * g.w)
          for ky in 0..<g.kh {
            for kx in 0..<g.kw {
              let r = (c * g.kh + ky) * g.kw + kx
              let src = g.batchMajor ? cp + (n * g.k + r) * p : cp + r * q + n * p
              for oy in 0..<ho {
                let iy = oy * g.strideH - g.padT + ky
                guard iy >= 0 && iy < g.h else { continue }
                let row = dst + iy * g.w, srow = src + oy * wo
                let first = g.padL - kx
                let lo = Swift.min(wo, Swift.max(0, (first + g.strideW - 1) / g.strideW))
                let hi = Swift.max(lo, Swift.min(wo, (g.w + first + g.strideW - 1) / g.strideW))
                if g.strideW == 1 {
                  let d = row - first
                  for ox in lo..<hi { d[ox] += srow[ox] }
                } else {
                  for ox in lo..<hi { row[ox * g.strideW - first] += srow[ox] }
                }
              }
            }
          }
        }
      }
    }
  }

  /// Stride-1 convolutions: a direct kernel over chunks of images (no im2col matrix). Images are split
  /// across cores in fixed contiguous ranges (so the sums' order, and the result, depend only on the batch
  /// and the core count); each core sums into its own copy of dW, added up at the end.
  public func conv2dWeightGradient(_ x: Buffer, _ dy: Buffer, _ dw: Buffer, _ g: ConvGeometry, cout: Int)
    throws
    -> Bool
  {
    weightGradient(x, dy, dw, g, cout: cout, spaceToDepth: false)
  }

  /// The stride-1 weight-gradient kernel; with `spaceToDepth`, x is the (N, C/4, 2(H − 1), 2(W − 1)) tensor
  /// whose padded space-to-depth is g's input (N, C, H, W) (channel 4c + 2a + e, row i, column j holding
  /// x[c, 2i + a − 1, 2j + e − 1]), gathered inside the kernel instead of materialised, g's kernel is 2×2,
  /// and dW comes out as the 4×4 stride-2 kernel (O, C/4, 4, 4) it is the gradient of.
  func weightGradient(
    _ x: Buffer, _ dy: Buffer, _ dw: Buffer, _ g: ConvGeometry, cout: Int, spaceToDepth: Bool
  )
    -> Bool
  {
    guard g.strideH == 1, g.strideW == 1, !g.isPointwise, g.n > 0, g.ho > 0, g.wo > 0 else { return false }
    if spaceToDepth
      && (g.c % 4 != 0 || g.kh != 2 || g.kw != 2 || g.padT != 0 || g.padL != 0 || g.padB != 0 || g.padR != 0)
    {
      return false
    }
    // The image x holds: the physical (C/4, 2(H − 1), 2(W − 1)) with spaceToDepth.
    let (xh, xw) = spaceToDepth ? (2 * (g.h - 1), 2 * (g.w - 1)) : (g.h, g.w)
    let label = "convWeightGrad \(g.n)x\(g.c)x\(g.h)x\(g.w)->\(cout) k\(g.kh)\(spaceToDepth ? " s2d" : "")"
    timed(Self.profiling ? label : "convWeightGrad") {
      let xp = ptr(x), dyp = ptr(dy), dwp = ptr(dw)
      let size = cout * g.k
      let workers = Swift.min(Parallel.cores, g.n)
      // Images per kernel call: about 2,048 output positions, so that one block of transposed dY (48
      // channels) stays in L2 while every input channel passes by, and float sums stay short.
      let chunk = Swift.max(1, Swift.min(g.n, 2048 / Swift.max(1, g.ho * g.wo)))
      let partials = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(1, (workers - 1) * size))
      defer { partials.deallocate() }
      DispatchQueue.concurrentPerform(iterations: workers) { wi in
        let out = wi == 0 ? dwp : partials + (wi - 1) * size
        out.update(repeating: 0, count: size)
        let lo = g.n * wi / workers, hi = g.n * (wi + 1) / workers
        let floats = gpugen_conv_wgrad_workspace(
          Int32(Swift.min(chunk, hi - lo)), Int32(g.c), Int32(cout), Int32(g.ho), Int32(g.wo), Int32(g.kh),
          Int32(g.kw))
        // Plain malloc, aligned by hand: glibc (< 2.38) posix_memalign frees the alignment slack as small
        // chunks that fence each freed block in, so repeated aligned scratch below the mmap threshold is never
        // reused and the heap grows every step (glibc bug 14581).
        let raw = UnsafeMutableRawPointer.allocate(byteCount: floats * 4 + 64, alignment: 16)
        defer { raw.deallocate() }
        let work = raw.alignedUp(toMultipleOf: 64)
        var start = lo
        while start < hi {
          let b = Swift.min(chunk, hi - start)
          gpugen_conv_s1_wgrad(
            xp + start * (spaceToDepth ? g.c / 4 : g.c) * xh * xw, dyp + start * cout * g.ho * g.wo, out,
            Int32(b), Int32(g.c), Int32(xh), Int32(xw), Int32(cout), Int32(g.kh), Int32(g.kw), Int32(g.padT),
            Int32(g.padL), Int32(g.ho), Int32(g.wo), work.assumingMemoryBound(to: Float.self),
            spaceToDepth ? 1 : 0)
          start += b
        }
      }
      for wi in 1..<workers {
        let src = partials + (wi - 1) * size
        for i in 0..<size { dwp[i] += src[i] }
      }
    }
    return true
  }

  public func groupNormBackward(
    _ x: Buffer, _ dy: Buffer, gamma: Buffer, beta: Buffer, dx: Buffer, dgamma: Buffer, dbeta: Buffer, n: Int,
    c: Int, hw: Int, groups: Int, eps: Float, silu: Bool
  ) throws {
    timed("groupNormBackward") {
      let xp = ptr(x), gp = ptr(dy), dxp = ptr(dx), gam = ptr(gamma), bet = ptr(beta)
      let dgp = ptr(dgamma), dbp = ptr(dbeta)
      let cpg = c / groups, count = cpg * hw
      Parallel.forEach(n * groups, cost: count * 8) { items in
        for item in items {
          let (i, grp) = (item / groups, item % groups)
          let base = (i * c + grp * cpg) * hw
          let ch = grp * cpg
          gpugen_groupnorm_backward(
            xp + base, gp + base, gam + ch, bet + ch, dxp + base, dgp + i * c + ch, dbp + i * c + ch, cpg, hw,
            eps, silu ? 1 : 0)
        }
      }
    }
  }
}
