// `gpugen train vae`: trains a ConvVAE by maximising the ELBO, on the shared training loop.
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels

/// The VAE likelihood flag.
enum LikelihoodOption: String, ExpressibleByArgument, CaseIterable {
  case bernoulli, gaussian
}

/// The VAE architectures `train vae` builds.
enum VAEArchOption: String, ExpressibleByArgument, CaseIterable {
  case convVAE = "conv-vae"
  case autoencoderKL = "autoencoder-kl"
}

struct TrainVAE: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "vae",
    abstract:
      "Train a VAE (negative ELBO: reconstruction NLL + β·KL) on Fashion-MNIST, IDX files or PNG folders.",
    discussion: """
      Writes OUT/checkpoint (a ConvVAE model folder with the EMA weights, loadable by \
      `gpugen sample --model OUT/checkpoint`, plus training_state/ for --resume) every --checkpoint-every \
      steps and at the end; OUT/log.csv (loss, reconstruction, KL, β, gradient norm per step, nats per image); \
      OUT/loss.png; and every --sample-every steps a prior-sample grid OUT/samples/prior-N.png and a \
      reconstruction grid OUT/samples/recon-N.png (originals above reconstructions). Ctrl-C writes a \
      checkpoint before exiting; a NaN/Inf stops at once with exit status 3. Data order, ε and the \
      binarisation are Philox draws keyed by --seed, so on the CPU a resumed run is bitwise identical to one \
      run straight through.

      Toy 2-D data (--data toy:ring8 or toy:grid25) trains an MLP VAE instead (ToyVAE: 3 hidden layers of 256, \
      SiLU, each way, a 2-D latent, a Gaussian likelihood with a learned σ; --config takes its config.json, \
      --latent-dim overrides it) with the toy defaults (20000 steps, batch 256, lr 3e-3 cosine, β 1), in about two \
      minutes on two idle CPU cores; OUT/checkpoint is a toy VAE folder and OUT/samples/ holds scatter plots of \
      decoded prior samples with the toy scores.
      """)

  @OptionGroup var training: TrainingOptionGroup

  @Option(
    help:
      "Architecture: conv-vae (vector latent) or autoencoder-kl (diffusers' spatial-latent VAE). Default: the --config's _class_name, else conv-vae."
  )
  var arch: VAEArchOption?

  @Option(
    help:
      "A ConvVAE or diffusers AutoencoderKL config.json (default: the reference ConvVAE, 28×28×1, widths 32,64)."
  )
  var config: String?

  @Option(help: "Latent dimensions: ConvVAE latent_dim (reference 16) or AutoencoderKL latent_channels.")
  var latentDim: Int?

  @Option(help: "Likelihood of the decoder (overrides the config's).")
  var likelihood: LikelihoodOption?

  @Option(help: "KL weight β.")
  var beta = 1.0

  @Option(help: "Anneal β linearly from 0 over this many steps (0: off).")
  var klWarmup = 0

  @Option(help: "Free bits λ: a KL floor per latent dimension, in nats (0: off).")
  var freeBits = 0.0

  @Flag(help: "Dynamic binarisation: resample binary pixels from the grey levels at every step (Bernoulli).")
  var binarize = false

  @OptionGroup var deviceOptions: DeviceOptions

  @OptionGroup(title: "Data-parallel training (under mpirun)") var distributed: DistributedOptions

  func run() throws {
    try reportingUserErrors(weightsLabel: "checkpoint weights") { try train() }
  }

  func options() throws -> VAETrainingOptions {
    var o = VAETrainingOptions()
    training.apply(to: &o)
    o.beta = beta
    o.klWarmup = klWarmup
    o.freeBits = freeBits
    o.dynamicBinarization = binarize
    try o.validate()
    return o
  }

  func readConfig() throws -> Data? {
    guard let config else { return nil }
    guard let d = FileManager.default.contents(atPath: config) else {
      throw ModelError.missing("VAE config \(config)")
    }
    return d
  }

  /// The architecture: a ConvVAE (reference config by default) or an AutoencoderKL (diffusers config.json; by
  /// default 28×28×1 with widths 32, 64, one layer per block and 4 latent channels).
  func architecture() throws -> VAEArchitecture {
    // Without --arch, a --config file's _class_name decides (ConvVAE by default).
    var chosen = arch ?? .convVAE
    if arch == nil, let d = try readConfig(),
      let obj = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
      obj["_class_name"] as? String == "AutoencoderKL"
    {
      chosen = .autoencoderKL
    }
    switch chosen {
    case .convVAE:
      var c = ConvVAEConfig()
      if let d = try readConfig() { c = try ConvVAEConfig(json: d, source: config!) }
      if let latentDim { c.latentDim = latentDim }
      if let likelihood { c.likelihood = likelihood.rawValue }
      try c.validate(source: config ?? "--latent-dim/--likelihood")
      return .convVAE(c)
    case .autoencoderKL:
      var c = AutoencoderKLConfig()
      if let d = try readConfig() {
        c = try AutoencoderKLConfig(json: d, source: config!)
      } else {
        (c.inChannels, c.outChannels, c.sampleSize) = (1, 1, 28)
        (c.blockOutChannels, c.layersPerBlock, c.latentChannels, c.normNumGroups) = ([32, 64], 1, 4, 32)
        c.downBlockTypes = ["DownEncoderBlock2D", "DownEncoderBlock2D"]
        c.upBlockTypes = ["UpDecoderBlock2D", "UpDecoderBlock2D"]
      }
      if let latentDim { c.latentChannels = latentDim }
      if likelihood == .bernoulli {
        throw TrainingError.invalidOption(
          "--arch autoencoder-kl has a Gaussian likelihood (σ = 1, data in [-1, 1])")
      }
      // Round trip through the parser: the same validation as a config file.
      return .autoencoderKL(
        try AutoencoderKLConfig(json: try c.jsonData(), source: config ?? "--arch autoencoder-kl"))
    }
  }

  func train() throws {
    HostMemory.fixMmapThreshold(bytes: 1 << 20)
    if try isToy() { return try trainToy() }
    let job = try TrainingJob(training: training, distributed: distributed, deviceOptions: deviceOptions)
    let trainer: VAETrainer
    if training.resume {
      let saved = try VAETrainer.savedState(in: job.outDir)
      try training.refuseChangedOptions(saved: saved.options)
      try refuseOtherConfig(
        try config.map { _ in try architecture() }, saved: saved.architecture, config: config,
        out: training.out)
      try job.checkBatch(saved.options.batchSize)
      let images = try TrainingImages.load(
        source: saved.options.data, sampleSize: saved.architecture.sampleSize,
        channels: saved.architecture.imageChannels)
      trainer = try VAETrainer.resume(
        from: job.outDir, data: images, device: job.device, changes: training.resumeChanges)
      if job.isRoot { training.announceResume(step: trainer.step, of: trainer.options.steps, on: job.device) }
    } else {
      let o = try options()
      try job.checkBatch(o.batchSize)
      let a = try architecture()
      let images = try TrainingImages.load(
        source: o.data, sampleSize: a.sampleSize, channels: a.imageChannels)
      trainer = try VAETrainer(architecture: a, data: images, options: o, device: job.device)
      try job.createOutput()
      job.announce(
        "gpugen: training a \(trainer.model.parameterCount)-parameter \(trainer.model is AutoencoderKL ? "AutoencoderKL" : "ConvVAE") (\(trainer.model.likelihood.name), latent \(trainer.model.latentShape)) on \(images.count) images (\(o.data)) for \(o.steps) steps, batch \(o.batchSize), on \(job.device)\(job.processesNote)"
      )
      if job.isRoot { try trainer.writeCheckpoint(to: job.outDir) }
    }
    trainer.parallel = job.parallel
    try job.run(
      VAERun(trainer),
      agreeing: [
        ("the training options", "\(trainer.options)"), ("the model config", "\(trainer.architecture)"),
        ("the data", trainer.data.fingerprint),
      ])
  }
}

/// The VAE family on the shared training loop.
final class VAERun: TrainingRun {
  static let columns = ["loss", "reconstruction", "kl", "beta", "grad_norm", "lr"]
  let trainer: VAETrainer
  let recent = RecentAverage()
  init(_ trainer: VAETrainer) { self.trainer = trainer }

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

  func writeSamples(to outDir: URL) throws {
    let model = try trainer.emaModel()
    let dir = outDir.appendingPathComponent("samples")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let device = trainer.device
    let prior = try VAEOps.sample(model, count: 64, batchSize: 64, seed: 0, temperature: 1, device: device)
    let priorGrid = try Image8.grid(
      VAEOps.toSigned(prior, range: model.dataRange), shape: [64] + model.imageShape, columns: 8
    ).zoomed(2)
    try StagedOutputs.replace(dir.appendingPathComponent(String(format: "prior-%08d.png", trainer.step))) {
      try priorGrid.writePNG(to: $0)
    }
    let data = trainer.data
    let n = Swift.min(16, data.count)
    let originals = VAETrainer.unitImages(data, Array(0..<n))
    let (mu, _) = try VAEOps.encode(model, images: originals, count: n, batchSize: n, device: device)
    let recon = try VAEOps.decode(model, latents: mu, count: n, batchSize: n, device: device)
    let both: [Float] = originals + recon
    let reconGrid = try Image8.grid(
      VAEOps.toSigned(both, range: model.dataRange), shape: [2 * n] + model.imageShape, columns: n
    ).zoomed(2)
    try StagedOutputs.replace(dir.appendingPathComponent(String(format: "recon-%08d.png", trainer.step))) {
      try reconGrid.writePNG(to: $0)
    }
  }
}
