// Convolution unfolding and group normalisation on the native CPU backend.
import Foundation

extension CPUBackend {
  public func im2col(_ x: Buffer, _ col: Buffer, _ g: ConvGeometry) throws {
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
            for ox in 0..<wo {
              let ix = ox * g.strideW - g.padL + kx
              row[ox] = ix >= 0 && ix < g.w ? src[ix] : 0
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
    let xp = ptr(x), yp = ptr(y), gp = ptr(gamma), bp = ptr(beta)
    let cpg = c / groups, count = cpg * hw
    Parallel.forEach(n * groups, cost: count * 4) { items in
      for item in items {
        let base = (item / groups * c + item % groups * cpg) * hw
        let src = xp + base, dst = yp + base
        var s: Float = 0
        for i in 0..<count { s += src[i] }
        let mean = s / Float(count)
        var v: Float = 0
        for i in 0..<count {
          let d = src[i] - mean
          v += d * d
        }
        let rstd = 1 / (v / Float(count) + eps).squareRoot()
        for ch in 0..<cpg {
          let channel = item % groups * cpg + ch
          let scale = gp[channel] * rstd, shift = bp[channel] - mean * scale
          let s0 = src + ch * hw, d0 = dst + ch * hw
          if silu {
            for i in 0..<hw {
              let t = s0[i] * scale + shift
              d0[i] = t / (1 + Foundation.exp(-t))
            }
          } else {
            for i in 0..<hw { d0[i] = s0[i] * scale + shift }
          }
        }
      }
    }
  }
}
