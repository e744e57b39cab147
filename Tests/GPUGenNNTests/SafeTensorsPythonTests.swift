import Foundation
import XCTest

@testable import GPUGenNN

/// Compatibility with Python's safetensors, through the files written by
/// Fixtures/safetensors/make_fixtures.py and, where Python is installed, that script's `--check` mode.
final class SafeTensorsPythonTests: XCTestCase {
  var fixtures: URL { Bundle.module.resourceURL!.appendingPathComponent("Fixtures/safetensors") }

  func loadExpected() throws -> [String: Any] {
    let data = try Data(contentsOf: fixtures.appendingPathComponent("expected.json"))
    return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
  }

  func floats(_ hexes: Any?) throws -> [Float] {
    try XCTUnwrap(hexes as? [String]).map { Float(bitPattern: try XCTUnwrap(UInt32($0, radix: 16))) }
  }

  func testReadsPythonFilesBitForBit() throws {
    let files = try XCTUnwrap(loadExpected()["files"] as? [String: [String: Any]])
    XCTAssertEqual(
      Set(files.keys), ["f32.safetensors", "f16.safetensors", "bf16.safetensors", "mixed.safetensors"])
    var checked = 0
    for (name, spec) in files.sorted(by: { $0.key < $1.key }) {
      let file = try SafeTensors.read(contentsOf: fixtures.appendingPathComponent(name))
      XCTAssertEqual(file.metadata, spec["metadata"] as? [String: String], name)
      XCTAssertEqual(file.order, spec["order"] as? [String], name)
      let tensors = try XCTUnwrap(spec["tensors"] as? [String: [String: Any]])
      XCTAssertEqual(Set(file.tensors.keys), Set(tensors.keys), name)
      for (tensorName, t) in tensors {
        let got = try XCTUnwrap(file.tensors[tensorName], "\(name)/\(tensorName)")
        XCTAssertEqual(got.shape, t["shape"] as? [Int], "\(name)/\(tensorName)")
        XCTAssertEqual(
          got.values.map(\.bitPattern), try floats(t["bits"]).map(\.bitPattern), "\(name)/\(tensorName)")
        checked += 1
      }
    }
    XCTAssertEqual(checked, 22)
  }

  func testWritesPythonFilesByteForByte() throws {
    let compat = try XCTUnwrap(loadExpected()["compat"] as? [String: [String: Any]])
    XCTAssertEqual(compat.count, 2)
    for (name, spec) in compat {
      let dtype = try XCTUnwrap(SafeTensorsDType(rawValue: try XCTUnwrap(spec["dtype"] as? String)))
      let tensors = try XCTUnwrap(spec["tensors"] as? [[Any]]).map { t in
        (
          name: try XCTUnwrap(t[0] as? String),
          tensor: TensorData(shape: try XCTUnwrap(t[1] as? [Int]), values: try floats(t[2]))
        )
      }
      let metadata = try XCTUnwrap(spec["metadata"] as? [String: String])
      let python = try [UInt8](Data(contentsOf: fixtures.appendingPathComponent(name)))
      XCTAssertEqual(try SafeTensors.encode(tensors, metadata: metadata, dtype: dtype), python, name)
    }
  }

  /// Runs `python3` with `arguments`; nil when it cannot be started.
  func python(_ arguments: [String]) -> (status: Int32, output: String)? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3"] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    do { try process.run() } catch { return nil }
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
  }

  func testPythonReadsGpugenFiles() throws {
    guard let probe = python(["-c", "import numpy, safetensors.numpy"]), probe.status == 0 else {
      throw XCTSkip("python3 with numpy and safetensors is not installed")
    }
    let dir = try temporaryDirectory(self)
    let specials: [Float] = [
      0, -0.0, .infinity, -.infinity, .nan, Float(bitPattern: 1), 3.4028235e38, -1.0 / 3.0,
    ]
    var rng = SystemRandomNumberGenerator()
    let random = (0..<24).map { _ in Float.random(in: -70000...70000, using: &rng) }
    let tiny = (0..<8).map { _ in Float.random(in: -1e-5...1e-5, using: &rng) }
    let files: [(String, SafeTensorsDType, [String: String], [(name: String, tensor: TensorData)])] = [
      (
        "gp_f32.safetensors", .f32, ["format": "pt"],
        [
          ("z.weight", TensorData(shape: [2, 4], values: specials)),
          ("a.bias", TensorData(shape: [3], values: [1, 2, 3])),
          ("empty", TensorData(shape: [0, 5], values: [])), ("scalar", TensorData(shape: [], values: [7])),
        ]
      ),
      (
        "gp_f16.safetensors", .f16, [:],
        [
          ("random", TensorData(shape: [4, 6], values: random)),
          ("tiny", TensorData(shape: [8], values: tiny)),
          ("specials", TensorData(shape: [8], values: specials)),
          ("scalar", TensorData(shape: [], values: [0.1])),
        ]
      ),
      (
        "gp_bf16.safetensors", .bf16, ["a": "1", "b": "✓ \"q\"\n"],
        [
          ("w", TensorData(shape: [2, 12], values: random)), ("e", TensorData(shape: [0], values: [])),
        ]
      ),
      (
        "gp_meta.safetensors", .f32, ["x": "1", "y": "2", "z": "3"],
        [("t", TensorData(shape: [1], values: [1]))]
      ),
    ]
    var expected: [String: Any] = [:]
    for (name, dtype, metadata, tensors) in files {
      try SafeTensors.write(tensors, metadata: metadata, dtype: dtype, to: dir.appendingPathComponent(name))
      expected[name] = [
        "dtype": dtype.rawValue, "metadata": metadata,
        "tensors": tensors.map { t in
          [t.name, t.tensor.shape, t.tensor.values.map { String($0.bitPattern, radix: 16) }] as [Any]
        },
      ]
    }
    try JSONSerialization.data(withJSONObject: ["files": expected]).write(
      to: dir.appendingPathComponent("expected.json"))
    let script = fixtures.appendingPathComponent("make_fixtures.py").path
    let result = try XCTUnwrap(python([script, "--check", dir.path]))
    print(result.output)
    XCTAssertEqual(result.status, 0, result.output)
    XCTAssertTrue(
      result.output.contains("gp_f32.safetensors: byte-identical to safetensors.numpy.save: True"))
    XCTAssertTrue(
      result.output.contains("gp_f16.safetensors: byte-identical to safetensors.numpy.save: True"))
  }
}
