// Convolution, group norm, linear, upsampling and attention on every device against Float64.
import Foundation
import XCTest

@testable import GPUGenCore

final class NNOpsTests: XCTestCase {
  func refConv(
    _ x: [Float], _ w: [Float], _ b: [Float]?, n: Int, c: Int, h: Int, wd: Int, cout: Int, kh: Int, kw: Int,
    stride: Int, pad: (Int, Int, Int, Int)
  ) -> (value: [Double], magnitude: [Double], shape: [Int]) {
    let ho = (h + pad.0 + pad.2 - kh) / stride + 1, wo = (wd + pad.1 + pad.3 - kw) / stride + 1
    var out = [Double](repeating: 0, count: n * cout * ho * wo), mag = out
    for ni in 0..<n {
      for o in 0..<cout {
        for oy in 0..<ho {
          for ox in 0..<wo {
            var s = Double(b?[o] ?? 0), g = Swift.abs(s)
            for ci in 0..<c {
              for ky in 0..<kh {
                for kx in 0..<kw {
                  let iy = oy * stride - pad.0 + ky, ix = ox * stride - pad.1 + kx
                  guard iy >= 0, iy < h, ix >= 0, ix < wd else { continue }
                  let p =
                    Double(x[((ni * c + ci) * h + iy) * wd + ix])
                    * Double(w[((o * c + ci) * kh + ky) * kw + kx])
                  s += p
                  g += Swift.abs(p)
                }
              }
            }
            let idx = ((ni * cout + o) * ho + oy) * wo + ox
            out[idx] = s
            mag[idx] = g
          }
        }
      }
    }
    return (out, mag, [n, cout, ho, wo])
  }

  func testConv2d() throws {
    // (n, c, h, w, cout, kh, kw, stride, padding)
    let cases: [(Int, Int, Int, Int, Int, Int, Int, Int, (Int, Int, Int, Int))] = [
      (1, 1, 7, 7, 1, 3, 3, 1, (1, 1, 1, 1)), (2, 3, 9, 7, 5, 3, 3, 1, (1, 1, 1, 1)),
      (3, 4, 8, 8, 6, 3, 3, 2, (1, 1, 1, 1)), (2, 5, 9, 9, 3, 3, 3, 2, (0, 0, 1, 1)),
      (2, 33, 5, 6, 7, 1, 1, 1, (0, 0, 0, 0)), (1, 7, 4, 4, 129, 1, 1, 1, (0, 0, 0, 0)),
      (2, 2, 6, 5, 3, 2, 3, 1, (0, 2, 1, 0)), (1, 16, 16, 16, 16, 3, 3, 1, (1, 1, 1, 1)),
      // Rows of 16k outputs on several images: the CPU's direct (no im2col) path, 8-channel blocks + remainder.
      (2, 5, 16, 32, 7, 3, 3, 1, (1, 1, 1, 1)), (3, 4, 18, 34, 9, 3, 3, 1, (0, 0, 0, 0)),
      (2, 3, 15, 15, 10, 2, 3, 1, (1, 2, 0, 1)), (4, 17, 16, 48, 16, 3, 3, 1, (1, 1, 1, 1)),
      // 8-wide rows: four output rows per register block, plus leftover rows.
      (2, 6, 8, 8, 11, 3, 3, 1, (1, 1, 1, 1)), (2, 3, 10, 8, 9, 3, 3, 1, (1, 1, 1, 1)),
    ]
    for device in allDevices() {
      for (ci, t) in cases.enumerated() {
        let (n, c, h, w, cout, kh, kw, stride, pad) = t
        let x = randomValues(n * c * h * w, seed: UInt64(ci + 1)),
          wt = randomValues(cout * c * kh * kw, seed: UInt64(ci + 50))
        let b = ci % 2 == 0 ? randomValues(cout, seed: 99) : nil
        let tx = try Tensor(x, shape: [n, c, h, w], on: device)
        let y = try tx.conv2d(
          weight: try Tensor(wt, shape: [cout, c, kh, kw], on: device),
          bias: try b.map { try Tensor($0, shape: [cout], on: device) },
          stride: (stride, stride), padding: pad)
        let r = refConv(
          x, wt, b, n: n, c: c, h: h, wd: w, cout: cout, kh: kh, kw: kw, stride: stride, pad: pad)
        XCTAssertEqual(y.shape, r.shape, "case \(ci)")
        let got = try y.toArray()
        let k = c * kh * kw
        for i in 0..<got.count
        where !(Swift.abs(Double(got[i]) - r.value[i]) <= Double(k + 4) * 6e-8 * r.magnitude[i] + 1e-6) {
          XCTFail("conv case \(ci) on \(device): element \(i) is \(got[i]), expected \(r.value[i])")
          break
        }
      }
    }
  }

  func testGroupNormWithAndWithoutSiLU() throws {
    let cases: [([Int], Int)] = [
      ([2, 8, 5, 5], 4), ([1, 6, 7, 3], 6), ([3, 4, 1, 1], 1), ([2, 32, 16, 16], 8), ([1, 3, 1000], 3),
    ]
    for device in allDevices() {
      for (shape, groups) in cases {
        let x = randomValues(Shape.count(shape), seed: 5, in: -2...3)
        let c = shape[1], hw = shape[2...].reduce(1, *), cpg = c / groups
        let gamma = randomValues(c, seed: 6), beta = randomValues(c, seed: 7)
        for silu in [false, true] {
          let y = try Tensor(x, shape: shape, on: device).groupNorm(
            groups: groups, weight: try Tensor(gamma, shape: [c], on: device),
            bias: try Tensor(beta, shape: [c], on: device),
            eps: 1e-5, silu: silu)
          var want = [Double](repeating: 0, count: x.count)
          for ni in 0..<shape[0] {
            for g in 0..<groups {
              let base = (ni * c + g * cpg) * hw
              let vals = (0..<(cpg * hw)).map { Double(x[base + $0]) }
              let m = vals.reduce(0, +) / Double(vals.count)
              let v = vals.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(vals.count)
              for i in 0..<vals.count {
                let ch = g * cpg + i / hw
                var o = (vals[i] - m) / (v + 1e-5).squareRoot() * Double(gamma[ch]) + Double(beta[ch])
                if silu { o = o / (1 + Foundation.exp(-o)) }
                want[base + i] = o
              }
            }
          }
          assertClose(
            try y.toArray(), want, rtol: 1e-4, atol: 1e-5,
            "groupNorm \(shape) g=\(groups) silu=\(silu) on \(device)")
        }
      }
      XCTAssertThrowsError(
        try Tensor.zeros([1, 6, 2, 2], on: device).groupNorm(
          groups: 4, weight: try Tensor.zeros([6], on: device), bias: try Tensor.zeros([6], on: device)))
    }
  }

  func testLinearUpsampleAttention() throws {
    for device in allDevices() {
      // linear over the last axis of a rank-3 input
      let x = randomValues(2 * 7 * 33, seed: 1), w = randomValues(5 * 33, seed: 2),
        b = randomValues(5, seed: 3)
      let y = try Tensor(x, shape: [2, 7, 33], on: device).linear(
        weight: try Tensor(w, shape: [5, 33], on: device), bias: try Tensor(b, shape: [5], on: device))
      XCTAssertEqual(y.shape, [2, 7, 5])
      let lw = (0..<70).map { i -> Double in
        let row = i / 5, o = i % 5
        return (0..<33).map { Double(x[row * 33 + $0]) * Double(w[o * 33 + $0]) }.reduce(Double(b[o]), +)
      }
      assertClose(try y.toArray(), lw, rtol: 1e-5, atol: 1e-5, "linear on \(device)")
      // nearest ×2
      let u = randomValues(2 * 3 * 4 * 5, seed: 4)
      let up = try Tensor(u, shape: [2, 3, 4, 5], on: device).upsampleNearest2x()
      XCTAssertEqual(up.shape, [2, 3, 8, 10])
      let uw = (0..<up.count).map { i -> Double in
        let o = Ref.multiIndex(i, [2, 3, 8, 10])
        return Double(u[Ref.linear([o[0], o[1], o[2] / 2, o[3] / 2], [2, 3, 4, 5])])
      }
      assertClose(try up.toArray(), uw, rtol: 0, atol: 0, "upsample on \(device)")
      // attention
      let (bh, l, s, d) = (3, 7, 9, 4)
      let q = randomValues(bh * l * d, seed: 5), k = randomValues(bh * s * d, seed: 6),
        v = randomValues(bh * s * d, seed: 7)
      let att = try Tensor.attention(
        query: try Tensor(q, shape: [bh, l, d], on: device),
        key: try Tensor(k, shape: [bh, s, d], on: device),
        value: try Tensor(v, shape: [bh, s, d], on: device))
      XCTAssertEqual(att.shape, [bh, l, d])
      var aw = [Double]()
      for b in 0..<bh {
        for i in 0..<l {
          let scores = (0..<s).map { j in
            (0..<d).map { Double(q[(b * l + i) * d + $0]) * Double(k[(b * s + j) * d + $0]) }.reduce(0, +) / 2
          }
          let m = scores.max()!, e = scores.map { Foundation.exp($0 - m) }, z = e.reduce(0, +)
          for t in 0..<d {
            aw.append((0..<s).map { e[$0] / z * Double(v[(b * s + $0) * d + t]) }.reduce(0, +))
          }
        }
      }
      assertClose(try att.toArray(), aw, rtol: 1e-5, atol: 1e-5, "attention on \(device)")
      // one-hot
      XCTAssertEqual(try Tensor.oneHot([2, 0], classes: 3, on: device).toArray(), [0, 0, 1, 1, 0, 0])
      XCTAssertThrowsError(try Tensor.oneHot([3], classes: 3, on: device))
    }
  }
}

/// Parameters with defaults that the main parity tests leave at their defaults.
final class NNOpsParameterTests: XCTestCase {
  func testActivationEpsAndScaleParametersAreApplied() throws {
    for device in allDevices() {
      let x = try Tensor(
        randomValues(2 * 3 * 16 * 16, seed: 1, in: -2...2), shape: [2, 3, 16, 16], on: device)
      // (c, cout) = (3, 4): direct / im2col kernels; (16, 16) over 4 images: the Winograd kernels.
      for (c, cout, n) in [(3, 4, 2), (16, 16, 4)] {
        let xc =
          c == 3
          ? x
          : try Tensor(
            randomValues(n * c * 16 * 16, seed: 6, in: -2...2), shape: [n, c, 16, 16], on: device)
        let w = try Tensor(randomValues(cout * c * 3 * 3, seed: 2), shape: [cout, c, 3, 3], on: device)
        let b = try Tensor(randomValues(cout, seed: 3), shape: [cout], on: device)
        let plain = try xc.conv2d(weight: w, bias: b, padding: (1, 1, 1, 1))
        for act in [Activation.relu, .silu, .sigmoid, .tanh, .gelu, .leakyRelu] {
          let fused = try xc.conv2d(weight: w, bias: b, padding: (1, 1, 1, 1), activation: act)
          let op: UnaryOp = [
            .relu: .relu, .silu: .silu, .sigmoid: .sigmoid, .tanh: .tanh, .gelu: .gelu,
            .leakyRelu: .leakyRelu,
          ][act]!
          assertClose(
            try fused.toArray(), try plain.apply(op).toArray().map(Double.init), rtol: 1e-4, atol: 1e-5,
            "conv \(act), \(c) → \(cout) channels, on \(device)")
        }
      }
      let v = try Tensor(randomValues(5 * 7, seed: 4), shape: [5, 7], on: device)
      let lw = try Tensor(randomValues(3 * 7, seed: 5), shape: [3, 7], on: device)
      assertClose(
        try v.linear(weight: lw, activation: .relu).toArray(),
        try v.linear(weight: lw).relu().toArray().map(Double.init),
        rtol: 1e-5, atol: 1e-6, "linear relu on \(device)")
      let gamma = try Tensor.full(1, shape: [3], on: device), beta = try Tensor.zeros([3], on: device)
      let small = try x.groupNorm(groups: 3, weight: gamma, bias: beta, eps: 1e-5).toArray()
      let large = try x.groupNorm(groups: 3, weight: gamma, bias: beta, eps: 10).toArray()
      // var(x) ≈ 4/3 here, so eps = 10 shrinks the output by about √((4/3 + 10) / (4/3)) ≈ 2.9.
      let ratio = small.map { Swift.abs($0) }.reduce(0, +) / large.map { Swift.abs($0) }.reduce(0, +)
      XCTAssertEqual(ratio, 2.9, accuracy: 0.2, "groupNorm eps on \(device)")
      let q = try Tensor(randomValues(2 * 4 * 8, seed: 6), shape: [2, 4, 8], on: device)
      let a1 = try Tensor.attention(query: q, key: q, value: q).toArray()
      let a2 = try Tensor.attention(query: q, key: q, value: q, scale: 0).toArray()
      // scale 0: uniform attention, so every query row is the mean of the values.
      let mean = try q.mean(axes: [1], keepDims: true).toArray()
      for bi in 0..<2 {
        for i in 0..<4 {
          for d in 0..<8 { XCTAssertEqual(a2[(bi * 4 + i) * 8 + d], mean[bi * 8 + d], accuracy: 1e-5) }
        }
      }
      XCTAssertNotEqual(a1, a2)
    }
  }
}
