// Whole-graph gradient checks: a small network of every forward op a UNet uses, float32 analytic
// gradients against central differences of the same float32 graph (Float64 sums, eps 1e-2).
import XCTest

@testable import GPUGenCore

final class AutogradSmokeTests: XCTestCase {
  struct Params {
    var w1: Tensor, b1: Tensor, gamma: Tensor, beta: Tensor, lw: Tensor, lb: Tensor, w2: Tensor, wd: Tensor
    var all: [Tensor] { [w1, b1, gamma, beta, lw, lb, w2, wd] }
  }

  func makeParams(on d: Device) throws -> Params {
    Params(
      w1: try Tensor(randomValues(4 * 2 * 9, seed: 1, in: -0.4...0.4), shape: [4, 2, 3, 3], on: d),
      b1: try Tensor(randomValues(4, seed: 2), shape: [4], on: d),
      gamma: try Tensor(randomValues(4, seed: 3, in: 0.5...1.5), shape: [4], on: d),
      beta: try Tensor(randomValues(4, seed: 4), shape: [4], on: d),
      lw: try Tensor(randomValues(4 * 4, seed: 5, in: -0.5...0.5), shape: [4, 4], on: d),
      lb: try Tensor(randomValues(4, seed: 6), shape: [4], on: d),
      w2: try Tensor(randomValues(2 * 8 * 9, seed: 7, in: -0.3...0.3), shape: [2, 8, 3, 3], on: d),
      wd: try Tensor(randomValues(4 * 4 * 9, seed: 8, in: -0.3...0.3), shape: [4, 4, 3, 3], on: d))
  }

  func loss(_ x: Tensor, _ p: Params, target: Tensor) throws -> Tensor {
    var h = try x.conv2d(weight: p.w1, bias: p.b1, stride: 1, padding: 1)  // (2, 4, 4, 4)
    h = try h.groupNorm(groups: 2, weight: p.gamma, bias: p.beta, silu: true)
    let down = try h.conv2d(weight: p.wd, stride: 2, padding: 1)
    // attention over the 2×2 tokens of `down`
    let tokens = try down.reshaped([2, 4, 4]).permuted([0, 2, 1])  // (2, 4 tokens, 4 ch)
    let q = try tokens.linear(weight: p.lw, bias: p.lb)
    let a = try Tensor.attention(query: q, key: tokens, value: tokens)
    let back = try a.permuted([0, 2, 1]).reshaped([2, 4, 2, 2]).upsampleNearest2x()
    let cat = try Tensor.concat([h, back.tanh()], axis: 1)  // (2, 8, 4, 4)
    let out = try cat.conv2d(weight: p.w2, stride: 1, padding: 1)
    return try Tensor.mseLoss(out, target) + (out.softmax(axis: 1) * out).mean(axes: [1, 2]).sum()
  }

  func testWholeGraphGradientsMatchFiniteDifferences() throws {
    for d in allDevices() {
      let x = try Tensor(randomValues(2 * 2 * 16, seed: 11), shape: [2, 2, 4, 4], on: d)
      let target = try Tensor(randomValues(2 * 2 * 16, seed: 12), shape: [2, 2, 4, 4], on: d)
      let p = try makeParams(on: d)
      let tape = Tape()
      tape.watch(p.all + [x])
      let l = try tape.record { try loss(x, p, target: target) }
      let grads = try tape.gradients(of: l, wrt: p.all + [x])
      XCTAssertEqual(tape.count, 0, "the tape is released after backward")
      for (pi, t) in (p.all + [x]).enumerated() {
        let g = try XCTUnwrap(grads[pi], "gradient \(pi) on \(d.spec)").toArray()
        var values = try t.toArray()
        for i in stride(from: 0, to: values.count, by: Swift.max(1, values.count / 6)) {
          let orig = values[i]
          let eps: Float = 1e-2
          values[i] = orig + eps
          try t.assign(try Tensor(values, shape: t.shape, on: d))
          let lp = Double(try loss(x, p, target: target).toArray()[0])
          values[i] = orig - eps
          try t.assign(try Tensor(values, shape: t.shape, on: d))
          let lm = Double(try loss(x, p, target: target).toArray()[0])
          values[i] = orig
          try t.assign(try Tensor(values, shape: t.shape, on: d))
          let fd = (lp - lm) / (2 * Double(eps))
          XCTAssertEqual(
            Double(g[i]), fd, accuracy: 2e-3 + 2e-2 * Swift.abs(fd),
            "param \(pi) element \(i) on \(d.spec)")
        }
      }
    }
  }

  func testBackwardTwiceIsBitwiseIdentical() throws {
    let d = Device.cpu
    let x = try Tensor(randomValues(2 * 2 * 16, seed: 11), shape: [2, 2, 4, 4], on: d)
    let target = try Tensor(randomValues(2 * 2 * 16, seed: 12), shape: [2, 2, 4, 4], on: d)
    let p = try makeParams(on: d)
    func run() throws -> [[Float]] {
      let tape = Tape()
      tape.watch(p.all)
      let l = try tape.record { try loss(x, p, target: target) }
      return try tape.gradients(of: l, wrt: p.all).map { try XCTUnwrap($0).toArray() }
    }
    let a = try run(), b = try run()
    XCTAssertEqual(a.map { $0.map(\.bitPattern) }, b.map { $0.map(\.bitPattern) })
  }

  func testNoGradRecordsNothing() throws {
    let x = try Tensor([1, 2, 3], shape: [3])
    let tape = Tape()
    tape.watch(x)
    try tape.record {
      _ = try Tape.noGrad { try x * x }
    }
    XCTAssertEqual(tape.count, 0)
    let y = try tape.record { try (x * x).sum() }
    XCTAssertEqual(tape.count, 2)
    let g = try tape.gradients(of: y, wrt: [x])
    XCTAssertEqual(try g[0]?.toArray(), [2, 4, 6])
  }
}
