// A small JSON reader for the files diffusers writes. Python's `json` module writes the non-standard
// tokens NaN, Infinity and -Infinity for non-finite floats (e.g. "lambda_min_clipped": -Infinity), which
// Foundation's JSONSerialization rejects. This reader accepts standard JSON plus those three tokens,
// only where a value may stand (never inside strings).

/// A parsed JSON value, including the non-finite numbers Python writes.
public enum JSONValue: Equatable, Sendable {
  /// `null`.
  case null
  /// `true` or `false`.
  case bool(Bool)
  /// A number (NaN and ±Infinity included).
  case number(Double)
  /// A string.
  case string(String)
  /// An array.
  case array([JSONValue])
  /// An object (duplicate keys keep the last value).
  case object([String: JSONValue])

  /// A parse failure: what was wrong and the byte offset where it was found.
  public struct ParseError: Error, CustomStringConvertible, Equatable {
    /// What the reader expected or found.
    public let message: String
    /// Byte offset into the UTF-8 text.
    public let offset: Int
    /// The message with its byte offset.
    public var description: String { "invalid JSON at byte \(offset): \(message)" }
  }

  /// Parses `text`: standard JSON plus `NaN`, `Infinity` and `-Infinity` as numbers. Duplicate keys
  /// keep the last value (as Python does).
  public init(parsing text: String) throws {
    var reader = Reader(bytes: Array(text.utf8))
    reader.skipSpace()
    self = try reader.value(depth: 0)
    reader.skipSpace()
    if reader.i < reader.bytes.count { throw reader.error("unexpected text after the top-level value") }
  }

  /// The member `key` of an object (nil for a missing key or a non-object).
  public subscript(key: String) -> JSONValue? {
    if case .object(let members) = self { return members[key] }
    return nil
  }

  /// The number, if this is one.
  public var double: Double? {
    if case .number(let v) = self { return v }
    return nil
  }

  /// The string, if this is one.
  public var string: String? {
    if case .string(let v) = self { return v }
    return nil
  }

  /// The Boolean, if this is one.
  public var bool: Bool? {
    if case .bool(let v) = self { return v }
    return nil
  }

  /// The elements, if this is an array.
  public var array: [JSONValue]? {
    if case .array(let v) = self { return v }
    return nil
  }

  /// The members, if this is an object.
  public var object: [String: JSONValue]? {
    if case .object(let v) = self { return v }
    return nil
  }

  /// A short rendering for error messages (Python's spelling of non-finite numbers).
  public var summary: String {
    switch self {
    case .null: return "null"
    case .bool(let b): return b ? "true" : "false"
    case .number(let v):
      if v.isNaN { return "NaN" }
      if v.isInfinite { return v < 0 ? "-Infinity" : "Infinity" }
      if v == v.rounded() && abs(v) < 1e15 { return String(Int64(v)) }
      return "\(v)"
    case .string(let s): return "\"\(s)\""
    case .array(let a):
      return "[" + a.prefix(4).map(\.summary).joined(separator: ", ") + (a.count > 4 ? ", …]" : "]")
    case .object(let o):
      return "{" + o.keys.sorted().prefix(4).joined(separator: ", ") + (o.count > 4 ? ", …}" : "}")
    }
  }
}

private struct Reader {
  let bytes: [UInt8]
  var i = 0
  static let maxDepth = 512

  init(bytes: [UInt8]) { self.bytes = bytes }

  func error(_ message: String) -> JSONValue.ParseError { JSONValue.ParseError(message: message, offset: i) }

  mutating func skipSpace() {
    while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
  }

  /// Consumes `word` if the text continues with it.
  mutating func consume(_ word: String) -> Bool {
    let w = Array(word.utf8)
    guard i + w.count <= bytes.count, Array(bytes[i..<(i + w.count)]) == w else { return false }
    i += w.count
    return true
  }

  mutating func value(depth: Int) throws -> JSONValue {
    guard depth < Self.maxDepth else { throw error("nested deeper than \(Self.maxDepth) levels") }
    guard i < bytes.count else { throw error("unexpected end of text, expected a value") }
    switch bytes[i] {
    case UInt8(ascii: "{"): return try object(depth: depth)
    case UInt8(ascii: "["): return try array(depth: depth)
    case UInt8(ascii: "\""): return .string(try string())
    case UInt8(ascii: "t"): if consume("true") { return .bool(true) }
    case UInt8(ascii: "f"): if consume("false") { return .bool(false) }
    case UInt8(ascii: "n"): if consume("null") { return .null }
    case UInt8(ascii: "N"): if consume("NaN") { return .number(.nan) }
    case UInt8(ascii: "I"): if consume("Infinity") { return .number(.infinity) }
    case UInt8(ascii: "-"):
      if consume("-Infinity") { return .number(-.infinity) }
      return try number()
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
    default: break
    }
    throw error("unexpected character '\(Character(Unicode.Scalar(bytes[i])))', expected a value")
  }

  mutating func object(depth: Int) throws -> JSONValue {
    i += 1
    var members: [String: JSONValue] = [:]
    skipSpace()
    if consume("}") { return .object(members) }
    while true {
      skipSpace()
      guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw error("expected a string key") }
      let key = try string()
      skipSpace()
      guard consume(":") else { throw error("expected ':' after key \"\(key)\"") }
      skipSpace()
      members[key] = try value(depth: depth + 1)
      skipSpace()
      if consume(",") { continue }
      if consume("}") { return .object(members) }
      throw error("expected ',' or '}' in an object")
    }
  }

  mutating func array(depth: Int) throws -> JSONValue {
    i += 1
    var elements: [JSONValue] = []
    skipSpace()
    if consume("]") { return .array(elements) }
    while true {
      skipSpace()
      elements.append(try value(depth: depth + 1))
      skipSpace()
      if consume(",") { continue }
      if consume("]") { return .array(elements) }
      throw error("expected ',' or ']' in an array")
    }
  }

  mutating func number() throws -> JSONValue {
    // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
    let start = i
    func digits() -> Int {
      let s = i
      while i < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]) { i += 1 }
      return i - s
    }
    if bytes[i] == UInt8(ascii: "-") { i += 1 }
    let intStart = i
    guard digits() > 0 else { throw error("expected digits in a number") }
    if bytes[intStart] == UInt8(ascii: "0") && i - intStart > 1 { throw error("leading zero in a number") }
    if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
      i += 1
      guard digits() > 0 else { throw error("expected digits after '.'") }
    }
    if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
      i += 1
      if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
      guard digits() > 0 else { throw error("expected digits in an exponent") }
    }
    let text = String(decoding: bytes[start..<i], as: UTF8.self)
    guard let v = Double(text) else { throw error("unreadable number \(text)") }
    return .number(v)
  }

  mutating func hex4() throws -> UInt32 {
    guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16)
    else { throw error("expected four hex digits after \\u") }
    i += 4
    return v
  }

  mutating func string() throws -> String {
    i += 1
    var out: [UInt8] = []
    while true {
      guard i < bytes.count else { throw error("unterminated string") }
      let c = bytes[i]
      i += 1
      switch c {
      case UInt8(ascii: "\""):
        return String(decoding: out, as: UTF8.self)
      case UInt8(ascii: "\\"):
        guard i < bytes.count else { throw error("unterminated escape") }
        let e = bytes[i]
        i += 1
        switch e {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
          var scalar = try hex4()
          if (0xD800..<0xDC00).contains(scalar) {
            // A high surrogate must be followed by \u and a low surrogate.
            guard consume("\\u") else { throw error("unpaired surrogate in a \\u escape") }
            let low = try hex4()
            guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in a \\u escape") }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
          }
          guard let u = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
          out.append(contentsOf: Array(String(Character(u)).utf8))
        default:
          throw error("invalid escape '\\\(Character(Unicode.Scalar(e)))'")
        }
      case 0x00..<0x20:
        throw error("control character in a string")
      default:
        out.append(c)
      }
    }
  }
}
