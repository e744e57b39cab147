// The backward rules of the differentiable ops (called by the tape with recording paused).
import Foundation

extension Activation {
  /// The elementwise op this epilogue activation applies (none for `.none`, which has none).
  public var unaryOp: UnaryOp {
    switch self {
    case .none: fatalError("Activation.none has no unary op")
    case .relu: .relu
    case .leakyRelu: .leakyRelu
    case .silu: .silu
    case .gelu: .gelu
    case .sigmoid: .sigmoid
    case .tanh: .tanh
    }
  }
}

extension Tensor {
  /// `self · f′(x)` for a unary op.
  func unaryGradient(_ op: UnaryOp, x: Tensor, alpha: Float) throws -> Tensor {
    let dx = try Tensor(uninitialized: x.shape, on: device)
    if count > 0 { try backend.unaryGrad(op, x.buffer, buffer, dx.buffer, count: count, alpha: alpha) }
    return dx
  }

  /// `self` where `lower ≤ x ≤ upper`, else 0.
  func clampGradient(x: Tensor, lower: Float, upper: Float) throws -> Tensor {
    let dx = try Tensor(uninitialized: x.shape, on: device)
    if count > 0 {
      try backend.clampGrad(x.buffer, buffer, dx.buffer, count: count, lower: lower, upper: upper)
    }
    return dx
  }

  /// Sums a gradient of a broadcast result back to an operand's `target` shape.
  public func sumTo(_ target: [Int]) throws -> Tensor {
    if shape == target { return self }
    let lead = rank - target.count
    guard lead >= 0 else { throw GPUGenError.shapeMismatch(op: "sumTo", lhs: shape, rhs: target) }
    var axes = Array(0..<lead)
    for (i, d) in target.enumerated() where d == 1 && shape[lead + i] != 1 { axes.append(lead + i) }
    let r = axes.isEmpty ? self : try reduce(.sum, axes: axes, keepDims: true)
    return try r.reshaped(target)
  }

  /// This tensor broadcast (NumPy rules) to `target`, materialised.
  public func expanded(to target: [Int]) throws -> Tensor {
    guard try Shape.broadcast(shape, target, "expand") == target else {
      throw GPUGenError.shapeMismatch(op: "expand", lhs: shape, rhs: target)
    }
    if shape == target { return self }
    let y = try Tensor(uninitialized: target, on: device)
    if y.count > 0 {
      let c = try Shape.collapse(
        target, [Shape.broadcastStrides(shape, to: target), Shape.strides(target)], op: "expand")
      try backend.copyStrided(
        buffer, y.buffer,
        StridedCopy(shape: c.shape, xStrides: c.strides[0], xOffset: 0, yStrides: c.strides[1], yOffset: 0))
    }
    Tape.record(y, [self]) { [shape] dy, _ in [try dy.sumTo(shape)] }
    return y
  }

  static func binaryBackward(
    _ op: BinaryOp, _ a: Tensor, _ b: Tensor, _ y: Tensor, _ dy: Tensor, _ needs: [Bool]
  )
    throws -> [Tensor?]
  {
    func da(_ f: () throws -> Tensor) throws -> Tensor? { needs[0] ? try f().sumTo(a.shape) : nil }
    func db(_ f: () throws -> Tensor) throws -> Tensor? { needs[1] ? try f().sumTo(b.shape) : nil }
    switch op {
    case .add: return [try da { dy }, try db { dy }]
    case .sub: return [try da { dy }, try db { try dy.neg() }]
    case .mul: return [try da { try dy * b }, try db { try dy * a }]
    case .div: return [try da { try dy / b }, try db { try (dy * y / b).neg() }]
    case .pow:
      return [
        try da { try dy * b * a.pow(try b - 1) },
        try db { try dy * y * a.log() },
      ]
    case .maximum, .minimum:
      // The larger (smaller) operand takes the gradient; ties go to `a`.
      let diff = op == .maximum ? try a - b : try b - a
      let toA = try dy.expanded(to: diff.shape).clampGradient(x: diff, lower: 0, upper: .infinity)
      return [try da { toA }, try db { try dy - toA }]
    }
  }

  static func binaryScalarBackward(
    _ op: BinaryOp, _ a: Tensor, _ s: Float, scalarFirst: Bool, _ y: Tensor, _ dy: Tensor
  ) throws -> Tensor {
    switch (op, scalarFirst) {
    case (.add, _): return dy
    case (.sub, false): return dy
    case (.sub, true): return try dy.neg()
    case (.mul, _): return try dy * s
    case (.div, false): return try dy / s
    case (.div, true): return try (dy * y / a).neg()
    case (.pow, false): return try dy * a.pow(s - 1) * s
    case (.pow, true): return try dy * y * Float(Foundation.log(Double(s)))
    case (.maximum, _): return try dy.clampGradient(x: try a - s, lower: 0, upper: .infinity)
    case (.minimum, _): return try dy.clampGradient(x: try a - s, lower: -.infinity, upper: 0)
    }
  }

  static func reduceBackward(
    _ op: ReduceOp, _ x: Tensor, _ y: Tensor, _ dy: Tensor, outer: Int, r: Int, inner: Int, correction: Int
  ) throws -> Tensor {
    let full = [outer, r, inner]
    let g = try dy.reshaped([outer, 1, inner])
    let dx: Tensor
    switch op {
    case .sum: dx = try g.expanded(to: full)
    case .mean: dx = try g.expanded(to: full) / Float(r)
    case .max:
      // Every element equal to the maximum takes the gradient.
      let xv = try x.reshaped(full)
      dx = try g.expanded(to: full).clampGradient(
        x: try xv - y.reshaped([outer, 1, inner]), lower: 0, upper: .infinity)
    case .variance:
      let xv = try x.reshaped(full)
      let centred = try xv - xv.mean(axes: [1], keepDims: true)
      dx = try centred * g * (2 / Float(r - correction))
    }
    return try dx.reshaped(x.shape)
  }

  static func softmaxBackward(_ y: Tensor, _ dy: Tensor, axis: Int, log: Bool) throws -> Tensor {
    if log { return try dy - y.exp() * dy.sum(axes: [axis], keepDims: true) }
    return try y * (dy - (dy * y).sum(axes: [axis], keepDims: true))
  }

  static func gemmBackward(
    _ a: Tensor, _ b: Tensor, c: Tensor?, bias: Tensor?, d: GemmDescriptor, dy: Tensor, needs: [Bool]
  ) throws -> [Tensor?] {
    let dz = d.alpha == 1 ? dy : try dy * d.alpha
    var grads: [Tensor?] = []
    if needs[0] {
      var da =
        d.transA
        ? try gemm(b, dz, transA: d.transB, transB: true) : try gemm(dz, b, transB: !d.transB)
      if a.rank == 2 && da.rank == 3 { da = try da.sum(axes: [0]) }
      grads.append(da)
    } else {
      grads.append(nil)
    }
    if needs[1] {
      var db: Tensor
      if b.rank == 2 && a.rank == 3 && !d.transA {
        // One GEMM over the stacked batch instead of a batch of products summed afterwards.
        let a2 = try a.reshaped([d.batch * d.m, d.k]), dz2 = try dz.reshaped([d.batch * d.m, d.n])
        db = d.transB ? try gemm(dz2, a2, transA: true) : try gemm(a2, dz2, transA: true)
      } else {
        db = d.transB ? try gemm(dz, a, transA: true, transB: d.transA) : try gemm(a, dz, transA: !d.transA)
        if b.rank == 2 && db.rank == 3 { db = try db.sum(axes: [0]) }
      }
      grads.append(db)
    } else {
      grads.append(nil)
    }
    var i = 2
    if c != nil {
      grads.append(needs[i] ? (d.beta == 1 ? dy : try dy * d.beta) : nil)
      i += 1
    }
    if let bias {
      if needs[i] {
        let g =
          d.biasMode == .perRow
          ? try dy.reshaped([d.batch, d.m, d.n]).sum(axes: [0, 2])
          : try dy.reshaped([-1, d.n]).sum(axes: [0])
        grads.append(try g.reshaped(bias.shape))
      } else {
        grads.append(nil)
      }
    }
    return grads
  }

  static func groupNormBackward(
    _ x: Tensor, _ dy: Tensor, weight: Tensor, bias: Tensor, groups: Int, eps: Float, silu: Bool,
    needs: [Bool]
  ) throws -> [Tensor?] {
    let (n, c) = (x.shape[0], x.shape[1])
    let hw = x.shape[2...].reduce(1, *)
    let dx = try Tensor(uninitialized: x.shape, on: x.device)
    let dg = try Tensor(uninitialized: [n, c], on: x.device),
      db = try Tensor(uninitialized: [n, c], on: x.device)
    if x.count > 0 {
      try x.backend.groupNormBackward(
        x.buffer, dy.buffer, gamma: weight.buffer, beta: bias.buffer, dx: dx.buffer, dgamma: dg.buffer,
        dbeta: db.buffer, n: n, c: c, hw: hw, groups: groups, eps: eps, silu: silu)
    }
    return [
      needs[0] ? dx : nil,
      needs[1] ? try dg.sum(axes: [0]).reshaped(weight.shape) : nil,
      needs[2] ? try db.sum(axes: [0]).reshaped(bias.shape) : nil,
    ]
  }

  /// The fused batch norm's backward: dx, and dγ, dβ for the affine tensors given (`needs` lists x, then
  /// `weight` and `bias` when present); `output` supplies a fused activation's derivative.
  static func batchNormBackward(
    _ x: Tensor, output y: Tensor, _ dy: Tensor, weight: Tensor?, bias: Tensor?, mean: Tensor, invstd: Tensor,
    training: Bool, _ g: BatchNormGeometry, needs: [Bool]
  ) throws -> [Tensor?] {
    let dx = try Tensor(uninitialized: x.shape, on: x.device)
    let dg = try Tensor(uninitialized: [g.c], on: x.device),
      db = try Tensor(uninitialized: [g.c], on: x.device)
    if x.count == 0 {
      for t in [dx, dg, db] { try x.backend.fill(t.buffer, count: t.count, value: 0) }
    } else {
      try x.backend.batchNormBackward(
        x.buffer, g.activation == .none ? nil : y.buffer, dy.buffer, gamma: weight?.buffer, mean: mean.buffer,
        invstd: invstd.buffer, dx: dx.buffer, dgamma: dg.buffer, dbeta: db.buffer, training: training, g)
    }
    var grads: [Tensor?] = [needs[0] ? dx : nil]
    if let weight { grads.append(needs[grads.count] ? try dg.reshaped(weight.shape) : nil) }
    if let bias { grads.append(needs[grads.count] ? try db.reshaped(bias.shape) : nil) }
    return grads
  }
}
