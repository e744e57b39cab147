// safetensors (https://github.com/huggingface/safetensors) reading and writing: an 8-byte little-endian
// header length N, N bytes of JSON header, then the tensors' bytes. Every tensor is read into host
// Float32; files are validated as strictly as the reference reader, plus duplicate keys are rejected.

import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// A host tensor: Float32 values in row-major order with their shape.
public struct TensorData: Equatable, Sendable {
  /// Dimensions, outermost first; `[]` is a scalar (one value).
  public var shape: [Int]
  /// The values, row-major; `values.count` is the product of `shape`.
  public var values: [Float]

  /// A tensor with `shape` and row-major `values` (checked when written or uploaded).
  public init(shape: [Int], values: [Float]) {
    self.shape = shape
    self.values = values
  }
}

/// The element type used when writing a safetensors file.
public enum SafeTensorsDType: String, CaseIterable, Sendable {
  /// IEEE binary32, stored exactly.
  case f32 = "F32"
  /// IEEE binary16, rounded to nearest even (overflow becomes ±inf).
  case f16 = "F16"
  /// bfloat16, rounded to nearest even (overflow becomes ±inf).
  case bf16 = "BF16"

  /// Bytes per element.
  public var size: Int { self == .f32 ? 4 : 2 }
}

/// The contents of a safetensors file.
public struct SafeTensorsFile: Equatable, Sendable {
  /// Every tensor by name, converted to Float32.
  public var tensors: [String: TensorData]
  /// The `__metadata__` string map (empty when the file has none).
  public var metadata: [String: String]
  /// Tensor names in file order: by data offsets, ties (empty tensors) in header order.
  public var order: [String]

  /// A file's contents from its parts.
  public init(tensors: [String: TensorData], metadata: [String: String] = [:], order: [String]) {
    self.tensors = tensors
    self.metadata = metadata
    self.order = order
  }
}

/// Reads and writes safetensors files.
///
/// Reading accepts F32, F16 and BF16 (exact), F64 (rounded to nearest Float32) and the integer and BOOL
/// dtypes (converted to the nearest Float32, exact up to 2^24), so a whole PyTorch checkpoint loads even
/// when it holds integer buffers. FP8, FP6, FP4 and C64 tensors are rejected as unsupported. Writing
/// matches the reference writer byte for byte when there is at most one metadata entry (with more, the
/// reference orders metadata by hash; gpugen sorts it by key).
public enum SafeTensors {
  /// The largest header accepted, as in the reference implementation.
  public static let maxHeaderLength = 100_000_000

  /// Reads the safetensors file at `url`.
  public static func read(contentsOf url: URL) throws -> SafeTensorsFile {
    let data: Data
    do {
      // Mapped, so nothing is copied before the header has been checked.
      data = try Data(contentsOf: url, options: .alwaysMapped)
    } catch {
      throw SafeTensorsError.io(path: url.path, operation: "read", reason: "\(error.localizedDescription)")
    }
    return try read(bytes: data)
  }

  /// Reads a safetensors file held in memory (`[UInt8]`, `Data`, or a raw buffer).
  public static func read(bytes: some ContiguousBytes) throws -> SafeTensorsFile {
    try bytes.withUnsafeBytes { try decode($0) }
  }

  /// The bytes of a safetensors file holding `tensors` (sorted by name, as the reference writer does)
  /// and `metadata`, with every tensor stored as `dtype`.
  public static func encode(
    _ tensors: [(name: String, tensor: TensorData)], metadata: [String: String] = [:],
    dtype: SafeTensorsDType = .f32
  ) throws -> [UInt8] {
    let layout = try Layout(tensors, metadata: metadata, dtype: dtype)
    var out: [UInt8] = []
    out.reserveCapacity(layout.fileSize)
    try layout.serialize { out.append(contentsOf: $0) }
    return out
  }

  /// Writes `tensors` and `metadata` to `url` atomically (a temporary file in the same folder, renamed
  /// over `url` once complete); the layout is that of `encode`.
  public static func write(
    _ tensors: [(name: String, tensor: TensorData)], metadata: [String: String] = [:],
    dtype: SafeTensorsDType = .f32, to url: URL
  ) throws {
    try write(
      lazy: tensors.map { ($0.name, LazyTensor($0.tensor)) }, metadata: metadata, dtype: dtype, to: url)
  }

  /// `write` with each tensor's values fetched just before its bytes are written (one host copy at a
  /// time); a fetch that returns the wrong number of values fails the write and leaves `url` untouched.
  public static func write(
    lazy tensors: [(name: String, tensor: LazyTensor)], metadata: [String: String] = [:],
    dtype: SafeTensorsDType = .f32, to url: URL
  ) throws {
    let layout = try Layout(lazy: tensors, metadata: metadata, dtype: dtype)
    let path = url.path
    let temp =
      url.deletingLastPathComponent().appendingPathComponent(
        ".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
      ).path
    func fail(_ operation: String, _ target: String) -> SafeTensorsError {
      .io(path: target, operation: operation, reason: String(cString: strerror(errno)))
    }
    let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw fail("create", temp) }
    var done = false
    defer {
      if !done { unlink(temp) }
    }
    do {
      try layout.serialize { chunk in
        var offset = 0
        while offset < chunk.count {
          let n = posixWrite(fd, chunk.baseAddress! + offset, chunk.count - offset)
          if n < 0 {
            if errno == EINTR { continue }
            throw fail("write", temp)
          }
          offset += n
        }
      }
      guard fsync(fd) == 0 else { throw fail("sync", temp) }
    } catch {
      close(fd)
      throw error
    }
    guard close(fd) == 0 else { throw fail("close", temp) }
    guard rename(temp, path) == 0 else { throw fail("rename \(temp) to", path) }
    done = true
  }

  // MARK: Reading

  /// The dtypes gpugen converts to Float32, by safetensors name.
  enum StoredDType: String, CaseIterable {
    case bool = "BOOL", u8 = "U8", i8 = "I8", i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
    case i32 = "I32", u32 = "U32", f32 = "F32", f64 = "F64", i64 = "I64", u64 = "U64"

    /// Bytes per element.
    var size: Int {
      switch self {
      case .bool, .u8, .i8: return 1
      case .i16, .u16, .f16, .bf16: return 2
      case .i32, .u32, .f32: return 4
      case .f64, .i64, .u64: return 8
      }
    }
  }

  /// The other dtypes the safetensors format defines; files holding them are rejected as unsupported.
  static let unsupportedDTypes: Set<String> = [
    "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F4", "F6_E2M3", "F6_E3M2", "C64",
  ]

  /// One validated header entry.
  private struct Entry {
    var name: String
    var dtype: StoredDType
    var shape: [Int]
    var count: Int
    var begin: Int
    var end: Int
    var headerIndex: Int
  }

  private static func decode(_ file: UnsafeRawBufferPointer) throws -> SafeTensorsFile {
    guard file.count >= 8 else { throw SafeTensorsError.fileTooShort(size: file.count) }
    let length = UInt64(littleEndian: file.loadUnaligned(as: UInt64.self))
    guard length <= UInt64(maxHeaderLength) else {
      throw SafeTensorsError.headerTooLarge(length: length, limit: maxHeaderLength)
    }
    let headerLength = Int(length)
    guard headerLength <= file.count - 8 else {
      throw SafeTensorsError.headerPastEnd(length: length, fileSize: file.count)
    }
    let header = UnsafeRawBufferPointer(rebasing: file[8..<(8 + headerLength)])
    let hadError = transcode(
      header.makeIterator(), from: UTF8.self, to: UTF32.self, stoppingOnError: true, into: { _ in })
    guard !hadError else { throw SafeTensorsError.headerNotUTF8 }

    let json: JSONNode
    do { json = try JSONParser.parse(header) } catch let e as JSONParseError {
      if let d = e.duplicate {
        throw SafeTensorsError.duplicateKey(key: d.key, in: d.context, offset: e.offset)
      }
      throw SafeTensorsError.invalidJSON(offset: e.offset, reason: e.reason)
    }
    guard case .object(let members) = json else { throw SafeTensorsError.headerNotObject(found: json.kind) }
    var metadata: [String: String] = [:]
    var entries: [Entry] = []
    for (index, member) in members.enumerated() {
      if member.key == "__metadata__" {
        metadata = try parseMetadata(member.value)
      } else {
        entries.append(try parseEntry(name: member.key, member.value, headerIndex: index))
      }
    }

    let data = UnsafeRawBufferPointer(rebasing: file[(8 + headerLength)...])
    entries.sort { ($0.begin, $0.end, $0.headerIndex) < ($1.begin, $1.end, $1.headerIndex) }
    try checkTiling(entries, dataLength: data.count)

    var tensors: [String: TensorData] = [:]
    for e in entries {
      let bytes = UnsafeRawBufferPointer(rebasing: data[e.begin..<e.end])
      tensors[e.name] = TensorData(shape: e.shape, values: convert(bytes, e.dtype, count: e.count))
    }
    return SafeTensorsFile(tensors: tensors, metadata: metadata, order: entries.map(\.name))
  }

  private static func parseMetadata(_ value: JSONNode) throws -> [String: String] {
    if case .null = value { return [:] }  // the reference reads `null` as no metadata
    guard case .object(let members) = value else {
      throw SafeTensorsError.metadataNotObject(found: value.kind)
    }
    var metadata: [String: String] = [:]
    for (key, v) in members {
      guard case .string(let s) = v else { throw SafeTensorsError.nonStringMetadata(key: key, found: v.kind) }
      metadata[key] = s
    }
    return metadata
  }

  /// A JSON integer literal's value (nil when it does not fit in `Int`) and text; nil for anything else.
  private static func integer(_ value: JSONNode) -> (value: Int?, text: String)? {
    guard case .number(let text) = value, !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" })
    else { return nil }
    return (Int(text), text)
  }

  private static func parseEntry(name: String, _ value: JSONNode, headerIndex: Int) throws -> Entry {
    func invalid(_ reason: String) -> SafeTensorsError { .invalidTensorEntry(name: name, reason: reason) }
    guard case .object(let fields) = value else { throw invalid("expected an object, found \(value.kind)") }
    func field(_ key: String) throws -> JSONNode {
      guard let v = fields.first(where: { $0.key == key })?.value else { throw invalid("missing \"\(key)\"") }
      return v
    }
    // Types of all three fields first, then their values.
    guard case .string(let dtypeName) = try field("dtype") else {
      throw invalid("\"dtype\" must be a string, found \(try field("dtype").kind)")
    }
    let shapeValue = try field("shape")
    guard case .array(let dimValues) = shapeValue else {
      throw invalid("\"shape\" must be an array of integers, found \(shapeValue.kind)")
    }
    let dims = dimValues.map(integer)
    guard dims.allSatisfy({ $0 != nil }) else {
      throw invalid(
        "\"shape\" must be an array of integers, found [\(dimValues.map(\.kind).joined(separator: ", "))]")
    }
    let offsetsValue = try field("data_offsets")
    guard case .array(let offsetValues) = offsetsValue, offsetValues.count == 2,
      let b = integer(offsetValues[0])?.value, let e = integer(offsetValues[1])?.value, b >= 0, e >= 0
    else {
      throw invalid("\"data_offsets\" must be two non-negative integers, found \(describe(offsetsValue))")
    }

    guard let dtype = StoredDType(rawValue: dtypeName) else {
      if unsupportedDTypes.contains(dtypeName) {
        throw SafeTensorsError.unsupportedDType(name: name, dtype: dtypeName)
      }
      throw SafeTensorsError.unknownDType(name: name, dtype: dtypeName)
    }
    let shapeText = "[" + dims.map { $0!.text }.joined(separator: ", ") + "]"
    var shape: [Int] = []
    var count = 1
    var overflow = false
    for dim in dims {
      guard let d = dim!.value else {
        if dim!.text.hasPrefix("-") { throw SafeTensorsError.negativeDimension(name: name, shape: shapeText) }
        throw SafeTensorsError.shapeOverflow(name: name, shape: shapeText)
      }
      guard d >= 0 else { throw SafeTensorsError.negativeDimension(name: name, shape: shapeText) }
      shape.append(d)
      let (product, o) = count.multipliedReportingOverflow(by: d)
      overflow = overflow || o
      count = product
    }
    let (byteCount, o) = count.multipliedReportingOverflow(by: dtype.size)
    if overflow || o { throw SafeTensorsError.shapeOverflow(name: name, shape: shapeText) }
    guard b <= e else { throw SafeTensorsError.invalidOffsets(name: name, begin: b, end: e) }
    guard e - b == byteCount else {
      throw SafeTensorsError.sizeMismatch(
        name: name, dtype: dtypeName, shape: shape, expected: byteCount, actual: e - b)
    }
    return Entry(
      name: name, dtype: dtype, shape: shape, count: count, begin: b, end: e, headerIndex: headerIndex)
  }

  /// JSON-like text of a value, for error messages.
  private static func describe(_ value: JSONNode) -> String {
    switch value {
    case .array(let elements): return "[" + elements.map(describe).joined(separator: ", ") + "]"
    case .number(let text): return text
    case .string(let s): return JSONWriter.quote(s)
    default: return value.kind
    }
  }

  /// Checks that the byte ranges, sorted by begin, tile `0..<dataLength` exactly.
  private static func checkTiling(_ entries: [Entry], dataLength: Int) throws {
    var cursor = 0
    var previous: Entry?
    for e in entries {
      if e.begin < cursor, let p = previous {
        throw SafeTensorsError.overlappingTensors(
          first: p.name, firstOffsets: [p.begin, p.end], second: e.name, secondOffsets: [e.begin, e.end])
      }
      if e.begin > cursor {
        throw SafeTensorsError.holeBetweenTensors(
          after: previous?.name, before: e.name, begin: cursor, end: e.begin)
      }
      cursor = e.end
      previous = e
    }
    if cursor > dataLength, let p = previous {
      throw SafeTensorsError.dataTruncated(name: p.name, end: cursor, dataLength: dataLength)
    }
    if cursor < dataLength {
      throw SafeTensorsError.trailingBytes(after: previous?.name, end: cursor, dataLength: dataLength)
    }
  }

  /// Converts `count` little-endian elements of `dtype` to Float32.
  static func convert(_ bytes: UnsafeRawBufferPointer, _ dtype: StoredDType, count: Int) -> [Float] {
    func map<T: FixedWidthInteger>(_: T.Type, _ f: (T) -> Float) -> [Float] {
      (0..<count).map { i in
        f(T(littleEndian: bytes.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self)))
      }
    }
    switch dtype {
    case .f32:
      #if _endian(little)
        return [Float](unsafeUninitializedCapacity: count) { out, initialized in
          UnsafeMutableRawBufferPointer(out).copyMemory(from: bytes)
          initialized = count
        }
      #else
        return map(UInt32.self) { Float(bitPattern: $0) }
      #endif
    case .f16: return map(UInt16.self, HalfBits.float(fromHalf:))
    case .bf16: return map(UInt16.self, HalfBits.float(fromBFloat:))
    case .f64: return map(UInt64.self) { Float(Double(bitPattern: $0)) }
    case .bool: return map(UInt8.self) { $0 == 0 ? 0 : 1 }
    case .u8: return map(UInt8.self) { Float($0) }
    case .i8: return map(Int8.self) { Float($0) }
    case .i16: return map(Int16.self) { Float($0) }
    case .u16: return map(UInt16.self) { Float($0) }
    case .i32: return map(Int32.self) { Float($0) }
    case .u32: return map(UInt32.self) { Float($0) }
    case .i64: return map(Int64.self) { Float($0) }
    case .u64: return map(UInt64.self) { Float($0) }
    }
  }

  // MARK: Writing

  /// A validated, sorted set of tensors with its header, ready to serialize.
  private struct Layout {
    var header: [UInt8]
    var tensors: [(name: String, tensor: LazyTensor)]
    var dtype: SafeTensorsDType
    var dataSize: Int

    var fileSize: Int { 8 + header.count + dataSize }

    init(_ tensors: [(name: String, tensor: TensorData)], metadata: [String: String], dtype: SafeTensorsDType)
      throws
    {
      try self.init(lazy: tensors.map { ($0.name, LazyTensor($0.tensor)) }, metadata: metadata, dtype: dtype)
    }

    init(
      lazy tensors: [(name: String, tensor: LazyTensor)], metadata: [String: String], dtype: SafeTensorsDType
    )
      throws
    {
      var names = Set<String>()
      for (name, t) in tensors {
        guard name != "__metadata__" else { throw SafeTensorsError.reservedTensorName(name) }
        guard names.insert(name).inserted else { throw SafeTensorsError.duplicateTensorName(name) }
        _ = try t.elementCount(name: name, dtype: dtype)
        if let values = t.known { try t.check(values, name: name) }
      }
      // The reference sorts by dtype alignment, then by name (byte order); here every tensor has one dtype.
      let sorted = tensors.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
      var parts: [String] = []
      if !metadata.isEmpty {
        let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let entries = keys.map { JSONWriter.quote($0) + ":" + JSONWriter.quote(metadata[$0]!) }
        parts.append("\"__metadata__\":{" + entries.joined(separator: ",") + "}")
      }
      var offset = 0
      for (name, t) in sorted {
        let size = try t.elementCount(name: name, dtype: dtype) * dtype.size
        let shape = t.shape.map(String.init).joined(separator: ",")
        parts.append(
          JSONWriter.quote(name) + ":{\"dtype\":\"\(dtype.rawValue)\",\"shape\":[\(shape)],"
            + "\"data_offsets\":[\(offset),\(offset + size)]}")
        offset += size
      }
      var header = Array(("{" + parts.joined(separator: ",") + "}").utf8)
      // Pad with spaces so the data starts 8-byte aligned, like the reference writer.
      header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8))
      self.header = header
      self.tensors = sorted
      self.dtype = dtype
      self.dataSize = offset
    }

    /// Passes the file's bytes, in order, to `sink`, fetching one tensor's values at a time.
    func serialize(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
      try withUnsafeBytes(of: UInt64(header.count).littleEndian) { try sink($0) }
      try header.withUnsafeBytes { try sink($0) }
      for (name, t) in tensors {
        let values = try t.known ?? t.fetch()
        if t.known == nil { try t.check(values, name: name) }
        switch dtype {
        case .f32:
          #if _endian(little)
            try values.withUnsafeBytes { try sink($0) }
          #else
            try values.map { $0.bitPattern.littleEndian }.withUnsafeBytes { try sink($0) }
          #endif
        case .f16:
          try values.map { HalfBits.half(fromFloat: $0).littleEndian }.withUnsafeBytes { try sink($0) }
        case .bf16:
          try values.map { HalfBits.bfloat(fromFloat: $0).littleEndian }.withUnsafeBytes { try sink($0) }
        }
      }
    }
  }
}

/// A tensor to write whose values are fetched only when its bytes are written (e.g. downloaded from a
/// device one tensor at a time), so that writing a file never holds more than one tensor's host copy.
public struct LazyTensor {
  /// Dimensions, outermost first.
  public var shape: [Int]
  /// Returns the row-major values (`shape`'s element count of them; checked when written).
  public var fetch: () throws -> [Float]
  /// Values already on the host.
  var known: [Float]?

  /// A tensor of `shape` whose values `fetch` returns when the file is written.
  public init(shape: [Int], fetch: @escaping () throws -> [Float]) {
    self.shape = shape
    self.fetch = fetch
  }

  init(_ t: TensorData) {
    shape = t.shape
    fetch = { t.values }
    known = t.values
  }

  /// The element count of `shape`; throws for negative dimensions or a byte size that overflows.
  func elementCount(name: String, dtype: SafeTensorsDType) throws -> Int {
    let shapeText = "\(shape)"
    var count = 1
    for d in shape {
      guard d >= 0 else { throw SafeTensorsError.negativeDimension(name: name, shape: shapeText) }
      let (p, o) = count.multipliedReportingOverflow(by: d)
      guard !o, !p.multipliedReportingOverflow(by: dtype.size).overflow else {
        throw SafeTensorsError.shapeOverflow(name: name, shape: shapeText)
      }
      count = p
    }
    return count
  }

  func check(_ values: [Float], name: String) throws {
    let count = shape.reduce(1, *)
    guard values.count == count else {
      throw SafeTensorsError.valueCountMismatch(
        name: name, shape: shape, expected: count, count: values.count)
    }
  }
}

/// write(2), named apart from `SafeTensors.write`.
private func posixWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
  write(fd, bytes, count)
}

extension Tensor {
  /// Uploads host tensor data to `device`.
  public convenience init(_ data: TensorData, on device: Device) throws {
    try self.init(data.values, shape: data.shape, on: device)
  }

  /// Downloads this tensor's shape and values to the host.
  public func toTensorData() throws -> TensorData { TensorData(shape: shape, values: try toArray()) }
}
