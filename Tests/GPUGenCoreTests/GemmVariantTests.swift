// Every GEMM kernel variant and tile shape (not just the device's default) against Float64, on every
// OpenCL device: the GPU table's `gemm_tiled` must be right even when CI only has a CPU device.
import Foundation
import XCTest

@testable import GPUGenCore

final class GemmVariantTests: XCTestCase {
  func testEveryVariantMatchesTheReference() throws {
    let configs = [
      GemmConfig(.tiled, tm: 4, tn: 4, wm: 16, wn: 16, kb: 16),
      GemmConfig(.tiled, tm: 4, tn: 4, wm: 8, wn: 8, kb: 16),
      GemmConfig(.tiled, tm: 2, tn: 8, wm: 8, wn: 16, kb: 32),
      GemmConfig(.tiled, tm: 8, tn: 16, wm: 8, wn: 4, kb: 32),
      GemmConfig(.packed, tm: 8, tn: 16, wm: 8, wn: 16, kb: 64),
      GemmConfig(.packed, tm: 8, tn: 16, wm: 4, wn: 16, kb: 64),
      GemmConfig(.packed, tm: 6, tn: 8, wm: 2, wn: 4, kb: 16),
    ]
    let shapes = [(1, 1, 1), (7, 33, 129), (129, 7, 33), (65, 130, 67), (33, 257, 20)]
    for device in openCLDevices() {
      let cl = try XCTUnwrap(device.openCL)
      for g in configs where g.fits(cl.info) {
        for (m, n, k) in shapes {
          for (transA, transB) in [(false, false), (true, false), (false, true), (true, true)] {
            let batch = 2
            let a = randomValues(batch * m * k, seed: 1), b = randomValues(batch * k * n, seed: 2)
            let c = randomValues(batch * m * n, seed: 3), bias = randomValues(n, seed: 4)
            let ta = try Tensor(a, shape: [batch * m * k], on: device),
              tb = try Tensor(b, shape: [batch * k * n], on: device)
            let y = try Tensor(c, shape: [batch * m * n], on: device)
            let tbias = try Tensor(bias, shape: [n], on: device)
            var d = GemmDescriptor(m: m, n: n, k: k, transA: transA, transB: transB)
            (d.alpha, d.beta, d.batch, d.biasMode, d.activation) = (0.5, 1.5, batch, .perColumn, .relu)
            try cl.gemm(d, ta.buffer, tb.buffer, y.buffer, bias: tbias.buffer, config: g)
            let got = try y.toArray()
            for bi in 0..<batch {
              for i in 0..<m {
                for j in 0..<n {
                  var s = 0.0, mag = 0.0
                  for p in 0..<k {
                    let av = Double(a[bi * m * k + (transA ? p * m + i : i * k + p)])
                    let bv = Double(b[bi * k * n + (transB ? j * k + p : p * n + j)])
                    s += av * bv
                    mag += Swift.abs(av * bv)
                  }
                  let idx = bi * m * n + i * n + j
                  let want = Swift.max(0.5 * s + 1.5 * Double(c[idx]) + Double(bias[j]), 0)
                  let tol = Double(k + 4) * 6e-8 * (mag + Swift.abs(Double(c[idx])) * 3 + 1) + 1e-6
                  if !(Swift.abs(Double(got[idx]) - want) <= tol) {
                    XCTFail(
                      "\(g) \(m)×\(n)×\(k) tA=\(transA) tB=\(transB) batch \(bi) (\(i), \(j)): \(got[idx]) vs \(want)"
                    )
                    return
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}

final class ReductionGroupSizeTests: XCTestCase {
  /// GPUs reduce rows with 64 work-items and barrier trees; CPU devices use one. Both must agree.
  func testGroupReductionsMatchOnEveryDevice() throws {
    for device in openCLDevices() {
      let cl = try XCTUnwrap(device.openCL)
      let x = randomValues(7 * 129, seed: 8, in: -3...3)
      let t = try Tensor(x, shape: [7, 129], on: device)
      let gamma = try Tensor(randomValues(8, seed: 9), shape: [8], on: device)
      let beta = try Tensor(randomValues(8, seed: 10), shape: [8], on: device)
      let img = try Tensor(randomValues(2 * 8 * 33, seed: 11), shape: [2, 8, 33], on: device)
      func results() throws -> [[Float]] {
        try [
          t.sum(axes: [1]).toArray(), t.max(axes: [1]).toArray(), t.variance(axes: [1]).toArray(),
          t.softmax(axis: 1).toArray(), t.logSoftmax(axis: 1).toArray(),
          img.groupNorm(groups: 4, weight: gamma, bias: beta, silu: true).toArray(),
        ]
      }
      let serial = try results()
      for size in [64, 16] where size <= cl.info.maxWorkGroupSize {
        cl.reduceGroupSizeOverride = size
        defer { cl.reduceGroupSizeOverride = nil }
        for (a, b) in zip(try results(), serial) {
          assertClose(a, b.map(Double.init), rtol: 1e-5, atol: 1e-6, "group size \(size) on \(device)")
        }
      }
    }
  }
}
