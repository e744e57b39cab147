// Backward kernels on OpenCL: unary derivatives and clamp's mask (elementwise.cl), col2im (conv.cl),
// group-norm backward (norm.cl).
import COpenCL

extension OpenCLBackend {
  public func unaryGrad(_ op: UnaryOp, _ x: Buffer, _ dy: Buffer, _ dx: Buffer, count: Int, alpha: Float)
    throws
  {
    let name = "grad_\(op.rawValue)"
    let k = try kernel(name, family: "elementwise")
    try launchElementwise(
      k, name, [.mem(mem(x)), .mem(mem(dy)), .mem(mem(dx)), .f32(alpha), .i32(Int32(count))], count: count)
  }

  public func clampGrad(_ x: Buffer, _ dy: Buffer, _ dx: Buffer, count: Int, lower: Float, upper: Float)
    throws
  {
    let k = try kernel("grad_clamp", family: "elementwise")
    try launchElementwise(
      k, "grad_clamp",
      [.mem(mem(x)), .mem(mem(dy)), .mem(mem(dx)), .f32(lower), .f32(upper), .i32(Int32(count))], count: count
    )
  }

  public func col2im(_ col: Buffer, _ x: Buffer, _ g: ConvGeometry) throws {
    let k = try kernel("conv_col2im", family: "conv")
    try launch(
      k, "conv_col2im",
      [
        .mem(mem(col)), .mem(mem(x)), .i32(Int32(g.n)), .i32(Int32(g.c)), .i32(Int32(g.h)), .i32(Int32(g.w)),
        .i32(Int32(g.kh)), .i32(Int32(g.kw)), .i32(Int32(g.strideH)), .i32(Int32(g.strideW)),
        .i32(Int32(g.padT)), .i32(Int32(g.padL)), .i32(Int32(g.ho)), .i32(Int32(g.wo)),
        .i32(g.batchMajor ? 1 : 0),
      ], global: [g.w, g.h, g.n * g.c])
  }

  public func groupNormBackward(
    _ x: Buffer, _ dy: Buffer, gamma: Buffer, beta: Buffer, dx: Buffer, dgamma: Buffer, dbeta: Buffer, n: Int,
    c: Int, hw: Int, groups: Int, eps: Float, silu: Bool
  ) throws {
    let (k, ls) = try fittedGroup(
      "norm_group_backward", family: "norm", macro: "NLS", desired: reduceGroupSize)
    try launch(
      k, "norm_group_backward",
      [
        .mem(mem(x)), .mem(mem(dy)), .mem(mem(gamma)), .mem(mem(beta)), .mem(mem(dx)), .mem(mem(dgamma)),
        .mem(mem(dbeta)), .i32(Int32(c)), .i32(Int32(hw)), .i32(Int32(groups)), .f32(eps), .i32(silu ? 1 : 0),
      ], global: [n * groups * ls], local: [ls])
  }
}
