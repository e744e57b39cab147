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

/// Writes a labelled IDX pair, `NAME-images-idx3-ubyte` and `NAME-labels-idx1-ubyte`, of `count` images of
/// size×size in `dir`: image i has class i % `classes` and pixel (y, x) `pixel(i, class, y, x)` (0…255).
/// Returns the image file.
func writeLabelledIDX(
  in dir: URL, name: String, count: Int, size: Int, classes: Int, pixel: (Int, Int, Int, Int) -> Int
) throws -> URL {
  func be32(_ v: Int) -> [UInt8] { [24, 16, 8, 0].map { UInt8((v >> $0) & 0xFF) } }
  var images: [UInt8] = [0, 0, 8, 3] + be32(count) + be32(size) + be32(size)
  var labels: [UInt8] = [0, 0, 8, 1] + be32(count)
  for i in 0..<count {
    let c = i % classes
    labels.append(UInt8(c))
    for y in 0..<size {
      for x in 0..<size { images.append(UInt8(pixel(i, c, y, x))) }
    }
  }
  let data = dir.appendingPathComponent("\(name)-images-idx3-ubyte")
  try Data(images).write(to: data)
  try Data(labels).write(to: dir.appendingPathComponent("\(name)-labels-idx1-ubyte"))
  return data
}
