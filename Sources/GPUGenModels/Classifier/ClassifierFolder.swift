// The Fashion-MNIST classifier that ships with gpugen, and the folder `--classifier` means: a folder that
// exists (a folder named `classifier` in the working directory wins, as with `--model vae`), else the
// bundled classifier's name, else nothing given: the bundled classifier.
import Foundation
import GPUGenCore

/// Finds classifier folders (`classifier_config.json` + `classifier.safetensors`, as `gpugen train
/// classifier` writes them), the bundled one included.
public enum ClassifierFolder {
  /// The bundled classifier's name, as `--classifier` takes it.
  public static let bundledName = "classifier"

  /// The bundled classifier's folder: $GPUGEN_DEFAULT_CLASSIFIER if set, else `DefaultClassifier` in the
  /// resource bundle (found as the bundled diffusion model and VAE are). Throws `ModelError.missing` if
  /// neither exists.
  public static func bundled() throws -> URL {
    try DefaultModel.resource(
      "DefaultClassifier", marker: ImageClassifier.configFile, environment: "GPUGEN_DEFAULT_CLASSIFIER",
      option: "--classifier")
  }

  /// The folder `--classifier` means: nil is the bundled classifier; an existing path is itself; the
  /// bundled name (`classifier`) is the bundled classifier when no such folder exists; any other path that
  /// does not exist throws `ClassifierError.notFound` naming it.
  public static func locate(_ name: String?) throws -> URL {
    guard let name else { return try bundled() }
    let url = URL(fileURLWithPath: name)
    if FileManager.default.fileExists(atPath: url.path) { return url }
    if name == bundledName { return try bundled() }
    throw ClassifierError.notFound(folder: url.path)
  }
}

extension ImageClassifier {
  /// The bundled Fashion-MNIST classifier (10 classes; images 1×28×28 with values in [-1, 1], as
  /// `TrainingImages` loads them and the samplers make them) on `device`, ready for `predict` and
  /// `forward`: the judge `gpugen evaluate` uses by default. Its features (`featureDim` wide) are the space
  /// of the Fréchet distance and of precision/recall.
  ///
  ///     let judge = try ImageClassifier.bundled(device: device)
  ///     let (labels, features) = try judge.predict(images, count: n)
  public static func bundled(device: Device) throws -> ImageClassifier {
    try load(from: try ClassifierFolder.bundled(), device: device)
  }
}
