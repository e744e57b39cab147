// Judging a class-conditional generator with a classifier: the fraction of samples classified as the class
// they were conditioned on, and the Fréchet distance between the classifier's features of the samples and of
// as many real images (balanced per class). Two disjoint real sets give the floor both figures can reach.
import Foundation
import GPUGenCore

/// Class-conditional accuracy, overall and per class.
public struct ClassAccuracy: Codable, Sendable, Equatable {
  /// Fraction of all images classified as their class.
  public var overall: Double
  /// Per class c: fraction of the images of class c classified as c (NaN-free: 0 for an empty class).
  public var perClass: [Double]

  enum CodingKeys: String, CodingKey {
    case overall
    case perClass = "per_class"
  }

  /// Compares `predicted` with `truth` over `classes` classes.
  public init(predicted: [Int], truth: [Int], classes: Int) throws {
    guard predicted.count == truth.count, !truth.isEmpty else {
      throw ClassifierError.mismatch(
        "accuracy: \(predicted.count) predictions for \(truth.count) labels")
    }
    var hits = [Int](repeating: 0, count: classes), totals = [Int](repeating: 0, count: classes)
    for (p, t) in zip(predicted, truth) {
      guard t >= 0, t < classes else {
        throw ClassifierError.mismatch("accuracy: label \(t) is not in 0..<\(classes)")
      }
      totals[t] += 1
      if p == t { hits[t] += 1 }
    }
    overall = Double(hits.reduce(0, +)) / Double(truth.count)
    perClass = zip(hits, totals).map { $1 > 0 ? Double($0) / Double($1) : 0 }
  }
}

/// One generator's figures next to the real-versus-real floor.
public struct GeneratorEvaluation: Codable, Sendable, Equatable {
  /// Number of classes and images per class in every set.
  public var classes: Int
  public var perClass: Int
  /// Samples classified as the class they were conditioned on.
  public var sampleAccuracy: ClassAccuracy
  /// The second real set classified as its labels (the figure samples would reach if they were as good as
  /// real images; the classifier's own accuracy on that set).
  public var realAccuracy: ClassAccuracy
  /// Fréchet distance between the features of the samples and of the reference real set.
  public var frechetDistance: Double
  /// Fréchet distance between a second, disjoint real set and the reference set (the floor at this size).
  public var realFrechetDistance: Double
  /// Precision, recall and class-histogram entropy of the samples and of the second real set.
  public var quality: SampleQuality

  enum CodingKeys: String, CodingKey {
    case classes
    case perClass = "per_class"
    case sampleAccuracy = "sample_accuracy"
    case realAccuracy = "real_accuracy"
    case frechetDistance = "frechet_distance"
    case realFrechetDistance = "real_frechet_distance"
    case quality
  }
}

/// Fidelity and diversity in the classifier's feature space: improved precision and recall (k = 3) against
/// the reference real set, and the entropy of the predicted-class histogram; each with the floor a second
/// real set reaches.
public struct SampleQuality: Codable, Sendable, Equatable {
  /// Improved precision and recall (k = 3) of the samples against the reference set.
  public var precision: Double, recall: Double
  /// Entropy (nats) of the samples' predicted classes (ln 10 ≈ 2.303 when every class is equally common).
  public var classEntropy: Double
  /// The same figures for the second real set (the floor).
  public var realPrecision: Double, realRecall: Double, realClassEntropy: Double

  enum CodingKeys: String, CodingKey {
    case precision, recall
    case classEntropy = "class_entropy"
    case realPrecision = "real_precision"
    case realRecall = "real_recall"
    case realClassEntropy = "real_class_entropy"
  }

  /// The figures of `fake` and of the second real set `other` against the reference set `ref`.
  static func measure(
    fake: (labels: [Int], features: [Float]), ref: (labels: [Int], features: [Float]),
    other: (labels: [Int], features: [Float]), dimension d: Int, classes: Int
  ) throws -> SampleQuality {
    let pr = try ManifoldMetrics.precisionRecall(real: ref.features, generated: fake.features, dimension: d)
    let rr = try ManifoldMetrics.precisionRecall(real: ref.features, generated: other.features, dimension: d)
    return SampleQuality(
      precision: pr.precision, recall: pr.recall,
      classEntropy: ManifoldMetrics.histogramEntropy(fake.labels, classes: classes),
      realPrecision: rr.precision,
      realRecall: rr.recall,
      realClassEntropy: ManifoldMetrics.histogramEntropy(other.labels, classes: classes))
  }
}

/// An unconditional generator's figures (a VAE's prior samples) next to the real-versus-real floor.
public struct UnconditionalEvaluation: Codable, Sendable, Equatable {
  /// Samples, and real images in each real set (balanced over the classes).
  public var count: Int
  /// Fréchet distance of the samples' features to the reference real set's.
  public var frechetDistance: Double
  /// The same for the second real set (the floor at this size).
  public var realFrechetDistance: Double
  /// Precision, recall and class entropy.
  public var quality: SampleQuality
  /// The share of samples the classifier puts in each class.
  public var classHistogram: [Double]

  enum CodingKeys: String, CodingKey {
    case count, quality
    case frechetDistance = "frechet_distance"
    case realFrechetDistance = "real_frechet_distance"
    case classHistogram = "class_histogram"
  }
}

/// Builds `GeneratorEvaluation`s.
public enum GeneratorEvaluator {
  /// Two disjoint real sets of `perClass` images of each of `classes` classes, as indices into `labels`:
  /// each class's images are ordered by a Philox key (`seed`, stream 13, counter (0, i, 0, 13) for image i)
  /// and the first `perClass` go to the reference set, the next `perClass` to the second set. Both are
  /// class-major (all of class 0, then class 1, …).
  public static func realSets(labels: [Int], classes: Int, perClass: Int, seed: UInt64) throws -> (
    reference: [Int], second: [Int]
  ) {
    guard perClass >= 1 else { throw ClassifierError.invalidArgument("--n-per-class must be positive") }
    let key = Philox4x32.key(seed: seed)
    var reference: [Int] = [], second: [Int] = []
    for c in 0..<classes {
      let members = labels.indices.filter { labels[$0] == c }
      guard members.count >= 2 * perClass else {
        throw ClassifierError.mismatch(
          "the real data has \(members.count) images of class \(c); two disjoint sets of \(perClass) need "
            + "\(2 * perClass): lower --n-per-class")
      }
      let keys = members.map {
        Philox4x32.block(counter: SIMD4(0, UInt32($0), 0, UInt32(Streams.realSetChoice)), key: key)[0]
      }
      let order = members.indices.sorted { keys[$0] != keys[$1] ? keys[$0] < keys[$1] : $0 < $1 }
      reference += order[0..<perClass].map { members[$0] }
      second += order[perClass..<(2 * perClass)].map { members[$0] }
    }
    return (reference, second)
  }

  /// Gathers the images `indices` of `data` into one contiguous array.
  public static func gather(_ data: TrainingImages, _ indices: [Int]) -> [Float] {
    var out: [Float] = []
    out.reserveCapacity(indices.count * data.imageElements)
    for i in indices { out += data.image(i) }
    return out
  }

  /// Evaluates `samples` (count × C × S × S, in [-1, 1]) conditioned on `sampleLabels` against the real
  /// labelled `real` data, with `classifier`. The real sets hold as many images per class as the samples
  /// (which must be balanced: the same number of samples for every class).
  public static func evaluate(
    samples: [Float], sampleLabels: [Int], real: TrainingImages, classifier: ImageClassifier, seed: UInt64,
    batchSize: Int = 256, progress: (Int) -> Void = { _ in }
  ) throws -> GeneratorEvaluation {
    let classes = classifier.config.numClasses
    try classifier.checkFits(real)
    guard let realLabels = real.labels else {
      throw ClassifierError.mismatch("the real data has no labels")
    }
    var counts = [Int](repeating: 0, count: classes)
    for l in sampleLabels {
      guard l >= 0, l < classes else {
        throw ClassifierError.mismatch("sample label \(l) is not a class of the classifier (0..<\(classes))")
      }
      counts[l] += 1
    }
    guard let perClass = counts.first, perClass > 0, counts.allSatisfy({ $0 == perClass }) else {
      throw ClassifierError.mismatch("the samples must cover every class equally, got counts \(counts)")
    }
    let sets = try realSets(labels: realLabels, classes: classes, perClass: perClass, seed: seed)
    let d = classifier.config.featureDim
    let fake = try classifier.predict(
      samples, count: sampleLabels.count, batchSize: batchSize, progress: progress)
    let ref = try classifier.predict(
      gather(real, sets.reference), count: sets.reference.count, batchSize: batchSize, progress: progress)
    let other = try classifier.predict(
      gather(real, sets.second), count: sets.second.count, batchSize: batchSize, progress: progress)
    let refStats = try GaussianStatistics(vectors: ref.features, dimension: d)
    let quality = try SampleQuality.measure(
      fake: fake, ref: ref, other: other, dimension: d, classes: classes)
    return GeneratorEvaluation(
      classes: classes, perClass: perClass,
      sampleAccuracy: try ClassAccuracy(predicted: fake.labels, truth: sampleLabels, classes: classes),
      realAccuracy: try ClassAccuracy(
        predicted: other.labels, truth: sets.second.map { realLabels[$0] }, classes: classes),
      frechetDistance: try FrechetDistance.distance(
        try GaussianStatistics(vectors: fake.features, dimension: d), refStats),
      realFrechetDistance: try FrechetDistance.distance(
        try GaussianStatistics(vectors: other.features, dimension: d), refStats), quality: quality)
  }

  /// Evaluates `count` unconditional samples (count × C × S × S, in [-1, 1]) against two disjoint real sets of
  /// `count` images balanced over the classes (`count` must be a multiple of the number of classes).
  public static func evaluateUnconditional(
    samples: [Float], count: Int, real: TrainingImages, classifier: ImageClassifier, seed: UInt64,
    batchSize: Int = 256, progress: (Int) -> Void = { _ in }
  ) throws -> UnconditionalEvaluation {
    let classes = classifier.config.numClasses
    try classifier.checkFits(real)
    guard let realLabels = real.labels else { throw ClassifierError.mismatch("the real data has no labels") }
    guard count > 0, count % classes == 0 else {
      throw ClassifierError.invalidArgument(
        "--n \(count) must be a positive multiple of the \(classes) classes")
    }
    let sets = try realSets(labels: realLabels, classes: classes, perClass: count / classes, seed: seed)
    let d = classifier.config.featureDim
    let fake = try classifier.predict(samples, count: count, batchSize: batchSize, progress: progress)
    let ref = try classifier.predict(
      gather(real, sets.reference), count: sets.reference.count, batchSize: batchSize, progress: progress)
    let other = try classifier.predict(
      gather(real, sets.second), count: sets.second.count, batchSize: batchSize, progress: progress)
    let refStats = try GaussianStatistics(vectors: ref.features, dimension: d)
    var hist = [Double](repeating: 0, count: classes)
    for l in fake.labels { hist[l] += 1 / Double(count) }
    return UnconditionalEvaluation(
      count: count,
      frechetDistance: try FrechetDistance.distance(
        try GaussianStatistics(vectors: fake.features, dimension: d), refStats),
      realFrechetDistance: try FrechetDistance.distance(
        try GaussianStatistics(vectors: other.features, dimension: d), refStats),
      quality: try SampleQuality.measure(fake: fake, ref: ref, other: other, dimension: d, classes: classes),
      classHistogram: hist)
  }
}
