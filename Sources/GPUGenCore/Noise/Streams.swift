// Every Philox stream number gpugen draws from, in one place (docs/TRAINING.md): a draw is keyed by
// (seed, counter (block, sample, step, stream)), so two uses of one seed differ only by their stream.

/// The registry of Philox streams. No other file spells a stream number.
public enum Streams {
  /// Diffusion sampling: the initial noise (step 0) and each sampler update's noise.
  public static let sampling = 0
  /// The reference UNet's deterministic test weights.
  public static let referenceWeights = 7
  /// The order of the training images in each epoch.
  public static let dataOrder = 10
  /// Diffusion training timesteps.
  public static let diffusionTimesteps = 11
  /// Diffusion training noise ε.
  public static let diffusionNoise = 12
  /// The choice of real evaluation images (`GeneratorEvaluator.realSets`: counter (0, image, 0, stream)).
  public static let realSetChoice = 13
  /// Dynamic binarisation of training images (Bernoulli VAEs).
  public static let binarisation = 14
  /// Latents drawn from the prior for sampling (z of image i depends on (seed, i) only).
  public static let priorSample = 15
  /// Classifier-free guidance training: the uniform u of each sample of global step s's batch (counter
  /// (0, sample, s, stream)); the label becomes the null label when u ≤ p (`--class-dropout p`).
  public static let classDropout = 16
  /// The VAE's reparameterisation noise ε in training (sample = the image's position in the global batch).
  public static let vaeReparameterisation = 17
  /// Toy 2-D data (`ToyDataset.sample`): sample i at step s is block (0, i, s, stream); words x, y are its two
  /// Box–Muller offsets (as `randomNormal` with 2 per sample), word z mod K its mode.
  public static let toyData = 19
  /// Dropout masks: layer k of a model draws from stream `dropout + k` (above every parameter slot).
  public static let dropout = 0x8000_0000
  /// Importance samples of the IWAE bound.
  public static let importanceSamples = 0x9000_0000
  /// The fixed binarisation of an evaluation set.
  public static let evaluationBinarisation = 0x9000_0001
  /// Posterior draws of `gpugen encode --sample`.
  public static let posteriorSample = 0x9000_0002
  /// KID's subsets of the generated set (subset s of n points: counter (0, i, s, stream)); the real set's are
  /// the next stream.
  public static let kidSubsets = 0x9000_0010
  /// GAN training: the latents of discriminator step t (the labels of a class-conditional run: the next stream).
  public static let ganLatent = 0xF000_0000
  /// DiffAugment of the real batch of a discriminator step (policies draw from the next streams).
  public static let ganAugmentReal = 0xF000_0020
  /// DiffAugment of the generated batch of a discriminator step.
  public static let ganAugmentFake = 0xF000_0030
  /// DiffAugment of the generated batch of a generator step.
  public static let ganAugmentGenerator = 0xF000_0040
  /// GAN projection (`gpugen encode` of a GAN): the initial latents of the optimisation.
  public static let ganProjection = 0xF000_0050
  /// The first parameter stream: parameter i (in name order) of model slot m (m < 64) draws from
  /// `parameters + m·parameterSlotWidth + i`, below `dropout`.
  public static let parameters = 20
  /// Streams reserved for one model's parameters (and, from `buffers`, for its initialised buffers).
  public static let parameterSlotWidth = 1 << 24
  /// The first buffer stream: buffer i (in name order, among all of a model's buffers) of model slot m
  /// (m < 64) draws from `buffers + m·parameterSlotWidth + i` when `Module.initialize` redraws it (spectral
  /// norm's u and v). Above the dropout and evaluation streams, below 2³².
  public static let buffers = 0xA000_0000

  /// The stream of parameter `index` of the model in `slot` (0 for a single model; a GAN's discriminator
  /// takes slot 1, so two models initialised from one seed draw different numbers).
  public static func parameter(_ index: Int, slot: Int = 0) -> Int {
    parameters + slot * parameterSlotWidth + index
  }

  /// The stream of buffer `index` (in name order) of the model in `slot`, as `parameter(_:slot:)` numbers
  /// parameters: two models initialised from one seed draw different buffers.
  public static func buffer(_ index: Int, slot: Int = 0) -> Int {
    buffers + slot * parameterSlotWidth + index
  }
}
