// NumPy .npy files (version 1.0/2.0/3.0, little-endian float32/float64, C order) for interchange.
import Foundation

/// Reads and writes NumPy arrays.
public enum NPY {
  /// Writes float32 values with `shape` as a C-order .npy file.
  public static func write(_ values: [Float], shape: [Int], to url: URL) throws {
    guard values.count == shape.reduce(1, *) else {
      throw ModelError.input("npy: \(values.count) values do not fill shape \(shape)")
    }
    let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
    var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
    let unpadded = 10 + header.utf8.count + 1
    header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
    var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
    let len = UInt16(header.utf8.count)
    data.append(contentsOf: [UInt8(len & 0xff), UInt8(len >> 8)])
    data.append(contentsOf: Array(header.utf8))
    values.withUnsafeBytes { data.append(contentsOf: $0) }
    try data.write(to: url, options: .atomic)
  }

  /// Reads a .npy file of float32 or float64 (converted) values in C order.
  public static func read(from url: URL) throws -> (values: [Float], shape: [Int]) {
    guard let data = try? Data(contentsOf: url) else { throw ModelError.missing(url.path) }
    return try parse([UInt8](data), path: url.path)
  }

  /// Parses the bytes of a .npy file (as `read(from:)`); `path` names the file in errors.
  public static func parse(_ b: [UInt8], path: String) throws -> (values: [Float], shape: [Int]) {
    func bad(_ why: String) -> ModelError { .malformed(path, why) }
    guard b.count >= 10, b[0] == 0x93, Array(b[1..<6]) == Array("NUMPY".utf8) else {
      throw bad("not a .npy file")
    }
    let major = b[6]
    let (hlen, start): (Int, Int)
    if major == 1 {
      (hlen, start) = (Int(b[8]) | Int(b[9]) << 8, 10)
    } else if major == 2 || major == 3, b.count >= 12 {
      (hlen, start) = (Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24, 12)
    } else {
      throw bad("unsupported .npy version \(major)")
    }
    guard start + hlen <= b.count else { throw bad("header runs past the end of the file") }
    let header = String(decoding: b[start..<(start + hlen)], as: UTF8.self)
    func field(_ key: String) -> String? {
      guard let r = header.range(of: "'\(key)':") else { return nil }
      return String(header[r.upperBound...]).trimmingCharacters(in: .whitespaces)
    }
    guard let descr = field("descr"), let fortran = field("fortran_order"), let shapeText = field("shape")
    else {
      throw bad("header lacks descr, fortran_order or shape")
    }
    guard fortran.hasPrefix("False") else { throw bad("Fortran-order arrays are not supported") }
    let isF4 = descr.hasPrefix("'<f4'") || descr.hasPrefix("'=f4'")
    let isF8 = descr.hasPrefix("'<f8'") || descr.hasPrefix("'=f8'")
    guard isF4 || isF8 else { throw bad("dtype \(descr.prefix { $0 != "," }) is not float32 or float64") }
    guard let open = shapeText.firstIndex(of: "("), let close = shapeText.firstIndex(of: ")"), open < close
    else {
      throw bad("malformed shape")
    }
    let shape = try shapeText[shapeText.index(after: open)..<close].split(separator: ",").map {
      s -> Int in
      guard let v = Int(s.trimmingCharacters(in: .whitespaces)), v >= 0 else { throw bad("malformed shape") }
      return v
    }
    let body = start + hlen
    let size = isF4 ? 4 : 8
    // Checked: a header's shape may be anything, e.g. (2^62, 3, 16, 16).
    guard let count = checkedProduct(shape), let bytes = checkedProduct([count, size]) else {
      throw bad("shape \(shape) holds more values than can be counted")
    }
    guard b.count - body == bytes else {
      throw bad("data holds \(b.count - body) bytes, shape \(shape) needs \(bytes)")
    }
    let values: [Float] = b[body...].withUnsafeBytes { raw in
      isF4
        ? (0..<count).map {
          Float(bitPattern: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self).littleEndian)
        }
        : (0..<count).map {
          Float(Double(bitPattern: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self).littleEndian))
        }
    }
    // Noise, images and latents are never meant to hold NaN or ±Inf: refuse them here, naming the place.
    if let i = values.firstIndex(where: { !$0.isFinite }) {
      throw bad("value \(i) (of shape \(shape), C order) is \(values[i]); the values must be finite")
    }
    return (values, shape)
  }
}
