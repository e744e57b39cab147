// Convolution unfolding and group normalisation on the native CPU backend.
import CPUPeak
import Foundation

extension CPUBackend {
  public func im2col(_ x: Buffer, _ col: Buffer, _ g: ConvGeometry) throws {
    try timed("im2col") {
      let xp = ptr(x), cp = ptr(col)
      let (ho, wo) = (g.ho, g.wo)
      let p = ho * wo, q = g.n * p
      // One task per row (c, ky, kx) of col; each writes N·HO·WO contiguous values.
      Parallel.forEach(g.k, cost: q) { rows in
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
    }
  }

  public func groupNorm(
    _ x: Buffer, _ y: Buffer, gamma: Buffer, beta: Buffer, n: Int, c: Int, hw: Int, groups: Int, eps: Float,
    silu: Bool
  ) throws {
    try timed("groupNorm") {
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
