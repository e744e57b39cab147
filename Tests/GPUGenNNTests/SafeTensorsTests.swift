import Foundation
import XCTest

@testable import GPUGenNN

/// The bytes of a safetensors file with a raw `header` string and `data` section.
func safetensorsFile(_ header: String, data: [UInt8] = []) -> [UInt8] {
  var out = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) }
  out += Array(header.utf8)
  return out + data
}

/// Asserts that reading `bytes` throws exactly `expected`.
func assertRejects(
  _ bytes: [UInt8], _ expected: SafeTensorsError, file: StaticString = #filePath, line: UInt = #line
) {
  XCTAssertThrowsError(try SafeTensors.read(bytes: bytes), file: file, line: line) { error in
    XCTAssertEqual(error as? SafeTensorsError, expected, "\(error)", file: file, line: line)
  }
}

/// A fresh temporary directory, removed when the test ends.
func temporaryDirectory(_ test: XCTestCase) throws -> URL {
  let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gpugen-st-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
  test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
  return dir
}

final class SafeTensorsTests: XCTestCase {
  let specials: [Float] = [
    0, -0.0, 1, -2.5, .infinity, -.infinity, .nan, Float(bitPattern: 1), .greatestFiniteMagnitude,
    -.leastNormalMagnitude, 1.0 / 3.0, 65504,
  ]

  func testF32RoundTripIsBitExact() throws {
    let weight = TensorData(shape: [3, 4], values: specials)
    let bias = TensorData(shape: [4], values: [0.5, -0.25, 1e-20, 3e30])
    let bytes = try SafeTensors.encode([("weight", weight), ("bias", bias)])
    let file = try SafeTensors.read(bytes: bytes)
    XCTAssertEqual(file.order, ["bias", "weight"])
    XCTAssertEqual(file.tensors["bias"], bias)
    XCTAssertEqual(file.tensors["weight"]?.shape, [3, 4])
    XCTAssertEqual(file.tensors["weight"]?.values.map(\.bitPattern), specials.map(\.bitPattern))
    XCTAssertEqual(file.metadata, [:])
  }

  func testF16RoundTrip() throws {
    // Exactly representable in half precision: 0, ±1, extremes, the smallest subnormal, infinities.
    let exact: [Float] = [
      0, -0.0, 1, -2.5, 65504, -65504, 0x1p-24, 0x1p-14, 0.333251953125, .infinity, -.infinity,
    ]
    var rng = SystemRandomNumberGenerator()
    let inexact: [Float] = (0..<200).map { i in
      Float.random(in: -1...1, using: &rng) * Float(sign: .plus, exponent: i % 40 - 26, significand: 1)
    }
    let tensors = [
      ("exact", TensorData(shape: [exact.count], values: exact)),
      ("inexact", TensorData(shape: [20, 10], values: inexact)),
      ("nan", TensorData(shape: [1], values: [.nan])),
    ]
    let file = try SafeTensors.read(bytes: try SafeTensors.encode(tensors, dtype: .f16))
    XCTAssertEqual(file.tensors["exact"]?.values.map(\.bitPattern), exact.map(\.bitPattern))
    XCTAssertTrue(file.tensors["nan"]!.values[0].isNaN)
    let back = file.tensors["inexact"]!.values
    XCTAssertEqual(file.tensors["inexact"]?.shape, [20, 10])
    for (x, y) in zip(inexact, back) {
      // Half keeps 11 significant bits (relative error ≤ 2^-11); subnormals are spaced 2^-24 apart.
      XCTAssertLessThanOrEqual(abs(x - y), max(abs(x) * 0x1p-11, 0x1p-25), "\(x) -> \(y)")
    }
  }

  func testBF16RoundTrip() throws {
    let exact: [Float] = [0, -0.0, 1, -2.5, 0x1p-133, 3.3895314e38, .infinity, -.infinity]
    let inexact: [Float] = [1.0 / 3.0, 0.1, -123.456, 1e-30]
    let file = try SafeTensors.read(
      bytes: try SafeTensors.encode(
        [("a", TensorData(shape: [8], values: exact)), ("b", TensorData(shape: [2, 2], values: inexact))],
        dtype: .bf16))
    XCTAssertEqual(file.tensors["a"]?.values.map(\.bitPattern), exact.map(\.bitPattern))
    for (x, y) in zip(inexact, file.tensors["b"]!.values) {
      XCTAssertLessThanOrEqual(abs(x - y), abs(x) * 0x1p-8, "\(x) -> \(y)")
      XCTAssertNotEqual(x, y)
    }
  }

  func testMetadataRoundTrip() throws {
    let metadata = [
      "format": "pt", "unicode ✓ 名前": "é\u{301} 🎉", "escapes": "quote \" backslash \\ slash / tab \t",
      "control": "\u{0}\u{1}\u{8}\u{c}\n\r\u{1f}\u{7f}", "": "",
    ]
    let bytes = try SafeTensors.encode([("x", TensorData(shape: [1], values: [2]))], metadata: metadata)
    let file = try SafeTensors.read(bytes: bytes)
    XCTAssertEqual(file.metadata, metadata)
    XCTAssertEqual(file.tensors["x"]?.values, [2])
    // Metadata alone, no tensors.
    XCTAssertEqual(
      try SafeTensors.read(bytes: try SafeTensors.encode([], metadata: metadata)).metadata, metadata)
  }

  func testEmptyAndScalarTensors() throws {
    let tensors = [
      ("scalar", TensorData(shape: [], values: [-7.25])),
      ("empty", TensorData(shape: [0, 4], values: [])),
      ("empty2", TensorData(shape: [3, 0], values: [])),
      ("after", TensorData(shape: [2], values: [1, 2])),
    ]
    for dtype in SafeTensorsDType.allCases {
      let file = try SafeTensors.read(bytes: try SafeTensors.encode(tensors, dtype: dtype))
      XCTAssertEqual(file.order, ["after", "empty", "empty2", "scalar"], "\(dtype)")
      for (name, t) in tensors { XCTAssertEqual(file.tensors[name], t, "\(name) \(dtype)") }
    }
    let none = try SafeTensors.read(bytes: try SafeTensors.encode([]))
    XCTAssertEqual(none, SafeTensorsFile(tensors: [:], order: []))
  }

  func testLayoutMatchesReferenceWriter() throws {
    // Byte strings from the reference implementation's own tests (safetensors/src/tensor.rs).
    let attn = TensorData(shape: [1, 2, 3], values: [0, 1, 2, 3, 4, 5])
    XCTAssertEqual(
      try SafeTensors.encode([("attn.0", attn)]),
      [
        64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101,
        34,
        58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34,
        100,
        97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0,
        0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
      ])
    XCTAssertEqual(try SafeTensors.encode([]), [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32])
    XCTAssertEqual(
      try SafeTensors.encode([], metadata: ["framework": "pt"]),
      [
        40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95, 95, 34, 58, 123,
        34,
        102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112, 116, 34, 125, 125, 32, 32, 32, 32, 32,
      ])
    // Padding to 8 bytes for every header length; names sorted by bytes ("B" < "a" < "é").
    for n in 1...9 {
      let bytes = try SafeTensors.encode([
        (String(repeating: "x", count: n), attn), ("é", attn), ("a", attn), ("B", attn),
      ])
      let length = Int(bytes[0]) | Int(bytes[1]) << 8
      XCTAssertEqual(length % 8, 0)
      XCTAssertEqual(
        try SafeTensors.read(bytes: bytes).order, ["B", "a", String(repeating: "x", count: n), "é"])
    }
  }

  func testWriteIsAtomicAndReadsBack() throws {
    let dir = try temporaryDirectory(self)
    let url = dir.appendingPathComponent("model.safetensors")
    let a = [("w", TensorData(shape: [2], values: [1, 2]))]
    try SafeTensors.write(a, metadata: ["step": "1"], to: url)
    XCTAssertEqual(try SafeTensors.read(contentsOf: url).tensors["w"], a[0].1)
    XCTAssertEqual(try Data(contentsOf: url), Data(try SafeTensors.encode(a, metadata: ["step": "1"])))
    // Overwriting replaces the file; no temporary file is left behind.
    let b = [("w", TensorData(shape: [3], values: [3, 4, 5]))]
    try SafeTensors.write(b, dtype: .f16, to: url)
    XCTAssertEqual(try SafeTensors.read(contentsOf: url).tensors["w"], b[0].1)
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["model.safetensors"])
    // A failed write leaves the old file untouched and no temporary file.
    XCTAssertThrowsError(try SafeTensors.write([("w", TensorData(shape: [2], values: [1]))], to: url))
    XCTAssertEqual(try SafeTensors.read(contentsOf: url).tensors["w"], b[0].1)
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["model.safetensors"])
    // Lazily fetched tensors: the same bytes, each fetched once, in file order; a fetch with the wrong
    // number of values (or one that throws) fails the write and leaves the old file.
    var fetched: [String] = []
    let lazy = [("z", [2, 2], [Float](repeating: 7, count: 4)), ("w", [2], [1, 2] as [Float])].map {
      name, shape, values in
      (
        name,
        LazyTensor(shape: shape) {
          fetched.append(name); return values
        }
      )
    }
    try SafeTensors.write(lazy: lazy, metadata: ["step": "1"], to: url)
    XCTAssertEqual(fetched, ["w", "z"])
    let eager = [("z", TensorData(shape: [2, 2], values: [7, 7, 7, 7])), a[0]]
    XCTAssertEqual(try Data(contentsOf: url), Data(try SafeTensors.encode(eager, metadata: ["step": "1"])))
    XCTAssertThrowsError(
      try SafeTensors.write(lazy: [("w", LazyTensor(shape: [3]) { [1, 2] })], to: url)
    ) { error in
      guard case .valueCountMismatch(name: "w", _, expected: 3, count: 2)? = error as? SafeTensorsError else {
        return XCTFail("\(error)")
      }
    }
    struct Boom: Error {}
    XCTAssertThrowsError(
      try SafeTensors.write(lazy: [("w", LazyTensor(shape: [1]) { throw Boom() })], to: url))
    XCTAssertEqual(try Data(contentsOf: url), Data(try SafeTensors.encode(eager, metadata: ["step": "1"])))
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["model.safetensors"])
    // When the final rename fails (the target is a non-empty folder), the temporary file is removed.
    let blocked = dir.appendingPathComponent("blocked")
    try FileManager.default.createDirectory(
      at: blocked.appendingPathComponent("m.safetensors/inner"), withIntermediateDirectories: true)
    XCTAssertThrowsError(try SafeTensors.write(a, to: blocked.appendingPathComponent("m.safetensors"))) {
      error in
      guard case .io(_, let operation, _)? = error as? SafeTensorsError else { return XCTFail("\(error)") }
      XCTAssertTrue(operation.hasPrefix("rename"), operation)
    }
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: blocked.path), ["m.safetensors"])
    // A missing folder is an I/O error naming the path.
    let missing = dir.appendingPathComponent("no/such/dir/m.safetensors")
    XCTAssertThrowsError(try SafeTensors.write(a, to: missing)) { error in
      guard case .io(let path, "create", _)? = error as? SafeTensorsError else { return XCTFail("\(error)") }
      XCTAssertTrue(path.hasPrefix(missing.deletingLastPathComponent().path), path)
    }
    XCTAssertThrowsError(try SafeTensors.read(contentsOf: missing)) { error in
      guard case .io(missing.path, "read", _)? = error as? SafeTensorsError else {
        return XCTFail("\(error)")
      }
    }
  }

  func testWriteRejectsInvalidTensors() throws {
    func assertWriteThrows(
      _ tensors: [(name: String, tensor: TensorData)], _ expected: SafeTensorsError, line: UInt = #line
    ) {
      XCTAssertThrowsError(try SafeTensors.encode(tensors), line: line) { error in
        XCTAssertEqual(error as? SafeTensorsError, expected, line: line)
      }
    }
    let ok = TensorData(shape: [1], values: [1])
    assertWriteThrows(
      [("a", TensorData(shape: [2, 2], values: [1, 2, 3]))],
      .valueCountMismatch(name: "a", shape: [2, 2], expected: 4, count: 3))
    assertWriteThrows([("a", ok), ("b", ok), ("a", ok)], .duplicateTensorName("a"))
    assertWriteThrows([("__metadata__", ok)], .reservedTensorName("__metadata__"))
    assertWriteThrows(
      [("n", TensorData(shape: [-1, -2], values: [1, 2]))], .negativeDimension(name: "n", shape: "[-1, -2]"))
    assertWriteThrows(
      [("o", TensorData(shape: [1 << 62, 4], values: []))],
      .shapeOverflow(name: "o", shape: "[4611686018427387904, 4]"))
  }

  func testTensorConversion() throws {
    let data = TensorData(shape: [2, 3], values: [1, -2, 3.5, 0, .infinity, 6])
    for device in try Device.all() {
      let t = try Tensor(data, on: device)
      XCTAssertEqual(t.shape, [2, 3])
      XCTAssertTrue(t.device === device)
      XCTAssertEqual(try t.toTensorData(), data, device.spec)
      XCTAssertEqual(try Tensor(TensorData(shape: [], values: [4]), on: device).toTensorData().shape, [])
      XCTAssertEqual(try Tensor(TensorData(shape: [0, 2], values: []), on: device).toTensorData().values, [])
    }
    XCTAssertThrowsError(try Tensor(TensorData(shape: [2], values: [1]), on: .cpu))
  }

  func testErrorDescriptionsNameTheProblem() {
    let cases: [(SafeTensorsError, [String])] = [
      (
        .sizeMismatch(name: "w", dtype: "F16", shape: [2, 3], expected: 12, actual: 10),
        ["'w'", "12", "10", "[2, 3]"]
      ),
      (
        .overlappingTensors(first: "a", firstOffsets: [0, 8], second: "b", secondOffsets: [4, 12]),
        ["'a'", "'b'", "[4, 12]"]
      ),
      (.holeBetweenTensors(after: nil, before: "b", begin: 0, end: 4), ["before 'b'", "[0, 4)"]),
      (.dataTruncated(name: "t", end: 16, dataLength: 12), ["'t'", "16", "12"]),
      (.trailingBytes(after: "t", end: 8, dataLength: 12), ["'t'", "4 more bytes"]),
      (.duplicateKey(key: "k", in: "__metadata__", offset: 17), ["'k'", "17"]),
      (.headerTooLarge(length: 200_000_000, limit: 100_000_000), ["200000000", "100000000"]),
    ]
    for (error, parts) in cases {
      for part in parts {
        XCTAssertTrue(error.description.contains(part), "\(error.description) lacks \(part)")
      }
    }
  }
}
