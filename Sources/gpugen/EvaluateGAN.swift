// `gpugen evaluate` of a GAN: class-conditional models like the diffusion models (accuracy, Fréchet distance,
// precision/recall, class entropy against the real floor), unconditional ones like the VAEs; --truncation ψ
// samples with the truncation trick, so a sweep over ψ shows the fidelity/diversity trade.
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels

extension Evaluate {
  func evaluateGAN(_ url: URL, net: ImageClassifier, classifierURL: URL, device: Device) throws {
    let otherFamilies: [(String, Bool)] = [
      ("--sampler", sampler != .ddim), ("--steps", steps != 20), ("--eta", eta != 0),
      ("--temperature", temperature != nil),
    ]
    if let f = otherFamilies.first(where: { $0.1 }) {
      throw ModelError.input(
        "\(f.0) is a \(f.0 == "--temperature" ? "VAE" : "diffusion") option; this model is a GAN (it takes --truncation)"
      )
    }
    if let psi = truncation, !(psi > 0 && psi.isFinite) {
      throw ModelError.input("--truncation ψ must be positive, got \(psi)")
    }
    if truncationMode != nil && truncation == nil {
      throw ModelError.input("--truncation-mode needs --truncation ψ")
    }
    let gan = try GANModel.load(from: url, device: device)
    guard !gan.isToy else {
      throw ModelError.input("\(url.path) is a toy 2-D GAN; evaluate measures image models")
    }
    let c = net.config
    guard [c.inChannels, c.imageSize, c.imageSize] == gan.sampleShape else {
      throw ClassifierError.mismatch(
        "the model makes \(gan.sampleShape) images but the classifier takes \(c.inChannels)×\(c.imageSize)×\(c.imageSize)"
      )
    }
    let conditional = gan.config.conditional
    if conditional && gan.config.numClasses != c.numClasses {
      throw ClassifierError.mismatch(
        "the model has \(gan.config.numClasses) classes but the classifier has \(c.numClasses)")
    }
    let realSource =
      real ?? TrainingImages.fashionMNISTFolder().appendingPathComponent("t10k-images-idx3-ubyte.gz").path
    let realImages = try TrainingImages.load(
      source: realSource, sampleSize: c.imageSize, channels: c.inChannels)
    let total = nPerClass * c.numClasses
    let batch = min(batchSize ?? min(total, 256), total)
    let mode = truncationMode ?? .resample
    let labels = conditional ? Array(0..<c.numClasses) : nil
    let t0 = Date()
    let samples = try GANOps.sample(
      gan, count: total, batchSize: batch, seed: seed, truncation: truncation, mode: mode, labels: labels,
      device: device)
    let sampleSeconds = Date().timeIntervalSince(t0)
    let cbar = ProgressBar(total: 3 * total, label: "classifying", unit: "images")
    var figures: [String: Any] = [:]
    let quality: SampleQuality
    let fd: (Double, Double)
    var accuracy: (ClassAccuracy, ClassAccuracy)?
    var histogram: [Double]?
    if conditional {
      let r = try GeneratorEvaluator.evaluate(
        samples: samples, sampleLabels: (0..<total).map { $0 % c.numClasses }, real: realImages,
        classifier: net, seed: seed, progress: { cbar.advance($0) })
      (quality, fd, accuracy) = (
        r.quality, (r.frechetDistance, r.realFrechetDistance), (r.sampleAccuracy, r.realAccuracy)
      )
      figures = try JSONSerialization.jsonObject(with: JSONEncoder().encode(r)) as? [String: Any] ?? [:]
    } else {
      let r = try GeneratorEvaluator.evaluateUnconditional(
        samples: samples, count: total, real: realImages, classifier: net, seed: seed,
        progress: { cbar.advance($0) })
      (quality, fd, histogram) = (r.quality, (r.frechetDistance, r.realFrechetDistance), r.classHistogram)
      figures = try JSONSerialization.jsonObject(with: JSONEncoder().encode(r)) as? [String: Any] ?? [:]
    }
    if json {
      let o: [String: Any] = [
        "model": url.path, "family": "gan", "classifier": classifierURL.path, "real": realSource,
        "truncation": truncation ?? 1, "truncation_mode": mode.rawValue, "seed": seed, "n": total,
        "conditional": conditional, "results": figures,
      ]
      print(
        String(
          decoding: try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys]),
          as: UTF8.self))
      return
    }
    print("model:      \(url.path) (GAN\(conditional ? ", \(gan.config.numClasses) classes" : ""))")
    print("classifier: \(classifierURL.path)")
    print(
      "samples:    \(total)\(conditional ? " (\(nPerClass) per class)" : ""), truncation "
        + (truncation.map { "ψ = \($0) (\(mode.rawValue))" } ?? "none") + ", seed \(seed), "
        + String(format: "%.2f s", sampleSeconds))
    print("real:       \(realSource), two disjoint sets of \(total) (\(nPerClass) per class)")
    print("")
    print("                              samples   real (floor)")
    if let (s, r) = accuracy {
      print(String(format: "class-conditional accuracy   %7.4f   %7.4f", s.overall, r.overall))
      for k in 0..<c.numClasses {
        print(
          "  " + "class \(k)".padding(toLength: 27, withPad: " ", startingAt: 0)
            + String(format: "  %7.4f   %7.4f", s.perClass[k], r.perClass[k]))
      }
    }
    print(String(format: "Fréchet distance (features)  %7.3f   %7.3f", fd.0, fd.1))
    printQuality(quality)
    if let histogram {
      print(
        "class histogram of the samples: "
          + histogram.map { String(format: "%.3f", $0) }.joined(separator: " "))
    }
  }
}
