// Option groups every command spells the same way: training (data, steps, batch, optimiser, cadence, output,
// resume, seed) and enums for closed sets of values, so `--help` lists the valid values.
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels

/// The learning-rate schedule after the warmup.
enum LRScheduleOption: String, ExpressibleByArgument, CaseIterable {
  case constant, cosine
}

/// Parses `--sampler` into the enum (case-insensitive); an unknown name is an error listing the valid ones.
func parseSampler(_ text: String) throws -> SamplerKind {
  guard let kind = SamplerKind(rawValue: text.lowercased()) else {
    throw ValidationError(
      "unknown sampler '\(text)'; choose one of \(SamplerKind.allCases.map(\.rawValue).joined(separator: ", "))"
    )
  }
  return kind
}

/// What a diffusion UNet predicts.
enum PredictionOption: String, ExpressibleByArgument, CaseIterable {
  case epsilon, v
  /// The diffusers prediction_type.
  var diffusersName: String { self == .v ? "v_prediction" : "epsilon" }
}

/// Training options shared by every family (defaults that differ by family are given as "family: value").
struct TrainingOptionGroup: ParsableArguments {
  @Option(
    help:
      "Training images: fashion-mnist, an IDX image file (labels beside it), or a folder of PNGs; diffusion, vae and gan also 2-D toy data toy:ring8, toy:grid25 (an MLP model)."
  )
  var data = "fashion-mnist"

  @Option(
    help:
      "Optimizer steps in total (diffusion: 20000, vae: 10000, gan: 20000; on toy data diffusion 8000, vae 20000, gan 60000; on --resume: a new total)."
  )
  var steps: Int?

  @Option(help: "Batch size (diffusion, vae, gan: 64; on toy data diffusion 512, vae 256, gan 128).")
  var batchSize: Int?

  @Option(
    help:
      "Peak learning rate (diffusion: 1e-4 AdamW, vae: 1e-3 Adam, gan: 2e-4 Adam for both networks; on toy data diffusion and vae 3e-3, gan 1e-3)."
  )
  var lr: Double?

  @Option(help: "Linear learning-rate warmup steps (diffusion: 500, on toy data 100; vae: 0).")
  var warmup: Int?

  @Option(help: "Learning rate after warmup (default constant; on toy data: cosine).")
  var lrSchedule: LRScheduleOption?

  @Option(help: "EMA decay cap (diffusion: 0.9999, on toy data 0.999; vae and gan: 0.999).")
  var emaDecay: Double?

  @Option(help: "Clip gradients to this global L2 norm, 0: no clipping (diffusion: 1, vae and gan: 0).")
  var clipGrad: Double?

  @Option(help: "Write a checkpoint every K steps (default 500; on toy data: 1000; --resume may change it).")
  var checkpointEvery: Int?

  @Option(
    help:
      "Write sample grids (toy data: scatter plots) every K steps, 0: never (diffusion: 500, vae and gan: 1000; toy data: 1000; --resume may change it)."
  )
  var sampleEvery: Int?

  @Option(help: "Output folder.")
  var out = "gpugen-train"

  @Flag(
    help:
      "Continue the run in --out from its latest checkpoint, bitwise as if never stopped; it keeps the saved options, except --steps, --checkpoint-every and --sample-every."
  )
  var resume = false

  @Option(help: "Seed of every random draw (initial weights, data order, noise).")
  var seed: UInt64 = 0
}

extension TrainingOptionGroup {
  /// Copies the flags into a family's options, keeping the family's defaults where a flag is absent.
  func apply<O: CommonTrainingOptions>(to o: inout O) {
    o.data = data
    o.steps = steps ?? o.steps
    o.batchSize = batchSize ?? o.batchSize
    o.lr = lr ?? o.lr
    o.warmup = warmup ?? o.warmup
    o.lrSchedule = lrSchedule?.rawValue ?? o.lrSchedule
    o.emaDecay = emaDecay ?? o.emaDecay
    o.clipGrad = clipGrad ?? o.clipGrad
    o.checkpointEvery = checkpointEvery ?? o.checkpointEvery
    o.sampleEvery = sampleEvery ?? o.sampleEvery
    o.seed = seed
  }
}

/// Where generated images go: a PNG grid, optionally a float32 NCHW .npy, and the grid's zoom.
struct ImageOutputOptions: ParsableArguments {
  @Option(help: "Output PNG grid (default: grid.png for sample, decoded.png, recon.png or strip.png).")
  var out: String?

  @Option(help: "Also write the images as float32 NCHW .npy (values in [-1, 1]).")
  var npy: String?

  @Option(help: "Nearest-neighbour zoom of the PNG grid (1…16).")
  var zoom = 2

  /// Throws unless the zoom is usable (checked before any work).
  func validate() throws {
    guard zoom >= 1 && zoom <= 16 else { throw ModelError.input("--zoom must be 1…16") }
    // A folder or a missing parent fails now, before any work, not after it.
    for path in [out, npy] { if let path { try StagedOutputs.checkDestination(path) } }
  }

  /// The PNG path, or `fallback`.
  func png(or fallback: String) -> String { out ?? fallback }

  /// Writes `images` (n × C × H × W in [-1, 1]) as a grid with `columns` (default: about square) and the .npy.
  func write(_ images: [Float], shape: [Int], columns: Int? = nil, default fallback: String) throws {
    try validate()
    let outputs = StagedOutputs()
    try write(images, shape: shape, columns: columns, default: fallback, into: outputs)
    try outputs.commit()
  }

  /// Stages the grid and the .npy in `outputs` (the caller commits them with its other outputs).
  func write(
    _ images: [Float], shape: [Int], columns: Int? = nil, default fallback: String,
    into outputs: StagedOutputs
  ) throws {
    try validate()
    try outputs.stage(URL(fileURLWithPath: png(or: fallback))) {
      try Image8.grid(images, shape: shape, columns: columns).zoomed(zoom).writePNG(to: $0)
    }
    if let npy {
      try outputs.stage(URL(fileURLWithPath: npy)) { try NPY.write(images, shape: shape, to: $0) }
    }
  }

  /// Throws unless every output path can be written (not a folder, in a folder that exists): checked before
  /// any work, with `extra` paths (e.g. --trajectory).
  func checkDestinations(default fallback: String, extra: [String?] = []) throws {
    try StagedOutputs.checkDestination(png(or: fallback))
    for p in [npy] + extra { if let p { try StagedOutputs.checkDestination(p) } }
  }
}

extension TrainingOptionGroup {
  /// The output folder, checked against --resume: resuming needs a checkpoint there, a new run needs none
  /// (a run is never overwritten).
  /// `writer`: this process writes the folder (rank 0 of a data-parallel job; the others only read it).
  func outputFolder(writer: Bool = true) throws -> URL {
    let outDir = URL(fileURLWithPath: out)
    // One writer per folder: the lock is held until the process ends. Holding it, the temporary folders of
    // killed or failed checkpoint writes are nobody's: remove them.
    if writer {
      if heldOutputLock?.folder.standardizedFileURL != outDir.standardizedFileURL {
        heldOutputLock = try OutputFolderLock(outDir)
      }
      CheckpointWriter.removeStaleTemporaries(in: outDir)
    }
    let hasRun = (try? CheckpointWriter.latest(in: outDir)) != nil
    if resume && !hasRun { throw TrainingError.checkpoint("--resume: no checkpoint in \(out)") }
    if !resume && hasRun {
      throw TrainingError.invalidOption(
        "\(out) already holds a training run; pass --resume to continue it, or choose another --out")
    }
    return outDir
  }

  /// A resumed run keeps the options it was started with (only --steps, --checkpoint-every and --sample-every may change): a flag given with
  /// --resume that disagrees with the saved run is an error naming it, never silently ignored. `extra` are the
  /// family's own flags: (flag, the value given or nil, the saved value), compared as text.
  func refuseChangedOptions<O: CommonTrainingOptions>(saved: O, extra: [(String, String?, String)] = [])
    throws
  {
    var given: [(String, String?, String)] = [
      ("--batch-size", batchSize.map { "\($0)" }, "\(saved.batchSize)"),
      ("--lr", lr.map { "\($0)" }, "\(saved.lr)"),
      ("--warmup", warmup.map { "\($0)" }, "\(saved.warmup)"),
      ("--lr-schedule", lrSchedule?.rawValue, saved.lrSchedule),
      ("--ema-decay", emaDecay.map { "\($0)" }, "\(saved.emaDecay)"),
      ("--clip-grad", clipGrad.map { "\($0)" }, "\(saved.clipGrad)"),
      // --data and --seed have defaults, so only a value other than the default is known to be given.
      ("--data", data == "fashion-mnist" ? nil : data, saved.data),
      ("--seed", seed == 0 ? nil : "\(seed)", "\(saved.seed)"),
    ]
    given += extra
    for (flag, value, old) in given {
      if let value, value != old {
        throw TrainingError.invalidOption(
          "\(flag) \(value): the run in \(out) was started with \(old), and --resume keeps a run's options (only --steps, --checkpoint-every and --sample-every may change); drop \(flag), or start a new run in another --out"
        )
      }
    }
  }

  /// What --resume changes in the saved run: --steps, --checkpoint-every and --sample-every when given.
  var resumeChanges: ResumeChanges {
    ResumeChanges(steps: steps, checkpointEvery: checkpointEvery, sampleEvery: sampleEvery)
  }

  /// The line a resumed run prints.
  func announceResume(step: Int, of total: Int, on device: Device) {
    FileHandle.standardError.write(
      Data("gpugen: resuming \(out) at step \(step) of \(total) on \(device)\n".utf8))
  }
}

/// Data-parallel options: they act when gpugen is started by `mpirun -np P` (docs/DISTRIBUTED.md).
struct DistributedOptions: ParsableArguments {
  @Option(
    help:
      "Under mpirun: megabytes of gradients per all-reduce call (whole tensors per bucket; larger buckets amortise the latency)."
  )
  var bucketMb: Double = 25

  @Flag(
    help:
      "Under mpirun: BatchNorm statistics over the whole global batch (all-reduced, as PyTorch's SyncBatchNorm); default: each process's own share, as DDP."
  )
  var syncBatchnorm = false

  /// The job's processes and how they share each batch; checks --bucket-mb.
  func parallel() throws -> DataParallel {
    guard bucketMb > 0, bucketMb.isFinite, bucketMb <= 4096 else {
      throw TrainingError.invalidOption("--bucket-mb must be in (0, 4096]")
    }
    return DataParallel(
      communicator: try Communicator.world(), bucketBytes: Int(bucketMb * 1_048_576),
      synchronizeBatchNorm: syncBatchnorm)
  }
}

/// Classifier-free guidance: `--guidance-scale s` and `--guidance-rescale φ` (sample, img2img, inpaint).
struct GuidanceOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "Classifier-free guidance scale s: ε = ε_u + s·(ε_c − ε_u) (default 1: plain conditional sampling).",
      discussion:
        "Needs a model trained with --class-dropout (a null class label); one batched forward pass per step on the conditional and null-label copies of the batch.",
      valueName: "s"))
  var guidanceScale: Double?

  @Option(
    help: ArgumentHelp(
      "diffusers' guidance_rescale φ in [0, 1]: pulls the guided output's per-image std towards the conditional one's.",
      valueName: "φ"))
  var guidanceRescale: Double?

  /// The guidance asked for, validated; nil when neither flag is given.
  func guidance() throws -> ClassifierFreeGuidance? {
    if guidanceRescale != nil && guidanceScale == nil {
      throw ModelError.input("--guidance-rescale needs --guidance-scale")
    }
    guard let s = guidanceScale else { return nil }
    let g = ClassifierFreeGuidance(scale: s, rescale: guidanceRescale ?? 0)
    try g.validate()
    return g
  }

  /// The flags given, for the errors of commands whose model takes none.
  var given: [(String, Bool)] {
    [("--guidance-scale", guidanceScale != nil), ("--guidance-rescale", guidanceRescale != nil)]
  }

  /// `unet` itself, or guided when the flags are given (an error for a model without a null label).
  func denoiser(_ unet: UNet2D) throws -> any Denoiser {
    guard let g = try guidance() else { return unet }
    return try GuidedDenoiser(model: unet, guidance: g)
  }
}

/// How a diffusion run bounds the predicted x̂₀: the scheduler config's clip_sample and dynamic thresholding,
/// overridable; under guidance with s > 1 and no flag, `X0Bounding.guidedDefault`.
struct X0Options: ParsableArguments {
  @Flag(
    help:
      "Never clip x̂₀ (the scheduler's clip_sample and thresholding off), as DDIM inversion: reconstructs `gpugen encode`'s noise."
  )
  var noClip = false

  @Flag(
    help: ArgumentHelp(
      "diffusers' dynamic thresholding of x̂₀ (ddpm, ddim, dpmpp-*, unipc): per image s = clamp(quantile(|x̂₀|, r), 1, m), x̂₀ ← clamp(x̂₀, −s, s)/s.",
      discussion:
        "Takes precedence over the scheduler's clip_sample, as thresholding: true does in diffusers."))
  var thresholding = false

  @Option(help: ArgumentHelp("Dynamic thresholding's quantile r in [0, 1] (default 0.995).", valueName: "r"))
  var dynamicThresholdingRatio: Double?

  @Option(help: ArgumentHelp("Dynamic thresholding's largest s, m > 0 (default 1).", valueName: "m"))
  var sampleMaxValue: Double?

  @Flag(
    help:
      "Bound x̂₀ exactly as the scheduler config says (diffusers' behaviour), also under guidance with s > 1, where gpugen's default is \(X0Bounding.guidedDefault.summary)."
  )
  var schedulerClipping = false

  /// The flags given, for the errors of commands and models that take none.
  var given: [(String, Bool)] {
    [
      ("--no-clip", noClip), ("--thresholding", thresholding),
      ("--dynamic-thresholding-ratio", dynamicThresholdingRatio != nil),
      ("--sample-max-value", sampleMaxValue != nil), ("--scheduler-clipping", schedulerClipping),
    ]
  }

  /// The bounding the flags ask for (nil: none given); contradictory flags are errors.
  func explicit() throws -> X0Bounding? {
    let modes = [
      ("--no-clip", noClip), ("--thresholding", thresholding), ("--scheduler-clipping", schedulerClipping),
    ]
    .filter(\.1).map(\.0)
    if modes.count > 1 { throw ModelError.input("\(modes.joined(separator: " and ")) contradict each other") }
    if !thresholding, let f = given.dropFirst(2).prefix(2).first(where: \.1) {
      throw ModelError.input("\(f.0) needs --thresholding")
    }
    if noClip { return X0Bounding.none }
    if schedulerClipping { return .scheduler }
    guard thresholding else { return nil }
    return .threshold(
      DynamicThreshold(ratio: dynamicThresholdingRatio ?? 0.995, maxValue: sampleMaxValue ?? 1))
  }

  /// The bounding of a run with `guidance` (nil: unguided): the flags', else gpugen's default for its scale.
  func bounding(guidance: ClassifierFreeGuidance?) throws -> X0Bounding {
    try explicit() ?? X0Bounding.defaultBounding(guidanceScale: guidance?.scale)
  }
}

/// `--class` checked against a diffusion model's real classes (the null label excluded); a class-conditional
/// model without it cycles every real class.
func diffusionClassLabels(_ labels: [Int]?, config: UNet2DConfig) throws -> [Int]? {
  guard let classes = config.realClassCount else {
    if labels != nil { throw ModelError.input("--class was given but this model is not class-conditional") }
    return nil
  }
  if let bad = labels?.first(where: { $0 >= classes }) {
    throw ModelError.input(
      "--class \(bad) is out of range: the model has classes 0..<\(classes)"
        + (config.hasNullClass
          ? " (\(classes) is its null label: --guidance-scale 0 samples unconditionally)" : ""))
  }
  return labels ?? Array(0..<classes)
}
