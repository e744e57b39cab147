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

// `gpugen selftest`: every device passes --quick; a failing check gives a table and status 1; bad input 2.
extension CLITests {
  func testSelftestQuickPassesOnCPUAndEveryOpenCLDevice() throws {
    let (status, out, err) = try gpugen(["selftest", "--quick", "--json"])
    XCTAssertEqual(status, 0, err + out)
    let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], out)
    XCTAssertEqual(report["passed"] as? Bool, true)
    let rows = try XCTUnwrap(report["rows"] as? [[String: Any]])
    XCTAssertEqual(rows.count, report["checks"] as? Int)
    let devices = Set(rows.compactMap { $0["device"] as? String })
    let openCL = try GPUGenCore.Device.openCLDevices()
    XCTAssertTrue(devices.contains("cpu"), "\(devices)")
    for info in openCL {
      XCTAssertTrue(devices.contains("opencl:\(info.index)"), "\(devices)")
      // The variants the device does not pick by default are forced in a second pass.
      let forced = info.isGPU ? "cpu" : "gpu"
      XCTAssertTrue(devices.contains("opencl:\(info.index) [\(forced) variants]"), "\(devices)")
    }
    let checks = rows.compactMap { $0["check"] as? String }
    // --quick: the small sizes (the full run uses n = 1000).
    XCTAssertTrue(checks.contains("unary silu n=129"), "\(checks.prefix(5))")
    XCTAssertFalse(checks.contains("unary silu n=1000"))
    for name in ["UNet2DModel forward", "gradient of conv3x3", "samplerStep", "gemm 33x17x65 tA=1 tB=1"] {
      XCTAssertTrue(checks.contains { $0.hasPrefix(name) }, name)
    }
    for row in rows {
      let e = try XCTUnwrap(row["worstError"] as? Double), tol = try XCTUnwrap(row["tolerance"] as? Double)
      XCTAssertLessThanOrEqual(e, tol, "\(row)")
    }
  }

  func testSelftestOnOneDeviceWithAFailingCheckPrintsTheTableAndExits1() throws {
    let (status, out, err) = try gpugen(
      ["selftest", "--device", "cpu", "--quick"], env: ["GPUGEN_SELFTEST_FAULT": "gemm 7x33x20"])
    XCTAssertEqual(status, 1, err)
    let lines = out.split(separator: "\n")
    XCTAssertTrue(lines.first?.hasPrefix("check") ?? false, out)
    XCTAssertEqual(lines.filter { $0.hasSuffix("FAIL") }.count, 4, out)  // the four transpose cases
    XCTAssertTrue(lines.allSatisfy { !$0.contains("opencl") }, "--device cpu runs the CPU only")
    XCTAssertTrue(out.contains("selftest: 4 of "), out)
    XCTAssertTrue(lines.contains { $0.hasPrefix("unary silu n=129") && $0.hasSuffix("PASS") }, out)
  }

  func testSelftestUnknownDeviceExitsWith2() throws {
    let (status, out, err) = try gpugen(["selftest", "--device", "tpu", "--quick"])
    XCTAssertEqual(status, 2, out)
    XCTAssertTrue(err.contains("gpugen: error: unknown device 'tpu'"), err)
  }
}

extension CLITests {
  /// A platform whose device query fails is skipped with one warning; the CPU stays usable.
  func testPlatformWhoseDeviceQueryFailsIsSkippedWithOneWarning() throws {
    let platforms = Set(try GPUGenCore.Device.openCLDevices().map(\.platform))
    guard let victim = platforms.first else { return }
    let (status, out, err) = try gpugen(["devices"], env: ["GPUGEN_FAIL_PLATFORM": victim])
    XCTAssertEqual(status, 0, err)
    XCTAssertEqual(err.split(separator: "\n").filter { $0.contains("warning") }.count, 1, err)
    XCTAssertTrue(err.contains("OpenCL platform '\(victim)' failed to list its devices"), err)
    XCTAssertFalse(out.contains("platform: \(victim)"), out)
    XCTAssertTrue(out.contains("cpu"), out)
  }
}

extension CLITests {
  /// The reference UNet (32×32, channels 32/64/128) samples at batch 64 on a simulated 128 MiB OpenCL device
  /// (oclgrind's size): its Winograd workspaces (75 MB for one up-block convolution) run in chunks. With the
  /// workspace cap lifted, the same run runs out of memory with a message, not a trap.
  func testReferenceUNetSamplesAtBatch64On128MiB() throws {
    guard let index = try GPUGenCore.Device.openCLDevices().first?.index else { return }
    let args = [
      "bench", "unet", "--device", "opencl:\(index)", "--batch", "64", "--sample-batch", "64", "--steps", "1",
      "--seconds", "0", "--json",
    ]
    let (status, out, err) = try gpugen(args, env: ["GPUGEN_OPENCL_MEMORY_MB": "128"])
    XCTAssertEqual(status, 0, err)
    XCTAssertTrue(out.contains("images_per_s"), out)
    let (s2, _, e2) = try gpugen(
      args, env: ["GPUGEN_OPENCL_MEMORY_MB": "128", "GPUGEN_WORKSPACE_MB": "100000", "GPUGEN_POOL_MB": "0"])
    XCTAssertEqual(s2, 1, e2)
    XCTAssertTrue(e2.contains("gpugen: error: out of memory"), e2)
    // A batch whose activations alone cannot fit (3 × 2048 × 32·32·32 floats = 768 MiB) is refused up front.
    var huge = args
    huge[try XCTUnwrap(huge.firstIndex(of: "--sample-batch")) + 1] = "2048"
    let (s3, _, e3) = try gpugen(huge, env: ["GPUGEN_OPENCL_MEMORY_MB": "128"])
    XCTAssertEqual(s3, 2, e3)
    XCTAssertTrue(e3.contains("a batch of 2048 images through the UNet needs 768.0 MiB"), e3)
  }
}
