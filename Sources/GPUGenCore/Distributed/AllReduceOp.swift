// All-reduce as a differentiable op: y = Σ_ranks x. Its adjoint is itself (every rank's x contributes to
// every rank's y), so the backward all-reduces the incoming gradient. Every rank must record and
// differentiate the same graph, so that the collectives pair up in the same order (synchronised BatchNorm).

extension Tensor {
  /// The sum of this tensor over the processes of `communicator` (a copy in one process); differentiable.
  public func allReduceSum(over communicator: Communicator) throws -> Tensor {
    var values = try toArray()
    try communicator.allReduceSum(&values)
    let y = try Tensor(values, shape: shape, on: device)
    Tape.record(y, [self]) { dy, needs in
      [needs[0] ? try dy.allReduceSum(over: communicator) : nil]
    }
    return y
  }
}
