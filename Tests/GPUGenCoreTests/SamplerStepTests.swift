// The fused sampler update on every device against its Float64 reference (SamplerUpdate.apply).
import Foundation
import XCTest

@testable import GPUGenCore

final class SamplerStepTests: XCTestCase {
  func update(clip: Bool, depth: Int, noise: Bool, aux: Bool) -> SamplerUpdate {
    var u = SamplerUpdate()
    (u.ax, u.am, u.ex, u.em) = (1.3, -0.7, 0.4, 0.9)
    (u.cx, u.c0, u.ce, u.cp, u.cz) = (0.8, 0.35, -0.25, depth >= 1 ? 0.6 : 0, noise ? 0.45 : 0)
    (u.cq, u.cr) = (depth >= 2 ? -0.3 : 0, depth >= 3 ? 0.15 : 0)
    (u.dx, u.d0, u.de) = (aux ? 0.2 : 0, aux ? 1.1 : 0, aux ? -0.55 : 0)
    u.clipRange = clip ? 0.5 : nil
    u.historyDepth = depth
    u.writesAux = aux
    return u
  }

  func testFusedUpdateMatchesTheReferenceOnEveryDevice() throws {
    let (n, per) = (3, 33)  // 33 is not a multiple of the 4-element Philox block
    let x = randomValues(n * per, seed: 1), m = randomValues(n * per, seed: 2),
      p = randomValues(n * per, seed: 3), p2 = randomValues(n * per, seed: 4),
      p3 = randomValues(n * per, seed: 5)
    for device in allDevices() {
      for flags in 0..<32 {
        // Bits 1 and 4 give the history depth 0…3 (prev, then prev2 and prev3 of the multistep samplers).
        let depth = (flags >> 1 & 1) + 2 * (flags >> 4 & 1)
        let u = update(clip: flags & 1 != 0, depth: depth, noise: flags & 4 != 0, aux: flags & 8 != 0)
        let (out, aux) = try Tensor.samplerStep(
          x: try Tensor(x, shape: [n, per], on: device),
          modelOutput: try Tensor(m, shape: [n, per], on: device),
          prev: try Tensor(p, shape: [n, per], on: device),
          older: [
            try Tensor(p2, shape: [n, per], on: device), try Tensor(p3, shape: [n, per], on: device),
          ],
          update: u, seed: 42, step: 7, stream: 1, firstSample: 5)
        XCTAssertEqual(aux == nil, !u.writesAux)
        var wantOut: [Double] = [], wantAux: [Double] = []
        for i in 0..<n {
          for e in 0..<per {
            let z = Philox4x32.normals(
              seed: 42, sample: UInt32(5 + i), step: 7, stream: 1, block: UInt32(e / 4))[e % 4]
            let r = u.apply(
              x: Double(x[i * per + e]), m: Double(m[i * per + e]), prev: Double(p[i * per + e]),
              prev2: Double(p2[i * per + e]), prev3: Double(p3[i * per + e]), z: Double(z))
            wantOut.append(r.out)
            wantAux.append(r.aux)
          }
        }
        assertClose(try out.toArray(), wantOut, rtol: 1e-5, atol: 1e-5, "update flags \(flags) on \(device)")
        if let aux {
          assertClose(try aux.toArray(), wantAux, rtol: 1e-5, atol: 1e-6, "aux flags \(flags) on \(device)")
        }
      }
    }
  }

  /// Dynamic thresholding through `Tensor.samplerStep` (x̂₀ pass, host quantile, fused divide) on every device:
  /// against the reference with the scales computed on the host, and different from plain clipping.
  func testDynamicThresholdingMatchesTheReferenceOnEveryDevice() throws {
    let (n, per) = (3, 33)
    // Sample i's inputs are scaled by 0.3, 1 and 3, so its x̂₀ quantile lies below 1, between 1 and the cap,
    // and above the cap.
    let f: [Float] = [0.3, 1, 3]
    let x = randomValues(n * per, seed: 11).enumerated().map { $0.element * f[$0.offset / per] }
    let m = randomValues(n * per, seed: 12).enumerated().map { $0.element * f[$0.offset / per] }
    var u = update(clip: true, depth: 0, noise: true, aux: true)
    u.threshold = DynamicThreshold(ratio: 0.9, maxValue: 2.2)
    let x0 = (0..<(n * per)).map { Float(u.ax) * x[$0] + Float(u.am) * m[$0] }
    let scales = u.threshold!.scales(x0, samples: n, perSample: per)
    XCTAssertEqual(scales[0], 1, "the first sample's quantile is below 1: s = 1")
    XCTAssertEqual(scales[2], 2.2, "the last sample's quantile is above the cap")
    XCTAssertGreaterThan(scales[1], 1)
    XCTAssertLessThan(scales[1], 2.2)
    for device in allDevices() {
      let (out, aux) = try Tensor.samplerStep(
        x: try Tensor(x, shape: [n, per], on: device),
        modelOutput: try Tensor(m, shape: [n, per], on: device),
        prev: nil, update: u, seed: 42, step: 7, stream: 1, firstSample: 5)
      var wantOut: [Double] = [], wantAux: [Double] = [], clipped: [Double] = []
      for i in 0..<n {
        for e in 0..<per {
          let z = Philox4x32.normals(
            seed: 42, sample: UInt32(5 + i), step: 7, stream: 1, block: UInt32(e / 4))[e % 4]
          let r = u.apply(
            x: Double(x[i * per + e]), m: Double(m[i * per + e]), z: Double(z),
            thresholdScale: Double(scales[i]))
          wantOut.append(r.out)
          wantAux.append(r.aux)
          var plain = u
          plain.threshold = nil
          clipped.append(plain.apply(x: Double(x[i * per + e]), m: Double(m[i * per + e]), z: Double(z)).out)
        }
      }
      let got = try out.toArray()
      assertClose(got, wantOut, rtol: 1e-5, atol: 1e-5, "thresholded update on \(device)")
      assertClose(
        try XCTUnwrap(aux).toArray(), wantAux, rtol: 1e-5, atol: 1e-6, "thresholded aux on \(device)")
      let moved = zip(got, clipped).map { abs(Double($0) - $1) }.max() ?? 0
      XCTAssertGreaterThan(moved, 0.05, "thresholding must differ from clipping to ±0.5 on \(device)")
    }
  }

  func testDynamicThresholdScalesFollowTorchQuantile() {
    // torch.quantile(|v|, 0.9) of 11 values: rank 9, no interpolation; of 5 values: rank 3.6 between 3 and 10.
    let t = DynamicThreshold(ratio: 0.9, maxValue: 100)
    XCTAssertEqual(t.scales((0...10).map { Float($0) }, samples: 1, perSample: 11), [9])
    XCTAssertEqual(t.scales([0, -1, 2, 3, -10], samples: 1, perSample: 5)[0], 7.2, accuracy: 1e-5)
    // Clamped to [1, maxValue]; a NaN row gives NaN.
    XCTAssertEqual(
      DynamicThreshold(ratio: 0.5, maxValue: 1.5).scales([0.1, 0.2, 5, 6], samples: 2, perSample: 2),
      [1, 1.5])
    XCTAssertTrue(t.scales([1, .nan], samples: 1, perSample: 2)[0].isNaN)
  }

  func testHistoryDepthNeedsItsOlderOutputs() throws {
    var u = SamplerUpdate()
    u.historyDepth = 3
    let t = try Tensor.zeros([2, 8], on: .cpu)
    XCTAssertThrowsError(
      try Tensor.samplerStep(x: t, modelOutput: t, prev: t, older: [t], update: u, seed: 0, step: 1))
    u.historyDepth = 4
    XCTAssertThrowsError(
      try Tensor.samplerStep(x: t, modelOutput: t, prev: t, older: [t, t, t], update: u, seed: 0, step: 1))
  }

  func testStepNoiseIsTheSameNoiseAsRandomNormal() throws {
    var u = SamplerUpdate()
    u.cz = 1
    for device in allDevices() {
      let zeros = try Tensor.zeros([4, 10], on: device)
      let (out, _) = try Tensor.samplerStep(
        x: zeros, modelOutput: zeros, prev: nil, update: u, seed: 9, step: 3, stream: 0)
      let ref = try Tensor.randomNormal(shape: [4, 10], seed: 9, step: 3, stream: 0, on: device)
      assertClose(try out.toArray(), try ref.toArray().map(Double.init), rtol: 0, atol: 0, "on \(device)")
    }
  }
}
