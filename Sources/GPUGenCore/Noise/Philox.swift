// Philox4x32-10 (Random123) and Box–Muller: the same code as the section at the end of Kernels/common.cl.
// Both must stay bit-identical (the known-answer tests run each on every device).
import Foundation

/// The Philox4x32-10 counter-based generator (Salmon et al., SC'11), as in Random123.
public enum Philox4x32 {
  static let m0: UInt32 = 0xD251_1F53
  static let m1: UInt32 = 0xCD9E_8D57
  static let w0: UInt32 = 0x9E37_79B9
  static let w1: UInt32 = 0xBB67_AE85

  @inline(__always)
  static func round(_ c: SIMD4<UInt32>, _ k: SIMD2<UInt32>) -> SIMD4<UInt32> {
    let p0 = m0.multipliedFullWidth(by: c[0])
    let p1 = m1.multipliedFullWidth(by: c[2])
    return SIMD4(p1.high ^ c[1] ^ k[0], p1.low, p0.high ^ c[3] ^ k[1], p0.low)
  }

  /// Ten rounds of Philox4x32 on `counter` under `key`: four pseudo-random words.
  @inline(__always)
  public static func block(counter: SIMD4<UInt32>, key: SIMD2<UInt32>) -> SIMD4<UInt32> {
    var c = counter
    var k = key
    for _ in 0..<9 {
      c = round(c, k)
      k &+= SIMD2(w0, w1)
    }
    return round(c, k)
  }

  /// The key for a 64-bit seed: (low word, high word).
  public static func key(seed: UInt64) -> SIMD2<UInt32> {
    SIMD2(UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
  }

  /// A word to a uniform in (0, 1]: `Float(u)·2⁻³² + 2⁻³³`, never 0 (the smallest is 2⁻³³).
  @inline(__always)
  public static func uniform(_ u: UInt32) -> Float {
    Float(u) * 0x1p-32 + 0x1p-33
  }

  /// Box–Muller: two words to two independent standard normals (r·cos θ, r·sin θ).
  @inline(__always)
  public static func boxMuller(_ a: UInt32, _ b: UInt32) -> (Float, Float) {
    let r = (-2 * Foundation.log(uniform(a))).squareRoot()
    let theta: Float = 6.28318530717958648 * uniform(b)
    return (r * Foundation.cos(theta), r * Foundation.sin(theta))
  }

  /// One block's four words to four standard normals: Box–Muller on (x, y) and on (z, w).
  @inline(__always)
  public static func normals(_ w: SIMD4<UInt32>) -> SIMD4<Float> {
    let (a, b) = boxMuller(w[0], w[1])
    let (c, d) = boxMuller(w[2], w[3])
    return SIMD4(a, b, c, d)
  }

  /// The normals of elements 4·block ..< 4·block + 4 of sample `sample` at step `step` in `stream`:
  /// counter (block, sample, step, stream), key = the seed's two words. The layout every backend uses.
  @inline(__always)
  public static func normals(seed: UInt64, sample: UInt32, step: UInt32, stream: UInt32, block: UInt32)
    -> SIMD4<Float>
  {
    normals(Self.block(counter: SIMD4(block, sample, step, stream), key: key(seed: seed)))
  }
}
