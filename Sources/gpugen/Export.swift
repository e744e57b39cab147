// `gpugen export`: a model folder (a training checkpoint, a pipeline or a bare UNet) copied for shipping, with
// its weights stored as F16, BF16 or F32 and without the training state.
import ArgumentParser
import Foundation
import GPUGenModels
import GPUGenNN

struct Export: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Copy a model folder (diffusion, VAE or GAN) with its weights stored as F16, BF16 or F32.",
    discussion: """
      Reads --model (a diffusers pipeline folder such as a `gpugen train diffusion` checkpoint, a bare
      UNet folder, or a ConvVAE / AutoencoderKL folder such as a `gpugen train vae` checkpoint) and writes the
      same layout to --out: model_index.json and scheduler/ of a pipeline as
      they are, the UNet's config.json, and its weights (every tensor, with the file's metadata) rounded to
      --dtype. training_state/ is left out: the copy samples in gpugen and loads in diffusers, but does not
      resume training. F16 halves the size of F32 weights; a weight too large for F16 (|w| > 65504) is an
      error rather than an infinity. --out must not exist yet (nothing is overwritten).
      """)

  @Option(help: "Model folder to copy (pipeline, bare UNet, ConvVAE, AutoencoderKL or GAN).")
  var model: String

  @Option(help: "Folder to create.")
  var out: String

  @Option(help: "Weight storage: f16, bf16 or f32.")
  var dtype = "f16"

  func run() throws {
    try reportingUserErrors { try export() }
  }

  func export() throws {
    guard let storage = SafeTensorsDType(rawValue: dtype.uppercased()) else {
      throw ModelError.input("unknown --dtype '\(dtype)'; choose f16, bf16 or f32")
    }
    let fm = FileManager.default
    let source = URL(fileURLWithPath: model)
    // Any folder gpugen can place; a VAE folder has the layout of a bare UNet folder (config.json + weights).
    if case .gan = try ModelFolder.classify(source) { return try exportGAN(source, storage: storage) }
    let folder = try DiffusionModelFolder.resolve(source)
    let target = URL(fileURLWithPath: out)
    guard !fm.fileExists(atPath: target.path) else {
      throw ModelError.input("\(out) already exists; choose a new --out folder")
    }
    let weightsName = "diffusion_pytorch_model.safetensors"
    let weightsURL = folder.unet.appendingPathComponent(weightsName)
    guard fm.fileExists(atPath: weightsURL.path) else { throw ModelError.missing(weightsURL.path) }
    let file = try SafeTensors.read(contentsOf: weightsURL)
    if storage == .f16 {
      for name in file.order {
        if let big = file.tensors[name]!.values.first(where: { abs($0) > 65504 && $0.isFinite }) {
          throw ModelError.input("\(name) holds \(big), too large for F16; export with --dtype bf16 or f32")
        }
      }
    }
    // Built in a hidden folder beside --out and renamed into place once complete: a failed export leaves none.
    let pipeline = fm.fileExists(atPath: source.appendingPathComponent("model_index.json").path)
    try fm.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
    let outputs = StagedOutputs()
    try outputs.stageFolder(target) { staging in
      let unetOut = pipeline ? staging.appendingPathComponent("unet") : staging
      try fm.createDirectory(at: unetOut, withIntermediateDirectories: true)
      if pipeline {
        try fm.copyItem(
          at: source.appendingPathComponent("model_index.json"),
          to: staging.appendingPathComponent("model_index.json"))
        if let sched = folder.schedulerConfig {
          try fm.copyItem(
            at: sched.deletingLastPathComponent(), to: staging.appendingPathComponent("scheduler"))
        }
      }
      try fm.copyItem(
        at: folder.unet.appendingPathComponent("config.json"),
        to: unetOut.appendingPathComponent("config.json"))
      try SafeTensors.write(
        file.order.map { ($0, file.tensors[$0]!) }, metadata: file.metadata, dtype: storage,
        to: unetOut.appendingPathComponent(weightsName))
    }
    try outputs.commit()
    let before = (try? fm.attributesOfItem(atPath: weightsURL.path)[.size] as? Int) ?? 0
    let written = target.appendingPathComponent(
      fm.fileExists(atPath: target.appendingPathComponent("unet").path) ? "unet/\(weightsName)" : weightsName)
    let after = (try? fm.attributesOfItem(atPath: written.path)[.size] as? Int) ?? 0
    let count = file.tensors.values.reduce(0) { $0 + $1.values.count }
    print(
      "gpugen: wrote \(out): \(file.order.count) tensors, \(count) weights as \(storage.rawValue) "
        + "(\(before) → \(after) bytes)")
  }

  /// A GAN folder: gan_config.json, and generator/ and discriminator/ each with its config and converted
  /// weights (training_state/ left out).
  func exportGAN(_ source: URL, storage: SafeTensorsDType) throws {
    let fm = FileManager.default
    _ = try GANModel.readConfigs(source)
    let target = URL(fileURLWithPath: out)
    guard !fm.fileExists(atPath: target.path) else {
      throw ModelError.input("\(out) already exists; choose a new --out folder")
    }
    var tensors = 0, bytes = 0
    try fm.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
    let outputs = StagedOutputs()
    try outputs.stageFolder(target) { staging in
      try fm.copyItem(
        at: source.appendingPathComponent(GANModelConfig.fileName),
        to: staging.appendingPathComponent(GANModelConfig.fileName))
      for part in [GANModel.generatorFolder, GANModel.discriminatorFolder] {
        let from = source.appendingPathComponent(part), to = staging.appendingPathComponent(part)
        guard fm.fileExists(atPath: from.path) else { continue }
        try fm.createDirectory(at: to, withIntermediateDirectories: true)
        try fm.copyItem(
          at: from.appendingPathComponent("config.json"), to: to.appendingPathComponent("config.json"))
        let weights = from.appendingPathComponent(ModelFolder.weightsFile)
        guard fm.fileExists(atPath: weights.path) else { throw ModelError.missing(weights.path) }
        let file = try SafeTensors.read(contentsOf: weights)
        if storage == .f16 {
          for name in file.order {
            if let big = file.tensors[name]!.values.first(where: { abs($0) > 65504 && $0.isFinite }) {
              throw ModelError.input(
                "\(part)/\(name) holds \(big), too large for F16; export with --dtype bf16 or f32")
            }
          }
        }
        let written = to.appendingPathComponent(ModelFolder.weightsFile)
        try SafeTensors.write(
          file.order.map { ($0, file.tensors[$0]!) }, metadata: file.metadata, dtype: storage, to: written)
        tensors += file.order.count
        bytes += (try? fm.attributesOfItem(atPath: written.path)[.size] as? Int) ?? 0
      }
    }
    try outputs.commit()
    print(
      "gpugen: wrote \(out): a GAN folder, \(tensors) tensors as \(storage.rawValue) (\(bytes) bytes of weights)"
    )
  }
}
