// k-nearest-neighbour manifold metrics in a feature space, each set's manifold the union of balls around its
// points, each ball's radius the distance to that point's k-th nearest neighbour in its own set (itself
// excluded), as clovaai's `prdc` computes them (strict `<`):
//   - improved precision and recall (Kynkäänniemi et al., 2019; k = 3): the share of generated points inside
//     the real manifold (fidelity), and of real points inside the generated manifold (diversity);
//   - density and coverage (Naeem et al., 2020; k = 5): density = (1/kM) Σ_j #{i : Y_j ∈ B(X_i)}, the mean
//     number of real balls a generated point falls in, over k (1 when the two sets are alike; above 1 for
//     samples crowded where the real data are dense); coverage = the share of real balls that hold at least
//     one generated point.
// Distances are computed in Double, a block of rows at a time (BLAS dgemm), so 10,000 × 10,000 fits in memory.
import CBLAS
import Foundation

/// A set of feature vectors in Double, with their squared norms.
struct FeatureRows {
  let count: Int
  let dimension: Int
  let values: [Double]
  let norms: [Double]

  init(_ x: [Float], dimension d: Int) throws {
    guard d > 0, x.count % d == 0 else {
      throw ClassifierError.invalidArgument("features: \(x.count) values are not rows of \(d)")
    }
    guard x.allSatisfy(\.isFinite) else {
      throw ClassifierError.invalidArgument("features: a value is NaN or infinite")
    }
    count = x.count / d
    dimension = d
    values = x.map(Double.init)
    norms = (0..<count).map { i in
      var s = 0.0
      for k in 0..<d { s += Double(x[i * d + k]) * Double(x[i * d + k]) }
      return s
    }
  }

  /// Rows per block of a distance matrix (a block of b.count columns).
  static let blockRows = 512

  /// Squared distances from rows `rows` of self to every row of `b`, row-major (rows.count × b.count).
  func squaredDistances(rows: Range<Int>, to b: FeatureRows) -> [Double] {
    let m = rows.count, n = b.count, d = dimension
    var out = [Double](repeating: 0, count: m * n)
    guard m > 0, n > 0 else { return out }
    values.withUnsafeBufferPointer { a in
      b.values.withUnsafeBufferPointer { bv in
        out.withUnsafeMutableBufferPointer { o in
          cblas_dgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(d), -2,
            a.baseAddress! + rows.lowerBound * d, Int32(d), bv.baseAddress!, Int32(d), 0, o.baseAddress!,
            Int32(n))
        }
      }
    }
    for (r, i) in rows.enumerated() {
      let ni = norms[i]
      for j in 0..<n { out[r * n + j] = Swift.max(0, out[r * n + j] + ni + b.norms[j]) }
    }
    return out
  }

  /// Each row's squared distances to its `kMax` nearest other rows, ascending (count × kMax).
  func nearestSquaredDistances(kMax: Int) throws -> [Double] {
    guard kMax >= 1, count > kMax else {
      throw ClassifierError.invalidArgument("k-NN radii need more than k = \(kMax) points, got \(count)")
    }
    var out = [Double](repeating: .infinity, count: count * kMax)
    var start = 0
    while start < count {
      let rows = start..<Swift.min(count, start + Self.blockRows)
      let dist = squaredDistances(rows: rows, to: self)
      for (r, i) in rows.enumerated() {
        let base = i * kMax
        for j in 0..<count where j != i {
          let v = dist[r * count + j]
          if v < out[base + kMax - 1] {
            var p = kMax - 1
            while p > 0 && out[base + p - 1] > v {
              out[base + p] = out[base + p - 1]
              p -= 1
            }
            out[base + p] = v
          }
        }
      }
      start = rows.upperBound
    }
    return out
  }
}

/// Precision, recall, density and coverage of a generated set against a real one.
public struct PRDC: Codable, Sendable, Equatable {
  /// Improved precision and recall (k = `kPR`).
  public var precision: Double, recall: Double
  /// Density and coverage (k = `kDC`).
  public var density: Double, coverage: Double

  /// Plain keys, as in clovaai's prdc.
  enum CodingKeys: String, CodingKey { case precision, recall, density, coverage }
}

/// k-NN manifold metrics (precision, recall, density, coverage) and class-histogram entropy.
public enum ManifoldMetrics {
  /// The neighbour count of improved precision and recall.
  public static let precisionRecallK = 3
  /// The neighbour count of density and coverage.
  public static let densityCoverageK = 5

  /// Each point's squared distance to its k-th nearest neighbour in its own set (itself excluded).
  public static func kthNeighbourRadii(_ x: [Float], dimension d: Int, k: Int) throws -> [Double] {
    let rows = try FeatureRows(x, dimension: d)
    let near = try rows.nearestSquaredDistances(kMax: k)
    return (0..<rows.count).map { near[$0 * k + k - 1] }
  }

  /// Precision and recall with k = `kPR` neighbours and density and coverage with k = `kDC` (3 and 5 by
  /// default), of `generated` (M × d) against `real` (N × d).
  public static func prdc(
    real: [Float], generated: [Float], dimension d: Int, kPR: Int = precisionRecallK,
    kDC: Int = densityCoverageK
  ) throws -> PRDC {
    let x = try FeatureRows(real, dimension: d), y = try FeatureRows(generated, dimension: d)
    let kMax = Swift.max(kPR, kDC)
    let realNear = try x.nearestSquaredDistances(kMax: kMax)
    let fakeNear = try y.nearestSquaredDistances(kMax: kPR)
    let realPR = (0..<x.count).map { realNear[$0 * kMax + kPR - 1] }
    let realDC = (0..<x.count).map { realNear[$0 * kMax + kDC - 1] }
    let fakePR = (0..<y.count).map { fakeNear[$0 * kPR + kPR - 1] }
    var inReal = [Bool](repeating: false, count: y.count)
    var realBalls = [Int](repeating: 0, count: y.count)
    var recalled = 0, covered = 0
    var start = 0
    while start < x.count {
      let rows = start..<Swift.min(x.count, start + FeatureRows.blockRows)
      let dist = x.squaredDistances(rows: rows, to: y)
      for (r, i) in rows.enumerated() {
        var inFake = false
        var nearest = Double.infinity
        let (rp, rd) = (realPR[i], realDC[i])
        for j in 0..<y.count {
          let v = dist[r * y.count + j]
          if v < fakePR[j] { inFake = true }
          if v < nearest { nearest = v }
          if v < rp { inReal[j] = true }
          if v < rd { realBalls[j] += 1 }
        }
        if inFake { recalled += 1 }
        if nearest < rd { covered += 1 }
      }
      start = rows.upperBound
    }
    let m = Double(y.count), n = Double(x.count)
    return PRDC(
      precision: Double(inReal.filter { $0 }.count) / m, recall: Double(recalled) / n,
      density: Double(realBalls.reduce(0, +)) / (Double(kDC) * m), coverage: Double(covered) / n)
  }

  /// Improved precision (generated inside real) and recall (real inside generated), k = 3 by default.
  public static func precisionRecall(real: [Float], generated: [Float], dimension d: Int, k: Int = 3) throws
    -> (precision: Double, recall: Double)
  {
    let r = try prdc(real: real, generated: generated, dimension: d, kPR: k, kDC: k)
    return (r.precision, r.recall)
  }

  /// The entropy (nats) of the histogram of `labels` over `classes` classes (ln classes when uniform).
  public static func histogramEntropy(_ labels: [Int], classes: Int) -> Double {
    var counts = [Int](repeating: 0, count: classes)
    for l in labels where l >= 0 && l < classes { counts[l] += 1 }
    let total = Double(counts.reduce(0, +))
    guard total > 0 else { return 0 }
    return counts.reduce(0.0) { h, c in c == 0 ? h : h - Double(c) / total * Foundation.log(Double(c) / total)
    }
  }
}
