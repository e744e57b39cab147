// The CPU backend's long-K path for A·Bᵀ (convolution weight gradients) against Float64.
import XCTest

@testable import GPUGenCore

final class DotGemmTests: XCTestCase {
  func testLongKTransposedGemmMatchesFloat64() throws {
    // Odd M, N (4×4 block tails) and K (16-lane and 2048-chunk tails), strided rows, alpha and beta.
    for (m, n, k) in [(5, 7, 4099), (16, 9, 8192), (1, 3, 2050)] {
      let d0 = GemmDescriptor(m: m, n: n, k: k, transA: false, transB: true)
      XCTAssertTrue(CPUBackend.isDotShaped(d0), "\(m)x\(n)x\(k) takes the long-K path")
      let a = randomValues(m * k, seed: 1), b = randomValues(n * k, seed: 2),
        c0 = randomValues(m * n, seed: 3)
      let ta = try Tensor(a, shape: [m, k]), tb = try Tensor(b, shape: [n, k]),
        tc = try Tensor(c0, shape: [m, n])
      let y = try Tensor.gemm(ta, tb, transB: true, alpha: 0.5, beta: 2, c: tc).toArray()
      var want = [Double](repeating: 0, count: m * n)
      for i in 0..<m {
        for j in 0..<n {
          var s = 0.0
          for t in 0..<k { s += Double(a[i * k + t]) * Double(b[j * k + t]) }
          want[i * n + j] = 0.5 * s + 2 * Double(c0[i * n + j])
        }
      }
      assertClose(y, want, rtol: 1e-4, atol: 1e-3, "A·Bᵀ \(m)x\(n)x\(k)")
    }
  }
}
