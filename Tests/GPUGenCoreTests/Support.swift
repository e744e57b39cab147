// Shared test helpers: every device, Float64 references, tolerance checks.
import Foundation
import XCTest

@testable import GPUGenCore

/// Every device the parity tests run on: the native CPU always, plus every OpenCL device.
/// With GPUGEN_REQUIRE_OPENCL=1 (CI) a missing OpenCL device fails the test instead of skipping it.
func allDevices(file: StaticString = #filePath, line: UInt = #line) -> [Device] {
  do {
    return try Device.all()
  } catch {
    XCTFail("\(error)", file: file, line: line)
    return [Device.cpu]
  }
}

/// OpenCL devices only (fails under GPUGEN_REQUIRE_OPENCL=1 if there are none).
func openCLDevices(file: StaticString = #filePath, line: UInt = #line) -> [Device] {
  allDevices(file: file, line: line).filter(\.isOpenCL)
}

/// Deterministic pseudo-random values in [lo, hi).
func randomValues(_ n: Int, seed: UInt64, in range: ClosedRange<Float> = -1...1) -> [Float] {
  Benchmarks.randomArray(n, seed: seed).map {
    range.lowerBound + ($0 + 1) / 2 * (range.upperBound - range.lowerBound)
  }
}

/// Asserts |got − want| ≤ atol + rtol·|want| elementwise (NaN matches NaN).
func assertClose(
  _ got: [Float], _ want: [Double], rtol: Double, atol: Double, _ what: @autoclosure () -> String,
  file: StaticString = #filePath, line: UInt = #line
) {
  guard got.count == want.count else {
    XCTFail("\(what()): \(got.count) values, expected \(want.count)", file: file, line: line)
    return
  }
  var worst = 0.0
  var worstIndex = -1
  for i in 0..<got.count {
    let g = Double(got[i]), w = want[i]
    if w.isNaN && g.isNaN { continue }
    if w.isInfinite && g == w { continue }
    let excess = Swift.abs(g - w) - (atol + rtol * Swift.abs(w))
    if !(excess <= 0) && (worstIndex < 0 || excess > worst || excess.isNaN) {
      worst = excess
      worstIndex = i
    }
  }
  if worstIndex >= 0 {
    XCTFail(
      "\(what()): element \(worstIndex) is \(got[worstIndex]), expected \(want[worstIndex]) (rtol \(rtol), atol \(atol))",
      file: file, line: line)
  }
}

/// Float64 reference helpers over row-major arrays.
enum Ref {
  static func strides(_ s: [Int]) -> [Int] { Shape.strides(s) }

  /// Broadcast read of `values` (shape `from`) at the multi-index of linear `i` in `to`.
  static func at(_ values: [Double], _ from: [Int], _ to: [Int], _ i: Int) -> Double {
    let st = Shape.broadcastStrides(from, to: to)
    var idx = i, off = 0
    for d in stride(from: to.count - 1, through: 0, by: -1) {
      off += (idx % to[d]) * st[d]
      idx /= to[d]
    }
    return values[off]
  }

  static func multiIndex(_ i: Int, _ shape: [Int]) -> [Int] {
    var idx = i
    var out = [Int](repeating: 0, count: shape.count)
    for d in stride(from: shape.count - 1, through: 0, by: -1) {
      out[d] = idx % shape[d]
      idx /= shape[d]
    }
    return out
  }

  static func linear(_ idx: [Int], _ shape: [Int]) -> Int {
    zip(idx, strides(shape)).map(*).reduce(0, +)
  }
}
