// The small Fashion-MNIST model that ships with gpugen, found without a path.
import Foundation

/// Locates the bundled default model.
public enum DefaultModel {
  /// Name of the SwiftPM resource bundle of this target.
  static let bundleName = "gpugen_GPUGenModels.resources"

  /// The bundled pipeline folder: $GPUGEN_DEFAULT_MODEL if set, else the resource bundle next to the
  /// executable (SwiftPM's layout), else the one in the build folder this binary was built in.
  public static func url() throws -> URL {
    if let env = ProcessInfo.processInfo.environment["GPUGEN_DEFAULT_MODEL"], !env.isEmpty {
      return URL(fileURLWithPath: env)
    }
    var candidates: [URL] = []
    let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
    candidates.append(exe.deletingLastPathComponent().appendingPathComponent(bundleName))
    candidates.append(Bundle.main.bundleURL.appendingPathComponent(bundleName))
    if let p = Bundle.main.executableURL?.resolvingSymlinksInPath() {
      candidates.append(p.deletingLastPathComponent().appendingPathComponent(bundleName))
    }
    for c in candidates {
      let model = c.appendingPathComponent("DefaultModel")
      if FileManager.default.fileExists(atPath: model.appendingPathComponent("model_index.json").path) {
        return model
      }
    }
    throw ModelError.missing(
      "bundled default model (looked for \(bundleName)/DefaultModel next to the executable); pass --model DIR or set GPUGEN_DEFAULT_MODEL"
    )
  }

  /// A bundled model by name: "diffusion" (the default model) or "vae" (the bundled ConvVAE); nil for other
  /// names. Throws when the name is known but the bundle is missing.
  public static func bundled(named name: String) throws -> URL? {
    switch name {
    case "diffusion", "default": return try url()
    case "vae":
      if let env = ProcessInfo.processInfo.environment["GPUGEN_DEFAULT_VAE"], !env.isEmpty {
        return URL(fileURLWithPath: env)
      }
      let vae = try url().deletingLastPathComponent().appendingPathComponent("DefaultVAE")
      guard FileManager.default.fileExists(atPath: vae.appendingPathComponent("config.json").path) else {
        throw ModelError.missing(
          "bundled VAE (looked for \(vae.path)); set GPUGEN_DEFAULT_VAE or pass --model DIR")
      }
      return vae
    default: return nil
    }
  }
}
