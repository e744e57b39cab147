// Whole command lines of the `gpugen` binary: exit statuses, messages, JSON.
import Foundation
import GPUGenCore
import XCTest

final class CLITests: XCTestCase {
  /// Runs the built `gpugen` with `args`; returns (status, stdout, stderr).
  func gpugen(_ args: [String], env: [String: String] = [:]) throws -> (Int32, String, String) {
    let candidates = [
      Bundle(for: Self.self).bundleURL.deletingLastPathComponent(),
      URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
      Bundle.main.bundleURL,
    ].map { $0.appendingPathComponent("gpugen") }
    let exe = try XCTUnwrap(
      candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }, "\(candidates)")
    let p = Process()
    p.executableURL = exe
    p.arguments = args
    var e = ProcessInfo.processInfo.environment
    e.merge(env) { $1 }
    p.environment = e
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), r = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: r, as: UTF8.self))
  }

  func testUnknownDeviceExitsWithStatus2AndListsDevices() throws {
    for (args, env) in [
      (["bench", "elementwise", "--device", "tpu", "--iterations", "1"], [:]),
      (["bench", "elementwise", "--iterations", "1"], ["GPUGEN_DEVICE": "tpu"]),
      (["bench", "gemm", "--device", "opencl:42", "--size", "8"], [:]),
    ] {
      let (status, _, err) = try gpugen(args, env: env)
      XCTAssertEqual(status, 2, "\(args) \(env): \(err)")
      XCTAssertTrue(err.contains("unknown device"), err)
      XCTAssertTrue(err.contains("cpu — "), err)
    }
  }

  func testGPUFallbackPrintsOneWarningLine() throws {
    let (status, out, err) = try gpugen([
      "bench", "elementwise", "--device", "gpu", "--iterations", "10", "--count", "64",
    ])
    XCTAssertEqual(status, 0, err)
    XCTAssertTrue(out.contains("µs/op"), out)
    let warnings = err.split(separator: "\n").filter { $0.contains("warning") }
    let hasGPU = (try? GPUGenCore.Device.openCLDevices().contains { $0.isGPU }) ?? false
    XCTAssertEqual(warnings.count, hasGPU ? 0 : 1, err)
    if !hasGPU { XCTAssertTrue(out.hasPrefix("cpu:"), out) }
  }

  func testDevicesListsEveryDeviceAndMarksPicks() throws {
    let (status, out, err) = try gpugen(["devices", "--json"])
    XCTAssertEqual(status, 0, err)
    let list = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]])
    let n = try GPUGenCore.Device.openCLDevices().count
    XCTAssertEqual(list.count, 1 + n)
    XCTAssertEqual(list.filter { $0["auto"] as? Bool == true }.count, 1)
    XCTAssertEqual(list.filter { $0["gpu"] as? Bool == true }.count, 1)
    for entry in list.dropFirst() {
      let cl = try XCTUnwrap(entry["opencl"] as? [String: Any])
      for key in [
        "name", "type", "vendor", "computeUnits", "clockMHz", "globalMemory", "localMemory",
        "maxWorkGroupSize", "openCLCVersion", "fp64",
      ] {
        XCTAssertNotNil(cl[key], key)
      }
    }
    let (s2, text, _) = try gpugen(["devices"])
    XCTAssertEqual(s2, 0)
    XCTAssertTrue(text.contains("[auto]"), text)
  }

  func testBenchGemmJSON() throws {
    let (status, out, err) = try gpugen([
      "bench", "gemm", "--size", "33", "--size", "64", "--device", "cpu", "--json", "--seconds", "0.01",
    ])
    XCTAssertEqual(status, 0, err)
    let rows = out.split(separator: "\n").compactMap {
      try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
    XCTAssertEqual(rows.count, 4, out)  // two sizes × (gpugen, openblas)
    for r in rows {
      for key in ["device", "m", "n", "k", "ms", "gflops", "percent_of_peak"] {
        XCTAssertNotNil(r[key], "\(key) in \(r)")
      }
      XCTAssertEqual(r["device"] as? String, "cpu")
    }
    XCTAssertEqual(Set(rows.compactMap { $0["m"] as? Int }), [33, 64])
  }

  func testBadArgumentsAreReportedNotCrashed() throws {
    let (status, _, err) = try gpugen(["bench", "gemm", "--size", "-4", "--device", "cpu"])
    XCTAssertNotEqual(status, 0)
    XCTAssertTrue(err.contains("--size"), err)
    let (s2, help, _) = try gpugen(["bench", "gemm", "--help"])
    XCTAssertEqual(s2, 0)
    XCTAssertTrue(help.contains("--tune") && help.contains("--json") && help.contains("--size"), help)
  }
}
