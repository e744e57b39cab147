// Mode coverage and quality of generated points on a toy 2-D data set. A point is high quality (HQ) when it lies
// within 3σ of its nearest mode (squared distance ≤ 9σ², in Double from the Float coordinates). The modes are
// ≥ 30σ apart, so each HQ point belongs to exactly one mode. Tests/GPUGenModelsTests/Fixtures/toy holds NumPy's
// scores of a few point sets (make_fixtures.py).
import Foundation

/// How well a set of points covers a toy data set's modes (`ToyMetrics.score`).
public struct ToyScores: Codable, Sendable, Equatable {
  /// The data set's number of modes K.
  public var modes: Int
  /// The number of points N (non-finite points included; they are never high quality).
  public var count: Int
  /// HQ points per mode, in the data set's mode order.
  public var highQualityPerMode: [Int]
  /// Modes with at least one HQ point.
  public var modesCoveredHighQuality: Int
  /// Modes holding at least 10 % of their fair share N/K as HQ points (10·K·n_k ≥ N, and n_k ≥ 1).
  public var modesCoveredShare: Int
  /// HQ points / N (0 when N = 0).
  public var highQualityFraction: Double
  /// KL(p ‖ uniform) = Σ_k p_k log(p_k·K) in nats, p the histogram over modes of the HQ points: 0 for a perfect
  /// spread, log K for all HQ points on one mode. With no HQ point at all it is defined as log K, the value of
  /// total collapse.
  public var klFromUniform: Double

  /// Scores from their parts (`ToyMetrics.score` computes them from points).
  public init(
    modes: Int, count: Int, highQualityPerMode: [Int], modesCoveredHighQuality: Int, modesCoveredShare: Int,
    highQualityFraction: Double, klFromUniform: Double
  ) {
    self.modes = modes
    self.count = count
    self.highQualityPerMode = highQualityPerMode
    self.modesCoveredHighQuality = modesCoveredHighQuality
    self.modesCoveredShare = modesCoveredShare
    self.highQualityFraction = highQualityFraction
    self.klFromUniform = klFromUniform
  }

  /// One line for logs and plot captions (only characters the plots' bitmap font draws), e.g.
  /// `modes 8/8 hit, 8/8 over 10% share, HQ 98.9%, KL 0.0012, n 20000`.
  public var summary: String {
    String(
      format: "modes %d/%d hit, %d/%d over 10%% share, HQ %.1f%%, KL %.4f, n %d", modesCoveredHighQuality,
      modes,
      modesCoveredShare, modes, 100 * highQualityFraction, klFromUniform, count)
  }
}

/// Scoring of generated points against a toy data set's modes.
public enum ToyMetrics {
  /// The number of standard deviations within which a point counts as high quality.
  public static let qualityRadius = 3.0

  /// The mode nearest to (x, y) (the lowest index on ties) and the squared distance to it; for a non-finite
  /// point, mode 0 and NaN.
  public static func nearestMode(x: Double, y: Double, modes: [(x: Double, y: Double)]) -> (
    index: Int, squaredDistance: Double
  ) {
    guard x.isFinite, y.isFinite else { return (0, .nan) }
    var best = (index: 0, squaredDistance: Double.infinity)
    for (k, m) in modes.enumerated() {
      let (dx, dy) = (x - m.x, y - m.y)
      let d = dx * dx + dy * dy
      if d < best.squaredDistance { best = (k, d) }
    }
    return best
  }

  /// Scores `points` (row-major (x, y) pairs; an even count) against `dataset`.
  public static func score(_ points: [Float], dataset: ToyDataset) -> ToyScores {
    precondition(points.count % 2 == 0, "ToyMetrics.score: \(points.count) coordinates are not (x, y) pairs")
    let modes = dataset.modes
    let k = modes.count
    let n = points.count / 2
    let radius = qualityRadius * dataset.sigma
    let limit = radius * radius
    var perMode = [Int](repeating: 0, count: k)
    for i in 0..<n {
      let (m, d) = nearestMode(x: Double(points[2 * i]), y: Double(points[2 * i + 1]), modes: modes)
      if d <= limit { perMode[m] += 1 }
    }
    let hq = perMode.reduce(0, +)
    var kl = log(Double(k))
    if hq > 0 {
      kl = 0
      for c in perMode where c > 0 {
        let p = Double(c) / Double(hq)
        kl += p * log(p * Double(k))
      }
    }
    return ToyScores(
      modes: k, count: n, highQualityPerMode: perMode,
      modesCoveredHighQuality: perMode.filter { $0 > 0 }.count,
      modesCoveredShare: perMode.filter { $0 > 0 && 10 * k * $0 >= n }.count,
      highQualityFraction: n == 0 ? 0 : Double(hq) / Double(n), klFromUniform: kl)
  }
}
