// `gpugen train diffusion|vae --data toy:ring8|toy:grid25`: the MLP denoiser and the MLP VAE of 2-D points on
// the shared training loop, with their own defaults (DiffusionTrainingOptions.toyDefaults(),
// VAETrainingOptions.toyDefaults()); every --sample-every steps a scatter plot with the toy scores.
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels

/// The `_class_name` of a config file (nil when it has none or is not a JSON object).
func configClassName(_ path: String?) -> String? {
  guard let path, let d = FileManager.default.contents(atPath: path),
    let obj = try? JSONSerialization.jsonObject(with: d) as? [String: Any]
  else { return nil }
  return obj["_class_name"] as? String
}

/// Whether a `train` invocation is a toy run: on --resume, the checkpoint in --out holds a toy model of the
/// family; otherwise --data is toy:… . A toy model's --config with image data, or an image model's --config
/// with toy data, is an error naming both.
func isToyTraining(_ training: TrainingOptionGroup, config: String?, toyClass: String) throws -> Bool {
  if training.resume {
    guard let dir = try? CheckpointWriter.latest(in: URL(fileURLWithPath: training.out)) else { return false }
    switch try? ModelFolder.classify(dir) {
    case .toyDiffusion?, .toyVAE?: return true
    default: return false
    }
  }
  let toy = ToyDataset.isToy(training.data)
  let cls = configClassName(config)
  if toy, let config, cls != toyClass {
    throw TrainingError.invalidOption(
      "--config \(config) is \(cls.map { "a \($0) config" } ?? "not a \(toyClass) config"); toy data (\(training.data)) trains a \(toyClass) (an MLP): give a \(toyClass) config.json or leave --config out"
    )
  }
  if !toy, let config, cls == toyClass {
    throw TrainingError.invalidOption(
      "--config \(config) is a \(toyClass) config, which trains on toy data (toy:ring8, toy:grid25), not \(training.data)"
    )
  }
  return toy
}

/// A toy config file's data set must agree with --data (or be absent).
func checkConfigData(_ path: String, data: String) throws {
  guard let d = FileManager.default.contents(atPath: path),
    let obj = try? JSONSerialization.jsonObject(with: d) as? [String: Any], let given = obj["data"] as? String
  else { return }
  guard (try? ToyDataset.parse(given)) == (try? ToyDataset.parse(data)) else {
    throw TrainingError.invalidOption("--config \(path) is for \(given) but --data is \(data)")
  }
}

extension TrainDiffusion {
  /// Whether this invocation trains the toy denoiser.
  func isToy() throws -> Bool {
    try isToyTraining(training, config: config, toyClass: ToyDenoiserConfig.className)
  }

  /// The toy run's options: the toy defaults, then the flags.
  func toyOptions() throws -> DiffusionTrainingOptions {
    if classConditional {
      throw TrainingError.invalidOption("--class-conditional needs labelled images, not toy data")
    }
    var o = DiffusionTrainingOptions.toyDefaults()
    training.apply(to: &o)
    o.prediction = prediction.diffusersName
    o.emaWarmup = emaWarmup
    o.weightDecay = weightDecay
    try o.validate()
    return o
  }

  /// Trains (or resumes) the toy denoiser.
  func trainToy() throws {
    try requireSingleProcess("toy training")
    if classDropout != nil || initFrom != nil {
      throw TrainingError.invalidOption("--class-dropout and --init-from are for image models, not toy data")
    }
    let device = try deviceOptions.resolve()
    let outDir = try training.outputFolder()
    let trainer: ToyDiffusionTrainer
    let log: TrainingLog
    if training.resume {
      trainer = try ToyDiffusionTrainer.resume(from: outDir, device: device, changes: training.resumeChanges)
      try training.refuseChangedOptions(saved: trainer.options)
      log = try TrainingLog(
        url: outDir.appendingPathComponent("log.csv"), columns: DiffusionRun.columns,
        keepingSteps: trainer.step)
      training.announceResume(step: trainer.step, of: trainer.options.steps, on: device)
    } else {
      let o = try toyOptions()
      var c = ToyDenoiserConfig()
      if let config {
        try checkConfigData(config, data: o.data)
        guard let d = FileManager.default.contents(atPath: config) else {
          throw ModelError.missing("toy denoiser config \(config)")
        }
        c = try ToyDenoiserConfig(json: d, source: config)
      }
      c.data = try ToyDataset.parse(o.data).spec
      try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
      trainer = try ToyDiffusionTrainer(config: c, options: o, device: device)
      log = try TrainingLog(
        url: outDir.appendingPathComponent("log.csv"), columns: DiffusionRun.columns, keepingSteps: 0)
      FileHandle.standardError.write(
        Data(
          "gpugen: training a \(trainer.model.parameterCount)-parameter toy denoiser (MLP \(c.hiddenDims.map(String.init).joined(separator: "×")), \(c.activation)) on toy data \(trainer.dataset.rawValue) for \(o.steps) steps, batch \(o.batchSize), on \(device)\n"
            .utf8))
      try trainer.writeCheckpoint(to: outDir)
    }
    try runTrainingLoop(ToyDiffusionRun(trainer), log: log, outDir: outDir, device: device)
  }
}

extension TrainVAE {
  /// Whether this invocation trains the toy VAE.
  func isToy() throws -> Bool {
    try isToyTraining(training, config: config, toyClass: ToyVAEConfig.className)
  }

  /// Trains (or resumes) the toy VAE.
  func trainToy() throws {
    try requireSingleProcess("toy training")
    let device = try deviceOptions.resolve()
    let outDir = try training.outputFolder()
    let trainer: ToyVAETrainer
    let log: TrainingLog
    if training.resume {
      trainer = try ToyVAETrainer.resume(from: outDir, device: device, changes: training.resumeChanges)
      try training.refuseChangedOptions(saved: trainer.options)
      log = try TrainingLog(
        url: outDir.appendingPathComponent("log.csv"), columns: VAERun.columns, keepingSteps: trainer.step)
      training.announceResume(step: trainer.step, of: trainer.options.steps, on: device)
    } else {
      if let arch {
        throw TrainingError.invalidOption(
          "--arch \(arch.rawValue) builds an image VAE; toy data (\(training.data)) trains the MLP ToyVAE")
      }
      if likelihood == .bernoulli {
        throw TrainingError.invalidOption(
          "--likelihood bernoulli: a toy VAE's points have a Gaussian likelihood")
      }
      var o = VAETrainingOptions.toyDefaults()
      training.apply(to: &o)
      (o.beta, o.klWarmup, o.freeBits, o.dynamicBinarization) = (beta, klWarmup, freeBits, binarize)
      try o.validate()
      var c = ToyVAEConfig()
      if let config {
        try checkConfigData(config, data: o.data)
        guard let d = FileManager.default.contents(atPath: config) else {
          throw ModelError.missing("toy VAE config \(config)")
        }
        c = try ToyVAEConfig(json: d, source: config)
      }
      c.data = try ToyDataset.parse(o.data).spec
      if let latentDim { c.latentDim = latentDim }
      try c.validate(source: config ?? "--latent-dim")
      try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
      trainer = try ToyVAETrainer(config: c, options: o, device: device)
      log = try TrainingLog(
        url: outDir.appendingPathComponent("log.csv"), columns: VAERun.columns, keepingSteps: 0)
      FileHandle.standardError.write(
        Data(
          "gpugen: training a \(trainer.model.parameterCount)-parameter toy VAE (MLP \(c.hiddenDims.map(String.init).joined(separator: "×")), \(c.activation), latent \(c.latentDim), σ \(c.gaussianSigma.map { "\($0)" } ?? "learned")) on toy data \(trainer.dataset.rawValue) for \(o.steps) steps, batch \(o.batchSize), on \(device)\n"
            .utf8))
      try trainer.writeCheckpoint(to: outDir)
    }
    try runTrainingLoop(ToyVAERun(trainer), log: log, outDir: outDir, device: device)
  }
}

/// Writes OUT/samples/step-N.png: a scatter plot of `points` with the toy scores in the title.
func writeToyScatter(_ points: [Float], dataset: ToyDataset, step: Int, to outDir: URL) throws {
  let dir = outDir.appendingPathComponent("samples")
  try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
  let s = ToyMetrics.score(points, dataset: dataset)
  let plot = ToyScatter.render(points, dataset: dataset, title: "step \(step): \(s.summary)")
  try StagedOutputs.replace(dir.appendingPathComponent(String(format: "step-%08d.png", step))) {
    try plot.writePNG(to: $0)
  }
}

/// The number of points each toy scatter plot during training shows.
let toyScatterPoints = 1_000

/// The toy diffusion family on the shared training loop.
final class ToyDiffusionRun: TrainingRun {
  let trainer: ToyDiffusionTrainer
  let recent = RecentAverage()
  init(_ trainer: ToyDiffusionTrainer) { self.trainer = trainer }

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

  /// DDIM, 20 steps, seed 0, from the EMA denoiser.
  func writeSamples(to outDir: URL) throws {
    let plan = try trainer.samplingPlan(.ddim, steps: 20)
    let points = try Tape.noGrad {
      try DiffusionSampler(unet: try trainer.emaModel(), plan: plan).sample(
        SampleRequest(count: toyScatterPoints, batchSize: toyScatterPoints, seed: 0))
    }
    try writeToyScatter(points, dataset: trainer.dataset, step: trainer.step, to: outDir)
  }
}

/// The toy VAE family on the shared training loop.
final class ToyVAERun: TrainingRun {
  let trainer: ToyVAETrainer
  let recent = RecentAverage()
  init(_ trainer: ToyVAETrainer) { self.trainer = trainer }

  var currentStep: Int { trainer.step }
  var totalSteps: Int { trainer.options.steps }
  var checkpointEvery: Int { trainer.options.checkpointEvery }
  var sampleEvery: Int { trainer.options.sampleEvery }
  var logColumns: [String] { VAERun.columns }
  var plotColumns: [String] { ["loss", "reconstruction", "kl"] }

  func trainOneStep() throws -> [Double] {
    let s = try trainer.trainStep()
    return [Double(s.loss), Double(s.reconstruction), Double(s.kl), s.beta, Double(s.gradNorm), Double(s.lr)]
  }

  func note(_ v: [Double]) -> String {
    String(
      format: "−ELBO %.2f (avg %.2f) | rec %.2f | KL %.2f | β %.2f", v[1] + v[2], recent.add(v[1] + v[2]),
      v[1], v[2], v[3])
  }

  func writeCheckpoint(to outDir: URL) throws { try trainer.writeCheckpoint(to: outDir) }

  /// Decoder means of z ~ N(0, I), seed 0, from the EMA VAE.
  func writeSamples(to outDir: URL) throws {
    let points = try VAEOps.sample(
      try trainer.emaModel(), count: toyScatterPoints, batchSize: toyScatterPoints, seed: 0, temperature: 1,
      device: trainer.device)
    try writeToyScatter(points, dataset: trainer.dataset, step: trainer.step, to: outDir)
  }
}
