// Training any family on a toy 2-D data set in-process, with each family's toy defaults, then sampling and
// scoring it: what a side-by-side comparison of the three families calls. GAN: GANTrainer with
// `GANTrainingOptions.compareToyDefaults()` (non-saturating loss, the plain MLP pair without batch norm), samples
// from the EMA generator.
// Diffusion: ToyDiffusionTrainer with `DiffusionTrainingOptions.toyDefaults()`, samples from the EMA denoiser
// with DPM-Solver++ 2M, 20 steps. VAE: ToyVAETrainer with `VAETrainingOptions.toyDefaults()`, samples are the EMA
// decoder's means of z ~ N(0, I). Every draw is keyed by the seed, so a run is bitwise reproducible on the CPU.
import Foundation

/// One toy training run's losses, samples and scores.
public struct ToyRunResult: Sendable {
  /// The family trained.
  public var family: ModelFamily
  /// The names of the loss columns (GAN: d_loss, g_loss; diffusion: loss; VAE: loss, reconstruction, kl).
  public var lossNames: [String]
  /// One row per training step, `lossNames.count` values each.
  public var losses: [[Double]]
  /// The samples after training, row-major (x, y) pairs: sampleCount × 2 values.
  public var samples: [Float]
  /// The samples' toy scores against the data set.
  public var scores: ToyScores
  /// Wall-clock seconds of the training (sampling and scoring excluded).
  public var seconds: Double

  /// A result from its parts.
  public init(
    family: ModelFamily, lossNames: [String], losses: [[Double]], samples: [Float], scores: ToyScores,
    seconds: Double
  ) {
    (self.family, self.lossNames, self.losses, self.samples, self.scores, self.seconds) = (
      family, lossNames, losses, samples, scores, seconds
    )
  }
}

/// Trains any family on a toy data set in-process (no CLI, no files).
public enum ToyTraining {
  /// The family's toy default number of training steps.
  public static func defaultSteps(_ family: ModelFamily) -> Int {
    switch family {
    case .gan: return GANTrainingOptions.compareToyDefaults().steps
    case .diffusion: return DiffusionTrainingOptions.toyDefaults().steps
    case .vae: return VAETrainingOptions.toyDefaults().steps
    }
  }

  /// How `run` samples a diffusion model: DPM-Solver++ 2M with 20 steps (sharper than DDIM at 20 steps).
  public static let diffusionSampling: ToySamplingOptions = {
    var o = ToySamplingOptions()
    o.sampler = .dpmpp2m
    return o
  }()

  /// Trains `family` on `dataset` for `steps` steps (nil: the family's toy default) with the family's toy
  /// defaults and `seed`, on `device`; then draws `sampleCount` samples (keyed by `seed`) and scores them.
  /// `progress` is called with 1 after every training step.
  public static func run(
    family: ModelFamily, dataset: ToyDataset, seed: UInt64, steps: Int? = nil, sampleCount: Int = 2500,
    device: Device, progress: (Int) -> Void = { _ in }
  ) throws -> ToyRunResult {
    let total = steps ?? defaultSteps(family)
    guard total >= 0 else { throw TrainingError.invalidOption("steps must be ≥ 0, got \(total)") }
    guard sampleCount > 0 else { throw TrainingError.invalidOption("sampleCount must be positive") }
    var losses: [[Double]] = []
    losses.reserveCapacity(total)
    let lossNames: [String]
    let model: ToyModel
    let start = Date()
    switch family {
    case .gan:
      var o = GANTrainingOptions.compareToyDefaults()
      (o.data, o.steps, o.seed) = (dataset.spec, total, seed)
      let g = GANNetworkConfig(architecture: .mlp, role: .generator)
      let d = GANNetworkConfig(architecture: .mlp, role: .discriminator)
      let config = GANModelConfig(
        latentDim: g.latentDim, loss: o.loss, conditional: false, numClasses: 0, data: dataset.spec)
      let trainer = try GANTrainer(
        model: config, generator: g, discriminator: d, data: .toy(dataset), options: o, device: device)
      lossNames = ["d_loss", "g_loss"]
      while trainer.step < total {
        let s = try trainer.trainStep()
        losses.append([Double(s.dLoss), Double(s.gLoss)])
        progress(1)
      }
      model = .gan(try trainer.emaModel())
    case .diffusion:
      var o = DiffusionTrainingOptions.toyDefaults()
      (o.data, o.steps, o.seed) = (dataset.spec, total, seed)
      var config = ToyDenoiserConfig()
      config.data = dataset.spec
      let trainer = try ToyDiffusionTrainer(config: config, options: o, device: device)
      lossNames = ["loss"]
      while trainer.step < total {
        losses.append([Double(try trainer.trainStep().loss)])
        progress(1)
      }
      model = .diffusion(
        try trainer.emaModel(),
        schedulerJSON: String(
          decoding: try JSONSerialization.data(withJSONObject: trainer.schedulerJSON, options: [.sortedKeys]),
          as: UTF8.self))
    case .vae:
      var o = VAETrainingOptions.toyDefaults()
      (o.data, o.steps, o.seed) = (dataset.spec, total, seed)
      var config = ToyVAEConfig()
      config.data = dataset.spec
      let trainer = try ToyVAETrainer(config: config, options: o, device: device)
      lossNames = ["loss", "reconstruction", "kl"]
      while trainer.step < total {
        let s = try trainer.trainStep()
        losses.append([Double(s.loss), Double(s.reconstruction), Double(s.kl)])
        progress(1)
      }
      model = .vae(try trainer.emaModel())
    }
    let seconds = Date().timeIntervalSince(start)
    let samples = try model.sample(
      count: sampleCount, seed: seed, batchSize: Swift.min(sampleCount, 2_500), options: diffusionSampling)
    return ToyRunResult(
      family: family, lossNames: lossNames, losses: losses, samples: samples,
      scores: ToyMetrics.score(samples, dataset: dataset), seconds: seconds)
  }
}
