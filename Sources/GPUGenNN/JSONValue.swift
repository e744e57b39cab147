// JSON values of the files diffusers writes. Python's `json` module writes the non-standard tokens NaN,
// Infinity and -Infinity for non-finite floats (e.g. "lambda_min_clipped": -Infinity), which Foundation's
// JSONSerialization rejects. Parsing goes through gpugen's one parser (JSON.swift) with those three tokens
// allowed where a value may stand (never inside strings).

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
    let node: JSONNode
    do {
      node = try Array(text.utf8).withUnsafeBytes {
        try JSONParser.parse($0, rejectDuplicateKeys: false, allowNonFinite: true, subject: "the text")
      }
    } catch let e as JSONParseError {
      throw ParseError(message: e.reason, offset: e.offset)
    }
    self.init(node)
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

extension JSONValue {
  /// Converts a parsed node (later duplicate keys win, as in Python).
  init(_ node: JSONNode) {
    switch node {
    case .null: self = .null
    case .bool(let b): self = .bool(b)
    case .number(let text): self = .number(Double(text) ?? .nan)
    case .string(let s): self = .string(s)
    case .array(let a): self = .array(a.map(JSONValue.init))
    case .object(let members):
      var d: [String: JSONValue] = [:]
      for m in members { d[m.key] = JSONValue(m.value) }
      self = .object(d)
    }
  }
}
