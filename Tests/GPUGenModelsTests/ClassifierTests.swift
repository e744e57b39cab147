// The classifier that judges generated samples: Fréchet distance and matrix square root against closed forms,
// cross-entropy and training on separable data, save/load, the balanced real sets, and `gpugen train
// classifier` + `gpugen evaluate` end to end on the bundled model.
import Foundation
import GPUGenCore
import GPUGenNN
import XCTest

@testable import GPUGenModels

final class ClassifierTests: XCTestCase {
  /// Deterministic values in [-1, 1) (a 64-bit LCG), so the tests do not depend on a global RNG.
  struct LCG {
    var state: UInt64
    mutating func next() -> Double {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Double(state >> 11) / Double(1 << 52) - 1
    }
  }

  /// A random n×n orthogonal matrix (Gram–Schmidt on random columns), row-major.
  func orthogonal(_ n: Int, seed: UInt64) -> [Double] {
    var g = LCG(state: seed)
    var cols: [[Double]] = []
    while cols.count < n {
      var v = (0..<n).map { _ in g.next() }
      for c in cols {
        let d = zip(v, c).reduce(0) { $0 + $1.0 * $1.1 }
        for i in 0..<n { v[i] -= d * c[i] }
      }
      let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
      if norm > 1e-6 { cols.append(v.map { $0 / norm }) }
    }
    var q = [Double](repeating: 0, count: n * n)
    for i in 0..<n { for j in 0..<n { q[i * n + j] = cols[j][i] } }
    return q
  }

  /// Q·diag(d)·Qᵀ.
  func conjugate(_ q: [Double], _ d: [Double]) -> [Double] {
    let n = d.count
    var out = [Double](repeating: 0, count: n * n)
    for i in 0..<n {
      for j in 0..<n {
        var s = 0.0
        for k in 0..<n { s += q[i * n + k] * d[k] * q[j * n + k] }
        out[i * n + j] = s
      }
    }
    return out
  }

  func assertClose(
    _ a: [Double], _ b: [Double], tolerance: Double, file: StaticString = #filePath, line: UInt = #line
  ) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    let worst = zip(a, b).map { Swift.abs($0 - $1) }.max() ?? 0
    XCTAssertLessThanOrEqual(worst, tolerance, file: file, line: line)
  }

  // MARK: Linear algebra and the Fréchet distance

  func testMatrixSquareRootOfKnownMatrices() throws {
    // [[5, 4], [4, 5]] = [[2, 1], [1, 2]]².
    assertClose(try FrechetDistance.squareRoot([5, 4, 4, 5], n: 2), [2, 1, 1, 2], tolerance: 1e-12)
    // [[10, 6, 0], [6, 10, 0], [0, 0, 9]] = [[3, 1, 0], [1, 3, 0], [0, 0, 3]]².
    assertClose(
      try FrechetDistance.squareRoot([10, 6, 0, 6, 10, 0, 0, 0, 9], n: 3), [3, 1, 0, 1, 3, 0, 0, 0, 3],
      tolerance: 1e-12)
    // A 40×40 PSD matrix with known eigenvalues (some zero): √(Q·D·Qᵀ) = Q·√D·Qᵀ.
    let n = 40
    let q = orthogonal(n, seed: 3)
    let d: [Double] = (0..<n).map { (i: Int) -> Double in i % 7 == 0 ? 0 : Double(i + 1) * 0.37 }
    let root = try FrechetDistance.squareRoot(conjugate(q, d), n: n)
    // (Eigenvalues that should be 0 come out at rounding level ~1e-16, whose square roots are ~1e-8.)
    assertClose(root, conjugate(q, d.map { $0.squareRoot() }), tolerance: 1e-7)
    // Not the identity: the square root differs from the matrix.
    XCTAssertGreaterThan(zip(root, conjugate(q, d)).map { Swift.abs($0 - $1) }.max()!, 1)
  }

  func testEigenDecompositionReconstructsTheMatrix() throws {
    let n = 25
    var g = LCG(state: 9)
    var a = [Double](repeating: 0, count: n * n)
    for i in 0..<n {
      for j in i..<n {
        let v = g.next() * 3
        a[i * n + j] = v
        a[j * n + i] = v
      }
    }
    let (values, vectors) = try FrechetDistance.eigen(a, n: n)
    XCTAssertEqual(values, values.sorted(by: >))
    for k in 0..<n {
      // A·v = λ·v and ‖v‖ = 1.
      var norm = 0.0
      for i in 0..<n {
        var av = 0.0
        for j in 0..<n { av += a[i * n + j] * vectors[j * n + k] }
        XCTAssertEqual(av, values[k] * vectors[i * n + k], accuracy: 1e-10)
        norm += vectors[i * n + k] * vectors[i * n + k]
      }
      XCTAssertEqual(norm, 1, accuracy: 1e-12)
    }
    XCTAssertThrowsError(try FrechetDistance.eigen([1, 2, 3], n: 2))
    XCTAssertThrowsError(try FrechetDistance.eigen([1, .nan, .nan, 1], n: 2))
  }

  func testFrechetDistanceOfDiagonalGaussiansMatchesTheClosedForm() throws {
    // d² = ‖μ₁ − μ₂‖² + Σ(√σ₁ᵢ − √σ₂ᵢ)² for diagonal covariances.
    let n = 16
    var g = LCG(state: 5)
    let m1 = (0..<n).map { _ in g.next() }, m2 = (0..<n).map { _ in g.next() }
    let v1 = (0..<n).map { _ in 0.1 + 2 * Swift.abs(g.next()) },
      v2 = (0..<n).map { _ in 0.1 + Swift.abs(g.next()) }
    var expected = 0.0
    for i in 0..<n {
      expected += (m1[i] - m2[i]) * (m1[i] - m2[i])
      expected += (v1[i].squareRoot() - v2[i].squareRoot()) * (v1[i].squareRoot() - v2[i].squareRoot())
    }
    let identity = (0..<n).flatMap { i in (0..<n).map { $0 == i ? 1.0 : 0 } }
    let a = GaussianStatistics(dimension: n, count: 100, mean: m1, covariance: conjugate(identity, v1))
    let b = GaussianStatistics(dimension: n, count: 100, mean: m2, covariance: conjugate(identity, v2))
    XCTAssertEqual(try FrechetDistance.distance(a, b), expected, accuracy: 1e-10)
    XCTAssertEqual(try FrechetDistance.distance(b, a), expected, accuracy: 1e-10)
    // The distance is invariant under a common rotation, which makes both covariances dense.
    let q = orthogonal(n, seed: 11)
    func rotate(_ m: [Double]) -> [Double] {
      (0..<n).map { i in (0..<n).reduce(0) { $0 + q[i * n + $1] * m[$1] } }
    }
    let ra = GaussianStatistics(dimension: n, count: 100, mean: rotate(m1), covariance: conjugate(q, v1))
    let rb = GaussianStatistics(dimension: n, count: 100, mean: rotate(m2), covariance: conjugate(q, v2))
    XCTAssertEqual(try FrechetDistance.distance(ra, rb), expected, accuracy: 1e-9)
  }

  func testFrechetDistanceOfNonCommutingCovariances() throws {
    // For 2×2 PSD M, Tr √M = √(Tr M + 2√det M); with M = A^½BA^½: Tr M = Tr(AB), det M = det A·det B.
    let a: [Double] = [2, 0.7, 0.7, 1], b: [Double] = [0.5, -0.3, -0.3, 3]
    let trAB = a[0] * b[0] + a[1] * b[2] + a[2] * b[1] + a[3] * b[3]
    let detA = a[0] * a[3] - a[1] * a[2], detB = b[0] * b[3] - b[1] * b[2]
    let cross = (trAB + 2 * (detA * detB).squareRoot()).squareRoot()
    let expected = 1 * 1 + 2 * 2 + (a[0] + a[3]) + (b[0] + b[3]) - 2 * cross
    let d = try FrechetDistance.distance(
      GaussianStatistics(dimension: 2, count: 10, mean: [1, 0], covariance: a),
      GaussianStatistics(dimension: 2, count: 10, mean: [0, 2], covariance: b))
    XCTAssertEqual(d, expected, accuracy: 1e-12)
  }

  func testIdenticalAndShiftedFeatureSets() throws {
    let n = 300, dim = 12
    var g = LCG(state: 21)
    var x = [Float](repeating: 0, count: n * dim)
    for i in 0..<n {
      let shared = g.next()
      for j in 0..<dim { x[i * dim + j] = Float(g.next() + (j % 3 == 0 ? shared : 0)) }
    }
    XCTAssertEqual(try FrechetDistance.distance(x, x, dimension: dim), 0, accuracy: 1e-9)
    // Shifting every vector by δ moves only the mean: d² = ‖δ‖².
    let delta: [Float] = (0..<dim).map { Float($0) * 0.25 - 1 }
    let shifted = x.enumerated().map { $1 + delta[$0 % dim] }
    let expected = delta.reduce(0.0) { $0 + Double($1) * Double($1) }
    XCTAssertEqual(try FrechetDistance.distance(x, shifted, dimension: dim), expected, accuracy: 1e-4)
    // A set against a differently distributed one is far from 0.
    let scaled = x.map { $0 * 2 }
    XCTAssertGreaterThan(try FrechetDistance.distance(x, scaled, dimension: dim), 0.5)
    XCTAssertThrowsError(try FrechetDistance.distance(x, Array(x.prefix(dim)), dimension: dim))
  }

  func testGaussianStatisticsAreUnbiased() throws {
    // Vectors (1, 2), (3, 6), (5, 4): mean (3, 4); covariance [[4, 2], [2, 4]] (divided by n − 1 = 2).
    let s = try GaussianStatistics(vectors: [1, 2, 3, 6, 5, 4], dimension: 2)
    XCTAssertEqual(s.count, 3)
    assertClose(s.mean, [3, 4], tolerance: 1e-12)
    assertClose(s.covariance, [4, 2, 2, 4], tolerance: 1e-12)
  }

  // MARK: The classifier

  /// `n` 8×8 images of 3 separable classes (a bright left half, top half or main diagonal) plus noise,
  /// in [-1, 1], with their labels.
  func separable(_ n: Int, seed: UInt64) -> TrainingImages {
    var g = LCG(state: seed)
    var images: [Float] = []
    var labels: [Int] = []
    for i in 0..<n {
      let c = i % 3
      labels.append(c)
      for y in 0..<8 {
        for x in 0..<8 {
          let on = c == 0 ? x < 4 : c == 1 ? y < 4 : Swift.abs(x - y) <= 1
          images.append(Float((on ? 0.6 : -0.6) + 0.35 * g.next()))
        }
      }
    }
    return TrainingImages(images: images, labels: labels, count: n, channels: 1, size: 8, classCount: 3)
  }

  let tiny = ClassifierConfig(
    inChannels: 1, imageSize: 8, numClasses: 3, convChannels: [4, 8, 8], featureDim: 16)

  func testTrainsToHighAccuracyOnSeparableData() throws {
    let train = separable(192, seed: 1), test = separable(150, seed: 2)
    let model = try ImageClassifier(config: tiny, seed: 0, device: .cpu)
    XCTAssertLessThan(try model.accuracy(on: test), 0.7)  // untrained: not already good
    var o = ClassifierTrainingOptions()
    (o.epochs, o.batchSize, o.lr) = (8, 32, 1e-2)
    let trainer = try ClassifierTrainer(model: model, data: train, options: o)
    XCTAssertEqual(trainer.totalSteps, 48)
    var first: Float = 0, last: Float = 0
    while trainer.step < trainer.totalSteps {
      let s = try trainer.trainStep()
      if trainer.step == 1 { first = s.loss }
      last = s.loss
    }
    XCTAssertLessThan(last, first * 0.5)
    XCTAssertGreaterThanOrEqual(try model.accuracy(on: test), 0.95)
  }

  func testCrossEntropyAndItsGradient() throws {
    let logits: [Float] = [1, 2, 0.5, -1, 0, 3]
    let labels = [1, 0]
    let x = try Tensor(logits, shape: [2, 3], on: .cpu)
    let tape = Tape()
    tape.watch(x)
    let loss = try tape.record { try ImageClassifier.crossEntropy(logits: x, labels: labels) }
    var expected = 0.0
    var grad = [Double](repeating: 0, count: 6)
    for r in 0..<2 {
      let row = logits[(3 * r)..<(3 * r + 3)].map(Double.init)
      let lse = Foundation.log(row.reduce(0) { $0 + Foundation.exp($1) })
      expected += (lse - row[labels[r]]) / 2
      for k in 0..<3 { grad[3 * r + k] = (Foundation.exp(row[k] - lse) - (k == labels[r] ? 1 : 0)) / 2 }
    }
    XCTAssertEqual(Double(try loss.toArray()[0]), expected, accuracy: 1e-5)
    let g = try XCTUnwrap(try tape.gradients(of: loss, wrt: [x])[0]).toArray()
    assertClose(g.map(Double.init), grad, tolerance: 1e-5)
    XCTAssertThrowsError(try ImageClassifier.crossEntropy(logits: x, labels: [0]))
  }

  func testInitialisationSaveAndLoad() throws {
    let a = try ImageClassifier(config: tiny, seed: 4, device: .cpu)
    let b = try ImageClassifier(config: tiny, seed: 4, device: .cpu)
    let c = try ImageClassifier(config: tiny, seed: 5, device: .cpu)
    XCTAssertEqual(a.names, tiny.parameterShapes.map(\.name))
    XCTAssertEqual(a.names, a.names.sorted())
    for (name, (pa, (pb, pc))) in zip(a.names, zip(a.parameters, zip(b.parameters, c.parameters))) {
      let va = try pa.toArray()
      XCTAssertEqual(va, try pb.toArray(), name)
      XCTAssertNotEqual(va, try pc.toArray(), name)
      // PyTorch's default: U(±1/√fan_in), fan_in of the layer's weight.
      let weight = name.hasSuffix(".bias") ? String(name.dropLast(5)) + ".weight" : name
      let shape = try XCTUnwrap(tiny.parameterShapes.first { $0.name == weight }).shape
      let bound = Float(1 / Double(shape.dropFirst().reduce(1, *)).squareRoot())
      XCTAssertLessThanOrEqual(va.map(Swift.abs).max()!, bound, name)
      if va.count >= 64 { XCTAssertGreaterThan(va.map(Swift.abs).max()!, bound * 0.9, name) }
    }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gpugen-clf-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    XCTAssertThrowsError(try ImageClassifier.load(from: dir, device: .cpu)) { e in
      XCTAssertEqual(e as? ClassifierError, .missing(folder: dir.path))
      XCTAssertTrue("\(e)".contains("gpugen train classifier"), "\(e)")
    }
    try a.save(to: dir, metadata: ["note": "test"])
    let loaded = try ImageClassifier.load(from: dir, device: .cpu)
    XCTAssertEqual(loaded.config, tiny)
    let images = separable(6, seed: 8)
    let p1 = try a.predict(images.images, count: 6, batchSize: 4)
    let p2 = try loaded.predict(images.images, count: 6, batchSize: 6)
    XCTAssertEqual(p1.labels, p2.labels)
    XCTAssertEqual(p1.features, p2.features)
    XCTAssertEqual(p1.features.count, 6 * 16)
    XCTAssertThrowsError(try a.predict(images.images, count: 5))
  }

  func testRealSetsAreBalancedDisjointAndSeeded() throws {
    let labels = (0..<90).map { ($0 * 7) % 3 }
    let s = try GeneratorEvaluator.realSets(labels: labels, classes: 3, perClass: 10, seed: 1)
    XCTAssertEqual(s.reference.count, 30)
    XCTAssertEqual(s.second.count, 30)
    XCTAssertTrue(Set(s.reference).isDisjoint(with: s.second))
    XCTAssertEqual(s.reference.map { labels[$0] }, (0..<30).map { $0 / 10 })
    XCTAssertEqual(s.second.map { labels[$0] }, (0..<30).map { $0 / 10 })
    let again = try GeneratorEvaluator.realSets(labels: labels, classes: 3, perClass: 10, seed: 1)
    XCTAssertEqual(again.reference, s.reference)
    let other = try GeneratorEvaluator.realSets(labels: labels, classes: 3, perClass: 10, seed: 2)
    XCTAssertNotEqual(other.reference, s.reference)
    XCTAssertThrowsError(try GeneratorEvaluator.realSets(labels: labels, classes: 3, perClass: 16, seed: 1))
    let acc = try ClassAccuracy(predicted: [0, 1, 1, 2, 0, 2], truth: [0, 1, 2, 2, 1, 2], classes: 3)
    XCTAssertEqual(acc.overall, 4.0 / 6, accuracy: 1e-12)
    XCTAssertEqual(acc.perClass, [1, 0.5, 2.0 / 3])
  }

  func testEvaluatorOnRealImagesAsSamples() throws {
    // "Samples" that are real images of the right class score like the floor; shuffled labels do not.
    let model = try ImageClassifier(config: tiny, seed: 0, device: .cpu)
    var o = ClassifierTrainingOptions()
    (o.epochs, o.batchSize, o.lr) = (8, 32, 1e-2)
    let trainer = try ClassifierTrainer(model: model, data: separable(192, seed: 1), options: o)
    while trainer.step < trainer.totalSteps { try trainer.trainStep() }
    let real = separable(120, seed: 3)
    let fake = separable(60, seed: 4)
    let good = try GeneratorEvaluator.evaluate(
      samples: fake.images, count: 60, labels: fake.labels!, real: real, classifier: model,
      featureSpace: "test",
      seed: 0)
    XCTAssertEqual(good.n, 60)
    XCTAssertEqual(good.classes, 3)
    XCTAssertEqual(good.featureSpace, "test")
    XCTAssertEqual(good.samples.n, 60)
    XCTAssertGreaterThanOrEqual(try XCTUnwrap(good.accuracy).overall, 0.95)
    XCTAssertGreaterThanOrEqual(good.realAccuracy.overall, 0.95)
    XCTAssertEqual(good.samples.kid.subsetSize, 30)
    XCTAssertEqual(good.samples.classHistogram.reduce(0, +), 1, accuracy: 1e-9)
    let wrong = try GeneratorEvaluator.evaluate(
      samples: fake.images, count: 60, labels: fake.labels!.map { ($0 + 1) % 3 }, real: real,
      classifier: model,
      featureSpace: "test", seed: 0)
    XCTAssertLessThan(try XCTUnwrap(wrong.accuracy).overall, 0.1)
    // Without labels (an unconditional model): the same figures, no accuracy.
    let unconditional = try GeneratorEvaluator.evaluate(
      samples: fake.images, count: 60, real: real, classifier: model, featureSpace: "test", seed: 0)
    XCTAssertNil(unconditional.accuracy)
    XCTAssertEqual(unconditional.samples, good.samples)
    // Blank "samples" are far from real images in feature space, by every metric.
    let blank = try GeneratorEvaluator.evaluate(
      samples: [Float](repeating: -1, count: fake.images.count), count: 60, labels: fake.labels!, real: real,
      classifier: model, featureSpace: "test", seed: 0)
    XCTAssertGreaterThan(blank.samples.fid, 4 * good.samples.fid)
    XCTAssertGreaterThan(blank.samples.kid.mean, good.samples.kid.mean)
    XCTAssertLessThan(blank.samples.prdc.recall, good.samples.prdc.recall)
    XCTAssertLessThan(blank.samples.prdc.coverage, good.samples.prdc.coverage)
    // The floor does not depend on the samples.
    XCTAssertEqual(blank.realFloor, good.realFloor)
    // The seed picks the real sets.
    let reseeded = try GeneratorEvaluator.evaluate(
      samples: fake.images, count: 60, labels: fake.labels!, real: real, classifier: model,
      featureSpace: "test",
      seed: 1)
    XCTAssertNotEqual(reseeded.realFloor, good.realFloor)
    XCTAssertThrowsError(
      try GeneratorEvaluator.evaluate(
        samples: Array(fake.images.prefix(64 * 4)), count: 4, labels: [0, 0, 1, 2], real: real,
        classifier: model, featureSpace: "test", seed: 0))
    XCTAssertThrowsError(
      try GeneratorEvaluator.evaluate(
        samples: fake.images, count: 60, labels: [1] + Array(fake.labels!.dropFirst()), real: real,
        classifier: model, featureSpace: "test", seed: 0)
    ) { e in XCTAssertTrue("\(e)".contains("every class equally"), "\(e)") }
  }

  // MARK: The command line

  func gpugen(_ args: [String], env: [String: String] = [:]) throws -> (Int32, String, String) {
    try runGpugen(args, env: env)
  }

  /// The first `n` images and labels of a Fashion-MNIST split, written as plain IDX files in `dir`.
  func subset(_ split: String, _ n: Int, in dir: URL) throws -> URL {
    let folder = TrainingImages.fashionMNISTFolder()
    func be32(_ v: Int) -> [UInt8] { [24, 16, 8, 0].map { UInt8((v >> $0) & 0xFF) } }
    let images = try IDXArray.read(contentsOf: folder.appendingPathComponent("\(split)-images-idx3-ubyte.gz"))
    let labels = try IDXArray.read(contentsOf: folder.appendingPathComponent("\(split)-labels-idx1-ubyte.gz"))
    let per = images.dimensions[1] * images.dimensions[2]
    let url = dir.appendingPathComponent("\(split)-images-idx3-ubyte")
    try Data([0, 0, 8, 3] + be32(n) + be32(28) + be32(28) + images.payload.prefix(n * per)).write(to: url)
    try Data([0, 0, 8, 1] + be32(n) + labels.payload.prefix(n)).write(
      to: dir.appendingPathComponent("\(split)-labels-idx1-ubyte"))
    return url
  }

  func testTrainClassifierThenEvaluateTheBundledModel() throws {
    let folder = TrainingImages.fashionMNISTFolder()
    try XCTSkipUnless(
      FileManager.default.fileExists(atPath: folder.appendingPathComponent("t10k-images-idx3-ubyte.gz").path),
      "dataset-fashion-mnist is not installed")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "gpugen-eval-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let train = try subset("train", 512, in: dir), test = try subset("t10k", 200, in: dir)
    let clf = dir.appendingPathComponent("clf").path

    var (status, out, err) = try gpugen([
      "train", "classifier", "--data", train.path, "--test-data", test.path, "--conv-channels", "4,8,8",
      "--feature-dim", "16", "--epochs", "2", "--batch-size", "32", "--lr", "1e-2", "--device", "cpu",
      "--out",
      clf,
    ])
    XCTAssertEqual(status, 0, err)
    XCTAssertTrue(err.contains("training"), err)  // the progress bar
    let line = try XCTUnwrap(out.split(separator: "\n").first { $0.hasPrefix("test accuracy:") }, out)
    let accuracy = try XCTUnwrap(Double(line.split(separator: " ")[2]), out)
    XCTAssertGreaterThan(accuracy, 0.4, out)  // 32 steps on 512 images: well above chance (0.1)
    let saved = try ImageClassifier.load(from: URL(fileURLWithPath: clf), device: .cpu)
    XCTAssertEqual(saved.config.featureDim, 16)
    XCTAssertEqual(saved.config.numClasses, 10)

    // The bundled default model, found without a path.
    (status, out, err) = try gpugen([
      "evaluate", "--classifier", clf, "--n", "20", "--steps", "2", "--device", "cpu", "--json",
    ])
    XCTAssertEqual(status, 0, err)
    XCTAssertTrue(err.contains("sampling"), err)
    let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], out)
    XCTAssertTrue((report["model"] as? String ?? "").hasSuffix("DefaultModel"), out)
    XCTAssertEqual((report["class_names"] as? [String])?.first, "T-shirt/top")
    XCTAssertEqual((report["n"] as? NSNumber)?.intValue, 20)
    XCTAssertEqual(report["family"] as? String, "diffusion")
    XCTAssertEqual((report["steps"] as? NSNumber)?.intValue, 2)
    XCTAssertEqual((report["nfe"] as? NSNumber)?.intValue, 2)
    XCTAssertEqual((report["feature_dimension"] as? NSNumber)?.intValue, 16)
    XCTAssertTrue((report["feature_space"] as? String ?? "").contains(clf), out)
    XCTAssertEqual((report["accuracy_per_class"] as? [Any])?.count, 10)
    let overall = try XCTUnwrap((report["accuracy"] as? NSNumber)?.doubleValue)
    XCTAssertTrue((0...1).contains(overall))
    for key in ["fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "class_entropy"] {
      let v = try XCTUnwrap((report[key] as? NSNumber)?.doubleValue, key)
      XCTAssertTrue(v.isFinite, key)
    }
    let floor = try XCTUnwrap(report["real_floor"] as? [String: Any])
    let fd = try XCTUnwrap((report["fid"] as? NSNumber)?.doubleValue)
    let floorFD = try XCTUnwrap((floor["fid"] as? NSNumber)?.doubleValue)
    XCTAssertTrue(fd.isFinite && fd > 0 && floorFD.isFinite && floorFD >= 0, out)
    XCTAssertNotNil(floor["coverage"] as? NSNumber)

    // The text report.
    (status, out, err) = try gpugen([
      "evaluate", "--classifier", clf, "--n", "10", "--steps", "1", "--device", "cpu", "--real",
      test.path,
    ])
    XCTAssertEqual(status, 0, err)
    XCTAssertTrue(out.contains("class-conditional accuracy"), out)
    for row in ["FID", "KID", "precision (k = 3)", "recall (k = 3)", "density (k = 5)", "coverage (k = 5)"] {
      XCTAssertTrue(out.contains(row), out)
    }
    XCTAssertTrue(out.contains("9 Ankle boot"), out)
  }

  func testEvaluateErrors() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "gpugen-eval-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let missing = dir.appendingPathComponent("none").path
    var (status, _, err) = try gpugen(["evaluate", "--classifier", missing, "--device", "cpu"])
    XCTAssertEqual(status, 2, err)
    XCTAssertTrue(err.contains("classifier folder \(missing) does not exist"), err)
    XCTAssertTrue(err.contains("gpugen train classifier"), err)
    // A folder without a classifier in it.
    let empty = dir.appendingPathComponent("empty")
    try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
    (status, _, err) = try gpugen(["evaluate", "--classifier", empty.path, "--device", "cpu"])
    XCTAssertEqual(status, 2, err)
    XCTAssertTrue(err.contains("no classifier in \(empty.path)"), err)
    XCTAssertTrue(err.contains("gpugen train classifier"), err)

    // A model whose images the classifier does not take.
    let clf = dir.appendingPathComponent("clf")
    try ImageClassifier(
      config: ClassifierConfig(convChannels: [2, 2, 2], featureDim: 4), seed: 0, device: .cpu
    )
    .save(to: clf)
    let unconditional = try XCTUnwrap(
      Bundle.module.url(forResource: "Fixtures/unet/noattn", withExtension: nil))
    (status, _, err) = try gpugen([
      "evaluate", "--model", unconditional.path, "--classifier", clf.path, "--device", "cpu",
    ])
    XCTAssertEqual(status, 2, err)
    XCTAssertTrue(err.contains("the model makes 3×16×16 images"), err)

    // A classifier for other images or another number of classes than the model.
    let other = dir.appendingPathComponent("other")
    try ImageClassifier(
      config: ClassifierConfig(imageSize: 16, convChannels: [2, 2, 2], featureDim: 4), seed: 0, device: .cpu
    ).save(to: other)
    (status, _, err) = try gpugen(["evaluate", "--classifier", other.path, "--device", "cpu"])
    XCTAssertEqual(status, 2, err)
    XCTAssertTrue(err.contains("takes 1×16×16"), err)
    try ImageClassifier(
      config: ClassifierConfig(numClasses: 4, convChannels: [2, 2, 2], featureDim: 4), seed: 0, device: .cpu
    ).save(to: other)
    (status, _, err) = try gpugen(["evaluate", "--classifier", other.path, "--device", "cpu"])
    XCTAssertEqual(status, 2, err)
    XCTAssertTrue(err.contains("the model has 10 classes"), err)

    (status, _, err) = try gpugen(["evaluate", "--classifier", clf.path, "--n", "0"])
    XCTAssertEqual(status, 2, err)
    XCTAssertTrue(err.contains("--n"), err)
    (status, _, err) = try gpugen(["evaluate", "--classifier", clf.path, "--n", "5", "--device", "cpu"])
    XCTAssertEqual(status, 2, err)
    XCTAssertTrue(err.contains("smallest N the metrics allow"), err)
    (status, _, err) = try gpugen(["evaluate", "--classifier", clf.path, "--n", "15", "--device", "cpu"])
    XCTAssertEqual(status, 2, err)
    XCTAssertTrue(err.contains("multiple of the classifier's 10 classes"), err)
    // Too many for the real data: refused before anything is sampled (t10k holds 1,000 images a class).
    (status, _, err) = try gpugen(["evaluate", "--classifier", clf.path, "--n", "20000", "--device", "cpu"])
    XCTAssertEqual(status, 2, err)
    XCTAssertTrue(err.contains("lower --n to at most 5000"), err)
    XCTAssertFalse(err.contains("sampling"), err)
    (status, _, err) = try gpugen([
      "evaluate", "--classifier", clf.path, "--n", "4000000000000000000", "--device", "cpu",
    ])
    XCTAssertEqual(status, 2, err)
    (status, _, err) = try gpugen(["evaluate", "--temperature", "0.5", "--device", "cpu"])
    XCTAssertEqual(status, 2, err)
    XCTAssertTrue(err.contains("--temperature is a vae option"), err)
    (status, _, err) = try gpugen(["evaluate", "--model", "gan", "--steps", "5", "--device", "cpu"])
    XCTAssertEqual(status, 2, err)
    XCTAssertTrue(err.contains("--steps is a diffusion option"), err)
    (status, _, err) = try gpugen([
      "train", "classifier", "--conv-channels", "4,8", "--out", dir.appendingPathComponent("x").path,
    ])
    XCTAssertEqual(status, 2, err)
    XCTAssertTrue(err.contains("--conv-channels"), err)
  }
}
