// The small Fashion-MNIST model that ships with gpugen, found without a path.
import Foundation

/// Locates the bundled default model.
public enum DefaultModel {
  /// Name of the SwiftPM resource bundle of this target.
  static let bundleName = "gpugen_GPUGenModels.resources"

  /// The bundled pipeline folder: $GPUGEN_DEFAULT_MODEL if set, else the resource bundle next to the
  /// executable (SwiftPM's layout), else the one in the build folder this binary was built in.
  public static func url() throws -> URL {
    try resource("DefaultModel", marker: "model_index.json", environment: "GPUGEN_DEFAULT_MODEL")
  }

  /// The bundled ConvVAE folder: $GPUGEN_DEFAULT_VAE if set, else DefaultVAE in the resource bundle.
  public static func vaeURL() throws -> URL {
    try resource("DefaultVAE", marker: "config.json", environment: "GPUGEN_DEFAULT_VAE")
  }

  /// The bundled class-conditional GAN folder: $GPUGEN_DEFAULT_GAN if set, else DefaultGAN in the resource
  /// bundle.
  public static func ganURL() throws -> URL {
    try resource("DefaultGAN", marker: GANModelConfig.fileName, environment: "GPUGEN_DEFAULT_GAN")
  }

  /// A bundled model by name: "diffusion" (the default model), "vae" (the bundled ConvVAE) or "gan" (the
  /// bundled class-conditional DCGAN); nil for other names.
  public static func bundled(named name: String) throws -> URL? {
    switch name {
    case "diffusion", "default": return try url()
    case "vae": return try vaeURL()
    case "gan": return try ganURL()
    default: return nil
    }
  }

  /// The resource folder `name` holding `marker`, or the folder $`environment` names; the error names
  /// `option` as the way to pass a folder instead.
  static func resource(
    _ name: String, marker: String, environment variable: String, option: String = "--model"
  ) throws -> URL {
    if let env = ProcessInfo.processInfo.environment[variable], !env.isEmpty {
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
      let model = c.appendingPathComponent(name)
      if FileManager.default.fileExists(atPath: model.appendingPathComponent(marker).path) { return model }
    }
    throw ModelError.missing(
      "bundled model \(name) (looked for \(bundleName)/\(name) next to the executable); pass \(option) DIR or set \(variable)"
    )
  }
}
