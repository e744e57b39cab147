// Float64 reference implementations, forward and analytic backward, of every differentiable op.
//
// Plain loops over row-major arrays, written from the ops' definitions and independently of the library's
// kernels and backward rules (only the library's op enums are used, as names). Each `…Backward` maps the
// output's cotangent `dy` to the cotangents of the inputs, in the order the inputs are listed.
import Foundation

@testable import GPUGenCore

/// A Float64 tensor: a shape and its row-major values.
struct T64 {
  var shape: [Int]
  var v: [Double]

  init(_ shape: [Int], _ v: [Double]) {
    precondition(v.count == shape.reduce(1, *), "T64: \(v.count) values for shape \(shape)")
    self.shape = shape
    self.v = v
  }

  init(zeros shape: [Int]) { self.init(shape, [Double](repeating: 0, count: shape.reduce(1, *))) }

  var count: Int { v.count }
  var rank: Int { shape.count }
}

enum R64 {
  // MARK: Indexing

  static func strides(_ s: [Int]) -> [Int] {
    var st = [Int](repeating: 1, count: s.count)
    var acc = 1
    for d in s.indices.reversed() {
      st[d] = acc
      acc *= s[d]
    }
    return st
  }

  static func unravel(_ i: Int, _ s: [Int]) -> [Int] {
    var rest = i
    var idx = [Int](repeating: 0, count: s.count)
    for d in s.indices.reversed() {
      idx[d] = rest % s[d]
      rest /= s[d]
    }
    return idx
  }

  static func ravel(_ idx: [Int], _ s: [Int]) -> Int {
    var lin = 0
    for d in s.indices { lin = lin * s[d] + idx[d] }
    return lin
  }

  /// NumPy broadcast of several shapes.
  static func broadcast(_ shapes: [Int]...) -> [Int] {
    let r = shapes.map(\.count).max() ?? 0
    var out = [Int](repeating: 1, count: r)
    for s in shapes {
      for (d, n) in s.enumerated() where n != 1 {
        let o = r - s.count + d
        precondition(out[o] == 1 || out[o] == n, "R64.broadcast: \(shapes)")
        out[o] = n
      }
    }
    return out
  }

  /// The linear index in a tensor of shape `from` read at multi-index `idx` of its broadcast to a larger shape.
  static func source(_ idx: [Int], _ from: [Int]) -> Int {
    let off = idx.count - from.count
    var lin = 0
    for d in from.indices { lin = lin * from[d] + (from[d] == 1 ? 0 : idx[off + d]) }
    return lin
  }

  /// y[i] = x[src(multi-index i)] over `outShape`.
  static func gather(_ x: T64, _ outShape: [Int], _ src: ([Int]) -> Int) -> T64 {
    var y = T64(zeros: outShape)
    for i in 0..<y.count { y.v[i] = x.v[src(unravel(i, outShape))] }
    return y
  }

  /// The adjoint of `gather`: dx[src(i)] += dy[i].
  static func scatter(_ dy: T64, _ xShape: [Int], _ src: ([Int]) -> Int) -> T64 {
    var dx = T64(zeros: xShape)
    for i in 0..<dy.count { dx.v[src(unravel(i, dy.shape))] += dy.v[i] }
    return dx
  }

  // MARK: Elementwise

  static func unary(_ op: UnaryOp, _ x: Double, alpha: Double) -> Double {
    switch op {
    case .neg: return -x
    case .abs: return Swift.abs(x)
    case .exp: return Foundation.exp(x)
    case .log: return Foundation.log(x)
    case .sqrt: return x.squareRoot()
    case .rsqrt: return 1 / x.squareRoot()
    case .sin: return Foundation.sin(x)
    case .cos: return Foundation.cos(x)
    case .tanh: return Foundation.tanh(x)
    case .sigmoid: return 1 / (1 + Foundation.exp(-x))
    case .relu: return x > 0 ? x : 0
    case .leakyRelu: return x >= 0 ? x : alpha * x
    case .silu: return x / (1 + Foundation.exp(-x))
    case .gelu: return 0.5 * x * (1 + Foundation.erf(x / 2.0.squareRoot()))
    }
  }

  static func unaryDerivative(_ op: UnaryOp, _ x: Double, alpha: Double) -> Double {
    switch op {
    case .neg: return -1
    case .abs: return x > 0 ? 1 : (x < 0 ? -1 : 0)
    case .exp: return Foundation.exp(x)
    case .log: return 1 / x
    case .sqrt: return 0.5 / x.squareRoot()
    case .rsqrt: return -0.5 / (x * x.squareRoot())
    case .sin: return Foundation.cos(x)
    case .cos: return -Foundation.sin(x)
    case .tanh:
      let t = Foundation.tanh(x)
      return 1 - t * t
    case .sigmoid:
      let s = 1 / (1 + Foundation.exp(-x))
      return s * (1 - s)
    case .relu: return x > 0 ? 1 : 0
    case .leakyRelu: return x > 0 ? 1 : alpha
    case .silu:
      let s = 1 / (1 + Foundation.exp(-x))
      return s + x * s * (1 - s)
    case .gelu:
      let cdf = 0.5 * (1 + Foundation.erf(x / 2.0.squareRoot()))
      let pdf = Foundation.exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()
      return cdf + x * pdf
    }
  }

  static func unary(_ op: UnaryOp, _ x: T64, alpha: Double = 0.01) -> T64 {
    T64(x.shape, x.v.map { unary(op, $0, alpha: alpha) })
  }

  static func unaryBackward(_ op: UnaryOp, _ x: T64, _ dy: T64, alpha: Double = 0.01) -> T64 {
    T64(x.shape, (0..<x.count).map { dy.v[$0] * unaryDerivative(op, x.v[$0], alpha: alpha) })
  }

  /// The elementwise op of a GEMM/conv epilogue activation (nil for none).
  static func unaryOp(_ a: Activation) -> UnaryOp? {
    switch a {
    case .none: return nil
    case .relu: return .relu
    case .leakyRelu: return .leakyRelu
    case .silu: return .silu
    case .gelu: return .gelu
    case .sigmoid: return .sigmoid
    case .tanh: return .tanh
    }
  }

  static func binary(_ op: BinaryOp, _ p: Double, _ q: Double) -> Double {
    switch op {
    case .add: return p + q
    case .sub: return p - q
    case .mul: return p * q
    case .div: return p / q
    case .pow: return Foundation.pow(p, q)
    case .maximum: return p >= q ? p : q
    case .minimum: return p <= q ? p : q
    }
  }

  /// (∂/∂p, ∂/∂q) of `p op q`; maximum/minimum ties go to p.
  static func binaryPartials(_ op: BinaryOp, _ p: Double, _ q: Double) -> (Double, Double) {
    switch op {
    case .add: return (1, 1)
    case .sub: return (1, -1)
    case .mul: return (q, p)
    case .div: return (1 / q, -p / (q * q))
    case .pow: return (q * Foundation.pow(p, q - 1), Foundation.pow(p, q) * Foundation.log(p))
    case .maximum: return p >= q ? (1, 0) : (0, 1)
    case .minimum: return p <= q ? (1, 0) : (0, 1)
    }
  }

  static func binary(_ op: BinaryOp, _ a: T64, _ b: T64) -> T64 {
    var y = T64(zeros: broadcast(a.shape, b.shape))
    for i in 0..<y.count {
      let idx = unravel(i, y.shape)
      y.v[i] = binary(op, a.v[source(idx, a.shape)], b.v[source(idx, b.shape)])
    }
    return y
  }

  static func binaryBackward(_ op: BinaryOp, _ a: T64, _ b: T64, _ dy: T64) -> [T64] {
    var da = T64(zeros: a.shape), db = T64(zeros: b.shape)
    for i in 0..<dy.count {
      let idx = unravel(i, dy.shape)
      let (ia, ib) = (source(idx, a.shape), source(idx, b.shape))
      let (pa, pb) = binaryPartials(op, a.v[ia], b.v[ib])
      da.v[ia] += dy.v[i] * pa
      db.v[ib] += dy.v[i] * pb
    }
    return [da, db]
  }

  /// `x op s`, or `s op x` when `scalarFirst`.
  static func binaryScalar(_ op: BinaryOp, _ x: T64, _ s: Double, scalarFirst: Bool) -> T64 {
    T64(x.shape, x.v.map { scalarFirst ? binary(op, s, $0) : binary(op, $0, s) })
  }

  static func binaryScalarBackward(_ op: BinaryOp, _ x: T64, _ s: Double, scalarFirst: Bool, _ dy: T64) -> T64
  {
    T64(
      x.shape,
      (0..<x.count).map { i in
        dy.v[i] * (scalarFirst ? binaryPartials(op, s, x.v[i]).1 : binaryPartials(op, x.v[i], s).0)
      })
  }

  static func clamp(_ x: T64, _ lo: Double, _ hi: Double) -> T64 {
    T64(x.shape, x.v.map { Swift.min(Swift.max($0, lo), hi) })
  }

  static func clampBackward(_ x: T64, _ lo: Double, _ hi: Double, _ dy: T64) -> T64 {
    T64(x.shape, (0..<x.count).map { x.v[$0] >= lo && x.v[$0] <= hi ? dy.v[$0] : 0 })
  }

  static func select(_ cond: T64, _ a: T64, _ b: T64) -> T64 {
    var y = T64(zeros: broadcast(cond.shape, a.shape, b.shape))
    for i in 0..<y.count {
      let idx = unravel(i, y.shape)
      y.v[i] = cond.v[source(idx, cond.shape)] != 0 ? a.v[source(idx, a.shape)] : b.v[source(idx, b.shape)]
    }
    return y
  }

  static func selectBackward(_ cond: T64, _ a: T64, _ b: T64, _ dy: T64) -> [T64] {
    var da = T64(zeros: a.shape), db = T64(zeros: b.shape)
    for i in 0..<dy.count {
      let idx = unravel(i, dy.shape)
      if cond.v[source(idx, cond.shape)] != 0 {
        da.v[source(idx, a.shape)] += dy.v[i]
      } else {
        db.v[source(idx, b.shape)] += dy.v[i]
      }
    }
    return [da, db]
  }

  // MARK: Reductions and softmax

  /// The output shape of a reduction and, for every input element, the output element it reduces into.
  static func reduction(_ shape: [Int], axes: [Int]?, keepDims: Bool) -> (shape: [Int], into: [Int], r: Int) {
    let reduced = Set((axes ?? Array(shape.indices)).map { $0 < 0 ? $0 + shape.count : $0 })
    let kept = shape.indices.filter { !reduced.contains($0) }
    let keptShape = kept.map { shape[$0] }
    let outShape = keepDims ? shape.indices.map { reduced.contains($0) ? 1 : shape[$0] } : keptShape
    let n = shape.reduce(1, *)
    let into = (0..<n).map { i in
      let idx = unravel(i, shape)
      return ravel(kept.map { idx[$0] }, keptShape)
    }
    return (outShape, into, reduced.map { shape[$0] }.reduce(1, *))
  }

  static func reduce(_ op: ReduceOp, _ x: T64, axes: [Int]?, keepDims: Bool, correction: Int = 1) -> T64 {
    let (outShape, into, r) = reduction(x.shape, axes: axes, keepDims: keepDims)
    var y = T64(zeros: outShape)
    switch op {
    case .sum, .mean:
      for i in 0..<x.count { y.v[into[i]] += x.v[i] }
      if op == .mean { y.v = y.v.map { $0 / Double(r) } }
    case .max:
      y.v = y.v.map { _ in -Double.infinity }
      for i in 0..<x.count { y.v[into[i]] = Swift.max(y.v[into[i]], x.v[i]) }
    case .variance:
      let m = reduce(.mean, x, axes: axes, keepDims: keepDims)
      for i in 0..<x.count {
        let d = x.v[i] - m.v[into[i]]
        y.v[into[i]] += d * d
      }
      y.v = y.v.map { $0 / Double(r - correction) }
    }
    return y
  }

  static func reduceBackward(
    _ op: ReduceOp, _ x: T64, axes: [Int]?, keepDims: Bool, correction: Int = 1, _ dy: T64
  ) -> T64 {
    let (_, into, r) = reduction(x.shape, axes: axes, keepDims: keepDims)
    var dx = T64(zeros: x.shape)
    switch op {
    case .sum:
      for i in 0..<x.count { dx.v[i] = dy.v[into[i]] }
    case .mean:
      for i in 0..<x.count { dx.v[i] = dy.v[into[i]] / Double(r) }
    case .max:
      // Every element equal to its maximum takes the full gradient.
      let y = reduce(.max, x, axes: axes, keepDims: keepDims)
      for i in 0..<x.count where x.v[i] == y.v[into[i]] { dx.v[i] = dy.v[into[i]] }
    case .variance:
      let m = reduce(.mean, x, axes: axes, keepDims: keepDims)
      for i in 0..<x.count {
        dx.v[i] = 2 * (x.v[i] - m.v[into[i]]) / Double(r - correction) * dy.v[into[i]]
      }
    }
    return dx
  }

  /// (outer, n, inner) around `axis`.
  static func around(_ shape: [Int], _ axis: Int) -> (Int, Int, Int) {
    let a = axis < 0 ? axis + shape.count : axis
    return (shape[..<a].reduce(1, *), shape[a], shape[(a + 1)...].reduce(1, *))
  }

  static func softmax(_ x: T64, axis: Int, log: Bool) -> T64 {
    let (outer, n, inner) = around(x.shape, axis)
    var y = T64(zeros: x.shape)
    for o in 0..<outer {
      for j in 0..<inner {
        let at = { (t: Int) in (o * n + t) * inner + j }
        var m = -Double.infinity
        for t in 0..<n { m = Swift.max(m, x.v[at(t)]) }
        var s = 0.0
        for t in 0..<n { s += Foundation.exp(x.v[at(t)] - m) }
        for t in 0..<n {
          y.v[at(t)] = log ? x.v[at(t)] - m - Foundation.log(s) : Foundation.exp(x.v[at(t)] - m) / s
        }
      }
    }
    return y
  }

  static func softmaxBackward(_ x: T64, axis: Int, log: Bool, _ dy: T64) -> T64 {
    let (outer, n, inner) = around(x.shape, axis)
    let p = softmax(x, axis: axis, log: false)
    var dx = T64(zeros: x.shape)
    for o in 0..<outer {
      for j in 0..<inner {
        let at = { (t: Int) in (o * n + t) * inner + j }
        if log {
          // y_t = x_t − log Σ e^x: ∂L/∂x_s = dy_s − p_s·Σ_t dy_t
          var s = 0.0
          for t in 0..<n { s += dy.v[at(t)] }
          for t in 0..<n { dx.v[at(t)] = dy.v[at(t)] - p.v[at(t)] * s }
        } else {
          // ∂L/∂x_s = p_s·(dy_s − Σ_t dy_t·p_t)
          var s = 0.0
          for t in 0..<n { s += dy.v[at(t)] * p.v[at(t)] }
          for t in 0..<n { dx.v[at(t)] = p.v[at(t)] * (dy.v[at(t)] - s) }
        }
      }
    }
    return dx
  }

  // MARK: Shape ops (all gathers; their gradients are the matching scatters)

  static func permuteSource(_ xShape: [Int], _ perm: [Int]) -> ([Int]) -> Int {
    { idx in
      var src = [Int](repeating: 0, count: perm.count)
      for (d, p) in perm.enumerated() { src[p] = idx[d] }
      return ravel(src, xShape)
    }
  }

  static func permute(_ x: T64, _ perm: [Int]) -> T64 {
    gather(x, perm.map { x.shape[$0] }, permuteSource(x.shape, perm))
  }

  static func permuteBackward(_ x: T64, _ perm: [Int], _ dy: T64) -> T64 {
    scatter(dy, x.shape, permuteSource(x.shape, perm))
  }

  /// Python-style `start:end:step` along `axis`: (first index, length).
  static func sliceRange(_ n: Int, start: Int, end: Int?, step: Int) -> (Int, Int) {
    func norm(_ i: Int) -> Int { Swift.min(Swift.max(i < 0 ? i + n : i, 0), n) }
    let lo = norm(start), hi = norm(end ?? n)
    return (lo, hi > lo ? (hi - lo + step - 1) / step : 0)
  }

  static func sliceGeometry(_ shape: [Int], axis: Int, start: Int, end: Int?, step: Int) -> (
    [Int], ([Int]) -> Int
  ) {
    let a = axis < 0 ? axis + shape.count : axis
    let (lo, len) = sliceRange(shape[a], start: start, end: end, step: step)
    var out = shape
    out[a] = len
    return (
      out,
      { idx in
        var src = idx
        src[a] = lo + idx[a] * step
        return ravel(src, shape)
      }
    )
  }

  static func slice(_ x: T64, axis: Int, start: Int, end: Int?, step: Int) -> T64 {
    let (out, src) = sliceGeometry(x.shape, axis: axis, start: start, end: end, step: step)
    return gather(x, out, src)
  }

  static func sliceBackward(_ x: T64, axis: Int, start: Int, end: Int?, step: Int, _ dy: T64) -> T64 {
    scatter(dy, x.shape, sliceGeometry(x.shape, axis: axis, start: start, end: end, step: step).1)
  }

  static func concat(_ xs: [T64], axis: Int) -> T64 {
    let a = axis < 0 ? axis + xs[0].rank : axis
    var out = xs[0].shape
    out[a] = xs.map { $0.shape[a] }.reduce(0, +)
    var y = T64(zeros: out)
    for i in 0..<y.count {
      var idx = unravel(i, out)
      var which = 0
      while idx[a] >= xs[which].shape[a] {
        idx[a] -= xs[which].shape[a]
        which += 1
      }
      y.v[i] = xs[which].v[ravel(idx, xs[which].shape)]
    }
    return y
  }

  static func concatBackward(_ xs: [T64], axis: Int, _ dy: T64) -> [T64] {
    let a = axis < 0 ? axis + xs[0].rank : axis
    var offset = 0
    return xs.map { x in
      defer { offset += x.shape[a] }
      return gather(dy, x.shape) { idx in
        var src = idx
        src[a] += offset
        return ravel(src, dy.shape)
      }
    }
  }

  static func expand(_ x: T64, to target: [Int]) -> T64 { gather(x, target) { source($0, x.shape) } }

  static func expandBackward(_ x: T64, _ dy: T64) -> T64 { scatter(dy, x.shape) { source($0, x.shape) } }

  static func upsampleSource(_ xShape: [Int]) -> ([Int]) -> Int {
    { idx in
      var src = idx
      src[src.count - 1] /= 2
      src[src.count - 2] /= 2
      return ravel(src, xShape)
    }
  }

  static func upsampleNearest2x(_ x: T64) -> T64 {
    var out = x.shape
    out[out.count - 1] *= 2
    out[out.count - 2] *= 2
    return gather(x, out, upsampleSource(x.shape))
  }

  static func upsampleNearest2xBackward(_ x: T64, _ dy: T64) -> T64 {
    scatter(dy, x.shape, upsampleSource(x.shape))
  }

  /// Rows `labels[i]` of `table` (classes, dim): a class embedding.
  static func embedding(_ table: T64, labels: [Int]) -> T64 {
    gather(table, [labels.count, table.shape[1]]) { idx in labels[idx[0]] * table.shape[1] + idx[1] }
  }

  static func embeddingBackward(_ table: T64, labels: [Int], _ dy: T64) -> T64 {
    scatter(dy, table.shape) { idx in labels[idx[0]] * table.shape[1] + idx[1] }
  }

  // MARK: GEMM

  /// `act(alpha·op(a)·op(b) + beta·c + bias)`; a 2-D operand is shared by every batch.
  struct GemmSpec {
    var transA = false, transB = false
    var alpha = 1.0, beta = 0.0
    var biasMode = BiasMode.none
    var activation = Activation.none
    var activationAlpha = 0.01
  }

  struct GemmDims {
    let batch: Int, m: Int, n: Int, k: Int
    let outShape: [Int]
    /// Linear index of op(a)[bt, i, p] in a, and of op(b)[bt, p, j] in b.
    let ia: (Int, Int, Int) -> Int
    let ib: (Int, Int, Int) -> Int
  }

  static func gemmDims(_ s: GemmSpec, _ a: T64, _ b: T64) -> GemmDims {
    let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
    let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
    let (m, k) = s.transA ? (ac, ar) : (ar, ac)
    let n = s.transB ? br : bc
    precondition(k == (s.transB ? bc : br), "R64.gemm: inner dimensions")
    let batch = Swift.max(a.rank == 3 ? a.shape[0] : 1, b.rank == 3 ? b.shape[0] : 1)
    let sharedA = a.rank == 2, sharedB = b.rank == 2
    return GemmDims(
      batch: batch, m: m, n: n, k: k, outShape: sharedA && sharedB ? [m, n] : [batch, m, n],
      ia: { bt, i, p in (sharedA ? 0 : bt * ar * ac) + (s.transA ? p * ac + i : i * ac + p) },
      ib: { bt, p, j in (sharedB ? 0 : bt * br * bc) + (s.transB ? j * bc + p : p * bc + j) })
  }

  /// The pre-activation `alpha·op(a)·op(b) + beta·c + bias`.
  static func gemmPreActivation(_ s: GemmSpec, _ a: T64, _ b: T64, c: T64?, bias: T64?) -> T64 {
    let g = gemmDims(s, a, b)
    var z = T64(zeros: g.outShape)
    for bt in 0..<g.batch {
      for i in 0..<g.m {
        for j in 0..<g.n {
          var acc = 0.0
          for p in 0..<g.k { acc += a.v[g.ia(bt, i, p)] * b.v[g.ib(bt, p, j)] }
          let o = (bt * g.m + i) * g.n + j
          var v = s.alpha * acc
          if let c { v += s.beta * c.v[o] }
          if let bias { v += bias.v[s.biasMode == .perRow ? i : j] }
          z.v[o] = v
        }
      }
    }
    return z
  }

  static func gemm(_ s: GemmSpec, _ a: T64, _ b: T64, c: T64? = nil, bias: T64? = nil) -> T64 {
    let z = gemmPreActivation(s, a, b, c: c, bias: bias)
    guard let act = unaryOp(s.activation) else { return z }
    return unary(act, z, alpha: s.activationAlpha)
  }

  /// Gradients of a, b, then c and bias when given.
  static func gemmBackward(_ s: GemmSpec, _ a: T64, _ b: T64, c: T64? = nil, bias: T64? = nil, _ dy: T64)
    -> [T64]
  {
    let g = gemmDims(s, a, b)
    var dz = dy
    if let act = unaryOp(s.activation) {
      dz = unaryBackward(act, gemmPreActivation(s, a, b, c: c, bias: bias), dy, alpha: s.activationAlpha)
    }
    var da = T64(zeros: a.shape), db = T64(zeros: b.shape)
    var dbias = T64(zeros: bias?.shape ?? [0])
    for bt in 0..<g.batch {
      for i in 0..<g.m {
        for j in 0..<g.n {
          let d = dz.v[(bt * g.m + i) * g.n + j]
          for p in 0..<g.k {
            da.v[g.ia(bt, i, p)] += s.alpha * d * b.v[g.ib(bt, p, j)]
            db.v[g.ib(bt, p, j)] += s.alpha * d * a.v[g.ia(bt, i, p)]
          }
          if bias != nil { dbias.v[s.biasMode == .perRow ? i : j] += d }
        }
      }
    }
    var grads = [da, db]
    if c != nil { grads.append(T64(dz.shape, dz.v.map { s.beta * $0 })) }
    if bias != nil { grads.append(dbias) }
    return grads
  }

  // MARK: Convolution

  struct ConvSpec {
    var strideH = 1, strideW = 1
    var padT = 0, padL = 0, padB = 0, padR = 0
  }

  /// Calls `body(n, o, oy, ox, c, iy, ix, ky, kx)` for every in-bounds tap of a convolution of x (N, C, H, W)
  /// with weights (O, C, KH, KW); returns the output shape.
  @discardableResult
  static func convTaps(
    _ xShape: [Int], _ wShape: [Int], _ s: ConvSpec,
    _ body: (Int, Int, Int, Int, Int, Int, Int, Int, Int) -> Void
  ) -> [Int] {
    let (n, c, h, w) = (xShape[0], xShape[1], xShape[2], xShape[3])
    let (o, kh, kw) = (wShape[0], wShape[2], wShape[3])
    let ho = (h + s.padT + s.padB - kh) / s.strideH + 1
    let wo = (w + s.padL + s.padR - kw) / s.strideW + 1
    for b in 0..<n {
      for oc in 0..<o {
        for oy in 0..<ho {
          for ox in 0..<wo {
            for ic in 0..<c {
              for ky in 0..<kh {
                let iy = oy * s.strideH - s.padT + ky
                guard iy >= 0 && iy < h else { continue }
                for kx in 0..<kw {
                  let ix = ox * s.strideW - s.padL + kx
                  guard ix >= 0 && ix < w else { continue }
                  body(b, oc, oy, ox, ic, iy, ix, ky, kx)
                }
              }
            }
          }
        }
      }
    }
    return [n, o, ho, wo]
  }

  static func conv2d(_ x: T64, _ w: T64, bias: T64?, _ s: ConvSpec) -> T64 {
    let (n, o) = (x.shape[0], w.shape[0])
    let ho = (x.shape[2] + s.padT + s.padB - w.shape[2]) / s.strideH + 1
    let wo = (x.shape[3] + s.padL + s.padR - w.shape[3]) / s.strideW + 1
    var y = T64(zeros: [n, o, ho, wo])
    if let bias {
      for i in 0..<y.count { y.v[i] = bias.v[(i / (ho * wo)) % o] }
    }
    convTaps(x.shape, w.shape, s) { b, oc, oy, ox, ic, iy, ix, ky, kx in
      y.v[ravel([b, oc, oy, ox], y.shape)] +=
        x.v[ravel([b, ic, iy, ix], x.shape)] * w.v[ravel([oc, ic, ky, kx], w.shape)]
    }
    return y
  }

  static func conv2dBackward(_ x: T64, _ w: T64, bias: T64?, _ s: ConvSpec, _ dy: T64) -> [T64] {
    var dx = T64(zeros: x.shape), dw = T64(zeros: w.shape)
    convTaps(x.shape, w.shape, s) { b, oc, oy, ox, ic, iy, ix, ky, kx in
      let g = dy.v[ravel([b, oc, oy, ox], dy.shape)]
      dx.v[ravel([b, ic, iy, ix], x.shape)] += g * w.v[ravel([oc, ic, ky, kx], w.shape)]
      dw.v[ravel([oc, ic, ky, kx], w.shape)] += g * x.v[ravel([b, ic, iy, ix], x.shape)]
    }
    guard let bias else { return [dx, dw] }
    var db = T64(zeros: bias.shape)
    let (o, hw) = (dy.shape[1], dy.shape[2] * dy.shape[3])
    for i in 0..<dy.count { db.v[(i / hw) % o] += dy.v[i] }
    return [dx, dw, db]
  }

  /// Calls `body(n, ci, iy, ix, co, oy, ox, ky, kx)` for every tap of a transposed convolution of
  /// x (N, Cin, H, W) with weights (Cin, Cout, KH, KW): input (iy, ix) feeds output (iy·s − p + ky, …).
  @discardableResult
  static func convTransposeTaps(
    _ xShape: [Int], _ wShape: [Int], stride: Int, padding: Int, outputPadding: Int,
    _ body: (Int, Int, Int, Int, Int, Int, Int, Int, Int) -> Void
  ) -> [Int] {
    let (n, ci, h, w) = (xShape[0], xShape[1], xShape[2], xShape[3])
    let (co, kh, kw) = (wShape[1], wShape[2], wShape[3])
    let ho = (h - 1) * stride - 2 * padding + kh + outputPadding
    let wo = (w - 1) * stride - 2 * padding + kw + outputPadding
    for b in 0..<n {
      for ic in 0..<ci {
        for iy in 0..<h {
          for ix in 0..<w {
            for oc in 0..<co {
              for ky in 0..<kh {
                let oy = iy * stride - padding + ky
                guard oy >= 0 && oy < ho else { continue }
                for kx in 0..<kw {
                  let ox = ix * stride - padding + kx
                  guard ox >= 0 && ox < wo else { continue }
                  body(b, ic, iy, ix, oc, oy, ox, ky, kx)
                }
              }
            }
          }
        }
      }
    }
    return [n, co, ho, wo]
  }

  static func convTranspose2d(_ x: T64, _ w: T64, bias: T64?, stride: Int, padding: Int, outputPadding: Int)
    -> T64
  {
    let co = w.shape[1]
    let ho = (x.shape[2] - 1) * stride - 2 * padding + w.shape[2] + outputPadding
    let wo = (x.shape[3] - 1) * stride - 2 * padding + w.shape[3] + outputPadding
    var y = T64(zeros: [x.shape[0], co, ho, wo])
    if let bias {
      for i in 0..<y.count { y.v[i] = bias.v[(i / (ho * wo)) % co] }
    }
    convTransposeTaps(x.shape, w.shape, stride: stride, padding: padding, outputPadding: outputPadding) {
      b, ic, iy, ix, oc, oy, ox, ky, kx in
      y.v[ravel([b, oc, oy, ox], y.shape)] +=
        x.v[ravel([b, ic, iy, ix], x.shape)] * w.v[ravel([ic, oc, ky, kx], w.shape)]
    }
    return y
  }

  static func convTranspose2dBackward(
    _ x: T64, _ w: T64, bias: T64?, stride: Int, padding: Int, outputPadding: Int, _ dy: T64
  ) -> [T64] {
    var dx = T64(zeros: x.shape), dw = T64(zeros: w.shape)
    convTransposeTaps(x.shape, w.shape, stride: stride, padding: padding, outputPadding: outputPadding) {
      b, ic, iy, ix, oc, oy, ox, ky, kx in
      let g = dy.v[ravel([b, oc, oy, ox], dy.shape)]
      dx.v[ravel([b, ic, iy, ix], x.shape)] += g * w.v[ravel([ic, oc, ky, kx], w.shape)]
      dw.v[ravel([ic, oc, ky, kx], w.shape)] += g * x.v[ravel([b, ic, iy, ix], x.shape)]
    }
    guard let bias else { return [dx, dw] }
    var db = T64(zeros: bias.shape)
    let (co, hw) = (dy.shape[1], dy.shape[2] * dy.shape[3])
    for i in 0..<dy.count { db.v[(i / hw) % co] += dy.v[i] }
    return [dx, dw, db]
  }

  // MARK: Normalisation

  /// Normalisation of (N, C, …) over sets of elements (`set(i)` of element i; `sets` of them), biased
  /// variance, then the per-channel affine γ·x̂ + β and optionally SiLU.
  struct NormSets {
    let channel: (Int) -> Int
    let set: (Int) -> Int
    let sets: Int
  }

  static func groupNormSets(_ shape: [Int], groups: Int) -> NormSets {
    let c = shape[1], hw = shape[2...].reduce(1, *)
    let cpg = c / groups
    return NormSets(
      channel: { ($0 / hw) % c }, set: { i in (i / (c * hw)) * groups + ((i / hw) % c) / cpg },
      sets: shape[0] * groups)
  }

  static func batchNormSets(_ shape: [Int]) -> NormSets {
    let c = shape[1], hw = shape[2...].reduce(1, *)
    return NormSets(channel: { ($0 / hw) % c }, set: { ($0 / hw) % c }, sets: c)
  }

  /// Per element: x̂ and rstd of its set.
  static func standardise(_ x: T64, _ sets: NormSets, eps: Double) -> (xhat: [Double], rstd: [Double]) {
    var sum = [Double](repeating: 0, count: sets.sets), cnt = sum, sq = sum
    for i in 0..<x.count {
      sum[sets.set(i)] += x.v[i]
      cnt[sets.set(i)] += 1
    }
    let mean = (0..<sets.sets).map { sum[$0] / cnt[$0] }
    for i in 0..<x.count {
      let d = x.v[i] - mean[sets.set(i)]
      sq[sets.set(i)] += d * d
    }
    let rstd = (0..<sets.sets).map { 1 / (sq[$0] / cnt[$0] + eps).squareRoot() }
    return ((0..<x.count).map { (x.v[$0] - mean[sets.set($0)]) * rstd[sets.set($0)] }, rstd)
  }

  static func normalise(_ x: T64, _ gamma: T64, _ beta: T64, _ sets: NormSets, eps: Double, silu: Bool) -> T64
  {
    let (xhat, _) = standardise(x, sets, eps: eps)
    return T64(
      x.shape,
      (0..<x.count).map { i in
        let a = gamma.v[sets.channel(i)] * xhat[i] + beta.v[sets.channel(i)]
        return silu ? unary(.silu, a, alpha: 0) : a
      })
  }

  /// Gradients of x, γ, β.
  static func normaliseBackward(
    _ x: T64, _ gamma: T64, _ beta: T64, _ sets: NormSets, eps: Double, silu: Bool, _ dy: T64
  ) -> [T64] {
    let (xhat, rstd) = standardise(x, sets, eps: eps)
    var dgamma = T64(zeros: gamma.shape), dbeta = T64(zeros: beta.shape)
    var dxhat = [Double](repeating: 0, count: x.count)
    var m1 = [Double](repeating: 0, count: sets.sets), m2 = m1, cnt = m1
    for i in 0..<x.count {
      let ch = sets.channel(i)
      var da = dy.v[i]
      if silu { da *= unaryDerivative(.silu, gamma.v[ch] * xhat[i] + beta.v[ch], alpha: 0) }
      dgamma.v[ch] += da * xhat[i]
      dbeta.v[ch] += da
      dxhat[i] = da * gamma.v[ch]
      m1[sets.set(i)] += dxhat[i]
      m2[sets.set(i)] += dxhat[i] * xhat[i]
      cnt[sets.set(i)] += 1
    }
    // x̂ = (x − μ)·rstd over a set of n: ∂L/∂x = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))
    let dx = (0..<x.count).map { i in
      let s = sets.set(i)
      return rstd[s] * (dxhat[i] - m1[s] / cnt[s] - xhat[i] * m2[s] / cnt[s])
    }
    return [T64(x.shape, dx), dgamma, dbeta]
  }

  /// Batch normalisation of (N, C, …) per channel followed by `act` (nil: none; slope `alpha`): with the batch
  /// statistics (biased variance) when `running` is nil, else with the given running (mean, variance). γ and β
  /// nil: no affine.
  static func batchNorm(
    _ x: T64, gamma: T64?, beta: T64?, running: (mean: [Double], variance: [Double])? = nil, eps: Double,
    act: UnaryOp?, alpha: Double
  ) -> T64 {
    let a = batchNormAffine(x, gamma: gamma, beta: beta, running: running, eps: eps)
    guard let act else { return a }
    return unary(act, a, alpha: alpha)
  }

  /// The normalised, affine values before the activation.
  static func batchNormAffine(
    _ x: T64, gamma: T64?, beta: T64?, running: (mean: [Double], variance: [Double])?, eps: Double
  ) -> T64 {
    let c = x.shape[1]
    let ones = T64([c], [Double](repeating: 1, count: c)), zeros = T64(zeros: [c])
    let sets = batchNormSets(x.shape)
    guard let running else { return normalise(x, gamma ?? ones, beta ?? zeros, sets, eps: eps, silu: false) }
    return T64(
      x.shape,
      (0..<x.count).map { i in
        let ch = sets.channel(i)
        let xhat = (x.v[i] - running.mean[ch]) / (running.variance[ch] + eps).squareRoot()
        return (gamma?.v[ch] ?? 1) * xhat + (beta?.v[ch] ?? 0)
      })
  }

  /// Gradients of x, then γ and β when given.
  static func batchNormBackward(
    _ x: T64, gamma: T64?, beta: T64?, running: (mean: [Double], variance: [Double])? = nil, eps: Double,
    act: UnaryOp?, alpha: Double, _ dy: T64
  ) -> [T64] {
    let c = x.shape[1]
    let sets = batchNormSets(x.shape)
    var da = dy
    if let act {
      let a = batchNormAffine(x, gamma: gamma, beta: beta, running: running, eps: eps)
      da = unaryBackward(act, a, dy, alpha: alpha)
    }
    var grads: [T64]
    if let running {
      var dx = T64(zeros: x.shape), dgamma = T64(zeros: [c]), dbeta = T64(zeros: [c])
      for i in 0..<x.count {
        let ch = sets.channel(i)
        let rstd = 1 / (running.variance[ch] + eps).squareRoot()
        dx.v[i] = da.v[i] * (gamma?.v[ch] ?? 1) * rstd
        dgamma.v[ch] += da.v[i] * (x.v[i] - running.mean[ch]) * rstd
        dbeta.v[ch] += da.v[i]
      }
      grads = [dx, dgamma, dbeta]
    } else {
      let ones = T64([c], [Double](repeating: 1, count: c)), zeros = T64(zeros: [c])
      grads = normaliseBackward(x, gamma ?? ones, beta ?? zeros, sets, eps: eps, silu: false, da)
    }
    return [grads[0]] + (gamma == nil ? [] : [grads[1]]) + (beta == nil ? [] : [grads[2]])
  }

  // MARK: Attention

  /// softmax(scale·Q·Kᵀ)·V for q (B, L, D), k (B, S, D), v (B, S, E); also returns the probabilities.
  static func attentionWithProbabilities(_ q: T64, _ k: T64, _ v: T64, scale: Double) -> (T64, [Double]) {
    let (nb, l, d) = (q.shape[0], q.shape[1], q.shape[2])
    let (s, e) = (k.shape[1], v.shape[2])
    var p = [Double](repeating: 0, count: nb * l * s)
    var y = T64(zeros: [nb, l, e])
    for b in 0..<nb {
      for i in 0..<l {
        var scores = [Double](repeating: 0, count: s)
        for j in 0..<s {
          for t in 0..<d { scores[j] += q.v[(b * l + i) * d + t] * k.v[(b * s + j) * d + t] }
          scores[j] *= scale
        }
        let m = scores.max()!
        let z = scores.map { Foundation.exp($0 - m) }.reduce(0, +)
        for j in 0..<s {
          let pj = Foundation.exp(scores[j] - m) / z
          p[(b * l + i) * s + j] = pj
          for t in 0..<e { y.v[(b * l + i) * e + t] += pj * v.v[(b * s + j) * e + t] }
        }
      }
    }
    return (y, p)
  }

  static func attention(_ q: T64, _ k: T64, _ v: T64, scale: Double) -> T64 {
    attentionWithProbabilities(q, k, v, scale: scale).0
  }

  static func attentionBackward(_ q: T64, _ k: T64, _ v: T64, scale: Double, _ dy: T64) -> [T64] {
    let (nb, l, d) = (q.shape[0], q.shape[1], q.shape[2])
    let (s, e) = (k.shape[1], v.shape[2])
    let p = attentionWithProbabilities(q, k, v, scale: scale).1
    var dq = T64(zeros: q.shape), dk = T64(zeros: k.shape), dv = T64(zeros: v.shape)
    for b in 0..<nb {
      for i in 0..<l {
        // dP_j = dY_i · V_j;  dS_j = P_j·(dP_j − Σ_t P_t·dP_t)
        var dp = [Double](repeating: 0, count: s)
        for j in 0..<s {
          for t in 0..<e {
            dp[j] += dy.v[(b * l + i) * e + t] * v.v[(b * s + j) * e + t]
            dv.v[(b * s + j) * e + t] += p[(b * l + i) * s + j] * dy.v[(b * l + i) * e + t]
          }
        }
        var dot = 0.0
        for j in 0..<s { dot += p[(b * l + i) * s + j] * dp[j] }
        for j in 0..<s {
          let ds = p[(b * l + i) * s + j] * (dp[j] - dot) * scale
          for t in 0..<d {
            dq.v[(b * l + i) * d + t] += ds * k.v[(b * s + j) * d + t]
            dk.v[(b * s + j) * d + t] += ds * q.v[(b * l + i) * d + t]
          }
        }
      }
    }
    return [dq, dk, dv]
  }

  // MARK: Losses (scalar outputs, shape [])

  static func mse(_ p: T64, _ t: T64) -> T64 {
    T64([], [(0..<p.count).map { (p.v[$0] - t.v[$0]) * (p.v[$0] - t.v[$0]) }.reduce(0, +) / Double(p.count)])
  }

  static func mseBackward(_ p: T64, _ t: T64, _ dy: T64) -> [T64] {
    let g = (0..<p.count).map { 2 * (p.v[$0] - t.v[$0]) / Double(p.count) * dy.v[0] }
    return [T64(p.shape, g), T64(t.shape, g.map { -$0 })]
  }

  /// mean(softplus(x) − x·z), with softplus(x) = log(1 + eˣ) evaluated stably.
  static func bceWithLogits(_ x: T64, _ z: T64) -> T64 {
    let terms = (0..<x.count).map { i -> Double in
      let a = x.v[i]
      return Swift.max(a, 0) + Foundation.log1p(Foundation.exp(-Swift.abs(a))) - a * z.v[i]
    }
    return T64([], [terms.reduce(0, +) / Double(x.count)])
  }

  static func bceWithLogitsBackward(_ x: T64, _ z: T64, _ dy: T64) -> [T64] {
    let n = Double(x.count)
    return [
      T64(x.shape, (0..<x.count).map { (unary(.sigmoid, x.v[$0], alpha: 0) - z.v[$0]) / n * dy.v[0] }),
      T64(z.shape, (0..<z.count).map { -x.v[$0] / n * dy.v[0] }),
    ]
  }

  /// −½·Σ(1 + lv − μ² − e^lv) / N.
  static func gaussianKL(_ mu: T64, _ lv: T64) -> T64 {
    let s = (0..<mu.count).map { 1 + lv.v[$0] - mu.v[$0] * mu.v[$0] - Foundation.exp(lv.v[$0]) }.reduce(0, +)
    return T64([], [-0.5 * s / Double(mu.shape[0])])
  }

  static func gaussianKLBackward(_ mu: T64, _ lv: T64, _ dy: T64) -> [T64] {
    let n = Double(mu.shape[0])
    return [
      T64(mu.shape, mu.v.map { $0 / n * dy.v[0] }),
      T64(lv.shape, lv.v.map { -0.5 * (1 - Foundation.exp($0)) / n * dy.v[0] }),
    ]
  }
}
