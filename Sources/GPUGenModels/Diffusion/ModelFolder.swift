// The two folder layouts diffusers writes: a pipeline folder (model_index.json, unet/, scheduler/) and a
// bare UNet folder (config.json + diffusion_pytorch_model.safetensors).
import Foundation

/// Where a model's UNet and (optionally) scheduler config live.
public struct DiffusionModelFolder: Equatable, Sendable {
  /// Folder with config.json and diffusion_pytorch_model.safetensors.
  public var unet: URL
  /// scheduler/scheduler_config.json of a pipeline folder, if present.
  public var schedulerConfig: URL?

  /// Resolves a pipeline folder or a bare UNet folder; errors name what is missing.
  public static func resolve(_ url: URL) throws -> DiffusionModelFolder {
    let fm = FileManager.default
    var isDir: ObjCBool = false
    guard fm.fileExists(atPath: url.path, isDirectory: &isDir) else {
      throw ModelError.missing("model folder \(url.path)")
    }
    guard isDir.boolValue else {
      throw ModelError.malformed(url.path, "expected a model folder, found a file")
    }
    let index = url.appendingPathComponent("model_index.json")
    if fm.fileExists(atPath: index.path) {
      guard let data = try? Data(contentsOf: index),
        (try? JSONSerialization.jsonObject(with: data)) is [String: Any]
      else { throw ModelError.malformed(index.path, "not a JSON object") }
      let unet = url.appendingPathComponent("unet")
      guard fm.fileExists(atPath: unet.path) else {
        throw ModelError.missing("\(unet.path) (the pipeline's UNet folder)")
      }
      let sched = url.appendingPathComponent("scheduler/scheduler_config.json")
      return DiffusionModelFolder(
        unet: unet, schedulerConfig: fm.fileExists(atPath: sched.path) ? sched : nil)
    }
    return DiffusionModelFolder(unet: url, schedulerConfig: nil)
  }
}

/// Loads a diffusers UNet2DModel folder onto a device.
public enum UNet2DModelLoader {
  /// Weight file names diffusers uses, in order of preference.
  static let weightFiles = ["diffusion_pytorch_model.safetensors", "model.safetensors"]

  /// Reads config.json and the safetensors weights of a bare UNet folder.
  public static func load(from dir: URL, device: Device) throws -> UNet2D {
    let configURL = dir.appendingPathComponent("config.json")
    guard let data = try? Data(contentsOf: configURL) else { throw ModelError.missing(configURL.path) }
    let config = try UNet2DConfig(json: data, source: configURL.path)
    guard
      let weightsURL = weightFiles.map({ dir.appendingPathComponent($0) }).first(where: {
        FileManager.default.fileExists(atPath: $0.path)
      })
    else {
      if FileManager.default.fileExists(
        atPath: dir.appendingPathComponent("diffusion_pytorch_model.bin").path)
      {
        throw ModelError.unsupported(
          dir.path, "PyTorch .bin weights; save the model with safe_serialization=True")
      }
      throw ModelError.missing("\(dir.appendingPathComponent(weightFiles[0]).path)")
    }
    let file: SafeTensorsFile
    do { file = try SafeTensors.read(contentsOf: weightsURL) } catch {
      throw ModelError.malformed(weightsURL.path, "\(error)")
    }
    let tensors = file.tensors
    return try UNet2D(
      config: config, weights: { name, _ in tensors[name].map { ($0.shape, $0.values) } },
      names: Array(tensors.keys),
      device: device)
  }
}
