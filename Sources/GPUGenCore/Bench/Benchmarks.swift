// Measurements behind `gpugen bench` and Benchmarks/: FP32 peak, GEMM time, elementwise loops.
import CBLAS
import COpenCL
import CPUPeak
import Dispatch
import Foundation

/// Timing helpers shared by `gpugen bench` and the Benchmarks target.
public enum Benchmarks {
  /// Median milliseconds of `body` over at least 3 runs and `seconds` of total time, after a warm-up.
  public static func medianMilliseconds(seconds: Double, _ body: () throws -> Void) rethrows -> Double {
    try body()
    var times: [Double] = []
    let start = DispatchTime.now().uptimeNanoseconds
    while times.count < 3
      || (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < seconds && times.count < 1000)
    {
      let t0 = DispatchTime.now().uptimeNanoseconds
      try body()
      times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
    }
    times.sort()
    return times[times.count / 2]
  }

  /// FP32 peak in GFLOP/s: an FMA-throughput kernel (bench.cl) on OpenCL, or the widest-ISA FMA
  /// loop on every core for the native backend.
  public static func peakGFLOPS(on device: Device) throws -> Double {
    if let cl = device.openCL { return try openCLPeak(cl) }
    var iters: Int64 = 2_000_000
    var best = 0.0
    var runs = 0
    while true {
      let t0 = DispatchTime.now().uptimeNanoseconds
      let flops = UnsafeMutablePointer<Double>.allocate(capacity: Parallel.cores)
      defer { flops.deallocate() }
      DispatchQueue.concurrentPerform(iterations: Parallel.cores) { i in
        var sink: Float = 0
        flops[i] = gpugen_fma_loop(iters, &sink)
      }
      let s = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
      if s > 0.3 {
        best = Swift.max(best, (0..<Parallel.cores).map { flops[$0] }.reduce(0, +) / s / 1e9)
        runs += 1
        if runs == 3 { return best }
      } else {
        iters *= 4
      }
    }
  }

  /// The vector ISA the native peak loop uses.
  public static var cpuPeakISA: String { String(cString: gpugen_fma_isa()) }

  static func openCLPeak(_ cl: OpenCLBackend) throws -> Double {
    let vw = cl.info.isGPU ? 1 : 16
    let k = try cl.kernel("bench_fma", family: "bench", options: "-DPEAK_VW=\(vw)")
    let global = cl.info.computeUnits * (cl.info.isGPU ? 4096 : 16)
    let out = try cl.allocate(global)
    var iters = 4096
    var best = 0.0
    var runs = 0
    while true {
      try cl.launch(k, "bench_fma", [.mem(cl.mem(out)), .i32(Int32(iters)), .f32(1)], global: [global])
      try cl.synchronize()
      let t0 = DispatchTime.now().uptimeNanoseconds
      try cl.launch(k, "bench_fma", [.mem(cl.mem(out)), .i32(Int32(iters)), .f32(1)], global: [global])
      try cl.synchronize()
      let s = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
      if s > 0.25 || iters >= 1 << 28 {
        best = Swift.max(best, Double(global) * Double(iters) * 16 * Double(vw) / s / 1e9)
        runs += 1
        if runs == 3 { return best }
      } else {
        iters *= 4
      }
    }
  }

  /// Median ms of an M×N×K GEMM (B transposed when `transB`) on `device`, synchronised per run.
  public static func gemmMilliseconds(
    m: Int, n: Int, k: Int, transB: Bool = false, on device: Device, seconds: Double = 1
  ) throws -> Double {
    let a = try Tensor(randomArray(m * k, seed: 1), shape: [m, k], on: device)
    let b = try Tensor(randomArray(k * n, seed: 2), shape: transB ? [n, k] : [k, n], on: device)
    return try medianMilliseconds(seconds: seconds) {
      _ = try Tensor.gemm(a, b, transB: transB)
      try device.backend.synchronize()
    }
  }

  /// Median ms of cblas_sgemm called directly on host arrays: the reference for the CPU backend.
  public static func openBLASMilliseconds(m: Int, n: Int, k: Int, transB: Bool = false, seconds: Double = 1)
    -> Double
  {
    let a = randomArray(m * k, seed: 1), b = randomArray(k * n, seed: 2)
    var c = [Float](repeating: 0, count: m * n)
    return medianMilliseconds(seconds: seconds) {
      cblas_sgemm(
        CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a,
        Int32(k), b, Int32(transB ? k : n), 0, &c, Int32(n))
    }
  }

  /// Times `iterations` of `c = a + b` on `count` floats; reports µs per op and the buffer
  /// allocations made after the first 100 iterations (steady state).
  public static func elementwiseAdd(count: Int, iterations: Int, on device: Device) throws
    -> (microseconds: Double, steadyAllocations: Int)
  {
    let a = try Tensor(randomArray(count, seed: 3), shape: [count], on: device)
    let b = try Tensor(randomArray(count, seed: 4), shape: [count], on: device)
    for _ in 0..<100 { _ = try a + b }
    try device.backend.synchronize()
    let before = device.backend.stats.allocations
    let t0 = DispatchTime.now().uptimeNanoseconds
    for _ in 0..<iterations { _ = try a + b }
    try device.backend.synchronize()
    let us = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e3 / Double(max(iterations, 1))
    return (us, device.backend.stats.allocations - before)
  }

  /// Deterministic values in [-1, 1).
  public static func randomArray(_ n: Int, seed: UInt64) -> [Float] {
    var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<n).map { _ in
      s ^= s << 13
      s ^= s >> 7
      s ^= s << 17
      return Float(s >> 40) / Float(1 << 23) - 1
    }
  }
}
