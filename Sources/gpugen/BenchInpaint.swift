// `gpugen bench inpaint`: RePaint against the R = 1 baseline (and bilinear interpolation) on test images, and
// the cost of R = 1 against plain sampling.
import ArgumentParser
import Foundation
import GPUGenModels

struct BenchInpaint: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "inpaint",
    abstract:
      "Inpainting quality per mask preset (RePaint, R = 1, bilinear) and R = 1's cost against sampling.",
    discussion: """
      Takes the first --n Fashion-MNIST t10k test images as the truth and, for each preset, completes them with
      RePaint (--steps, --jump-length, --jump-n-sample) and with R = 1 at the same --steps, conditioned on each
      image's true class (class-conditional models); lines and sr2 also get bilinear interpolation. Prints the
      MSE over the filled pixels ([0, 1] scale) and the KID of the completed images in the bundled classifier's
      features, against class-balanced real sets from the training split. Then times plain DDIM sampling and
      R = 1 inpainting (--speed-steps, --speed-batch images) back to back, --speed-rounds times each, and prints
      the ratio of the best times.
      """)

  @Option(help: "Diffusion model folder or bundled name. Default: the bundled model.") var model: String?
  @OptionGroup var deviceOptions: DeviceOptions
  @Option(help: "Test images (a multiple of 10; 0: only the speed comparison).") var n = 200
  @Option(help: "RePaint steps down the schedule (R = 1 uses the same).") var steps = 25
  @Option(help: "RePaint's jump length J.") var jumpLength = 5
  @Option(help: "RePaint's jump count R.") var jumpNSample = 5
  @Option(help: "η of the model's step in the filled region.") var eta: Double = 0
  @Option(help: "Comma-separated presets (default: all).") var presets: String?
  @Option(name: .customLong("batch-size"), help: "Images per model batch.") var batchSize = 64
  @Option(help: "Seed of the noise and of the real sets.") var seed: UInt64 = 0
  @Option(help: "Steps of the speed comparison (0: skip it).") var speedSteps = 20
  @Option(help: "Images (one batch) of the speed comparison.") var speedBatch = 64
  @Option(help: "Timed runs of each side of the speed comparison.") var speedRounds = 3

  func run() throws {
    try reportingUserErrors { try bench() }
  }

  func bench() throws {
    let chosen = try
      (presets?.split(separator: ",").map(String.init) ?? Inpainting.MaskPreset.allCases.map(\.rawValue))
      .map { name -> Inpainting.MaskPreset in
        guard let p = Inpainting.MaskPreset(rawValue: name) else {
          throw ModelError.input("unknown preset \(name) (half, center, lines, sr2)")
        }
        return p
      }
    guard n >= 0, n % 10 == 0 else { throw ModelError.input("--n must be a multiple of 10 (0: speed only)") }
    let device = try deviceOptions.resolve()
    guard case .diffusion(let folder) = try ModelFolder.classify(try ModelFolder.locate(model)) else {
      throw ModelError.input("bench inpaint needs a diffusion model")
    }
    let unet = try UNet2DModelLoader.load(from: folder.unet, device: device)
    let shape = unet.imageShape
    let test = try VAEInput.dataset("fashion-mnist:test:\(max(n, 10))", channels: shape[0], size: shape[1])
    let real = try TrainingImages.load(source: "fashion-mnist", sampleSize: shape[1], channels: shape[0])
    let classifier = try ImageClassifier.bundled(device: device)
    let labels = unet.config.numClassEmbeds == nil ? nil : test.labels
    let schedule = try NoiseSchedule(config: try Inpainting.config(schedulerConfig: folder.schedulerConfig))
    let repaint = try Inpainting.plan(
      schedule: schedule, steps: steps, jumpLength: jumpLength, jumpNSample: jumpNSample, eta: eta)
    let baseline = try Inpainting.plan(
      schedule: schedule, steps: steps, jumpLength: 1, jumpNSample: 1, eta: eta)
    print(
      "\(n) t10k images on \(device); RePaint: \(steps) steps, J = \(jumpLength), R = \(jumpNSample), η = \(eta) (\(repaint.modelEvaluations) evaluations); R = 1: \(steps) steps (\(baseline.modelEvaluations))"
    )
    print("preset  method     evals   MSE(filled)   KID (± std)")
    let batches = (n + batchSize - 1) / batchSize
    let measured = n == 0 ? [] : chosen
    var floor: KIDEstimate?
    for preset in measured {
      let keep = preset.keepMask(height: shape[1], width: shape[2])
      var rows: [(String, Int, [Float])] = []
      for (name, plan) in [("RePaint", repaint), ("R = 1", baseline)] {
        let bar = ProgressBar(total: plan.actions.count * batches, label: "\(preset.rawValue) \(name)")
        let out = try Inpainting.inpaint(
          unet, plan: plan,
          request: .init(
            images: test.images, count: n, keep: keep, batchSize: batchSize, seed: seed, classLabels: labels),
          progress: { bar.advance($0) })
        rows.append((name, plan.modelEvaluations, out))
      }
      if preset == .lines || preset == .sr2 {
        rows.append(
          ("bilinear", 0, try Inpainting.bilinear(test.images, count: n, shape: shape, preset: preset)))
      }
      for (name, evals, out) in rows {
        let s = try Inpainting.score(
          out, truth: test.images, keep: keep, count: n, shape: shape, real: real, classifier: classifier,
          seed: seed)
        print(
          String(
            format: "%-7@ %-9@ %6d %12.5f %9.2f (± %.2f)", preset.rawValue, name, evals, s.filledMSE,
            s.kid.mean, s.kid.std))
        floor = s.floorKID
        fflush(stdout)
      }
    }
    if let floor {
      print(String(format: "real floor (a second real set): KID %.2f (± %.2f)", floor.mean, floor.std))
    }
    guard speedSteps > 0 else { return }
    // Speed: plain DDIM and R = 1 at the same steps, one batch, alternating.
    let plain = try SamplerPlanner.plan(.ddim, schedulerConfig: folder.schedulerConfig, steps: speedSteps)
    let r1 = try Inpainting.plan(schedule: schedule, steps: speedSteps, jumpLength: 1, jumpNSample: 1)
    let m = speedBatch
    let images = (0..<(m * shape.reduce(1, *))).map { test.images[$0 % test.images.count] }
    let classLabels = unet.config.realClassCount.map { Array(0..<$0) }
    let keep = Inpainting.MaskPreset.center.keepMask(height: shape[1], width: shape[2])
    // Wall time is at the mercy of other processes on a shared machine; the process's CPU time much less so.
    func cpuSeconds() -> Double {
      var ts = timespec()
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
      return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
    func timed(_ body: () throws -> Void) rethrows -> (wall: Double, cpu: Double) {
      let (w0, c0) = (Date(), cpuSeconds())
      try body()
      return (Date().timeIntervalSince(w0), cpuSeconds() - c0)
    }
    var wall = (Double.infinity, Double.infinity), cpu = (Double.infinity, Double.infinity)
    for round in 0..<speedRounds {
      let a = try timed {
        _ = try DiffusionSampler(unet: unet, plan: plain).sample(
          SampleRequest(count: m, batchSize: m, seed: seed, classLabels: classLabels))
      }
      let b = try timed {
        _ = try Inpainting.inpaint(
          unet, plan: r1,
          request: .init(
            images: images, count: m, keep: keep, batchSize: m, seed: seed, classLabels: classLabels))
      }
      wall = (min(wall.0, a.wall), min(wall.1, b.wall))
      cpu = (min(cpu.0, a.cpu), min(cpu.1, b.cpu))
      print(
        String(
          format: "speed round %d: plain DDIM %.3f s (CPU %.3f s), R = 1 inpainting %.3f s (CPU %.3f s)",
          round + 1,
          a.wall, a.cpu, b.wall, b.cpu))
      fflush(stdout)
    }
    print(
      String(
        format:
          "speed, batch %d, %d steps, best of %d: plain %.3f s, R = 1 %.3f s: %.3f× (CPU time: %.3f s, %.3f s: %.3f×)",
        m, speedSteps, speedRounds, wall.0, wall.1, wall.1 / wall.0, cpu.0, cpu.1, cpu.1 / cpu.0))
  }
}
