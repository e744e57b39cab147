// `gpugen evaluate`: measures any image model — diffusion, VAE or GAN, class-conditional or not — in a
// classifier's feature space: FID, KID, precision and recall, density and coverage, the class histogram's
// entropy, and class-conditional accuracy, each next to what a second set of real images scores (the floor).
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels
import GPUGenNN

struct Evaluate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract:
      "Measure a diffusion model's, a VAE's or a GAN's samples: FID, KID, precision/recall, density/coverage.",
    discussion: """
      Draws --n images (a multiple of the classifier's classes; a class-conditional model's image i is \
      conditioned on class i mod classes) with the family's own knobs — diffusion: --sampler --steps --eta, \
      and --guidance-scale/--guidance-rescale for a model with a null label, with x̂₀ bounded as the scheduler \
      config says (--scheduler-clipping) except under guidance with s > 1, where the default is \
      \(X0Bounding.guidedDefault.summary) (a deliberate difference from diffusers, whose clip_sample saturates \
      guided DDIM samples; --no-clip, --thresholding [--dynamic-thresholding-ratio r] [--sample-max-value m] \
      choose); \
      VAE: --temperature τ; GAN: --truncation ψ --truncation-mode — and measures them in the feature space of \
      a classifier (--classifier: by default the bundled Fashion-MNIST classifier, 92.25 % accurate on t10k, \
      128-d penultimate features) against a reference set of --n real images, balanced over the classes:
        FID          the Fréchet distance of Gaussians fitted to the two sets' features (biased upward at small \
      N: compare FIDs only at the same N);
        KID          the unbiased polynomial-kernel MMD², mean ± std over 100 subsets of 1,000 (N/2 below \
      N = 2,000); 0 in expectation for two samples of one distribution;
        precision    the share of samples inside the real k-NN manifold (k = 3): fidelity;
        recall       the share of real images inside the samples' manifold (k = 3): diversity;
        density      how many real k-NN balls (k = 5) a sample falls in, over k (1 for real images; above 1 \
      for samples crowded where the data are dense);
        coverage     the share of real balls (k = 5) holding a sample;
        class entropy  of the classifier's predicted classes (ln 10 ≈ 2.30 when every class is equally common);
        accuracy     class-conditional models: the share classified as the class they were conditioned on.
      The floor column measures a second, disjoint set of --n real images the same way: what a perfect \
      generator would score at this N. Both real sets are Philox draws keyed by --seed, so models evaluated \
      with the same --seed and --n are compared against the same real images. --json prints one object with \
      every figure under plain keys (fid, kid, kid_std, precision, recall, density, coverage, class_entropy, \
      accuracy) and the floor's under real_floor.
      """)

  @Option(
    help:
      "Model folder (diffusion pipeline or UNet, VAE, GAN) or bundled name (diffusion, vae, gan). Default: diffusion."
  )
  var model: String?

  @Option(
    name: .customLong("n"),
    help:
      "Images to draw, and real images in each real set (a multiple of the classifier's classes; default 1,000); toy 2-D models: points scored (default 2,500)."
  )
  var nOption: Int?

  /// --n for image models.
  var n: Int { nOption ?? 1000 }

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

  @Option(
    help:
      "Diffusion: sampler, one of \(SamplerKind.allCases.map(\.rawValue).joined(separator: ", ")) (default ddim).",
    transform: parseSampler)
  var sampler: SamplerKind?

  @Option(help: "Diffusion: sampling steps (default 20; ddpm: the training steps).")
  var steps: Int?

  @Option(help: "Diffusion: DDIM η (default 0, deterministic).")
  var eta: Double?

  @OptionGroup(title: "Classifier-free guidance (diffusion)") var guidanceOptions: GuidanceOptions

  @OptionGroup(title: "x̂₀ clipping and dynamic thresholding (diffusion)") var x0Options: X0Options

  @Option(help: "Seed of the sampling noise and of the choice of real images.")
  var seed: UInt64 = 0

  @Option(name: .customLong("batch-size"), help: "Images per network batch (default: min(n, 100)).")
  var batchSize: Int?

  @Flag(help: "Print the figures as one JSON object.")
  var json = false

  @OptionGroup var deviceOptions: DeviceOptions

  func run() throws {
    try reportingUserErrors { try evaluate() }
  }

  /// The knobs of `family`, refusing another family's options.
  func knobs(for family: ModelFamily) throws -> GeneratorKnobs {
    let given: [(String, ModelFamily, Bool)] =
      [
        ("--sampler", .diffusion, sampler != nil), ("--steps", .diffusion, steps != nil),
        ("--eta", .diffusion, eta != nil), ("--temperature", .vae, temperature != nil),
        ("--truncation", .gan, truncation != nil), ("--truncation-mode", .gan, truncationMode != nil),
      ] + (guidanceOptions.given + x0Options.given).map { ($0.0, ModelFamily.diffusion, $0.1) }
    if let (flag, owner, _) = given.first(where: { $0.2 && $0.1 != family }) {
      throw ModelError.input(
        "\(flag) is a \(owner.rawValue) option; this model is a \(family.rawValue) model")
    }
    var k = GeneratorKnobs()
    if let sampler { k.sampler = sampler }
    k.steps = steps ?? (k.sampler == .ddpm ? nil : 20)
    if let eta { k.eta = eta }
    k.guidance = try guidanceOptions.guidance()
    if family == .diffusion { k.bounding = try x0Options.bounding(guidance: k.guidance) }
    if let temperature {
      guard temperature > 0, temperature.isFinite else {
        throw ModelError.input("--temperature must be positive, got \(temperature)")
      }
      k.temperature = temperature
    }
    if let psi = truncation, !(psi > 0 && psi.isFinite) {
      throw ModelError.input("--truncation ψ must be positive, got \(psi)")
    }
    if truncationMode != nil && truncation == nil {
      throw ModelError.input("--truncation-mode needs --truncation ψ")
    }
    k.truncation = truncation
    if let truncationMode { k.truncationMode = truncationMode }
    return k
  }

  func evaluate() throws {
    if let toy = try toyFolder() { return try evaluateToy(toy.url, kind: toy.kind) }
    if let b = batchSize, b <= 0 { throw ModelError.input("--batch-size must be positive") }
    guard n > 0 else { throw ModelError.input("--n must be positive") }
    let device = try deviceOptions.resolve()
    let folderURL = try ModelFolder.locate(model)
    let generator = try ImageGenerator.load(folderURL, device: device)
    let knobs = try knobs(for: generator.family)
    // A model without a null label: the error, before any work.
    if let g = knobs.guidance, let unet = generator.diffusionModel?.unet {
      _ = try GuidedDenoiser(model: unet, guidance: g)
    }
    let classifierURL = try ClassifierFolder.locate(classifier)
    let net = try ImageClassifier.load(from: classifierURL, device: device)
    try GeneratorEvaluator.checkCount(n, classes: net.config.numClasses)
    let c = net.config
    let realSource =
      real ?? TrainingImages.fashionMNISTFolder().appendingPathComponent("t10k-images-idx3-ubyte.gz").path
    let realImages = try TrainingImages.load(
      source: realSource, sampleSize: c.imageSize, channels: c.inChannels)
    guard realImages.labels != nil else {
      throw ClassifierError.mismatch("the real data \(realSource) has no class labels")
    }
    try GeneratorEvaluator.checkRealCapacity(n, real: realImages, classes: c.numClasses)
    let featureSpace = ClassifierFolder.featureSpace(of: classifierURL, featureDimension: c.featureDim)
    let batch = min(batchSize ?? min(n, 100), n)
    FileHandle.standardError.write(
      Data(
        "gpugen: evaluating \(folderURL.path) (\(generator.family.rawValue), \(knobs.describe(generator.family))): \(n) images in batches of \(batch) on \(device)\n"
          .utf8))
    let bar = ProgressBar(
      total: try generator.progressUnits(count: n, batchSize: batch, knobs: knobs), label: "sampling")
    let cbar = ProgressBar(total: 3 * n, label: "classifying", unit: "images")
    let m = try GeneratorEvaluator.measure(
      generator, count: n, batchSize: batch, seed: seed, knobs: knobs, real: realImages, classifier: net,
      featureSpace: featureSpace, sampleProgress: { bar.advance($0) }, classifyProgress: { cbar.advance($0) })
    let e = m.evaluation
    let names =
      classNames(folderURL, classes: c.numClasses) ?? classNames(classifierURL, classes: c.numClasses)
    if json {
      var o: [String: Any] = [
        "model": folderURL.path, "family": generator.family.rawValue, "classifier": classifierURL.path,
        "feature_space": featureSpace, "feature_dimension": c.featureDim, "real": realSource, "n": n,
        "seed": seed, "device": device.spec, "knobs": m.knobs, "nfe": m.evaluationsPerImage,
        "sample_seconds": m.sampleSeconds, "images_per_s": m.imagesPerSecond,
        "conditional": generator.classCount != nil, "kid_subset_size": e.samples.kid.subsetSize,
        "kid_subsets": e.samples.kid.subsets, "class_histogram": e.samples.classHistogram,
      ]
      for (k, v) in e.samples.plainFigures { o[k] = v }
      var floor: [String: Any] = e.realFloor.plainFigures
      floor["accuracy"] = e.realAccuracy.overall
      floor["class_histogram"] = e.realFloor.classHistogram
      o["real_floor"] = floor
      if let a = e.accuracy {
        o["accuracy"] = a.overall
        o["accuracy_per_class"] = a.perClass
      }
      if let names { o["class_names"] = names }
      switch generator.family {
      case .diffusion:
        o["sampler"] = knobs.sampler.rawValue
        o["steps"] = knobs.steps ?? m.evaluationsPerImage
        o["eta"] = knobs.eta
        o["x0_bounding"] = knobs.bounding.summary
      case .vae: o["temperature"] = knobs.temperature
      case .gan:
        o["truncation"] = knobs.truncation ?? 1
        o["truncation_mode"] = knobs.truncationMode.rawValue
      }
      print(
        String(
          decoding: try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys]),
          as: UTF8.self))
      return
    }
    let classes = generator.classCount.map { ", \($0) classes" } ?? ""
    print("model:         \(folderURL.path) (\(generator.family.rawValue)\(classes))")
    print(
      "samples:       \(n), \(m.knobs), seed \(seed), on \(device.spec): "
        + String(
          format: "%.2f s, %.1f images/s, %d network evaluations an image", m.sampleSeconds,
          m.imagesPerSecond,
          m.evaluationsPerImage))
    print("feature space: \(featureSpace)")
    print("real:          \(realSource), two disjoint sets of \(n) (\(n / c.numClasses) per class)")
    print("")
    print("                              samples        real (floor)")
    let s = e.samples, f = e.realFloor
    print(String(format: "FID                          %9.3f      %9.3f", s.fid, f.fid))
    print(
      String(
        format: "KID ×1000                    %6.2f ± %-5.2f %6.2f ± %.2f   (subsets of %d)",
        s.kid.mean * 1000,
        s.kid.std * 1000, f.kid.mean * 1000, f.kid.std * 1000, s.kid.subsetSize))
    print(String(format: "precision (k = 3)            %9.4f      %9.4f", s.prdc.precision, f.prdc.precision))
    print(String(format: "recall (k = 3)               %9.4f      %9.4f", s.prdc.recall, f.prdc.recall))
    print(String(format: "density (k = 5)              %9.4f      %9.4f", s.prdc.density, f.prdc.density))
    print(String(format: "coverage (k = 5)             %9.4f      %9.4f", s.prdc.coverage, f.prdc.coverage))
    print(String(format: "class entropy (nats)         %9.4f      %9.4f", s.classEntropy, f.classEntropy))
    if let a = e.accuracy {
      print(
        String(format: "class-conditional accuracy   %9.4f      %9.4f", a.overall, e.realAccuracy.overall))
      for k in 0..<c.numClasses {
        let name = names.map { "\(k) \($0[k])" } ?? "class \(k)"
        print(
          "  " + name.padding(toLength: 27, withPad: " ", startingAt: 0)
            + String(format: "%9.4f      %9.4f", a.perClass[k], e.realAccuracy.perClass[k]))
      }
    } else {
      print(
        "class histogram of the samples: "
          + s.classHistogram.map { String(format: "%.3f", $0) }.joined(separator: " "))
    }
  }

  /// The class names of a folder's gpugen_model_info.json, if it has them for every class.
  func classNames(_ folder: URL, classes: Int) -> [String]? {
    guard let data = try? Data(contentsOf: folder.appendingPathComponent("gpugen_model_info.json")),
      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let names = object["classes"] as? [String], names.count == classes
    else { return nil }
    return names
  }
}
