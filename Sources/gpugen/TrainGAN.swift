// `gpugen train gan`: trains a generator against a discriminator on images or 2-D toy data, on the shared
// training loop.
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels

extension GANLoss: ExpressibleByArgument {}

struct TrainGAN: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "gan",
    abstract: "Train a GAN (DCGAN on images, MLP on 2-D toy data) with the non-saturating or hinge loss.",
    discussion: """
      Per generator step, --n-dis discriminator steps, then one generator step; two Adam optimizers \
      (--lr-g, --lr-d, --betas); sampling uses an EMA of the generator (--ema-decay).

      Data: fashion-mnist (default), an IDX file or PNG folder, or toy:ring8 (8 Gaussians on a circle of \
      radius 2, σ 0.02) / toy:grid25 (means {−4, −2, 0, 2, 4}², σ 0.05), drawn from Philox. Without \
      --config, images train the reference DCGAN (28×28: G Linear(64, 128·7·7), BN, ReLU, ConvT 128→64, BN, \
      ReLU, ConvT 64→1, tanh; D Conv 1→64, LeakyReLU(0.2), Conv 64→128, BN, LeakyReLU, Linear(6272, 1)) \
      and toy data an MLP pair (G latent 2, 400, 400, 400, 400, each Linear → BatchNorm1d → ReLU; D 256, 256, \
      256, LeakyReLU 0.2). Toy data has its own defaults: 60000 steps of batch 128, lr 1e-3 for both networks \
      with a cosine decay, β 0, 0.9; with them `gpugen train gan --data toy:grid25 --loss hinge --spectral-norm \
      --out DIR` covers every grid25 mode with 93–96 % of the samples within 3σ of a mode on seeds 0–4 \
      (docs/GAN_TOY.md).

      --config takes a GAN folder (gan_config.json, generator/config.json, discriminator/config.json) or a \
      JSON file {"generator": {…}, "discriminator": {…}} with the two config.json objects (an MLP generator \
      takes "norm": "batch" for batch norm in its hidden layers, as Tools/gan_toy_bn_generator.json); the flags \
      --spectral-norm, --pack, --class-conditional, --latent-dim and --loss then override it.

      Writes OUT/checkpoint (a GAN folder: the EMA generator and the discriminator, plus training_state/ for \
      --resume) every --checkpoint-every steps and at the end; OUT/log.csv (d_loss, g_loss, the mean D(x) and \
      D(G(z)) — probabilities for ns, logits for hinge — and both gradient norms); OUT/loss.png; and every \
      --sample-every steps a sample grid (images) or scatter plot (toy) in OUT/samples/ and the collapse \
      signal in OUT/collapse.csv and OUT/collapse.png: on images the class-histogram entropy of 1,000 samples \
      from fixed z under the bundled classifier (or --classifier; ln 10 ≈ 2.30 when every class appears \
      equally), on toy data the modes covered. Ctrl-C writes a checkpoint before exiting; a NaN/Inf stops at \
      once with exit status 3. Every draw is Philox keyed by --seed, so on the CPU a resumed run is bitwise identical.
      """)

  @OptionGroup var training: TrainingOptionGroup

  @Option(help: "A GAN folder or a JSON file with \"generator\" and \"discriminator\" configs (see above).")
  var config: String?

  @Option(help: "The adversarial loss: ns (non-saturating, softplus) or hinge.")
  var loss: GANLoss = .ns

  @Flag(help: "Spectral normalisation on every discriminator weight (instead of its batch norms).")
  var spectralNorm = false

  @Option(help: "Discriminator steps per generator step.")
  var nDis = 1

  @Option(help: "The generator's learning rate (default: --lr, else 2e-4; toy data 1e-3).")
  var lrG: Double?

  @Option(help: "The discriminator's learning rate (default: --lr, else 2e-4; toy data 1e-3).")
  var lrD: Double?

  @Option(help: "Adam's β₁,β₂ for both networks (default 0.5,0.999; toy data 0,0.9).")
  var betas: String?

  @Flag(help: "Condition both networks on the data's class labels (conditional BN in G, projection in D).")
  var classConditional = false

  @Option(
    help: "DiffAugment policies applied to every batch D sees, comma-separated: translation, cutout.")
  var diffaugment: String?

  @Option(help: "PacGAN: the discriminator sees M samples concatenated along the channels.")
  var pack = 1

  @Option(help: "Latent dimensions (default: 64 for images, 2 for toy data, or the --config's).")
  var latentDim: Int?

  @Option(
    help: ArgumentHelp(
      "Start from a trained GAN instead of the initialisation: a GAN folder, a run's checkpoint, or gan (the bundled one).",
      discussion:
        "Both networks and the EMA generator come from the folder (a checkpoint's trained generator from its training_state/); the optimizers, the EMA's update count and the step start afresh. The folder's configs define the networks, so not with --config.",
      valueName: "dir"))
  var initFrom: String?

  @Option(
    help: ArgumentHelp(
      "Instance selection: train on this share (0, 1] of each class's images, those nearest their class's mean under the classifier's features (--classifier).",
      discussion:
        "A Gaussian per class (one for unlabelled data) in the classifier's features (128-d for the bundled one); each class keeps round(r · its count) images by Mahalanobis distance (DeVries et al. 2020). Precision rises and recall falls. The kept images are saved in each checkpoint, so --resume trains on the same ones.",
      valueName: "r"))
  var instanceSelection: Double?

  @Option(
    help: ArgumentHelp(
      "The classifier that scores --instance-selection and the collapse signal: a folder written by `gpugen train classifier`, or classifier (the bundled Fashion-MNIST one, the default).",
      valueName: "dir"))
  var classifier: String?

  @OptionGroup var deviceOptions: DeviceOptions

  @OptionGroup(title: "Data-parallel training (under mpirun)") var distributed: DistributedOptions

  func run() throws {
    try reportingUserErrors(weightsLabel: "checkpoint weights") { try train() }
  }

  var isToy: Bool { ToyDataset.isToy(training.data) }

  /// The run's options: the family defaults (toy or image), then the flags.
  func options() throws -> GANTrainingOptions {
    var o = isToy ? GANTrainingOptions.toyDefaults() : GANTrainingOptions()
    training.apply(to: &o)
    if let lr = training.lr { o.lrD = lr }
    if let lrG { o.lr = lrG }
    if let lrD { o.lrD = lrD }
    o.loss = loss
    o.nDis = nDis
    o.instanceSelection = instanceSelection
    o.classifier = try classifier.map { try ClassifierFolder.locate($0).path }
    if let betas {
      let parts = betas.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
      guard parts.count == 2, let b1 = parts[0], let b2 = parts[1] else {
        throw TrainingError.invalidOption("--betas takes two numbers B1,B2, got '\(betas)'")
      }
      (o.beta1, o.beta2) = (b1, b2)
    }
    if let diffaugment {
      o.diffAugment = diffaugment.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    }
    try o.validate()
    return o
  }

  /// The network configs: --config, else the reference DCGAN for the data's images or the toy MLP pair, with
  /// the flags applied.
  func configs(
    data: GANData, options o: GANTrainingOptions, given: (GANNetworkConfig, GANNetworkConfig)?
  ) throws -> (GANModelConfig, GANNetworkConfig, GANNetworkConfig) {
    var g: GANNetworkConfig
    var d: GANNetworkConfig
    if let given {
      (g, d) = given
    } else if case .images(let images) = data {
      g = GANNetworkConfig(role: .generator)
      d = GANNetworkConfig(role: .discriminator)
      (g.channels, d.channels) = (images.channels, images.channels)
      (g.sampleSize, d.sampleSize) = (images.size, images.size)
    } else {
      (g, d) = (GANNetworkConfig.toyGenerator, GANNetworkConfig.toyDiscriminator)
    }
    if spectralNorm { d.norm = .spectral }
    if pack != 1 { d.pack = pack }
    if let latentDim { g.latentDim = latentDim }
    var classes = max(g.numClasses, d.numClasses)
    if classConditional {
      guard case .images(let images) = data, images.labels != nil else {
        throw TrainingError.invalidOption(
          "--class-conditional needs labelled images (\(training.data) has no labels)")
      }
      classes = max(classes, images.classCount)
      d.numClasses = classes
      if g.architecture == .dcgan { g.numClasses = classes }
    }
    let source = config ?? "the flags"
    try g.validate(source: source)
    try d.validate(source: source)
    let model = GANModelConfig(
      latentDim: g.latentDim, loss: o.loss, conditional: classes > 0, numClasses: classes, data: o.data)
    try model.check(generator: g, discriminator: d, source: source)
    return (model, g, d)
  }

  /// The generator and discriminator configs of a GAN folder or a {"generator", "discriminator"} JSON file.
  static func readConfigs(_ path: String) throws -> (GANNetworkConfig, GANNetworkConfig) {
    let url = URL(fileURLWithPath: path)
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
      throw ModelError.missing("GAN config \(path)")
    }
    if isDir.boolValue {
      let (_, g, d) = try GANModel.readConfigs(url)
      guard let d else { throw ModelError.missing("discriminator: \(path)/discriminator/config.json") }
      return (g, d)
    }
    let data = try Data(contentsOf: url)
    guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
      throw ModelError.malformed(path, "not a JSON object")
    }
    if let bad = obj.keys.filter({ !["generator", "discriminator"].contains($0) }).sorted().first {
      throw ModelError.unsupported(path, "field \(bad) (a GAN config file holds generator and discriminator)")
    }
    func part(_ key: String) throws -> GANNetworkConfig {
      guard let o = obj[key] as? [String: Any] else { throw ModelError.malformed(path, "\(key) is missing") }
      return try GANNetworkConfig(
        json: try JSONSerialization.data(withJSONObject: o), source: "\(path) (\(key))")
    }
    return (try part("generator"), try part("discriminator"))
  }

  /// The training data: a toy mixture or images of the size the configs (or the reference) need.
  static func loadData(_ spec: String, config: GANNetworkConfig?) throws -> GANData {
    if ToyDataset.isToy(spec) { return .toy(try ToyDataset.parse(spec)) }
    let (size, channels) = config.map { ($0.sampleSize, $0.channels) } ?? (28, 1)
    if let c = config, c.architecture == .mlp {
      throw TrainingError.invalidOption("an MLP GAN trains on toy data (toy:ring8, toy:grid25), not \(spec)")
    }
    return .images(try TrainingImages.load(source: spec, sampleSize: size, channels: channels))
  }

  /// The run's classifier (`--classifier`, else the bundled one) on `device`.
  static func judge(_ options: GANTrainingOptions, device: Device) throws -> ImageClassifier {
    guard let path = options.classifier else { return try ImageClassifier.bundled(device: device) }
    return try ImageClassifier.load(from: URL(fileURLWithPath: path), device: device)
  }

  /// The data a run trains on: all of `full`, or the instance selection `options` asks for (the `saved` one on
  /// --resume, else chosen now with the run's classifier, `judge`).
  static func select(
    _ full: GANData, options: GANTrainingOptions, saved: InstanceSelection.Saved?, announce: Bool = false
  ) throws -> (data: GANData, selection: InstanceSelection.Saved?) {
    guard let ratio = options.instanceSelection else { return (full, nil) }
    guard case .images(let images) = full else {
      throw TrainingError.invalidOption("--instance-selection is for image data, not \(options.data)")
    }
    if let saved {
      guard saved.of == images.count else {
        throw TrainingError.checkpoint(
          "the checkpoint's instance selection is of \(saved.of) images, but \(options.data) has \(images.count)"
        )
      }
      return (.images(try images.subset(saved.indices)), saved)
    }
    let classifier = try judge(options, device: .cpu)
    let kept = try InstanceSelection.select(images, ratio: ratio, classifier: classifier)
    if announce {
      FileHandle.standardError.write(
        Data(
          "gpugen: instance selection: training on \(kept.count) of \(images.count) images (\(ratio) of \(images.labels == nil ? "the set" : "each class"), nearest the mean under \(options.classifier ?? "the bundled classifier")'s features)\n"
            .utf8))
    }
    return (
      .images(try images.subset(kept)), InstanceSelection.Saved(ratio: ratio, indices: kept, of: images.count)
    )
  }

  func train() throws {
    HostMemory.fixMmapThreshold(bytes: 1 << 20)
    let job = try TrainingJob(training: training, distributed: distributed, deviceOptions: deviceOptions)
    let trainer: GANTrainer
    if training.resume {
      let saved = try GANTrainer.savedState(in: job.outDir)
      let b = saved.options
      try training.refuseChangedOptions(
        saved: b,
        extra: [
          ("--loss", loss == .ns ? nil : loss.rawValue, b.loss.rawValue),
          ("--n-dis", nDis == 1 ? nil : "\(nDis)", "\(b.nDis)"),
          ("--lr-g", lrG.map { "\($0)" }, "\(b.lr)"), ("--lr-d", lrD.map { "\($0)" }, "\(b.lrD)"),
          (
            "--betas",
            betas.map {
              $0.split(separator: ",").map {
                Double($0.trimmingCharacters(in: .whitespaces)).map { "\($0)" } ?? "?"
              }
              .joined(separator: ",")
            }, "\(b.beta1),\(b.beta2)"
          ),
          (
            "--instance-selection", instanceSelection.map { "\($0)" },
            b.instanceSelection.map { "\($0)" } ?? "every image"
          ),
          (
            "--classifier", try classifier.map { try ClassifierFolder.locate($0).path },
            b.classifier ?? "the bundled classifier"
          ),
        ])
      if initFrom != nil {
        throw TrainingError.invalidOption(
          "--resume continues the saved run from its own weights: drop --init-from")
      }
      try job.checkBatch(saved.options.batchSize)
      let data = try TrainGAN.select(
        TrainGAN.loadData(saved.options.data, config: saved.generator), options: saved.options,
        saved: try GANTrainer.savedSelection(in: saved.state)
      ).data
      trainer = try GANTrainer.resume(
        from: job.outDir, data: data, device: job.device, changes: training.resumeChanges)
      if job.isRoot { training.announceResume(step: trainer.step, of: trainer.options.steps, on: job.device) }
    } else {
      let o = try options()
      try job.checkBatch(o.batchSize)
      let start = try initFrom.map { path -> URL in
        if config != nil {
          throw TrainingError.invalidOption("--init-from takes the folder's configs: drop --config")
        }
        let url = try ModelFolder.locate(path)
        guard GANModel.isGANFolder(url) else {
          throw TrainingError.invalidOption(
            "--init-from: \(url.path) is not a GAN folder (gan_config.json, generator/)")
        }
        return url
      }
      let given = try (start?.path ?? config).map(TrainGAN.readConfigs)
      let (data, selection) = try TrainGAN.select(
        TrainGAN.loadData(o.data, config: given?.0), options: o, saved: nil, announce: job.isRoot)
      let (model, g, d) = try configs(data: data, options: o, given: given)
      trainer = try GANTrainer(
        model: model, generator: g, discriminator: d, data: data, options: o, device: job.device)
      trainer.selection = selection
      if let start { try trainer.initialize(from: start) }
      try job.createOutput()
      let what: String
      switch data {
      case .images(let images): what = "\(images.count) images (\(o.data))"
      case .toy(let t): what = "toy data \(t.rawValue)"
      }
      job.announce(
        "gpugen: training a \(g.architecture.rawValue) GAN (G \(trainer.generator.parameterCount), D \(trainer.discriminator.parameterCount) parameters, \(o.loss.rawValue) loss, D norm \(d.norm.rawValue)\(model.conditional ? ", \(model.numClasses) classes" : "")\(d.pack > 1 ? ", pack \(d.pack)" : "")) on \(what) for \(o.steps) steps, batch \(o.batchSize), n_dis \(o.nDis), on \(job.device)\(job.processesNote)"
      )
      if job.isRoot { try trainer.writeCheckpoint(to: job.outDir) }
    }
    trainer.parallel = job.parallel
    try job.run(
      GANRun(trainer, outDir: job.outDir),
      agreeing: [
        ("the training options", "\(trainer.options)"),
        (
          "the model config",
          "\(trainer.modelConfig) \(trainer.generatorConfig) \(trainer.discriminatorConfig)"
        ),
        ("the data", trainer.data.fingerprint),
      ])
  }
}

/// The GAN family on the shared training loop.
final class GANRun: TrainingRun {
  static let columns = ["d_loss", "g_loss", "d_real", "d_fake", "grad_norm_d", "grad_norm_g", "lr_g", "lr_d"]
  let trainer: GANTrainer
  let outDir: URL
  let recentD = RecentAverage(), recentG = RecentAverage()
  /// The bundled classifier that judges image samples (nil on toy data, or when it cannot be loaded: then a
  /// warning says why, once, and collapse.csv holds nan).
  lazy var classifier: ImageClassifier? = {
    guard case .images = trainer.data else { return nil }
    do { return try TrainGAN.judge(trainer.options, device: trainer.device) } catch {
      FileHandle.standardError.write(
        Data(
          "gpugen: warning: no classifier for the collapse signal (\(error)); collapse.csv logs nan\n".utf8))
      return nil
    }
  }()
  init(_ trainer: GANTrainer, outDir: URL) {
    self.trainer = trainer
    self.outDir = outDir
  }

  var currentStep: Int { trainer.step }
  var totalSteps: Int { trainer.options.steps }
  var checkpointEvery: Int { trainer.options.checkpointEvery }
  var sampleEvery: Int { trainer.options.sampleEvery }
  var logColumns: [String] { GANRun.columns }
  var plotColumns: [String] { ["d_loss", "g_loss"] }

  func trainOneStep() throws -> [Double] {
    let s = try trainer.trainStep()
    return [
      Double(s.dLoss), Double(s.gLoss), Double(s.dReal), Double(s.dFake), Double(s.gradNormD),
      Double(s.gradNormG), Double(s.lrG), Double(s.lrD),
    ]
  }

  func note(_ v: [Double]) -> String {
    String(
      format: "D %.3f (avg %.3f) | G %.3f (avg %.3f) | D(x) %.2f D(G(z)) %.2f", v[0], recentD.add(v[0]), v[1],
      recentG.add(v[1]), v[2], v[3])
  }

  func writeCheckpoint(to outDir: URL) throws { try trainer.writeCheckpoint(to: outDir) }

  func writeSamples(to outDir: URL) throws {
    let model = try trainer.emaModel()
    let dir = outDir.appendingPathComponent("samples")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let signal = try GANCollapse.measure(
      model, data: trainer.data, classifier: classifier, device: trainer.device)
    let name = String(format: "step-%08d.png", trainer.step)
    switch trainer.data {
    case .images:
      let classes = model.config.conditional ? Array(0..<model.config.numClasses) : nil
      let n = classes.map { 8 * $0.count } ?? 64
      let images = try GANOps.sample(
        model, count: n, batchSize: n, seed: 0, labels: classes, device: trainer.device)
      let grid = try Image8.grid(images, shape: [n] + model.sampleShape, columns: classes?.count ?? 8).zoomed(
        2)
      try StagedOutputs.replace(dir.appendingPathComponent(name)) { try grid.writePNG(to: $0) }
    case .toy(let toy):
      let plot = ToyScatter.render(
        signal.points, dataset: toy, title: "step \(trainer.step): \(signal.summary)")
      try StagedOutputs.replace(dir.appendingPathComponent(name)) { try plot.writePNG(to: $0) }
    }
    try GANCollapse.append(step: trainer.step, signal, to: outDir)
  }
}
extension TruncationMode: ExpressibleByArgument {}
