// gzip streams through zlib: bounded decompression of data-set files, and compression for tests and tools.
import CZlib

/// gzip (RFC 1952) decompression and compression in memory.
enum Gzip {
  /// Why a gzip stream could not be decompressed.
  enum Failure: Error, Equatable {
    /// The stream ends before its final block and trailer.
    case truncated
    /// The stream is not valid gzip (bad header, bad block, CRC or length mismatch, trailing garbage).
    case corrupt(String)
    /// The decompressed data would exceed the limit.
    case tooLarge(limit: Int)
  }

  /// Whether `bytes` starts with the gzip magic 1f 8b.
  static func isGzip<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
    var it = bytes.makeIterator()
    return it.next() == 0x1f && it.next() == 0x8b
  }

  /// Decompresses a gzip stream (concatenated members are joined, as gunzip does), refusing to produce more
  /// than `limit` bytes. With `prefix`, stops after the first `prefix` bytes and returns them (fewer if the
  /// stream is shorter): a header read before the rest is inflated.
  static func decompress(_ input: UnsafeRawBufferPointer, limit: Int, prefix: Int? = nil) throws -> [UInt8] {
    guard let base = input.baseAddress?.assumingMemoryBound(to: UInt8.self), input.count > 0 else {
      throw Failure.truncated
    }
    var stream = z_stream()
    let initRC = inflateInit2_(&stream, 15 + 32, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
    guard initRC == Z_OK else { throw Failure.corrupt("zlib inflateInit2 failed (\(initRC))") }
    defer { inflateEnd(&stream) }

    // The last member's trailer holds its size mod 2^32: a good first guess for the output size, trusted only
    // up to deflate's best ratio (about 1032:1) so that a damaged trailer cannot cause a huge allocation.
    var hint = 1 << 16
    if input.count >= 18 {
      let t = input.count - 4
      let isize = Int(base[t]) | Int(base[t + 1]) << 8 | Int(base[t + 2]) << 16 | Int(base[t + 3]) << 24
      hint = Swift.max(hint, Swift.min(isize + 1, input.count * 1032))
    }
    var out = [UInt8](repeating: 0, count: Swift.min(hint, limit + 1))
    var produced = 0
    var consumed = 0  // input bytes handed to zlib so far
    let chunk = Int(UInt32.max)

    func message(_ fallback: String) -> String {
      stream.msg.map { String(cString: $0) } ?? fallback
    }

    while true {
      if stream.avail_in == 0 && consumed < input.count {
        let n = Swift.min(chunk, input.count - consumed)
        stream.next_in = UnsafeMutablePointer(mutating: base + consumed)
        stream.avail_in = UInt32(n)
        consumed += n
      }
      if produced == out.count {
        guard out.count <= limit else { throw Failure.tooLarge(limit: limit) }
        let grown = Swift.min(Swift.max(out.count * 2, 1 << 16), limit + 1)
        out.append(contentsOf: repeatElement(0, count: grown - out.count))
      }
      let room = Swift.min(out.count - produced, chunk)
      let rc = out.withUnsafeMutableBufferPointer { buf -> Int32 in
        stream.next_out = buf.baseAddress! + produced
        stream.avail_out = UInt32(room)
        return inflate(&stream, Z_NO_FLUSH)
      }
      produced += room - Int(stream.avail_out)
      if let prefix, produced >= prefix { return Array(out[0..<prefix]) }
      if produced > limit { throw Failure.tooLarge(limit: limit) }
      let inputLeft = Int(stream.avail_in) + (input.count - consumed)
      switch rc {
      case Z_STREAM_END:
        if inputLeft == 0 {
          out.removeSubrange(produced...)
          return out
        }
        // Another gzip member may follow; anything else is garbage.
        let next = input.count - inputLeft
        guard inputLeft >= 2, base[next] == 0x1f, base[next + 1] == 0x8b else {
          throw Failure.corrupt("\(inputLeft) bytes of trailing garbage after the gzip stream")
        }
        guard inflateReset(&stream) == Z_OK else { throw Failure.corrupt("zlib inflateReset failed") }
      case Z_OK, Z_BUF_ERROR:
        // More output room is made at the top of the loop; with room left, zlib wanted more input.
        if stream.avail_out > 0 && inputLeft == 0 { throw Failure.truncated }
      case Z_DATA_ERROR:
        throw Failure.corrupt(message("invalid compressed data"))
      case Z_MEM_ERROR:
        throw Failure.corrupt("zlib ran out of memory")
      default:
        throw Failure.corrupt(message("zlib inflate error \(rc)"))
      }
    }
  }

  /// Compresses `bytes` as a single gzip member (level 0–9).
  static func compress(_ bytes: [UInt8], level: Int32 = 6) throws -> [UInt8] {
    var stream = z_stream()
    let initRC = deflateInit2_(
      &stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, zlibVersion(),
      Int32(MemoryLayout<z_stream>.size))
    guard initRC == Z_OK else { throw Failure.corrupt("zlib deflateInit2 failed (\(initRC))") }
    defer { deflateEnd(&stream) }
    var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(bytes.count))) + 32)
    let rc = bytes.withUnsafeBufferPointer { src in
      out.withUnsafeMutableBufferPointer { dst -> Int32 in
        stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress)
        stream.avail_in = UInt32(src.count)
        stream.next_out = dst.baseAddress
        stream.avail_out = UInt32(dst.count)
        return deflate(&stream, Z_FINISH)
      }
    }
    guard rc == Z_STREAM_END else { throw Failure.corrupt("zlib deflate failed (\(rc))") }
    out.removeSubrange(Int(stream.total_out)...)
    return out
  }
}
