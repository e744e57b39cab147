// Judging a generator with a classifier: every metric of the samples' features against a reference set of as
// many real images (balanced per class) — FID, KID, precision, recall, density, coverage, the class histogram
// and its entropy, and for class-conditional samples the accuracy of their classes — next to the same figures
// for a second, disjoint real set (the floor the metrics reach at this N).
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

/// Evaluates generated images against real ones in a classifier's feature space.
public enum GeneratorEvaluator {
  /// Two disjoint real sets of `perClass` images of each of `classes` classes, as indices into `labels`:
  /// each class's images are ordered by a Philox key (`seed`, stream 13, counter (0, i, 0, 13) for image i)
  /// and the first `perClass` go to the reference set, the next `perClass` to the second set. Both are
  /// class-major (all of class 0, then class 1, …).
  public static func realSets(labels: [Int], classes: Int, perClass: Int, seed: UInt64) throws -> (
    reference: [Int], second: [Int]
  ) {
    guard perClass >= 1 else {
      throw ClassifierError.invalidArgument("the real sets need at least one image per class")
    }
    let key = Philox4x32.key(seed: seed)
    var reference: [Int] = [], second: [Int] = []
    for c in 0..<classes {
      let members = labels.indices.filter { labels[$0] == c }
      guard members.count >= 2 * perClass else {
        throw ClassifierError.mismatch(
          "the real data has \(members.count) images of class \(c); two disjoint sets of \(perClass) per "
            + "class need \(2 * perClass): lower --n to at most \(members.count / 2 * classes)")
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

  /// The smallest N every metric is defined at: density and coverage need more than k = 5 points in each set
  /// (and KID subsets of ⌊N/2⌋ ≥ 2, FID at least 2 points).
  public static let minimumCount = ManifoldMetrics.densityCoverageK + 1

  /// Evaluates `count` samples (count × C × S × S, in [-1, 1]) against `real` with `classifier`: the reference
  /// and floor sets are two disjoint class-balanced sets of `count` real images (`count` a multiple of the
  /// classifier's classes). `labels` (the class each sample was conditioned on) adds class-conditional
  /// accuracy; they must cover every class equally. `featureSpace` names the features in the report.
  public static func evaluate(
    samples: [Float], count: Int, labels: [Int]? = nil, real: TrainingImages, classifier: ImageClassifier,
    featureSpace: String, seed: UInt64, batchSize: Int = 256, progress: (Int) -> Void = { _ in }
  ) throws -> ImageEvaluation {
    let classes = classifier.config.numClasses
    try classifier.checkFits(real)
    guard let realLabels = real.labels else { throw ClassifierError.mismatch("the real data has no labels") }
    try checkCount(count, classes: classes)
    if let labels {
      guard labels.count == count else {
        throw ClassifierError.mismatch("\(labels.count) class labels for \(count) samples")
      }
      var counts = [Int](repeating: 0, count: classes)
      for l in labels {
        guard l >= 0, l < classes else {
          throw ClassifierError.mismatch(
            "sample label \(l) is not a class of the classifier (0..<\(classes))")
        }
        counts[l] += 1
      }
      guard counts.allSatisfy({ $0 == count / classes }) else {
        throw ClassifierError.mismatch("the samples must cover every class equally, got counts \(counts)")
      }
    }
    let sets = try realSets(labels: realLabels, classes: classes, perClass: count / classes, seed: seed)
    let d = classifier.config.featureDim
    let fake = try classifier.predict(samples, count: count, batchSize: batchSize, progress: progress)
    let ref = try classifier.predict(
      gather(real, sets.reference), count: count, batchSize: batchSize, progress: progress)
    let other = try classifier.predict(
      gather(real, sets.second), count: count, batchSize: batchSize, progress: progress)
    let refStats = try GaussianStatistics(vectors: ref.features, dimension: d)
    return ImageEvaluation(
      n: count, classes: classes, featureSpace: featureSpace, featureDimension: d,
      samples: try FeatureMetrics.measure(
        fake.features, predicted: fake.labels, reference: ref.features, referenceStatistics: refStats,
        dimension: d, classes: classes, seed: seed),
      realFloor: try FeatureMetrics.measure(
        other.features, predicted: other.labels, reference: ref.features, referenceStatistics: refStats,
        dimension: d, classes: classes, seed: seed),
      accuracy: try labels.map { try ClassAccuracy(predicted: fake.labels, truth: $0, classes: classes) },
      realAccuracy: try ClassAccuracy(
        predicted: other.labels, truth: sets.second.map { realLabels[$0] }, classes: classes))
  }

  /// Throws unless `real` holds two disjoint class-balanced sets of `count` images (checked before any sampling,
  /// so a too-large --n fails at once, naming the largest that fits).
  public static func checkRealCapacity(_ count: Int, real: TrainingImages, classes: Int) throws {
    try checkCount(count, classes: classes)
    guard let labels = real.labels else { throw ClassifierError.mismatch("the real data has no labels") }
    var counts = [Int](repeating: 0, count: classes)
    for l in labels where l >= 0 && l < classes { counts[l] += 1 }
    let smallest = counts.min() ?? 0
    guard count / classes <= smallest / 2 else {
      throw ClassifierError.invalidArgument(
        "--n \(count) needs two disjoint sets of \(count / classes) real images of every class, but the real data's "
          + "smallest class has \(smallest): lower --n to at most \(smallest / 2 * classes)")
    }
  }

  /// Throws unless `count` is at least `minimumCount` and a multiple of `classes` (the real sets are balanced).
  public static func checkCount(_ count: Int, classes: Int) throws {
    guard count >= minimumCount else {
      throw ClassifierError.invalidArgument(
        "--n \(count) is below \(minimumCount), the smallest N the metrics allow (density and coverage need "
          + "more than k = \(ManifoldMetrics.densityCoverageK) points in each set)")
    }
    guard count % classes == 0 else {
      throw ClassifierError.invalidArgument(
        "--n \(count) must be a multiple of the classifier's \(classes) classes (the real sets are balanced "
          + "over the classes), e.g. \(count / classes * classes + classes)")
    }
  }
}

/// Every feature-space figure of one set of images against the reference real set.
public struct FeatureMetrics: Codable, Sendable, Equatable {
  /// Images in the set (and in the reference set).
  public var n: Int
  /// Fréchet distance of the Gaussians fitted to the two sets' features (FID in this feature space).
  public var fid: Double
  /// KID: mean and spread over subsets.
  public var kid: KIDEstimate
  /// Precision and recall (k = 3), density and coverage (k = 5).
  public var prdc: PRDC
  /// The share of the set the classifier puts in each class.
  public var classHistogram: [Double]
  /// Entropy (nats) of `classHistogram` (ln 10 ≈ 2.303 when every class is equally common).
  public var classEntropy: Double

  enum CodingKeys: String, CodingKey {
    case n, fid, kid, prdc
    case classHistogram = "class_histogram"
    case classEntropy = "class_entropy"
  }

  /// The figures of `features` (with the classifier's `predicted` classes) against `reference`.
  public static func measure(
    _ features: [Float], predicted: [Int], reference: [Float], referenceStatistics: GaussianStatistics? = nil,
    dimension d: Int, classes: Int, seed: UInt64
  ) throws -> FeatureMetrics {
    let refStats = try referenceStatistics ?? GaussianStatistics(vectors: reference, dimension: d)
    var hist = [Double](repeating: 0, count: classes)
    for l in predicted where l >= 0 && l < classes { hist[l] += 1 }
    hist = hist.map { $0 / Double(Swift.max(predicted.count, 1)) }
    return FeatureMetrics(
      n: features.count / d,
      fid: try FrechetDistance.distance(try GaussianStatistics(vectors: features, dimension: d), refStats),
      kid: try KernelInceptionDistance.estimate(
        real: reference, generated: features, dimension: d, seed: seed),
      prdc: try ManifoldMetrics.prdc(real: reference, generated: features, dimension: d),
      classHistogram: hist,
      classEntropy: ManifoldMetrics.histogramEntropy(predicted, classes: classes))
  }
}

/// A generator's figures next to the real-versus-real floor, in one feature space.
public struct ImageEvaluation: Codable, Sendable, Equatable {
  /// Samples, and real images in each of the two real sets.
  public var n: Int
  /// The classifier's classes.
  public var classes: Int
  /// What the features are (the classifier and its layer).
  public var featureSpace: String
  /// The features' dimension.
  public var featureDimension: Int
  /// The samples against the reference real set.
  public var samples: FeatureMetrics
  /// The second real set against the reference set: what the metrics read for real images at this N.
  public var realFloor: FeatureMetrics
  /// Class-conditional samples: the share classified as the class they were conditioned on.
  public var accuracy: ClassAccuracy?
  /// The classifier's accuracy on the second real set.
  public var realAccuracy: ClassAccuracy

  enum CodingKeys: String, CodingKey {
    case n, classes, samples, accuracy
    case featureSpace = "feature_space"
    case featureDimension = "feature_dimension"
    case realFloor = "real_floor"
    case realAccuracy = "real_accuracy"
  }
}

extension FeatureMetrics {
  /// The figures under plain keys (fid, kid, kid_std, precision, recall, density, coverage, class_entropy), for
  /// JSON reports that other tools read.
  public var plainFigures: [String: Double] {
    [
      "fid": fid, "kid": kid.mean, "kid_std": kid.std, "precision": prdc.precision, "recall": prdc.recall,
      "density": prdc.density, "coverage": prdc.coverage, "class_entropy": classEntropy,
    ]
  }
}

extension ClassifierFolder {
  /// The feature space a classifier at `url` defines, in words: the bundled classifier by name, else its folder.
  public static func featureSpace(of url: URL, featureDimension d: Int) -> String {
    let bundled = (try? bundled())?.standardizedFileURL.path
    let name =
      url.standardizedFileURL.path == bundled
      ? "the bundled Fashion-MNIST classifier" : "the classifier \(url.path)"
    return "\(d)-d penultimate features of \(name)"
  }
}

/// One generator sampled and measured: the time it took and every metric.
public struct GeneratorMeasurement: Sendable {
  /// The model's family.
  public var family: ModelFamily
  /// The knobs, in words.
  public var knobs: String
  /// Network evaluations per image.
  public var evaluationsPerImage: Int
  /// Seconds spent sampling the N images, and images per second.
  public var sampleSeconds: Double
  public var imagesPerSecond: Double
  /// The metrics.
  public var evaluation: ImageEvaluation
  /// The samples (N × C × H × W, in [−1, 1]).
  public var samples: [Float]
}

extension GeneratorEvaluator {
  /// Samples `count` images of `generator` (classes cycled over a class-conditional model's) and evaluates
  /// them. `sampleProgress` counts `generator.progressUnits`, `classifyProgress` images (3·count in all).
  public static func measure(
    _ generator: ImageGenerator, count: Int, batchSize: Int, seed: UInt64, knobs: GeneratorKnobs,
    real: TrainingImages, classifier: ImageClassifier, featureSpace: String,
    sampleProgress: (Int) -> Void = { _ in }, classifyProgress: (Int) -> Void = { _ in }
  ) throws -> GeneratorMeasurement {
    let c = classifier.config
    guard [c.inChannels, c.imageSize, c.imageSize] == generator.imageShape else {
      throw ClassifierError.mismatch(
        "the model makes \(generator.imageShape.map(String.init).joined(separator: "×")) images but the "
          + "classifier takes \(c.inChannels)×\(c.imageSize)×\(c.imageSize)")
    }
    if let k = generator.classCount, k != c.numClasses {
      throw ClassifierError.mismatch("the model has \(k) classes but the classifier has \(c.numClasses)")
    }
    try checkRealCapacity(count, real: real, classes: c.numClasses)
    let labels = generator.classCount.map { k in (0..<count).map { $0 % k } }
    let t0 = Date()
    let samples = try generator.sample(
      count: count, batchSize: batchSize, seed: seed, knobs: knobs,
      labels: generator.classCount.map { Array(0..<$0) },
      progress: sampleProgress)
    let seconds = Date().timeIntervalSince(t0)
    let evaluation = try evaluate(
      samples: samples, count: count, labels: labels, real: real, classifier: classifier,
      featureSpace: featureSpace, seed: seed, progress: classifyProgress)
    return GeneratorMeasurement(
      family: generator.family, knobs: knobs.describe(generator.family),
      evaluationsPerImage: try generator.evaluationsPerImage(knobs), sampleSeconds: seconds,
      imagesPerSecond: Double(count) / Swift.max(seconds, 1e-9), evaluation: evaluation, samples: samples)
  }
}
