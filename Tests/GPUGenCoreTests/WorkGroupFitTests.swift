// Kernels fit the device they run on: where a kernel cannot run its pinned work-group (a 16×16 GEMM tile, a
// 64-item reduction tree), a smaller configuration runs instead and gives the same result.
import XCTest

@testable import GPUGenCore

final class WorkGroupFitTests: XCTestCase {
  func testSmallKernelLimitsPickSmallerGroupsAndKeepResults() throws {
    for device in openCLDevices() {
      let cl = try XCTUnwrap(device.openCL)
      cl.kernelVariants = .gpu
      defer {
        cl.kernelVariants = .device
        cl.workGroupLimitOverride = nil
      }
      let checks = SelfTest.variantChecks(quick: true)
      let reference = SelfTest.run(checks, on: device)
      XCTAssertTrue(reference.allSatisfy(\.passed), "\(reference.filter { !$0.passed })")
      for cap in [32, 8] {
        cl.workGroupLimitOverride = cap
        let (k, ls) = try cl.fittedGroup("reduce_rows", family: "reduce", macro: "RLS", desired: 64)
        XCTAssertEqual(ls, cap, "the largest power of two under the kernel's limit")
        XCTAssertLessThanOrEqual(cl.limits(k).maxGroupSize, cap)
        let (g, _) = try cl.fittedGemm(GemmConfig(.tiled, tm: 4, tn: 4, wm: 16, wn: 16, kb: 16))
        XCTAssertEqual(g.wm * g.wn, cap, "the 16×16 tile halved until it fits: \(g)")
        let before = cl.stats.launches
        let rows = SelfTest.run(checks, on: device)
        XCTAssertGreaterThan(cl.stats.launches, before)
        XCTAssertTrue(rows.allSatisfy(\.passed), "cap \(cap): \(rows.filter { !$0.passed })")
        cl.workGroupLimitOverride = nil
      }
    }
  }

  /// `kernelVariants` picks the GPU or CPU kernels on any device; `device` keeps the device's own choice.
  func testForcedVariantsChooseTheKernels() throws {
    for device in openCLDevices() {
      let cl = try XCTUnwrap(device.openCL)
      defer { cl.kernelVariants = .device }
      cl.kernelVariants = .gpu
      XCTAssertEqual(cl.activeGemmConfig.variant, .tiled)
      XCTAssertEqual(cl.reduceGroupSize, Swift.min(64, cl.info.maxWorkGroupSize))
      XCTAssertEqual(cl.sumOfSquaresGroupSize, Swift.min(256, cl.info.maxWorkGroupSize))
      cl.kernelVariants = .cpu
      XCTAssertEqual(cl.activeGemmConfig.variant, .packed)
      XCTAssertEqual(cl.reduceGroupSize, 1)
      cl.kernelVariants = .device
      XCTAssertEqual(cl.activeGemmConfig, cl.gemmConfig)
      XCTAssertEqual(cl.reduceGroupSize, cl.info.isGPU ? Swift.min(64, cl.info.maxWorkGroupSize) : 1)
    }
  }

  func testElementwiseLaunchesPadTheGlobalSizeToTheGroupSize() throws {
    for device in openCLDevices() {
      let cl = try XCTUnwrap(device.openCL)
      let k = try cl.kernel("elementwise_fill", family: "elementwise")
      let limits = cl.limits(k)
      for variants in [KernelVariants.gpu, .cpu] {
        cl.kernelVariants = variants
        defer { cl.kernelVariants = .device }
        for count in [1, 100, 4096, 1_000_003] {
          let ls = cl.elementwiseGroupSize(k, count: count)
          XCTAssertLessThanOrEqual(ls, limits.maxGroupSize)
          if limits.preferredMultiple <= ls { XCTAssertEqual(ls % limits.preferredMultiple, 0) }
          if variants == .gpu {
            XCTAssertEqual(
              ls, Swift.min(256, limits.maxGroupSize) / limits.preferredMultiple * limits.preferredMultiple)
          }
        }
      }
      let ls = cl.elementwiseGroupSize(k, count: 1000)
      // Counts that are not multiples of the group size write exactly `count` values.
      for n in [1, ls - 1, ls + 1, 3 * ls + 7] where n > 0 {
        let y = try Tensor.full(-1, shape: [n + 5], on: device)
        try cl.fill(y.buffer, count: n, value: 3)
        let got = try y.toArray()
        XCTAssertEqual(Array(got[..<n]), Array(repeating: 3, count: n), "n=\(n)")
        XCTAssertEqual(Array(got[n...]), Array(repeating: -1, count: 5), "n=\(n): nothing past count")
      }
    }
  }
}
