// The fused sampler update on OpenCL (Kernels/sampler.cl).
import COpenCL

extension OpenCLBackend {
  public func samplerStep(
    _ x: Buffer, _ m: Buffer, prev: Buffer?, older: [Buffer], out: Buffer, aux: Buffer?,
    thresholdScales: Buffer?,
    update u: SamplerUpdate,
    samples: Int,
    perSample: Int, firstSample: Int, seed: UInt64, step: Int, stream: Int
  ) throws {
    let k = try kernel("sampler_step", family: "sampler")
    let blocks = (perSample + 3) / 4
    var flags: Int32 = 0
    if u.clipRange != nil { flags |= 1 }
    if u.usesPrev { flags |= 2 }
    if u.cz != 0 { flags |= 4 }
    if u.writesAux { flags |= 8 }
    if u.historyDepth >= 2 { flags |= 16 }
    if u.historyDepth >= 3 { flags |= 32 }
    if thresholdScales != nil { flags |= 64 }
    let coef = [u.ax, u.am, u.ex, u.em, u.cx, u.c0, u.ce, u.cp].map { Float($0) }
    let coef2 = [u.cz, u.dx, u.d0, u.clipRange ?? 0, u.cq, u.cr, u.de, 0].map { Float($0) }
    let prev2 = u.historyDepth >= 2 ? older[0] : x, prev3 = u.historyDepth >= 3 ? older[1] : x
    try launch(
      k, "sampler_step",
      [
        .mem(mem(x)), .mem(mem(m)), .mem(mem(prev ?? x)), .mem(mem(prev2)), .mem(mem(prev3)), .mem(mem(out)),
        .mem(mem(aux ?? out)), .mem(mem(thresholdScales ?? x)),
        .i32(Int32(perSample)), .i32(Int32(blocks)), .u32(UInt32(truncatingIfNeeded: firstSample)),
        .u32(UInt32(truncatingIfNeeded: seed)), .u32(UInt32(truncatingIfNeeded: seed >> 32)),
        .u32(UInt32(truncatingIfNeeded: step)), .u32(UInt32(truncatingIfNeeded: stream)), .float8(coef),
        .float8(coef2),
        .i32(flags),
      ], global: [samples * blocks])
  }
}
