// `gpugen train diffusion`: trains a UNet2DModel denoiser, resumably, with logs, plots and sample grids.
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels
import GPUGenNN

struct Train: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Train a generative model.", subcommands: [TrainDiffusion.self, TrainClassifier.self])
}

/// Set by SIGINT/SIGTERM: finish the current step, write a checkpoint, exit.
nonisolated(unsafe) var stopRequested: sig_atomic_t = 0

struct TrainDiffusion: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "diffusion",
    abstract: "Train a diffusion UNet (L2 loss on ε or v) on Fashion-MNIST, IDX files or PNG folders.",
    discussion: """
      Writes OUT/checkpoint (a diffusers pipeline folder with the EMA weights, loadable by \
      `gpugen sample --model OUT/checkpoint` and by diffusers, plus training_state/ for --resume) every \
      --checkpoint-every steps and at the end, OUT/log.csv (one row per step), OUT/loss.png and a sample \
      grid OUT/samples/step-N.png every --sample-every steps. Ctrl-C writes a checkpoint before exiting. \
      A NaN/Inf loss or gradient stops at once (exit status 3); the last checkpoint stays intact. \
      The run is reproducible: data order, timesteps and noise are Philox draws keyed by --seed \
      (docs/TRAINING.md), so on the CPU a resumed run is bitwise identical to one run straight through.
      """)

  @Option(help: "Training images: fashion-mnist, an IDX image file (labels beside it), or a folder of PNGs.")
  var data = "fashion-mnist"

  @Option(help: "A diffusers UNet2DModel config.json. Default: the bundled default model's architecture.")
  var config: String?

  @Option(help: "Optimizer steps in total (default 20000; on --resume: a new total).")
  var steps: Int?

  @Option(help: "Batch size.")
  var batchSize = 64

  @Option(help: "Peak learning rate (AdamW).")
  var lr = 1e-4

  @Option(help: "Linear learning-rate warmup steps.")
  var warmup = 500

  @Option(help: "Learning rate after warmup: constant or cosine.")
  var lrSchedule = "constant"

  @Option(help: "What the UNet predicts: epsilon or v.")
  var prediction = "epsilon"

  @Flag(help: "Condition on the data's class labels (sets num_class_embeds when the config has none).")
  var classConditional = false

  @Option(help: "EMA decay cap.")
  var emaDecay = 0.9999

  @Flag(help: "Use the EMA power warmup 1 − (1 + step)^−3/4 instead of (1 + step)/(10 + step).")
  var emaWarmup = false

  @Option(help: "Clip gradients to this global L2 norm (0: no clipping).")
  var clipGrad = 1.0

  @Option(help: "AdamW decoupled weight decay.")
  var weightDecay = 0.0

  @Option(help: "Write a checkpoint every K steps.")
  var checkpointEvery = 500

  @Option(help: "Write a sample grid every K steps (0: never).")
  var sampleEvery = 500

  @Option(help: "Output folder.")
  var out = "gpugen-train"

  @Flag(help: "Continue the run in --out from its latest checkpoint.")
  var resume = false

  @Option(help: "Seed of every random draw (initial weights, data order, timesteps, noise).")
  var seed: UInt64 = 0

  @OptionGroup var deviceOptions: DeviceOptions

  func run() throws {
    try reportingUserErrors(weightsLabel: "checkpoint weights") { try train() }
  }

  func options() throws -> DiffusionTrainingOptions {
    var o = DiffusionTrainingOptions()
    o.data = data
    o.steps = steps ?? o.steps
    o.batchSize = batchSize
    o.lr = lr
    o.warmup = warmup
    o.lrSchedule = lrSchedule
    o.prediction = prediction == "v" ? "v_prediction" : prediction
    o.emaDecay = emaDecay
    o.emaWarmup = emaWarmup
    o.clipGrad = clipGrad
    o.weightDecay = weightDecay
    o.checkpointEvery = checkpointEvery
    o.sampleEvery = sampleEvery
    o.seed = seed
    try o.validate()
    return o
  }

  func train() throws {
    // Fixed mmap threshold: glibc otherwise raises it after the first large free (a checkpoint's host
    // copies), and later large blocks stay in the heap, so the resident size would step up once.
    HostMemory.fixMmapThreshold(bytes: 1 << 20)
    let device = try deviceOptions.resolve()
    let outDir = URL(fileURLWithPath: out)
    let fm = FileManager.default
    let hasRun = (try? DiffusionTrainer.latestCheckpoint(in: outDir)) != nil
    let trainer: DiffusionTrainer
    let log: TrainingLog
    if resume {
      guard hasRun else { throw TrainingError.checkpoint("--resume: no checkpoint in \(out)") }
      let saved = try DiffusionTrainer.savedOptions(in: outDir)
      let cfg = try DiffusionTrainer.savedConfig(in: outDir)
      let images = try TrainingImages.load(
        source: saved.data, sampleSize: cfg.sampleSize, channels: cfg.inChannels)
      trainer = try DiffusionTrainer.resume(from: outDir, data: images, device: device, steps: steps)
      log = try TrainingLog(url: outDir.appendingPathComponent("log.csv"), keepingSteps: trainer.step)
      FileHandle.standardError.write(
        Data(
          "gpugen: resuming \(out) at step \(trainer.step) of \(trainer.options.steps) on \(device)\n".utf8))
    } else {
      if hasRun {
        throw TrainingError.invalidOption(
          "\(out) already holds a training run; pass --resume to continue it, or choose another --out")
      }
      let o = try options()
      var cfg = try loadConfig()
      let images = try TrainingImages.load(
        source: o.data, sampleSize: cfg.sampleSize, channels: cfg.inChannels)
      if classConditional && cfg.numClassEmbeds == nil {
        guard images.labels != nil else {
          throw TrainingError.invalidOption("--class-conditional: the data \(o.data) has no class labels")
        }
        cfg.numClassEmbeds = images.classCount
      }
      try fm.createDirectory(at: outDir, withIntermediateDirectories: true)
      trainer = try DiffusionTrainer(config: cfg, data: images, options: o, device: device)
      log = try TrainingLog(url: outDir.appendingPathComponent("log.csv"), keepingSteps: 0)
      let params = trainer.parameters.reduce(0) { $0 + $1.count }
      FileHandle.standardError.write(
        Data(
          "gpugen: training a \(params)-parameter UNet on \(images.count) images (\(o.data)) for \(o.steps) steps, batch \(o.batchSize), on \(device)\n"
            .utf8))
      try trainer.writeCheckpoint(to: outDir)
    }
    let o = trainer.options
    signal(SIGINT) { _ in stopRequested = 1 }
    signal(SIGTERM) { _ in stopRequested = 1 }
    let bar = ProgressBar(total: max(o.steps - trainer.step, 1), label: "training", unit: "it")
    var recent: [Float] = []
    let start = Date()
    let first = trainer.step
    while trainer.step < o.steps {
      let t0 = Date()
      let s = try trainer.trainStep()
      try log.append(s, seconds: Date().timeIntervalSince(t0))
      recent.append(s.loss)
      if recent.count > 50 { recent.removeFirst() }
      let avg = recent.reduce(0, +) / Float(recent.count)
      bar.advance(1, note: String(format: "loss %.4f (avg %.4f)", s.loss, avg))
      let last = trainer.step == o.steps
      if trainer.step % o.checkpointEvery == 0 || last || stopRequested != 0 {
        try trainer.writeCheckpoint(to: outDir)
        try log.plot(to: outDir.appendingPathComponent("loss.png"))
      }
      if o.sampleEvery > 0 && (trainer.step % o.sampleEvery == 0 || last) {
        try writeSamples(trainer, to: outDir)
      }
      if stopRequested != 0 {
        FileHandle.standardError.write(
          Data("\ngpugen: stopped at step \(trainer.step); checkpoint written, continue with --resume\n".utf8)
        )
        throw ExitCode(130)
      }
    }
    let done = trainer.step - first
    let secs = Date().timeIntervalSince(start)
    print(
      String(
        format: "trained %d steps in %.1f s (%.2f it/s) on %@; checkpoint: %@", done, secs,
        secs > 0 ? Double(done) / secs : 0, device.spec,
        outDir.appendingPathComponent(DiffusionTrainer.latestLink).path))
  }

  func loadConfig() throws -> UNet2DConfig {
    if let config {
      guard let d = FileManager.default.contents(atPath: config) else {
        throw ModelError.missing("UNet config \(config)")
      }
      return try UNet2DConfig(json: d, source: config)
    }
    var c = try UNet2DConfig(
      json: try Data(contentsOf: try DefaultModel.url().appendingPathComponent("unet/config.json")))
    c.numClassEmbeds = nil
    return c
  }

  func writeSamples(_ trainer: DiffusionTrainer, to outDir: URL) throws {
    let unet = try trainer.emaUNet()
    let plan = try trainer.samplingPlan(.ddim, steps: 20)
    let classes = unet.config.numClassEmbeds
    let n = classes.map { $0 * 2 } ?? 16
    let sampler = DiffusionSampler(unet: unet, plan: plan)
    let images = try Tape.noGrad {
      try sampler.sample(
        SampleRequest(count: n, batchSize: n, seed: 0, classLabels: classes.map { Array(0..<$0) }))
    }
    let dir = outDir.appendingPathComponent("samples")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    try Image8.grid(images, shape: [n] + sampler.imageShape, columns: classes ?? 8).zoomed(2).writePNG(
      to: dir.appendingPathComponent(String(format: "step-%08d.png", trainer.step)))
  }
}

/// OUT/log.csv: one row per optimizer step, flushed as it goes; on resume, rows after the checkpoint
/// are dropped (they are about to be recomputed).
final class TrainingLog {
  static let header = "step,loss,lr,grad_norm,ema_decay,seconds,rss_mb,peak_rss_mb"
  let url: URL
  let handle: FileHandle
  var steps: [Double] = []
  var losses: [Double] = []

  init(url: URL, keepingSteps keep: Int) throws {
    self.url = url
    var lines = [TrainingLog.header]
    if keep > 0, let text = try? String(contentsOf: url, encoding: .utf8) {
      for line in text.split(separator: "\n").dropFirst() {
        let f = line.split(separator: ",")
        guard f.count >= 2, let s = Int(f[0]), s <= keep, let l = Double(f[1]) else { continue }
        lines.append(String(line))
        steps.append(Double(s))
        losses.append(l)
      }
    }
    try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: url, options: .atomic)
    handle = try FileHandle(forWritingTo: url)
    try handle.seekToEnd()
  }

  func append(_ s: TrainingStepStats, seconds: Double) throws {
    let memory = residentMemory()
    let row = String(
      format: "%d,%.9g,%.9g,%.9g,%.9g,%.4f,%.1f,%.1f\n", s.step, s.loss, s.lr, s.gradNorm, s.emaDecay,
      seconds,
      memory.rss, memory.peak)
    try handle.write(contentsOf: Data(row.utf8))
    steps.append(Double(s.step))
    losses.append(Double(s.loss))
  }

  func plot(to url: URL) throws {
    var plot = LinePlot(title: "training loss (MSE)", xLabel: "step", yLabel: "loss", logY: true)
    plot.add("loss", x: steps, y: losses, color: RGB8(170, 190, 230))
    if losses.count >= 10 {
      plot.add(
        "moving average", x: steps, y: movingAverage(losses, window: max(10, losses.count / 50)),
        color: RGB8(20, 60, 170))
    }
    try plot.render(width: 720, height: 400).writePNG(to: url)
  }
}

/// Current and peak resident set size of this process in MB (VmRSS and VmHWM of /proc/self/status).
func residentMemory() -> (rss: Double, peak: Double) {
  guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else {
    return (.nan, peakResidentMegabytes())
  }
  func field(_ name: String) -> Double {
    guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }),
      let kb = Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    else { return .nan }
    return kb / 1024
  }
  return (field("VmRSS"), field("VmHWM"))
}
