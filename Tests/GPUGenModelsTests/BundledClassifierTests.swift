// The bundled Fashion-MNIST classifier: found without a path, loads and classifies real test images on every
// device, and is what `gpugen evaluate` judges with when no --classifier is given.
import Foundation
import GPUGenCore
import GPUGenNN
import XCTest

@testable import GPUGenModels

final class BundledClassifierTests: XCTestCase {
  /// Fashion-MNIST's t10k split, or a skip when dataset-fashion-mnist is not installed.
  func t10k() throws -> TrainingImages {
    let file = TrainingImages.fashionMNISTFolder().appendingPathComponent("t10k-images-idx3-ubyte.gz")
    try XCTSkipUnless(
      FileManager.default.fileExists(atPath: file.path), "dataset-fashion-mnist is not installed")
    return try TrainingImages.load(source: file.path, sampleSize: 28, channels: 1)
  }

  func tmp() throws -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("gpugen-bclf-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: d) }
    return d
  }

  /// The floor of the bundled classifier's accuracy on the first 1,000 t10k images: it scores 0.928 on every
  /// device (0.9225 on all 10,000).
  static let firstThousandFloor = 0.92

  func testBundledClassifierClassifiesTestImagesOnEveryDevice() throws {
    let test = try t10k()
    let n = 1000
    let first = TrainingImages(
      images: Array(test.images.prefix(n * test.imageElements)), labels: Array(test.labels!.prefix(n)),
      count: n, channels: 1, size: 28, classCount: 10)
    var reference: (labels: [Int], features: [Float])?
    for device in try Device.all() {
      let clf = try ImageClassifier.bundled(device: device)
      XCTAssertEqual(clf.config.inChannels, 1)
      XCTAssertEqual(clf.config.imageSize, 28)
      XCTAssertEqual(clf.config.numClasses, 10)
      let accuracy = try clf.accuracy(on: first)
      XCTAssertGreaterThanOrEqual(accuracy, Self.firstThousandFloor, "\(device)")
      // Every device agrees with the CPU: the same labels but for near-ties, features within float error.
      let p = try clf.predict(first.images, count: n)
      if let reference {
        let differ = zip(p.labels, reference.labels).filter { $0 != $1 }.count
        XCTAssertLessThanOrEqual(differ, 2, "\(device)")
        let scale = reference.features.map(Swift.abs).max()!
        let worst = zip(p.features, reference.features).map { Swift.abs($0 - $1) }.max()!
        XCTAssertLessThan(worst, 1e-3 * scale, "\(device)")
      } else {
        reference = p
      }
    }
  }

  func testLocateTheBundledClassifierByDefaultByNameAndAFolderWins() throws {
    let bundled = try ClassifierFolder.bundled()
    XCTAssertEqual(bundled.lastPathComponent, "DefaultClassifier")
    XCTAssertEqual(try ClassifierFolder.locate(nil), bundled)
    XCTAssertEqual(try ClassifierFolder.locate(ClassifierFolder.bundledName), bundled)
    // The bundled classifier is a folder `gpugen train classifier` could have written.
    let config = try ImageClassifier.load(from: bundled, device: .cpu).config
    XCTAssertEqual(config, try ImageClassifier.bundled(device: .cpu).config)
    // A folder that exists is itself, whatever it holds.
    let d = try tmp()
    XCTAssertEqual(try ClassifierFolder.locate(d.path).path, d.path)
    // A path that does not exist is an error naming it.
    let missing = d.appendingPathComponent("no-such-classifier").path
    XCTAssertThrowsError(try ClassifierFolder.locate(missing)) { e in
      XCTAssertEqual(e as? ClassifierError, .notFound(folder: missing))
      XCTAssertTrue("\(e)".contains(missing), "\(e)")
    }
  }

  func testEvaluateUsesTheBundledClassifierWithoutAFlag() throws {
    _ = try t10k()
    // The bundled diffusion model, judged by the bundled classifier: no paths at all.
    var (status, out, err) = try runGpugen([
      "evaluate", "--n", "10", "--steps", "1", "--device", "cpu", "--json",
    ])
    XCTAssertEqual(status, 0, err)
    var report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], out)
    XCTAssertTrue((report["classifier"] as? String ?? "").hasSuffix("/DefaultClassifier"), out)
    XCTAssertEqual((report["accuracy_per_class"] as? [Any])?.count, 10)
    XCTAssertTrue(
      (report["feature_space"] as? String ?? "").contains("bundled Fashion-MNIST classifier"), out)
    // The bundled VAE too, with the bundled name given explicitly.
    (status, out, err) = try runGpugen([
      "evaluate", "--model", "vae", "--classifier", "classifier", "--n", "10", "--device", "cpu",
      "--json",
    ])
    XCTAssertEqual(status, 0, err)
    report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], out)
    XCTAssertTrue((report["classifier"] as? String ?? "").hasSuffix("/DefaultClassifier"), out)
    XCTAssertEqual(report["family"] as? String, "vae", out)
    // A folder named `classifier` in the working directory wins over the bundled one: here one that takes
    // 16×16 images, so the run says which classifier it read.
    let d = try tmp()
    try ImageClassifier(
      config: ClassifierConfig(imageSize: 16, convChannels: [2, 2, 2], featureDim: 4), seed: 0, device: .cpu
    ).save(to: d.appendingPathComponent("classifier"))
    (status, _, err) = try runGpugen(
      ["evaluate", "--classifier", "classifier", "--n", "10", "--steps", "1", "--device", "cpu"],
      in: d)
    XCTAssertEqual(status, 2, err)
    XCTAssertTrue(err.contains("takes 1×16×16"), err)
    // $GPUGEN_DEFAULT_CLASSIFIER replaces the bundled classifier, as $GPUGEN_DEFAULT_VAE does the VAE.
    (status, _, err) = try runGpugen(
      ["evaluate", "--n", "10", "--steps", "1", "--device", "cpu"],
      env: ["GPUGEN_DEFAULT_CLASSIFIER": d.appendingPathComponent("classifier").path])
    XCTAssertEqual(status, 2, err)
    XCTAssertTrue(err.contains("takes 1×16×16"), err)
  }

  func testEvaluateWithAMissingClassifierFolderExits2NamingIt() throws {
    let missing = "/nonexistent/gpugen-classifier-\(UUID().uuidString)"
    let (status, _, err) = try runGpugen(["evaluate", "--classifier", missing, "--device", "cpu"])
    XCTAssertEqual(status, 2, err)
    XCTAssertTrue(err.contains("classifier folder \(missing) does not exist"), err)
    XCTAssertTrue(err.contains("gpugen train classifier"), err)
  }
}
