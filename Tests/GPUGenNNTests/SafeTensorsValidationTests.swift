import Foundation
import XCTest

@testable import GPUGenNN

/// One test per way a malformed file is rejected; each builds the bad bytes and expects its own error.
final class SafeTensorsValidationTests: XCTestCase {
  /// A header entry for a tensor.
  func entry(_ name: String, _ dtype: String = "F32", _ shape: String, _ begin: Int, _ end: Int) -> String {
    "\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":[\(begin),\(end)]}"
  }

  /// Byte offset of the `occurrence`-th (0-based) `needle` in `text`.
  func byteOffset(of needle: String, in text: String, occurrence: Int) -> Int {
    let hay = Array(text.utf8)
    let pin = Array(needle.utf8)
    var seen = 0
    for i in 0...(hay.count - pin.count) where Array(hay[i..<(i + pin.count)]) == pin {
      if seen == occurrence { return i }
      seen += 1
    }
    XCTFail("\(needle) not found")
    return -1
  }

  func testValidFileIsAccepted() throws {
    // The baseline the malformed variants below start from.
    let header = "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F16", "[2]", 8, 12) + "}"
    let data: [UInt8] = [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0x00, 0x3c, 0x00, 0x7c]
    let file = try SafeTensors.read(bytes: safetensorsFile(header, data: data))
    XCTAssertEqual(file.tensors["a"]?.values, [1, -2])
    XCTAssertEqual(file.tensors["b"]?.values, [1, .infinity])
  }

  // 1
  func testFileShorterThanEightBytes() throws {
    assertRejects([], .fileTooShort(size: 0))
    assertRejects([8, 0, 0, 0, 0, 0, 0], .fileTooShort(size: 7))
    let url = try temporaryDirectory(self).appendingPathComponent("short.safetensors")
    try Data([1, 2, 3]).write(to: url)
    XCTAssertThrowsError(try SafeTensors.read(contentsOf: url)) {
      XCTAssertEqual($0 as? SafeTensorsError, .fileTooShort(size: 3))
    }
  }

  // 2
  func testHeaderLengthOverLimit() {
    var bytes = safetensorsFile("{}      ")
    withUnsafeBytes(of: UInt64(100_000_001).littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
    assertRejects(bytes, .headerTooLarge(length: 100_000_001, limit: 100_000_000))
    bytes.replaceSubrange(0..<8, with: [UInt8](repeating: 0xff, count: 8))
    assertRejects(bytes, .headerTooLarge(length: UInt64.max, limit: 100_000_000))
  }

  // 3
  func testHeaderLengthPastEndOfFile() {
    var bytes = safetensorsFile("{}      ")
    bytes[0] = 9
    assertRejects(bytes, .headerPastEnd(length: 9, fileSize: 16))
  }

  // 4
  func testHeaderNotUTF8() {
    func raw(_ header: [UInt8]) -> [UInt8] {
      withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) } + header
    }
    let key = Array("{\"".utf8)
    let rest = Array("\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}".utf8)
    assertRejects(raw(key + [0xff] + rest), .headerNotUTF8)  // invalid byte
    assertRejects(raw(key + [0xc0, 0xaf] + rest), .headerNotUTF8)  // overlong "/"
    assertRejects(raw(key + [0xed, 0xa0, 0x80] + rest), .headerNotUTF8)  // UTF-16 surrogate
    assertRejects(raw(key + [0xe2, 0x9c] + rest), .headerNotUTF8)  // truncated sequence
    XCTAssertNoThrow(try SafeTensors.read(bytes: raw(key + [0xe2, 0x9c, 0x93] + rest)))  // "✓"
  }

  func testHeaderNotJSON() {
    assertRejects(safetensorsFile(""), .invalidJSON(offset: 0, reason: "unexpected end of the header"))
    assertRejects(safetensorsFile("{\"a\":"), .invalidJSON(offset: 5, reason: "unexpected end of the header"))
    assertRejects(
      safetensorsFile("{} x"), .invalidJSON(offset: 3, reason: "unexpected data after the top-level value"))
    assertRejects(safetensorsFile("{\"a\":1,}"), .invalidJSON(offset: 7, reason: "expected a string key"))
    assertRejects(safetensorsFile("{'a':1}"), .invalidJSON(offset: 1, reason: "expected a string key"))
    assertRejects(
      safetensorsFile("{\"a\":01}"), .invalidJSON(offset: 6, reason: "invalid number: leading zero"))
    assertRejects(safetensorsFile("{\"a\":tru}"), .invalidJSON(offset: 5, reason: "invalid literal"))
    assertRejects(
      safetensorsFile("{\"a\":\"x\ny\"}"),
      .invalidJSON(offset: 7, reason: "unescaped control character in a string"))
    assertRejects(safetensorsFile("{\"a\":\"\\x\"}"), .invalidJSON(offset: 8, reason: "invalid escape '\\x'"))
    assertRejects(
      safetensorsFile("{\"a\":\"\\ud800\"}"),
      .invalidJSON(offset: 12, reason: "lone leading surrogate in a \\u escape"))
    assertRejects(
      safetensorsFile("{\"a\":[1 2]}"), .invalidJSON(offset: 8, reason: "expected ',' or ']' in an array"))
    let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
    assertRejects(
      safetensorsFile("{\"a\":" + deep + "}"),
      .invalidJSON(offset: 132, reason: "nesting deeper than 128 levels"))
    // Escapes are decoded: "\u00e9\ud83c\udf89" names the tensor "é🎉".
    let file = try? SafeTensors.read(
      bytes: safetensorsFile(
        "{" + entry("\\u00e9\\ud83c\\udf89\\n", "F32", "[]", 0, 4) + "}", data: [0, 0, 0, 0]))
    XCTAssertEqual(file?.order, ["é🎉\n"])
  }

  func testHeaderNotAnObject() {
    assertRejects(safetensorsFile("[]"), .headerNotObject(found: "array"))
    assertRejects(safetensorsFile("\"{}\""), .headerNotObject(found: "string"))
    assertRejects(safetensorsFile(" 42 "), .headerNotObject(found: "number 42"))
  }

  func testTensorEntryWithMissingFieldsOrWrongTypes() {
    func bad(_ body: String, _ reason: String, line: UInt = #line) {
      assertRejects(
        safetensorsFile("{\"t\":" + body + "}", data: [0, 0, 0, 0]),
        .invalidTensorEntry(name: "t", reason: reason),
        line: line)
    }
    bad("[1]", "expected an object, found array")
    bad("{\"shape\":[1],\"data_offsets\":[0,4]}", "missing \"dtype\"")
    bad("{\"dtype\":\"F32\",\"data_offsets\":[0,4]}", "missing \"shape\"")
    bad("{\"dtype\":\"F32\",\"shape\":[1]}", "missing \"data_offsets\"")
    bad("{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}", "\"dtype\" must be a string, found number 32")
    bad(
      "{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}",
      "\"shape\" must be an array of integers, found number 1")
    bad(
      "{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}",
      "\"shape\" must be an array of integers, found [number 1.0]")
    bad(
      "{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}",
      "\"shape\" must be an array of integers, found [string]")
    bad(
      "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}",
      "\"data_offsets\" must be two non-negative integers, found [0, 4, 8]")
    bad(
      "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}",
      "\"data_offsets\" must be two non-negative integers, found [-4, 0]")
    bad(
      "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4e0]}",
      "\"data_offsets\" must be two non-negative integers, found [0, 4e0]")
    bad(
      "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":null}",
      "\"data_offsets\" must be two non-negative integers, found null")
  }

  func testOffsetsThatEndBeforeTheyBegin() {
    assertRejects(
      safetensorsFile("{" + entry("t", "F32", "[1]", 4, 0) + "}", data: [0, 0, 0, 0]),
      .invalidOffsets(name: "t", begin: 4, end: 0))
  }

  // 5
  func testUnknownDType() {
    assertRejects(
      safetensorsFile("{" + entry("t", "F128", "[1]", 0, 16) + "}", data: Array(repeating: 0, count: 16)),
      .unknownDType(name: "t", dtype: "F128"))
    assertRejects(
      safetensorsFile("{" + entry("t", "f32", "[1]", 0, 4) + "}", data: [0, 0, 0, 0]),
      .unknownDType(name: "t", dtype: "f32"))
  }

  func testUnsupportedDType() {
    for dtype in ["F8_E4M3", "F8_E5M2", "C64", "F4"] {
      assertRejects(
        safetensorsFile("{" + entry("t", dtype, "[1]", 0, 1) + "}", data: [0]),
        .unsupportedDType(name: "t", dtype: dtype))
    }
  }

  // 6
  func testShapeOverflowAndNegativeDimensions() {
    let data: [UInt8] = [0, 0, 0, 0]
    assertRejects(
      safetensorsFile("{" + entry("t", "F32", "[4294967296, 4294967296, 0]", 0, 0) + "}"),
      .shapeOverflow(name: "t", shape: "[4294967296, 4294967296, 0]"))
    assertRejects(
      safetensorsFile("{" + entry("t", "F32", "[99999999999999999999]", 0, 4) + "}", data: data),
      .shapeOverflow(name: "t", shape: "[99999999999999999999]"))
    assertRejects(  // the element count fits, the byte count does not
      safetensorsFile("{" + entry("t", "F32", "[4611686018427387904]", 0, 4) + "}", data: data),
      .shapeOverflow(name: "t", shape: "[4611686018427387904]"))
    assertRejects(
      safetensorsFile("{" + entry("t", "F32", "[2,-3]", 0, 4) + "}", data: data),
      .negativeDimension(name: "t", shape: "[2, -3]"))
    assertRejects(
      safetensorsFile("{" + entry("t", "F32", "[-99999999999999999999]", 0, 4) + "}", data: data),
      .negativeDimension(name: "t", shape: "[-99999999999999999999]"))
  }

  // 7
  func testDataSizeDiffersFromShape() {
    assertRejects(
      safetensorsFile("{" + entry("w", "F32", "[2,2]", 0, 12) + "}", data: Array(repeating: 0, count: 12)),
      .sizeMismatch(name: "w", dtype: "F32", shape: [2, 2], expected: 16, actual: 12))
    assertRejects(
      safetensorsFile("{" + entry("s", "BF16", "[]", 0, 4) + "}", data: Array(repeating: 0, count: 4)),
      .sizeMismatch(name: "s", dtype: "BF16", shape: [], expected: 2, actual: 4))
  }

  // 8
  func testOverlappingTensors() {
    let data = [UInt8](repeating: 0, count: 12)
    assertRejects(
      safetensorsFile(
        "{" + entry("b", "F32", "[2]", 4, 12) + "," + entry("a", "F32", "[2]", 0, 8) + "}", data: data),
      .overlappingTensors(first: "a", firstOffsets: [0, 8], second: "b", secondOffsets: [4, 12]))
    // Two tensors on the same bytes, and an empty tensor inside another's range.
    assertRejects(
      safetensorsFile(
        "{" + entry("a", "F32", "[1]", 0, 4) + "," + entry("c", "F32", "[1]", 0, 4) + "}", data: [0, 0, 0, 0]),
      .overlappingTensors(first: "a", firstOffsets: [0, 4], second: "c", secondOffsets: [0, 4]))
    assertRejects(
      safetensorsFile(
        "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("e", "F32", "[0]", 4, 4) + "}",
        data: Array(data[0..<8])),
      .overlappingTensors(first: "a", firstOffsets: [0, 8], second: "e", secondOffsets: [4, 4]))
  }

  // 9
  func testHolesBetweenTensors() {
    assertRejects(
      safetensorsFile(
        "{" + entry("a", "F32", "[1]", 0, 4) + "," + entry("b", "F32", "[1]", 8, 12) + "}",
        data: Array(repeating: 0, count: 12)),
      .holeBetweenTensors(after: "a", before: "b", begin: 4, end: 8))
    assertRejects(
      safetensorsFile("{" + entry("a", "F32", "[1]", 4, 8) + "}", data: Array(repeating: 0, count: 8)),
      .holeBetweenTensors(after: nil, before: "a", begin: 0, end: 4))
  }

  // 10
  func testBytesAfterTheLastTensor() throws {
    var bytes = try SafeTensors.encode([("t", TensorData(shape: [2], values: [1, 2]))])
    bytes += [0, 0, 0, 0]
    assertRejects(bytes, .trailingBytes(after: "t", end: 8, dataLength: 12))
    assertRejects(safetensorsFile("{}", data: [0]), .trailingBytes(after: nil, end: 0, dataLength: 1))
  }

  // 11
  func testDataCutShort() throws {
    let full = try SafeTensors.encode([
      ("a", TensorData(shape: [2], values: [1, 2])), ("b", TensorData(shape: [3], values: [3, 4, 5])),
    ])
    assertRejects(Array(full.dropLast(2)), .dataTruncated(name: "b", end: 20, dataLength: 18))
    let headerEnd = full.count - 20
    assertRejects(Array(full[0..<headerEnd]), .dataTruncated(name: "b", end: 20, dataLength: 0))
  }

  // 12
  func testDuplicateKeys() throws {
    // JSONSerialization keeps one of the two silently; the strict parser must not.
    let twice = "{" + entry("t", "F32", "[1]", 0, 4) + "," + entry("t", "F32", "[1]", 0, 4) + "}"
    let dup = try JSONSerialization.jsonObject(with: Data(twice.utf8)) as? [String: Any]
    XCTAssertEqual(dup?.count, 1)
    assertRejects(
      safetensorsFile(twice, data: [0, 0, 0, 0]),
      .duplicateKey(key: "t", in: "the header", offset: byteOffset(of: "\"t\"", in: twice, occurrence: 1)))

    let meta = "{\"__metadata__\":{\"k\":\"1\",\"j\":\"2\",\"k\":\"3\"}}"
    assertRejects(
      safetensorsFile(meta),
      .duplicateKey(key: "k", in: "'__metadata__'", offset: byteOffset(of: "\"k\"", in: meta, occurrence: 1)))

    let field = "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"dtype\":\"F16\",\"data_offsets\":[0,4]}}"
    assertRejects(
      safetensorsFile(field, data: [0, 0, 0, 0]),
      .duplicateKey(key: "dtype", in: "'t'", offset: byteOffset(of: "\"dtype\"", in: field, occurrence: 1)))

    let twoMeta = "{\"__metadata__\":{},\"__metadata__\":{}}"
    assertRejects(safetensorsFile(twoMeta), .duplicateKey(key: "__metadata__", in: "the header", offset: 19))

    // Canonically equivalent names (NFC "é" and NFD "e\u0301") would collide in a Swift dictionary.
    let nfc = "{" + entry("\u{e9}", "F32", "[1]", 0, 4) + "," + entry("e\u{301}", "F32", "[1]", 4, 8) + "}"
    assertRejects(
      safetensorsFile(nfc, data: Array(repeating: 0, count: 8)),
      .duplicateKey(
        key: "e\u{301}", in: "the header", offset: byteOffset(of: "\"e\u{301}\"", in: nfc, occurrence: 0)))
  }

  // 13
  func testNonStringMetadata() {
    assertRejects(
      safetensorsFile("{\"__metadata__\":{\"ok\":\"x\",\"epoch\":3}}"),
      .nonStringMetadata(key: "epoch", found: "number 3"))
    assertRejects(
      safetensorsFile("{\"__metadata__\":{\"a\":null}}"), .nonStringMetadata(key: "a", found: "null"))
    assertRejects(
      safetensorsFile("{\"__metadata__\":{\"a\":{}}}"), .nonStringMetadata(key: "a", found: "object"))
    assertRejects(safetensorsFile("{\"__metadata__\":[\"a\"]}"), .metadataNotObject(found: "array"))
    // `null` means no metadata, as in the reference reader.
    XCTAssertEqual(try SafeTensors.read(bytes: safetensorsFile("{\"__metadata__\":null}")).metadata, [:])
  }

  func testReferenceLeniencies() throws {
    // Whitespace around the header, unknown fields in an entry, any entry order: all accepted.
    let header =
      " {" + entry("b", "F32", "[1]", 4, 8) + ",\"a\":{\"extra\":[1],\"data_offsets\":[0,4],"
      + "\"shape\":[1],\"dtype\":\"F32\"}}\t\n "
    let file = try SafeTensors.read(bytes: safetensorsFile(header, data: [0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]))
    XCTAssertEqual(file.order, ["a", "b"])
    XCTAssertEqual(file.tensors["a"]?.values, [1])
    XCTAssertEqual(file.tensors["b"]?.values, [2])
    // Empty tensors sharing an offset are ordered as in the header.
    let empties = "{" + entry("z", "F16", "[0]", 0, 0) + "," + entry("y", "F32", "[0, 3]", 0, 0) + "}"
    XCTAssertEqual(try SafeTensors.read(bytes: safetensorsFile(empties)).order, ["z", "y"])
  }
}
