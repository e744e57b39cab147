// Gradient checks of every differentiable op, per family:
//   …FiniteDifferences: the Float64 reference's analytic gradient of L = Σ y·R against Float64 central
//     differences (eps 1e-6, atol 1e-5, rtol 1e-3), which validates the reference backward;
//   …OnEveryDevice: the library's float32 forward and tape gradients, on every device, against the Float64
//     reference forward and analytic gradient (tolerances per family in GradCases.swift).
import XCTest

@testable import GPUGenCore

final class GradCheckTests: XCTestCase {
  func testUnaryFiniteDifferences() { GradCheck.finiteDifferences(GradCases.unary) }
  func testUnaryOnEveryDevice() { GradCheck.onEveryDevice(GradCases.unary) }

  func testBinaryFiniteDifferences() { GradCheck.finiteDifferences(GradCases.binary) }
  func testBinaryOnEveryDevice() { GradCheck.onEveryDevice(GradCases.binary) }

  func testBinaryScalarFiniteDifferences() { GradCheck.finiteDifferences(GradCases.binaryScalar) }
  func testBinaryScalarOnEveryDevice() { GradCheck.onEveryDevice(GradCases.binaryScalar) }

  func testClampAndWhereFiniteDifferences() { GradCheck.finiteDifferences(GradCases.clampAndWhere) }
  func testClampAndWhereOnEveryDevice() { GradCheck.onEveryDevice(GradCases.clampAndWhere) }

  func testReductionsFiniteDifferences() { GradCheck.finiteDifferences(GradCases.reductions) }
  func testReductionsOnEveryDevice() { GradCheck.onEveryDevice(GradCases.reductions) }

  func testSoftmaxFiniteDifferences() { GradCheck.finiteDifferences(GradCases.softmax) }
  func testSoftmaxOnEveryDevice() { GradCheck.onEveryDevice(GradCases.softmax) }

  func testShapeOpsFiniteDifferences() { GradCheck.finiteDifferences(GradCases.shapeOps) }
  func testShapeOpsOnEveryDevice() { GradCheck.onEveryDevice(GradCases.shapeOps) }

  func testGemmFiniteDifferences() { GradCheck.finiteDifferences(GradCases.gemm) }
  func testGemmOnEveryDevice() { GradCheck.onEveryDevice(GradCases.gemm) }

  func testLinearAndEmbeddingFiniteDifferences() { GradCheck.finiteDifferences(GradCases.linearAndEmbedding) }
  func testLinearAndEmbeddingOnEveryDevice() { GradCheck.onEveryDevice(GradCases.linearAndEmbedding) }

  func testConvolutionFiniteDifferences() { GradCheck.finiteDifferences(GradCases.conv) }
  func testConvolutionOnEveryDevice() { GradCheck.onEveryDevice(GradCases.conv) }

  func testNormalisationFiniteDifferences() { GradCheck.finiteDifferences(GradCases.norms) }
  func testNormalisationOnEveryDevice() { GradCheck.onEveryDevice(GradCases.norms) }

  func testFusedBatchNormFiniteDifferences() { GradCheck.finiteDifferences(GradCases.fusedBatchNorm) }
  func testFusedBatchNormOnEveryDevice() { GradCheck.onEveryDevice(GradCases.fusedBatchNorm, report: true) }

  func testAttentionFiniteDifferences() { GradCheck.finiteDifferences(GradCases.attention) }
  func testAttentionOnEveryDevice() { GradCheck.onEveryDevice(GradCases.attention) }

  func testLossesFiniteDifferences() { GradCheck.finiteDifferences(GradCases.losses) }
  func testLossesOnEveryDevice() { GradCheck.onEveryDevice(GradCases.losses) }

  /// Every op, twice on a fresh tape per device: the gradients must be bitwise identical.
  func testBackwardTwiceIsBitwiseIdenticalOnEveryDevice() throws {
    for d in allDevices() {
      for c in GradCases.all {
        let shape = c.reference(c.inputs.map(\.t64)).shape
        let r = c.cotangent(shape)
        func bits() throws -> [[UInt32]] {
          try GradCheck.run(c, on: d, cotangent: r, shape: shape).grads.map {
            try XCTUnwrap($0, "\(c.op) on \(d.spec)").toArray().map(\.bitPattern)
          }
        }
        let first = try bits(), second = try bits()
        for (k, input) in c.inputs.enumerated() where first[k] != second[k] {
          let i = first[k].indices.first { first[k][$0] != second[k][$0] } ?? -1
          XCTFail(
            "\(c.op) on \(d.spec): d/d\(input.name) differs between two backward passes at element \(i)")
        }
      }
    }
  }

  /// The documented conventions at the kinks that the checks above avoid, on every device: maximum/minimum
  /// ties give the gradient to `a` (also against a scalar), max-reduce gives the full gradient to every tied
  /// element, relu′(0) = 0.
  func testConventionsAtKinksOnEveryDevice() throws {
    for d in allDevices() {
      func grads(_ inputs: [Tensor], _ weights: [Float], _ f: () throws -> Tensor) throws -> [[Float]] {
        let tape = Tape()
        tape.watch(inputs)
        let loss = try tape.record {
          let y = try f()
          return try (y * Tensor(weights, shape: y.shape, on: d)).sum()
        }
        return try tape.gradients(of: loss, wrt: inputs).map { try XCTUnwrap($0).toArray() }
      }
      let a = try Tensor([1, 2, -1], shape: [3], on: d), b = try Tensor([1, 0, -1], shape: [3], on: d)
      let w: [Float] = [3, 5, 7]
      // Elements 0 and 2 tie; at element 1, a is the maximum and b the minimum.
      XCTAssertEqual(
        try grads([a, b], w) { try a.maximum(b) }, [[3, 5, 7], [0, 0, 0]], "maximum on \(d.spec)")
      XCTAssertEqual(
        try grads([a, b], w) { try a.minimum(b) }, [[3, 0, 7], [0, 5, 0]], "minimum on \(d.spec)")
      let x = try Tensor([0.5, 1, 0], shape: [3], on: d)
      XCTAssertEqual(try grads([x], w) { try x.maximum(0.5) }, [[3, 5, 0]], "maximum(scalar) on \(d.spec)")
      XCTAssertEqual(try grads([x], w) { try x.minimum(0.5) }, [[3, 0, 7]], "minimum(scalar) on \(d.spec)")
      let m = try Tensor([2, 1, 2, 0, 0, -1], shape: [2, 3], on: d)
      XCTAssertEqual(
        try grads([m], [3, 5]) { try m.max(axes: [1]) }, [[3, 0, 3, 5, 5, 0]], "max ties on \(d.spec)")
      let r = try Tensor([0, 1, -1], shape: [3], on: d)
      XCTAssertEqual(try grads([r], w) { try r.relu() }, [[0, 5, 0]], "relu′(0) on \(d.spec)")
    }
  }
}
