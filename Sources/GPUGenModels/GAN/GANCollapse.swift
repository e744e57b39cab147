// The collapse signal a GAN run logs every --sample-every steps (a GAN's losses say little about mode
// collapse): on images, the entropy of the class histogram of 1,000 samples from fixed latents under a
// classifier; on toy data, the modes covered by 2,500 samples (at least one sample within 3σ).
import Foundation

/// One measurement of mode collapse.
public struct CollapseSignal: Sendable {
  /// "class_entropy" (images) or "modes_covered" (toy data).
  public var name: String
  /// The value (NaN when it could not be measured, e.g. no classifier for these images).
  public var value: Double
  /// A one-line summary.
  public var summary: String
  /// The toy samples measured (empty for images).
  public var points: [Float] = []
}

/// Measuring, logging and plotting the collapse signal.
public enum GANCollapse {
  /// Samples measured per signal on images and on toy data.
  public static let imageSamples = 1_000, toySamples = 2_500

  /// The signal of `model` (EMA generator, evaluation mode) for a run on `data`; samples come from fixed
  /// latents (seed 0) and, for a class-conditional model, cycle over the classes. `classifier` judges images
  /// (nil, or one of another image shape: the value is NaN).
  public static func measure(
    _ model: GANModel, data: GANData, classifier: ImageClassifier?, device: Device
  ) throws -> CollapseSignal {
    let labels = model.config.conditional ? Array(0..<model.config.numClasses) : nil
    switch data {
    case .toy(let toy):
      let p = try GANOps.sample(model, count: toySamples, batchSize: toySamples, seed: 0, device: device)
      let s = ToyMetrics.score(p, dataset: toy)
      return CollapseSignal(
        name: "modes_covered", value: Double(s.modesCoveredHighQuality),
        summary: String(
          format: "%d/%d modes, %.1f%% high quality", s.modesCoveredHighQuality, s.modes,
          100 * s.highQualityFraction), points: p)
    case .images:
      guard let classifier, classifier.config.inChannels == model.sampleShape[0],
        classifier.config.imageSize == model.sampleShape[1]
      else {
        return CollapseSignal(name: "class_entropy", value: .nan, summary: "no classifier for these images")
      }
      let x = try GANOps.sample(
        model, count: imageSamples, batchSize: 250, seed: 0, labels: labels, device: device)
      let predicted = try classifier.predict(x, count: imageSamples, batchSize: 250).labels
      let h = ManifoldMetrics.histogramEntropy(predicted, classes: classifier.config.numClasses)
      return CollapseSignal(
        name: "class_entropy", value: h,
        summary: String(
          format: "class entropy %.3f (uniform: %.3f)", h, log(Double(classifier.config.numClasses))))
    }
  }

  /// Appends the signal to OUT/collapse.csv (step, name, value) and redraws OUT/collapse.png.
  public static func append(step: Int, _ signal: CollapseSignal, to outDir: URL) throws {
    let csv = outDir.appendingPathComponent("collapse.csv")
    var rows: [(Double, Double)] = []
    if let text = try? String(contentsOf: csv, encoding: .utf8) {
      for line in text.split(separator: "\n").dropFirst() {
        let f = line.split(separator: ",")
        // Rows past this step belong to a run that is being resumed from an earlier checkpoint.
        guard f.count == 3, let s = Double(f[0]), s < Double(step), let v = Double(f[2]) else { continue }
        rows.append((s, v))
      }
    }
    rows.append((Double(step), signal.value))
    let text = (["step,signal,value"] + rows.map { String(format: "%.0f,%@,%.6g", $0.0, signal.name, $0.1) })
      .joined(separator: "\n")
    try Data((text + "\n").utf8).write(to: csv, options: .atomic)
    var plot = LinePlot(
      title: signal.name == "modes_covered"
        ? "collapse signal: modes covered" : "collapse signal: class-histogram entropy",
      xLabel: "step", yLabel: signal.name)
    plot.add(signal.name, x: rows.map(\.0), y: rows.map(\.1), color: RGB8(20, 60, 170))
    try StagedOutputs.replace(outDir.appendingPathComponent("collapse.png")) {
      try plot.writePNG(to: $0, width: 720, height: 400)
    }
  }
}
