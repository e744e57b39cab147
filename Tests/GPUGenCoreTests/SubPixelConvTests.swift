// The CPU's sub-pixel paths for 4×4 stride-2 padding-1 convolutions and transposed convolutions
// (Autograd/SubPixelConv.swift), with the fused (leaky) ReLU whose gradient comes from the output, against a
// Float64 host reference (forward) and against the im2col/col2im path that OpenCL devices take (forward and every
// gradient).
import Foundation
import XCTest

@testable import GPUGenCore

final class SubPixelConvTests: XCTestCase {
  func values(_ n: Int, seed: UInt64) -> [Float] {
    (0..<n).map { i in Float(sin(Double(i) * 12.9898 + Double(seed) * 78.233)) * 0.8 }
  }

  /// conv2d (transposed: false) or conv_transpose2d in Float64, 4×4 kernel, stride 2, padding 1.
  func reference(_ x: [Float], _ xs: [Int], _ w: [Float], _ ws: [Int], transposed: Bool) -> ([Double], [Int])
  {
    let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3])
    if !transposed {
      let o = ws[0]
      let (ho, wo) = ((h + 2 - 4) / 2 + 1, (wd + 2 - 4) / 2 + 1)
      var y = [Double](repeating: 0, count: n * o * ho * wo)
      for b in 0..<n {
        for oc in 0..<o {
          for i in 0..<ho {
            for j in 0..<wo {
              var acc = 0.0
              for ic in 0..<c {
                for ky in 0..<4 {
                  for kx in 0..<4 {
                    let iy = 2 * i - 1 + ky, ix = 2 * j - 1 + kx
                    guard iy >= 0, iy < h, ix >= 0, ix < wd else { continue }
                    acc +=
                      Double(x[((b * c + ic) * h + iy) * wd + ix])
                      * Double(w[((oc * c + ic) * 4 + ky) * 4 + kx])
                  }
                }
              }
              y[((b * o + oc) * ho + i) * wo + j] = acc
            }
          }
        }
      }
      return (y, [n, o, ho, wo])
    }
    let o = ws[1]
    let (ho, wo) = (2 * h, 2 * wd)
    var y = [Double](repeating: 0, count: n * o * ho * wo)
    for b in 0..<n {
      for ic in 0..<c {
        for iy in 0..<h {
          for ix in 0..<wd {
            let v = Double(x[((b * c + ic) * h + iy) * wd + ix])
            for oc in 0..<o {
              for ky in 0..<4 {
                for kx in 0..<4 {
                  let oy = 2 * iy - 1 + ky, ox = 2 * ix - 1 + kx
                  guard oy >= 0, oy < ho, ox >= 0, ox < wo else { continue }
                  y[((b * o + oc) * ho + oy) * wo + ox] += v * Double(w[((ic * o + oc) * 4 + ky) * 4 + kx])
                }
              }
            }
          }
        }
      }
    }
    return (y, [n, o, ho, wo])
  }

  func run(
    _ d: Device, transposed: Bool, x: [Float], xs: [Int], w: [Float], ws: [Int], bias: [Float], r: [Float]
  )
    throws -> (y: [Float], grads: [[Float]])
  {
    let xt = try Tensor(x, shape: xs, on: d), wt = try Tensor(w, shape: ws, on: d)
    let bt = try Tensor(bias, shape: [bias.count], on: d)
    let tape = Tape()
    tape.watch([xt, wt, bt])
    let (y, loss) = try tape.record { () throws -> (Tensor, Tensor) in
      let y =
        transposed
        ? try xt.convTranspose2d(weight: wt, bias: bt, stride: 2, padding: 1, activation: .relu)
        : try xt.conv2d(
          weight: wt, bias: bt, stride: (2, 2), padding: (1, 1, 1, 1), activation: .leakyRelu,
          activationAlpha: 0.2)
      return (y, try (y * Tensor(r, shape: y.shape, on: d)).sum())
    }
    let g = try tape.gradients(of: loss, wrt: [xt, wt, bt]).map { try XCTUnwrap($0).toArray() }
    return (try y.toArray(), g)
  }

  func testFourByFourStrideTwoConvolutionsMatchTheReferenceAndTheIm2colPath() throws {
    let devices = try Device.all()
    for (transposed, xs, ws) in [
      // The first of each pair takes the CPU's sub-pixel path (≥ 16 channels each way in its 3×3 form), the
      // second (a 1-channel image's first and last layer) im2col/col2im.
      (false, [3, 5, 10, 14], [16, 5, 4, 4]), (false, [2, 1, 28, 28], [4, 1, 4, 4]),
      (true, [3, 16, 5, 7], [16, 4, 4, 4]), (true, [2, 8, 7, 7], [8, 1, 4, 4]),
    ] {
      XCTAssertEqual(
        Tensor.subPixelPays(inputs: transposed ? ws[0] : 4 * ws[1], outputs: transposed ? 4 * ws[1] : ws[0]),
        xs[1] != 1 && ws[1] != 1, "\(xs)")
      let x = values(xs.reduce(1, *), seed: 1), w = values(ws.reduce(1, *), seed: 2)
      let cout = transposed ? ws[1] : ws[0]
      let bias = values(cout, seed: 3)
      var (ref, shape) = reference(x, xs, w, ws, transposed: transposed)
      for (i, _) in ref.enumerated() {
        ref[i] += Double(bias[(i / (shape[2] * shape[3])) % cout])
        // ReLU after the transposed convolution, leaky ReLU(0.2) after the convolution.
        if ref[i] < 0 { ref[i] *= transposed ? 0 : 0.2 }
      }
      let r = values(ref.count, seed: 4)
      var results: [(y: [Float], grads: [[Float]])] = []
      for d in devices {
        let out = try run(d, transposed: transposed, x: x, xs: xs, w: w, ws: ws, bias: bias, r: r)
        let scale = ref.map { Swift.abs($0) }.max()!
        let err = zip(out.y, ref).map { Swift.abs(Double($0) - $1) }.max()!
        XCTAssertLessThan(err, 1e-5 * scale, "\(transposed ? "convT" : "conv") \(xs) on \(d)")
        results.append(out)
      }
      // Every device (the CPU's 2×2 Winograd forms, OpenCL's 3×3 forms) gives the same gradients.
      for other in results.dropFirst() {
        for (a, b) in zip(results[0].grads, other.grads) {
          let scale = a.map { Swift.abs($0) }.max()!
          XCTAssertLessThan(zip(a, b).map { Swift.abs($0 - $1) }.max()!, 1e-4 * scale, "\(xs) gradients")
        }
      }
    }
  }

  /// The leaky ReLU slope of a fused transposed convolution is honoured on every device (the CPU fuses it into
  /// the sub-pixel convolution, OpenCL applies it after).
  func testTransposedConvolutionTakesItsActivationSlope() throws {
    for d in try Device.all() {
      let x = try Tensor(values(2 * 16 * 5 * 5, seed: 7), shape: [2, 16, 5, 5], on: d)
      let w = try Tensor(values(16 * 4 * 16, seed: 8), shape: [16, 4, 4, 4], on: d)
      let plain = try x.convTranspose2d(weight: w, stride: 2, padding: 1).toArray()
      let fused = try x.convTranspose2d(
        weight: w, stride: 2, padding: 1, activation: .leakyRelu, activationAlpha: 0.3
      )
      .toArray()
      XCTAssertTrue(plain.contains { $0 < -0.1 })
      for (p, f) in zip(plain, fused) { XCTAssertEqual(f, p > 0 ? p : 0.3 * p, accuracy: 1e-5, "\(d)") }
    }
  }

  /// With Winograd forced on (the sizes above are below its threshold), the CPU's sub-pixel paths read the
  /// space-to-depth view and write the depth-to-space output inside the Winograd kernel: channel counts that
  /// are not multiples of the kernel's 16/32 blocks, odd sizes, rows wider than one 16-float store.
  func testWinogradSubPixelLayoutsMatchTheReference() throws {
    let saved = CPUBackend.winogradMinimumPositions
    CPUBackend.winogradMinimumPositions = 0
    defer { CPUBackend.winogradMinimumPositions = saved }
    let d = Device.cpu
    for (transposed, xs, ws) in [
      (false, [3, 5, 10, 14], [17, 5, 4, 4]), (false, [2, 9, 14, 22], [33, 9, 4, 4]),
      (true, [3, 17, 5, 7], [17, 5, 4, 4]), (true, [2, 16, 9, 11], [16, 9, 4, 4]),
    ] {
      let x = values(xs.reduce(1, *), seed: 11), w = values(ws.reduce(1, *), seed: 12)
      let cout = transposed ? ws[1] : ws[0]
      let bias = values(cout, seed: 13)
      var (ref, shape) = reference(x, xs, w, ws, transposed: transposed)
      for (i, _) in ref.enumerated() {
        ref[i] += Double(bias[(i / (shape[2] * shape[3])) % cout])
        if ref[i] < 0 { ref[i] *= transposed ? 0 : 0.2 }
      }
      let out = try run(
        d, transposed: transposed, x: x, xs: xs, w: w, ws: ws, bias: bias, r: values(ref.count, seed: 14))
      let scale = ref.map { Swift.abs($0) }.max()!
      XCTAssertLessThan(
        zip(out.y, ref).map { Swift.abs(Double($0) - $1) }.max()!, 1e-5 * scale, "\(transposed) \(xs)")
      // The gradients (the adjoint sub-pixel convolutions, also through Winograd) against the direct kernel's.
      CPUBackend.winogradMinimumPositions = Int.max
      let direct = try run(
        d, transposed: transposed, x: x, xs: xs, w: w, ws: ws, bias: bias, r: values(ref.count, seed: 14))
      CPUBackend.winogradMinimumPositions = 0
      for (a, b) in zip(out.grads, direct.grads) {
        let s = a.map { Swift.abs($0) }.max()!
        XCTAssertLessThan(zip(a, b).map { Swift.abs($0 - $1) }.max()!, 1e-5 * s, "\(xs) gradients")
      }
    }
  }

  /// The layouts themselves: Winograd reading x through its space-to-depth view, or writing depth-to-space,
  /// equals the plain convolution of the rearranged tensors.
  func testWinogradLayoutsEqualExplicitRearrangement() throws {
    let saved = CPUBackend.winogradMinimumPositions
    CPUBackend.winogradMinimumPositions = 0
    defer { CPUBackend.winogradMinimumPositions = saved }
    let d = Device.cpu
    let cpu = try XCTUnwrap(d.backend as? CPUBackend)
    let (n, c, h, w, k) = (2, 20, 6, 9, 24)
    let g = ConvGeometry(
      n: n, c: c, h: h, w: w, kh: 3, kw: 3, strideH: 1, strideW: 1, padT: 1, padL: 1, padB: 1, padR: 1)
    let weight = try Tensor(values(k * c * 9, seed: 21), shape: [k, c, 3, 3], on: d)
    let bias = try Tensor(values(k, seed: 22), shape: [k], on: d)
    // Space-to-depth input: x (n, c/4, 2h, 2w).
    let x = try Tensor(values(n * c * h * w, seed: 23), shape: [n, c / 4, 2 * h, 2 * w], on: d)
    let s2d = try x.reshaped([n, c / 4, h, 2, w, 2]).permuted([0, 1, 3, 5, 2, 4]).reshaped([n, c, h, w])
    let plain = try s2d.conv2d(weight: weight, bias: bias, padding: 1).toArray()
    let y = try Tensor(uninitialized: [n, k, h, w], on: d)
    XCTAssertTrue(
      cpu.subPixelWinograd(
        x.buffer, weight: weight.buffer, bias: bias.buffer, y.buffer, g, cout: k, activation: .none,
        activationAlpha: 0, layout: .spaceToDepthInput))
    let got = try y.toArray()
    for (a, b) in zip(got, plain) { XCTAssertEqual(a, b, accuracy: 1e-4) }
    // Depth-to-space output: y (n, k/4, 2h, 2w).
    let x2 = try Tensor(values(n * c * h * w, seed: 24), shape: [n, c, h, w], on: d)
    let z = try x2.conv2d(weight: weight, bias: bias, padding: 1)
    let d2s = try z.reshaped([n, k / 4, 2, 2, h, w]).permuted([0, 1, 4, 2, 5, 3]).reshaped([
      n, k / 4, 2 * h, 2 * w,
    ])
    .toArray()
    let y2 = try Tensor(uninitialized: [n, k / 4, 2 * h, 2 * w], on: d)
    XCTAssertTrue(
      cpu.subPixelWinograd(
        x2.buffer, weight: weight.buffer, bias: bias.buffer, y2.buffer, g, cout: k, activation: .leakyRelu,
        activationAlpha: 0.3, layout: .depthToSpaceOutput))
    for (a, b) in zip(try y2.toArray(), d2s) { XCTAssertEqual(a, b > 0 ? b : 0.3 * b, accuracy: 1e-4) }
  }

  /// The one-pixel-offset layouts of the 2×2 forms: Winograd F(4×4, 2×2) reading x through the space-to-depth
  /// of x padded by one pixel equals the plain 2×2 convolution of that padded space-to-depth; writing
  /// depth-to-space with the border cut equals the plain 2×2 padding-1 convolution, rearranged and cropped.
  /// Odd view sizes and channel counts off the 16/32 blocks reach every partial tile and store.
  func testWinogradOffsetLayoutsEqualExplicitRearrangement() throws {
    let saved = CPUBackend.winogradMinimumPositions
    CPUBackend.winogradMinimumPositions = 0
    defer { CPUBackend.winogradMinimumPositions = saved }
    let d = Device.cpu
    let cpu = try XCTUnwrap(d.backend as? CPUBackend)
    for (n, c, h, w, k) in [(2, 20, 6, 9, 24), (3, 36, 7, 7, 20), (1, 16, 10, 19, 40)] {
      let weight = try Tensor(values(k * c * 4, seed: 31), shape: [k, c, 2, 2], on: d)
      let bias = try Tensor(values(k, seed: 32), shape: [k], on: d)
      // Padded space-to-depth input: x (n, c/4, 2h, 2w) seen as (n, c, h + 1, w + 1).
      let x = try Tensor(values(n * c * h * w, seed: 33), shape: [n, c / 4, 2 * h, 2 * w], on: d)
      let plain = try x.paddedSpaceToDepth().conv2d(weight: weight, bias: bias).toArray()
      let g = ConvGeometry(n: n, c: c, h: h + 1, w: w + 1, kh: 2, kw: 2)
      let y = try Tensor(uninitialized: [n, k, h, w], on: d)
      XCTAssertTrue(
        cpu.subPixelWinograd(
          x.buffer, weight: weight.buffer, bias: bias.buffer, y.buffer, g, cout: k, activation: .none,
          activationAlpha: 0, layout: .paddedSpaceToDepthInput))
      let got = try y.toArray()
      XCTAssertEqual(got.count, plain.count)
      for (a, b) in zip(got, plain) { XCTAssertEqual(a, b, accuracy: 1e-4, "\(n) \(c) \(h) \(w) \(k)") }
      // Depth-to-space output with the border cut: y (n, k/4, 2h, 2w) from x2 (n, c, h, w).
      let x2 = try Tensor(values(n * c * h * w, seed: 34), shape: [n, c, h, w], on: d)
      let z = try x2.conv2d(weight: weight, bias: bias, padding: 1)  // (n, k, h + 1, w + 1)
      let d2s = try z.reshaped([n, k / 4, 2, 2, h + 1, w + 1]).permuted([0, 1, 4, 2, 5, 3]).reshaped([
        n, k / 4, 2 * h + 2, 2 * w + 2,
      ])
      let cut = try d2s.slice(axis: 2, start: 1, end: 2 * h + 1).slice(axis: 3, start: 1, end: 2 * w + 1)
        .toArray()
      let y2 = try Tensor(values(n * k * h * w, seed: 35), shape: [n, k / 4, 2 * h, 2 * w], on: d)
      let g2 = ConvGeometry(n: n, c: c, h: h, w: w, kh: 2, kw: 2, padT: 1, padL: 1, padB: 1, padR: 1)
      XCTAssertTrue(
        cpu.subPixelWinograd(
          x2.buffer, weight: weight.buffer, bias: bias.buffer, y2.buffer, g2, cout: k, activation: .leakyRelu,
          activationAlpha: 0.3, layout: .paddedDepthToSpaceOutput))
      let got2 = try y2.toArray()
      XCTAssertEqual(got2.count, cut.count)
      for (a, b) in zip(got2, cut) { XCTAssertEqual(a, b > 0 ? b : 0.3 * b, accuracy: 1e-4) }
    }
  }
}
