// The Fréchet distance between Gaussians fitted to two sets of feature vectors (the FID formula, here in
// a gpugen classifier's feature space), in Double on the host:
//
//   d² = ‖μ₁ − μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2·Tr((Σ₁^½ Σ₂ Σ₁^½)^½)
//
// Tr((Σ₁Σ₂)^½) equals Tr((Σ₁^½ Σ₂ Σ₁^½)^½), whose argument is symmetric positive semidefinite, so both
// square roots come from a symmetric eigendecomposition (cyclic Jacobi rotations), with eigenvalues that
// rounding leaves slightly negative clamped to 0.
import Foundation

/// Mean and covariance of a set of vectors.
public struct GaussianStatistics: Sendable, Equatable {
  /// Dimension d.
  public var dimension: Int
  /// Number of vectors the statistics were fitted to.
  public var count: Int
  /// Mean (d).
  public var mean: [Double]
  /// Covariance (d×d, row-major), unbiased (divided by count − 1, as numpy.cov and FID implementations do).
  public var covariance: [Double]

  public init(dimension: Int, count: Int, mean: [Double], covariance: [Double]) {
    (self.dimension, self.count, self.mean, self.covariance) = (dimension, count, mean, covariance)
  }

  /// Fits `count` row vectors of `dimension` values (`vectors` row-major) — at least 2.
  public init(vectors: [Float], dimension d: Int) throws {
    guard d > 0, vectors.count % d == 0, vectors.count / d >= 2 else {
      throw ClassifierError.invalidArgument(
        "Fréchet distance: need at least 2 vectors of dimension \(d), got \(vectors.count) values")
    }
    let n = vectors.count / d
    var mean = [Double](repeating: 0, count: d)
    for i in 0..<n { for j in 0..<d { mean[j] += Double(vectors[i * d + j]) } }
    for j in 0..<d { mean[j] /= Double(n) }
    var cov = [Double](repeating: 0, count: d * d)
    var centred = [Double](repeating: 0, count: d)
    for i in 0..<n {
      for j in 0..<d { centred[j] = Double(vectors[i * d + j]) - mean[j] }
      for a in 0..<d where centred[a] != 0 {
        let ca = centred[a]
        for b in a..<d { cov[a * d + b] += ca * centred[b] }
      }
    }
    for a in 0..<d {
      for b in a..<d {
        let v = cov[a * d + b] / Double(n - 1)
        cov[a * d + b] = v
        cov[b * d + a] = v
      }
    }
    self.init(dimension: d, count: n, mean: mean, covariance: cov)
  }
}

/// Symmetric-matrix helpers and the Fréchet distance.
public enum FrechetDistance {
  /// d² between N(μ₁, Σ₁) and N(μ₂, Σ₂).
  public static func distance(_ a: GaussianStatistics, _ b: GaussianStatistics) throws -> Double {
    guard a.dimension == b.dimension else {
      throw ClassifierError.mismatch(
        "Fréchet distance: feature dimensions differ (\(a.dimension) and \(b.dimension))")
    }
    let d = a.dimension
    var meanTerm = 0.0
    for j in 0..<d { meanTerm += (a.mean[j] - b.mean[j]) * (a.mean[j] - b.mean[j]) }
    var traces = 0.0
    for j in 0..<d { traces += a.covariance[j * d + j] + b.covariance[j * d + j] }
    let root1 = try squareRoot(a.covariance, n: d)
    let m = multiply(multiply(root1, b.covariance, n: d), root1, n: d)
    let cross = try eigen(symmetrised(m, n: d), n: d).values.reduce(0) { $0 + Swift.max($1, 0).squareRoot() }
    return meanTerm + traces - 2 * cross
  }

  /// d² between the Gaussians fitted to two sets of `dimension`-vectors.
  public static func distance(_ x: [Float], _ y: [Float], dimension: Int) throws -> Double {
    try distance(
      try GaussianStatistics(vectors: x, dimension: dimension),
      try GaussianStatistics(vectors: y, dimension: dimension))
  }

  /// The symmetric positive-semidefinite square root of a symmetric n×n matrix (row-major): V·diag(√λ)·Vᵀ
  /// with negative eigenvalues (rounding) taken as 0.
  public static func squareRoot(_ a: [Double], n: Int) throws -> [Double] {
    let (values, vectors) = try eigen(a, n: n)
    var out = [Double](repeating: 0, count: n * n)
    for k in 0..<n {
      let s = Swift.max(values[k], 0).squareRoot()
      if s == 0 { continue }
      for i in 0..<n {
        let vik = vectors[i * n + k] * s
        if vik == 0 { continue }
        for j in 0..<n { out[i * n + j] += vik * vectors[j * n + k] }
      }
    }
    return out
  }

  /// Eigenvalues and eigenvectors (columns of `vectors`, row-major n×n) of a symmetric n×n matrix by cyclic
  /// Jacobi rotations, until the off-diagonal mass is negligible. Eigenvalues are sorted descending.
  public static func eigen(_ matrix: [Double], n: Int, maxSweeps: Int = 60) throws -> (
    values: [Double], vectors: [Double]
  ) {
    guard n >= 0, matrix.count == n * n else {
      throw ClassifierError.invalidArgument("eigen: \(matrix.count) values are not an \(n)×\(n) matrix")
    }
    guard matrix.allSatisfy(\.isFinite) else {
      throw ClassifierError.invalidArgument("eigen: the matrix has NaN or infinite entries")
    }
    var a = symmetrised(matrix, n: n)
    var v = [Double](repeating: 0, count: n * n)
    for i in 0..<n { v[i * n + i] = 1 }
    var total = 0.0
    for x in a { total += x * x }
    let tolerance = total * 1e-26
    for _ in 0..<maxSweeps {
      var off = 0.0
      for p in 0..<n { for q in (p + 1)..<n { off += a[p * n + q] * a[p * n + q] } }
      if off <= tolerance || off == 0 { break }
      for p in 0..<n {
        for q in (p + 1)..<n {
          let apq = a[p * n + q]
          let app = a[p * n + p], aqq = a[q * n + q]
          // Negligible against both diagonal entries: rotating would change nothing in Double.
          if apq == 0 || Swift.abs(apq) * 1e18 < Swift.min(Swift.abs(app), Swift.abs(aqq)) {
            a[p * n + q] = 0
            a[q * n + p] = 0
            continue
          }
          // Rotation angle that zeroes a[p][q]: tan(2θ) = 2·apq / (aqq − app), the smaller root for t.
          let theta = (aqq - app) / (2 * apq)
          let t = (theta >= 0 ? 1.0 : -1.0) / (Swift.abs(theta) + (theta * theta + 1).squareRoot())
          let c = 1 / (t * t + 1).squareRoot(), s = t * c
          // A ← Jᵀ A J on rows/columns p and q.
          for k in 0..<n {
            let akp = a[k * n + p], akq = a[k * n + q]
            a[k * n + p] = c * akp - s * akq
            a[k * n + q] = s * akp + c * akq
          }
          for k in 0..<n {
            let apk = a[p * n + k], aqk = a[q * n + k]
            a[p * n + k] = c * apk - s * aqk
            a[q * n + k] = s * apk + c * aqk
          }
          a[p * n + q] = 0
          a[q * n + p] = 0
          for k in 0..<n {
            let vkp = v[k * n + p], vkq = v[k * n + q]
            v[k * n + p] = c * vkp - s * vkq
            v[k * n + q] = s * vkp + c * vkq
          }
        }
      }
    }
    let order = (0..<n).sorted { a[$0 * n + $0] > a[$1 * n + $1] }
    let values = order.map { a[$0 * n + $0] }
    var vectors = [Double](repeating: 0, count: n * n)
    for (col, k) in order.enumerated() { for i in 0..<n { vectors[i * n + col] = v[i * n + k] } }
    return (values, vectors)
  }

  /// (A + Aᵀ)/2.
  static func symmetrised(_ a: [Double], n: Int) -> [Double] {
    var out = a
    for i in 0..<n {
      for j in (i + 1)..<n {
        let m = 0.5 * (a[i * n + j] + a[j * n + i])
        out[i * n + j] = m
        out[j * n + i] = m
      }
    }
    return out
  }

  /// The n×n product A·B (row-major).
  static func multiply(_ a: [Double], _ b: [Double], n: Int) -> [Double] {
    var out = [Double](repeating: 0, count: n * n)
    for i in 0..<n {
      for k in 0..<n {
        let aik = a[i * n + k]
        if aik == 0 { continue }
        for j in 0..<n { out[i * n + j] += aik * b[k * n + j] }
      }
    }
    return out
  }
}
