// `gpugen selftest`: every Backend method against a Float64 reference at sizes that break tiling, each
// OpenCL kernel variant (the GPU variants forced on any device), a sampler step and the gradient of a small
// network. No test framework: each check returns the worst error, which the table compares with its
// tolerance.
import Foundation

/// One row of the self-test table.
public struct SelfTestResult: Sendable, Codable, Equatable {
  /// What was checked (the op and its case).
  public var check: String
  /// The device spec, with the forced kernel variants if any (`opencl:0 [gpu variants]`).
  public var device: String
  /// The worst |got − want| over the output, divided by the reference's largest magnitude (at least 1e-6).
  public var worstError: Double
  /// The largest error that passes.
  public var tolerance: Double
  /// Whether the check passed (a NaN error or a thrown error fails).
  public var passed: Bool
  /// The error message when the check threw instead of finishing.
  public var failure: String?
}

/// A self-test check: a name, a tolerance and a body that returns the device's values and the reference.
public struct SelfTestCheck {
  /// The row's name.
  public var name: String
  /// The largest relative error that passes.
  public var tolerance: Double
  /// Runs the op on the device and returns (got, want) or (got, want, scale).
  public var body: (Device) throws -> SelfTestOutcome

  /// A check named `name` passing at `tolerance`.
  public init(_ name: String, tolerance: Double, _ body: @escaping (Device) throws -> SelfTestOutcome) {
    self.name = name
    self.tolerance = tolerance
    self.body = body
  }
}

/// What a check's body returns: the device's values, the Float64 reference and the error's scale.
public struct SelfTestOutcome {
  /// The device's values.
  public var got: [Float]
  /// The reference values.
  public var want: [Double]
  /// The magnitude errors are divided by (default: the reference's largest magnitude, at least 1e-6).
  public var scale: Double?

  /// An outcome comparing `got` with `want`, errors relative to `scale` (or the reference's max magnitude).
  public init(got: [Float], want: [Double], scale: Double? = nil) {
    self.got = got
    self.want = want
    self.scale = scale
  }

  /// The worst error relative to the scale; NaN (a failure) when the lengths differ or a value is NaN.
  public var worstError: Double {
    guard got.count == want.count else { return .nan }
    let s = Swift.max(scale ?? want.reduce(0) { Swift.max($0, Swift.abs($1)) }, 1e-6)
    var worst = 0.0
    for (g, w) in zip(got, want) {
      let e = Swift.abs(Double(g) - w)
      if e.isNaN { return .nan }
      worst = Swift.max(worst, e / s)
    }
    return worst
  }
}

/// The engine's self test.
public enum SelfTest {
  /// Runs `checks` on `device` (each under the kernel variants in `variants` on an OpenCL device) and returns
  /// one row per check and variant. A check that throws is a failed row, never a crash.
  /// `fault` (for testing the failure path, `GPUGEN_SELFTEST_FAULT` on the command line) adds 1 to the first
  /// value of every check whose name contains it.
  public static func run(
    _ checks: [SelfTestCheck], on device: Device, variants: [KernelVariants] = [.device], fault: String? = nil
  ) -> [SelfTestResult] {
    var rows: [SelfTestResult] = []
    let cl = device.openCL
    for v in cl == nil ? [KernelVariants.device] : variants {
      let label = v == .device ? device.spec : "\(device.spec) [\(v.rawValue) variants]"
      let previous = cl?.kernelVariants
      cl?.kernelVariants = v
      defer { if let previous { cl?.kernelVariants = previous } }
      for c in checks {
        do {
          var o = try c.body(device)
          if let fault, !fault.isEmpty, c.name.contains(fault), !o.got.isEmpty { o.got[0] += 1 }
          // A check with nothing to compare (an op this backend does not implement) adds no row.
          if o.got.isEmpty && o.want.isEmpty { continue }
          let e = o.worstError
          rows.append(
            SelfTestResult(
              check: c.name, device: label, worstError: e, tolerance: c.tolerance, passed: e <= c.tolerance))
        } catch {
          rows.append(
            SelfTestResult(
              check: c.name, device: label, worstError: .nan, tolerance: c.tolerance, passed: false,
              failure: "\(error)"))
        }
      }
    }
    return rows
  }

  /// The kernel checks whose OpenCL kernels differ between the GPU and CPU variants.
  public static func variantChecks(quick: Bool) -> [SelfTestCheck] {
    gemmChecks(quick: quick) + reductionChecks(quick: quick) + normChecks(quick: quick)
      + [copyCheck(shape: [130, 3, 5], perm: [0, 2, 1]), copyCheck(shape: [7, 33], perm: [1, 0])]
      + [sumOfSquaresCheck(quick ? 5000 : 40_000), sumOfSquaresCheck(7)]
  }

  /// Every Backend method against a Float64 reference (the variant checks included), a sampler step and the
  /// gradient of a small network.
  public static func backendChecks(quick: Bool) -> [SelfTestCheck] {
    elementwiseChecks(quick: quick) + variantChecks(quick: quick) + convChecks(quick: quick)
      + noiseChecks() + trainingChecks() + [gradientCheck()]
  }
}

// MARK: Helpers

extension SelfTest {
  /// Deterministic values in [lo, hi].
  static func values(_ n: Int, seed: UInt64, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
    var out = [Float]()
    out.reserveCapacity(n)
    var j = 0
    while out.count < n {
      let w = Philox4x32.block(
        counter: SIMD4(UInt32(j), 0, 0, 0x5e1f), key: Philox4x32.key(seed: seed))
      for e in 0..<4 where out.count < n { out.append(lo + Philox4x32.uniform(w[e]) * (hi - lo)) }
      j += 1
    }
    return out
  }

  static func upload(_ v: [Float], _ d: Device) throws -> Buffer {
    let b = try d.backend.allocate(v.count)
    try v.withUnsafeBufferPointer { try d.backend.upload($0, to: b) }
    return b
  }

  static func download(_ b: Buffer, _ n: Int, _ d: Device) throws -> [Float] {
    try d.backend.download(b, count: n)
  }

  static func dbl(_ v: [Float]) -> [Double] { v.map(Double.init) }
}

// MARK: Elementwise

extension SelfTest {
  static func unaryRef(_ op: UnaryOp, _ v: Double, _ alpha: Double) -> Double {
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
    case .leakyRelu: return v >= 0 ? v : alpha * v
    case .silu: return v / (1 + Foundation.exp(-v))
    case .gelu: return 0.5 * v * (1 + Foundation.erf(v / 2.0.squareRoot()))
    }
  }

  static func unaryDerivative(_ op: UnaryOp, _ v: Double, _ alpha: Double) -> Double {
    let s = 1 / (1 + Foundation.exp(-v))
    switch op {
    case .neg: return -1
    case .abs: return v > 0 ? 1 : (v < 0 ? -1 : 0)
    case .exp: return Foundation.exp(v)
    case .log: return 1 / v
    case .sqrt: return 0.5 / v.squareRoot()
    case .rsqrt: return -0.5 / (v * v.squareRoot())
    case .sin: return Foundation.cos(v)
    case .cos: return -Foundation.sin(v)
    case .tanh: return 1 - Foundation.tanh(v) * Foundation.tanh(v)
    case .sigmoid: return s * (1 - s)
    case .relu: return v > 0 ? 1 : 0
    case .leakyRelu: return v > 0 ? 1 : alpha
    case .silu: return s * (1 + v * (1 - s))
    case .gelu:
      return 0.5 * (1 + Foundation.erf(v / 2.0.squareRoot())) + v * Foundation.exp(-v * v / 2)
        / (2 * Double.pi).squareRoot()
    }
  }

  static func binaryRef(_ op: BinaryOp, _ p: Double, _ q: Double) -> Double {
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

  static func elementwiseChecks(quick: Bool) -> [SelfTestCheck] {
    let n = quick ? 129 : 1000
    var out: [SelfTestCheck] = []
    out.append(
      SelfTestCheck("fill n=\(n)", tolerance: 0) { d in
        let y = try d.backend.allocate(n)
        try d.backend.fill(y, count: n, value: 2.5)
        return SelfTestOutcome(got: try download(y, n, d), want: Array(repeating: 2.5, count: n))
      })
    for op in UnaryOp.allCases {
      let positive = [.log, .sqrt, .rsqrt].contains(op)
      let exact = [.neg, .abs, .relu, .leakyRelu].contains(op)
      out.append(
        SelfTestCheck("unary \(op.rawValue) n=\(n)", tolerance: exact ? 1e-7 : 2e-6) { d in
          let x = values(n, seed: 1, positive ? 0.05 : -4, 4)
          let xb = try upload(x, d), y = try d.backend.allocate(n)
          try d.backend.unary(op, xb, y, count: n, alpha: 0.2)
          return SelfTestOutcome(got: try download(y, n, d), want: x.map { unaryRef(op, Double($0), 0.2) })
        })
      out.append(
        SelfTestCheck("unaryGrad \(op.rawValue) n=\(n)", tolerance: exact ? 1e-7 : 2e-6) { d in
          let x = values(n, seed: 2, positive ? 0.05 : -4, 4), dy = values(n, seed: 3)
          let xb = try upload(x, d), dyb = try upload(dy, d), dx = try d.backend.allocate(n)
          try d.backend.unaryGrad(op, xb, dyb, dx, count: n, alpha: 0.2)
          let want = zip(x, dy).map { Double($1) * unaryDerivative(op, Double($0), 0.2) }
          return SelfTestOutcome(got: try download(dx, n, d), want: want)
        })
    }
    // Broadcast layouts: contiguous, a row broadcast and a rank-3 one with a broadcast middle axis.
    let layouts: [(String, [Int], [Int], [Int])] = [
      ("contiguous", [n], [n], [n]), ("(33,7)+(1,7)", [33, 7], [33, 7], [1, 7]),
      ("(5,3,9)+(5,1,9)", [5, 3, 9], [5, 3, 9], [5, 1, 9]),
    ]
    for op in BinaryOp.allCases {
      for (label, shape, sa, sb) in layouts {
        out.append(
          SelfTestCheck("binary \(op.rawValue) \(label)", tolerance: op == .pow ? 2e-6 : 1e-6) { d in
            let a = values(Shape.count(sa), seed: 4, 0.5, 2), b = values(Shape.count(sb), seed: 5, 0.5, 2)
            let ab = try upload(a, d), bb = try upload(b, d), y = try d.backend.allocate(Shape.count(shape))
            let stA = Shape.broadcastStrides(sa, to: shape), stB = Shape.broadcastStrides(sb, to: shape)
            try d.backend.binary(op, ab, bb, y, layout: BroadcastLayout(shape: shape, strides: [stA, stB]))
            let want = (0..<Shape.count(shape)).map { i in
              binaryRef(op, Double(a[offset(i, shape, stA)]), Double(b[offset(i, shape, stB)]))
            }
            return SelfTestOutcome(got: try download(y, Shape.count(shape), d), want: want)
          })
      }
      out.append(
        SelfTestCheck("binaryScalar \(op.rawValue) n=\(n)", tolerance: op == .pow ? 2e-6 : 1e-6) { d in
          let a = values(n, seed: 6, 0.5, 2)
          let ab = try upload(a, d), y = try d.backend.allocate(2 * n)
          try d.backend.binaryScalar(op, ab, scalar: 1.5, scalarFirst: false, y, count: n)
          let y2 = try d.backend.allocate(n)
          try d.backend.binaryScalar(op, ab, scalar: 1.5, scalarFirst: true, y2, count: n)
          let got = try download(y, n, d) + download(y2, n, d)
          let want = a.map { binaryRef(op, Double($0), 1.5) } + a.map { binaryRef(op, 1.5, Double($0)) }
          return SelfTestOutcome(got: got, want: want)
        })
    }
    out.append(
      SelfTestCheck("clamp + clampGrad n=\(n)", tolerance: 0) { d in
        let x = values(n, seed: 7, -3, 3), dy = values(n, seed: 8)
        let xb = try upload(x, d), dyb = try upload(dy, d), y = try d.backend.allocate(n)
        let dx = try d.backend.allocate(n)
        try d.backend.clamp(xb, y, count: n, lower: -1, upper: 0.5)
        try d.backend.clampGrad(xb, dyb, dx, count: n, lower: -1, upper: 0.5)
        let want =
          x.map { Swift.min(Swift.max(Double($0), -1), 0.5) }
          + zip(x, dy).map { $0 >= -1 && $0 <= 0.5 ? Double($1) : 0 }
        return SelfTestOutcome(got: try download(y, n, d) + download(dx, n, d), want: want)
      })
    out.append(
      SelfTestCheck("select (33,1)?(1,129):(1)", tolerance: 0) { d in
        let shape = [33, 129]
        let c = values(33, seed: 9).map { $0 > 0 ? Float(1) : 0 }, a = values(129, seed: 10), b = [Float(7)]
        let sc = Shape.broadcastStrides([33, 1], to: shape), sa = Shape.broadcastStrides([1, 129], to: shape)
        let sb = Shape.broadcastStrides([1], to: shape)
        let y = try d.backend.allocate(33 * 129)
        try d.backend.select(
          try upload(c, d), try upload(a, d), try upload(b, d), y,
          layout: BroadcastLayout(shape: shape, strides: [sc, sa, sb]))
        let want = (0..<33 * 129).map { i in
          c[offset(i, shape, sc)] != 0 ? Double(a[offset(i, shape, sa)]) : Double(b[0])
        }
        return SelfTestOutcome(got: try download(y, 33 * 129, d), want: want)
      })
    return out
  }

  /// The element offset of linear index `i` of `shape` under `strides`.
  static func offset(_ i: Int, _ shape: [Int], _ strides: [Int]) -> Int {
    var idx = i, off = 0
    for a in stride(from: shape.count - 1, through: 0, by: -1) {
      off += (idx % shape[a]) * strides[a]
      idx /= shape[a]
    }
    return off
  }

  /// A permuted copy into a buffer with an offset (the strided kernel; runs of the last axes on CPU variants).
  static func copyCheck(shape: [Int], perm: [Int]) -> SelfTestCheck {
    SelfTestCheck("copyStrided \(shape) permuted \(perm)", tolerance: 0) { d in
      let count = Shape.count(shape)
      let x = values(count, seed: 11)
      let outShape = perm.map { shape[$0] }
      let xs = Shape.strides(shape)
      // Copy over the output's index space: y[3 + i] = x[permuted i].
      let copy = StridedCopy(
        shape: outShape, xStrides: perm.map { xs[$0] }, xOffset: 0, yStrides: Shape.strides(outShape),
        yOffset: 3)
      let y = try d.backend.allocate(count + 3)
      try d.backend.fill(y, count: count + 3, value: -9)
      try d.backend.copyStrided(try upload(x, d), y, copy)
      let want = [-9, -9, -9] + (0..<count).map { Double(x[offset($0, outShape, copy.xStrides)]) }
      return SelfTestOutcome(got: try download(y, count + 3, d), want: want)
    }
  }
}

// MARK: Reductions, GEMM, normalisation

extension SelfTest {
  static func reduceRef(_ op: ReduceOp, _ row: [Double], correction: Int) -> Double {
    let n = Double(row.count)
    switch op {
    case .sum: return row.reduce(0, +)
    case .mean: return row.reduce(0, +) / n
    case .max: return row.max()!
    case .variance:
      let m = row.reduce(0, +) / n
      return row.map { ($0 - m) * ($0 - m) }.reduce(0, +) / (n - Double(correction))
    }
  }

  static func reductionChecks(quick: Bool) -> [SelfTestCheck] {
    let cases: [(Int, Int, Int)] =
      quick ? [(7, 129, 1), (3, 33, 5)] : [(7, 1000, 1), (33, 129, 1), (3, 33, 65)]
    var out: [SelfTestCheck] = []
    for (outer, r, inner) in cases {
      for op in ReduceOp.allCases {
        out.append(
          SelfTestCheck("reduce \(op) (\(outer),\(r),\(inner))", tolerance: 1e-5) { d in
            let x = values(outer * r * inner, seed: 12, -3, 3)
            let y = try d.backend.allocate(outer * inner)
            try d.backend.reduce(op, try upload(x, d), y, outer: outer, r: r, inner: inner, correction: 1)
            var want: [Double] = []
            for o in 0..<outer {
              for i in 0..<inner {
                want.append(reduceRef(op, (0..<r).map { Double(x[(o * r + $0) * inner + i]) }, correction: 1))
              }
            }
            return SelfTestOutcome(got: try download(y, outer * inner, d), want: want)
          })
      }
      for log in [false, true] {
        out.append(
          SelfTestCheck("\(log ? "logSoftmax" : "softmax") (\(outer),\(r),\(inner))", tolerance: 2e-6) { d in
            let x = values(outer * r * inner, seed: 13, -3, 3)
            let y = try d.backend.allocate(x.count)
            try d.backend.softmax(try upload(x, d), y, outer: outer, r: r, inner: inner, log: log)
            var want = [Double](repeating: 0, count: x.count)
            for o in 0..<outer {
              for i in 0..<inner {
                let idx = (0..<r).map { (o * r + $0) * inner + i }
                let m = idx.map { Double(x[$0]) }.max()!
                let s = idx.map { Foundation.exp(Double(x[$0]) - m) }.reduce(0, +)
                for j in idx {
                  want[j] = log ? Double(x[j]) - m - Foundation.log(s) : Foundation.exp(Double(x[j]) - m) / s
                }
              }
            }
            return SelfTestOutcome(got: try download(y, x.count, d), want: want)
          })
      }
    }
    return out
  }

  static func gemmChecks(quick: Bool) -> [SelfTestCheck] {
    let shapes = quick ? [(1, 1, 1), (7, 33, 20), (33, 17, 65)] : [(1, 1, 1), (7, 33, 129), (65, 130, 67)]
    var out: [SelfTestCheck] = []
    for (m, n, k) in shapes {
      for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        out.append(
          SelfTestCheck(
            "gemm \(m)x\(n)x\(k) tA=\(ta ? 1 : 0) tB=\(tb ? 1 : 0) bias+relu batch 2", tolerance: 1e-5
          ) {
            d in
            let batch = 2
            let a = values(batch * m * k, seed: 14), b = values(batch * k * n, seed: 15)
            let c = values(batch * m * n, seed: 16), bias = values(n, seed: 17)
            let cb = try upload(c, d)
            var g = GemmDescriptor(m: m, n: n, k: k, transA: ta, transB: tb)
            (g.alpha, g.beta, g.batch, g.biasMode, g.activation) = (0.5, 1.5, batch, .perColumn, .relu)
            try d.backend.gemm(g, try upload(a, d), try upload(b, d), cb, bias: try upload(bias, d))
            var want: [Double] = []
            var scale = 1.0
            for bi in 0..<batch {
              for i in 0..<m {
                for j in 0..<n {
                  var s = 0.0, mag = 0.0
                  for p in 0..<k {
                    let av = Double(a[bi * m * k + (ta ? p * m + i : i * k + p)])
                    let bv = Double(b[bi * k * n + (tb ? j * k + p : p * n + j)])
                    s += av * bv
                    mag += Swift.abs(av * bv)
                  }
                  scale = Swift.max(scale, mag)
                  want.append(Swift.max(0.5 * s + 1.5 * Double(c[(bi * m + i) * n + j]) + Double(bias[j]), 0))
                }
              }
            }
            return SelfTestOutcome(got: try download(cb, batch * m * n, d), want: want, scale: scale)
          })
      }
    }
    return out
  }

  /// Float64 group norm (+ SiLU) of (n, c, hw).
  static func groupNormRef(
    _ x: [Double], _ gamma: [Double], _ beta: [Double], n: Int, c: Int, hw: Int, groups: Int, eps: Double,
    silu: Bool
  ) -> [Double] {
    var y = [Double](repeating: 0, count: x.count)
    let cpg = c / groups, count = cpg * hw
    for s in 0..<n {
      for g in 0..<groups {
        let base = (s * c + g * cpg) * hw
        let m = (0..<count).map { x[base + $0] }.reduce(0, +) / Double(count)
        let v = (0..<count).map { (x[base + $0] - m) * (x[base + $0] - m) }.reduce(0, +) / Double(count)
        let r = 1 / (v + eps).squareRoot()
        for i in 0..<count {
          let ch = g * cpg + i / hw
          let a = (x[base + i] - m) * r * gamma[ch] + beta[ch]
          y[base + i] = silu ? a / (1 + Foundation.exp(-a)) : a
        }
      }
    }
    return y
  }

  static func normChecks(quick: Bool) -> [SelfTestCheck] {
    let (n, c, hw, groups) = quick ? (2, 8, 33, 4) : (3, 16, 129, 4)
    var out: [SelfTestCheck] = []
    for silu in [false, true] {
      out.append(
        SelfTestCheck("groupNorm (\(n),\(c),\(hw)) \(groups) groups\(silu ? " +silu" : "")", tolerance: 1e-5)
        { d in
          let x = values(n * c * hw, seed: 18, -2, 3), gamma = values(c, seed: 19, 0.5, 1.5),
            beta = values(c, seed: 20)
          let y = try d.backend.allocate(x.count)
          try d.backend.groupNorm(
            try upload(x, d), y, gamma: try upload(gamma, d), beta: try upload(beta, d), n: n, c: c, hw: hw,
            groups: groups, eps: 1e-5, silu: silu)
          let want = groupNormRef(
            dbl(x), dbl(gamma), dbl(beta), n: n, c: c, hw: hw, groups: groups, eps: 1e-5, silu: silu)
          return SelfTestOutcome(got: try download(y, x.count, d), want: want)
        })
      out.append(
        SelfTestCheck("groupNormBackward (\(n),\(c),\(hw))\(silu ? " +silu" : "")", tolerance: 2e-5) { d in
          let x = values(n * c * hw, seed: 21, -2, 3), gamma = values(c, seed: 22, 0.5, 1.5)
          let beta = values(c, seed: 23), dy = values(n * c * hw, seed: 24)
          let dx = try d.backend.allocate(x.count), dg = try d.backend.allocate(n * c),
            db = try d.backend.allocate(n * c)
          try d.backend.groupNormBackward(
            try upload(x, d), try upload(dy, d), gamma: try upload(gamma, d), beta: try upload(beta, d),
            dx: dx,
            dgamma: dg, dbeta: db, n: n, c: c, hw: hw, groups: groups, eps: 1e-5, silu: silu)
          let want = groupNormBackwardRef(
            dbl(x), dbl(dy), dbl(gamma), dbl(beta), n: n, c: c, hw: hw, groups: groups, eps: 1e-5, silu: silu)
          let got = try download(dx, x.count, d) + download(dg, n * c, d) + download(db, n * c, d)
          return SelfTestOutcome(got: got, want: want.dx + want.dgamma + want.dbeta)
        })
    }
    for act in [Activation.none, .leakyRelu] {
      let geo = BatchNormGeometry(n: n, c: c, hw: hw, eps: 1e-5, activation: act, activationAlpha: 0.2)
      out.append(
        SelfTestCheck("batchNorm train+infer+backward (\(n),\(c),\(hw)) act=\(act)", tolerance: 2e-5) { d in
          try batchNormOutcome(geo, d)
        })
    }
    return out
  }

  static func groupNormBackwardRef(
    _ x: [Double], _ dy: [Double], _ gamma: [Double], _ beta: [Double], n: Int, c: Int, hw: Int, groups: Int,
    eps: Double, silu: Bool
  ) -> (dx: [Double], dgamma: [Double], dbeta: [Double]) {
    var dx = [Double](repeating: 0, count: x.count)
    var dg = [Double](repeating: 0, count: n * c), db = [Double](repeating: 0, count: n * c)
    let cpg = c / groups, count = cpg * hw
    for s in 0..<n {
      for g in 0..<groups {
        let base = (s * c + g * cpg) * hw
        let m = (0..<count).map { x[base + $0] }.reduce(0, +) / Double(count)
        let v = (0..<count).map { (x[base + $0] - m) * (x[base + $0] - m) }.reduce(0, +) / Double(count)
        let r = 1 / (v + eps).squareRoot()
        var xh = [Double](repeating: 0, count: count), gdA = [Double](repeating: 0, count: count)
        for i in 0..<count {
          let ch = g * cpg + i / hw
          xh[i] = (x[base + i] - m) * r
          let a = xh[i] * gamma[ch] + beta[ch]
          let sg = 1 / (1 + Foundation.exp(-a))
          let dA = dy[base + i] * (silu ? sg * (1 + a * (1 - sg)) : 1)
          dg[s * c + ch] += dA * xh[i]
          db[s * c + ch] += dA
          gdA[i] = gamma[ch] * dA
        }
        let mean1 = gdA.reduce(0, +) / Double(count)
        let mean2 = zip(gdA, xh).map(*).reduce(0, +) / Double(count)
        for i in 0..<count { dx[base + i] = r * (gdA[i] - mean1 - xh[i] * mean2) }
      }
    }
    return (dx, dg, db)
  }

  /// Batch norm in training mode (y, mean, invstd, running statistics), in evaluation mode, and its backward
  /// (dx, dγ, dβ), against Float64.
  static func batchNormOutcome(_ geo: BatchNormGeometry, _ d: Device) throws -> SelfTestOutcome {
    let (n, c, hw) = (geo.n, geo.c, geo.hw)
    let x = values(n * c * hw, seed: 25, -2, 3), gamma = values(c, seed: 26, 0.5, 1.5),
      beta = values(c, seed: 27)
    let rm0 = values(c, seed: 28), rv0 = values(c, seed: 29, 0.5, 2), dy = values(x.count, seed: 30)
    let xb = try upload(x, d), y = try d.backend.allocate(x.count), gb = try upload(gamma, d)
    let bb = try upload(beta, d), mean = try d.backend.allocate(c), invstd = try d.backend.allocate(c)
    let rm = try upload(rm0, d), rv = try upload(rv0, d)
    try d.backend.batchNormTraining(
      xb, y, gamma: gb, beta: bb, mean: mean, invstd: invstd, runningMean: rm, runningVar: rv, momentum: 0.1,
      geo)
    let yi = try d.backend.allocate(x.count)
    try d.backend.batchNormInference(xb, yi, gamma: gb, beta: bb, runningMean: rm, runningVar: rv, geo)
    let dx = try d.backend.allocate(x.count), dg = try d.backend.allocate(c), db = try d.backend.allocate(c)
    try d.backend.batchNormBackward(
      xb, y, try upload(dy, d), gamma: gb, mean: mean, invstd: invstd, dx: dx, dgamma: dg, dbeta: db,
      training: true, geo)
    let got =
      try download(y, x.count, d) + download(mean, c, d) + download(invstd, c, d) + download(rm, c, d)
      + download(rv, c, d) + download(yi, x.count, d) + download(dx, x.count, d) + download(dg, c, d)
      + download(db, c, d)
    // Reference.
    let alpha = Double(geo.activationAlpha)
    func act(_ v: Double) -> Double { geo.activation == .none ? v : (v >= 0 ? v : alpha * v) }
    let mcount = Double(n * hw)
    var wy = [Double](repeating: 0, count: x.count), wyi = wy, wdx = wy
    var wm = [Double](repeating: 0, count: c), wis = wm, wrm = wm, wrv = wm, wdg = wm, wdb = wm
    for ch in 0..<c {
      let idx = (0..<n).flatMap { s in (0..<hw).map { (s * c + ch) * hw + $0 } }
      let m = idx.map { Double(x[$0]) }.reduce(0, +) / mcount
      let v = idx.map { (Double(x[$0]) - m) * (Double(x[$0]) - m) }.reduce(0, +) / mcount
      let r = 1 / (v + Double(geo.eps)).squareRoot()
      (wm[ch], wis[ch]) = (m, r)
      wrm[ch] = Double(rm0[ch]) * 0.9 + m * 0.1
      wrv[ch] = Double(rv0[ch]) * 0.9 + v * mcount / (mcount - 1) * 0.1
      let ri = 1 / (wrv[ch] + Double(geo.eps)).squareRoot()
      var dAs: [Double] = [], xhs: [Double] = []
      for i in idx {
        let xh = (Double(x[i]) - m) * r
        let pre = xh * Double(gamma[ch]) + Double(beta[ch])
        wy[i] = act(pre)
        wyi[i] = act((Double(x[i]) - wrm[ch]) * ri * Double(gamma[ch]) + Double(beta[ch]))
        let dA = Double(dy[i]) * (geo.activation == .none || pre > 0 ? 1 : alpha)
        dAs.append(dA)
        xhs.append(xh)
      }
      wdb[ch] = dAs.reduce(0, +)
      wdg[ch] = zip(dAs, xhs).map(*).reduce(0, +)
      for (j, i) in idx.enumerated() {
        wdx[i] = Double(gamma[ch]) * r / mcount * (mcount * dAs[j] - wdb[ch] - xhs[j] * wdg[ch])
      }
    }
    return SelfTestOutcome(got: got, want: wy + wm + wis + wrm + wrv + wyi + wdx + wdg + wdb)
  }

  static func sumOfSquaresCheck(_ count: Int) -> SelfTestCheck {
    SelfTestCheck("sumOfSquares n=\(count) into slot 1", tolerance: 1e-5) { d in
      let x = values(count, seed: 31, -2, 2)
      let y = try upload([5, 6, 7], d)
      try d.backend.sumOfSquares(try upload(x, d), y, count: count, slot: 1)
      return SelfTestOutcome(
        got: try download(y, 3, d), want: [5, x.map { Double($0) * Double($0) }.reduce(0, +), 7])
    }
  }
}

// MARK: Convolution

extension SelfTest {
  /// Float64 2-D convolution (+ bias, per-image bias, residual) of NCHW `x`.
  static func convRef(
    _ x: [Double], _ w: [Double], bias: [Double]?, _ g: ConvGeometry, cout: Int, imageBias: [Double]? = nil,
    residual: [Double]? = nil
  ) -> [Double] {
    let (ho, wo) = (g.ho, g.wo)
    var y = [Double](repeating: 0, count: g.n * cout * ho * wo)
    for s in 0..<g.n {
      for o in 0..<cout {
        for oy in 0..<ho {
          for ox in 0..<wo {
            var acc = bias?[o] ?? 0
            for ci in 0..<g.c {
              for ky in 0..<g.kh {
                let iy = oy * g.strideH - g.padT + ky
                if iy < 0 || iy >= g.h { continue }
                for kx in 0..<g.kw {
                  let ix = ox * g.strideW - g.padL + kx
                  if ix < 0 || ix >= g.w { continue }
                  acc +=
                    x[((s * g.c + ci) * g.h + iy) * g.w + ix] * w[((o * g.c + ci) * g.kh + ky) * g.kw + kx]
                }
              }
            }
            let i = ((s * cout + o) * ho + oy) * wo + ox
            y[i] = acc + (imageBias?[s * cout + o] ?? 0) + (residual?[i] ?? 0)
          }
        }
      }
    }
    return y
  }

  static func convChecks(quick: Bool) -> [SelfTestCheck] {
    // (label, geometry, cout): a strided padded one (im2col + GEMM), a 1×1, and a Winograd candidate
    // (3×3 stride 1, ≥ 16 channels) whose output does not fill its 4×4 tiles.
    var strided = ConvGeometry(
      n: 2, c: 3, h: 9, w: 7, kh: 4, kw: 4, strideH: 2, strideW: 2, padT: 1, padL: 1, padB: 1, padR: 1)
    strided.batchMajor = false
    let cases: [(String, ConvGeometry, Int)] = [
      ("4x4/2 pad 1", strided, 5),
      ("1x1", ConvGeometry(n: 2, c: 6, h: 5, w: 3, kh: 1, kw: 1), 7),
      (
        "3x3 winograd",
        ConvGeometry(
          n: 2, c: 16, h: quick ? 6 : 13, w: quick ? 7 : 11, kh: 3, kw: 3, padT: 1, padL: 1, padB: 1, padR: 1),
        17
      ),
    ]
    var out: [SelfTestCheck] = []
    for (label, g, cout) in cases {
      out.append(
        SelfTestCheck("conv2d \(label) (\(g.n),\(g.c),\(g.h),\(g.w))→\(cout) +bias", tolerance: 1e-5) { d in
          let x = values(g.n * g.c * g.h * g.w, seed: 32), w = values(cout * g.k, seed: 33, -0.5, 0.5)
          let bias = values(cout, seed: 34)
          let y = try d.backend.allocate(g.n * cout * g.ho * g.wo)
          try d.backend.conv2d(
            try upload(x, d), weight: try upload(w, d), bias: try upload(bias, d), y, g, cout: cout,
            activation: .none, activationAlpha: 0)
          let want = convRef(dbl(x), dbl(w), bias: dbl(bias), g, cout: cout)
          return SelfTestOutcome(got: try download(y, want.count, d), want: want)
        })
    }
    let (_, wg, wc) = cases[2]
    out.append(
      SelfTestCheck("conv2dAdding 3x3 +imageBias +residual", tolerance: 1e-5) { d in
        let x = values(wg.n * wg.c * wg.h * wg.w, seed: 35), w = values(wc * wg.k, seed: 36, -0.5, 0.5)
        let bias = values(wc, seed: 37), ib = values(wg.n * wc, seed: 38)
        let res = values(wg.n * wc * wg.ho * wg.wo, seed: 39)
        let y = try d.backend.allocate(res.count)
        try d.backend.conv2dAdding(
          try upload(x, d), weight: try upload(w, d), bias: try upload(bias, d), imageBias: try upload(ib, d),
          residual: try upload(res, d), y, wg, cout: wc)
        let want = convRef(
          dbl(x), dbl(w), bias: dbl(bias), wg, cout: wc, imageBias: dbl(ib), residual: dbl(res))
        return SelfTestOutcome(got: try download(y, want.count, d), want: want)
      })
    for batchMajor in [false, true] {
      var g = strided
      g.batchMajor = batchMajor
      out.append(
        SelfTestCheck("im2col + col2im 4x4/2 pad 1\(batchMajor ? " batch-major" : "")", tolerance: 1e-6) {
          d in
          let x = values(g.n * g.c * g.h * g.w, seed: 40)
          let p = g.ho * g.wo
          let col = try d.backend.allocate(g.k * g.columns)
          try d.backend.im2col(try upload(x, d), col, g)
          let ccol = values(g.k * g.columns, seed: 41)
          let back = try d.backend.allocate(x.count)
          try d.backend.col2im(try upload(ccol, d), back, g)
          // Column index of (image s, position q) for row r.
          func colIndex(_ r: Int, _ s: Int, _ q: Int) -> Int {
            batchMajor ? (s * g.k + r) * p + q : r * g.columns + s * p + q
          }
          var want = [Double](repeating: 0, count: g.k * g.columns)
          var wantBack = [Double](repeating: 0, count: x.count)
          for s in 0..<g.n {
            for ci in 0..<g.c {
              for ky in 0..<g.kh {
                for kx in 0..<g.kw {
                  let r = (ci * g.kh + ky) * g.kw + kx
                  for oy in 0..<g.ho {
                    for ox in 0..<g.wo {
                      let iy = oy * g.strideH - g.padT + ky, ix = ox * g.strideW - g.padL + kx
                      let ci2 = colIndex(r, s, oy * g.wo + ox)
                      guard iy >= 0 && iy < g.h && ix >= 0 && ix < g.w else { continue }
                      let xi = ((s * g.c + ci) * g.h + iy) * g.w + ix
                      want[ci2] = Double(x[xi])
                      wantBack[xi] += Double(ccol[ci2])
                    }
                  }
                }
              }
            }
          }
          return SelfTestOutcome(
            got: try download(col, want.count, d) + download(back, x.count, d), want: want + wantBack)
        })
    }
    out.append(
      SelfTestCheck("conv2dWeightGradient 3x3 (where the backend has it)", tolerance: 1e-5) { d in
        let g = ConvGeometry(n: 2, c: 3, h: 7, w: 6, kh: 3, kw: 3, padT: 1, padL: 1, padB: 1, padR: 1)
        let cout = 5
        let x = values(g.n * g.c * g.h * g.w, seed: 42), dy = values(g.n * cout * g.ho * g.wo, seed: 43)
        let dw = try d.backend.allocate(cout * g.k)
        var want = [Double](repeating: 0, count: cout * g.k)
        for s in 0..<g.n {
          for o in 0..<cout {
            for ci in 0..<g.c {
              for ky in 0..<3 {
                for kx in 0..<3 {
                  var acc = 0.0
                  for oy in 0..<g.ho {
                    for ox in 0..<g.wo {
                      let iy = oy - 1 + ky, ix = ox - 1 + kx
                      guard iy >= 0 && iy < g.h && ix >= 0 && ix < g.w else { continue }
                      acc +=
                        Double(x[((s * g.c + ci) * g.h + iy) * g.w + ix])
                        * Double(dy[((s * cout + o) * g.ho + oy) * g.wo + ox])
                    }
                  }
                  want[((o * g.c + ci) * 3 + ky) * 3 + kx] += acc
                }
              }
            }
          }
        }
        guard try d.backend.conv2dWeightGradient(try upload(x, d), try upload(dy, d), dw, g, cout: cout)
        else {
          return SelfTestOutcome(got: [], want: [])  // no direct kernel on this backend: nothing to compare
        }
        return SelfTestOutcome(got: try download(dw, want.count, d), want: want)
      })
    return out
  }
}

// MARK: Noise, sampling, training

extension SelfTest {
  static func noiseChecks() -> [SelfTestCheck] {
    let (samples, per, first, seed, step, stream) = (3, 37, 5, UInt64(0x1234_5678_9abc), 4, 2)
    func hostWords(_ i: Int, _ j: Int) -> SIMD4<UInt32> {
      Philox4x32.block(
        counter: SIMD4(UInt32(j), UInt32(first + i), UInt32(step), UInt32(stream)),
        key: Philox4x32.key(seed: seed))
    }
    return [
      SelfTestCheck("randomNormal + randomUniform (3×37, Philox)", tolerance: 1e-5) { d in
        let y = try d.backend.allocate(samples * per), u = try d.backend.allocate(samples * per)
        try d.backend.randomNormal(
          y, samples: samples, perSample: per, firstSample: first, seed: seed, step: step, stream: stream)
        try d.backend.randomUniform(
          u, samples: samples, perSample: per, firstSample: first, seed: seed, step: step, stream: stream)
        var wn: [Double] = [], wu: [Double] = []
        for i in 0..<samples {
          for e in 0..<per {
            let w = hostWords(i, e / 4)
            wn.append(Double(Philox4x32.normals(w)[e % 4]))
            wu.append(Double(Philox4x32.uniform(w[e % 4])))
          }
        }
        return SelfTestOutcome(
          got: try download(y, wn.count, d) + download(u, wu.count, d), want: wn + wu, scale: 1)
      },
      SelfTestCheck("samplerStep (3-deep history, aux, noise, clip)", tolerance: 2e-6) { d in
        var u = SamplerUpdate()
        (u.ax, u.am, u.ex, u.em) = (1.3, -0.4, 0.2, 0.9)
        (u.cx, u.c0, u.ce, u.cp, u.cz, u.dx, u.d0) = (0.7, 0.3, -0.2, 0.15, 0.05, 0.1, 0.9)
        (u.cq, u.cr, u.de, u.historyDepth) = (0.05, -0.03, 0.2, 3)
        (u.clipRange, u.writesAux) = (1, true)
        let n = samples * per
        let x = values(n, seed: 44, -2, 2), m = values(n, seed: 45, -2, 2), prev = values(n, seed: 46)
        let prev2 = values(n, seed: 59), prev3 = values(n, seed: 60)
        let out = try d.backend.allocate(n), aux = try d.backend.allocate(n)
        try d.backend.samplerStep(
          try upload(x, d), try upload(m, d), prev: try upload(prev, d),
          older: [try upload(prev2, d), try upload(prev3, d)], out: out, aux: aux, thresholdScales: nil,
          update: u,
          samples: samples, perSample: per, firstSample: first, seed: seed, step: step, stream: stream)
        var wo: [Double] = [], wa: [Double] = []
        for i in 0..<samples {
          for e in 0..<per {
            let k = i * per + e
            let z = Double(Philox4x32.normals(hostWords(i, e / 4))[e % 4])
            let r = u.apply(
              x: Double(x[k]), m: Double(m[k]), prev: Double(prev[k]), prev2: Double(prev2[k]),
              prev3: Double(prev3[k]), z: z)
            wo.append(r.out)
            wa.append(r.aux)
          }
        }
        return SelfTestOutcome(got: try download(out, n, d) + download(aux, n, d), want: wo + wa)
      },
      SelfTestCheck("samplerStep (dynamic thresholding, aux)", tolerance: 2e-6) { d in
        var u = SamplerUpdate()
        (u.ax, u.am, u.ex, u.em, u.cx, u.c0, u.ce, u.dx, u.d0) = (
          1.3, -0.4, 0.2, 0.9, 0.7, 0.3, -0.2, 0.1, 0.9
        )
        (u.clipRange, u.writesAux, u.threshold) = (1, true, DynamicThreshold(ratio: 0.9, maxValue: 2))
        let n = samples * per
        let x = values(n, seed: 61, -2, 2), m = values(n, seed: 62, -2, 2)
        let x0 = (0..<n).map { Float(u.ax) * x[$0] + Float(u.am) * m[$0] }
        let scales = u.threshold!.scales(x0, samples: samples, perSample: per)
        let out = try d.backend.allocate(n), aux = try d.backend.allocate(n)
        try d.backend.samplerStep(
          try upload(x, d), try upload(m, d), prev: nil, older: [], out: out, aux: aux,
          thresholdScales: try upload(scales, d), update: u, samples: samples, perSample: per,
          firstSample: first, seed: seed, step: step, stream: stream)
        var wo: [Double] = [], wa: [Double] = []
        for k in 0..<n {
          let r = u.apply(x: Double(x[k]), m: Double(m[k]), thresholdScale: Double(scales[k / per]))
          wo.append(r.out)
          wa.append(r.aux)
        }
        return SelfTestOutcome(got: try download(out, n, d) + download(aux, n, d), want: wo + wa)
      },
    ]
  }

  static func trainingChecks() -> [SelfTestCheck] {
    let n = 1000
    return [
      SelfTestCheck("optimizerStep AdamW (step 3) n=\(n)", tolerance: 1e-6) { d in
        let p = values(n, seed: 47), g = values(n, seed: 48), m0 = values(n, seed: 49, -0.1, 0.1)
        let v0 = values(n, seed: 50, 0, 0.01)
        let u = OptimizerUpdate.adam(lr: 1e-2, weightDecay: 0.01, decoupled: true, step: 3)
        let pb = try upload(p, d), mb = try upload(m0, d), vb = try upload(v0, d)
        try d.backend.optimizerStep(pb, try upload(g, d), mb, vb, count: n, update: u)
        var wp: [Double] = [], wm: [Double] = [], wv: [Double] = []
        for i in 0..<n {
          let gi = Double(g[i])
          let m = 0.9 * Double(m0[i]) + 0.1 * gi, v = 0.999 * Double(v0[i]) + 0.001 * gi * gi
          let pd = Double(p[i]) * (1 - 1e-2 * 0.01)
          wp.append(
            pd - 1e-2 / u.biasCorrection1 * m / (v.squareRoot() / u.biasCorrection2.squareRoot() + 1e-8))
          wm.append(m)
          wv.append(v)
        }
        return SelfTestOutcome(
          got: try download(pb, n, d) + download(mb, n, d) + download(vb, n, d), want: wp + wm + wv, scale: 1)
      },
      SelfTestCheck("emaUpdate decay 0.999 n=\(n)", tolerance: 1e-6) { d in
        let e = values(n, seed: 51), p = values(n, seed: 52)
        let eb = try upload(e, d)
        try d.backend.emaUpdate(eb, try upload(p, d), count: n, decay: 0.999)
        return SelfTestOutcome(
          got: try download(eb, n, d), want: zip(e, p).map { Double($0) - 0.001 * (Double($0) - Double($1)) })
      },
    ]
  }

  /// The gradients of a small network (3×3 convolution, group norm + SiLU, a weighted sum) from the tape,
  /// against central differences of the same network in Float64.
  static func gradientCheck() -> SelfTestCheck {
    SelfTestCheck("gradient of conv3x3→groupNorm+SiLU→Σ(h·t) (all 5 inputs)", tolerance: 1e-5) { d in
      let g = ConvGeometry(n: 2, c: 3, h: 5, w: 6, kh: 3, kw: 3, padT: 1, padL: 1, padB: 1, padR: 1)
      let cout = 4, hw = g.ho * g.wo
      let inputs: [(values: [Float], shape: [Int])] = [
        (values(cout * g.k, seed: 53, -0.4, 0.4), [cout, 3, 3, 3]), (values(cout, seed: 54), [cout]),
        (values(cout, seed: 55, 0.5, 1.5), [cout]), (values(cout, seed: 56), [cout]),
        (values(g.n * g.c * g.h * g.w, seed: 57), [g.n, g.c, g.h, g.w]),
      ]
      let target = values(g.n * cout * hw, seed: 58)
      let ts = try inputs.map { try Tensor($0.values, shape: $0.shape, on: d) }
      let tt = try Tensor(target, shape: [g.n, cout, g.ho, g.wo], on: d)
      let tape = Tape()
      tape.watch(ts)
      let loss = try tape.record {
        let h = try ts[4].conv2d(weight: ts[0], bias: ts[1], stride: 1, padding: 1)
        return try (h.groupNorm(groups: 2, weight: ts[2], bias: ts[3], silu: true) * tt).sum()
      }
      let grads = try tape.gradients(of: loss, wrt: ts)
      var got: [Float] = []
      for gr in grads {
        guard let gr else { throw GPUGenError.invalidArgument("a gradient is missing") }
        got += try gr.toArray()
      }
      func f(_ v: [[Double]]) -> Double {
        let h = convRef(v[4], v[0], bias: v[1], g, cout: cout)
        let y = groupNormRef(h, v[2], v[3], n: g.n, c: cout, hw: hw, groups: 2, eps: 1e-5, silu: true)
        return zip(y, target).map { $0 * Double($1) }.reduce(0, +)
      }
      var v = inputs.map { dbl($0.values) }
      var want: [Double] = []
      for t in 0..<v.count {
        for i in 0..<v[t].count {
          let orig = v[t][i]
          v[t][i] = orig + 1e-4
          let fp = f(v)
          v[t][i] = orig - 1e-4
          let fm = f(v)
          v[t][i] = orig
          want.append((fp - fm) / 2e-4)
        }
      }
      return SelfTestOutcome(got: got, want: want)
    }
  }
}
