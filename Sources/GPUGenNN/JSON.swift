// The one JSON parser of gpugen (RFC 8259), with two options: safetensors headers reject duplicate keys
// (Foundation's JSONSerialization silently keeps one of them), and diffusers' config files may hold the
// non-standard NaN, Infinity and -Infinity that Python writes. Object keys stay in file order and numbers
// stay as their source text, so integers are read without rounding.

/// A parsed JSON value; objects keep their members in source order.
indirect enum JSONNode {
  case object([(key: String, value: JSONNode)])
  case array([JSONNode])
  case string(String)
  /// The number's source text (already checked against the JSON number grammar).
  case number(String)
  case bool(Bool)
  case null

  /// A short name of the value's type, for error messages.
  var kind: String {
    switch self {
    case .object: return "object"
    case .array: return "array"
    case .string: return "string"
    case .number(let text): return "number \(text)"
    case .bool(let b): return "boolean \(b)"
    case .null: return "null"
    }
  }
}

/// Why a JSON text did not parse: a message and the byte offset, or a duplicate key with its location.
struct JSONParseError: Error {
  let offset: Int
  let reason: String
  /// The repeated key and the member path it sits in, when that is the problem.
  var duplicate: (key: String, context: String)?
}

/// Parses one JSON document from UTF-8 bytes (already validated as UTF-8), allowing surrounding whitespace.
struct JSONParser {
  /// Deepest nesting of arrays and objects accepted (serde_json's default limit is 128).
  static let maxDepth = 128

  private let bytes: UnsafeRawBufferPointer
  private let rejectDuplicateKeys: Bool
  private let allowNonFinite: Bool
  private var index = 0
  private var depth = 0
  private var subject = "the header"

  /// Parses `bytes` as a single JSON value. Duplicate keys are an error when `rejectDuplicateKeys`
  /// (else both members are kept, in order); `allowNonFinite` accepts NaN, Infinity and -Infinity.
  /// `subject` names the document in messages ("the header" of a safetensors file).
  static func parse(
    _ bytes: UnsafeRawBufferPointer, rejectDuplicateKeys: Bool = true, allowNonFinite: Bool = false,
    subject: String = "the header"
  ) throws -> JSONNode {
    var parser = JSONParser(
      bytes: bytes, rejectDuplicateKeys: rejectDuplicateKeys, allowNonFinite: allowNonFinite)
    parser.subject = subject
    parser.skipWhitespace()
    let value = try parser.parseValue(context: "the header")
    parser.skipWhitespace()
    if parser.index < bytes.count { throw parser.error("unexpected data after the top-level value") }
    return value
  }

  private init(bytes: UnsafeRawBufferPointer, rejectDuplicateKeys: Bool, allowNonFinite: Bool) {
    self.bytes = bytes
    self.rejectDuplicateKeys = rejectDuplicateKeys
    self.allowNonFinite = allowNonFinite
  }

  private func error(_ reason: String) -> JSONParseError { JSONParseError(offset: index, reason: reason) }

  private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

  private mutating func skipWhitespace() {
    while let c = current, c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d { index += 1 }
  }

  private mutating func expect(_ literal: StaticString, _ value: JSONNode) throws -> JSONNode {
    let text = UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
    guard index + text.count <= bytes.count, text.indices.allSatisfy({ bytes[index + $0] == text[$0] })
    else { throw error("invalid literal") }
    index += text.count
    return value
  }

  /// `context` names the enclosing object member, for duplicate-key errors.
  private mutating func parseValue(context: String) throws -> JSONNode {
    guard let c = current else { throw error("unexpected end of \(subject)") }
    if allowNonFinite {
      switch c {
      case UInt8(ascii: "N"): return try expect("NaN", .number("NaN"))
      case UInt8(ascii: "I"): return try expect("Infinity", .number("Infinity"))
      case UInt8(ascii: "-") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "I"):
        return try expect("-Infinity", .number("-Infinity"))
      default: break
      }
    }
    switch c {
    case UInt8(ascii: "{"): return try parseObject(context: context)
    case UInt8(ascii: "["): return try parseArray(context: context)
    case UInt8(ascii: "\""): return .string(try parseString())
    case UInt8(ascii: "t"): return try expect("true", .bool(true))
    case UInt8(ascii: "f"): return try expect("false", .bool(false))
    case UInt8(ascii: "n"): return try expect("null", .null)
    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
    default: throw error("unexpected character '\(Character(Unicode.Scalar(c)))'")
    }
  }

  private mutating func enter() throws {
    depth += 1
    if depth > Self.maxDepth { throw error("nesting deeper than \(Self.maxDepth) levels") }
  }

  private mutating func parseObject(context: String) throws -> JSONNode {
    try enter()
    index += 1  // {
    var members: [(key: String, value: JSONNode)] = []
    var seen = Set<String>()
    skipWhitespace()
    if current == UInt8(ascii: "}") {
      index += 1
      depth -= 1
      return .object(members)
    }
    while true {
      skipWhitespace()
      guard current == UInt8(ascii: "\"") else { throw error("expected a string key") }
      let keyOffset = index
      let key = try parseString()
      // Swift strings compare by canonical equivalence, so keys that differ only in Unicode
      // normalisation also count as duplicates (they would collide in a Swift dictionary).
      if !seen.insert(key).inserted && rejectDuplicateKeys {
        var e = JSONParseError(offset: keyOffset, reason: "duplicate key \"\(key)\"")
        e.duplicate = (key, context)
        throw e
      }
      skipWhitespace()
      guard current == UInt8(ascii: ":") else { throw error("expected ':' after a key") }
      index += 1
      skipWhitespace()
      let value = try parseValue(context: context == "the header" ? "'\(key)'" : "\(context).'\(key)'")
      members.append((key, value))
      skipWhitespace()
      switch current {
      case UInt8(ascii: ","): index += 1
      case UInt8(ascii: "}"):
        index += 1
        depth -= 1
        return .object(members)
      default: throw error("expected ',' or '}' in an object")
      }
    }
  }

  private mutating func parseArray(context: String) throws -> JSONNode {
    try enter()
    index += 1  // [
    var elements: [JSONNode] = []
    skipWhitespace()
    if current == UInt8(ascii: "]") {
      index += 1
      depth -= 1
      return .array(elements)
    }
    while true {
      skipWhitespace()
      elements.append(try parseValue(context: context))
      skipWhitespace()
      switch current {
      case UInt8(ascii: ","): index += 1
      case UInt8(ascii: "]"):
        index += 1
        depth -= 1
        return .array(elements)
      default: throw error("expected ',' or ']' in an array")
      }
    }
  }

  private mutating func parseNumber() throws -> JSONNode {
    let start = index
    func digits() -> Int {
      let s = index
      while let c = current, c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") { index += 1 }
      return index - s
    }
    if current == UInt8(ascii: "-") { index += 1 }
    if current == UInt8(ascii: "0") {
      index += 1
    } else if digits() == 0 {
      throw error("invalid number")
    }
    if current == UInt8(ascii: ".") {
      index += 1
      guard digits() > 0 else { throw error("invalid number: no digits after '.'") }
    }
    if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
      index += 1
      if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
      guard digits() > 0 else { throw error("invalid number: no digits in the exponent") }
    }
    if let c = current, c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
      throw error("invalid number: leading zero")
    }
    return .number(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self))
  }

  private mutating func hex4() throws -> UInt32 {
    guard index + 4 <= bytes.count else { throw error("truncated \\u escape") }
    var v: UInt32 = 0
    for _ in 0..<4 {
      let c = bytes[index]
      let d: UInt8
      switch c {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
      case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
      default: throw error("invalid hex digit in a \\u escape")
      }
      v = v << 4 | UInt32(d)
      index += 1
    }
    return v
  }

  private mutating func parseString() throws -> String {
    index += 1  // opening quote
    var out: [UInt8] = []
    var runStart = index
    while true {
      guard let c = current else { throw error("unterminated string") }
      if c == UInt8(ascii: "\"") {
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<index]))
        index += 1
        return String(decoding: out, as: UTF8.self)
      }
      if c < 0x20 { throw error("unescaped control character in a string") }
      if c != UInt8(ascii: "\\") {
        index += 1
        continue
      }
      out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<index]))
      index += 1
      guard let e = current else { throw error("unterminated escape") }
      index += 1
      switch e {
      case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
      case UInt8(ascii: "b"): out.append(0x08)
      case UInt8(ascii: "f"): out.append(0x0c)
      case UInt8(ascii: "n"): out.append(0x0a)
      case UInt8(ascii: "r"): out.append(0x0d)
      case UInt8(ascii: "t"): out.append(0x09)
      case UInt8(ascii: "u"):
        var scalar = try hex4()
        if (0xd800...0xdbff).contains(scalar) {
          guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
            bytes[index + 1] == UInt8(ascii: "u")
          else { throw error("lone leading surrogate in a \\u escape") }
          index += 2
          let low = try hex4()
          guard (0xdc00...0xdfff).contains(low) else { throw error("invalid surrogate pair in a \\u escape") }
          scalar = 0x10000 + ((scalar - 0xd800) << 10) + (low - 0xdc00)
        } else if (0xdc00...0xdfff).contains(scalar) {
          throw error("lone trailing surrogate in a \\u escape")
        }
        UTF8.encode(Unicode.Scalar(scalar)!) { out.append($0) }
      default: throw error("invalid escape '\\\(Character(Unicode.Scalar(e)))'")
      }
      runStart = index
    }
  }
}

/// JSON text for values written into safetensors headers, escaped like serde_json (the reference
/// writer): `"` and `\` escaped, control characters as `\b \f \n \r \t` or `\u00XX`, all else verbatim.
enum JSONWriter {
  /// `s` as a quoted JSON string.
  static func quote(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\u{08}": out += "\\b"
      case "\u{0C}": out += "\\f"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case "\u{00}"..."\u{1F}":
        let hex = String(scalar.value, radix: 16)
        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out + "\""
  }
}
