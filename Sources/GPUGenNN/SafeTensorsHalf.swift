// Bit-level IEEE half (binary16) and bfloat16 conversions, independent of Swift's Float16 (which some
// platforms lack). Used by the safetensors reader and writer.

/// Float32 ⇄ 16-bit float conversions on raw bit patterns.
enum HalfBits {
  /// The Float32 equal to the IEEE half with bits `h` (exact: every half is a float).
  /// NaN payloads are kept (shifted into the top of the float mantissa), as NumPy does.
  static func float(fromHalf h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = UInt32(h >> 10) & 0x1f
    var mantissa = UInt32(h & 0x03ff)
    if exponent == 0x1f {  // inf or NaN
      return Float(bitPattern: sign | 0x7f80_0000 | (mantissa << 13))
    }
    if exponent == 0 {
      if mantissa == 0 { return Float(bitPattern: sign) }  // ±0
      // Subnormal: mantissa × 2^-24; normalise so the leading 1 sits at bit 10.
      var e: UInt32 = 113  // float biased exponent of 2^-14
      while mantissa & 0x0400 == 0 {
        mantissa <<= 1
        e -= 1
      }
      return Float(bitPattern: sign | (e << 23) | ((mantissa & 0x03ff) << 13))
    }
    return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
  }

  /// The IEEE half nearest to `f` (round to nearest, ties to even); overflow gives ±inf, NaN stays NaN
  /// (its top mantissa bits kept, never turning into inf), matching NumPy's `astype(float16)`.
  static func half(fromFloat f: Float) -> UInt16 {
    let bits = f.bitPattern
    let sign = UInt16((bits >> 16) & 0x8000)
    let exponent = Int((bits >> 23) & 0xff)
    let mantissa = bits & 0x007f_ffff
    if exponent == 0xff {
      if mantissa == 0 { return sign | 0x7c00 }
      let payload = UInt16(mantissa >> 13)
      return sign | 0x7c00 | (payload == 0 ? 1 : payload)
    }
    let halfExponent = exponent - 112  // rebias 127 → 15
    if halfExponent >= 0x1f { return sign | 0x7c00 }  // ≥ 2^16: overflow
    if halfExponent <= 0 {
      // Half subnormal (or zero): value = m × 2^-24 with m = significand >> (14 - halfExponent).
      if halfExponent < -10 { return sign }  // below 2^-25: rounds to ±0
      let significand = mantissa | 0x0080_0000
      return sign | UInt16(roundShift(significand, by: UInt32(14 - halfExponent)))
    }
    // Normal: the rounding carry may ripple into the exponent (and up to inf), which is correct.
    let rounded = roundShift(mantissa, by: 13)
    return sign | UInt16((UInt32(halfExponent) << 10) + rounded)
  }

  /// The Float32 equal to the bfloat16 with bits `b` (its top 16 bits).
  static func float(fromBFloat b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

  /// The bfloat16 nearest to `f` (round to nearest, ties to even); overflow gives ±inf, NaN stays NaN
  /// (quiet, sign and top payload bits kept).
  static func bfloat(fromFloat f: Float) -> UInt16 {
    let bits = f.bitPattern
    if f.isNaN { return UInt16(bits >> 16) | 0x0040 }
    return UInt16(truncatingIfNeeded: (bits + 0x7fff + ((bits >> 16) & 1)) >> 16)
  }

  /// `x >> shift` rounded to nearest, ties to even (`shift` in 1...31).
  private static func roundShift(_ x: UInt32, by shift: UInt32) -> UInt32 {
    let quotient = x >> shift
    let remainder = x & ((1 << shift) - 1)
    let half: UInt32 = 1 << (shift - 1)
    if remainder > half || (remainder == half && quotient & 1 == 1) { return quotient + 1 }
    return quotient
  }
}
