// Device selection, error paths and steady-state behaviour of the buffer pool.
import Foundation
import XCTest

@testable import GPUGenCore

final class DeviceTests: XCTestCase {
  func testDeviceSpecs() throws {
    XCTAssertTrue(try Device.select("cpu") === Device.cpu)
    XCTAssertTrue(try Device.select("CPU") === Device.cpu)
    let refs = try Device.openCLDevices()
    for info in refs {
      let d = try Device.select("opencl:\(info.index)")
      XCTAssertEqual(d.spec, "opencl:\(info.index)")
      XCTAssertEqual(d.name, info.name)
    }
    if let first = refs.first { XCTAssertEqual(try Device.select("opencl").spec, "opencl:\(first.index)") }
    // auto: an OpenCL GPU if any, else the native CPU.
    let auto = try Device.select("auto")
    if let g = Device.preferredGPUIndex() {
      XCTAssertEqual(auto.spec, "opencl:\(g)")
    } else {
      XCTAssertTrue(auto === Device.cpu)
    }
  }

  func testGPUFallsBackWithOneWarning() throws {
    var warnings: [String] = []
    let saved = Diagnostics.warningHandler
    Diagnostics.warningHandler = { warnings.append($0) }
    defer { Diagnostics.warningHandler = saved }
    let d = try Device.select("gpu")
    if let g = Device.preferredGPUIndex() {
      XCTAssertEqual(d.spec, "opencl:\(g)")
      XCTAssertTrue(warnings.isEmpty)
    } else {
      XCTAssertTrue(d === Device.cpu)
      XCTAssertEqual(warnings.count, 1)
      XCTAssertTrue(warnings[0].contains("cpu"), warnings[0])
    }
  }

  func testUnknownDeviceListsTheAvailableOnes() throws {
    for spec in ["tpu", "opencl:99", "opencl:-1", "opencl:x", ""] {
      XCTAssertThrowsError(try Device.select(spec), spec) { error in
        guard case GPUGenError.deviceNotFound(let requested, let available) = error else {
          return XCTFail("expected deviceNotFound for '\(spec)', got \(error)")
        }
        XCTAssertEqual(requested, spec)
        XCTAssertTrue(available.contains { $0.hasPrefix("cpu") })
        XCTAssertEqual(available.count, 1 + ((try? Device.openCLDevices().count) ?? 0))
        XCTAssertTrue("\(error)".contains("Available devices"))
        XCTAssertEqual((error as? GPUGenError)?.exitCode, 2)
      }
    }
  }

  func testShapeMismatchNamesBothShapes() throws {
    for device in allDevices() {
      let a = try Tensor.zeros([2, 3], on: device), b = try Tensor.zeros([4], on: device)
      XCTAssertThrowsError(try a + b) { e in
        XCTAssertEqual(e as? GPUGenError, .shapeMismatch(op: "add", lhs: [2, 3], rhs: [4]))
        XCTAssertTrue("\(e)".contains("[2, 3]") && "\(e)".contains("[4]"), "\(e)")
      }
      XCTAssertThrowsError(try Tensor.gemm(a, try Tensor.zeros([4, 5], on: device))) { e in
        XCTAssertTrue("\(e)".contains("[2, 3]") && "\(e)".contains("[4, 5]"), "\(e)")
      }
      XCTAssertThrowsError(try Tensor([1, 2, 3], shape: [2, 2], on: device))
    }
  }

  func testAllocationFailureNamesSizeAndDevice() throws {
    XCTAssertThrowsError(try Device.cpu.backend.allocate(1 << 60)) { e in
      guard case GPUGenError.outOfMemory(let bytes, let dev) = e else { return XCTFail("\(e)") }
      XCTAssertEqual(bytes, 1 << 62)
      XCTAssertTrue(dev.contains("cpu"))
    }
    for device in openCLDevices() {
      let cl = try XCTUnwrap(device.openCL)
      let count = cl.info.maxAllocation / 4 + 1024
      XCTAssertThrowsError(try cl.allocate(count)) { e in
        guard case GPUGenError.outOfMemory(let bytes, let dev) = e else { return XCTFail("\(e)") }
        XCTAssertEqual(bytes, count * 4)
        XCTAssertTrue(dev.contains(cl.info.name))
        XCTAssertTrue("\(e)".contains("\(count * 4) bytes"))
      }
      // The device still works afterwards.
      XCTAssertEqual(try Tensor([1, 2], shape: [2], on: device).mul(3).toArray(), [3, 6])
    }
  }

  func testSteadyStateLoopMakesNoAllocations() throws {
    for device in allDevices() {
      let r = try Benchmarks.elementwiseAdd(count: 4096, iterations: 1000, on: device)
      XCTAssertEqual(r.steadyAllocations, 0, "on \(device)")
      let a = try Tensor(randomValues(4096, seed: 1), shape: [4096], on: device)
      _ = try a.mul(a).sum()
      try device.backend.synchronize()
      let before = device.backend.stats
      for _ in 0..<50 { _ = try a.mul(a).sum() }
      try device.backend.synchronize()
      XCTAssertEqual(device.backend.stats.allocations, before.allocations, "on \(device)")
      XCTAssertGreaterThan(device.backend.stats.poolHits, before.poolHits)
    }
  }

  func testTensorsMoveBetweenDevices() throws {
    let x = randomValues(1000, seed: 3)
    let host = try Tensor(x, shape: [10, 100])
    for device in allDevices() {
      let t = try host.to(device)
      XCTAssertTrue(t.device === device)
      XCTAssertEqual(try t.toArray(), x)
      XCTAssertEqual(try t.to(.cpu).toArray(), x)
      let devices = allDevices()
      if let other = devices.first(where: { $0 !== device }) {
        XCTAssertThrowsError(try t.add(try Tensor.zeros([10, 100], on: other)))
      }
    }
  }
}
