// One parity harness: each op on every device against a Float64 reference, at sizes that break
// tiling (1, 7, 33, 129, 1000), broadcasting edge cases and empty tensors.
import Foundation
import XCTest

@testable import GPUGenCore

/// Tolerances per op family.
enum Tol {
  static let exact = (rtol: 1e-6, atol: 1e-7)
  static let transcendental = (rtol: 2e-5, atol: 2e-6)
  static let reduction = (rtol: 1e-4, atol: 1e-5)
  static let softmax = (rtol: 1e-5, atol: 1e-6)
}

final class ParityTests: XCTestCase {
  let sizes = [1, 7, 33, 129, 1000, 0]

  func testUnaryOps() throws {
    for device in allDevices() {
      for n in sizes {
        for op in UnaryOp.allCases {
          let positive = [.log, .sqrt, .rsqrt].contains(op)
          let x = randomValues(n, seed: UInt64(n + 11), in: positive ? 0.01...4 : -4...4)
          let alpha: Float = 0.2
          let y = try Tensor(x, shape: [n], on: device).apply(op, alpha: alpha)
          XCTAssertEqual(y.shape, [n])
          let want: [Double] = x.map { f in
            let v = Double(f)
            switch op {
            case .neg: return -v
            case .abs: return Swift.abs(v)
            case .exp: return Foundation.exp(v)
            case .log: return Foundation.log(v)
            case .sqrt: return v.squareRoot()
            case .rsqrt: return 1 / v.squareRoot()
            case .sin: return Foundation.sin(v)
            case .cos: return Foundation.cos(v)
            case .tanh: return Foundation.tanh(v)
            case .sigmoid: return 1 / (1 + Foundation.exp(-v))
            case .relu: return Swift.max(v, 0)
            case .leakyRelu: return v >= 0 ? v : Double(alpha) * v
            case .silu: return v / (1 + Foundation.exp(-v))
            case .gelu: return 0.5 * v * (1 + Foundation.erf(v / 2.0.squareRoot()))
            }
          }
          let exact = [.neg, .abs, .relu, .leakyRelu].contains(op)
          let tol = exact ? Tol.exact : Tol.transcendental
          assertClose(try y.toArray(), want, rtol: tol.rtol, atol: tol.atol, "\(op) n=\(n) on \(device)")
        }
      }
    }
  }

  func refBinary(_ op: BinaryOp, _ p: Double, _ q: Double) -> Double {
    switch op {
    case .add: return p + q
    case .sub: return p - q
    case .mul: return p * q
    case .div: return p / q
    case .pow: return Foundation.pow(p, q)
    case .maximum: return Swift.max(p, q)
    case .minimum: return Swift.min(p, q)
    }
  }

  func tolerance(_ op: BinaryOp) -> (rtol: Double, atol: Double) {
    op == .pow || op == .div ? Tol.transcendental : Tol.exact
  }

  func testBinaryBroadcasting() throws {
    let cases: [([Int], [Int])] = [
      ([7], [7]), ([1000], [1000]), ([1], [129]), ([33], [1]), ([], [2, 3]), ([2, 3], []),
      ([3, 1, 5], [4, 1]), ([129, 1], [1, 33]), ([2, 3, 4, 5, 6], [3, 1, 5, 1]), ([2, 0, 3], [3]),
      ([0], [1]), ([4, 7], [4, 1]), ([1, 7, 1, 3], [5, 1, 2, 1]),
      ([2, 1, 2, 1, 2, 1, 2, 1, 2], [1, 2, 1, 2, 1, 2, 1, 2, 1]),
    ]
    for device in allDevices() {
      for (sa, sb) in cases {
        let out = try Shape.broadcast(sa, sb)
        let a = randomValues(Shape.count(sa), seed: 1, in: 0.5...2)
        let b = randomValues(Shape.count(sb), seed: 2, in: 0.5...2)
        let ta = try Tensor(a, shape: sa, on: device), tb = try Tensor(b, shape: sb, on: device)
        for op in BinaryOp.allCases {
          let y = try ta.binary(op, tb)
          XCTAssertEqual(y.shape, out, "\(op) \(sa) \(sb)")
          let want = (0..<Shape.count(out)).map {
            refBinary(op, Ref.at(a.map(Double.init), sa, out, $0), Ref.at(b.map(Double.init), sb, out, $0))
          }
          let t = tolerance(op)
          assertClose(try y.toArray(), want, rtol: t.rtol, atol: t.atol, "\(op) \(sa)∘\(sb) on \(device)")
        }
      }
    }
  }

  func testScalarForms() throws {
    for device in allDevices() {
      for n in sizes {
        let x = randomValues(n, seed: 5, in: 0.5...2)
        let t = try Tensor(x, shape: [n], on: device)
        for op in BinaryOp.allCases {
          for first in [false, true] {
            let y = try t.binary(op, scalar: 1.5, scalarFirst: first)
            let want = x.map { first ? refBinary(op, 1.5, Double($0)) : refBinary(op, Double($0), 1.5) }
            let tol = tolerance(op)
            assertClose(
              try y.toArray(), want, rtol: tol.rtol, atol: tol.atol,
              "\(op) scalar first=\(first) n=\(n) on \(device)")
          }
        }
        // Operators route to the same kernels.
        assertClose(try (2 - t).toArray(), x.map { 2 - Double($0) }, rtol: 1e-6, atol: 1e-7, "2 - t")
        assertClose(try (t / 4).toArray(), x.map { Double($0) / 4 }, rtol: 1e-6, atol: 1e-7, "t / 4")
      }
    }
  }

  func testClampAndWhere() throws {
    for device in allDevices() {
      for n in sizes {
        let x = randomValues(n, seed: 9, in: -3...3)
        let y = try Tensor(x, shape: [n], on: device).clamp(min: -1, max: 0.5)
        assertClose(
          try y.toArray(), x.map { Swift.min(Swift.max(Double($0), -1), 0.5) }, rtol: 0, atol: 0,
          "clamp n=\(n)")
      }
      let cases: [([Int], [Int], [Int])] = [
        ([7], [7], [7]), ([33, 1], [1, 129], [1]), ([], [2, 3], [3]), ([0, 2], [2], [1]),
      ]
      for (sc, sa, sb) in cases {
        let out = try Shape.broadcast(try Shape.broadcast(sc, sa), sb)
        let c = randomValues(Shape.count(sc), seed: 3).map { $0 > 0 ? Float(1) : 0 }
        let a = randomValues(Shape.count(sa), seed: 4), b = randomValues(Shape.count(sb), seed: 5)
        let y = try Tensor.where(
          try Tensor(c, shape: sc, on: device), try Tensor(a, shape: sa, on: device),
          try Tensor(b, shape: sb, on: device))
        XCTAssertEqual(y.shape, out)
        let want = (0..<Shape.count(out)).map { i in
          Ref.at(c.map(Double.init), sc, out, i) != 0
            ? Ref.at(a.map(Double.init), sa, out, i) : Ref.at(b.map(Double.init), sb, out, i)
        }
        assertClose(try y.toArray(), want, rtol: 0, atol: 0, "where \(sc) \(sa) \(sb) on \(device)")
      }
    }
  }

  /// Float64 reduction over `axes` of `x` with `shape`.
  func refReduce(_ op: ReduceOp, _ x: [Double], _ shape: [Int], _ axes: Set<Int>, correction: Int) -> [Double]
  {
    let outShape = shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
    var groups = [[Double]](repeating: [], count: Shape.count(outShape))
    for i in 0..<x.count {
      var idx = Ref.multiIndex(i, shape)
      for a in axes { idx[a] = 0 }
      groups[Ref.linear(idx, outShape)].append(x[i])
    }
    return groups.map { g in
      let n = Double(g.count)
      switch op {
      case .sum: return g.reduce(0, +)
      case .mean: return g.reduce(0, +) / n
      case .max: return g.max()!
      case .variance:
        let m = g.reduce(0, +) / n
        return g.map { ($0 - m) * ($0 - m) }.reduce(0, +) / (n - Double(correction))
      }
    }
  }

  func testReductions() throws {
    let cases: [([Int], [Int]?)] = [
      ([1000], nil), ([7], [0]), ([3, 4, 5, 6], [1, 2]), ([3, 4, 5, 6], [0, 2]), ([3, 4, 5, 6], [-1]),
      ([7, 129], [0]), ([33, 129], [1]), ([2, 3, 4], [0, 1, 2]), ([5, 1, 7], [1]), ([4, 3, 2, 5], [0, 3]),
      ([1], [0]),
    ]
    for device in allDevices() {
      for (shape, axes) in cases {
        let x = randomValues(Shape.count(shape), seed: 21)
        let t = try Tensor(x, shape: shape, on: device)
        let axisSet = Set((axes ?? Array(0..<shape.count)).map { $0 < 0 ? $0 + shape.count : $0 })
        for op in ReduceOp.allCases {
          for keep in [false, true] {
            if op == .variance && axisSet.map({ shape[$0] }).reduce(1, *) == 1 { continue }
            let y = try t.reduce(op, axes: axes, keepDims: keep, correction: 1)
            let expectShape =
              keep
              ? shape.enumerated().map { axisSet.contains($0.offset) ? 1 : $0.element }
              : shape.enumerated().filter { !axisSet.contains($0.offset) }.map(\.element)
            XCTAssertEqual(
              y.shape, expectShape, "\(op) \(shape) axes \(String(describing: axes)) keep \(keep)")
            let want = refReduce(op, x.map(Double.init), shape, axisSet, correction: 1)
            assertClose(
              try y.toArray(), want, rtol: Tol.reduction.rtol, atol: Tol.reduction.atol,
              "\(op) \(shape) axes \(String(describing: axes)) on \(device)")
          }
        }
      }
      // Population variance (correction 0) differs from the unbiased one.
      let x = randomValues(129, seed: 4)
      let v0 = try Tensor(x, shape: [129], on: device).variance(correction: 0).toArray()
      assertClose(
        v0, refReduce(.variance, x.map(Double.init), [129], [0], correction: 0), rtol: 1e-4, atol: 1e-6,
        "var c=0")
      // Empty tensors: empty output; reducing an empty axis gives 0 (sum) or NaN (mean).
      let e = try Tensor([], shape: [0, 5], on: device)
      XCTAssertEqual(try e.sum(axes: [0]).toArray(), [0, 0, 0, 0, 0])
      XCTAssertEqual(try e.sum(axes: [1]).shape, [0])
      XCTAssertTrue(try e.mean(axes: [0]).toArray().allSatisfy(\.isNaN))
      XCTAssertThrowsError(try e.max(axes: [0]))
    }
  }

  func testSoftmax() throws {
    let cases: [([Int], Int)] = [
      ([1000], 0), ([7, 33], -1), ([3, 129, 5], 1), ([2, 7, 1], 1), ([33, 1], 1), ([0, 4], 1),
    ]
    for device in allDevices() {
      for (shape, axis) in cases {
        let x = randomValues(Shape.count(shape), seed: 31, in: -8...8)
        let t = try Tensor(x, shape: shape, on: device)
        let a = axis < 0 ? axis + shape.count : axis
        let inner = shape[(a + 1)...].reduce(1, *)
        for log in [false, true] {
          let y = log ? try t.logSoftmax(axis: axis) : try t.softmax(axis: axis)
          var want = [Double](repeating: 0, count: x.count)
          for o in 0..<(shape[..<a].reduce(1, *)) {
            for i in 0..<inner {
              let idx = (0..<shape[a]).map { o * shape[a] * inner + $0 * inner + i }
              let m = idx.map { Double(x[$0]) }.max()!
              let s = idx.map { Foundation.exp(Double(x[$0]) - m) }.reduce(0, +)
              for j in idx {
                want[j] = log ? Double(x[j]) - m - Foundation.log(s) : Foundation.exp(Double(x[j]) - m) / s
              }
            }
          }
          assertClose(
            try y.toArray(), want, rtol: Tol.softmax.rtol, atol: Tol.softmax.atol,
            "softmax log=\(log) \(shape) axis \(axis) on \(device)")
        }
      }
    }
  }

  /// Strided copies at sizes where OpenCL CPU devices take the work-item-per-run kernel (one, two and three
  /// looped axes, zero strides, offsets), and the small shapes they leave to the per-element kernel: each
  /// equal, bit for bit, to the native CPU's copy.
  func testStridedCopiesAtEverySize() throws {
    func copies(_ d: Device) throws -> [[Float]] {
      let a = try Tensor(randomValues(64 * 3 * 5 * 7, seed: 81), shape: [64, 3, 5, 7], on: d)
      let b = try Tensor(randomValues(4 * 5 * 16 * 7, seed: 82), shape: [4, 5, 16, 7], on: d)
      let c = try Tensor(randomValues(2 * 40 * 3 * 5, seed: 83), shape: [2, 40, 3, 5], on: d)
      let e = try Tensor(randomValues(70 * 6 * 5, seed: 84), shape: [70, 6, 5], on: d)
      let small = try Tensor(randomValues(2 * 3 * 4, seed: 85), shape: [2, 3, 4], on: d)
      return try [
        a.permuted([0, 3, 1, 2]), a.permuted([2, 0, 3, 1]), b.permuted([1, 0, 3, 2]), c.upsampleNearest2x(),
        e.slice(axis: 1, start: 1, end: 6, step: 2),
        e.slice(axis: 0, start: 3, end: 69, step: 3).transposed(),
        e.reshaped([70, 1, 30]).expanded(to: [70, 4, 30]), small.permuted([2, 0, 1]),
      ].map { try $0.toArray() }
    }
    let reference = try copies(Device.cpu)
    for d in allDevices() {
      for (i, (got, want)) in zip(try copies(d), reference).enumerated() {
        XCTAssertEqual(got, want, "copy \(i) on \(d)")
      }
    }
  }

  func testShapeOps() throws {
    for device in allDevices() {
      let shape = [2, 3, 4, 5]
      let x = randomValues(120, seed: 41)
      let t = try Tensor(x, shape: shape, on: device)
      // permute
      let perm = [3, 1, 0, 2]
      let p = try t.permuted(perm)
      XCTAssertEqual(p.shape, [5, 3, 2, 4])
      let pw = (0..<120).map { i -> Double in
        let o = Ref.multiIndex(i, p.shape)
        var src = [Int](repeating: 0, count: 4)
        for (k, d) in perm.enumerated() { src[d] = o[k] }
        return Double(x[Ref.linear(src, shape)])
      }
      assertClose(try p.toArray(), pw, rtol: 0, atol: 0, "permute on \(device)")
      // transpose of a 129×33 matrix
      let m = randomValues(129 * 33, seed: 42)
      let mt = try Tensor(m, shape: [129, 33], on: device).transposed()
      XCTAssertEqual(mt.shape, [33, 129])
      assertClose(
        try mt.toArray(), (0..<(33 * 129)).map { Double(m[($0 % 129) * 33 + $0 / 129]) }, rtol: 0, atol: 0,
        "transpose")
      // reshape shares data; -1 inferred
      XCTAssertEqual(try t.reshaped([6, -1]).shape, [6, 20])
      XCTAssertThrowsError(try t.reshaped([7, -1]))
      // slice with step and negative start
      let s = try t.slice(axis: 2, start: -3, end: 4, step: 2)
      XCTAssertEqual(s.shape, [2, 3, 2, 5])
      let sw = (0..<s.count).map { i -> Double in
        var o = Ref.multiIndex(i, s.shape)
        o[2] = 1 + o[2] * 2
        return Double(x[Ref.linear(o, shape)])
      }
      assertClose(try s.toArray(), sw, rtol: 0, atol: 0, "slice on \(device)")
      XCTAssertEqual(try t.slice(axis: 0, start: 5).shape, [0, 3, 4, 5])
      // concat along axis 1, including an empty piece
      let a = randomValues(2 * 3 * 4, seed: 43), b = randomValues(2 * 1 * 4, seed: 44)
      let c = try Tensor.concat(
        [
          try Tensor(a, shape: [2, 3, 4], on: device), try Tensor([], shape: [2, 0, 4], on: device),
          try Tensor(b, shape: [2, 1, 4], on: device),
        ],
        axis: 1)
      XCTAssertEqual(c.shape, [2, 4, 4])
      let cw = (0..<32).map { i -> Double in
        let o = Ref.multiIndex(i, [2, 4, 4])
        return o[1] < 3
          ? Double(a[Ref.linear(o, [2, 3, 4])]) : Double(b[Ref.linear([o[0], 0, o[2]], [2, 1, 4])])
      }
      assertClose(try c.toArray(), cw, rtol: 0, atol: 0, "concat on \(device)")
      XCTAssertThrowsError(try Tensor.concat([t, try Tensor.zeros([2, 3, 4, 6], on: device)], axis: 1))
    }
  }

  /// Float64 GEMM reference plus Σ|a||b| per output (for the error bound).
  func refGemm(
    _ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transA: Bool, transB: Bool, batch: Int, sharedB: Bool
  ) -> (value: [Double], magnitude: [Double]) {
    var out = [Double](repeating: 0, count: batch * m * n), mag = out
    for bi in 0..<batch {
      let ao = bi * m * k, bo = sharedB ? 0 : bi * k * n
      for i in 0..<m {
        for j in 0..<n {
          var s = 0.0, g = 0.0
          for p in 0..<k {
            let av = Double(a[ao + (transA ? p * m + i : i * k + p)])
            let bv = Double(b[bo + (transB ? j * k + p : p * n + j)])
            s += av * bv
            g += Swift.abs(av * bv)
          }
          out[bi * m * n + i * n + j] = s
          mag[bi * m * n + i * n + j] = g
        }
      }
    }
    return (out, mag)
  }

  func assertGemm(
    _ got: [Float], _ want: [Double], _ mag: [Double], k: Int, _ what: String, file: StaticString = #filePath,
    line: UInt = #line
  ) {
    // Deterministic float32 accumulation bound: |err| ≤ γ_K · Σ|a||b| (plus epilogue rounding).
    let gamma = Double(k + 4) * 6e-8
    XCTAssertEqual(got.count, want.count, what, file: file, line: line)
    for i in 0..<Swift.min(got.count, want.count) {
      let tol = gamma * mag[i] + 1e-6 * Swift.abs(want[i]) + 1e-6
      if !(Swift.abs(Double(got[i]) - want[i]) <= tol) {
        XCTFail(
          "\(what): element \(i) is \(got[i]), expected \(want[i]) (tol \(tol))", file: file, line: line)
        return
      }
    }
  }

  func testGemmShapesAndTransposes() throws {
    let shapes = [
      (1, 1, 1), (7, 33, 129), (129, 7, 33), (33, 129, 1000), (1000, 1, 7), (65, 130, 67), (0, 5, 3),
      (5, 3, 0),
    ]
    for device in allDevices() {
      for (m, n, k) in shapes {
        for transA in [false, true] {
          for transB in [false, true] {
            let a = randomValues(m * k, seed: UInt64(m * 31 + k)),
              b = randomValues(k * n, seed: UInt64(n * 17 + k))
            let ta = try Tensor(a, shape: transA ? [k, m] : [m, k], on: device)
            let tb = try Tensor(b, shape: transB ? [n, k] : [k, n], on: device)
            let y = try Tensor.gemm(ta, tb, transA: transA, transB: transB)
            XCTAssertEqual(y.shape, [m, n])
            let r = refGemm(a, b, m: m, n: n, k: k, transA: transA, transB: transB, batch: 1, sharedB: false)
            assertGemm(
              try y.toArray(), r.value, r.magnitude, k: k,
              "gemm \(m)×\(n)×\(k) tA=\(transA) tB=\(transB) on \(device)")
          }
        }
      }
    }
  }

  func testGemmBatchedAlphaBetaEpilogue() throws {
    let (batch, m, n, k) = (3, 33, 129, 7)
    let acts: [Activation] = [.none, .relu, .leakyRelu, .silu, .gelu, .sigmoid, .tanh]
    for device in allDevices() {
      for sharedB in [false, true] {
        let a = randomValues(batch * m * k, seed: 61),
          b = randomValues((sharedB ? 1 : batch) * k * n, seed: 62)
        let c = randomValues(batch * m * n, seed: 63)
        let ta = try Tensor(a, shape: [batch, k, m], on: device)
        let tb = try Tensor(b, shape: sharedB ? [k, n] : [batch, k, n], on: device)
        let tc = try Tensor(c, shape: [batch, m, n], on: device)
        let r = refGemm(a, b, m: m, n: n, k: k, transA: true, transB: false, batch: batch, sharedB: sharedB)
        for (mode, biasLen) in [(BiasMode.perColumn, n), (BiasMode.perRow, m)] {
          let bias = randomValues(biasLen, seed: 64)
          for act in acts {
            let y = try Tensor.gemm(
              ta, tb, transA: true, alpha: 0.5, beta: 2, c: tc,
              bias: try Tensor(bias, shape: [biasLen], on: device),
              biasMode: mode, activation: act, activationAlpha: 0.1)
            XCTAssertEqual(y.shape, [batch, m, n])
            let want = (0..<(batch * m * n)).map { i -> Double in
              let row = (i / n) % m, col = i % n
              let v = 0.5 * r.value[i] + 2 * Double(c[i]) + Double(bias[mode == .perColumn ? col : row])
              switch act {
              case .none: return v
              case .relu: return Swift.max(v, 0)
              case .leakyRelu: return v >= 0 ? v : 0.1 * v
              case .silu: return v / (1 + Foundation.exp(-v))
              case .gelu: return 0.5 * v * (1 + Foundation.erf(v / 2.0.squareRoot()))
              case .sigmoid: return 1 / (1 + Foundation.exp(-v))
              case .tanh: return Foundation.tanh(v)
              }
            }
            let mag = r.magnitude.enumerated().map {
              0.5 * $0.element + 2 * Double(Swift.abs(c[$0.offset])) + 1
            }
            assertGemm(
              try y.toArray(), want, mag.map { $0 * 4 }, k: k,
              "batched shared=\(sharedB) \(mode) \(act) on \(device)")
          }
        }
        // C is an input only.
        XCTAssertEqual(try tc.toArray(), c)
      }
    }
  }

  // MARK: Fused batch norm

  /// `Tensor.batchNorm` as it was composed before it became one fused op: the parity oracle of the fused
  /// forward, its running-statistics update and its tape gradients.
  static func composedBatchNorm(
    _ x: Tensor, weight: Tensor?, bias: Tensor?, runningMean: Tensor, runningVar: Tensor, training: Bool,
    momentum: Float, eps: Float
  ) throws -> Tensor {
    let c = x.shape[1]
    let bshape = [1, c] + Array(repeating: 1, count: x.rank - 2)
    let axes = [0] + Array(2..<x.rank)
    let mean: Tensor, variance: Tensor
    if training {
      mean = try x.mean(axes: axes, keepDims: true)
      let centred = try x - mean
      variance = try (centred * centred).mean(axes: axes, keepDims: true)
      try Tape.noGrad {
        let n = Float(x.count / Swift.max(c, 1))
        let unbiased = try variance.reshaped([c]) * (n / Swift.max(n - 1, 1))
        let newMean = try runningMean.reshaped([c]) * (1 - momentum) + mean.reshaped([c]) * momentum
        let newVar = try runningVar.reshaped([c]) * (1 - momentum) + unbiased * momentum
        try runningMean.assign(newMean)
        try runningVar.assign(newVar)
      }
    } else {
      mean = try runningMean.reshaped(bshape)
      variance = try runningVar.reshaped(bshape)
    }
    var y = try (x - mean) * (variance + eps).rsqrt()
    if let weight { y = try y * weight.reshaped(bshape) }
    if let bias { y = try y + bias.reshaped(bshape) }
    return y
  }

  /// The fused batch norm against the composed formula on every device, on odd shapes (N = 3, C = 5, 7×7;
  /// N·HW = 1; N = 1; rank 2 and 3), with and without affine and with ReLU / leaky ReLU fused: training
  /// outputs, running statistics and the tape gradients of x, γ, β; evaluation outputs and gradients. Also the
  /// training forward against a Float64 reference.
  func testFusedBatchNormMatchesComposedFormula() throws {
    let shapes: [[Int]] = [
      [3, 5, 7, 7], [1, 3, 1, 1], [4, 2, 1, 1], [1, 2, 5, 3], [5, 3], [2, 3, 20], [8, 4, 14, 14],
    ]
    let acts: [(Activation, Float)] = [(.none, 0), (.relu, 0), (.leakyRelu, 0.2)]
    var worstForward = 0.0, worstReference = 0.0, worstStats = 0.0, worstGrad = 0.0
    func maxError(_ a: [Float], _ b: [Float]) -> Double {
      zip(a, b).map { Swift.abs(Double($0) - Double($1)) }.max() ?? 0
    }
    for device in allDevices() {
      for shape in shapes {
        let c = shape[1], m = shape.reduce(1, *) / c, hw = m / shape[0]
        let xv = randomValues(shape.reduce(1, *), seed: UInt64(shape.reduce(7, *)), in: -2...3)
        let wv = randomValues(c, seed: 5, in: 0.5...1.5), bv = randomValues(c, seed: 6, in: -0.5...0.5)
        let rmv = randomValues(c, seed: 7), rvv = randomValues(c, seed: 8, in: 0.5...1.5)
        let r = randomValues(xv.count, seed: 9)
        for affine in [true, false] {
          for (act, alpha) in acts {
            let label = "\(shape) affine \(affine) \(act) on \(device)"
            for training in [true, false] {
              var outputs: [[Float]] = [], grads: [[[Float]]] = [], stats: [[Float]] = []
              for fused in [true, false] {
                let x = try Tensor(xv, shape: shape, on: device)
                let w = affine ? try Tensor(wv, shape: [c], on: device) : nil
                let b = affine ? try Tensor(bv, shape: [c], on: device) : nil
                let rm = try Tensor(rmv, shape: [c], on: device), rv = try Tensor(rvv, shape: [c], on: device)
                let wrt = [x] + [w, b].compactMap { $0 }
                let tape = Tape()
                tape.watch(wrt)
                let (y, loss) = try tape.record {
                  let y: Tensor
                  if fused {
                    y = try x.batchNorm(
                      weight: w, bias: b, runningMean: rm, runningVar: rv, training: training, momentum: 0.1,
                      eps: 1e-5, activation: act, activationAlpha: alpha)
                  } else {
                    let z = try Self.composedBatchNorm(
                      x, weight: w, bias: b, runningMean: rm, runningVar: rv, training: training,
                      momentum: 0.1,
                      eps: 1e-5)
                    y = act == .none ? z : try z.apply(act.unaryOp, alpha: alpha)
                  }
                  return (y, try (y * Tensor(r, shape: shape, on: device)).sum())
                }
                XCTAssertEqual(y.shape, shape, label)
                outputs.append(try y.toArray())
                grads.append(
                  try tape.gradients(of: loss, wrt: wrt).map { try XCTUnwrap($0, label).toArray() })
                stats.append(try rm.toArray() + rv.toArray())
              }
              let mode = training ? "training" : "eval"
              assertClose(
                outputs[0], outputs[1].map(Double.init), rtol: Tol.reduction.rtol, atol: Tol.reduction.atol,
                "\(label) \(mode): fused vs composed forward")
              worstForward = Swift.max(worstForward, maxError(outputs[0], outputs[1]))
              assertClose(
                stats[0], stats[1].map(Double.init), rtol: 1e-5, atol: 1e-6,
                "\(label) \(mode): running statistics")
              worstStats = Swift.max(worstStats, maxError(stats[0], stats[1]))
              for (k, g) in grads[0].enumerated() {
                assertClose(
                  g, grads[1][k].map(Double.init), rtol: 1e-4, atol: 1e-4,
                  "\(label) \(mode): fused vs composed gradient \(k)")
                worstGrad = Swift.max(worstGrad, maxError(g, grads[1][k]))
              }
              guard training else { continue }
              // Float64: per channel over (N, HW), biased variance.
              var want = [Double](repeating: 0, count: xv.count)
              for ch in 0..<c {
                var idx: [Int] = []
                for n in 0..<shape[0] { idx += Array(((n * c + ch) * hw)..<((n * c + ch + 1) * hw)) }
                var mean = 0.0, v = 0.0
                for i in idx { mean += Double(xv[i]) }
                mean /= Double(m)
                for i in idx {
                  let d = Double(xv[i]) - mean
                  v += d * d
                }
                v /= Double(m)
                for i in idx {
                  var a = (Double(xv[i]) - mean) / (v + 1e-5).squareRoot()
                  if affine { a = a * Double(wv[ch]) + Double(bv[ch]) }
                  want[i] = act == .none ? a : (a >= 0 ? a : (act == .relu ? 0 : Double(alpha) * a))
                }
              }
              assertClose(
                outputs[0], want, rtol: Tol.reduction.rtol, atol: Tol.reduction.atol,
                "\(label): fused forward vs Float64")
              worstReference = Swift.max(
                worstReference, zip(outputs[0], want).map { Swift.abs(Double($0) - $1) }.max() ?? 0)
            }
          }
        }
      }
    }
    print(
      String(
        format: "ParityTests fused batch norm: max |fused − composed| forward %.2e, gradients %.2e, running "
          + "statistics %.2e; max |fused − Float64| forward %.2e", worstForward, worstGrad, worstStats,
        worstReference))
  }

  /// The batch-norm kernels GPUs run (a work-group per channel, 64 or 16 work-items, barrier trees) against
  /// the ones CPU devices run (a work-item per channel, 16-lane vectors), on every OpenCL device: training
  /// outputs, running statistics, gradients and evaluation outputs.
  func testFusedBatchNormWorkGroupKernelsMatchVectorKernels() throws {
    for device in openCLDevices() {
      let cl = try XCTUnwrap(device.openCL)
      func results(_ shape: [Int], affine: Bool, act: Activation) throws -> [[Float]] {
        let c = shape[1]
        let x = try Tensor(randomValues(shape.reduce(1, *), seed: 21, in: -2...3), shape: shape, on: device)
        let w = affine ? try Tensor(randomValues(c, seed: 22, in: 0.5...1.5), shape: [c], on: device) : nil
        let b = affine ? try Tensor(randomValues(c, seed: 23), shape: [c], on: device) : nil
        let rm = try Tensor.zeros([c], on: device), rv = try Tensor.full(1, shape: [c], on: device)
        let r = try Tensor(randomValues(x.count, seed: 24), shape: shape, on: device)
        var out: [[Float]] = []
        for training in [true, false] {
          let wrt = [x] + [w, b].compactMap { $0 }
          let tape = Tape()
          tape.watch(wrt)
          let (y, loss) = try tape.record {
            let y = try x.batchNorm(
              weight: w, bias: b, runningMean: rm, runningVar: rv, training: training, activation: act,
              activationAlpha: 0.2)
            return (y, try (y * r).sum())
          }
          out.append(try y.toArray())
          out += try tape.gradients(of: loss, wrt: wrt).map { try XCTUnwrap($0).toArray() }
          out.append(try rm.toArray() + rv.toArray())
        }
        return out
      }
      for (shape, affine, act) in [
        ([3, 5, 7, 7], true, Activation.relu), ([2, 3, 20], false, .leakyRelu), ([1, 4, 1, 1], true, .none),
        ([70, 3], true, .leakyRelu),
      ] {
        let serial = try results(shape, affine: affine, act: act)
        for size in [64, 16] where size <= cl.info.maxWorkGroupSize {
          cl.reduceGroupSizeOverride = size
          defer { cl.reduceGroupSizeOverride = nil }
          for (k, (a, b)) in zip(try results(shape, affine: affine, act: act), serial).enumerated() {
            assertClose(
              a, b.map(Double.init), rtol: 1e-5, atol: 2e-6,
              "batch norm \(shape) \(act) result \(k), group size \(size) on \(device)")
          }
        }
      }
    }
  }
}
