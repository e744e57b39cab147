// The convolution kernels' special cases at realistic sizes: the CPU's direct forward kernel (8-, 16- and
// 32k-wide rows, any other width through the padded-width plane, leftover rows, output channels not a
// multiple of 8), its Winograd kernel (partial tiles and channel blocks, one image split by tile rows), its direct weight-gradient kernel (output channels across vector lanes: blocks of 48, a
// partial last block, non-3×3 taps, asymmetric padding, chunks of images) and the stride-1 input gradient,
// each against the Float64 reference on every device. Too large for finite differences: the reference's
// analytic gradients (themselves checked by GradCheckTests) are the oracle.
import XCTest

@testable import GPUGenCore

final class ConvKernelTests: XCTestCase {
  struct Geometry {
    var n: Int, c: Int, h: Int, w: Int, cout: Int, kh: Int, kw: Int
    var pad: (Int, Int, Int, Int) = (1, 1, 1, 1)  // top, left, bottom, right
    var bias = true
  }

  static let geometries: [Geometry] = [
    Geometry(n: 3, c: 5, h: 8, w: 8, cout: 20, kh: 3, kw: 3),  // 4-row blocks, 8-wide
    Geometry(n: 2, c: 3, h: 7, w: 8, cout: 9, kh: 3, kw: 3),  // 8-wide with a leftover row
    Geometry(n: 2, c: 4, h: 5, w: 16, cout: 50, kh: 3, kw: 3),  // 2-row blocks + leftover, 4 lane blocks
    Geometry(n: 2, c: 2, h: 3, w: 32, cout: 17, kh: 3, kw: 3),  // whole 32-wide rows
    Geometry(n: 3, c: 3, h: 9, w: 28, cout: 33, kh: 3, kw: 3),  // any width (28 → padded plane)
    Geometry(n: 2, c: 2, h: 6, w: 7, cout: 5, kh: 3, kw: 3, bias: false),
    Geometry(n: 2, c: 3, h: 6, w: 9, cout: 4, kh: 2, kw: 3, pad: (0, 1, 1, 1)),  // asymmetric
    Geometry(n: 2, c: 2, h: 7, w: 6, cout: 3, kh: 5, kw: 5, pad: (2, 2, 2, 2)),
    Geometry(n: 2, c: 3, h: 5, w: 5, cout: 6, kh: 3, kw: 3, pad: (0, 0, 0, 0)),  // no padding
    Geometry(n: 1, c: 6, h: 8, w: 8, cout: 12, kh: 3, kw: 3),  // one image
    Geometry(n: 40, c: 2, h: 8, w: 8, cout: 3, kh: 3, kw: 3),  // several image chunks per core
    // Winograd F(4×4, 3×3) on the CPU (≥ 16 channels each way, ≥ 1,024 output positions); the input
    // gradients are Winograd convolutions too.
    Geometry(n: 2, c: 16, h: 28, w: 28, cout: 17, kh: 3, kw: 3),  // 7 tiles a row, a partial 32-channel block
    Geometry(n: 3, c: 16, h: 13, w: 30, cout: 17, kh: 3, kw: 3, pad: (2, 0, 0, 2)),  // edge tiles, asymmetric
    Geometry(n: 1, c: 17, h: 32, w: 32, cout: 16, kh: 3, kw: 3, bias: false),  // one image: tile rows split
    Geometry(n: 16, c: 20, h: 8, w: 8, cout: 40, kh: 3, kw: 3),  // groups of images; two channel blocks
    Geometry(n: 2, c: 16, h: 9, w: 204, cout: 16, kh: 3, kw: 3),  // wide: blocks of 2 tile rows per image
  ]

  func testForwardAndGradientsMatchTheFloat64Reference() throws {
    // The Float64 reference once per geometry, then every device against it.
    for (gi, g) in Self.geometries.enumerated() {
      let xs = [g.n, g.c, g.h, g.w], ws = [g.cout, g.c, g.kh, g.kw]
      let spec = R64.ConvSpec(padT: g.pad.0, padL: g.pad.1, padB: g.pad.2, padR: g.pad.3)
      let xv = randomValues(xs.reduce(1, *), seed: UInt64(100 + gi))
      let wv = randomValues(ws.reduce(1, *), seed: UInt64(200 + gi), in: -0.5...0.5)
      let bv = randomValues(g.cout, seed: UInt64(300 + gi))
      let x64 = T64(xs, xv.map(Double.init)), w64 = T64(ws, wv.map(Double.init))
      let b64 = g.bias ? T64([g.cout], bv.map(Double.init)) : nil
      let y64 = R64.conv2d(x64, w64, bias: b64, spec)
      let dyv = randomValues(y64.count, seed: UInt64(400 + gi))
      let grads64 = R64.conv2dBackward(x64, w64, bias: b64, spec, T64(y64.shape, dyv.map(Double.init)))
      for d in allDevices() {
        let x = try Tensor(xv, shape: xs, on: d), w = try Tensor(wv, shape: ws, on: d)
        let b = g.bias ? try Tensor(bv, shape: [g.cout], on: d) : nil
        let tape = Tape()
        let inputs = [x, w] + (b.map { [$0] } ?? [])
        tape.watch(inputs)
        let y = try tape.record { try x.conv2d(weight: w, bias: b, padding: g.pad) }
        XCTAssertEqual(y.shape, y64.shape)
        let grads = try tape.gradients(of: y, wrt: inputs, seed: try Tensor(dyv, shape: y64.shape, on: d))
        let label = "\(d.spec) geometry \(gi) (\(g.n)×\(g.c)×\(g.h)×\(g.w) → \(g.cout), \(g.kh)×\(g.kw))"
        assertClose(try y.toArray(), y64.v, "forward, " + label)
        for (i, name) in ["dx", "dw", "dbias"].prefix(inputs.count).enumerated() {
          assertClose(try XCTUnwrap(grads[i]).toArray(), grads64[i].v, name + ", " + label)
        }
      }
    }
  }

  /// conv2d(imageBias:residual:) — fused into the CPU's direct kernel and its GEMM path's epilogue — equals
  /// the separate additions, on every device, for the direct (stride 1, several images), single-image and
  /// strided (im2col) paths and Winograd, with and without a channel bias.
  func testFusedPerImageBiasAndResidualEqualTheSeparateAdditions() throws {
    let cases: [(n: Int, c: Int, h: Int, w: Int, cout: Int, stride: Int, bias: Bool)] = [
      (3, 4, 8, 8, 10, 1, true), (2, 3, 9, 28, 5, 1, false), (1, 4, 6, 6, 3, 1, true),
      (2, 3, 8, 8, 4, 2, true), (4, 16, 16, 16, 20, 1, true),  // the last: Winograd on the CPU
    ]
    for d in allDevices() {
      for (ci, k) in cases.enumerated() {
        let x = try Tensor(
          randomValues(k.n * k.c * k.h * k.w, seed: UInt64(10 + ci)), shape: [k.n, k.c, k.h, k.w], on: d)
        let w = try Tensor(
          randomValues(k.cout * k.c * 9, seed: UInt64(20 + ci), in: -0.5...0.5), shape: [k.cout, k.c, 3, 3],
          on: d)
        let b = k.bias ? try Tensor(randomValues(k.cout, seed: UInt64(30 + ci)), shape: [k.cout], on: d) : nil
        let plain = try x.conv2d(weight: w, bias: b, stride: (k.stride, k.stride), padding: (1, 1, 1, 1))
        let t = try Tensor(randomValues(k.n * k.cout, seed: UInt64(40 + ci)), shape: [k.n, k.cout], on: d)
        let r = try Tensor(randomValues(plain.count, seed: UInt64(50 + ci)), shape: plain.shape, on: d)
        let expected = try (r + (plain + t.reshaped([k.n, k.cout, 1, 1]))).toArray()
        let fused = try x.conv2d(
          weight: w, bias: b, stride: (k.stride, k.stride), padding: (1, 1, 1, 1), imageBias: t, residual: r)
        XCTAssertEqual(fused.shape, plain.shape)
        let got = try fused.toArray()
        let worst = zip(got, expected).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, 1e-5, "\(d.spec) case \(ci): fused vs separate additions")
        // Each extra alone, too.
        let onlyBias = try x.conv2d(
          weight: w, bias: b, stride: (k.stride, k.stride), padding: (1, 1, 1, 1), imageBias: t, residual: nil
        )
        let e1 = try (plain + t.reshaped([k.n, k.cout, 1, 1])).toArray()
        XCTAssertLessThanOrEqual(
          zip(try onlyBias.toArray(), e1).map { abs($0 - $1) }.max() ?? 0, 1e-5,
          "\(d.spec) case \(ci): bias only")
      }
      // Under a tape: the fused op's gradients equal the composition's.
      do {
        let (n, c, cout) = (3, 4, 6)
        let x = try Tensor(randomValues(n * c * 64, seed: 61), shape: [n, c, 8, 8], on: d)
        let w = try Tensor(
          randomValues(cout * c * 9, seed: 62, in: -0.5...0.5), shape: [cout, c, 3, 3], on: d)
        let b = try Tensor(randomValues(cout, seed: 63), shape: [cout], on: d)
        let t = try Tensor(randomValues(n * cout, seed: 64), shape: [n, cout], on: d)
        let r = try Tensor(randomValues(n * cout * 64, seed: 65), shape: [n, cout, 8, 8], on: d)
        let seed = try Tensor(randomValues(n * cout * 64, seed: 66), shape: [n, cout, 8, 8], on: d)
        let all = [x, w, b, t, r]
        func grads(_ f: () throws -> Tensor) throws -> [[Float]] {
          let tape = Tape()
          tape.watch(all)
          let y = try tape.record(f)
          return try tape.gradients(of: y, wrt: all, seed: seed).map { try XCTUnwrap($0).toArray() }
        }
        let fused = try grads {
          try x.conv2d(weight: w, bias: b, padding: (1, 1, 1, 1), imageBias: t, residual: r)
        }
        let composed = try grads {
          try r + (x.conv2d(weight: w, bias: b, padding: 1) + t.reshaped([n, cout, 1, 1]))
        }
        for (i, name) in ["dx", "dw", "dbias", "dimageBias", "dresidual"].enumerated() {
          let worst = zip(fused[i], composed[i]).map { abs($0 - $1) }.max() ?? 0
          XCTAssertLessThanOrEqual(worst, 1e-4, "\(d.spec): \(name) of the fused op vs the composition")
        }
      }
      // A per-image bias of the wrong shape is an error, not a crash.
      let x = try Tensor(randomValues(2 * 3 * 16, seed: 1), shape: [2, 3, 4, 4], on: d)
      let w = try Tensor(randomValues(4 * 3 * 9, seed: 2), shape: [4, 3, 3, 3], on: d)
      XCTAssertThrowsError(
        try x.conv2d(
          weight: w, bias: nil, padding: (1, 1, 1, 1), imageBias: try Tensor.zeros([2, 3], on: d),
          residual: nil))
    }
  }

  /// max |a − r| ≤ 1e-5 · max |r| (float32 sums of at most a few thousand terms).
  func assertClose(_ a: [Float], _ r: [Double], _ what: String) {
    XCTAssertEqual(a.count, r.count, what)
    let scale = r.map(abs).max() ?? 0
    var worst = 0.0
    for (u, v) in zip(a, r) { worst = Swift.max(worst, abs(Double(u) - v)) }
    XCTAssertLessThanOrEqual(
      worst, 1e-5 * Swift.max(scale, 1e-30), "\(what): max error \(worst), scale \(scale)")
  }
}
