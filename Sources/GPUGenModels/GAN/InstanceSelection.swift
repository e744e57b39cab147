// Instance selection for GANs (DeVries, Drozdzal and Taylor, "Instance Selection for GANs", NeurIPS 2020):
// before training, drop the training images that lie in the sparsest parts of an embedding space. A generator
// trained on the rest spends its capacity on the typical images: its samples land inside the real manifold more
// often (precision rises) and cover less of its rim (recall falls), a trade made at training time rather than by
// truncating z at sampling time.
import Foundation
import GPUGenCore

/// Picks the densest share of a training set under a Gaussian fitted to the bundled classifier's features.
public enum InstanceSelection {
  /// The file in a checkpoint's training_state/ that holds the kept indices, so that --resume trains on
  /// exactly the same images.
  public static let checkpointFile = "training_state/instance_selection.json"

  /// The kept indices and the share they were chosen for (what a checkpoint saves).
  public struct Saved: Codable, Equatable, Sendable {
    /// The share of each class kept, in (0, 1].
    public var ratio: Double
    /// The images of the full data set kept, ascending.
    public var indices: [Int]
    /// The images in the full data set.
    public var of: Int

    /// The selection `indices` of `of` images, made for `ratio`.
    public init(ratio: Double, indices: [Int], of: Int) {
      (self.ratio, self.indices, self.of) = (ratio, indices, of)
    }
  }

  /// The ascending indices of the `ratio` share of `data` nearest to their class's mean in the Mahalanobis
  /// distance of `classifier`'s features (one Gaussian per class when the data is labelled, so each class keeps
  /// the same share; one for all otherwise). Each class keeps round(ratio · its count) images, at least one.
  public static func select(_ data: TrainingImages, ratio: Double, classifier: ImageClassifier) throws
    -> [Int]
  {
    try check(ratio)
    let c = classifier.config
    guard data.channels == c.inChannels, data.size == c.imageSize else {
      throw TrainingError.invalidOption(
        "--instance-selection scores images with the classifier's features, which takes \(c.inChannels)×\(c.imageSize)×\(c.imageSize) images; these are \(data.channels)×\(data.size)×\(data.size)"
      )
    }
    if ratio == 1 { return Array(0..<data.count) }
    let (_, features) = try classifier.predict(data.images, count: data.count)
    return try select(
      features: features, dimension: c.featureDim, labels: data.labels, ratio: ratio)
  }

  /// The selection on given features (row-major, `dimension` per image); `labels` nil: one group.
  public static func select(features: [Float], dimension d: Int, labels: [Int]?, ratio: Double) throws
    -> [Int]
  {
    try check(ratio)
    let n = features.count / max(d, 1)
    guard d > 0, features.count == n * d, labels.map({ $0.count == n }) ?? true else {
      throw TrainingError.invalidOption(
        "instance selection: \(features.count) feature values for \(n) images")
    }
    var groups: [Int: [Int]] = [:]
    for i in 0..<n { groups[labels?[i] ?? 0, default: []].append(i) }
    var kept: [Int] = []
    for (_, members) in groups.sorted(by: { $0.key < $1.key }) {
      let distance = mahalanobis(features: features, dimension: d, rows: members)
      let keep = max(1, Int((ratio * Double(members.count)).rounded()))
      // Nearest first; ties keep the lower index, so the choice never depends on sort stability.
      let order = members.indices.sorted { (distance[$0], members[$0]) < (distance[$1], members[$1]) }
      kept += order.prefix(keep).map { members[$0] }
    }
    return kept.sorted()
  }

  /// Each row's squared Mahalanobis distance to the rows' mean, under their covariance plus a ridge of 1e-6 of
  /// its mean variance (features of ReLU layers can be constant, which makes the covariance singular).
  static func mahalanobis(features f: [Float], dimension d: Int, rows: [Int]) -> [Double] {
    let m = rows.count
    var mean = [Double](repeating: 0, count: d)
    for r in rows { for j in 0..<d { mean[j] += Double(f[r * d + j]) } }
    for j in 0..<d { mean[j] /= Double(max(m, 1)) }
    var centred = [Double](repeating: 0, count: m * d)
    for (i, r) in rows.enumerated() { for j in 0..<d { centred[i * d + j] = Double(f[r * d + j]) - mean[j] } }
    var cov = [Double](repeating: 0, count: d * d)
    for i in 0..<m {
      for a in 0..<d where centred[i * d + a] != 0 {
        let x = centred[i * d + a]
        for b in a..<d { cov[a * d + b] += x * centred[i * d + b] }
      }
    }
    let scale = 1 / Double(max(m - 1, 1))
    var trace = 0.0
    for a in 0..<d {
      for b in a..<d {
        cov[a * d + b] *= scale
        cov[b * d + a] = cov[a * d + b]
      }
      trace += cov[a * d + a]
    }
    let ridge = 1e-6 * max(trace / Double(d), 1e-12)
    for a in 0..<d { cov[a * d + a] += ridge }
    // Cholesky factor L (lower) of the covariance; then distance = ‖L⁻¹(x − μ)‖².
    var l = [Double](repeating: 0, count: d * d)
    for j in 0..<d {
      var s = cov[j * d + j]
      for k in 0..<j { s -= l[j * d + k] * l[j * d + k] }
      let pivot = s > ridge * 1e-3 ? s.squareRoot() : (ridge * 1e-3).squareRoot()
      l[j * d + j] = pivot
      for i in (j + 1)..<d {
        var t = cov[i * d + j]
        for k in 0..<j { t -= l[i * d + k] * l[j * d + k] }
        l[i * d + j] = t / pivot
      }
    }
    var out = [Double](repeating: 0, count: m)
    var y = [Double](repeating: 0, count: d)
    for i in 0..<m {
      var sum = 0.0
      for a in 0..<d {
        var t = centred[i * d + a]
        for k in 0..<a { t -= l[a * d + k] * y[k] }
        y[a] = t / l[a * d + a]
        sum += y[a] * y[a]
      }
      out[i] = sum
    }
    return out
  }

  /// Throws unless `ratio` is a share in (0, 1].
  public static func check(_ ratio: Double) throws {
    guard ratio > 0, ratio <= 1 else {
      throw TrainingError.invalidOption("--instance-selection must be a share in (0, 1], got \(ratio)")
    }
  }
}

extension TrainingImages {
  /// The images (and labels) at `indices`, in that order; the class count stays the full set's.
  public func subset(_ indices: [Int]) throws -> TrainingImages {
    let per = imageElements
    var images: [Float] = []
    images.reserveCapacity(indices.count * per)
    for i in indices {
      guard i >= 0, i < count else {
        throw TrainingError.checkpoint("image index \(i) is outside the \(count) training images")
      }
      images += image(i)
    }
    return TrainingImages(
      images: images, labels: labels.map { l in indices.map { l[$0] } }, count: indices.count,
      channels: channels,
      size: size, classCount: classCount)
  }
}
