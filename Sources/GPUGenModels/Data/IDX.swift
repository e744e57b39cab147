// IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed, with strict validation.
import Foundation

/// What is wrong with an IDX file (or an images/labels pair). Every message names the file.
public enum IDXError: Error, CustomStringConvertible, Equatable {
  /// The file does not exist.
  case missing(path: String)
  /// The file exists but could not be read (a folder, no permission, I/O error).
  case unreadable(path: String, reason: String)
  /// The file (or its decompressed contents) is larger than the limit.
  case tooLarge(path: String, limit: Int)
  /// The gzip stream ends early.
  case truncatedGzip(path: String)
  /// The gzip stream is corrupt.
  case corruptGzip(path: String, reason: String)
  /// The file ends inside the header (magic, type, dimension count or dimensions).
  case truncatedHeader(path: String, bytes: Int, needed: Int)
  /// The first two bytes are not zero.
  case badMagic(path: String, first: UInt8, second: UInt8)
  /// The element type code is not one of 0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E.
  case unknownType(path: String, code: UInt8)
  /// The dimension count is 0 or larger than `IDXArray.maxDimensions`.
  case badDimensionCount(path: String, count: Int)
  /// The product of the dimensions overflows or exceeds Int32.max elements.
  case tooManyElements(path: String, dimensions: [Int])
  /// The payload is shorter than product(dimensions)·element size.
  case truncatedPayload(path: String, expected: Int, actual: Int)
  /// The payload is longer than product(dimensions)·element size.
  case trailingBytes(path: String, expected: Int, actual: Int)
  /// An image file that is not 3-D (count, rows, columns).
  case imagesNot3D(path: String, dimensions: [Int])
  /// A label file that is not 1-D.
  case labelsNot1D(path: String, dimensions: [Int])
  /// The elements have a type this use does not accept.
  case wrongType(path: String, expected: String, found: IDXType)
  /// The image and label files hold different numbers of items.
  case countMismatch(images: String, imageCount: Int, labels: String, labelCount: Int)
  /// A label outside 0...255.
  case labelOutOfRange(path: String, index: Int, value: Double)
  /// The gzip stream inflates to more than the size its IDX header declares.
  case inflatesPastHeader(path: String, declared: Int)
  /// An image file whose images have 0 rows or 0 columns.
  case noImages(path: String, dimensions: [Int])

  public var description: String {
    switch self {
    case .missing(let p): return "IDX file \(p) does not exist"
    case .unreadable(let p, let why): return "IDX file \(p) could not be read: \(why)"
    case .tooLarge(let p, let limit):
      return "IDX file \(p) is larger than the \(limit)-byte limit (refusing a possible zip bomb)"
    case .truncatedGzip(let p): return "IDX file \(p): the gzip stream is truncated"
    case .corruptGzip(let p, let why): return "IDX file \(p): corrupt gzip data (\(why))"
    case .truncatedHeader(let p, let n, let needed):
      return "IDX file \(p) is truncated: \(n) bytes, the header needs \(needed)"
    case .badMagic(let p, let a, let b):
      return "IDX file \(p) has bad magic: the first two bytes are \(hex(a)) \(hex(b)), expected 00 00"
    case .unknownType(let p, let code):
      return "IDX file \(p) has unknown element type code 0x\(hex(code)) "
        + "(known: 08 ubyte, 09 byte, 0B short, 0C int, 0D float, 0E double)"
    case .badDimensionCount(let p, let n):
      return "IDX file \(p) declares \(n) dimensions, expected 1...\(IDXArray.maxDimensions)"
    case .tooManyElements(let p, let dims):
      return "IDX file \(p): dimensions \(dims) give more than \(Int32.max) elements"
    case .truncatedPayload(let p, let expected, let actual):
      return "IDX file \(p) is truncated: the data holds \(actual) bytes, the dimensions need \(expected)"
    case .trailingBytes(let p, let expected, let actual):
      return "IDX file \(p) has \(actual - expected) trailing bytes: the data holds \(actual) bytes, "
        + "the dimensions need \(expected)"
    case .imagesNot3D(let p, let dims):
      return "IDX image file \(p) has dimensions \(dims), expected 3 (count, rows, columns)"
    case .labelsNot1D(let p, let dims):
      return "IDX label file \(p) has dimensions \(dims), expected 1 (count)"
    case .wrongType(let p, let expected, let found):
      return "IDX file \(p) holds \(found) elements, expected \(expected)"
    case .countMismatch(let images, let n, let labels, let m):
      return "IDX image file \(images) holds \(n) images but label file \(labels) holds \(m) labels"
    case .labelOutOfRange(let p, let i, let v):
      return "IDX label file \(p): label \(i) is \(v), expected an integer in 0...255"
    case .inflatesPastHeader(let p, let declared):
      return "IDX file \(p): the gzip stream inflates past the \(declared) bytes its header declares "
        + "(refusing a possible zip bomb)"
    case .noImages(let p, let dims):
      return
        "IDX image file \(p) has dimensions \(dims): its images have no pixels (rows and columns must be ≥ 1)"
    }
  }
}

private func hex(_ b: UInt8) -> String {
  let s = String(b, radix: 16, uppercase: true)
  return s.count == 1 ? "0" + s : s
}

/// IDX element types.
public enum IDXType: UInt8, Sendable, CustomStringConvertible {
  case uint8 = 0x08, int8 = 0x09, int16 = 0x0B, int32 = 0x0C, float32 = 0x0D, float64 = 0x0E

  /// Bytes per element.
  public var byteSize: Int {
    switch self {
    case .uint8, .int8: return 1
    case .int16: return 2
    case .int32, .float32: return 4
    case .float64: return 8
    }
  }

  public var isInteger: Bool { self != .float32 && self != .float64 }

  public var description: String {
    switch self {
    case .uint8: return "unsigned byte (0x08)"
    case .int8: return "signed byte (0x09)"
    case .int16: return "int16 (0x0B)"
    case .int32: return "int32 (0x0C)"
    case .float32: return "float32 (0x0D)"
    case .float64: return "float64 (0x0E)"
    }
  }
}

/// One IDX array: element type, dimensions and the big-endian payload.
public struct IDXArray: Sendable {
  /// Files (compressed or decompressed) larger than this are refused: 2 GiB.
  public static let defaultMaxBytes = 2 << 30
  /// The most dimensions a file may declare.
  public static let maxDimensions = 8

  public var type: IDXType
  public var dimensions: [Int]
  /// The elements, big-endian, row-major: exactly product(dimensions)·type.byteSize bytes.
  public var payload: ArraySlice<UInt8>
  /// The file the array came from (for messages).
  public var path: String

  /// Number of elements.
  public var count: Int { dimensions.reduce(1, *) }

  /// Reads an IDX file, gzip-compressed (recognised by its magic bytes 1f 8b, whatever its name) or plain.
  public static func read(contentsOf url: URL, maxBytes: Int = defaultMaxBytes) throws -> IDXArray {
    let path = url.path
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
      throw IDXError.missing(path: path)
    }
    guard !isDir.boolValue else { throw IDXError.unreadable(path: path, reason: "it is a folder") }
    if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size > maxBytes {
      throw IDXError.tooLarge(path: path, limit: maxBytes)
    }
    let data: Data
    do {
      data = try Data(contentsOf: url, options: .mappedIfSafe)
    } catch {
      throw IDXError.unreadable(path: path, reason: error.localizedDescription)
    }
    guard data.count <= maxBytes else { throw IDXError.tooLarge(path: path, limit: maxBytes) }
    let bytes: [UInt8]
    if Gzip.isGzip(data) {
      var promised: Int?
      do {
        bytes = try data.withUnsafeBytes { raw in
          // Inflate the header first, then no more than the size it declares (a gzip bomb stops there).
          let head = try Gzip.decompress(raw, limit: maxHeaderBytes, prefix: maxHeaderBytes)
          promised = try declaredSize(head, path: path)
          return try Gzip.decompress(raw, limit: Swift.min(maxBytes, promised ?? maxBytes))
        }
      } catch let failure as Gzip.Failure {
        switch failure {
        case .truncated: throw IDXError.truncatedGzip(path: path)
        case .corrupt(let why): throw IDXError.corruptGzip(path: path, reason: why)
        case .tooLarge(let limit):
          if let promised, promised <= maxBytes {
            throw IDXError.inflatesPastHeader(path: path, declared: promised)
          }
          throw IDXError.tooLarge(path: path, limit: limit)
        }
      }
    } else {
      bytes = [UInt8](data)
    }
    return try parse(bytes, path: path)
  }

  /// The longest IDX header: magic, type, rank and `maxDimensions` sizes.
  static let maxHeaderBytes = 4 + 4 * maxDimensions

  /// The file size (header and payload) the header at the start of `head` declares; throws the parse error of
  /// a header that is malformed, and returns nil when `head` ends inside the header (the full parse says so).
  static func declaredSize(_ head: [UInt8], path: String) throws -> Int? {
    guard head.count >= 4 else { return nil }
    let rank = Int(head[3])
    guard head.count >= 4 + 4 * rank || rank > maxDimensions || rank == 0 else { return nil }
    let header = try parse(Array(head.prefix(4 + 4 * rank)), path: path, headerOnly: true)
    return 4 + 4 * rank + header.count * header.type.byteSize
  }

  /// Parses the bytes of an (uncompressed) IDX file; `path` is only used in error messages.
  public static func parse(_ bytes: [UInt8], path: String) throws -> IDXArray {
    try parse(bytes, path: path, headerOnly: false)
  }

  /// `parse`, or with `headerOnly` the header alone (an empty payload, the dimensions checked).
  static func parse(_ bytes: [UInt8], path: String, headerOnly: Bool) throws -> IDXArray {
    guard bytes.count >= 4 else { throw IDXError.truncatedHeader(path: path, bytes: bytes.count, needed: 4) }
    guard bytes[0] == 0, bytes[1] == 0 else {
      throw IDXError.badMagic(path: path, first: bytes[0], second: bytes[1])
    }
    guard let type = IDXType(rawValue: bytes[2]) else {
      throw IDXError.unknownType(path: path, code: bytes[2])
    }
    let rank = Int(bytes[3])
    guard rank >= 1, rank <= maxDimensions else { throw IDXError.badDimensionCount(path: path, count: rank) }
    let headerSize = 4 + 4 * rank
    guard bytes.count >= headerSize else {
      throw IDXError.truncatedHeader(path: path, bytes: bytes.count, needed: headerSize)
    }
    let dims = (0..<rank).map { d -> Int in
      let o = 4 + 4 * d
      return Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3])
    }
    var elements = 1
    for d in dims {
      let (p, overflow) = elements.multipliedReportingOverflow(by: d)
      guard !overflow, p <= Int(Int32.max) else {
        throw IDXError.tooManyElements(path: path, dimensions: dims)
      }
      elements = p
    }
    let expected = elements * type.byteSize
    if headerOnly { return IDXArray(type: type, dimensions: dims, payload: [], path: path) }
    let actual = bytes.count - headerSize
    if actual < expected { throw IDXError.truncatedPayload(path: path, expected: expected, actual: actual) }
    if actual > expected { throw IDXError.trailingBytes(path: path, expected: expected, actual: actual) }
    return IDXArray(type: type, dimensions: dims, payload: bytes[headerSize...], path: path)
  }

  /// The elements converted to Double (exact for every IDX type).
  public func values() -> [Double] {
    let n = count
    return payload.withUnsafeBytes { raw -> [Double] in
      func be<T: FixedWidthInteger>(_ i: Int, _: T.Type) -> T {
        T(bigEndian: raw.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
      }
      switch type {
      case .uint8: return raw.map { Double($0) }
      case .int8: return raw.map { Double(Int8(bitPattern: $0)) }
      case .int16: return (0..<n).map { Double(be($0, Int16.self)) }
      case .int32: return (0..<n).map { Double(be($0, Int32.self)) }
      case .float32: return (0..<n).map { Double(Float(bitPattern: be($0, UInt32.self))) }
      case .float64: return (0..<n).map { Double(bitPattern: be($0, UInt64.self)) }
      }
    }
  }

  /// Checks that this is a 3-D unsigned-byte image array (count, rows, columns).
  func checkImages() throws {
    guard dimensions.count == 3 else { throw IDXError.imagesNot3D(path: path, dimensions: dimensions) }
    // (A file of 0 images is the data set's "holds no images"; images of 0 rows or columns are refused here.)
    guard dimensions[1] >= 1, dimensions[2] >= 1 else {
      throw IDXError.noImages(path: path, dimensions: dimensions)
    }
    guard type == .uint8 else {
      throw IDXError.wrongType(path: path, expected: "unsigned byte (0x08) pixels", found: type)
    }
  }

  /// The labels of a 1-D integer array, each checked to lie in 0...255.
  func labels() throws -> [Int] {
    guard dimensions.count == 1 else { throw IDXError.labelsNot1D(path: path, dimensions: dimensions) }
    guard type.isInteger else {
      throw IDXError.wrongType(path: path, expected: "integer labels", found: type)
    }
    if type == .uint8 { return payload.map { Int($0) } }
    let v = values()
    if let i = v.firstIndex(where: { !(0...255).contains($0) }) {
      throw IDXError.labelOutOfRange(path: path, index: i, value: v[i])
    }
    return v.map { Int($0) }
  }
}
