// `gpugen train diffusion`: trains a UNet2DModel denoiser, resumably, with logs, plots and sample grids.
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels
import GPUGenNN

struct Train: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Train a generative model.",
    subcommands: [TrainDiffusion.self, TrainVAE.self, TrainGAN.self, TrainClassifier.self])
}

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

      Toy 2-D data (--data toy:ring8 or toy:grid25) trains an MLP denoiser instead (ToyDenoiser: the sinusoidal \
      timestep embedding concatenated to the input of each of 3 hidden layers of 256, SiLU; --config takes its \
      config.json) on the same L2 loss with the toy defaults (8000 steps, batch 512, lr 3e-3 cosine, warmup \
      100, EMA 0.999), in a couple of minutes on two CPU cores; OUT/checkpoint is a toy diffusion folder \
      (config.json, weights, scheduler_config.json) and OUT/samples/ holds scatter plots with the toy scores.
      """)

  @OptionGroup var training: TrainingOptionGroup

  @Option(
    help:
      "A diffusers UNet2DModel config.json (toy data: a ToyDenoiser config.json). Default: the bundled default model's architecture."
  )
  var config: String?

  @Option(help: "What the UNet predicts.")
  var prediction: PredictionOption = .epsilon

  @Flag(help: "Condition on the data's class labels (sets num_class_embeds when the config has none).")
  var classConditional = false

  @Option(
    help: ArgumentHelp(
      "Classifier-free guidance training: replace each sample's label by the null label with probability p.",
      discussion:
        "The model gets num_class_embeds = classes + 1, the last index the null label (diffusers' convention), so that `gpugen sample --guidance-scale` works. Implies --class-conditional.",
      valueName: "p"))
  var classDropout: Double?

  @Option(
    help: ArgumentHelp(
      "Start from a trained model's weights (a pipeline or UNet folder; `default` for the bundled model).",
      discussion:
        "Its config and scheduler are the run's (--config is then an error); optimizer, EMA and step start afresh. With --class-dropout on a model without a null label the class embedding gains a row, initialised N(0, 1) as nn.Embedding (Philox, --seed).",
      valueName: "DIR"))
  var initFrom: String?

  @Flag(help: "Use the EMA power warmup 1 − (1 + step)^−3/4 instead of (1 + step)/(10 + step).")
  var emaWarmup = false

  @Option(help: "AdamW decoupled weight decay.")
  var weightDecay = 0.0

  @OptionGroup var deviceOptions: DeviceOptions

  @OptionGroup(title: "Data-parallel training (under mpirun)") var distributed: DistributedOptions

  func run() throws {
    try reportingUserErrors(weightsLabel: "checkpoint weights") { try train() }
  }

  func options() throws -> DiffusionTrainingOptions {
    var o = DiffusionTrainingOptions()
    training.apply(to: &o)
    o.prediction = prediction.diffusersName
    o.emaWarmup = emaWarmup
    o.weightDecay = weightDecay
    o.classDropout = classDropout
    try o.validate()
    return o
  }

  func train() throws {
    // Fixed mmap threshold: glibc otherwise raises it after the first large free (a checkpoint's host
    // copies), and later large blocks stay in the heap, so the resident size would step up once.
    HostMemory.fixMmapThreshold(bytes: 1 << 20)
    if try isToy() { return try trainToy() }
    let job = try TrainingJob(training: training, distributed: distributed, deviceOptions: deviceOptions)
    let trainer: DiffusionTrainer
    if training.resume {
      if classDropout != nil || initFrom != nil {
        throw TrainingError.invalidOption(
          "--resume continues the saved run: its --class-dropout and weights are kept; drop --class-dropout and --init-from"
        )
      }
      let saved = try DiffusionTrainer.savedOptions(in: job.outDir)
      try training.refuseChangedOptions(saved: saved)
      let cfg = try DiffusionTrainer.savedConfig(in: job.outDir)
      var given = try config.map { _ in try loadConfig() }
      if given?.numClassEmbeds == nil { given?.numClassEmbeds = cfg.numClassEmbeds }
      try refuseOtherConfig(given, saved: cfg, config: config, out: training.out)
      try job.checkBatch(saved.batchSize)
      let images = try TrainingImages.load(
        source: saved.data, sampleSize: cfg.sampleSize, channels: cfg.inChannels)
      trainer = try DiffusionTrainer.resume(
        from: job.outDir, data: images, device: job.device, changes: training.resumeChanges)
      if job.isRoot { training.announceResume(step: trainer.step, of: trainer.options.steps, on: job.device) }
    } else {
      let o = try options()
      try job.checkBatch(o.batchSize)
      let start = try initFrom.map { try loadStart($0, prediction: o.prediction) }
      var cfg = try start?.config ?? loadConfig()
      let images = try TrainingImages.load(
        source: o.data, sampleSize: cfg.sampleSize, channels: cfg.inChannels)
      let conditional = classConditional || classDropout != nil
      if conditional && (cfg.numClassEmbeds == nil || (classDropout != nil && !cfg.hasNullClass)) {
        guard images.labels != nil else {
          throw TrainingError.invalidOption(
            "\(classDropout != nil ? "--class-dropout" : "--class-conditional"): the data \(o.data) has no class labels"
          )
        }
        // diffusers' convention: num_class_embeds = classes + 1 with the null label last. A config that
        // embeds exactly the data's classes gains the null row; one with a row more already has it.
        let dropout = classDropout != nil
        if let k = cfg.numClassEmbeds, k != images.classCount, !(dropout && k == images.classCount + 1) {
          throw TrainingError.invalidOption(
            "--class-dropout: the model embeds \(k) classes but the data has \(images.classCount) "
              + "(expected \(images.classCount), or \(images.classCount + 1) with the null label)")
        }
        cfg.numClassEmbeds = images.classCount + (dropout ? 1 : 0)
        cfg.hasNullClass = dropout
      }
      if let start {
        trainer = try DiffusionTrainer(
          config: cfg, schedulerJSON: start.scheduler, startingFrom: start.weights, data: images, options: o,
          device: job.device)
      } else {
        trainer = try DiffusionTrainer(config: cfg, data: images, options: o, device: job.device)
      }
      try job.createOutput()
      let params = trainer.parameters.reduce(0) { $0 + $1.count }
      job.announce(
        "gpugen: training a \(params)-parameter UNet on \(images.count) images (\(o.data)) for \(o.steps) steps, batch \(o.batchSize), on \(job.device)\(job.processesNote)"
      )
      if job.isRoot { try trainer.writeCheckpoint(to: job.outDir) }
    }
    trainer.parallel = job.parallel
    try job.run(
      DiffusionRun(trainer),
      agreeing: [
        ("the training options", "\(trainer.options)"), ("the model config", "\(trainer.config)"),
        ("the data", trainer.dataFingerprint),
      ])
  }

  /// `--init-from DIR`: the model's config, scheduler config (the default one for a bare UNet) and weights.
  func loadStart(_ path: String, prediction: String) throws -> (
    config: UNet2DConfig, scheduler: [String: Any], weights: [String: TensorData]
  ) {
    if config != nil {
      throw TrainingError.invalidOption("--init-from takes the model's config: drop --config")
    }
    let url = path == "default" ? try DefaultModel.url() : URL(fileURLWithPath: path)
    let folder = try DiffusionModelFolder.resolve(url)
    let cfgURL = folder.unet.appendingPathComponent("config.json")
    guard let d = FileManager.default.contents(atPath: cfgURL.path) else {
      throw ModelError.missing(cfgURL.path)
    }
    let cfg = try UNet2DConfig(json: d, source: cfgURL.path)
    let weightsURL = folder.unet.appendingPathComponent("diffusion_pytorch_model.safetensors")
    let weights: [String: TensorData]
    do { weights = try SafeTensors.read(contentsOf: weightsURL).tensors } catch {
      throw ModelError.malformed(weightsURL.path, "\(error)")
    }
    var scheduler = DiffusionTrainer.defaultSchedulerJSON(prediction: prediction)
    if let s = folder.schedulerConfig {
      guard let sd = FileManager.default.contents(atPath: s.path),
        let json = try? JSONSerialization.jsonObject(with: sd) as? [String: Any]
      else { throw ModelError.malformed(s.path, "not a JSON object") }
      let saved = json["prediction_type"] as? String ?? "epsilon"
      guard saved == prediction else {
        throw TrainingError.invalidOption(
          "--init-from: the model predicts \(saved) but the run --prediction \(prediction)")
      }
      scheduler = json
    }
    return (cfg, scheduler, weights)
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

}

/// The diffusion family on the shared training loop.
final class DiffusionRun: TrainingRun {
  static let columns = ["loss", "lr", "grad_norm", "ema_decay"]
  let trainer: DiffusionTrainer
  let recent = RecentAverage()
  init(_ trainer: DiffusionTrainer) { self.trainer = trainer }

  var currentStep: Int { trainer.step }
  var totalSteps: Int { trainer.options.steps }
  var checkpointEvery: Int { trainer.options.checkpointEvery }
  var sampleEvery: Int { trainer.options.sampleEvery }
  var logColumns: [String] { DiffusionRun.columns }
  var plotColumns: [String] { ["loss"] }

  func trainOneStep() throws -> [Double] {
    let s = try trainer.trainStep()
    return [Double(s.loss), Double(s.lr), Double(s.gradNorm), s.emaDecay]
  }

  func note(_ v: [Double]) -> String {
    String(format: "loss %.4f (avg %.4f)", Float(v[0]), Float(recent.add(v[0])))
  }

  func writeCheckpoint(to outDir: URL) throws { try trainer.writeCheckpoint(to: outDir) }

  func writeSamples(to outDir: URL) throws {
    let unet = try trainer.emaUNet()
    let plan = try trainer.samplingPlan(.ddim, steps: 20)
    let classes = unet.config.realClassCount
    let n = classes.map { $0 * 2 } ?? 16
    let sampler = DiffusionSampler(unet: unet, plan: plan)
    let images = try Tape.noGrad {
      try sampler.sample(
        SampleRequest(count: n, batchSize: n, seed: 0, classLabels: classes.map { Array(0..<$0) }))
    }
    let dir = outDir.appendingPathComponent("samples")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let grid = try Image8.grid(images, shape: [n] + sampler.imageShape, columns: classes ?? 8).zoomed(2)
    try StagedOutputs.replace(dir.appendingPathComponent(String(format: "step-%08d.png", trainer.step))) {
      try grid.writePNG(to: $0)
    }
  }
}
