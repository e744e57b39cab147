// Kernel Inception Distance (Bińkowski et al., 2018) in a feature space: the unbiased estimate of the squared
// MMD under the cubic polynomial kernel k(x, y) = (x·y/d + 1)³,
//
//   MMD²ᵤ = Σ_{i≠j} k(xᵢ,xⱼ)/(m(m−1)) + Σ_{i≠j} k(yᵢ,yⱼ)/(m(m−1)) − 2 Σ_{i,j} k(xᵢ,yⱼ)/m²,
//
// averaged over random subsets of m points of each set, and reported as mean ± the standard deviation of the
// subset estimates (numpy's std, ddof 0), as torch-fidelity does. Unlike FID it has no bias: two samples of one
// distribution give 0 in expectation at any N.
//
// Subsets: m = 1,000, or ⌊N/2⌋ when a set has fewer than 2,000 points, so that the subsets differ and their
// spread is a real standard error (with m = N every subset is the whole set and the spread is 0). Subset s of a
// set of n points holds the m points with the smallest Philox word 0 of counter (0, i, s, stream) under the
// seed's key (ties by index), stream `Streams.kidSubsets` for the generated set and the next one for the real.
import CBLAS
import Foundation
import GPUGenCore

/// A KID estimate: the mean and spread of the subset estimates.
public struct KIDEstimate: Codable, Sendable, Equatable {
  /// The mean of the subset MMD² estimates.
  public var mean: Double
  /// Their standard deviation (ddof 0).
  public var std: Double
  /// Points per subset, and the number of subsets.
  public var subsetSize: Int, subsets: Int

  enum CodingKeys: String, CodingKey {
    case mean, std
    case subsetSize = "subset_size"
    case subsets
  }
}

/// The Kernel Inception Distance.
public enum KernelInceptionDistance {
  /// The largest subset size.
  public static let maxSubsetSize = 1000
  /// The number of subsets.
  public static let defaultSubsets = 100

  /// The subset size for sets of `n` and `m` points: 1,000, or half the smaller set when that is below 2,000.
  public static func subsetSize(_ n: Int, _ m: Int) -> Int { Swift.min(maxSubsetSize, Swift.min(n, m) / 2) }

  /// The `size` indices of subset `subset` of a set of `count` points (ascending Philox keys).
  public static func subsetIndices(count: Int, size: Int, subset: Int, seed: UInt64, stream: Int) -> [Int] {
    let key = Philox4x32.key(seed: seed)
    let keys = (0..<count).map {
      Philox4x32.block(counter: SIMD4(0, UInt32($0), UInt32(subset), UInt32(stream)), key: key)[0]
    }
    let order = (0..<count).sorted { keys[$0] != keys[$1] ? keys[$0] < keys[$1] : $0 < $1 }
    return Array(order.prefix(size))
  }

  /// The unbiased MMD² between the rows of `x` and `y` (m × d each, Double) under (a·b/d + 1)³.
  static func mmd2(_ x: [Double], _ y: [Double], m: Int, d: Int) -> Double {
    func kernelSum(_ a: [Double], _ b: [Double], offDiagonal: Bool) -> Double {
      var g = [Double](repeating: 0, count: m * m)
      a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
          g.withUnsafeMutableBufferPointer { pg in
            cblas_dgemm(
              CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(m), Int32(d), 1 / Double(d),
              pa.baseAddress!, Int32(d), pb.baseAddress!, Int32(d), 0, pg.baseAddress!, Int32(m))
          }
        }
      }
      var s = 0.0
      for i in 0..<m {
        for j in 0..<m where !(offDiagonal && i == j) {
          let t = g[i * m + j] + 1
          s += t * t * t
        }
      }
      return s
    }
    let mm = Double(m)
    return (kernelSum(x, x, offDiagonal: true) + kernelSum(y, y, offDiagonal: true)) / (mm * (mm - 1))
      - 2 * kernelSum(x, y, offDiagonal: false) / (mm * mm)
  }

  /// KID of `generated` against `real` (rows of `dimension`), over `subsets` subsets drawn from `seed`.
  public static func estimate(
    real: [Float], generated: [Float], dimension d: Int, subsets: Int = defaultSubsets,
    subsetSize: Int? = nil, seed: UInt64
  ) throws -> KIDEstimate {
    guard d > 0, real.count % d == 0, generated.count % d == 0 else {
      throw ClassifierError.invalidArgument("KID: features are not rows of \(d)")
    }
    let n = generated.count / d, r = real.count / d
    let m = subsetSize ?? self.subsetSize(n, r)
    guard m >= 2, m <= n, m <= r, subsets >= 1 else {
      throw ClassifierError.invalidArgument(
        "KID needs subsets of at least 2 points from each set (\(n) generated, \(r) real, subsets of \(m))")
    }
    let x = generated.map(Double.init), y = real.map(Double.init)
    func gather(_ v: [Double], _ idx: [Int]) -> [Double] {
      var out = [Double]()
      out.reserveCapacity(idx.count * d)
      for i in idx { out += v[(i * d)..<((i + 1) * d)] }
      return out
    }
    var values = [Double](repeating: 0, count: subsets)
    for s in 0..<subsets {
      let ix = subsetIndices(count: n, size: m, subset: s, seed: seed, stream: Streams.kidSubsets)
      let iy = subsetIndices(count: r, size: m, subset: s, seed: seed, stream: Streams.kidSubsets + 1)
      values[s] = mmd2(gather(x, ix), gather(y, iy), m: m, d: d)
    }
    let mean = values.reduce(0, +) / Double(subsets)
    let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(subsets)
    return KIDEstimate(mean: mean, std: variance.squareRoot(), subsetSize: m, subsets: subsets)
  }
}
