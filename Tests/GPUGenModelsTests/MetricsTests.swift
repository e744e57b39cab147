// The feature-space metrics (Sources/GPUGenModels/Eval/) against NumPy/SciPy (Fixtures/metrics, script beside
// it): FID and KID to 1e-4 relative, precision, recall, density and coverage exactly; and their properties.
import Foundation
import GPUGenCore
import XCTest

@testable import GPUGenModels

final class MetricsTests: XCTestCase {
  struct Case: Decodable {
    var name: String
    var dimension: Int
    var real: [Float]
    var generated: [Float]
    var kid_subsets: Int
    var kid_subset_size: Int
    var kid_seed: UInt64
    var expected: [String: Double]
  }

  func cases() throws -> [Case] {
    let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/metrics/metrics", withExtension: "json"))
    return try JSONDecoder().decode([Case].self, from: Data(contentsOf: url))
  }

  func assertRelative(_ a: Double, _ b: Double, _ tol: Double, _ what: String) {
    XCTAssertLessThanOrEqual(abs(a - b), tol * max(abs(b), 1e-12), "\(what): \(a) vs \(b)")
  }

  func testMetricsMatchNumPyAndSciPy() throws {
    let all = try cases()
    XCTAssertEqual(all.count, 2)
    for c in all {
      let d = c.dimension
      let fid = try FrechetDistance.distance(c.generated, c.real, dimension: d)
      assertRelative(fid, c.expected["fid"]!, 1e-4, "\(c.name) FID")
      let kid = try KernelInceptionDistance.estimate(
        real: c.real, generated: c.generated, dimension: d, subsets: c.kid_subsets,
        subsetSize: c.kid_subset_size, seed: c.kid_seed)
      assertRelative(kid.mean, c.expected["kid_mean"]!, 1e-4, "\(c.name) KID mean")
      assertRelative(kid.std, c.expected["kid_std"]!, 1e-4, "\(c.name) KID std")
      XCTAssertEqual(kid.subsets, c.kid_subsets)
      XCTAssertEqual(kid.subsetSize, c.kid_subset_size)
      let p = try ManifoldMetrics.prdc(real: c.real, generated: c.generated, dimension: d)
      let n = Double(c.real.count / d), m = Double(c.generated.count / d)
      // Counts exactly: each share times its denominator is the same integer.
      XCTAssertEqual((p.precision * m).rounded(), (c.expected["precision"]! * m).rounded(), c.name)
      XCTAssertEqual((p.recall * n).rounded(), (c.expected["recall"]! * n).rounded(), c.name)
      XCTAssertEqual((p.density * 5 * m).rounded(), (c.expected["density"]! * 5 * m).rounded(), c.name)
      XCTAssertEqual((p.coverage * n).rounded(), (c.expected["coverage"]! * n).rounded(), c.name)
      XCTAssertEqual(p.precision, c.expected["precision"]!, accuracy: 1e-12)
      XCTAssertEqual(p.recall, c.expected["recall"]!, accuracy: 1e-12)
      XCTAssertEqual(p.density, c.expected["density"]!, accuracy: 1e-12)
      XCTAssertEqual(p.coverage, c.expected["coverage"]!, accuracy: 1e-12)
    }
  }

  func testTheDefaultKIDSubsetsAreHalfTheSetBelow2000AndAThousandAbove() throws {
    XCTAssertEqual(KernelInceptionDistance.subsetSize(600, 300), 150)
    XCTAssertEqual(KernelInceptionDistance.subsetSize(5000, 4000), 1000)
    let c = try cases()[0]
    let k = try KernelInceptionDistance.estimate(
      real: c.real, generated: c.generated, dimension: c.dimension, subsets: 7, seed: 0)
    XCTAssertEqual(k.subsetSize, 120)
    XCTAssertEqual(k.subsets, 7)
    let other = try KernelInceptionDistance.estimate(
      real: c.real, generated: c.generated, dimension: c.dimension, subsets: 7, seed: 1)
    XCTAssertNotEqual(k.mean, other.mean, "the seed picks the subsets")
    let indices = KernelInceptionDistance.subsetIndices(count: 50, size: 20, subset: 3, seed: 9, stream: 5)
    XCTAssertEqual(Set(indices).count, 20)
    XCTAssertTrue(indices.allSatisfy { (0..<50).contains($0) })
    XCTAssertNotEqual(
      indices, KernelInceptionDistance.subsetIndices(count: 50, size: 20, subset: 4, seed: 9, stream: 5))
    XCTAssertThrowsError(
      try KernelInceptionDistance.estimate(real: [1, 2], generated: [1, 2], dimension: 1, seed: 0))
  }

  func testManifoldMetricsOfASetAgainstItselfAndOfADisjointSet() throws {
    // 40 points on a line, against themselves: every point lies in its own ball.
    let x = (0..<40).map { Float($0) * 0.5 }
    let same = try ManifoldMetrics.prdc(real: x, generated: x, dimension: 1)
    XCTAssertEqual(same.precision, 1)
    XCTAssertEqual(same.recall, 1)
    XCTAssertEqual(same.coverage, 1)
    // Far away: nothing inside anything.
    let far = x.map { $0 + 1000 }
    let apart = try ManifoldMetrics.prdc(real: x, generated: far, dimension: 1)
    XCTAssertEqual(apart, PRDC(precision: 0, recall: 0, density: 0, coverage: 0))
    // k is used: a ball of the 1st neighbour is smaller than one of the 5th.
    let pts: [Float] = [0, 1, 3, 6, 10, 15, 21, 28]
    let r1 = try ManifoldMetrics.kthNeighbourRadii(pts, dimension: 1, k: 1)
    let r3 = try ManifoldMetrics.kthNeighbourRadii(pts, dimension: 1, k: 3)
    XCTAssertEqual(r1[0], 1)
    XCTAssertEqual(r3[0], 36)
    XCTAssertEqual(r1[7], 49)
    let a = try ManifoldMetrics.prdc(real: pts, generated: pts.map { $0 + 0.9 }, dimension: 1, kPR: 1, kDC: 1)
    let b = try ManifoldMetrics.prdc(real: pts, generated: pts.map { $0 + 0.9 }, dimension: 1, kPR: 3, kDC: 5)
    XCTAssertNotEqual(a, b, "kPR and kDC are used")
    let c = try ManifoldMetrics.prdc(real: pts, generated: pts.map { $0 + 0.9 }, dimension: 1, kPR: 3, kDC: 1)
    XCTAssertEqual(c.precision, b.precision)
    XCTAssertNotEqual(c.density, b.density, "kDC is used")
    XCTAssertThrowsError(try ManifoldMetrics.prdc(real: [1, 2, 3], generated: x, dimension: 1))
    XCTAssertThrowsError(try ManifoldMetrics.prdc(real: x + [.nan], generated: x + [1], dimension: 1))
  }

  func testMoreThanOneBlockOfRowsGivesTheSameFiguresAsTheDefinition() throws {
    // 600 points span two 512-row blocks; compare with a direct O(n²) count.
    let n = 600, m = 300, d = 3
    let real = (0..<(n * d)).map { i in Float(sin(Double(i) * 1.37) * 2) }
    let gen = (0..<(m * d)).map { i in Float(cos(Double(i) * 0.71) * 1.5) }
    let p = try ManifoldMetrics.prdc(real: real, generated: gen, dimension: d)
    func dist(_ a: [Float], _ i: Int, _ b: [Float], _ j: Int) -> Double {
      (0..<d).reduce(0.0) { $0 + pow(Double(a[i * d + $1]) - Double(b[j * d + $1]), 2) }
    }
    func radii(_ x: [Float], _ count: Int, _ k: Int) -> [Double] {
      (0..<count).map { i in (0..<count).filter { $0 != i }.map { dist(x, i, x, $0) }.sorted()[k - 1] }
    }
    let r3 = radii(real, n, 3), r5 = radii(real, n, 5), f3 = radii(gen, m, 3)
    var prec = 0, rec = 0, dens = 0, cov = 0
    for j in 0..<m where (0..<n).contains(where: { dist(real, $0, gen, j) < r3[$0] }) { prec += 1 }
    for i in 0..<n where (0..<m).contains(where: { dist(real, i, gen, $0) < f3[$0] }) { rec += 1 }
    for j in 0..<m { dens += (0..<n).filter { dist(real, $0, gen, j) < r5[$0] }.count }
    for i in 0..<n where (0..<m).contains(where: { dist(real, i, gen, $0) < r5[i] }) { cov += 1 }
    XCTAssertEqual(p.precision, Double(prec) / Double(m))
    XCTAssertEqual(p.recall, Double(rec) / Double(n))
    XCTAssertEqual(p.density, Double(dens) / Double(5 * m), accuracy: 1e-12)
    XCTAssertEqual(p.coverage, Double(cov) / Double(n))
  }

  func testEvaluationCountLimits() throws {
    XCTAssertThrowsError(try GeneratorEvaluator.checkCount(5, classes: 1)) { e in
      XCTAssertTrue("\(e)".contains("smallest N"), "\(e)")
    }
    XCTAssertThrowsError(try GeneratorEvaluator.checkCount(25, classes: 10)) { e in
      XCTAssertTrue("\(e)".contains("multiple"), "\(e)")
    }
    XCTAssertNoThrow(try GeneratorEvaluator.checkCount(10, classes: 10))
  }

  func testCalibrationMeasuresTwoDisjointRealSetsAtEachSize() throws {
    // A toy classifier on toy images: real-versus-real at two sizes, each image classified once.
    let classifier = try ImageClassifier(
      config: ClassifierConfig(imageSize: 8, numClasses: 2, convChannels: [2, 2, 2], featureDim: 6), seed: 0,
      device: .cpu)
    var images: [Float] = [], labels: [Int] = []
    for i in 0..<200 {
      labels.append(i % 2)
      images += (0..<64).map { Float(sin(Double(i * 64 + $0) * 0.37)) * (i % 2 == 0 ? 1 : 0.3) }
    }
    let real = TrainingImages(images: images, labels: labels, count: 200, channels: 1, size: 8, classCount: 2)
    var classified = 0
    let points = try Calibration.realVersusReal(
      real: real, classifier: classifier, sizes: [20, 60], seed: 4, progress: { classified += $0 })
    XCTAssertEqual(points.map(\.n), [20, 60])
    XCTAssertEqual(points.map(\.metrics.n), [20, 60])
    XCTAssertLessThanOrEqual(classified, 160, "the sets of the smaller size are among the larger's images")
    XCTAssertGreaterThanOrEqual(classified, 120)
    for p in points {
      XCTAssertEqual(p.kidConsistentWithZero, abs(p.metrics.kid.mean) <= 2 * p.metrics.kid.std)
      XCTAssertTrue(p.metrics.fid.isFinite && p.metrics.fid >= 0)
    }
    // The same sets as `gpugen evaluate` draws at that N and seed.
    let sets = try GeneratorEvaluator.realSets(labels: labels, classes: 2, perClass: 10, seed: 4)
    let ref = try classifier.predict(GeneratorEvaluator.gather(real, sets.reference), count: 20)
    let other = try classifier.predict(GeneratorEvaluator.gather(real, sets.second), count: 20)
    let direct = try FeatureMetrics.measure(
      other.features, predicted: other.labels, reference: ref.features, dimension: 6, classes: 2, seed: 4)
    XCTAssertEqual(points[0].metrics, direct)
    XCTAssertThrowsError(
      try Calibration.realVersusReal(real: real, classifier: classifier, sizes: [120], seed: 0)
    ) {
      e in XCTAssertTrue("\(e)".contains("lower --n"), "\(e)")
    }
  }

  func testAnUnconditionalDiffusionModelIsMeasuredLikeAnyGenerator() throws {
    // The 3×16×16 unconditional UNet fixture, two steps of DDIM, against a toy labelled RGB set.
    let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/unet/noattn", withExtension: nil))
    let g = try ImageGenerator.load(url, device: .cpu)
    XCTAssertEqual(g.family, .diffusion)
    XCTAssertNil(g.classCount)
    XCTAssertEqual(g.imageShape, [3, 16, 16])
    var knobs = GeneratorKnobs()
    knobs.steps = 2
    XCTAssertEqual(try g.evaluationsPerImage(knobs), 2)
    XCTAssertEqual(try g.progressUnits(count: 10, batchSize: 4, knobs: knobs), 6)
    XCTAssertThrowsError(try g.sample(count: 2, batchSize: 2, seed: 0, knobs: knobs, labels: [0]))
    let classifier = try ImageClassifier(
      config: ClassifierConfig(
        inChannels: 3, imageSize: 16, numClasses: 2, convChannels: [2, 2, 2], featureDim: 5),
      seed: 1, device: .cpu)
    var images: [Float] = [], labels: [Int] = []
    for i in 0..<40 {
      labels.append(i % 2)
      images += (0..<(3 * 256)).map { Float(sin(Double(i * 768 + $0) * 0.11)) * (i % 2 == 0 ? 0.9 : 0.2) }
    }
    let real = TrainingImages(images: images, labels: labels, count: 40, channels: 3, size: 16, classCount: 2)
    let m = try GeneratorEvaluator.measure(
      g, count: 10, batchSize: 4, seed: 0, knobs: knobs, real: real, classifier: classifier,
      featureSpace: "toy",
      sampleProgress: { _ in })
    XCTAssertEqual(m.evaluationsPerImage, 2)
    XCTAssertEqual(m.samples.count, 10 * 3 * 256)
    XCTAssertNil(m.evaluation.accuracy)
    XCTAssertEqual(m.evaluation.n, 10)
    XCTAssertTrue(m.evaluation.samples.fid.isFinite)
    XCTAssertEqual(m.knobs, "ddim, 2 steps")
    // The same seed gives the same figures run after run, and (to float rounding) at any batch size.
    let again = try GeneratorEvaluator.measure(
      g, count: 10, batchSize: 4, seed: 0, knobs: knobs, real: real, classifier: classifier,
      featureSpace: "toy")
    XCTAssertEqual(again.evaluation, m.evaluation, "run after run, the same figures")
    let rebatched = try GeneratorEvaluator.measure(
      g, count: 10, batchSize: 10, seed: 0, knobs: knobs, real: real, classifier: classifier,
      featureSpace: "toy")
    XCTAssertEqual(
      rebatched.evaluation.samples.fid, m.evaluation.samples.fid, accuracy: 1e-3 * m.evaluation.samples.fid)
    XCTAssertEqual(rebatched.evaluation.realFloor, m.evaluation.realFloor)
    knobs.steps = 3
    let more = try GeneratorEvaluator.measure(
      g, count: 10, batchSize: 4, seed: 0, knobs: knobs, real: real, classifier: classifier,
      featureSpace: "toy")
    XCTAssertEqual(more.evaluationsPerImage, 3)
    XCTAssertNotEqual(more.samples, m.samples, "--steps is used")
  }
}
