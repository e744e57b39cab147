// Model folders say which family they hold: a diffusers pipeline or UNet folder (diffusion), a ConvVAE or
// diffusers AutoencoderKL folder (VAE), a GAN folder (gan_config.json, generator/, discriminator/).
// `--model` takes a folder or a bundled model's name; a folder of that
// name in the working directory wins, as diffusers' from_pretrained prefers a local folder.
import Foundation

/// The generative families gpugen trains and samples.
public enum ModelFamily: String, Sendable, CaseIterable {
  case diffusion, vae, gan
}

/// What a model folder holds.
public enum ModelFolderKind: Equatable, Sendable {
  /// A diffusers pipeline (model_index.json) or a bare UNet2DModel folder.
  case diffusion(DiffusionModelFolder)
  /// A gpugen ConvVAE folder.
  case convVAE(URL)
  /// A diffusers AutoencoderKL folder.
  case autoencoderKL(URL)
  /// A gpugen GAN folder (gan_config.json, generator/, discriminator/).
  case gan(URL)
  /// A gpugen toy 2-D diffusion folder (config.json `ToyDenoiser`, weights, scheduler_config.json).
  case toyDiffusion(URL)
  /// A gpugen toy 2-D VAE folder (config.json `ToyVAE`, weights).
  case toyVAE(URL)

  /// The family of the model.
  public var family: ModelFamily {
    switch self {
    case .diffusion, .toyDiffusion: return .diffusion
    case .convVAE, .autoencoderKL, .toyVAE: return .vae
    case .gan: return .gan
    }
  }
}

/// Finds and classifies model folders of every family.
public enum ModelFolder {
  /// The weights file of a ConvVAE or AutoencoderKL folder.
  public static let weightsFile = "diffusion_pytorch_model.safetensors"
  /// The names of the bundled models.
  public static let bundledNames = ["diffusion", "vae", "gan"]

  /// The folder `--model` means: an existing path, else a bundled model's name ("diffusion", "vae"), else
  /// nil for the default (the bundled diffusion model).
  public static func locate(_ model: String?) throws -> URL {
    guard let model else { return try DefaultModel.url() }
    let url = URL(fileURLWithPath: model)
    if FileManager.default.fileExists(atPath: url.path) { return url }
    if let bundled = try DefaultModel.bundled(named: model) { return bundled }
    throw ModelError.missing(
      "model folder \(url.path) (and \(model) is not a bundled model's name: \(bundledNames.joined(separator: ", ")))"
    )
  }

  /// Says which family the folder at `url` holds; a folder it cannot place is an error saying what it found.
  public static func classify(_ url: URL) throws -> ModelFolderKind {
    let fm = FileManager.default
    var isDir: ObjCBool = false
    guard fm.fileExists(atPath: url.path, isDirectory: &isDir) else {
      throw ModelError.missing("model folder \(url.path)")
    }
    guard isDir.boolValue else {
      throw ModelError.malformed(url.path, "expected a model folder, found a file")
    }
    if GANModel.isGANFolder(url) { return .gan(url) }
    if fm.fileExists(atPath: url.appendingPathComponent("model_index.json").path) {
      return .diffusion(try DiffusionModelFolder.resolve(url))
    }
    let configURL = url.appendingPathComponent("config.json")
    guard let data = fm.contents(atPath: configURL.path) else {
      let found = ((try? fm.contentsOfDirectory(atPath: url.path)) ?? []).sorted()
      throw ModelError.unsupported(
        url.path,
        "not a model folder: no model_index.json or config.json (found \(found.isEmpty ? "nothing" : found.prefix(8).joined(separator: ", ")))"
      )
    }
    guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
      throw ModelError.malformed(configURL.path, "not a JSON object")
    }
    switch obj["_class_name"] as? String {
    case ConvVAEConfig.className: return .convVAE(url)
    case "AutoencoderKL": return .autoencoderKL(url)
    case ToyDenoiserConfig.className: return .toyDiffusion(url)
    case ToyVAEConfig.className: return .toyVAE(url)
    case "UNet2DModel":
      return .diffusion(try DiffusionModelFolder.resolve(url))
    case nil where obj["down_block_types"] != nil && obj["latent_channels"] == nil:
      // A UNet config written without _class_name.
      return .diffusion(try DiffusionModelFolder.resolve(url))
    case let other?:
      throw ModelError.unsupported(
        configURL.path,
        "_class_name \(other): gpugen reads UNet2DModel, ConvVAE, AutoencoderKL, ToyDenoiser and ToyVAE folders"
      )
    case nil:
      throw ModelError.unsupported(
        configURL.path, "config.json has no _class_name, so the model family is unknown")
    }
  }

  /// Loads the VAE in a ConvVAE or AutoencoderKL folder onto `device` (strict weights), in evaluation mode.
  public static func loadVAE(_ kind: ModelFolderKind, device: Device) throws -> any VariationalAutoencoder {
    switch kind {
    case .convVAE(let url):
      let cfgURL = url.appendingPathComponent("config.json")
      guard let d = FileManager.default.contents(atPath: cfgURL.path) else {
        throw ModelError.missing(cfgURL.path)
      }
      let config = try ConvVAEConfig(json: d, source: cfgURL.path)
      let model = try ConvVAE(config: config, on: device)
      let wURL = url.appendingPathComponent(weightsFile)
      guard FileManager.default.fileExists(atPath: wURL.path) else { throw ModelError.missing(wURL.path) }
      do { try model.load(contentsOf: wURL) } catch let e as ModuleError {
        throw ModelError.weight(wURL.lastPathComponent, "\(e)")
      }
      model.eval()
      return model
    case .autoencoderKL(let url):
      let model = try AutoencoderKL.load(from: url, device: device)
      model.eval()
      return model
    case .diffusion(let f):
      throw ModelError.input("\(f.unet.path) holds a diffusion model, not a VAE")
    case .gan(let url):
      throw ModelError.input("\(url.path) holds a GAN, not a VAE")
    case .toyDiffusion(let url):
      throw ModelError.input("\(url.path) holds a toy 2-D diffusion model, not a VAE")
    case .toyVAE(let url):
      throw ModelError.input(
        "\(url.path) holds a toy 2-D VAE: `gpugen sample` and `gpugen evaluate` take it; encode, decode, reconstruct and interpolate work on image VAEs"
      )
    }
  }
}
