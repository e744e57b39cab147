// `gpugen bench`: GEMM throughput against the device's measured FP32 peak, and the peak itself.
import ArgumentParser
import Foundation
import GPUGenCore

struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Kernel benchmarks.",
    subcommands: [
      BenchGemm.self, BenchPeak.self, BenchElementwise.self, BenchUNet.self, BenchSamplers.self,
      BenchTrain.self, BenchEditing.self, BenchInpaint.self, BenchAllReduce.self,
    ])
}

struct BenchPeak: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "peak",
    abstract: "Measure each device's FP32 peak with an FMA-throughput kernel (GFLOP/s).")

  @Option(help: "Device(s) to measure: a device spec, or 'all' (default).")
  var device: String = "all"

  @Flag(help: "Print JSON lines.")
  var json = false

  func run() throws {
    try reportingErrors {
      for d in try benchDevices(device) {
        let g = try Benchmarks.peakGFLOPS(on: d)
        if json {
          print(jsonLine(["device": d.spec, "name": d.name, "peak_gflops": g]))
        } else {
          print(String(format: "%-10@ %-55@ peak %8.1f GFLOP/s", d.spec, d.name, g))
        }
      }
    }
  }
}

struct BenchGemm: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "gemm",
    abstract: "GEMM ms and GFLOP/s, as % of the device's FP32 peak, on every device.",
    discussion: """
      Default shapes: square n = 256, 512, 1024, 2048, and the im2col GEMM of a 3×3 convolution with
      64→64 channels on a 64×64×32×32 batch (M=64, N=65536, K=576). On the CPU the same run also
      times cblas_sgemm called directly (row 'openblas'), so the ratio is side by side.
      """)

  @Option(name: .customLong("size"), parsing: .upToNextOption, help: "Square sizes n (repeatable).")
  var sizes: [Int] = []

  @Option(name: .customLong("shape"), parsing: .upToNextOption, help: "GEMM shapes MxNxK (repeatable).")
  var shapes: [String] = []

  @Option(help: "Device(s): a device spec, or 'all' (default).")
  var device: String = "all"

  @Flag(help: "Print one JSON object per result.")
  var json = false

  @Flag(
    help:
      "Search GEMM tile configurations on each OpenCL device; keep the fastest one that matches the CPU reference."
  )
  var tune = false

  @Option(help: "Minimum seconds of timing per result.")
  var seconds: Double = 1.0

  @Flag(help: "Time A·Bᵀ (B stored N×K, as convolution weight gradients use it).")
  var transB = false

  func run() throws {
    try reportingErrors {
      var custom: [(Int, Int, Int, String)] = []
      for s in shapes {
        let p = s.lowercased().split(separator: "x").compactMap { Int($0) }
        guard p.count == 3, p.allSatisfy({ $0 > 0 }) else {
          throw GPUGenError.invalidArgument("--shape takes MxNxK with positive sizes, got '\(s)'")
        }
        custom.append((p[0], p[1], p[2], "custom"))
      }
      let problems: [(Int, Int, Int, String)] =
        sizes.isEmpty && custom.isEmpty
        ? [256, 512, 1024, 2048].map { ($0, $0, $0, "square") } + [(64, 65536, 576, "conv3x3 64→64 im2col")]
        : sizes.map { ($0, $0, $0, "square") } + custom
      for s in sizes where s <= 0 { throw GPUGenError.invalidArgument("--size must be positive, got \(s)") }
      for d in try benchDevices(device) {
        if tune, let cl = d.openCL {
          let result = try GemmTuner.tune(cl, log: { if !json { print($0) } })
          if !json { print("tuned \(d.spec): \(result)") }
        }
        let peak = try Benchmarks.peakGFLOPS(on: d)
        if !json {
          print(
            "\n\(d.spec) — \(d.name): peak \(String(format: "%.1f", peak)) GFLOP/s"
              + (d.openCL.map { "; GEMM tiles \($0.gemmConfig)" } ?? ""))
          print("  impl      shape                         M      N      K        ms    GFLOP/s   % peak")
        }
        for (m, n, k, label) in problems {
          var rows: [(String, Double)] = [
            (
              "gpugen",
              try Benchmarks.gemmMilliseconds(m: m, n: n, k: k, transB: transB, on: d, seconds: seconds)
            )
          ]
          if !d.isOpenCL {
            rows.append(
              (
                "openblas",
                Benchmarks.openBLASMilliseconds(m: m, n: n, k: k, transB: transB, seconds: seconds)
              ))
          }
          for (impl, ms) in rows {
            let gflops = 2.0 * Double(m) * Double(n) * Double(k) / ms / 1e6
            if json {
              print(
                jsonLine([
                  "device": d.spec, "name": d.name, "impl": impl, "shape": label, "m": m, "n": n, "k": k,
                  "ms": ms, "gflops": gflops, "peak_gflops": peak, "percent_of_peak": 100 * gflops / peak,
                ]))
            } else {
              print(
                String(
                  format: "  %-9@ %-24@ %6d %6d %6d %9.3f %10.1f %7.1f%%", impl, label, m, n, k, ms, gflops,
                  100 * gflops / peak))
            }
          }
        }
      }
    }
  }
}

struct BenchElementwise: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "elementwise",
    abstract: "Time a steady-state elementwise add loop and count buffer allocations in it.")

  @Option(help: "Elements per tensor.") var count = 4096
  @Option(help: "Iterations.") var iterations = 10_000
  @OptionGroup var deviceOptions: DeviceOptions

  func run() throws {
    try reportingErrors {
      let d = try deviceOptions.resolve()
      let r = try Benchmarks.elementwiseAdd(count: count, iterations: iterations, on: d)
      print(
        String(
          format: "%@: add of %d floats ×%d: %.2f µs/op, %d buffer allocations in steady state", d.spec,
          count, iterations, r.microseconds, r.steadyAllocations))
    }
  }
}

func benchDevices(_ spec: String) throws -> [Device] {
  spec == "all" ? try Device.all() : [try Device.select(spec)]
}

func jsonLine(_ dict: [String: Any]) -> String {
  let data = try! JSONSerialization.data(withJSONObject: dict, options: [.sortedKeys])
  return String(decoding: data, as: UTF8.self)
}
