// The measurements of `gpugen compare` and the report made of them: rows, verdicts (generated from the
// numbers), the seed's profile checked, calibration, toy runs, and report.json under plain keys.
import Foundation
import GPUGenCore
import GPUGenModels

/// A sampling-speed measurement.
struct SpeedFigure {
  var label: String, family: ModelFamily, device: String, setting: String
  var nfe: Int, imagesPerSecond: Double
  /// False when estimated (DDPM under --quick: the 20-step run's time per evaluation × the DDPM's evaluations).
  var measured: Bool
  var msPerImage: Double { 1000 / imagesPerSecond }
}

/// One point of a knob sweep.
struct SweepPoint {
  var knob: String, value: Double, precision: Double, recall: Double, kid: KIDEstimate, fid: Double
}

/// A progress line of `gpugen compare` on stderr.
func compareLog(_ s: String) { FileHandle.standardError.write(Data("gpugen compare: \(s)\n".utf8)) }

/// Gathers the measurements and turns them into a `ComparisonReport`.
struct ReportBuilder {
  let settings: Compare.Settings
  let toy: ToyDataset
  let devices: [Device]
  let seed: UInt64
  let quick: Bool
  var featureSpace = ""
  /// (C, H, W) of the compared models' images.
  var imageShape: [Int] = []
  var columns: [(String, ModelFamily, String)] = []
  var measurements: [String: GeneratorMeasurement] = [:]
  var speeds: [SpeedFigure] = []
  var latents: [String: (mse: Double?, how: String)] = [:]
  var sweeps: [String: [SweepPoint]] = [:]
  var calibration: [CalibrationPoint] = []
  /// Per diffusion column: img2img of `editCount` test images at each strength (mean squared distance to the
  /// input on [0, 1]), and the figure.
  var edits: [String: (distances: [Double], inpaintMSE: Double, inpaintNFE: Int, figure: ReportFigure)] = [:]
  var toyRuns: [(UInt64, ToyRunResult)] = []
  var elapsed: Double = 0
  static let latentCount = 200
  /// Test images edited for the editing row's figure, and the img2img strengths shown.
  static let editCount = 8
  static let editStrengths = [0.4, 0.6, 0.8]
  static let speedBatch = 64

  init(settings: Compare.Settings, toy: ToyDataset, devices: [Device], seed: UInt64, quick: Bool) {
    (self.settings, self.toy, self.devices, self.seed, self.quick) = (settings, toy, devices, seed, quick)
  }

  func family(_ label: String) -> ModelFamily { columns.first { $0.0 == label }!.1 }

  // MARK: Measuring

  /// Mean squared error of two image sets with values in [−1, 1], on the [0, 1] pixel scale.
  static func pixelMSE(_ a: [Float], _ b: [Float]) -> Double {
    zip(a, b).reduce(0.0) { $0 + Double(($1.0 - $1.1) / 2) * Double(($1.0 - $1.1) / 2) } / Double(a.count)
  }

  mutating func measure(
    _ label: String, _ g: ImageGenerator, real: TrainingImages, classifier: ImageClassifier
  )
    throws
  {
    let knobs = GeneratorKnobs()
    let batch = 100
    let bar = ProgressBar(
      total: try g.progressUnits(count: settings.n, batchSize: batch, knobs: knobs), label: "sampling")
    let cbar = ProgressBar(total: 3 * settings.n, label: "classifying", unit: "images")
    measurements[label] = try GeneratorEvaluator.measure(
      g, count: settings.n, batchSize: batch, seed: seed, knobs: knobs, real: real, classifier: classifier,
      featureSpace: featureSpace, sampleProgress: { bar.advance($0) }, classifyProgress: { cbar.advance($0) })
  }

  /// Best of `rounds` timings of `body`, in seconds.
  func best(_ rounds: Int, _ body: () throws -> Void) rethrows -> Double {
    var t = Double.infinity
    for _ in 0..<rounds {
      let t0 = Date()
      try body()
      t = min(t, Date().timeIntervalSince(t0))
    }
    return t
  }

  mutating func speed(_ label: String, _ g0: ImageGenerator, url: URL) throws {
    let n = Self.speedBatch
    for d in devices {
      let g = d.spec == g0.device.spec ? g0 : try ImageGenerator.load(url, device: d)
      let labels = g.classCount.map { Array(0..<$0) }
      func run(_ k: GeneratorKnobs) throws {
        _ = try g.sample(count: n, batchSize: n, seed: seed, knobs: k, labels: labels)
        try d.backend.synchronize()
      }
      switch g.family {
      case .gan, .vae:
        let k = GeneratorKnobs()
        try run(k)  // warm-up: kernels, buffers
        let t = try best(5) { try run(k) }
        speeds.append(
          SpeedFigure(
            label: label, family: g.family, device: d.spec, setting: "one network evaluation", nfe: 1,
            imagesPerSecond: Double(n) / t, measured: true))
      case .diffusion:
        var warm = GeneratorKnobs()
        warm.steps = 1
        try run(warm)
        var k = GeneratorKnobs()
        k.steps = 20
        let t20 = try best(2) { try run(k) }
        let nfe20 = try g.evaluationsPerImage(k)
        speeds.append(
          SpeedFigure(
            label: label, family: .diffusion, device: d.spec, setting: "DDIM, 20 steps", nfe: nfe20,
            imagesPerSecond: Double(n) / t20, measured: true))
        var full = GeneratorKnobs()
        full.sampler = .ddpm
        let nfeFull = try g.evaluationsPerImage(full)
        if settings.measureDDPM {
          compareLog("\(label): DDPM at all \(nfeFull) steps on \(d.spec)")
          let t = try best(1) { try run(full) }
          speeds.append(
            SpeedFigure(
              label: label, family: .diffusion, device: d.spec, setting: "DDPM, \(nfeFull) steps",
              nfe: nfeFull,
              imagesPerSecond: Double(n) / t, measured: true))
        } else {
          speeds.append(
            SpeedFigure(
              label: label, family: .diffusion, device: d.spec, setting: "DDPM, \(nfeFull) steps",
              nfe: nfeFull,
              imagesPerSecond: Double(n) / (t20 / Double(nfe20) * Double(nfeFull)), measured: false))
        }
      }
    }
  }

  mutating func latent(
    _ label: String, _ g: ImageGenerator, test: TrainingImages, classifier: ImageClassifier
  )
    throws
  {
    let count = Self.latentCount
    let images = GeneratorEvaluator.gather(test, Array(0..<count))
    switch g.family {
    case .vae:
      let vae = g.variationalAutoencoder!
      let x = VAEOps.fromSigned(images, range: vae.dataRange)
      let mu = try VAEOps.encode(vae, images: x, count: count, batchSize: 100, device: g.device).mean
      let back = try VAEOps.decode(vae, latents: mu, count: count, batchSize: 100, device: g.device)
      latents[label] = (
        Self.pixelMSE(VAEOps.toSigned(back, range: vae.dataRange), images), "the decoder of the encoder's μ"
      )
    case .gan:
      let gan = g.ganModel!
      let labels = gan.config.conditional ? Array(test.labels!.prefix(count)) : nil
      let bar = ProgressBar(total: count, label: "projecting", unit: "images")
      let r = try GANProjection.project(
        gan, images: images, count: count, labels: labels, classifier: classifier,
        steps: settings.projectionSteps,
        seed: seed, device: g.device, progress: { bar.advance($0) })
      latents[label] = (
        r.mse.reduce(0, +) / Double(r.mse.count),
        "projection: \(settings.projectionSteps) Adam steps on z (pixels + classifier features)"
      )
    case .diffusion:
      let (unet, scheduler) = g.diffusionModel!
      let labels = g.classCount != nil ? Array(test.labels!.prefix(count)) : nil
      let steps = settings.inversionSteps
      let bar = ProgressBar(total: 2 * steps * ((count + 99) / 100), label: "inverting")
      let noise = try DDIMInversion.invert(
        unet, images: images, count: count, classLabels: labels, steps: steps, schedulerConfig: scheduler,
        batchSize: 100, progress: { bar.advance($0) })
      let back = try DDIMInversion.reconstruct(
        unet, noise: noise, count: count, classLabels: labels, steps: steps, schedulerConfig: scheduler,
        batchSize: 100, clip: false, progress: { bar.advance($0) })
      latents[label] = (
        Self.pixelMSE(back, images), "DDIM inversion, \(steps) steps each way (x̂₀ clipping off)"
      )
    }
  }

  mutating func sweep(_ label: String, _ g: ImageGenerator, real: TrainingImages, classifier: ImageClassifier)
    throws
  {
    var points: [(String, Double, GeneratorKnobs)] = []
    switch g.family {
    case .gan:
      for psi in settings.psi {
        var k = GeneratorKnobs()
        k.truncation = psi < 1 ? psi : nil
        points.append(("ψ", psi, k))
      }
    case .vae:
      for tau in settings.tau {
        var k = GeneratorKnobs()
        k.temperature = tau
        points.append(("τ", tau, k))
      }
    case .diffusion:
      for steps in settings.steps {
        var k = GeneratorKnobs()
        k.steps = steps
        points.append(("steps", Double(steps), k))
      }
    }
    var out: [SweepPoint] = []
    for (knob, value, k) in points {
      let bar = ProgressBar(
        total: try g.progressUnits(count: settings.sweepN, batchSize: 100, knobs: k),
        label: "\(knob) \(value)")
      let m = try GeneratorEvaluator.measure(
        g, count: settings.sweepN, batchSize: 100, seed: seed, knobs: k, real: real, classifier: classifier,
        featureSpace: featureSpace, sampleProgress: { bar.advance($0) })
      let s = m.evaluation.samples
      out.append(
        SweepPoint(
          knob: knob, value: value, precision: s.prdc.precision, recall: s.prdc.recall, kid: s.kid, fid: s.fid
        ))
    }
    sweeps[label] = out
  }

  mutating func edit(_ label: String, _ g: ImageGenerator, test: TrainingImages) throws {
    guard let (unet, scheduler) = g.diffusionModel else { return }
    let count = Self.editCount, per = g.imageShape.reduce(1, *)
    let images = GeneratorEvaluator.gather(test, Array(0..<count))
    let labels = g.classCount != nil ? Array(test.labels!.prefix(count)) : nil
    var rows = images, distances: [Double] = []
    // Inpainting: RePaint (25 steps, J = R = 5) of the centre; the masked input shows the filled pixels grey.
    let (h, w) = (g.imageShape[1], g.imageShape[2])
    let keep = Inpainting.MaskPreset.center.keepMask(height: h, width: w)
    let schedule = try NoiseSchedule(config: try Inpainting.config(schedulerConfig: scheduler))
    let rp = try Inpainting.plan(schedule: schedule, steps: 25, jumpLength: 5, jumpNSample: 5)
    let filled = try Inpainting.inpaint(
      unet, plan: rp,
      request: Inpainting.Request(
        images: images, count: count, keep: keep, batchSize: count, seed: seed, classLabels: labels))
    let masked = images.enumerated().map { i, v in keep[i % (h * w)] == 0 ? Float(0) : v }
    rows += masked + filled
    let inpaintMSE = Inpainting.filledMSE(
      filled, truth: images, keep: keep, count: count, shape: g.imageShape)
    for s in Self.editStrengths {
      let plan = try Img2Img.plan(.ddim, schedulerConfig: scheduler, steps: 50, strength: s)
      let out = try Img2Img.run(
        unet, images: images, count: count, classLabels: labels, plan: plan, seed: seed, batchSize: count)
      distances.append(
        Self.pixelMSE(out, images))
      rows += out
    }
    let grid = try Image8.grid(rows, shape: [rows.count / per] + g.imageShape, columns: count)
    let figure = try ReportFigure(
      id: "edit-\(Self.slug(label))",
      caption:
        "\(label): image-to-image (SDEdit, DDIM 50 steps): the first \(count) t10k images (top row), then "
        + "strength " + Self.editStrengths.map { SVGPlot.format($0) }.joined(separator: ", ")
        + " (rows below)",
      image: grid.zoomed(2))
    edits[label] = (distances, inpaintMSE, rp.modelEvaluations, figure)
  }

  // MARK: Toy summaries

  /// The mode count a run must reach to count as a success (20/25 on grid25, 7/8 on ring8).
  var successModes: Int { toy == .grid25 ? 20 : 7 }

  func runs(_ f: ModelFamily) -> [(UInt64, ToyRunResult)] { toyRuns.filter { $0.1.family == f } }

  struct ToySummary {
    var runs: Int, successes: Int
    var modesMean: Double, modesStd: Double, hqMean: Double, hqStd: Double, klMean: Double,
      secondsMean: Double
    var allModesEveryRun: Bool, missedSomewhere: Bool
  }

  func toySummary(_ f: ModelFamily) -> ToySummary? {
    let r = runs(f).map(\.1)
    guard !r.isEmpty else { return nil }
    func meanStd(_ v: [Double]) -> (Double, Double) {
      let m = v.reduce(0, +) / Double(v.count)
      return (m, (v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(v.count)).squareRoot())
    }
    let modes = meanStd(r.map { Double($0.scores.modesCoveredShare) })
    let hq = meanStd(r.map(\.scores.highQualityFraction))
    return ToySummary(
      runs: r.count, successes: r.filter { $0.scores.modesCoveredShare >= successModes }.count,
      modesMean: modes.0,
      modesStd: modes.1, hqMean: hq.0, hqStd: hq.1, klMean: meanStd(r.map(\.scores.klFromUniform)).0,
      secondsMean: meanStd(r.map(\.seconds)).0,
      allModesEveryRun: r.allSatisfy { $0.scores.modesCoveredShare == $0.scores.modes },
      missedSomewhere: r.contains { $0.scores.modesCoveredShare < $0.scores.modes })
  }

  // MARK: Verdicts

  static func f3(_ v: Double) -> String { String(format: "%.3f", v) }

  /// "X has the highest <what> (a; others b, c)" from (label, value) pairs; equal printed values tie; one model
  /// alone is named without a comparison.
  func lead(
    _ what: String, _ values: [(String, Double)], higher: Bool = true, format: (Double) -> String = f3
  )
    -> String
  {
    guard let best = values.max(by: { higher ? $0.1 < $1.1 : $0.1 > $1.1 }) else { return "" }
    if values.count == 1 { return "\(best.0) alone: \(what) \(format(best.1))" }
    let tied = values.filter { format($0.1) == format(best.1) }
    let others = values.filter { format($0.1) != format(best.1) }.map { "\($0.0) \(format($0.1))" }
      .joined(separator: ", ")
    let who = tied.count > 1 ? tied.map(\.0).joined(separator: " and ") + " tie for" : "\(best.0) has"
    return "\(who) the \(higher ? "highest" : "lowest") \(what) (\(format(best.1))"
      + (others.isEmpty ? ")" : "; \(others))")
  }

  func kidText(_ k: KIDEstimate) -> String { String(format: "%.3g ± %.3g", k.mean, k.std) }

  // MARK: The report

  func report(imageData: Bool) throws -> ComparisonReport {
    let labels = columns.map(\.0)
    var rows: [ComparisonRow] = []
    let toyNote = "\(toy.spec), \(settings.seeds) seed\(settings.seeds == 1 ? "" : "s") per family"
    func toyCell(_ f: ModelFamily) -> String {
      guard let s = toySummary(f) else { return "no toy run" }
      return String(
        format: "toy %@: %.1f/%d modes (share rule), %.0f %% of samples high quality", toy.spec, s.modesMean,
        toy.modes.count, 100 * s.hqMean)
    }
    if imageData {
      let m = labels.map { measurements[$0]! }
      rows.append(
        ComparisonRow(
          key: "fidelity", title: "fidelity",
          measured:
            "precision (k = 3), density (k = 5), FID, KID (± its subsets' std) of N = \(settings.n) samples against \(settings.n) real images, in \(featureSpace)",
          cells: m.map {
            let s = $0.evaluation.samples
            return String(
              format: "precision %.3f · density %.3f · FID %.2f · KID %@ (N = %d, %@)", s.prdc.precision,
              s.prdc.density,
              s.fid, kidText(s.kid), s.n, devices[0].spec)
          },
          verdict: lead("precision", zip(labels, m.map(\.evaluation.samples.prdc.precision)).map { ($0, $1) })
            + "; "
            + lead("FID", zip(labels, m.map(\.evaluation.samples.fid)).map { ($0, $1) }, higher: false) {
              String(format: "%.2f", $0)
            },
          figures: try zip(labels, m).map { label, x in
            let per = imageShape.reduce(1, *)
            let c = columns.first { $0.0 == label }!
            let count = min(64, x.evaluation.n)
            let img = try Image8.grid(
              Array(x.samples.prefix(count * per)), shape: [count] + imageShape, columns: 8)
            return try ReportFigure(
              id: "samples-\(Self.slug(label))",
              caption:
                "\(label) (\(c.1.displayName)): the first \(count) of the \(x.evaluation.n) samples, \(x.knobs)",
              image: img.zoomed(2))
          }))
      rows.append(
        ComparisonRow(
          key: "diversity", title: "diversity",
          measured:
            "recall (k = 3), coverage (k = 5), entropy of the classifier's class histogram (ln 10 ≈ 2.303 when even); toy mode coverage (\(toyNote))",
          cells: zip(labels, m).map { label, x in
            let s = x.evaluation.samples
            return String(
              format: "recall %.3f · coverage %.3f · class entropy %.3f (N = %d, %@) · ", s.prdc.recall,
              s.prdc.coverage, s.classEntropy, s.n, devices[0].spec) + toyCell(family(label))
          },
          verdict: lead("recall", zip(labels, m.map(\.evaluation.samples.prdc.recall)).map { ($0, $1) })
            + "; "
            + lead("coverage", zip(labels, m.map(\.evaluation.samples.prdc.coverage)).map { ($0, $1) }),
          figures: try toyScatterFigures()))
    } else {
      let fams = columns.map(\.1)
      rows.append(
        ComparisonRow(
          key: "fidelity", title: "fidelity",
          measured: "the share of samples within 3σ of a mode (high quality), mean over \(toyNote)",
          cells: fams.map { f in
            toySummary(f).map {
              String(format: "%.1f %% ± %.1f %% high quality", 100 * $0.hqMean, 100 * $0.hqStd)
            } ?? ""
          },
          verdict: lead(
            "share of high-quality samples",
            zip(labels, fams.map { toySummary($0)?.hqMean ?? 0 }).map { ($0, $1) }
          ) {
            String(format: "%.1f %%", 100 * $0)
          }))
      rows.append(
        ComparisonRow(
          key: "diversity", title: "diversity",
          measured:
            "modes covered (≥ 10 % of the fair share within 3σ) and KL of the mode histogram from uniform, mean over \(toyNote)",
          cells: fams.map { f in
            toySummary(f).map {
              String(format: "%.1f/%d modes · KL %.3f", $0.modesMean, toy.modes.count, $0.klMean)
            } ?? ""
          },
          verdict: lead(
            "mode coverage", zip(labels, fams.map { toySummary($0)?.modesMean ?? 0 }).map { ($0, $1) }
          ) {
            String(format: "%.1f", $0)
          },
          figures: try toyScatterFigures()))
    }
    let fams = columns.map(\.1)
    rows.append(
      ComparisonRow(
        key: "ease_of_training", title: "ease of training",
        measured:
          "\(toyNote), each family's toy defaults (the GAN's: plain NS, 5,000 steps, no batch norm): runs reaching ≥ \(successModes)/\(toy.modes.count) modes, the spread across seeds, the loss curves",
        cells: fams.map { f in
          guard let s = toySummary(f) else { return "no toy run" }
          return String(
            format:
              "%d/%d runs ≥ %d modes · modes %.1f ± %.1f · high quality %.0f %% ± %.0f %% · %.0f s a run",
            s.successes,
            s.runs, successModes, s.modesMean, s.modesStd, 100 * s.hqMean, 100 * s.hqStd, s.secondsMean)
        },
        verdict: easeVerdict(labels: labels, fams: fams),
        figures: lossFigures()))
    if imageData {
      rows.append(speedRow(labels))
      rows.append(
        ComparisonRow(
          key: "latent", title: "latent of any image",
          measured:
            "pixel MSE (on [0, 1]) of the first \(Self.latentCount) t10k images reconstructed through the model's latent",
          cells: labels.map { l in
            let x = latents[l]!
            return x.mse.map { String(format: "MSE %.4f, %@", $0, x.how) } ?? x.how
          },
          verdict: latentVerdict(labels)))
      rows.append(knobRow(labels))
      let editable = labels.filter { edits[$0] != nil }
      rows.append(
        ComparisonRow(
          key: "editing", title: "editing",
          measured:
            "inpainting and image-to-image in gpugen, per family, on the first \(Self.editCount) t10k images: the filled pixels' MSE on [0, 1] (centre mask), and the mean squared distance to the input at each strength",
          cells: labels.map { l in
            if let e = edits[l] {
              return String(
                format:
                  "inpainting (RePaint, %d evaluations) of the centre: MSE %.4f over the filled pixels; ",
                e.inpaintNFE, e.inpaintMSE)
                + "image-to-image (SDEdit), distance to the input: "
                + zip(Self.editStrengths, e.distances).map { String(format: "%.4f at strength %.1f", $1, $0) }
                .joined(separator: ", ")
            }
            switch family(l) {
            case .diffusion: return "image-to-image and inpainting: not measured"
            case .vae:
              return "no inpainting or image-to-image; edits through the latent (gpugen encode / interpolate)"
            case .gan:
              return
                "no inpainting or image-to-image; edits through projection (gpugen encode) and the latent"
            }
          },
          verdict: editable.isEmpty
            ? "no model here edits images in gpugen: image-to-image and inpainting are diffusion's"
            : "only \(editable.joined(separator: ", ")) edit\(editable.count == 1 ? "s" : "") images: inpainting and image-to-image with no retraining, the edit growing with the strength",
          figures: editable.map { edits[$0]!.figure }))
    }
    return ComparisonReport(
      title: "gpugen compare: GANs, VAEs and diffusion side by side", setup: setupLines(imageData: imageData),
      columns: labels, families: columns.map { $0.1.displayName }, rows: rows,
      sections: try sections(imageData: imageData))
  }

  static func slug(_ s: String) -> String {
    String(s.map { $0.isLetter || $0.isNumber ? $0 : "-" })
  }

  func toyScatterFigures() throws -> [ReportFigure] {
    try ModelFamily.reportOrder.compactMap { f in
      guard let (runSeed, r) = runs(f).first else { return nil }
      let img = ToyScatter.render(
        r.samples, dataset: toy, title: "\(f.displayName) on \(toy.spec), seed \(runSeed)",
        subtitle: r.scores.summary,
        size: 360)
      return try ReportFigure(
        id: "toy-\(f.rawValue)",
        caption:
          "\(f.displayName): \(r.samples.count / 2) samples after \(r.losses.count) steps (seed \(runSeed)); true modes circled at 3σ",
        image: img)
    }
  }

  func lossFigures() -> [ReportFigure] {
    ModelFamily.reportOrder.compactMap { f in
      let rs = runs(f)
      guard !rs.isEmpty else { return nil }
      var plot = SVGPlot(
        title: "\(f.displayName) on \(toy.spec): training loss", xLabel: "step",
        yLabel: "loss (moving average of 50)")
      for (runSeed, r) in rs {
        for (j, name) in r.lossNames.enumerated() where f == .gan || j == 0 {
          let y = movingAverage(r.losses.map { $0[j] }, window: 50)
          let stride = max(1, y.count / 400)
          let idx = Array(Swift.stride(from: 0, to: y.count, by: stride))
          plot.series.append(
            .init(
              name: "\(name), seed \(runSeed)", x: idx.map { Double($0 + 1) }, y: idx.map { y[$0] },
              dashed: j == 1))
        }
      }
      return ReportFigure(
        id: "loss-\(f.rawValue)",
        caption:
          "\(f.displayName): the loss of every seed\(f == .gan ? " (D's and G's; they fight rather than fall)" : "")",
        content: .svg(plot.render()))
    }
  }

  func easeVerdict(labels: [String], fams: [ModelFamily]) -> String {
    let s = zip(labels, fams).compactMap { l, f in toySummary(f).map { (l, $0) } }
    guard let top = s.map(\.1.successes).max() else { return "" }
    let best = s.filter { $0.1.successes == top }, rest = s.filter { $0.1.successes != top }
    let others = rest.map { "\($0.0) \($0.1.successes)/\($0.1.runs)" }.joined(separator: ", ")
    var v =
      best.map(\.0).joined(separator: " and ")
      + " reach\(best.count == 1 ? "es" : "") ≥ \(successModes) modes on \(top)/\(best[0].1.runs) runs"
      + (best.count > 1 ? " each" : "") + (others.isEmpty ? "" : " (\(others))")
    if best.count > 1, let q = best.max(by: { $0.1.hqMean < $1.1.hqMean }) {
      v += String(
        format: "; of those, %@ has the highest high-quality share (%.0f %%)", q.0, 100 * q.1.hqMean)
    }
    return v
  }

  func speedRow(_ labels: [String]) -> ComparisonRow {
    let cells = labels.map { l in
      speeds.filter { $0.label == l }.map {
        String(
          format: "%@: %.1f images/s, %.2f ms an image, %d NFE%@ (%@)", $0.setting, $0.imagesPerSecond,
          $0.msPerImage, $0.nfe,
          $0.measured ? "" : ", estimated", $0.device)
      }.joined(separator: " · ")
    }
    let main = devices[0].spec
    let fast = speeds.filter { $0.device == main && $0.family != .diffusion }
    let diff20 = speeds.first { $0.device == main && $0.family == .diffusion && $0.nfe <= 20 }
    var verdict = ""
    if let best = speeds.filter({ $0.device == main }).max(by: { $0.imagesPerSecond < $1.imagesPerSecond }) {
      verdict = String(format: "%@ is fastest (%.0f images/s on %@)", best.label, best.imagesPerSecond, main)
      if let d = diff20 {
        if !fast.isEmpty {
          verdict +=
            "; "
            + fast.map {
              String(
                format: "%@ %.0f× diffusion's 20 steps", $0.label, $0.imagesPerSecond / d.imagesPerSecond)
            }
            .joined(separator: ", ")
        }
        if let ddpm = speeds.first(where: { $0.device == main && $0.family == .diffusion && $0.nfe > 20 }) {
          verdict += String(
            format: "; the fast sampler is %.0f× DDPM", d.imagesPerSecond / ddpm.imagesPerSecond)
        }
      }
    }
    return ComparisonRow(
      key: "sampling_speed", title: "sampling speed",
      measured:
        "images/s at batch \(Self.speedBatch) (best of rounds after a warm-up), network evaluations (NFE) and ms per image, per device",
      cells: cells, verdict: verdict)
  }

  func latentVerdict(_ labels: [String]) -> String {
    let have = labels.compactMap { l in latents[l]!.mse.map { (l, $0) } }
    let missing = labels.filter { latents[$0]!.mse == nil }
    var v =
      have.isEmpty
      ? "no model has a latent for any image yet"
      : lead("reconstruction error", have, higher: false) { String(format: "%.4f", $0) }
    if !missing.isEmpty { v += "; \(missing.joined(separator: ", ")): not measured (no inversion)" }
    return v
  }

  func knobRow(_ labels: [String]) -> ComparisonRow {
    var cells: [String] = []
    var trades: [String] = []
    for l in labels {
      guard let p = sweeps[l], let a = p.first, let z = p.last else {
        cells.append("")
        continue
      }
      cells.append(
        String(
          format: "%@ %@ → %@: precision %.3f → %.3f, recall %.3f → %.3f, KID %@ → %@", a.knob,
          SVGPlot.format(a.value),
          SVGPlot.format(z.value), a.precision, z.precision, a.recall, z.recall, kidText(a.kid),
          kidText(z.kid)))
      func change(_ what: String, _ d: Double) -> String {
        abs(d) < 0.0005
          ? "leaves \(what) unchanged"
          : String(format: "%@ %@ by %.3f", d > 0 ? "raises" : "lowers", what, abs(d))
      }
      trades.append(
        "raising \(l)'s \(a.knob) from \(SVGPlot.format(a.value)) to \(SVGPlot.format(z.value)) "
          + change("precision", z.precision - a.precision) + " and " + change("recall", z.recall - a.recall))
    }
    var plot = SVGPlot(
      title: "precision–recall of each knob", xLabel: "recall (k = 3)", yLabel: "precision (k = 3)")
    plot.xRange = 0...1
    plot.yRange = 0...1
    for l in labels {
      guard let p = sweeps[l] else { continue }
      plot.series.append(
        .init(
          name: l, x: p.map(\.recall), y: p.map(\.precision),
          labels: p.map { "\($0.knob) \(SVGPlot.format($0.value))" }))
    }
    var kidPlot = SVGPlot(
      title: "KID along each knob", xLabel: "sweep position (first → last)", yLabel: "KID")
    for l in labels {
      guard let p = sweeps[l] else { continue }
      kidPlot.series.append(
        .init(
          name: l, x: p.indices.map(Double.init), y: p.map(\.kid.mean),
          labels: p.map { "\($0.knob) \(SVGPlot.format($0.value))" }))
    }
    return ComparisonRow(
      key: "knobs", title: "knobs",
      measured:
        "GAN truncation ψ, VAE temperature τ, diffusion DDIM steps (NFE): precision, recall and KID at N = \(settings.sweepN)",
      cells: cells, verdict: trades.joined(separator: "; "),
      figures: [
        ReportFigure(
          id: "knobs-pr",
          caption: "Each knob's sweep as a precision–recall curve (points labelled with the knob)",
          content: .svg(plot.render())),
        ReportFigure(
          id: "knobs-kid", caption: "KID at each point of the sweeps", content: .svg(kidPlot.render())),
      ])
  }

  func setupLines(imageData: Bool) -> [String] {
    var s: [String] = []
    if imageData {
      s.append(
        "N = \(settings.n) samples per model, against a reference set of \(settings.n) Fashion-MNIST t10k images (class-balanced, chosen by seed \(seed)); the real floor is a second, disjoint set of \(settings.n)."
      )
      s.append("Feature space: \(featureSpace).")
      s.append(
        "Models: "
          + columns.map {
            let bundled = $0.2.contains("gpugen_GPUGenModels.resources/Default")
            return "\($0.0) = \(bundled ? "the bundled \($0.1.displayName) model" : $0.2)"
          }.joined(separator: "; ")
          + ". Default knobs: diffusion DDIM 20 steps, η 0; VAE τ 1; GAN no truncation.")
    }
    s.append(
      "Toy runs: \(toy.spec), \(settings.seeds) seed(s) per family (seeds \(seed)…\(seed &+ UInt64(settings.seeds - 1))), each family's toy defaults (the GAN's: plain NS, 5,000 steps, no batch norm — the settings before the grid25 recipe)."
    )
    s.append(
      "Devices: \(devices.map(\.description).joined(separator: "; ")). Made by gpugen compare\(quick ? " --quick" : "") in \(String(format: "%.0f", elapsed)) s."
    )
    return s
  }

  // MARK: Sections

  func sections(imageData: Bool) throws -> [ReportSection] {
    var out: [ReportSection] = []
    out.append(profileSection(imageData: imageData))
    if imageData {
      let fid = SVGPlot.Series(
        name: "FID, real vs real", x: calibration.map { Double($0.n) }, y: calibration.map(\.metrics.fid),
        labels: calibration.map { "\($0.n)" })
      var plot = SVGPlot(
        title: "FID of real against real: its bias at each N", xLabel: "N (log scale)", yLabel: "FID",
        logX: true)
      plot.series = [fid]
      out.append(
        ReportSection(
          id: "calibration", title: "Calibration: real against real",
          paragraphs: [
            "Two disjoint class-balanced sets of real Fashion-MNIST training images, measured against each other at each N. Nothing differs between them, so every figure here is what the metric reads for a perfect generator at that N.",
            "FID is biased upward at small N and falls as N grows: compare FIDs only at the same N. KID is unbiased: it should lie within two standard errors (the spread of its subset estimates) of 0 at every N.",
          ],
          table: ReportTable(
            header: [
              "N", "FID", "KID (± std)", "KID within 2 SE of 0", "precision", "recall", "density", "coverage",
            ],
            rows: calibration.map {
              [
                "\($0.n)", String(format: "%.3f", $0.metrics.fid), kidText($0.metrics.kid),
                $0.kidConsistentWithZero ? "yes" : "no",
                Self.f3($0.metrics.prdc.precision), Self.f3($0.metrics.prdc.recall),
                Self.f3($0.metrics.prdc.density),
                Self.f3($0.metrics.prdc.coverage),
              ]
            }),
          figures: [
            ReportFigure(
              id: "fid-bias", caption: "FID's bias curve: real against real at each N",
              content: .svg(plot.render()))
          ]))
      out.append(
        ReportSection(
          id: "speed", title: "Sampling speed",
          table: ReportTable(
            header: ["device", "model", "setting", "NFE", "images/s", "ms an image", "measured"],
            rows: speeds.map {
              [
                $0.device, $0.label, $0.setting, "\($0.nfe)", String(format: "%.2f", $0.imagesPerSecond),
                String(format: "%.2f", $0.msPerImage),
                $0.measured ? "measured" : "estimated from the 20-step run",
              ]
            })))
      out.append(
        ReportSection(
          id: "sweeps", title: "Knob sweeps",
          table: ReportTable(
            header: ["model", "knob", "value", "precision", "recall", "KID (± std)", "FID"],
            rows: columns.flatMap { c in
              (sweeps[c.0] ?? []).map {
                [
                  c.0, $0.knob, SVGPlot.format($0.value), Self.f3($0.precision), Self.f3($0.recall),
                  kidText($0.kid), String(format: "%.2f", $0.fid),
                ]
              }
            })))
    }
    out.append(
      ReportSection(
        id: "toy-runs", title: "Toy runs (\(toy.spec))",
        paragraphs: [
          "Every toy run, scored on its samples: modes covered by two rules (at least one sample within 3σ; at least 10 % of the mode's fair share within 3σ), the share of high-quality samples (within 3σ of a mode) and the KL of the mode histogram from uniform."
        ],
        table: ReportTable(
          header: [
            "family", "seed", "steps", "modes (≥ 1 within 3σ)", "modes (≥ 10 % share)", "high quality",
            "KL from uniform", "seconds",
          ],
          rows: toyRuns.map { runSeed, r in
            [
              r.family.displayName, "\(runSeed)", "\(r.losses.count)",
              "\(r.scores.modesCoveredHighQuality)/\(r.scores.modes)",
              "\(r.scores.modesCoveredShare)/\(r.scores.modes)",
              String(format: "%.1f %%", 100 * r.scores.highQualityFraction),
              String(format: "%.4f", r.scores.klFromUniform), String(format: "%.1f", r.seconds),
            ]
          })))
    out.append(
      ReportSection(
        id: "caveats", title: "How to read this report",
        paragraphs: [
          "Every number was measured by this run on the devices named above; the metrics are deterministic given the seed on the CPU backend, the timings are not.",
          "The feature space is a small classifier trained on Fashion-MNIST itself, not Inception: its FID and KID are not comparable with published FIDs, and a generator that matches the classifier's features can score well without matching everything a person sees.",
          "FID is biased at small N (see the calibration): compare FIDs only at one N. KID's spread at these N is wide in this 128-d feature space; precision, recall, density and coverage carry the fidelity/diversity split more clearly.",
          "The bundled models are small and trained for minutes to hours on a CPU; a verdict here is about these models on this data, not about the families in general. The toy runs use each family's toy defaults (the GAN's: plain NS for 5,000 steps, not the longer grid25 recipe of gpugen train gan); other settings change the ease-of-training row.",
        ]))
    return out
  }

  /// The seed's claims, checked against the numbers.
  func profileChecks(imageData: Bool) -> [(claim: String, measured: String, holds: Bool)] {
    var out: [(String, String, Bool)] = []
    func first(_ f: ModelFamily) -> (String, GeneratorMeasurement)? {
      columns.first { $0.1 == f }.flatMap { c in measurements[c.0].map { (c.0, $0) } }
    }
    if imageData {
      if let (l, g) = first(.gan) {
        let s = g.evaluation.samples.prdc
        out.append(
          (
            "GAN precision > GAN recall (sharp, low diversity)",
            "\(l): precision \(Self.f3(s.precision)), recall \(Self.f3(s.recall))", s.precision > s.recall
          ))
      }
      if let (l, v) = first(.vae) {
        let s = v.evaluation.samples.prdc
        out.append(
          (
            "VAE recall ≥ VAE precision (blurry, diverse)",
            "\(l): recall \(Self.f3(s.recall)), precision \(Self.f3(s.precision))", s.recall >= s.precision
          ))
      }
      if let (l, d) = first(.diffusion) {
        let all = measurements.values.map(\.evaluation.samples.prdc)
        let bp = all.map(\.precision).max()!, br = all.map(\.recall).max()!
        let s = d.evaluation.samples.prdc
        out.append(
          (
            "diffusion within 0.05 of the best family on precision and on recall (sharp and diverse)",
            "\(l): precision \(Self.f3(s.precision)) (best \(Self.f3(bp))), recall \(Self.f3(s.recall)) (best \(Self.f3(br)))",
            bp - s.precision <= 0.05 && br - s.recall <= 0.05
          ))
      }
      let main = devices[0].spec
      if let d20 = speeds.first(where: { $0.device == main && $0.family == .diffusion && $0.nfe <= 20 }) {
        for f in [ModelFamily.gan, .vae] {
          if let s = speeds.first(where: { $0.device == main && $0.family == f }) {
            let r = s.imagesPerSecond / d20.imagesPerSecond
            out.append(
              (
                "\(f.displayName) ≥ 50× diffusion's 20-step images/s (one network evaluation against many)",
                String(
                  format: "%@ %.0f images/s, %@ %.1f images/s: %.0f×", s.label, s.imagesPerSecond, d20.label,
                  d20.imagesPerSecond, r), r >= 50
              ))
          }
        }
      }
    }
    for f in [ModelFamily.diffusion, .vae] {
      if let s = toySummary(f) {
        out.append(
          (
            "\(toy.spec): \(f.displayName) covers every mode on every seed (easy to train, diverse), by the "
              + "share rule (≥ 10 % of the fair share within 3σ)",
            String(
              format: "%d runs: modes by the share rule %@; by the 3σ rule (≥ 1 sample) %@ of %d", s.runs,
              runs(f).map { "\($0.1.scores.modesCoveredShare)" }.joined(separator: ", "),
              runs(f).map { "\($0.1.scores.modesCoveredHighQuality)" }.joined(separator: ", "),
              toy.modes.count),
            s.allModesEveryRun
          ))
      }
    }
    if let s = toySummary(.gan) {
      out.append(
        (
          "\(toy.spec): plain non-saturating GAN misses modes on at least some seeds (mode collapse)",
          String(
            format: "%d runs: modes by the share rule %@ of %d", s.runs,
            runs(.gan).map { "\($0.1.scores.modesCoveredShare)" }.joined(separator: ", "), toy.modes.count),
          s.missedSomewhere
        ))
    }
    return out
  }

  func profileSection(imageData: Bool) -> ReportSection {
    let checks = profileChecks(imageData: imageData)
    let held = checks.filter(\.holds).count
    return ReportSection(
      id: "profile", title: "The seed's profile, checked",
      paragraphs: [
        "\(held) of the \(checks.count) claims hold on these models and this data. A claim that does not hold is shown, not hidden."
      ],
      table: ReportTable(
        header: ["claim", "measured", "holds"],
        rows: checks.map { [$0.claim, $0.measured, $0.holds ? "yes" : "no"] }))
  }

  // MARK: JSON

  func json(imageData: Bool) -> [String: Any] {
    var families: [String: Any] = [:]
    for (label, family, model) in columns {
      var o: [String: Any] = [
        "family": family.rawValue, "model": model, "device": devices[0].spec, "feature_space": featureSpace,
      ]
      if let m = measurements[label] {
        let e = m.evaluation
        for (k, v) in e.samples.plainFigures { o[k] = v }
        o["n"] = e.n
        o["kid_subset_size"] = e.samples.kid.subsetSize
        o["knobs"] = m.knobs
        o["nfe"] = m.evaluationsPerImage
        if let a = e.accuracy { o["accuracy"] = a.overall }
        var floor: [String: Any] = e.realFloor.plainFigures
        floor["n"] = e.n
        o["real_floor"] = floor
      }
      let sp = speeds.filter { $0.label == label }
      if let first = sp.first(where: { $0.device == devices[0].spec }) {
        o["images_per_s"] = first.imagesPerSecond
        o["ms_per_image"] = first.msPerImage
        o["speed_nfe"] = first.nfe
        o["speed_batch"] = Self.speedBatch
      }
      if !sp.isEmpty {
        o["speed"] = sp.map {
          [
            "device": $0.device, "setting": $0.setting, "nfe": $0.nfe, "images_per_s": $0.imagesPerSecond,
            "ms_per_image": $0.msPerImage, "measured": $0.measured,
          ] as [String: Any]
        }
      }
      if let l = latents[label] {
        o["reconstruction_mse"] = l.mse ?? NSNull()
        o["reconstruction_method"] = l.how
        o["reconstruction_n"] = Self.latentCount
      }
      if let p = sweeps[label] {
        o["sweep"] = p.map {
          [
            "knob": $0.knob, "value": $0.value, "precision": $0.precision, "recall": $0.recall,
            "kid": $0.kid.mean, "kid_std": $0.kid.std, "fid": $0.fid, "n": settings.sweepN,
          ] as [String: Any]
        }
      }
      if let s = toySummary(family) {
        o["toy"] =
          [
            "data": toy.spec, "runs": s.runs, "successes": s.successes, "success_modes": successModes,
            "modes_covered_mean": s.modesMean, "modes_covered_std": s.modesStd, "high_quality_mean": s.hqMean,
            "high_quality_std": s.hqStd, "kl_mean": s.klMean, "seconds_mean": s.secondsMean,
          ] as [String: Any]
      }
      families[label] = o
    }
    return [
      "data": imageData ? "fashion-mnist" : toy.spec, "n": imageData ? settings.n : NSNull(), "seed": seed,
      "quick": quick,
      "devices": devices.map(\.spec), "feature_space": featureSpace, "seconds": elapsed,
      "columns": columns.map(\.0), "families": families,
      "calibration": calibration.map {
        var o: [String: Any] = $0.metrics.plainFigures
        o["n"] = $0.n
        o["kid_within_2_se_of_0"] = $0.kidConsistentWithZero
        return o
      },
      "toy_runs": toyRuns.map { runSeed, r in
        [
          "family": r.family.rawValue, "seed": runSeed, "steps": r.losses.count, "modes": r.scores.modes,
          "modes_covered_3sigma": r.scores.modesCoveredHighQuality,
          "modes_covered_share": r.scores.modesCoveredShare,
          "high_quality": r.scores.highQualityFraction, "kl_from_uniform": r.scores.klFromUniform,
          "seconds": r.seconds,
        ] as [String: Any]
      },
      "profile": profileChecks(imageData: imageData).map {
        ["claim": $0.claim, "measured": $0.measured, "holds": $0.holds] as [String: Any]
      },
    ]
  }
}
