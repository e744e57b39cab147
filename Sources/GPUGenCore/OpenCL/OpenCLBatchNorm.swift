// Batch normalisation on OpenCL (Kernels/norm.cl): one work-group per channel with a local-memory reduction
// on GPUs; on CPU devices (PoCL, `reduceGroupSize` 1) one work-item per channel, 16 lanes at a time.
import COpenCL

extension OpenCLBackend {
  /// norm.cl's flag bits.
  private enum BatchNormFlag {
    static let gamma: Int32 = 1, beta: Int32 = 2, running: Int32 = 4, training: Int32 = 8
  }

  /// Training-mode batch norm (see `Backend.batchNormTraining`): bn_train, or bn_train_vec on CPU devices.
  public func batchNormTraining(
    _ x: Buffer, _ y: Buffer, gamma: Buffer?, beta: Buffer?, mean: Buffer, invstd: Buffer,
    runningMean: Buffer?,
    runningVar: Buffer?, momentum: Float, _ g: BatchNormGeometry
  ) throws {
    try g.validate()
    let running = runningMean != nil && runningVar != nil
    let flags =
      (gamma == nil ? 0 : BatchNormFlag.gamma) | (beta == nil ? 0 : BatchNormFlag.beta)
      | (running ? BatchNormFlag.running : 0)
    let args: [KernelArg] = [
      .mem(mem(x)), .mem(mem(y)), .mem(mem(gamma ?? mean)), .mem(mem(beta ?? mean)), .mem(mem(mean)),
      .mem(mem(invstd)), .mem(mem(running ? runningMean! : mean)), .mem(mem(running ? runningVar! : invstd)),
      .i32(flags), .f32(momentum), .i32(Int32(g.n)), .i32(Int32(g.c)), .i32(Int32(g.hw)), .f32(g.eps),
      .i32(g.activation.rawValue), .f32(g.activationAlpha),
    ]
    let ls = reduceGroupSize
    if ls == 1 {
      let k = try kernel("bn_train_vec", family: "norm", options: "-DNLS=1")
      try launch(k, "bn_train_vec", args, global: [g.c])
    } else {
      let (k, ls) = try fittedGroup("bn_train", family: "norm", macro: "NLS", desired: reduceGroupSize)
      try launch(k, "bn_train", args, global: [g.c * ls], local: [ls])
    }
  }

  /// Evaluation-mode batch norm (see `Backend.batchNormInference`): bn_infer, or bn_infer_vec on CPU devices.
  public func batchNormInference(
    _ x: Buffer, _ y: Buffer, gamma: Buffer?, beta: Buffer?, runningMean: Buffer, runningVar: Buffer,
    _ g: BatchNormGeometry
  ) throws {
    try g.validate()
    let flags = (gamma == nil ? 0 : BatchNormFlag.gamma) | (beta == nil ? 0 : BatchNormFlag.beta)
    let args: [KernelArg] = [
      .mem(mem(x)), .mem(mem(y)), .mem(mem(gamma ?? runningMean)), .mem(mem(beta ?? runningMean)),
      .mem(mem(runningMean)), .mem(mem(runningVar)), .i32(flags), .i32(Int32(g.c)), .i32(Int32(g.hw)),
      .f32(g.eps), .i32(g.activation.rawValue), .f32(g.activationAlpha),
    ]
    let ls = reduceGroupSize
    if ls == 1 {
      let k = try kernel("bn_infer_vec", family: "norm", options: "-DNLS=1")
      try launch(k, "bn_infer_vec", args, global: [g.n * g.c])
    } else {
      let k = try kernel("bn_infer", family: "norm", options: "-DNLS=\(ls)")
      try launch(k, "bn_infer", args, global: [g.hw, g.n * g.c])
    }
  }

  /// Batch-norm backward (see `Backend.batchNormBackward`): bn_backward, or bn_backward_vec on CPU devices.
  public func batchNormBackward(
    _ x: Buffer, _ y: Buffer?, _ dy: Buffer, gamma: Buffer?, mean: Buffer, invstd: Buffer, dx: Buffer,
    dgamma: Buffer, dbeta: Buffer, training: Bool, _ g: BatchNormGeometry
  ) throws {
    try g.validate()
    guard g.activation == .none || y != nil else {
      throw GPUGenError.invalidArgument("batchNormBackward: a fused activation needs the output")
    }
    let flags = (gamma == nil ? 0 : BatchNormFlag.gamma) | (training ? BatchNormFlag.training : 0)
    let args: [KernelArg] = [
      .mem(mem(x)), .mem(mem(y ?? dy)), .mem(mem(dy)), .mem(mem(gamma ?? mean)), .mem(mem(mean)),
      .mem(mem(invstd)), .mem(mem(dx)), .mem(mem(dgamma)), .mem(mem(dbeta)), .i32(flags), .i32(Int32(g.n)),
      .i32(Int32(g.c)), .i32(Int32(g.hw)), .i32(g.activation.rawValue), .f32(g.activationAlpha),
    ]
    let ls = reduceGroupSize
    if ls == 1 {
      let k = try kernel("bn_backward_vec", family: "norm", options: "-DNLS=1")
      try launch(k, "bn_backward_vec", args, global: [g.c])
    } else {
      let (k, ls) = try fittedGroup("bn_backward", family: "norm", macro: "NLS", desired: reduceGroupSize)
      try launch(k, "bn_backward", args, global: [g.c * ls], local: [ls])
    }
  }
}
