// Runs the `gpugen` executable built next to the test bundle, as a user would.
import Foundation
import XCTest

private final class BundleAnchor {}

/// Runs `gpugen args` (with `env` added to the environment); returns the exit status, stdout and stderr.
func runGpugen(_ args: [String], env: [String: String] = [:]) throws -> (Int32, String, String) {
  let candidates = [
    Bundle(for: BundleAnchor.self).bundleURL.deletingLastPathComponent(),
    URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
  ].map { $0.appendingPathComponent("gpugen") }
  let p = Process()
  p.executableURL = try XCTUnwrap(candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) })
  p.arguments = args
  p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
  let out = Pipe(), err = Pipe()
  p.standardOutput = out
  p.standardError = err
  try p.run()
  let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
  p.waitUntilExit()
  return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}
