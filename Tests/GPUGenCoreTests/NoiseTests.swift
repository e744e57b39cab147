// Philox4x32-10 noise: Random123 known answers in Swift and in the kernels on every device, the counter
// layout (batch-size independence), CPU/OpenCL agreement, sensitivity to every input, moments, extremes.
import Foundation
import XCTest

@testable import GPUGenCore

/// Swift and OpenCL normals agree to this absolute tolerance. The Philox words and the uniforms are
/// bit-identical on every device (integer math; an exact int→float conversion and power-of-two scaling);
/// only log, cos and sin differ, by a few ulp (OpenCL 1.2 allows 3 ulp for log, 4 for sin/cos). With
/// |z| ≤ 6.77 that is ≲ 4e-6; 1e-5 leaves a margin without hiding a wrong word or pairing (those
/// change values by O(1)).
private let deviceTolerance: Float = 1e-5

/// The largest |normal| the mapping can produce: r = √(−2 ln 2⁻³³) for the smallest uniform.
private let largestNormal = (-2 * Foundation.log(0x1p-33)).squareRoot()

final class NoiseTests: XCTestCase {
  /// Random123's known-answer vectors for philox4x32 with 10 rounds (kat_vectors).
  let katVectors: [(counter: SIMD4<UInt32>, key: SIMD2<UInt32>, output: SIMD4<UInt32>)] = [
    (SIMD4(0, 0, 0, 0), SIMD2(0, 0), SIMD4(0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8)),
    (
      SIMD4(repeating: 0xffff_ffff), SIMD2(repeating: 0xffff_ffff),
      SIMD4(0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd)
    ),
    (
      SIMD4(0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344), SIMD2(0xa409_3822, 0x299f_31d0),
      SIMD4(0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1)
    ),
  ]

  func hex(_ v: SIMD4<UInt32>) -> String { (0..<4).map { String(v[$0], radix: 16) }.joined(separator: " ") }

  func testPhiloxKnownAnswersInSwift() {
    for kat in katVectors {
      let got = Philox4x32.block(counter: kat.counter, key: kat.key)
      XCTAssertEqual(got, kat.output, "counter \(hex(kat.counter)): got \(hex(got)), want \(hex(kat.output))")
    }
  }

  func testPhiloxKnownAnswersOnEveryOpenCLDevice() throws {
    // The KAT vectors plus pseudo-random counters and keys, against the Swift code bit for bit.
    var counters = katVectors.map(\.counter), keys = katVectors.map(\.key)
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    func next() -> UInt32 {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return UInt32(truncatingIfNeeded: state >> 32)
    }
    for _ in 0..<253 {
      counters.append(SIMD4(next(), next(), next(), next()))
      keys.append(SIMD2(next(), next()))
    }
    let devices = openCLDevices()
    for device in devices {
      let got = try device.openCL!.philoxRaw(counters: counters, keys: keys)
      for (i, kat) in katVectors.enumerated() {
        XCTAssertEqual(
          got[i], kat.output, "KAT \(i) on \(device): got \(hex(got[i])), want \(hex(kat.output))")
      }
      for i in katVectors.count..<counters.count {
        let want = Philox4x32.block(counter: counters[i], key: keys[i])
        XCTAssertEqual(got[i], want, "counter \(hex(counters[i])) on \(device)")
      }
    }
  }

  func testUniformExtremesAndBoxMullerAreFinite() throws {
    // The smallest word maps to 2⁻³³ exactly (not 0: log stays finite), the largest to exactly 1.
    XCTAssertEqual(Philox4x32.uniform(0), 0x1p-33)
    XCTAssertEqual(Philox4x32.uniform(1), 0x1.8p-32)
    XCTAssertEqual(Philox4x32.uniform(.max), 1)
    XCTAssertLessThan(Philox4x32.uniform(0xffff_ff00), 1)
    // Words that hit both extremes, a quarter turn (cos ≈ 0) and the middle.
    let blocks: [SIMD4<UInt32>] = [
      SIMD4(0, 0, .max, .max), SIMD4(0, 0x4000_0000, 1, 0x8000_0000),
      SIMD4(.max, 0, 0x8000_0000, 0xc000_0000),
      SIMD4(0x1234_5678, 0x9abc_def0, 7, 0xffff_fffe),
    ]
    var want: [[Double]] = []
    for w in blocks {
      // Float64 Box–Muller from the same (exact) float uniforms.
      func bm(_ a: UInt32, _ b: UInt32) -> [Double] {
        let r = (-2 * Foundation.log(Double(Philox4x32.uniform(a)))).squareRoot()
        let theta = Double(Float(6.28318530717958648) * Philox4x32.uniform(b))
        return [r * Foundation.cos(theta), r * Foundation.sin(theta)]
      }
      want.append(bm(w[0], w[1]) + bm(w[2], w[3]))
    }
    XCTAssertEqual(want[0][0], largestNormal, accuracy: 1e-12)
    XCTAssertEqual(want[0][2], 0)
    let swift = blocks.map { Philox4x32.normals($0) }
    for (i, z) in swift.enumerated() {
      for e in 0..<4 {
        XCTAssertTrue(z[e].isFinite, "block \(i) element \(e) is \(z[e])")
        XCTAssertEqual(Double(z[e]), want[i][e], accuracy: Double(deviceTolerance), "Swift block \(i)[\(e)]")
      }
    }
    for device in openCLDevices() {
      let got = try device.openCL!.boxMullerRaw(blocks)
      for (i, z) in got.enumerated() {
        for e in 0..<4 {
          XCTAssertTrue(z[e].isFinite, "block \(i) element \(e) is \(z[e]) on \(device)")
          XCTAssertEqual(z[e], swift[i][e], accuracy: deviceTolerance, "block \(i)[\(e)] on \(device)")
        }
      }
    }
  }

  func testCounterLayoutMatchesTheSwiftReference() throws {
    // Element e of sample s is word e % 4 of block (e / 4, firstSample + s, step, stream) under the seed.
    let seed: UInt64 = 0x0123_4567_89ab_cdef, step = 17, stream = 3, first = 5
    let shape = [3, 2, 5]  // 10 elements per sample: two whole blocks and a half one.
    for device in allDevices() {
      let got = try Tensor.randomNormal(
        shape: shape, seed: seed, step: step, stream: stream, firstSample: first, on: device
      ).toArray()
      var want: [Float] = []
      for s in 0..<3 {
        for e in 0..<10 {
          let z = Philox4x32.normals(
            seed: seed, sample: UInt32(first + s), step: UInt32(step), stream: UInt32(stream),
            block: UInt32(e / 4))
          want.append(z[e % 4])
        }
      }
      // Bit for bit on the CPU (the same Swift code); within the libm tolerance on OpenCL.
      let tol: Float = device.isOpenCL ? deviceTolerance : 0
      let bad = (0..<want.count).filter { !(abs(got[$0] - want[$0]) <= tol) }
      XCTAssertEqual(bad, [], "elements off by more than \(tol) on \(device): \(got) vs \(want)")
    }
  }

  func testBatchOf64EqualsSingleSampleDraws() throws {
    // 105 elements per sample (not a multiple of 4): sample i of a batch of 64 is the batch-1 draw with
    // firstSample = i, bit for bit on the same device.
    let seed: UInt64 = 42
    for device in allDevices() {
      let batch = try Tensor.randomNormal(shape: [64, 3, 5, 7], seed: seed, step: 9, on: device).toArray()
      for i in 0..<64 {
        let single = try Tensor.randomNormal(
          shape: [1, 3, 5, 7], seed: seed, step: 9, firstSample: i, on: device
        ).toArray()
        XCTAssertEqual(Array(batch[(i * 105)..<((i + 1) * 105)]), single, "sample \(i) on \(device)")
      }
      // And a batch starting mid-way equals the matching slice.
      let middle = try Tensor.randomNormal(
        shape: [10, 105], seed: seed, step: 9, firstSample: 30, on: device)
      XCTAssertEqual(
        try middle.toArray(), Array(batch[(30 * 105)..<(40 * 105)]), "samples 30..<40 on \(device)")
    }
  }

  func testCPUAndOpenCLGiveTheSameNoise() throws {
    let shape = [7, 4099]
    let cpu = try Tensor.randomNormal(shape: shape, seed: 7, step: 3, stream: 1, on: .cpu).toArray()
    for device in openCLDevices() {
      let got = try Tensor.randomNormal(shape: shape, seed: 7, step: 3, stream: 1, on: device).toArray()
      var worst: Float = 0
      for i in 0..<cpu.count { worst = max(worst, abs(got[i] - cpu[i])) }
      XCTAssertLessThanOrEqual(worst, deviceTolerance, "largest |OpenCL − CPU| on \(device)")
    }
  }

  func testEveryInputChangesTheNoise() throws {
    struct Draw {
      var seed: UInt64 = 1
      var step = 0, stream = 0, first = 0
    }
    let base = Draw()
    var variants: [(String, Draw)] = []
    var d = base
    d.seed = 2
    variants.append(("seed low word", d))
    d = base
    d.seed = 1 | (1 << 32)
    variants.append(("seed high word", d))
    d = base
    d.step = 1
    variants.append(("step", d))
    d = base
    d.stream = 1
    variants.append(("stream", d))
    d = base
    d.first = 1
    variants.append(("first sample", d))
    for device in allDevices() {
      func draw(_ d: Draw) throws -> [Float] {
        try Tensor.randomNormal(
          shape: [2, 64], seed: d.seed, step: d.step, stream: d.stream, firstSample: d.first, on: device
        ).toArray()
      }
      let reference = try draw(base)
      XCTAssertNotEqual(Array(reference[0..<64]), Array(reference[64..<128]), "samples 0 and 1 on \(device)")
      for (what, v) in variants {
        let other = try draw(v)
        let same = zip(reference, other).filter { $0 == $1 }.count
        XCTAssertEqual(same, 0, "changing the \(what) left \(same) of 128 values unchanged on \(device)")
      }
      // Within a sample, the four words of a block and consecutive blocks differ.
      XCTAssertEqual(Set(reference).count, reference.count, "repeated values within a draw on \(device)")
    }
  }

  func testMomentsOfAMillionNormals() throws {
    // n = 2²⁰. Standard errors: mean 1/√n ≈ 9.8e-4, variance √(2/n) ≈ 1.4e-3, fourth moment √(96/n) ≈
    // 9.6e-3, lag-1 correlation 1/√n. Bounds are 5 standard errors (a false failure has p < 1e-6).
    let n = 1 << 20
    for device in allDevices() {
      let z = try Tensor.randomNormal(shape: [4, n / 4], seed: 2024, on: device).toArray().map(Double.init)
      let mean = z.reduce(0, +) / Double(n)
      let variance = z.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n - 1)
      let m4 = z.reduce(0) { $0 + pow($1 - mean, 4) } / Double(n)
      var lag = 0.0
      for i in 1..<n { lag += (z[i] - mean) * (z[i - 1] - mean) }
      let correlation = lag / Double(n - 1) / variance
      let biggest = z.map(abs).max()!
      XCTAssertEqual(mean, 0, accuracy: 5 / Double(n).squareRoot(), "mean on \(device)")
      XCTAssertEqual(variance, 1, accuracy: 5 * (2 / Double(n)).squareRoot(), "variance on \(device)")
      XCTAssertEqual(m4, 3, accuracy: 5 * (96 / Double(n)).squareRoot(), "fourth moment on \(device)")
      XCTAssertEqual(correlation, 0, accuracy: 5 / Double(n).squareRoot(), "lag-1 correlation on \(device)")
      XCTAssertLessThanOrEqual(biggest, largestNormal + 1e-5, "largest |z| on \(device)")
      XCTAssertTrue(z.allSatisfy(\.isFinite), "non-finite noise on \(device)")
    }
  }

  func testRejectsCountersThatDoNotFitIn32Bits() throws {
    let limit = Int(UInt32.max)
    for device in allDevices() {
      let bad: [(String, () throws -> Tensor)] = [
        ("negative step", { try .randomNormal(shape: [1, 4], seed: 0, step: -1, on: device) }),
        ("step 2³²", { try .randomNormal(shape: [1, 4], seed: 0, step: limit + 1, on: device) }),
        ("stream 2³²", { try .randomNormal(shape: [1, 4], seed: 0, stream: limit + 1, on: device) }),
        (
          "negative first sample", { try .randomNormal(shape: [1, 4], seed: 0, firstSample: -1, on: device) }
        ),
        ("samples past 2³²", { try .randomNormal(shape: [2, 4], seed: 0, firstSample: limit, on: device) }),
        ("no sample axis", { try .randomNormal(shape: [], seed: 0, on: device) }),
      ]
      for (what, f) in bad {
        XCTAssertThrowsError(try f(), "\(what) on \(device)") { error in
          guard case GPUGenError.invalidArgument = error else {
            return XCTFail("\(what): unexpected error \(error)")
          }
        }
      }
      // The last representable sample and step are fine; empty shapes give empty tensors.
      let last = try Tensor.randomNormal(shape: [1, 4], seed: 0, step: limit, firstSample: limit, on: device)
      XCTAssertTrue(try last.toArray().allSatisfy(\.isFinite))
      XCTAssertEqual(try Tensor.randomNormal(shape: [0, 3], seed: 0, on: device).count, 0)
      XCTAssertEqual(try Tensor.randomNormal(shape: [3, 0], seed: 0, on: device).count, 0)
    }
  }
}
