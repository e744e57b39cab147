// `gpugen compare`: the three families side by side, measured on this machine — fidelity, diversity, ease of
// training, sampling speed, a latent for any image, the knobs that trade fidelity for diversity, and editing —
// written as a self-contained HTML page, Markdown and JSON, every cell a measured number with its N, device and
// feature space, every verdict generated from the numbers.
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels

struct Compare: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Compare GANs, VAEs and diffusion models side by side and write a measured HTML report.",
    discussion: """
      Rows (criteria) against columns (models): fidelity (precision, density, FID, KID, sample grids), \
      diversity (recall, coverage, class entropy; toy mode coverage with scatter plots), ease of training \
      (toy runs over --seeds seeds per family: the share reaching ≥ 20/25 modes on grid25, 7/8 on ring8, the \
      spread across seeds, the loss curves), sampling speed (images/s, network evaluations and ms per image at \
      batch 64 on each --device; diffusion at 20 DDIM steps and at the training step count with DDPM), a \
      latent of any image (reconstruction MSE of 200 test images through the VAE's μ, the GAN's projection and \
      the diffusion model's DDIM inversion), the knobs (GAN ψ, VAE τ, diffusion steps) as precision–recall curves with KID, and \
      editing. Then the metrics' real-versus-real calibration and the seed's profile checked against the \
      numbers.

      With no --models it compares the three bundled models. --data toy:grid25 or toy:ring8 compares the \
      families on toy data only (their fidelity, diversity and ease of training); with fashion-mnist (the \
      default) the toy runs use grid25. The report goes to --out (index.html, report.md, report.json, \
      figures/); an existing folder must be empty or an earlier report. --quick (N 1,000, 2 seeds, smaller \
      sweeps, the DDPM speed estimated from the 20-step run) takes under 10 minutes on a 2-core CPU; the full \
      run under 60. Metrics are deterministic given --seed on the CPU backend; timings are not.

      Examples:
        gpugen compare --quick --out report
        gpugen compare --models gan=runs/gan/checkpoint,vae=vae,diffusion=diffusion --n 2000
        gpugen compare --data toy:ring8 --seeds 5 --out toy-report
      """)

  @Option(
    help: "Models as NAME=DIR,… (DIR a folder or bundled name). Default: gan=gan,vae=vae,diffusion=diffusion."
  )
  var models: String?

  @Option(help: "fashion-mnist, toy:grid25 or toy:ring8.")
  var data = "fashion-mnist"

  @Option(help: "Images per model and per real set (default 2,000; --quick 1,000).")
  var n: Int?

  @Option(help: "Toy training runs per family (default 5; --quick 2).")
  var seeds: Int?

  @Option(
    help: ArgumentHelp(
      "Device, or a comma-separated list (the speed row is measured on each, the rest on the first): auto, cpu, gpu, opencl:N.",
      valueName: "device"))
  var device: String?

  @Option(help: "Report folder.")
  var out = "compare-report"

  @Option(help: "The seed of every draw (samples, real sets, KID subsets, toy runs: seed, seed+1, …).")
  var seed: UInt64 = 0

  @Option(help: "Classifier folder whose features are the metric space (default: the bundled classifier).")
  var classifier: String?

  @Option(
    name: .customLong("toy-steps"),
    help: "Training steps of every toy run (default: each family's toy default).")
  var toySteps: Int?

  @Option(
    name: .customLong("projection-steps"),
    help: "Adam steps of the GAN's projection of each test image (default 300; --quick 100).")
  var projectionSteps: Int?

  @Option(
    name: .customLong("inversion-steps"),
    help:
      "DDIM steps of the diffusion model's inversion of each test image, and of its reconstruction."
  )
  var inversionSteps = 50

  @Flag(help: "Small N, two seeds, short sweeps: a report in under 10 minutes on a 2-core CPU.")
  var quick = false

  func run() throws {
    try reportingUserErrors { try compare() }
  }

  /// One compared model.
  struct Column {
    var label: String
    var url: URL
    var generator: ImageGenerator?
    var family: ModelFamily
  }

  /// What a run measures, by --quick.
  struct Settings {
    var n: Int, sweepN: Int, seeds: Int
    var projectionSteps: Int
    var inversionSteps: Int
    var calibration: [Int]
    var psi: [Double], tau: [Double], steps: [Int]
    var measureDDPM: Bool
  }

  func settings() throws -> Settings {
    let n = self.n ?? (quick ? 1000 : 2000)
    let seeds = self.seeds ?? (quick ? 2 : 5)
    guard seeds >= 1 else { throw ModelError.input("--seeds must be at least 1, got \(seeds)") }
    guard seeds <= 100 else { throw ModelError.input("--seeds must be at most 100, got \(seeds)") }
    guard (1...10_000).contains(inversionSteps) else {
      throw ModelError.input("--inversion-steps must be in 1…10,000, got \(inversionSteps)")
    }
    if let p = projectionSteps, !(1...100_000).contains(p) {
      throw ModelError.input("--projection-steps must be in 1…100,000, got \(p)")
    }
    if let t = toySteps, !(1...1_000_000).contains(t) {
      throw ModelError.input("--toy-steps must be in 1…1,000,000, got \(t)")
    }
    return Settings(
      n: n, sweepN: min(n, quick ? 500 : 1000), seeds: seeds,
      projectionSteps: projectionSteps ?? (quick ? 100 : 300), inversionSteps: inversionSteps,
      calibration: quick ? [500, 1000, 2000] : Calibration.defaultSizes,
      psi: quick ? [0.3, 0.7, 1.0] : [0.3, 0.5, 0.7, 0.85, 1.0],
      tau: quick ? [0.6, 1.0, 1.3] : [0.5, 0.7, 0.85, 1.0, 1.2],
      steps: quick ? [5, 10, 20] : [5, 10, 20, 50], measureDDPM: !quick)
  }

  func parseColumns(device: Device) throws -> [Column] {
    let spec = models ?? "gan=gan,vae=vae,diffusion=diffusion"
    var columns: [Column] = []
    for item in spec.split(separator: ",", omittingEmptySubsequences: true) {
      let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
      let (label, path) = parts.count == 2 ? (parts[0], parts[1]) : (String(item), String(item))
      guard !label.isEmpty, !path.isEmpty else {
        throw ModelError.input("--models: '\(item)' is not NAME=DIR")
      }
      guard !columns.contains(where: { ReportBuilder.slug($0.label) == ReportBuilder.slug(label) }) else {
        throw ModelError.input("--models names \(label) twice (or two names that differ only in punctuation)")
      }
      let url = try ModelFolder.locate(path)
      let g = try ImageGenerator.load(url, device: device)
      columns.append(Column(label: label, url: url, generator: g, family: g.family))
    }
    guard !columns.isEmpty else { throw ModelError.input("--models names no model") }
    if let first = columns.first,
      let other = columns.first(where: { $0.generator?.imageShape != first.generator?.imageShape })
    {
      throw ModelError.input(
        "--models: \(first.label) makes \(first.generator!.imageShape.map(String.init).joined(separator: "×")) images but "
          + "\(other.label) makes \(other.generator!.imageShape.map(String.init).joined(separator: "×")): compare models of one image size"
      )
    }
    return columns
  }

  func compare() throws {
    let s = try settings()
    let outURL = URL(fileURLWithPath: out)
    try ComparisonReport.checkOutputFolder(outURL)
    let deviceSpecs = (device ?? "").split(separator: ",").map { String($0) }
    var devices: [Device] = []
    for spec in deviceSpecs.isEmpty ? [nil] : deviceSpecs.map({ Optional($0) }) {
      let d = try Device.select(spec)
      if devices.contains(where: { $0.spec == d.spec }) {
        compareLog("--device \(spec ?? "auto") is \(d.spec) again: measured once")
      } else {
        devices.append(d)
      }
    }
    let main = devices[0]
    let toyData: ToyDataset
    let imageData: Bool
    if ToyDataset.isToy(data) {
      toyData = try ToyDataset.parse(data)
      imageData = false
      let imageOnly: [(String, Bool)] = [
        ("--models", models != nil), ("--n", n != nil), ("--classifier", classifier != nil),
        ("--projection-steps", projectionSteps != nil), ("--inversion-steps", inversionSteps != 50),
        ("a second --device", devices.count > 1),
      ]
      if let (flag, _) = imageOnly.first(where: { $0.1 }) {
        throw ModelError.input(
          "\(flag) applies to image models (--data fashion-mnist); --data \(data) trains and compares toy models"
        )
      }
    } else {
      guard data == "fashion-mnist" else {
        throw ModelError.input("--data must be fashion-mnist, toy:grid25 or toy:ring8, got \(data)")
      }
      toyData = .grid25
      imageData = true
    }
    let started = Date()
    var b = ReportBuilder(settings: s, toy: toyData, devices: devices, seed: seed, quick: quick)
    if imageData {
      let columns = try parseColumns(device: main)
      let classifierURL = try ClassifierFolder.locate(classifier)
      let net = try ImageClassifier.load(from: classifierURL, device: main)

      let c = net.config
      guard columns.allSatisfy({ $0.generator!.imageShape == [c.inChannels, c.imageSize, c.imageSize] })
      else {
        throw ClassifierError.mismatch(
          "the models make \(columns[0].generator!.imageShape.map(String.init).joined(separator: "×")) images but the "
            + "classifier \(classifierURL.path) takes \(c.inChannels)×\(c.imageSize)×\(c.imageSize)")
      }
      let folder = TrainingImages.fashionMNISTFolder()
      let test = try TrainingImages.load(
        source: folder.appendingPathComponent("t10k-images-idx3-ubyte.gz").path, sampleSize: c.imageSize,
        channels: c.inChannels)
      try GeneratorEvaluator.checkRealCapacity(s.n, real: test, classes: c.numClasses)
      try GeneratorEvaluator.checkRealCapacity(s.sweepN, real: test, classes: c.numClasses)
      b.featureSpace = ClassifierFolder.featureSpace(of: classifierURL, featureDimension: c.featureDim)
      b.columns = columns.map { ($0.label, $0.family, $0.url.path) }
      b.imageShape = columns[0].generator!.imageShape
      for col in columns {
        compareLog("\(col.label): \(s.n) samples and every metric")
        try b.measure(col.label, col.generator!, real: test, classifier: net)
      }
      for col in columns {
        compareLog("\(col.label): sampling speed")
        try b.speed(col.label, col.generator!, url: col.url)
      }
      for col in columns {
        compareLog("\(col.label): the latent of 200 test images")
        try b.latent(col.label, col.generator!, test: test, classifier: net)
      }
      for col in columns where col.family == .diffusion {
        compareLog("\(col.label): inpainting and image-to-image of \(ReportBuilder.editCount) test images")
        try b.edit(col.label, col.generator!, test: test)
      }
      for col in columns {
        compareLog("\(col.label): the knob sweep")
        try b.sweep(col.label, col.generator!, real: test, classifier: net)
      }
      compareLog(
        "calibration: real against real at N = \(s.calibration.map(String.init).joined(separator: ", "))")
      let train = try TrainingImages.load(
        source: folder.appendingPathComponent("train-images-idx3-ubyte.gz").path, sampleSize: c.imageSize,
        channels: c.inChannels)
      let bar = ProgressBar(total: 2 * (s.calibration.max() ?? 0), label: "classifying", unit: "images")
      b.calibration = try Calibration.realVersusReal(
        real: train, classifier: net, sizes: s.calibration, seed: seed, progress: { bar.advance($0) })
    } else {
      b.columns = ModelFamily.reportOrder.map {
        ("\($0.rawValue) (toy)", $0, "trained here on \(toyData.spec)")
      }
      b.featureSpace = "the 2-D plane of \(toyData.spec)"
    }
    let families = Array(Set(b.columns.map(\.1))).sorted {
      ModelFamily.reportOrder.firstIndex(of: $0)! < ModelFamily.reportOrder.firstIndex(of: $1)!
    }
    for family in families {
      for k in 0..<s.seeds {
        let runSeed = seed &+ UInt64(k)
        let steps = toySteps ?? ToyTraining.defaultSteps(family)
        compareLog("toy \(toyData.spec): \(family.rawValue), seed \(runSeed), \(steps) steps")
        let bar = ProgressBar(total: steps, label: "training", unit: "it")
        let r = try ToyTraining.run(
          family: family, dataset: toyData, seed: runSeed, steps: steps, device: main,
          progress: { bar.advance($0) })
        b.toyRuns.append((runSeed, r))
      }
    }
    b.elapsed = Date().timeIntervalSince(started)
    let report = try b.report(imageData: imageData)
    try report.write(to: outURL, json: b.json(imageData: imageData))
    print(
      "report: \(outURL.appendingPathComponent("index.html").path) (\(String(format: "%.0f", b.elapsed)) s)")
    for r in report.rows { print("  \(r.title): \(r.verdict)") }
  }
}

extension ModelFamily {
  /// The order of the report's columns: the seed's order (GAN, VAE, diffusion).
  static let reportOrder: [ModelFamily] = [.gan, .vae, .diffusion]

  /// The family's name in prose.
  var displayName: String {
    switch self {
    case .gan: return "GAN"
    case .vae: return "VAE"
    case .diffusion: return "diffusion"
    }
  }
}
