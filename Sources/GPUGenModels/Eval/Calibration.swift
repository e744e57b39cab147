// What the metrics read when nothing is wrong: two disjoint sets of real images (class-balanced, Philox-chosen
// as for `gpugen evaluate`) measured against each other at several N. FID is biased upward at small N (its
// covariance estimates are noisy), so a curve of FID against N shows how far apart two FIDs at different N are
// for no reason at all; KID is unbiased, so it should lie within two standard errors of 0 at every N.
import Foundation

/// Real-versus-real figures at one N.
public struct CalibrationPoint: Codable, Sendable, Equatable {
  /// Images in each set.
  public var n: Int
  /// The second set's metrics against the first.
  public var metrics: FeatureMetrics
  /// Whether |KID| ≤ 2 standard errors (the spread of its subset estimates).
  public var kidConsistentWithZero: Bool

  enum CodingKeys: String, CodingKey {
    case n, metrics
    case kidConsistentWithZero = "kid_within_2_se_of_0"
  }
}

/// Real-versus-real calibration of the metrics.
public enum Calibration {
  /// The set sizes of the calibration curve.
  public static let defaultSizes = [500, 1000, 2000, 5000, 10_000]

  /// Measures two disjoint class-balanced real sets of each size in `sizes` against each other (sizes the
  /// data cannot hold twice are an error naming the largest that fits). Each image is classified once.
  public static func realVersusReal(
    real: TrainingImages, classifier: ImageClassifier, sizes: [Int] = defaultSizes, seed: UInt64,
    batchSize: Int = 256, progress: (Int) -> Void = { _ in }
  ) throws -> [CalibrationPoint] {
    let classes = classifier.config.numClasses
    try classifier.checkFits(real)
    guard let labels = real.labels else { throw ClassifierError.mismatch("the real data has no labels") }
    let sets = try sizes.map { n -> (Int, [Int], [Int]) in
      try GeneratorEvaluator.checkCount(n, classes: classes)
      let s = try GeneratorEvaluator.realSets(
        labels: labels, classes: classes, perClass: n / classes, seed: seed)
      return (n, s.reference, s.second)
    }
    var row: [Int: Int] = [:]
    var order: [Int] = []
    for (_, a, b) in sets { for i in a + b where row[i] == nil { row[i] = order.count; order.append(i) } }
    let predicted = try classifier.predict(
      GeneratorEvaluator.gather(real, order), count: order.count, batchSize: batchSize, progress: progress)
    let d = classifier.config.featureDim
    func features(_ idx: [Int]) -> (features: [Float], labels: [Int]) {
      var f = [Float]()
      f.reserveCapacity(idx.count * d)
      var l = [Int]()
      for i in idx {
        let r = row[i]!
        f += predicted.features[(r * d)..<((r + 1) * d)]
        l.append(predicted.labels[r])
      }
      return (f, l)
    }
    return try sets.map { n, a, b in
      let ref = features(a), other = features(b)
      let m = try FeatureMetrics.measure(
        other.features, predicted: other.labels, reference: ref.features, dimension: d, classes: classes,
        seed: seed)
      return CalibrationPoint(n: n, metrics: m, kidConsistentWithZero: abs(m.kid.mean) <= 2 * m.kid.std)
    }
  }
}
