// `gpugen evaluate`: judges a class-conditional diffusion model with a classifier trained by
// `gpugen train classifier` — class-conditional accuracy and a Fréchet distance in the classifier's feature
// space, next to the same figures for real test images against real test images.
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels
import GPUGenNN

struct Evaluate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Measure a class-conditional diffusion model's, a VAE's or a GAN's samples with a classifier.",
    discussion: """
      Samples --n-per-class images of every class (image i is conditioned on class i mod classes), then
      reports, under a classifier (--classifier: by default the bundled Fashion-MNIST classifier, 92.25 %
      accurate on the t10k split; or a folder written by `gpugen train classifier`):
        - class-conditional accuracy: the fraction of samples classified as the class they were
          conditioned on, overall and per class;
        - the Fréchet distance ‖μ₁−μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) between the classifier's feature vectors
          of the samples and of as many real test images (the same number of each class).
        - improved precision and recall (k = 3 nearest neighbours in the feature space; fidelity and
          diversity) and the entropy of the predicted-class histogram (ln 10 ≈ 2.30 when all classes appear
          equally).
      A VAE (an unconditional model) is measured on --n-per-class × classes prior samples (--temperature τ),
      without the accuracy. A GAN is measured like a diffusion model when it is class-conditional and like a
      VAE otherwise; --truncation ψ (--truncation-mode resample or scale) samples with the truncation trick.
      The floor: a second, disjoint set of real test images, measured the same way (its accuracy and its
      distance to the first real set). Both real sets are Philox draws keyed by --seed, so two models
      evaluated with the same --seed and --n-per-class are compared against the same real images.
      """)

  @Option(help: "Model folder (pipeline, UNet or VAE) or bundled name (diffusion, vae). Default: diffusion.")
  var model: String?

  @Option(help: "VAE: the prior's temperature τ (default 1).")
  var temperature: Double?

  @Option(help: "GAN: the truncation ψ > 0 (default: none).")
  var truncation: Double?

  @Option(help: "GAN: resample (redraw every |z_i| > ψ) or scale (z·ψ). Default resample.")
  var truncationMode: TruncationMode?

  @Option(
    help:
      "Classifier folder written by `gpugen train classifier`, or bundled name (classifier). Default: the bundled Fashion-MNIST classifier."
  )
  var classifier: String?

  @Option(help: "Labelled real images (IDX file or folder). Default: Fashion-MNIST's t10k test split.")
  var real: String?

  @Option(name: .customLong("n-per-class"), help: "Samples (and real images in each set) per class.")
  var nPerClass = 100

  @Option(help: "Toy 2-D models: the number of points sampled and scored (default 2500).")
  var n: Int?

  @Option(
    help: "Sampler: \(SamplerKind.allCases.map(\.rawValue).joined(separator: ", ")) (default ddim).",
    transform: parseSampler)
  var sampler: SamplerKind = .ddim

  @Option(help: "Sampling steps.")
  var steps = 20

  @Option(help: "DDIM η (0 = deterministic).")
  var eta: Double = 0

  @Option(help: "Seed of the sampling noise and of the choice of real images.")
  var seed: UInt64 = 0

  @Option(name: .customLong("batch-size"), help: "Images per UNet batch (default: min(total, 100)).")
  var batchSize: Int?

  @Flag(help: "Print the figures as JSON.")
  var json = false

  @OptionGroup var deviceOptions: DeviceOptions

  func run() throws {
    try reportingUserErrors { try evaluate() }
  }

  /// What `--json` prints.
  struct Report: Encodable {
    var model: String
    var classifier: String
    var real: String
    var sampler: String
    var steps: Int
    var seed: UInt64
    var classNames: [String]?
    var results: GeneratorEvaluation

    enum CodingKeys: String, CodingKey {
      case model, classifier, real, sampler, steps, seed, results
      case classNames = "class_names"
    }
  }

  func evaluate() throws {
    if let toy = try toyFolder() { return try evaluateToy(toy.url, kind: toy.kind) }
    let kind = sampler
    guard nPerClass > 0 else { throw ModelError.input("--n-per-class must be positive") }
    guard steps > 0 else { throw ModelError.input("--steps must be positive") }
    if let b = batchSize, b <= 0 { throw ModelError.input("--batch-size must be positive") }
    guard eta >= 0 else { throw ModelError.input("--eta must be ≥ 0") }
    let device = try deviceOptions.resolve()

    let classifierURL = try ClassifierFolder.locate(classifier)
    let net = try ImageClassifier.load(from: classifierURL, device: device)
    let folderURL = try ModelFolder.locate(model)
    let kindOfFolder = try ModelFolder.classify(folderURL)
    if case .gan(let url) = kindOfFolder {
      return try evaluateGAN(url, net: net, classifierURL: classifierURL, device: device)
    }
    if truncation != nil || truncationMode != nil {
      throw ModelError.input(
        "--truncation and --truncation-mode are GAN options; this is a \(kindOfFolder.family.rawValue) model")
    }
    if kindOfFolder.family == .vae {
      return try evaluateVAE(
        kindOfFolder, folderURL: folderURL, net: net, classifierURL: classifierURL, device: device)
    }
    if temperature != nil {
      throw ModelError.input("--temperature is a VAE option; this is a diffusion model")
    }
    let folder = try DiffusionModelFolder.resolve(folderURL)
    let unet = try UNet2DModelLoader.load(from: folder.unet, device: device)
    guard let classes = unet.config.numClassEmbeds else {
      throw ModelError.input(
        "\(folderURL.path) is an unconditional model (no num_class_embeds): evaluate measures class-conditional models"
      )
    }
    let c = net.config
    guard c.inChannels == unet.config.inChannels, c.imageSize == unet.config.sampleSize else {
      throw ClassifierError.mismatch(
        "the model makes \(unet.config.inChannels)×\(unet.config.sampleSize)×\(unet.config.sampleSize) images "
          + "but the classifier \(classifierURL.path) takes \(c.inChannels)×\(c.imageSize)×\(c.imageSize)")
    }
    guard c.numClasses == classes else {
      throw ClassifierError.mismatch(
        "the model has \(classes) classes but the classifier \(classifierURL.path) has \(c.numClasses)")
    }
    let realSource =
      real
      ?? TrainingImages.fashionMNISTFolder().appendingPathComponent("t10k-images-idx3-ubyte.gz").path
    let realImages = try TrainingImages.load(
      source: realSource, sampleSize: c.imageSize, channels: c.inChannels)
    guard realImages.labels != nil else {
      throw ClassifierError.mismatch("the real data \(realSource) has no class labels")
    }

    let plan = try SamplerPlanner.plan(kind, schedulerConfig: folder.schedulerConfig, steps: steps, eta: eta)
    let total = nPerClass * classes
    let batch = min(batchSize ?? min(total, 100), total)
    let labels = (0..<total).map { $0 % classes }
    FileHandle.standardError.write(
      Data(
        "gpugen: evaluating \(folderURL.path): \(total) samples (\(nPerClass) per class), \(kind.rawValue) with \(plan.evaluations.count) model evaluations, batches of \(batch), on \(device)\n"
          .utf8))
    let batches = (total + batch - 1) / batch
    let bar = ProgressBar(total: plan.evaluations.count * batches, label: "sampling")
    let t0 = Date()
    let samples = try Tape.noGrad {
      try DiffusionSampler(unet: unet, plan: plan).sample(
        SampleRequest(count: total, batchSize: batch, seed: seed, classLabels: Array(0..<classes)),
        progress: { bar.advance($0) })
    }
    let sampleSeconds = Date().timeIntervalSince(t0)
    let cbar = ProgressBar(total: 3 * total, label: "classifying", unit: "images")
    let result = try GeneratorEvaluator.evaluate(
      samples: samples, sampleLabels: labels, real: realImages, classifier: net, seed: seed,
      progress: { cbar.advance($0) })
    let names = classNames(folderURL, classes: classes)
    if json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      let report = Report(
        model: folderURL.path, classifier: classifierURL.path, real: realSource, sampler: kind.rawValue,
        steps: steps, seed: seed, classNames: names, results: result)
      print(String(decoding: try encoder.encode(report), as: UTF8.self))
      return
    }
    print("model:      \(folderURL.path)")
    print("classifier: \(classifierURL.path)")
    print(
      "samples:    \(total) (\(nPerClass) per class), \(kind.rawValue) \(steps) steps, seed \(seed), "
        + String(format: "%.1f s", sampleSeconds))
    print("real:       \(realSource), two disjoint sets of \(total) (\(nPerClass) per class)")
    print("")
    print("                              samples   real (floor)")
    print(
      String(
        format: "class-conditional accuracy   %7.4f   %7.4f", result.sampleAccuracy.overall,
        result.realAccuracy.overall))
    for k in 0..<classes {
      let name = names.map { "\(k) \($0[k])" } ?? "class \(k)"
      print(
        "  " + name.padding(toLength: 27, withPad: " ", startingAt: 0)
          + String(
            format: "  %7.4f   %7.4f", result.sampleAccuracy.perClass[k], result.realAccuracy.perClass[k]))
    }
    print(
      String(
        format: "Fréchet distance (features)  %7.3f   %7.3f", result.frechetDistance,
        result.realFrechetDistance))
    printQuality(result.quality)
  }

  func printQuality(_ q: SampleQuality) {
    print(String(format: "precision (k = 3)            %7.4f   %7.4f", q.precision, q.realPrecision))
    print(String(format: "recall (k = 3)               %7.4f   %7.4f", q.recall, q.realRecall))
    print(String(format: "class-histogram entropy      %7.4f   %7.4f", q.classEntropy, q.realClassEntropy))
  }

  func evaluateVAE(
    _ kind: ModelFolderKind, folderURL: URL, net: ImageClassifier, classifierURL: URL, device: Device
  ) throws {
    let vae = try ModelFolder.loadVAE(kind, device: device)
    let tau = temperature ?? 1
    guard tau > 0, tau.isFinite else { throw ModelError.input("--temperature must be positive, got \(tau)") }
    let diffusionOnly: [(String, Bool)] = [
      ("--sampler", sampler != .ddim), ("--steps", steps != 20), ("--eta", eta != 0),
    ]
    if let f = diffusionOnly.first(where: { $0.1 }) {
      throw ModelError.input("\(f.0) is a diffusion option; this model is a VAE (it takes --temperature)")
    }
    let c = net.config
    guard [c.inChannels, c.imageSize, c.imageSize] == vae.imageShape else {
      throw ClassifierError.mismatch(
        "the model makes \(vae.imageShape) images but the classifier takes \(c.inChannels)×\(c.imageSize)×\(c.imageSize)"
      )
    }
    let realSource =
      real ?? TrainingImages.fashionMNISTFolder().appendingPathComponent("t10k-images-idx3-ubyte.gz").path
    let realImages = try TrainingImages.load(
      source: realSource, sampleSize: c.imageSize, channels: c.inChannels)
    let total = nPerClass * c.numClasses
    let batch = min(batchSize ?? min(total, 256), total)
    let t0 = Date()
    let samples = try VAEOps.sample(
      vae, count: total, batchSize: batch, seed: seed, temperature: tau, device: device)
    let sampleSeconds = Date().timeIntervalSince(t0)
    let cbar = ProgressBar(total: 3 * total, label: "classifying", unit: "images")
    let r = try GeneratorEvaluator.evaluateUnconditional(
      samples: VAEOps.toSigned(samples, range: vae.dataRange), count: total, real: realImages,
      classifier: net,
      seed: seed, progress: { cbar.advance($0) })
    if json {
      let o: [String: Any] = [
        "model": folderURL.path, "family": "vae", "classifier": classifierURL.path, "real": realSource,
        "temperature": tau, "seed": seed, "n": total,
        "results": try JSONSerialization.jsonObject(with: JSONEncoder().encode(r)),
      ]
      print(
        String(
          decoding: try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys]),
          as: UTF8.self))
      return
    }
    print("model:      \(folderURL.path) (VAE)")
    print("classifier: \(classifierURL.path)")
    print(
      "samples:    \(total) prior samples, τ = \(tau), seed \(seed), "
        + String(format: "%.2f s", sampleSeconds))
    print("real:       \(realSource), two disjoint sets of \(total) (\(nPerClass) per class)")
    print("")
    print("                              samples   real (floor)")
    print(
      String(format: "Fréchet distance (features)  %7.3f   %7.3f", r.frechetDistance, r.realFrechetDistance))
    printQuality(r.quality)
    print(
      "class histogram of the samples: "
        + r.classHistogram.map { String(format: "%.3f", $0) }.joined(separator: " "))
  }

  /// The class names of gpugen_model_info.json, if the model folder has them for every class.
  func classNames(_ folder: URL, classes: Int) -> [String]? {
    guard let data = try? Data(contentsOf: folder.appendingPathComponent("gpugen_model_info.json")),
      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let names = object["classes"] as? [String], names.count == classes
    else { return nil }
    return names
  }
}
