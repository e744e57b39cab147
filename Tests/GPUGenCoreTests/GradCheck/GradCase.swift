// The gradient-check harness: an op as a table row (its inputs, its Float64 reference forward and backward,
// its float32 device forward and the tolerance of the device comparison), and the two checks run on it.
import Foundation
import XCTest

@testable import GPUGenCore

/// How an input's values are drawn (deterministically, from a seed).
enum Gen {
  /// Uniform in `range`.
  case uniform(ClosedRange<Float>)
  /// Magnitude in [margin, limit], random sign: keeps clear of a kink at 0.
  case awayFromZero(margin: Float, limit: Float)
  /// Multiples of 0.1 plus `offset` within `range`: two inputs on grids with offsets 0 and 0.05 never come
  /// closer than 0.05, which keeps maximum/minimum/clamp away from their ties.
  case grid(offset: Float, range: ClosedRange<Float>)
  /// A shuffle of n evenly spaced values in [−1, 1] (no ties: for max).
  case distinct

  func sample(_ n: Int, seed: UInt64) -> [Float] {
    switch self {
    case .uniform(let r):
      return randomValues(n, seed: seed, in: r)
    case .awayFromZero(let margin, let limit):
      return randomValues(n, seed: seed).map { u in
        (u < 0 ? -1 : 1) * (margin + Swift.abs(u) * (limit - margin))
      }
    case .grid(let offset, let range):
      let lo = Int(((range.lowerBound - offset) / 0.1).rounded(.up))
      let hi = Int(((range.upperBound - offset) / 0.1).rounded(.down))
      return randomValues(n, seed: seed, in: 0...1).map { u in
        Float(lo + Swift.min(hi - lo, Int(u * Float(hi - lo + 1)))) * 0.1 + offset
      }
    case .distinct:
      let keys = randomValues(n, seed: seed)
      let order = (0..<n).sorted { keys[$0] < keys[$1] }
      var v = [Float](repeating: 0, count: n)
      for (rank, i) in order.enumerated() { v[i] = n == 1 ? 0 : -1 + 2 * Float(rank) / Float(n - 1) }
      return v
    }
  }
}

/// A stable 64-bit FNV-1a hash (seeds derived from names; `hashValue` changes from run to run).
func stableSeed(_ s: String) -> UInt64 {
  var h: UInt64 = 0xcbf2_9ce4_8422_2325
  for b in s.utf8 {
    h ^= UInt64(b)
    h = h &* 0x100_0000_01b3
  }
  return h
}

struct GradInput {
  let name: String
  let shape: [Int]
  let values: [Float]

  init(_ name: String, _ shape: [Int], values: [Float]) {
    precondition(values.count == shape.reduce(1, *), "GradInput \(name): \(values.count) values for \(shape)")
    self.name = name
    self.shape = shape
    self.values = values
  }

  /// Values drawn by `gen` with a seed derived from the op's and the input's names.
  init(_ name: String, _ shape: [Int], _ gen: Gen, op: String) {
    self.init(name, shape, values: gen.sample(shape.reduce(1, *), seed: stableSeed(op + "/" + name)))
  }

  /// The same values in Float64 (exactly: every float32 is a Float64).
  var t64: T64 { T64(shape, values.map(Double.init)) }
}

/// How close a float32 device gradient must be to the Float64 one: |got − want| ≤ atol + rtol·|want|.
struct Tolerance {
  let rtol: Double, atol: Double
}

/// One differentiable op, checked by finite differences (Float64) and on every device (float32).
struct GradCase {
  let op: String
  let inputs: [GradInput]
  /// Float64 reference forward of the inputs.
  let reference: ([T64]) -> T64
  /// Float64 reference backward: the inputs and dL/dy to dL/d(each input).
  let referenceBackward: ([T64], T64) -> [T64]
  /// The library op, recorded on a tape, on float32 tensors holding the inputs.
  let device: ([Tensor]) throws -> Tensor
  let tolerance: Tolerance

  init(
    _ op: String, _ inputs: [GradInput], tolerance: Tolerance,
    reference: @escaping ([T64]) -> T64, backward: @escaping ([T64], T64) -> [T64],
    device: @escaping ([Tensor]) throws -> Tensor
  ) {
    self.op = op
    self.inputs = inputs
    self.tolerance = tolerance
    self.reference = reference
    self.referenceBackward = backward
    self.device = device
  }

  /// Inputs drawn from `gens`, named and seeded by op.
  init(
    _ op: String, _ specs: [(String, [Int], Gen)], tolerance: Tolerance,
    reference: @escaping ([T64]) -> T64, backward: @escaping ([T64], T64) -> [T64],
    device: @escaping ([Tensor]) throws -> Tensor
  ) {
    self.init(
      op, specs.map { GradInput($0.0, $0.1, $0.2, op: op) }, tolerance: tolerance, reference: reference,
      backward: backward, device: device)
  }

  /// The fixed random cotangent R of the scalar loss L = Σ y·R (float32 values, used in both checks).
  func cotangent(_ shape: [Int]) -> [Float] {
    randomValues(shape.reduce(1, *), seed: stableSeed(op + "/cotangent"))
  }
}

enum GradCheck {
  /// Central differences in Float64.
  static let eps = 1e-6
  static let fdTolerance = Tolerance(rtol: 1e-3, atol: 1e-5)

  /// Fails (once per compared array) naming the worst element, with its multi-index, and how many are off.
  /// Returns max |got − want|.
  @discardableResult
  static func compare(
    _ got: [Double], _ want: T64, _ tol: Tolerance, _ what: String, file: StaticString, line: UInt
  ) -> Double {
    guard got.count == want.count else {
      XCTFail("\(what): \(got.count) values, expected \(want.count)", file: file, line: line)
      return .infinity
    }
    var bad = 0, worst = -1, worstExcess = 0.0, maxAbs = 0.0
    for i in 0..<got.count {
      let e = Swift.abs(got[i] - want.v[i])
      maxAbs = Swift.max(maxAbs, e.isNaN ? .infinity : e)
      let excess = e - (tol.atol + tol.rtol * Swift.abs(want.v[i]))
      if !(excess <= 0) {
        bad += 1
        if worst < 0 || !(excess <= worstExcess) {
          worst = i
          worstExcess = excess
        }
      }
    }
    if worst >= 0 {
      XCTFail(
        "\(what): element \(worst) \(R64.unravel(worst, want.shape)) is \(got[worst]), expected "
          + "\(want.v[worst]) (rtol \(tol.rtol), atol \(tol.atol); \(bad) of \(got.count) elements off)",
        file: file, line: line)
    }
    return maxAbs
  }

  static func dot(_ a: T64, _ b: T64) -> Double { zip(a.v, b.v).map(*).reduce(0, +) }

  /// (a) The Float64 analytic gradient of L = Σ reference(x)·R against central differences of L.
  static func finiteDifferences(_ cases: [GradCase], file: StaticString = #filePath, line: UInt = #line) {
    for c in cases {
      let xs = c.inputs.map(\.t64)
      let y = c.reference(xs)
      let r = T64(y.shape, c.cotangent(y.shape).map(Double.init))
      let analytic = c.referenceBackward(xs, r)
      guard analytic.count == xs.count else {
        XCTFail("\(c.op): reference backward gives \(analytic.count) gradients", file: file, line: line)
        continue
      }
      for (k, x) in xs.enumerated() {
        var fd = T64(zeros: x.shape)
        for j in 0..<x.count {
          var plus = xs, minus = xs
          plus[k].v[j] += eps
          minus[k].v[j] -= eps
          fd.v[j] = (dot(c.reference(plus), r) - dot(c.reference(minus), r)) / (2 * eps)
        }
        XCTAssertEqual(analytic[k].shape, x.shape, "\(c.op) d/d\(c.inputs[k].name)", file: file, line: line)
        compare(
          analytic[k].v, fd, fdTolerance,
          "\(c.op): Float64 analytic d/d\(c.inputs[k].name) vs central differences", file: file, line: line)
      }
    }
  }

  /// The op recorded on a fresh tape on `device`, and the gradients of Σ y·R with respect to every input.
  static func run(_ c: GradCase, on device: Device, cotangent r: [Float], shape: [Int]) throws -> (
    y: Tensor, grads: [Tensor?]
  ) {
    let xs = try c.inputs.map { try Tensor($0.values, shape: $0.shape, on: device) }
    let rt = try Tensor(r, shape: shape, on: device)
    let tape = Tape()
    tape.watch(xs)
    let (y, loss) = try tape.record {
      let y = try c.device(xs)
      return (y, try (y * rt).sum())
    }
    return (y, try tape.gradients(of: loss, wrt: xs))
  }

  /// (b) On every device, the float32 forward and the float32 gradients (through the tape) against the Float64
  /// reference forward and analytic gradients.
  /// With `report`, prints each case's largest forward and gradient errors per device.
  static func onEveryDevice(
    _ cases: [GradCase], report: Bool = false, file: StaticString = #filePath, line: UInt = #line
  ) {
    for d in allDevices(file: file, line: line) {
      for c in cases {
        let xs = c.inputs.map(\.t64)
        let y64 = c.reference(xs)
        let r = c.cotangent(y64.shape)
        let want = c.referenceBackward(xs, T64(y64.shape, r.map(Double.init)))
        do {
          let (y, grads) = try run(c, on: d, cotangent: r, shape: y64.shape)
          guard y.shape == y64.shape else {
            XCTFail(
              "\(c.op) on \(d.spec): output shape \(y.shape), expected \(y64.shape)", file: file, line: line)
            continue
          }
          let forwardError = compare(
            try y.toArray().map(Double.init), y64, c.tolerance, "\(c.op) on \(d.spec): forward", file: file,
            line: line)
          var gradientError = 0.0
          defer {
            if report {
              let errors = String(
                format: "forward max abs %.2e, gradients max abs %.2e", forwardError, gradientError)
              print("GradCheck \(c.op) on \(d.spec): \(errors)")
            }
          }
          for (k, input) in c.inputs.enumerated() {
            guard let g = grads[k] else {
              XCTFail("\(c.op) on \(d.spec): no gradient for \(input.name)", file: file, line: line)
              continue
            }
            XCTAssertEqual(
              g.shape, input.shape, "\(c.op) on \(d.spec): d/d\(input.name)", file: file, line: line)
            let e = compare(
              try g.toArray().map(Double.init), want[k], c.tolerance,
              "\(c.op) on \(d.spec): float32 d/d\(input.name) vs Float64", file: file, line: line)
            gradientError = Swift.max(gradientError, e)
          }
        } catch {
          XCTFail("\(c.op) on \(d.spec): \(error)", file: file, line: line)
        }
      }
    }
  }
}
