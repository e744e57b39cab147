// Tensor ops: elementwise, broadcasting binary, clamp/where, reductions, softmax, shape ops.
// Each validates shapes on the host, then issues one backend call per kernel.

extension Tensor {
  var backend: any Backend { device.backend }

  // MARK: Unary

  /// Applies a unary op elementwise (`alpha` is leaky ReLU's negative slope).
  public func apply(_ op: UnaryOp, alpha: Float = 0.01) throws -> Tensor {
    let y = try Tensor(uninitialized: shape, on: device)
    if count > 0 { try backend.unary(op, buffer, y.buffer, count: count, alpha: alpha) }
    Tape.record(y, [self]) { dy, _ in
      // tanh′ = 1 − tanh², read from the output: the same floats as recomputing tanh, without a second
      // transcendental per element.
      if op == .tanh { return [try dy * (1 - y * y)] }
      return [try dy.unaryGradient(op, x: self, alpha: alpha)]
    }
    return y
  }

  public func neg() throws -> Tensor { try apply(.neg) }
  public func abs() throws -> Tensor { try apply(.abs) }
  public func exp() throws -> Tensor { try apply(.exp) }
  public func log() throws -> Tensor { try apply(.log) }
  public func sqrt() throws -> Tensor { try apply(.sqrt) }
  public func rsqrt() throws -> Tensor { try apply(.rsqrt) }
  public func sin() throws -> Tensor { try apply(.sin) }
  public func cos() throws -> Tensor { try apply(.cos) }
  public func tanh() throws -> Tensor { try apply(.tanh) }
  public func sigmoid() throws -> Tensor { try apply(.sigmoid) }
  public func relu() throws -> Tensor { try apply(.relu) }
  public func leakyRelu(alpha: Float = 0.01) throws -> Tensor { try apply(.leakyRelu, alpha: alpha) }
  public func silu() throws -> Tensor { try apply(.silu) }
  public func gelu() throws -> Tensor { try apply(.gelu) }

  // MARK: Binary

  /// `self op other` with NumPy broadcasting.
  public func binary(_ op: BinaryOp, _ other: Tensor) throws -> Tensor {
    try sameDevice(other, op.rawValue)
    let out = try Shape.broadcast(shape, other.shape, op.rawValue)
    let y = try Tensor(uninitialized: out, on: device)
    guard y.count > 0 else { return y }
    let c = try Shape.collapse(
      out, [Shape.broadcastStrides(shape, to: out), Shape.broadcastStrides(other.shape, to: out)],
      op: op.rawValue)
    try backend.binary(
      op, buffer, other.buffer, y.buffer, layout: BroadcastLayout(shape: c.shape, strides: c.strides))
    Tape.record(y, [self, other]) { dy, needs in
      try Tensor.binaryBackward(op, self, other, y, dy, needs)
    }
    return y
  }

  /// `self op s`, or `s op self` when `scalarFirst`.
  public func binary(_ op: BinaryOp, scalar s: Float, scalarFirst: Bool = false) throws -> Tensor {
    let y = try Tensor(uninitialized: shape, on: device)
    if count > 0 {
      try backend.binaryScalar(op, buffer, scalar: s, scalarFirst: scalarFirst, y.buffer, count: count)
    }
    Tape.record(y, [self]) { dy, _ in
      [try Tensor.binaryScalarBackward(op, self, s, scalarFirst: scalarFirst, y, dy)]
    }
    return y
  }

  public func add(_ o: Tensor) throws -> Tensor { try binary(.add, o) }
  public func sub(_ o: Tensor) throws -> Tensor { try binary(.sub, o) }
  public func mul(_ o: Tensor) throws -> Tensor { try binary(.mul, o) }
  public func div(_ o: Tensor) throws -> Tensor { try binary(.div, o) }
  public func pow(_ o: Tensor) throws -> Tensor { try binary(.pow, o) }
  public func maximum(_ o: Tensor) throws -> Tensor { try binary(.maximum, o) }
  public func minimum(_ o: Tensor) throws -> Tensor { try binary(.minimum, o) }
  public func add(_ s: Float) throws -> Tensor { try binary(.add, scalar: s) }
  public func sub(_ s: Float) throws -> Tensor { try binary(.sub, scalar: s) }
  public func mul(_ s: Float) throws -> Tensor { try binary(.mul, scalar: s) }
  public func div(_ s: Float) throws -> Tensor { try binary(.div, scalar: s) }
  public func pow(_ s: Float) throws -> Tensor { try binary(.pow, scalar: s) }
  public func maximum(_ s: Float) throws -> Tensor { try binary(.maximum, scalar: s) }
  public func minimum(_ s: Float) throws -> Tensor { try binary(.minimum, scalar: s) }

  public static func + (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.add, b) }
  public static func - (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.sub, b) }
  public static func * (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.mul, b) }
  public static func / (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.div, b) }
  public static func + (a: Tensor, s: Float) throws -> Tensor { try a.binary(.add, scalar: s) }
  public static func - (a: Tensor, s: Float) throws -> Tensor { try a.binary(.sub, scalar: s) }
  public static func * (a: Tensor, s: Float) throws -> Tensor { try a.binary(.mul, scalar: s) }
  public static func / (a: Tensor, s: Float) throws -> Tensor { try a.binary(.div, scalar: s) }
  public static func + (s: Float, a: Tensor) throws -> Tensor {
    try a.binary(.add, scalar: s, scalarFirst: true)
  }
  public static func - (s: Float, a: Tensor) throws -> Tensor {
    try a.binary(.sub, scalar: s, scalarFirst: true)
  }
  public static func * (s: Float, a: Tensor) throws -> Tensor {
    try a.binary(.mul, scalar: s, scalarFirst: true)
  }
  public static func / (s: Float, a: Tensor) throws -> Tensor {
    try a.binary(.div, scalar: s, scalarFirst: true)
  }
  public static prefix func - (a: Tensor) throws -> Tensor { try a.neg() }

  /// Clamps every element into [lower, upper].
  public func clamp(min lower: Float, max upper: Float) throws -> Tensor {
    guard lower <= upper else { throw GPUGenError.invalidArgument("clamp: min \(lower) > max \(upper)") }
    let y = try Tensor(uninitialized: shape, on: device)
    if count > 0 { try backend.clamp(buffer, y.buffer, count: count, lower: lower, upper: upper) }
    Tape.record(y, [self]) { dy, _ in [try dy.clampGradient(x: self, lower: lower, upper: upper)] }
    return y
  }

  /// `cond != 0 ? a : b`, elementwise, with all three broadcast together.
  public static func `where`(_ cond: Tensor, _ a: Tensor, _ b: Tensor) throws -> Tensor {
    try cond.sameDevice(a, "where")
    try cond.sameDevice(b, "where")
    let out = try Shape.broadcast(try Shape.broadcast(cond.shape, a.shape, "where"), b.shape, "where")
    let y = try Tensor(uninitialized: out, on: cond.device)
    guard y.count > 0 else { return y }
    let c = try Shape.collapse(
      out, [cond, a, b].map { Shape.broadcastStrides($0.shape, to: out) }, op: "where")
    try cond.backend.select(
      cond.buffer, a.buffer, b.buffer, y.buffer, layout: BroadcastLayout(shape: c.shape, strides: c.strides))
    Tape.record(y, [a, b]) { dy, needs in
      let zero = try Tensor.zeros([], on: dy.device)
      return [
        needs[0] ? try Tensor.where(cond, dy, zero).sumTo(a.shape) : nil,
        needs[1] ? try Tensor.where(cond, zero, dy).sumTo(b.shape) : nil,
      ]
    }
    return y
  }

  // MARK: Reductions

  /// Reduces over `axes` (all axes when nil). Variance divides by (n − correction).
  public func reduce(_ op: ReduceOp, axes: [Int]? = nil, keepDims: Bool = false, correction: Int = 1) throws
    -> Tensor
  {
    let axesSet = Set(try (axes ?? Array(0..<rank)).map { try Shape.axis($0, rank: rank, "reduce") })
    let reduced = axesSet.sorted()
    let outShape =
      keepDims
      ? shape.enumerated().map { axesSet.contains($0.offset) ? 1 : $0.element }
      : shape.enumerated().filter { !axesSet.contains($0.offset) }.map(\.element)
    let r = reduced.map { shape[$0] }.reduce(1, *)
    let y = try Tensor(uninitialized: outShape, on: device)
    if y.count == 0 { return y }
    if r == 0 {
      if op == .max {
        throw GPUGenError.invalidArgument("max: cannot reduce over an empty axis of shape \(shape)")
      }
      try backend.fill(y.buffer, count: y.count, value: op == .sum ? 0 : .nan)
      return y
    }
    if reduced.isEmpty {
      // Nothing to reduce: sum/mean/max are the identity; variance of one sample.
      if op == .variance {
        try backend.fill(y.buffer, count: y.count, value: correction >= 1 ? .nan : 0)
        return y
      }
      return try copy().reshaped(outShape)
    }
    let contiguousBlock = reduced.last! - reduced.first! + 1 == reduced.count
    if !contiguousBlock && op != .variance {
      // Axes in separate runs (a bias gradient's [0, 2, 3]): reduce the last run, then the others, which
      // needs no permuted copy (sum, mean and max compose; means over equal-sized groups stay exact).
      var run = reduced.count - 1
      while run > 0 && reduced[run - 1] == reduced[run] - 1 { run -= 1 }
      let partial = try reduce(op, axes: Array(reduced[run...]), keepDims: true)
      let full = try partial.reduce(op, axes: Array(reduced[..<run]), keepDims: true)
      return keepDims ? full : try full.reshaped(outShape)
    }
    var src = self
    var outer: Int, inner: Int
    if contiguousBlock {
      outer = shape[..<reduced.first!].reduce(1, *)
      inner = shape[(reduced.last! + 1)...].reduce(1, *)
    } else {
      let kept = (0..<rank).filter { !axesSet.contains($0) }
      src = try permuted(kept + reduced)
      outer = kept.map { shape[$0] }.reduce(1, *)
      inner = 1
    }
    try backend.reduce(op, src.buffer, y.buffer, outer: outer, r: r, inner: inner, correction: correction)
    Tape.record(y, [src]) { [outer, inner] dy, _ in
      [try Tensor.reduceBackward(op, src, y, dy, outer: outer, r: r, inner: inner, correction: correction)]
    }
    return y
  }

  public func sum(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
    try reduce(.sum, axes: axes, keepDims: keepDims)
  }
  public func mean(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
    try reduce(.mean, axes: axes, keepDims: keepDims)
  }
  public func max(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
    try reduce(.max, axes: axes, keepDims: keepDims)
  }
  /// Variance; `correction` 1 (default, like torch.var) is unbiased, 0 is the population variance.
  public func variance(axes: [Int]? = nil, keepDims: Bool = false, correction: Int = 1) throws -> Tensor {
    try reduce(.variance, axes: axes, keepDims: keepDims, correction: correction)
  }

  /// Softmax along `axis`.
  public func softmax(axis: Int = -1) throws -> Tensor { try softmax(axis: axis, log: false) }
  /// Log-softmax along `axis`.
  public func logSoftmax(axis: Int = -1) throws -> Tensor { try softmax(axis: axis, log: true) }

  func softmax(axis: Int, log: Bool) throws -> Tensor {
    let a = try Shape.axis(axis, rank: rank, "softmax")
    let y = try Tensor(uninitialized: shape, on: device)
    guard count > 0 else { return y }
    let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
    try backend.softmax(buffer, y.buffer, outer: outer, r: shape[a], inner: inner, log: log)
    Tape.record(y, [self]) { dy, _ in [try Tensor.softmaxBackward(y, dy, axis: a, log: log)] }
    return y
  }

  // MARK: Shape ops

  /// Reorders axes (materialised): result axis i is input axis `perm[i]`.
  public func permuted(_ perm: [Int]) throws -> Tensor {
    let p = try perm.map { try Shape.axis($0, rank: rank, "permute") }
    guard p.count == rank, Set(p).count == rank else {
      throw GPUGenError.invalidArgument("permute: \(perm) is not a permutation of \(rank) axes")
    }
    let outShape = p.map { shape[$0] }
    let y = try Tensor(uninitialized: outShape, on: device)
    guard count > 0 else { return y }
    let xs = Shape.strides(shape)
    let c = try Shape.collapse(outShape, [p.map { xs[$0] }, Shape.strides(outShape)], op: "permute")
    try backend.copyStrided(
      buffer, y.buffer,
      StridedCopy(shape: c.shape, xStrides: c.strides[0], xOffset: 0, yStrides: c.strides[1], yOffset: 0))
    Tape.record(y, [self]) { dy, _ in
      var inverse = [Int](repeating: 0, count: p.count)
      for (i, axis) in p.enumerated() { inverse[axis] = i }
      return [try dy.permuted(inverse)]
    }
    return y
  }

  /// Swaps two axes (materialised).
  public func transposed(_ a: Int = -2, _ b: Int = -1) throws -> Tensor {
    var p = Array(0..<rank)
    p.swapAt(try Shape.axis(a, rank: rank, "transpose"), try Shape.axis(b, rank: rank, "transpose"))
    return try permuted(p)
  }

  /// Elements `start..<end` (step `step`) along `axis`; negative indices count from the end and
  /// out-of-range bounds are clamped, as in Python.
  public func slice(axis: Int, start: Int, end: Int? = nil, step: Int = 1) throws -> Tensor {
    let a = try Shape.axis(axis, rank: rank, "slice")
    guard step > 0 else { throw GPUGenError.invalidArgument("slice: step must be positive, got \(step)") }
    let n = shape[a]
    func clampIndex(_ i: Int) -> Int { Swift.min(Swift.max(i < 0 ? i + n : i, 0), n) }
    let lo = clampIndex(start), hi = clampIndex(end ?? n)
    let len = hi > lo ? (hi - lo + step - 1) / step : 0
    var outShape = shape
    outShape[a] = len
    let y = try Tensor(uninitialized: outShape, on: device)
    guard y.count > 0 else { return y }
    var xs = Shape.strides(shape)
    let offset = lo * xs[a]
    xs[a] *= step
    let c = try Shape.collapse(outShape, [xs, Shape.strides(outShape)], op: "slice")
    try backend.copyStrided(
      buffer, y.buffer,
      StridedCopy(shape: c.shape, xStrides: c.strides[0], xOffset: offset, yStrides: c.strides[1], yOffset: 0)
    )
    Tape.record(y, [self]) { [shape] dy, _ in
      // Scatter dy back into zeros with the forward copy's strides swapped.
      let dx = try Tensor.zeros(shape, on: dy.device)
      try dy.backend.copyStrided(
        dy.buffer, dx.buffer,
        StridedCopy(
          shape: c.shape, xStrides: c.strides[1], xOffset: 0, yStrides: c.strides[0], yOffset: offset))
      return [dx]
    }
    return y
  }

  /// Concatenates tensors along `axis`; all other dimensions must agree.
  public static func concat(_ tensors: [Tensor], axis: Int) throws -> Tensor {
    guard let first = tensors.first else { throw GPUGenError.invalidArgument("concat: no tensors") }
    let a = try Shape.axis(axis, rank: first.rank, "concat")
    var outShape = first.shape
    outShape[a] = 0
    for t in tensors {
      try first.sameDevice(t, "concat")
      var s = t.shape
      guard s.count == first.rank else {
        throw GPUGenError.shapeMismatch(op: "concat", lhs: first.shape, rhs: t.shape)
      }
      s[a] = first.shape[a]
      guard s == first.shape else {
        throw GPUGenError.shapeMismatch(op: "concat", lhs: first.shape, rhs: t.shape)
      }
      outShape[a] += t.shape[a]
    }
    let y = try Tensor(uninitialized: outShape, on: first.device)
    let ys = Shape.strides(outShape)
    var offset = 0
    for t in tensors {
      if t.count > 0 {
        let c = try Shape.collapse(t.shape, [Shape.strides(t.shape), ys], op: "concat")
        try first.backend.copyStrided(
          t.buffer, y.buffer,
          StridedCopy(
            shape: c.shape, xStrides: c.strides[0], xOffset: 0, yStrides: c.strides[1],
            yOffset: offset * ys[a]))
      }
      offset += t.shape[a]
    }
    Tape.record(y, tensors) { dy, needs in
      var start = 0
      return try tensors.enumerated().map { i, t in
        defer { start += t.shape[a] }
        return needs[i] ? try dy.slice(axis: a, start: start, end: start + t.shape[a]) : nil
      }
    }
    return y
  }
}
