// Backward kernels of the native CPU backend: unary derivatives, clamp's mask, col2im, group norm.
import CPUPeak
import Foundation

extension CPUBackend {
  public func unaryGrad(_ op: UnaryOp, _ x: Buffer, _ dy: Buffer, _ dx: Buffer, count: Int, alpha: Float)
    throws
  {
    timed("unaryGrad") {
      let xp = ptr(x), gp = ptr(dy), yp = ptr(dx)
      func each(cost: Int = 2, _ f: @escaping (Float, Float) -> Float) {
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
      case .relu: each { v, g in v > 0 ? g : 0 }
      case .leakyRelu: each { v, g in v > 0 ? g : alpha * g }
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
