// The table of ops under gradient check, by family. Inputs are chosen away from each op's
// non-differentiable points (see the `Gen` of each input), so that central differences are meaningful and
// float32 rounding cannot move an input across a kink.
import Foundation

@testable import GPUGenCore

// The float32 device tolerances. With these shapes (at most ~20 terms per sum, O(1) values) the worst error
// measured on the CPU backend and on PoCL is about 1.3e-6 absolute and 1.1e-5 relative, so both leave a wide
// margin while a wrong rule (a sign, a missing term, a wrong scale) is off by orders of magnitude more.
extension Tolerance {
  /// Elementwise ops (unary, binary, scalar forms, clamp, where, permute/slice/concat/reshape/copy): each
  /// gradient element is one or two float32 operations of the inputs, so a few ulps.
  static let elementwise = Tolerance(rtol: 1e-4, atol: 1e-5)
  /// Ops whose gradients sum several products (reductions, softmax, expand, upsample, GEMM, linear,
  /// convolution, normalisation, attention, losses): float32 rounding of sums of O(1) terms with mixed
  /// signs can leave a small absolute error on elements that nearly cancel, hence the absolute floor.
  static let accumulating = Tolerance(rtol: 1e-4, atol: 1e-4)
}

enum GradCases {
  // MARK: Elementwise

  /// Each op's input domain: positive for log/sqrt/rsqrt, clear of 0 for the kinks of abs/relu/leaky ReLU.
  static func domain(_ op: UnaryOp) -> Gen {
    switch op {
    case .neg, .exp: return .uniform(-2...2)
    case .abs, .relu, .leakyRelu: return .awayFromZero(margin: 0.1, limit: 2)
    case .log, .sqrt, .rsqrt: return .uniform(0.3...3)
    case .sin, .cos, .gelu: return .uniform(-3...3)
    case .tanh: return .uniform(-2.5...2.5)
    case .sigmoid, .silu: return .uniform(-4...4)
    }
  }

  static var unary: [GradCase] {
    var cases = UnaryOp.allCases.map { op in
      GradCase(
        "unary \(op)", [("x", [3, 5], domain(op))], tolerance: .elementwise,
        reference: { R64.unary(op, $0[0]) }, backward: { [R64.unaryBackward(op, $0[0], $1)] },
        device: { try $0[0].apply(op) })
    }
    cases.append(
      GradCase(
        "unary leakyRelu alpha 0.2", [("x", [3, 5], domain(.leakyRelu))], tolerance: .elementwise,
        reference: { R64.unary(.leakyRelu, $0[0], alpha: 0.2) },
        backward: { [R64.unaryBackward(.leakyRelu, $0[0], $1, alpha: 0.2)] },
        device: { try $0[0].leakyRelu(alpha: 0.2) }))
    return cases
  }

  /// Domains of (a, b): b clear of 0 for div, a > 0 for pow, a and b on offset grids for maximum/minimum.
  static func domains(_ op: BinaryOp) -> (Gen, Gen) {
    switch op {
    case .add, .sub, .mul: return (.uniform(-1...1), .uniform(-1...1))
    case .div: return (.uniform(-1...1), .awayFromZero(margin: 0.5, limit: 2))
    case .pow: return (.uniform(0.5...2), .uniform(-2...2))
    case .maximum, .minimum:
      return (.grid(offset: 0.05, range: -1...1), .grid(offset: 0, range: -1...1))
    }
  }

  static var binary: [GradCase] {
    let shapes: [([Int], [Int])] = [
      ([3, 4], [3, 4]), ([2, 1, 4], [3, 1]), ([4], [2, 3, 1]), ([2, 3], []),
    ]
    return BinaryOp.allCases.flatMap { op in
      shapes.map { sa, sb in
        let (ga, gb) = domains(op)
        return GradCase(
          "binary \(op) \(sa) \(sb)", [("a", sa, ga), ("b", sb, gb)], tolerance: .elementwise,
          reference: { R64.binary(op, $0[0], $0[1]) }, backward: { R64.binaryBackward(op, $0[0], $0[1], $1) },
          device: { try $0[0].binary(op, $0[1]) })
      }
    }
  }

  /// (x domain, scalar) per op and operand order; the scalar 0.05 sits between the grid points of x.
  static func scalarForm(_ op: BinaryOp, scalarFirst: Bool) -> [(Gen, Float)] {
    switch (op, scalarFirst) {
    case (.add, _), (.sub, _), (.mul, _): return [(.uniform(-1...1), 0.7), (.uniform(-1...1), -1.3)]
    case (.div, false): return [(.uniform(-1...1), 1.3)]
    case (.div, true): return [(.awayFromZero(margin: 0.5, limit: 2), -0.8)]
    case (.pow, false): return [(.uniform(0.5...2), 1.7), (.uniform(0.5...2), -0.5)]
    case (.pow, true): return [(.uniform(-1...1), 1.7)]
    case (.maximum, _), (.minimum, _): return [(.grid(offset: 0, range: -1...1), 0.05)]
    }
  }

  static var binaryScalar: [GradCase] {
    BinaryOp.allCases.flatMap { op in
      [false, true].flatMap { first in
        scalarForm(op, scalarFirst: first).map { gen, s in
          GradCase(
            "scalar \(first ? "\(s) \(op) x" : "x \(op) \(s)")", [("x", [3, 4], gen)],
            tolerance: .elementwise,
            reference: { R64.binaryScalar(op, $0[0], Double(s), scalarFirst: first) },
            backward: { [R64.binaryScalarBackward(op, $0[0], Double(s), scalarFirst: first, $1)] },
            device: { try $0[0].binary(op, scalar: s, scalarFirst: first) })
        }
      }
    }
  }

  static var clampAndWhere: [GradCase] {
    // x on the 0.05-offset grid, bounds on the 0.1 grid: no element within 0.05 of a bound.
    let bounds: [(Float, Float)] = [(-0.5, 0.5), (0, .infinity), (-.infinity, 0.3)]
    var cases = bounds.map { lo, hi in
      GradCase(
        "clamp [\(lo), \(hi)]", [("x", [3, 5], .grid(offset: 0.05, range: -1...1))], tolerance: .elementwise,
        reference: { R64.clamp($0[0], Double(lo), Double(hi)) },
        backward: { [R64.clampBackward($0[0], Double(lo), Double(hi), $1)] },
        device: { try $0[0].clamp(min: lo, max: hi) })
    }
    let layouts: [(cond: [Int], a: [Int], b: [Int])] = [
      ([3, 4], [3, 4], [3, 4]), ([2, 1, 4], [3, 1], [2, 3, 4]), ([4], [2, 3, 1], []),
    ]
    for (sc, sa, sb) in layouts {
      let op = "where \(sc) \(sa) \(sb)"
      let cond = GradInput("cond", sc, .uniform(-1...1), op: op).values.map { $0 > 0 ? Float(1) : 0 }
      let c64 = T64(sc, cond.map(Double.init))
      cases.append(
        GradCase(
          op, [("a", sa, .uniform(-1...1)), ("b", sb, .uniform(-1...1))], tolerance: .elementwise,
          reference: { R64.select(c64, $0[0], $0[1]) },
          backward: { R64.selectBackward(c64, $0[0], $0[1], $1) },
          device: { x in try Tensor.where(try Tensor(cond, shape: sc, on: x[0].device), x[0], x[1]) }))
    }
    return cases
  }

  // MARK: Reductions and softmax

  static var reductions: [GradCase] {
    let forms: [(ReduceOp, [Int]?, Bool, Int)] = [
      (.sum, nil, false, 1), (.sum, [1], false, 1), (.sum, [0, 2], true, 1), (.sum, [-1], true, 1),
      (.mean, [2], false, 1), (.mean, [0, 2], false, 1), (.mean, nil, true, 1),
      (.max, [1], false, 1), (.max, [0, 2], true, 1), (.max, nil, false, 1), (.max, [-1], false, 1),
      (.variance, [2], false, 1), (.variance, [2], true, 0), (.variance, [0, 2], true, 1),
      (.variance, [0, 2], false, 0), (.variance, nil, false, 1), (.variance, [1], false, 0),
    ]
    return forms.map { op, axes, keep, corr in
      let name = "reduce \(op) axes \(axes.map { "\($0)" } ?? "all")\(keep ? " keepDims" : "")"
      return GradCase(
        name + (op == .variance ? " correction \(corr)" : ""),
        // max: distinct values, so that no reduction has a tie
        [("x", [2, 3, 4], op == .max ? .distinct : .uniform(-1...1))], tolerance: .accumulating,
        reference: { R64.reduce(op, $0[0], axes: axes, keepDims: keep, correction: corr) },
        backward: { [R64.reduceBackward(op, $0[0], axes: axes, keepDims: keep, correction: corr, $1)] },
        device: { try $0[0].reduce(op, axes: axes, keepDims: keep, correction: corr) })
    }
  }

  static var softmax: [GradCase] {
    // [2, 20] along the last axis: rows past the CPU kernel's 16-wide loop, with a tail.
    let forms: [([Int], Int)] = [([2, 3, 4], -1), ([2, 3, 4], 1), ([2, 3, 4], 0), ([2, 20], -1)]
    return [false, true].flatMap { log in
      forms.map { shape, axis in
        GradCase(
          "\(log ? "logSoftmax" : "softmax") \(shape) axis \(axis)", [("x", shape, .uniform(-2...2))],
          tolerance: .accumulating, reference: { R64.softmax($0[0], axis: axis, log: log) },
          backward: { [R64.softmaxBackward($0[0], axis: axis, log: log, $1)] },
          device: { log ? try $0[0].logSoftmax(axis: axis) : try $0[0].softmax(axis: axis) })
      }
    }
  }

  // MARK: Shape ops

  static var shapeOps: [GradCase] {
    let x: (String, [Int], Gen) = ("x", [2, 3, 4], .uniform(-1...1))
    var cases = [
      GradCase(
        "permute [2, 0, 1]", [x], tolerance: .elementwise, reference: { R64.permute($0[0], [2, 0, 1]) },
        backward: { [R64.permuteBackward($0[0], [2, 0, 1], $1)] }, device: { try $0[0].permuted([2, 0, 1]) }),
      GradCase(
        "transpose (last two)", [x], tolerance: .elementwise, reference: { R64.permute($0[0], [0, 2, 1]) },
        backward: { [R64.permuteBackward($0[0], [0, 2, 1], $1)] }, device: { try $0[0].transposed() }),
      GradCase(
        "transpose 0, 3", [("x", [2, 1, 3, 2], .uniform(-1...1))], tolerance: .elementwise,
        reference: { R64.permute($0[0], [3, 1, 2, 0]) },
        backward: { [R64.permuteBackward($0[0], [3, 1, 2, 0], $1)] },
        device: { try $0[0].transposed(0, 3) }),
      GradCase(
        "reshape [4, -1]", [x], tolerance: .elementwise, reference: { T64([4, 6], $0[0].v) },
        backward: { [T64($0[0].shape, $1.v)] }, device: { try $0[0].reshaped([4, -1]) }),
      GradCase(
        "copy", [x], tolerance: .elementwise, reference: { $0[0] }, backward: { [$1] },
        device: { try $0[0].copy() }),
    ]
    let slices: [(axis: Int, start: Int, end: Int?, step: Int)] = [
      (1, 1, nil, 2), (-1, -2, nil, 1), (0, 0, 1, 1), (1, 0, 100, 3), (2, -4, -1, 2),
    ]
    for (axis, start, end, step) in slices {
      cases.append(
        GradCase(
          "slice axis \(axis) \(start):\(end.map { "\($0)" } ?? ""):\(step)",
          [("x", [2, 5, 4], .uniform(-1...1))],
          tolerance: .elementwise,
          reference: { R64.slice($0[0], axis: axis, start: start, end: end, step: step) },
          backward: { [R64.sliceBackward($0[0], axis: axis, start: start, end: end, step: step, $1)] },
          device: { try $0[0].slice(axis: axis, start: start, end: end, step: step) }))
    }
    let concats: [([[Int]], Int)] = [
      ([[2, 1, 3], [2, 3, 3], [2, 2, 3]], 1), ([[1, 4], [2, 4]], 0), ([[2, 2], [2, 3]], -1),
    ]
    for (shapes, axis) in concats {
      cases.append(
        GradCase(
          "concat \(shapes) axis \(axis)", shapes.enumerated().map { ("x\($0)", $1, .uniform(-1...1)) },
          tolerance: .elementwise, reference: { R64.concat($0, axis: axis) },
          backward: { R64.concatBackward($0, axis: axis, $1) }, device: { try Tensor.concat($0, axis: axis) })
      )
    }
    let expands: [([Int], [Int])] = [
      ([3, 1], [2, 3, 4]), ([4], [3, 4]), ([1], [2, 2]), ([2, 1, 3], [2, 4, 3]),
    ]
    for (from, to) in expands {
      cases.append(
        GradCase(
          "expand \(from) to \(to)", [("x", from, .uniform(-1...1))], tolerance: .accumulating,
          reference: { R64.expand($0[0], to: to) }, backward: { [R64.expandBackward($0[0], $1)] },
          device: { try $0[0].expanded(to: to) }))
    }
    for shape in [[2, 2, 2, 3], [3, 2, 2]] {
      cases.append(
        GradCase(
          "upsampleNearest2x \(shape)", [("x", shape, .uniform(-1...1))], tolerance: .accumulating,
          reference: { R64.upsampleNearest2x($0[0]) },
          backward: { [R64.upsampleNearest2xBackward($0[0], $1)] },
          device: { try $0[0].upsampleNearest2x() }))
    }
    return cases
  }

  // MARK: GEMM, linear, class embedding

  static func gemmCase(
    _ name: String, a: [Int], b: [Int], c: [Int]? = nil, bias: [Int]? = nil, _ s: R64.GemmSpec,
    cValues: [Float]? = nil
  ) -> GradCase {
    let op = "gemm " + name
    var inputs = [GradInput("a", a, .uniform(-1...1), op: op), GradInput("b", b, .uniform(-1...1), op: op)]
    if let c {
      inputs.append(
        cValues.map { GradInput("c", c, values: $0) } ?? GradInput("c", c, .uniform(-1...1), op: op))
    }
    if let bias { inputs.append(GradInput("bias", bias, .uniform(-1...1), op: op)) }
    let hasC = c != nil, hasBias = bias != nil
    func split(_ x: [T64]) -> (T64?, T64?) { (hasC ? x[2] : nil, hasBias ? x[hasC ? 3 : 2] : nil) }
    return GradCase(
      op, inputs, tolerance: .accumulating,
      reference: { x in
        let (c, bias) = split(x)
        return R64.gemm(s, x[0], x[1], c: c, bias: bias)
      },
      backward: { x, dy in
        let (c, bias) = split(x)
        return R64.gemmBackward(s, x[0], x[1], c: c, bias: bias, dy)
      },
      device: { x in
        try Tensor.gemm(
          x[0], x[1], transA: s.transA, transB: s.transB, alpha: Float(s.alpha), beta: Float(s.beta),
          c: hasC ? x[2] : nil, bias: hasBias ? x[hasC ? 3 : 2] : nil,
          biasMode: s.biasMode == .none ? .perColumn : s.biasMode, activation: s.activation,
          activationAlpha: Float(s.activationAlpha))
      })
  }

  /// A GEMM with a kinked activation: C is solved for so that every pre-activation alpha·A·B + beta·C is at
  /// least 0.2 away from the kink at 0.
  static func kinkedGemmCase(_ act: Activation) -> GradCase {
    var s = R64.GemmSpec()
    s.alpha = 0.8
    s.beta = 0.5
    s.activation = act
    s.activationAlpha = 0.1
    let name = "\(act) with beta·C clear of the kink"
    let a = GradInput("a", [3, 4], .uniform(-1...1), op: "gemm " + name)
    let b = GradInput("b", [4, 5], .uniform(-1...1), op: "gemm " + name)
    var plain = s
    plain.activation = .none
    let ab = R64.gemm(plain, a.t64, b.t64)
    let target = Gen.awayFromZero(margin: 0.2, limit: 1).sample(15, seed: stableSeed(name))
    let c = (0..<15).map { Float((Double(target[$0]) - ab.v[$0]) / s.beta) }
    return gemmCase(name, a: [3, 4], b: [4, 5], c: [3, 5], s, cValues: c)
  }

  static var gemm: [GradCase] {
    func spec(
      transA: Bool = false, transB: Bool = false, alpha: Double = 1, beta: Double = 0, bias: BiasMode = .none,
      act: Activation = .none
    ) -> R64.GemmSpec {
      R64.GemmSpec(
        transA: transA, transB: transB, alpha: alpha, beta: beta, biasMode: bias, activation: act,
        activationAlpha: 0.01)
    }
    var cases = [
      gemmCase("2-D", a: [3, 4], b: [4, 5], spec()),
      gemmCase("transA", a: [4, 3], b: [4, 5], spec(transA: true)),
      gemmCase("transB", a: [3, 4], b: [5, 4], spec(transB: true)),
      gemmCase("transA transB", a: [4, 3], b: [5, 4], spec(transA: true, transB: true)),
      gemmCase("batched", a: [2, 3, 4], b: [2, 4, 5], spec()),
      gemmCase("batched transA transB", a: [2, 4, 3], b: [2, 5, 4], spec(transA: true, transB: true)),
      gemmCase("batched, B shared", a: [2, 3, 4], b: [4, 5], spec()),
      gemmCase("batched, B shared, transB", a: [2, 3, 4], b: [5, 4], spec(transB: true)),
      gemmCase("batched, B shared, transA", a: [2, 4, 3], b: [4, 5], spec(transA: true)),
      gemmCase(
        "batched, B shared, transA transB", a: [2, 4, 3], b: [5, 4], spec(transA: true, transB: true)),
      gemmCase("batched, A shared", a: [3, 4], b: [2, 4, 5], spec()),
      gemmCase(
        "batched, A shared, transA transB", a: [4, 3], b: [2, 5, 4], spec(transA: true, transB: true)),
      gemmCase("alpha 0.7", a: [3, 4], b: [4, 5], spec(alpha: 0.7)),
      gemmCase("alpha 0.7 beta 0.5 C", a: [3, 4], b: [4, 5], c: [3, 5], spec(alpha: 0.7, beta: 0.5)),
      gemmCase(
        "batched, B shared, alpha -1.3 beta 2 C", a: [2, 3, 4], b: [4, 5], c: [2, 3, 5],
        spec(alpha: -1.3, beta: 2)),
      gemmCase("bias perColumn", a: [3, 4], b: [4, 5], bias: [5], spec(bias: .perColumn)),
      gemmCase("bias perRow", a: [3, 4], b: [4, 5], bias: [3], spec(bias: .perRow)),
      gemmCase("batched bias perRow", a: [2, 3, 4], b: [2, 4, 5], bias: [3], spec(bias: .perRow)),
      gemmCase(
        "batched, A shared, bias perColumn, beta C", a: [3, 4], b: [2, 4, 5], c: [2, 3, 5], bias: [5],
        spec(alpha: 0.9, beta: -0.6, bias: .perColumn)),
    ]
    // Past the 16-wide tiles and K blocks of the OpenCL GEMM, so that partial tiles are exercised.
    cases += [
      gemmCase(
        "tile edges 9×18 · 18×17, bias perRow", a: [9, 18], b: [18, 17], bias: [9], spec(bias: .perRow)),
      gemmCase("tile edges batched, B shared, transB", a: [2, 17, 18], b: [9, 18], spec(transB: true)),
    ]
    // Smooth activations over a bias; the kinked ones with the pre-activation steered clear of 0.
    for act in [Activation.sigmoid, .tanh, .silu, .gelu] {
      cases.append(
        gemmCase("\(act) + bias", a: [3, 4], b: [4, 5], bias: [5], spec(bias: .perColumn, act: act)))
    }
    cases.append(
      gemmCase("batched transB, gelu", a: [2, 3, 4], b: [2, 5, 4], spec(transB: true, act: .gelu)))
    cases += [kinkedGemmCase(.relu), kinkedGemmCase(.leakyRelu)]
    return cases
  }

  static var linearAndEmbedding: [GradCase] {
    // `let`s: the closures below capture them (a captured `var` changed later would change them too).
    let linear = R64.GemmSpec(transB: true, biasMode: .perColumn)
    let linearGelu = R64.GemmSpec(transB: true, biasMode: .perColumn, activation: .gelu)
    var cases = [
      GradCase(
        "linear [2, 3, 4] → 5 + bias",
        [
          ("x", [2, 3, 4], .uniform(-1...1)), ("w", [5, 4], .uniform(-1...1)),
          ("bias", [5], .uniform(-1...1)),
        ],
        tolerance: .accumulating,
        reference: { x in
          let y = R64.gemm(linear, T64([6, 4], x[0].v), x[1], bias: x[2])
          return T64([2, 3, 5], y.v)
        },
        backward: { x, dy in
          let g = R64.gemmBackward(linear, T64([6, 4], x[0].v), x[1], bias: x[2], T64([6, 5], dy.v))
          return [T64(x[0].shape, g[0].v), g[1], g[2]]
        },
        device: { try $0[0].linear(weight: $0[1], bias: $0[2]) })
    ]
    cases.append(
      GradCase(
        "linear [3, 4] → 2 + bias, gelu",
        [
          ("x", [3, 4], .uniform(-1...1)), ("w", [2, 4], .uniform(-1...1)),
          ("bias", [2], .uniform(-1...1)),
        ],
        tolerance: .accumulating, reference: { R64.gemm(linearGelu, $0[0], $0[1], bias: $0[2]) },
        backward: { R64.gemmBackward(linearGelu, $0[0], $0[1], bias: $0[2], $1) },
        device: { try $0[0].linear(weight: $0[1], bias: $0[2], activation: .gelu) }))
    let noBias = R64.GemmSpec(transB: true)
    cases.append(
      GradCase(
        "linear [3, 4] → 5, no bias", [("x", [3, 4], .uniform(-1...1)), ("w", [5, 4], .uniform(-1...1))],
        tolerance: .accumulating, reference: { R64.gemm(noBias, $0[0], $0[1]) },
        backward: { R64.gemmBackward(noBias, $0[0], $0[1], $1) },
        device: { try $0[0].linear(weight: $0[1]) }))
    // The class embedding: one-hot rows times a table, i.e. a gather of table rows (label 2 appears twice).
    let labels = [2, 0, 3, 2, 1]
    cases.append(
      GradCase(
        "class embedding (oneHot · table)", [("table", [4, 3], .uniform(-1...1))], tolerance: .accumulating,
        reference: { R64.embedding($0[0], labels: labels) },
        backward: { [R64.embeddingBackward($0[0], labels: labels, $1)] },
        device: { x in try Tensor.gemm(try Tensor.oneHot(labels, classes: 4, on: x[0].device), x[0]) }))
    return cases
  }

  // MARK: Convolution

  static func convCase(
    _ name: String, x: [Int], w: [Int], bias: Bool, _ s: R64.ConvSpec, activation: Activation = .none
  ) -> GradCase {
    var specs: [(String, [Int], Gen)] = [("x", x, .uniform(-1...1)), ("w", w, .uniform(-0.5...0.5))]
    if bias { specs.append(("bias", [w[0]], .uniform(-0.5...0.5))) }
    let act = R64.unaryOp(activation)
    return GradCase(
      "conv2d " + name, specs, tolerance: .accumulating,
      reference: { x in
        let y = R64.conv2d(x[0], x[1], bias: bias ? x[2] : nil, s)
        return act.map { R64.unary($0, y) } ?? y
      },
      backward: { x, dy in
        var g = dy
        if let act { g = R64.unaryBackward(act, R64.conv2d(x[0], x[1], bias: bias ? x[2] : nil, s), dy) }
        return R64.conv2dBackward(x[0], x[1], bias: bias ? x[2] : nil, s, g)
      },
      device: { x in
        try x[0].conv2d(
          weight: x[1], bias: bias ? x[2] : nil, stride: (s.strideH, s.strideW),
          padding: (s.padT, s.padL, s.padB, s.padR), activation: activation)
      })
  }

  static func convTransposeCase(
    x: [Int], w: [Int], bias: Bool, stride: Int, padding: Int, outputPadding: Int
  ) -> GradCase {
    var specs: [(String, [Int], Gen)] = [("x", x, .uniform(-1...1)), ("w", w, .uniform(-0.5...0.5))]
    if bias { specs.append(("bias", [w[1]], .uniform(-0.5...0.5))) }
    return GradCase(
      "convTranspose2d \(x) \(w) stride \(stride) padding \(padding) outputPadding \(outputPadding)"
        + (bias ? " + bias" : ""), specs, tolerance: .accumulating,
      reference: {
        R64.convTranspose2d(
          $0[0], $0[1], bias: bias ? $0[2] : nil, stride: stride, padding: padding,
          outputPadding: outputPadding)
      },
      backward: {
        R64.convTranspose2dBackward(
          $0[0], $0[1], bias: bias ? $0[2] : nil, stride: stride, padding: padding,
          outputPadding: outputPadding, $1)
      },
      device: {
        try $0[0].convTranspose2d(
          weight: $0[1], bias: bias ? $0[2] : nil, stride: stride, padding: padding,
          outputPadding: outputPadding)
      })
  }

  static var conv: [GradCase] {
    [
      convCase(
        "3→4, 3×3, stride 1, padding 1, bias", x: [2, 3, 5, 5], w: [4, 3, 3, 3], bias: true,
        R64.ConvSpec(padT: 1, padL: 1, padB: 1, padR: 1)),
      convCase(
        "2→3, 3×2, stride (2, 1), padding (1, 0, 0, 1)", x: [1, 2, 6, 5], w: [3, 2, 3, 2], bias: false,
        R64.ConvSpec(strideH: 2, strideW: 1, padT: 1, padL: 0, padB: 0, padR: 1)),
      convCase("1×1, 4→2, bias", x: [2, 4, 3, 3], w: [2, 4, 1, 1], bias: true, R64.ConvSpec()),
      convCase(
        "1×1, 3→2, stride 2", x: [1, 3, 5, 5], w: [2, 3, 1, 1], bias: false,
        R64.ConvSpec(strideH: 2, strideW: 2)),
      convCase(
        "1→5, 3×3, stride 2, padding 1", x: [2, 1, 6, 6], w: [5, 1, 3, 3], bias: false,
        R64.ConvSpec(strideH: 2, strideW: 2, padT: 1, padL: 1, padB: 1, padR: 1)),
      convCase(
        "2→2, 3×3, stride 2, padding (0, 1, 1, 0), bias, silu", x: [1, 2, 5, 4], w: [2, 2, 3, 3],
        bias: true, R64.ConvSpec(strideH: 2, strideW: 2, padT: 0, padL: 1, padB: 1, padR: 0),
        activation: .silu),
      convTransposeCase(
        x: [2, 3, 3, 3], w: [3, 2, 3, 3], bias: true, stride: 2, padding: 1, outputPadding: 1),
      convTransposeCase(
        x: [1, 2, 3, 4], w: [2, 3, 2, 2], bias: false, stride: 1, padding: 0, outputPadding: 0),
      convTransposeCase(
        x: [2, 2, 2, 3], w: [2, 2, 2, 2], bias: true, stride: 2, padding: 0, outputPadding: 0),
    ]
  }

  // MARK: Normalisation

  static var norms: [GradCase] {
    let forms: [([Int], Int, Bool)] = [
      ([2, 4, 3, 3], 2, false), ([2, 4, 3, 3], 2, true), ([2, 6, 5], 3, true), ([1, 4, 2, 2], 1, false),
      ([2, 4, 2, 2], 4, true),
      // 20 values per channel: the CPU backward's 16-wide loop and its tail
      ([1, 4, 4, 5], 2, true), ([2, 2, 20], 1, false),
    ]
    var cases = forms.map { shape, groups, silu in
      GradCase(
        "groupNorm \(shape) groups \(groups)\(silu ? " + silu" : "")",
        [
          ("x", shape, .uniform(-2...2)), ("gamma", [shape[1]], .uniform(0.5...1.5)),
          ("beta", [shape[1]], .uniform(-0.5...0.5)),
        ], tolerance: .accumulating,
        reference: {
          R64.normalise(
            $0[0], $0[1], $0[2], R64.groupNormSets($0[0].shape, groups: groups), eps: 1e-5, silu: silu)
        },
        backward: {
          R64.normaliseBackward(
            $0[0], $0[1], $0[2], R64.groupNormSets($0[0].shape, groups: groups), eps: 1e-5, silu: silu, $1)
        },
        device: { try $0[0].groupNorm(groups: groups, weight: $0[1], bias: $0[2], silu: silu) })
    }
    for shape in [[3, 2, 2, 2], [4, 3]] {
      cases.append(
        GradCase(
          "batchNorm training \(shape)",
          [
            ("x", shape, .uniform(-2...2)), ("gamma", [shape[1]], .uniform(0.5...1.5)),
            ("beta", [shape[1]], .uniform(-0.5...0.5)),
          ], tolerance: .accumulating,
          reference: {
            R64.normalise($0[0], $0[1], $0[2], R64.batchNormSets($0[0].shape), eps: 1e-5, silu: false)
          },
          backward: {
            R64.normaliseBackward(
              $0[0], $0[1], $0[2], R64.batchNormSets($0[0].shape), eps: 1e-5, silu: false, $1)
          },
          device: { x in
            // Running statistics are updated outside the tape; they must not disturb the gradient.
            let c = x[0].shape[1]
            return try x[0].batchNorm(
              weight: x[1], bias: x[2], runningMean: try Tensor.zeros([c], on: x[0].device),
              runningVar: try Tensor.full(1, shape: [c], on: x[0].device), training: true)
          }))
    }
    return cases
  }

  /// The fused batch norm: with and without affine, ReLU / leaky ReLU fused (a negative slope runs unfused),
  /// odd sizes (runs of 49 and 20 values: the 16-lane loops and their tails), N·HW = 1, rank 2 and evaluation
  /// with running statistics.
  static var fusedBatchNorm: [GradCase] {
    let forms: [(shape: [Int], affine: Bool, act: Activation, alpha: Float, eval: Bool)] = [
      ([3, 5, 7, 7], true, .none, 0, false), ([3, 5, 7, 7], false, .relu, 0, false),
      ([2, 3, 4, 5], true, .leakyRelu, 0.2, false), ([2, 4, 3, 3], false, .leakyRelu, 0.2, false),
      ([2, 3, 20], true, .relu, 0, false), ([5, 3], true, .leakyRelu, 0.1, false),
      ([2, 3, 2, 2], true, .leakyRelu, -0.1, false), ([1, 3, 1, 1], true, .none, 0, false),
      ([3, 4, 2, 2], true, .leakyRelu, 0.2, true), ([2, 3, 3, 3], false, .relu, 0, true),
      ([1, 2, 1, 1], true, .none, 0, true),
    ]
    return forms.map { f in
      let c = f.shape[1]
      let runningMean: [Double] = (0..<c).map { 0.3 * Double($0) - 0.2 }
      let runningVariance: [Double] = (0..<c).map { 0.5 + 0.25 * Double($0) }
      let running: (mean: [Double], variance: [Double])? =
        f.eval ? (mean: runningMean, variance: runningVariance) : nil
      let act = R64.unaryOp(f.act), alpha = Double(f.alpha)
      let name =
        "fused batchNorm \(f.eval ? "eval" : "training") \(f.shape)\(f.affine ? " affine" : "")"
        + (f.act == .none ? "" : " + \(f.act) \(f.alpha)")
      var specs: [(String, [Int], Gen)] = [("x", f.shape, .uniform(-2...2))]
      if f.affine { specs += [("gamma", [c], .uniform(0.5...1.5)), ("beta", [c], .uniform(-0.5...0.5))] }
      return GradCase(
        name, specs, tolerance: .accumulating,
        reference: {
          R64.batchNorm(
            $0[0], gamma: f.affine ? $0[1] : nil, beta: f.affine ? $0[2] : nil, running: running, eps: 1e-5,
            act: act, alpha: alpha)
        },
        backward: {
          R64.batchNormBackward(
            $0[0], gamma: f.affine ? $0[1] : nil, beta: f.affine ? $0[2] : nil, running: running, eps: 1e-5,
            act: act, alpha: alpha, $1)
        },
        device: { t in
          let d = t[0].device
          let mean = try Tensor(
            running?.mean.map(Float.init) ?? Array(repeating: 0, count: c), shape: [c], on: d)
          let variance = try Tensor(
            running?.variance.map(Float.init) ?? Array(repeating: 1, count: c), shape: [c], on: d)
          return try t[0].batchNorm(
            weight: f.affine ? t[1] : nil, bias: f.affine ? t[2] : nil, runningMean: mean,
            runningVar: variance,
            training: !f.eval, activation: f.act, activationAlpha: f.alpha)
        })
    }
  }

  // MARK: Attention and losses

  static var attention: [GradCase] {
    let forms: [([Int], [Int], [Int], Float?)] = [
      ([2, 3, 4], [2, 5, 4], [2, 5, 3], nil), ([1, 4, 2], [1, 3, 2], [1, 3, 2], 0.3),
    ]
    return forms.map { q, k, v, scale in
      let s = Double(scale ?? 1 / Float(q[2]).squareRoot())
      return GradCase(
        "attention q \(q) k \(k) v \(v) scale \(scale.map { "\($0)" } ?? "default")",
        [("q", q, .uniform(-1.5...1.5)), ("k", k, .uniform(-1.5...1.5)), ("v", v, .uniform(-1...1))],
        tolerance: .accumulating, reference: { R64.attention($0[0], $0[1], $0[2], scale: s) },
        backward: { R64.attentionBackward($0[0], $0[1], $0[2], scale: s, $1) },
        device: { try Tensor.attention(query: $0[0], key: $0[1], value: $0[2], scale: scale) })
    }
  }

  static var losses: [GradCase] {
    [
      GradCase(
        "mseLoss", [("prediction", [2, 3, 4], .uniform(-1...1)), ("target", [2, 3, 4], .uniform(-1...1))],
        tolerance: .accumulating, reference: { R64.mse($0[0], $0[1]) },
        backward: { R64.mseBackward($0[0], $0[1], $1) }, device: { try Tensor.mseLoss($0[0], $0[1]) }),
      GradCase(
        "bceWithLogitsLoss", [("logits", [3, 4], .uniform(-3...3)), ("targets", [3, 4], .uniform(0...1))],
        tolerance: .accumulating, reference: { R64.bceWithLogits($0[0], $0[1]) },
        backward: { R64.bceWithLogitsBackward($0[0], $0[1], $1) },
        device: { try Tensor.bceWithLogitsLoss($0[0], $0[1]) }),
      GradCase(
        "gaussianKL", [("mean", [2, 5], .uniform(-1...1)), ("logVariance", [2, 5], .uniform(-1...1))],
        tolerance: .accumulating, reference: { R64.gaussianKL($0[0], $0[1]) },
        backward: { R64.gaussianKLBackward($0[0], $0[1], $1) },
        device: { try Tensor.gaussianKL(mean: $0[0], logVariance: $0[1]) }),
    ]
  }

  static var all: [GradCase] {
    unary + binary + binaryScalar + clampAndWhere + reductions + softmax + shapeOps + gemm
      + linearAndEmbedding + conv + norms + fusedBatchNorm + attention + losses
  }
}
