// Kernel compilation on every OpenCL device, the on-disk binary cache, and build errors.
import Foundation
import XCTest

@testable import GPUGenCore
@testable import GPUGenKernels

final class KernelCacheTests: XCTestCase {
  func freshCacheDirectory() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "gpugen-cache-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
    return dir
  }

  func openCLRefs() throws -> [CLDeviceRef] {
    _ = openCLDevices()  // fails the test under GPUGEN_REQUIRE_OPENCL=1 when there are none
    return try Device.openCLRefs()
  }

  func testEveryKernelFileCompilesOnEveryDevice() throws {
    XCTAssertEqual(
      Set(KernelSources.families.keys),
      ["elementwise", "reduce", "gemm", "bench", "conv", "norm", "noise", "sampler", "optim"])
    for device in openCLDevices() {
      let cl = try XCTUnwrap(device.openCL)
      XCTAssertNoThrow(try cl.compileAllKernels(), "on \(device)")
      // Both GEMM variants build wherever their tiles fit.
      for g in [
        GemmConfig.defaultConfig(for: cl.info), GemmConfig(.tiled, tm: 4, tn: 4, wm: 8, wn: 8, kb: 16),
      ] where g.fits(cl.info) {
        XCTAssertNoThrow(try cl.kernel(g.kernelName, family: "gemm", options: g.options), "\(g) on \(device)")
      }
    }
  }

  func testSecondRunCompilesNothing() throws {
    for ref in try openCLRefs() {
      let cache = BinaryCache(directory: try freshCacheDirectory())
      let first = try OpenCLBackend(ref, cache: cache)
      try first.compileAllKernels()
      XCTAssertEqual(first.stats.programsCompiled, KernelSources.families.count)
      XCTAssertEqual(first.stats.programsFromCache, 0)
      // A new context (as in a second process) loads every binary from disk.
      let second = try OpenCLBackend(ref, cache: cache)
      try second.compileAllKernels()
      XCTAssertEqual(second.stats.programsCompiled, 0)
      XCTAssertEqual(second.stats.programsFromCache, KernelSources.families.count)
      // The cached binaries compute correctly.
      let device = Device(kind: .openCL(ref.info), backend: second)
      let y = try Tensor([1, 2, 3], shape: [3], on: device).add(
        try Tensor([10, 20, 30], shape: [3], on: device))
      XCTAssertEqual(try y.toArray(), [11, 22, 33])
    }
  }

  func testCorruptCacheEntryIsRebuiltWithAWarning() throws {
    for ref in try openCLRefs() {
      let dir = try freshCacheDirectory()
      let cache = BinaryCache(directory: dir)
      try OpenCLBackend(ref, cache: cache).compileAllKernels()
      let entries = try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
        .filter { $0.pathExtension == "bin" }.sorted { $0.path < $1.path }
      XCTAssertEqual(entries.count, KernelSources.families.count)
      // Truncate one entry and fill another with garbage.
      let whole = try Data(contentsOf: entries[0])
      try whole.prefix(whole.count / 2).write(to: entries[0])
      try Data(repeating: 0x5a, count: 100).write(to: entries[1])

      var warnings: [String] = []
      let saved = Diagnostics.warningHandler
      Diagnostics.warningHandler = { warnings.append($0) }
      defer { Diagnostics.warningHandler = saved }
      let rebuilt = try OpenCLBackend(ref, cache: cache)
      try rebuilt.compileAllKernels()
      XCTAssertEqual(rebuilt.stats.programsCompiled, 2)
      XCTAssertEqual(warnings.filter { $0.contains("corrupt") }.count, 2, "\(warnings)")
      XCTAssertTrue(warnings.contains { $0.contains("truncated") }, "\(warnings)")
      // The rebuilt entries were written back: a further run compiles nothing.
      let again = try OpenCLBackend(ref, cache: cache)
      try again.compileAllKernels()
      XCTAssertEqual(again.stats.programsCompiled, 0)
    }
  }

  func testBadKernelSourceYieldsItsBuildLog() throws {
    for device in openCLDevices() {
      let cl = try XCTUnwrap(device.openCL)
      let source = "__kernel void broken(__global float* x) { x[0] = undefined_symbol_xyz; }"
      XCTAssertThrowsError(try cl.compile(source: source, file: "Kernels/broken.cl")) { error in
        guard case GPUGenError.kernelBuild(let file, let dev, let log) = error else {
          return XCTFail("expected a kernel build error, got \(error)")
        }
        XCTAssertEqual(file, "Kernels/broken.cl")
        XCTAssertEqual(dev, cl.info.name)
        XCTAssertTrue(log.contains("undefined_symbol_xyz"), log)
        XCTAssertTrue("\(error)".contains("Kernels/broken.cl"))
      }
    }
  }

  func testOpenCLStatusesAreNamed() {
    let e = GPUGenError.openCL(call: "clCreateBuffer(64 bytes)", status: -5)
    XCTAssertEqual(e.statusName, "CL_OUT_OF_RESOURCES")
    XCTAssertEqual("\(e)", "OpenCL error CL_OUT_OF_RESOURCES (-5) in clCreateBuffer(64 bytes)")
    XCTAssertEqual(clStatusName(-4), "CL_MEM_OBJECT_ALLOCATION_FAILURE")
    XCTAssertEqual(clStatusName(-11), "CL_BUILD_PROGRAM_FAILURE")
    XCTAssertEqual(clStatusName(-54), "CL_INVALID_WORK_GROUP_SIZE")
  }
}
