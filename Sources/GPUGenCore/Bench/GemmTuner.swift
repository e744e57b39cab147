// `gpugen bench gemm --tune`: searches tile configurations on an OpenCL device, rejects any whose
// result differs from the CPU reference, and stores the fastest with the binary cache.
import Foundation

/// GEMM tile search for one OpenCL device.
public enum GemmTuner {
  /// Tunes, stores and activates the winner; returns it.
  @discardableResult
  public static func tune(_ cl: OpenCLBackend, size: Int = 1024, log: (String) -> Void = { _ in }) throws
    -> GemmConfig
  {
    let device = try Device.all().first { $0.backend === cl } ?? Device(kind: .openCL(cl.info), backend: cl)
    // Correctness shape: odd sizes and transposes exercise every edge path.
    let (cm, cn, ck) = (67, 45, 53)
    let ca = Benchmarks.randomArray(cm * ck, seed: 7), cb = Benchmarks.randomArray(ck * cn, seed: 8)
    let ref = try Tensor.gemm(
      try Tensor(ca, shape: [ck, cm]), try Tensor(cb, shape: [cn, ck]), transA: true, transB: true
    ).toArray()
    let ta = try Tensor(ca, shape: [ck, cm], on: device), tb = try Tensor(cb, shape: [cn, ck], on: device)
    let a = try Tensor(Benchmarks.randomArray(size * size, seed: 1), shape: [size, size], on: device)
    let b = try Tensor(Benchmarks.randomArray(size * size, seed: 2), shape: [size, size], on: device)
    var best: (GemmConfig, Double)?
    let candidates = GemmConfig.candidates(for: cl.info)
    log("tuning GEMM on \(cl.info.name): \(candidates.count) configurations at n=\(size)")
    for (i, g) in candidates.enumerated() {
      do {
        let y = try Tensor(uninitialized: [cm, cn], on: device)
        var d = GemmDescriptor(m: cm, n: cn, k: ck, transA: true, transB: true)
        d.lda = cm
        d.ldb = ck
        try cl.gemm(d, ta.buffer, tb.buffer, y.buffer, bias: nil, config: g)
        let got = try y.toArray()
        let err = zip(got, ref).map { Swift.abs($0 - $1) }.max() ?? 0
        guard err <= 1e-4 * Float(ck) else {
          log("  [\(i + 1)/\(candidates.count)] \(g): rejected (max error \(err) vs CPU reference)")
          continue
        }
        let c = try Tensor(uninitialized: [size, size], on: device)
        let sd = GemmDescriptor(m: size, n: size, k: size)
        let ms = try Benchmarks.medianMilliseconds(seconds: 0.3) {
          try cl.gemm(sd, a.buffer, b.buffer, c.buffer, bias: nil, config: g)
          try cl.synchronize()
        }
        let gflops = 2 * pow(Double(size), 3) / ms / 1e6
        log(
          String(
            format: "  [%d/%d] %@: %.2f ms, %.1f GFLOP/s", i + 1, candidates.count, g.description, ms, gflops)
        )
        if best == nil || ms < best!.1 { best = (g, ms) }
      } catch {
        log("  [\(i + 1)/\(candidates.count)] \(g): failed (\(error))")
      }
    }
    guard let (winner, _) = best else {
      throw GPUGenError.invalidArgument(
        "GEMM tuning found no configuration that matches the CPU reference on \(cl.info.name)")
    }
    try winner.storeTuned(for: cl.info, cache: cl.cache)
    cl.gemmConfig = winner
    return winner
  }
}
