// Runs the `gpugen` executable built next to the test bundle, as a user would.
import Foundation
import XCTest

private final class BundleAnchor {}

/// Runs `gpugen args` (with `env` added to the environment, in the working directory `cwd` if given); returns
/// the exit status, stdout and stderr.
func runGpugen(_ args: [String], env: [String: String] = [:], in cwd: URL? = nil) throws -> (
  Int32, String, String
) {
  try runProgram(try gpugenExecutable(), args, env: env, in: cwd)
}

/// The `gpugen` executable built next to the test bundle.
func gpugenExecutable() throws -> URL {
  let candidates = [
    Bundle(for: BundleAnchor.self).bundleURL.deletingLastPathComponent(),
    URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
  ].map { $0.appendingPathComponent("gpugen") }
  return try XCTUnwrap(candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) })
}

/// Runs `executable args` (with `env` added, in `cwd` if given); returns the exit status, stdout and stderr.
func runProgram(_ executable: URL, _ args: [String], env: [String: String] = [:], in cwd: URL? = nil) throws
  -> (Int32, String, String)
{
  let p = Process()
  p.executableURL = executable
  p.arguments = args
  p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
  if let cwd { p.currentDirectoryURL = cwd }
  let out = Pipe(), err = Pipe()
  p.standardOutput = out
  p.standardError = err
  try p.run()
  let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
  p.waitUntilExit()
  return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}
