// Optimizer step, EMA update and sum of squares on OpenCL (Kernels/optim.cl).
import COpenCL

extension OpenCLBackend {
  /// Work-group size of the sum-of-squares tree (OLS in optim.cl): a power of two, 256 on GPUs and 64 on
  /// CPU devices (which run a work-group as a loop), never above the device limit.
  var sumOfSquaresGroupSize: Int {
    var n = 1
    while n * 2 <= Swift.min(usesGPUVariants ? 256 : 64, Swift.max(info.maxWorkGroupSize, 1)) { n *= 2 }
    return n
  }

  public func optimizerStep(
    _ param: Buffer, _ grad: Buffer, _ state1: Buffer?, _ state2: Buffer?, count: Int, update: OptimizerUpdate
  ) throws {
    if count == 0 { return }
    let (coef, coef2, flags) = update.kernelArguments
    switch update.kind {
    case .sgd:
      let k = try kernel("optim_sgd", family: "optim")
      try launchElementwise(
        k, "optim_sgd",
        [
          .mem(mem(param)), .mem(mem(grad)), .mem(mem(state1 ?? param)), .i32(Int32(count)), .float8(coef),
          .i32(flags),
        ], count: count)
    case .adam, .adamW:
      guard let state1, let state2 else {
        throw GPUGenError.invalidArgument("optimizerStep: Adam needs both state buffers")
      }
      let k = try kernel("optim_adam", family: "optim")
      try launchElementwise(
        k, "optim_adam",
        [
          .mem(mem(param)), .mem(mem(grad)), .mem(mem(state1)), .mem(mem(state2)), .i32(Int32(count)),
          .float8(coef), .float4(coef2), .i32(flags),
        ], count: count)
    }
  }

  public func emaUpdate(_ ema: Buffer, _ param: Buffer, count: Int, decay: Double) throws {
    if count == 0 { return }
    let k = try kernel("optim_ema", family: "optim")
    try launchElementwise(
      k, "optim_ema", [.mem(mem(ema)), .mem(mem(param)), .i32(Int32(count)), .f32(Float(1 - decay))],
      count: count)
  }

  /// Two launches: up to 1024 work-groups each write a tree-reduced partial sum (about 8 elements per
  /// work-item before the tree), then one work-group sums the partials into `y[slot]`. Small inputs need
  /// only the first launch, writing `y[slot]` directly.
  public func sumOfSquares(_ x: Buffer, _ y: Buffer, count: Int, slot: Int) throws {
    var (partial, ls) = try fittedGroup(
      "optim_sumsq_partial", family: "optim", macro: "OLS", desired: sumOfSquaresGroupSize)
    var final = try kernel("optim_sumsq_final", family: "optim", options: "-DOLS=\(ls)")
    while limits(final).maxGroupSize < ls && ls > 1 {
      ls /= 2
      partial = try kernel("optim_sumsq_partial", family: "optim", options: "-DOLS=\(ls)")
      final = try kernel("optim_sumsq_final", family: "optim", options: "-DOLS=\(ls)")
    }
    let groups = Swift.max(1, Swift.min(1024, (count + ls * 8 - 1) / (ls * 8)))
    if groups == 1 {
      try launch(
        partial, "optim_sumsq_partial", [.mem(mem(x)), .i32(Int32(count)), .mem(mem(y)), .i32(Int32(slot))],
        global: [ls], local: [ls])
      return
    }
    let partials = try allocate(groups)
    try launch(
      partial, "optim_sumsq_partial", [.mem(mem(x)), .i32(Int32(count)), .mem(mem(partials)), .i32(0)],
      global: [groups * ls], local: [ls])
    try launch(
      final, "optim_sumsq_final",
      [.mem(mem(partials)), .i32(Int32(groups)), .mem(mem(y)), .i32(Int32(slot))],
      global: [ls], local: [ls])
  }
}
