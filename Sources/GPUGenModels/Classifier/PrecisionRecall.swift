// Improved precision and recall (Kynkäänniemi et al., 2019) in a feature space: each set's manifold is the
// union of balls around its points, each ball's radius the distance to that point's k-th nearest neighbour
// in its own set. Precision: the share of generated points inside the real manifold (fidelity); recall: the
// share of real points inside the generated manifold (diversity). And the entropy of a class histogram.
import Foundation

/// Improved precision and recall, and class-histogram entropy.
public enum ManifoldMetrics {
  /// Squared Euclidean distances between the rows of `a` (n × d) and `b` (m × d), row-major (n × m).
  static func squaredDistances(_ a: [Float], _ b: [Float], dimension d: Int) -> [Double] {
    let n = a.count / d, m = b.count / d
    var out = [Double](repeating: 0, count: n * m)
    let na = (0..<n).map { i in (0..<d).reduce(0.0) { $0 + Double(a[i * d + $1]) * Double(a[i * d + $1]) } }
    let nb = (0..<m).map { j in (0..<d).reduce(0.0) { $0 + Double(b[j * d + $1]) * Double(b[j * d + $1]) } }
    out.withUnsafeMutableBufferPointer { o in
      a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
          DispatchQueue.concurrentPerform(iterations: n) { i in
            for j in 0..<m {
              var dot = 0.0
              for k in 0..<d { dot += Double(pa[i * d + k]) * Double(pb[j * d + k]) }
              o[i * m + j] = Swift.max(0, na[i] + nb[j] - 2 * dot)
            }
          }
        }
      }
    }
    return out
  }

  /// Each point's squared distance to its k-th nearest neighbour in its own set (itself excluded).
  public static func kthNeighbourRadii(_ x: [Float], dimension d: Int, k: Int) throws -> [Double] {
    let n = x.count / d
    guard k >= 1, n > k else {
      throw ClassifierError.invalidArgument("k-NN radii need more than k = \(k) points, got \(n)")
    }
    let dist = squaredDistances(x, x, dimension: d)
    return (0..<n).map { i in
      var row = Array(dist[(i * n)..<((i + 1) * n)])
      row.remove(at: i)
      row.sort()
      return row[k - 1]
    }
  }

  /// The share of `points` inside the manifold of `reference` (balls of each reference point's k-NN radius).
  public static func coverage(of points: [Float], by reference: [Float], dimension d: Int, k: Int) throws
    -> Double
  {
    let radii = try kthNeighbourRadii(reference, dimension: d, k: k)
    let dist = squaredDistances(points, reference, dimension: d)
    let n = points.count / d, m = reference.count / d
    guard n > 0 else { return 0 }
    var inside = 0
    for i in 0..<n where (0..<m).contains(where: { dist[i * m + $0] <= radii[$0] }) { inside += 1 }
    return Double(inside) / Double(n)
  }

  /// Improved precision (generated inside real) and recall (real inside generated), k = 3 by default.
  public static func precisionRecall(real: [Float], generated: [Float], dimension d: Int, k: Int = 3) throws
    -> (
      precision: Double, recall: Double
    )
  {
    (
      try coverage(of: generated, by: real, dimension: d, k: k),
      try coverage(of: real, by: generated, dimension: d, k: k)
    )
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
