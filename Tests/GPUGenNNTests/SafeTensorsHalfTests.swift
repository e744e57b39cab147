import XCTest

@testable import GPUGenNN

/// The bit-level half and bfloat16 conversions, checked exhaustively against independent definitions.
final class SafeTensorsHalfTests: XCTestCase {
  /// The value of half bits `h` from the IEEE definition, in Double.
  func halfValue(_ h: UInt16) -> Double {
    let sign: Double = h & 0x8000 != 0 ? -1 : 1
    let e = Int(h >> 10) & 0x1f
    let m = Double(h & 0x3ff)
    if e == 0x1f { return m == 0 ? sign * .infinity : .nan }
    if e == 0 { return sign * m * 0x1p-24 }
    return sign * (1 + m / 1024) * Double(sign: .plus, exponent: e - 15, significand: 1)
  }

  func testEveryHalfConvertsExactly() {
    for h in UInt16.min...UInt16.max {
      let f = HalfBits.float(fromHalf: h)
      let v = halfValue(h)
      if v.isNaN {
        XCTAssertTrue(f.isNaN, "\(h)")
        XCTAssertEqual(f.bitPattern & 0x8000_0000 != 0, h & 0x8000 != 0)
      } else {
        XCTAssertEqual(f.bitPattern, Float(v).bitPattern, "half \(String(h, radix: 16))")
      }
      // Float → half gives the same bits back (NaN payloads included).
      XCTAssertEqual(HalfBits.half(fromFloat: f), h, "half \(String(h, radix: 16))")
    }
  }

  func testFloatToHalfRoundsToNearestEven() {
    // Between consecutive finite halves a < b (same sign), the float midpoint rounds to the even one
    // and its float neighbours round to the nearer one.
    for a in UInt16(0)..<0x7c00 {
      let lo = HalfBits.float(fromHalf: a)
      let hi = a + 1 == 0x7c00 ? 65536 : HalfBits.float(fromHalf: a + 1)
      let mid = (lo + hi) / 2  // exact: halves have 11 significant bits
      let even = a & 1 == 0 ? a : a + 1
      for (s, signBit): (Float, UInt16) in [(1, 0), (-1, 0x8000)] {
        XCTAssertEqual(HalfBits.half(fromFloat: s * mid), even | signBit, "tie above \(a)")
        XCTAssertEqual(HalfBits.half(fromFloat: s * mid.nextDown), a | signBit, "below tie above \(a)")
        XCTAssertEqual(HalfBits.half(fromFloat: s * mid.nextUp), (a + 1) | signBit, "above tie above \(a)")
      }
    }
    // Edges: overflow to infinity, underflow to zero, NaN never becoming infinity.
    XCTAssertEqual(HalfBits.half(fromFloat: 65519.996), 0x7bff)
    XCTAssertEqual(HalfBits.half(fromFloat: 65520), 0x7c00)
    XCTAssertEqual(HalfBits.half(fromFloat: -1e30), 0xfc00)
    XCTAssertEqual(HalfBits.half(fromFloat: .greatestFiniteMagnitude), 0x7c00)
    XCTAssertEqual(HalfBits.half(fromFloat: 0x1p-25), 0x0000)
    XCTAssertEqual(HalfBits.half(fromFloat: Float(0x1p-25).nextUp), 0x0001)
    XCTAssertEqual(HalfBits.half(fromFloat: -0x1p-26), 0x8000)
    XCTAssertEqual(HalfBits.half(fromFloat: .leastNonzeroMagnitude), 0x0000)
    XCTAssertEqual(HalfBits.half(fromFloat: .nan), 0x7e00)
    XCTAssertEqual(HalfBits.half(fromFloat: Float(bitPattern: 0x7f80_0001)), 0x7c01)
    XCTAssertEqual(HalfBits.half(fromFloat: Float(bitPattern: 0xffc0_2000)), 0xfe01)
  }

  #if !(os(macOS) && arch(x86_64))
    func testFloatToHalfMatchesSwiftFloat16() {
      var rng = SystemRandomNumberGenerator()
      for _ in 0..<200_000 {
        let f = Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))
        guard !f.isNaN else { continue }
        XCTAssertEqual(HalfBits.half(fromFloat: f), Float16(f).bitPattern, "\(f)")
      }
    }
  #endif

  func testBFloat16() {
    for b in UInt16.min...UInt16.max {
      let f = HalfBits.float(fromBFloat: b)
      XCTAssertEqual(f.bitPattern, UInt32(b) << 16)
      if f.isNaN {
        XCTAssertTrue(HalfBits.float(fromBFloat: HalfBits.bfloat(fromFloat: f)).isNaN)
        XCTAssertEqual(HalfBits.bfloat(fromFloat: f) & 0x8000, b & 0x8000)
        continue
      }
      XCTAssertEqual(HalfBits.bfloat(fromFloat: f), b)
      // Ties to even, neighbours of the tie to the nearer value; the largest finite rounds up to inf.
      let tie = Float(bitPattern: UInt32(b) << 16 | 0x8000)
      guard !tie.isNaN && !f.isInfinite else { continue }
      XCTAssertEqual(HalfBits.bfloat(fromFloat: tie), b & 1 == 0 ? b : b + 1)
      XCTAssertEqual(HalfBits.bfloat(fromFloat: Float(bitPattern: tie.bitPattern - 1)), b)
      XCTAssertEqual(HalfBits.bfloat(fromFloat: Float(bitPattern: tie.bitPattern + 1)), b + 1)
    }
    XCTAssertEqual(HalfBits.bfloat(fromFloat: .nan), 0x7fc0)
    XCTAssertEqual(HalfBits.bfloat(fromFloat: Float(bitPattern: 0x7f80_0001)), 0x7fc0)
  }
}
