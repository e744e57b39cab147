// `gpugen selftest`: the engine checks itself on each device, with no test framework and no Python.
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels
import GPUGenNN

struct SelfTestCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "selftest",
    abstract: "Check every kernel and backend op on a device against a Float64 reference.",
    discussion: """
      Runs, on each device: every Backend method against a Float64 reference at sizes that break the kernels' \
      tiling (elementwise, broadcasting, copies, reductions, softmax, GEMM with transposes, bias and \
      activation, convolutions (im2col, 1×1, Winograd), group and batch norm with their backwards, Philox \
      noise, the fused sampler step, AdamW, EMA, sum of squares); the OpenCL kernels whose GPU and CPU \
      variants differ once more with the other variants forced (the GPU variants on a CPU device such as \
      PoCL, the CPU variants on a GPU); a small diffusers UNet2DModel forward pass against PyTorch's output, \
      embedded in the binary; and the gradients of a small network against Float64 finite differences.

      Prints one row per check (check, device, worst error relative to the reference's largest magnitude, \
      tolerance, PASS/FAIL) and exits with status 1 if any check fails, 2 for an unknown device. \
      Run it under oclgrind (`oclgrind --data-races gpugen selftest --device opencl:0 --quick`) to have every \
      kernel's memory accesses, barriers and data races checked.

      GPUGEN_SELFTEST_FAULT=TEXT adds 1 to the first value of every check whose name contains TEXT, to see       what a failure looks like.
      """)

  @Option(
    name: .long,
    help: ArgumentHelp(
      "Device: all (the native CPU and every OpenCL device), auto, gpu, cpu, opencl or opencl:N.",
      valueName: "device"))
  var device = "all"

  @Flag(help: "Small sizes and fewer cases (for slow devices such as oclgrind's simulator).")
  var quick = false

  @Flag(
    help:
      "Print one JSON object instead of a table: passed, checks, failures and the rows (worstError -1: the check threw or gave NaN)."
  )
  var json = false

  func run() throws {
    let rows: [SelfTestResult] = try reportingErrors {
      let devices = device.lowercased() == "all" ? try Device.all() : [try Device.select(device)]
      var rows: [SelfTestResult] = []
      let fault = ProcessInfo.processInfo.environment["GPUGEN_SELFTEST_FAULT"]
      for d in devices {
        rows += SelfTest.run(SelfTest.backendChecks(quick: quick), on: d, fault: fault)
        if let cl = d.openCL {
          let forced: KernelVariants = cl.info.isGPU ? .cpu : .gpu
          rows += SelfTest.run(SelfTest.variantChecks(quick: quick), on: d, variants: [forced], fault: fault)
        }
        rows += SelfTest.run([unetCheck()], on: d, fault: fault)
        if !json {
          FileHandle.standardError.write(Data("gpugen: selftest: \(d.spec) done\n".utf8))
        }
      }
      return rows
    }
    let failed = rows.filter { !$0.passed }
    if json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys]
      struct Report: Encodable {
        var passed: Bool
        var checks: Int
        var failures: Int
        var rows: [SelfTestResult]
      }
      // NaN is not JSON: the error of a check that threw (or produced NaN) is written as -1.
      let clean = rows.map { r -> SelfTestResult in
        var r = r
        if !r.worstError.isFinite { r.worstError = -1 }
        return r
      }
      let data = try encoder.encode(
        Report(passed: failed.isEmpty, checks: rows.count, failures: failed.count, rows: clean))
      print(String(decoding: data, as: UTF8.self))
    } else {
      printTable(rows)
      print(
        failed.isEmpty
          ? "selftest: all \(rows.count) checks passed"
          : "selftest: \(failed.count) of \(rows.count) checks FAILED")
    }
    if !failed.isEmpty { throw ExitCode(1) }
  }

  func printTable(_ rows: [SelfTestResult]) {
    let cw = max(5, rows.map(\.check.count).max() ?? 0), dw = max(6, rows.map(\.device.count).max() ?? 0)
    func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
    print("\(pad("check", cw))  \(pad("device", dw))  worst error  tolerance  result")
    for r in rows {
      let err = r.worstError.isNaN ? "        nan" : String(format: "%11.2e", r.worstError)
      print(
        "\(pad(r.check, cw))  \(pad(r.device, dw))  \(err)  \(String(format: "%9.1e", r.tolerance))  \(r.passed ? "PASS" : "FAIL")"
      )
      if let f = r.failure { print("    error: \(f)") }
    }
  }

  /// The embedded diffusers UNet2DModel (`SelfTestFixture`) at two timesteps and class labels against
  /// PyTorch's fp32 output (errors relative to the output's max magnitude, as the parity tests).
  func unetCheck() -> SelfTestCheck {
    SelfTestCheck("UNet2DModel forward (8×8, attention, classes) vs PyTorch", tolerance: 1e-4) { d in
      let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
        "gpugen-selftest-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
      try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
      defer { try? FileManager.default.removeItem(at: dir) }
      guard let weights = Data(base64Encoded: SelfTestFixture.weights, options: .ignoreUnknownCharacters),
        let ioBytes = Data(base64Encoded: SelfTestFixture.io, options: .ignoreUnknownCharacters)
      else { throw GPUGenError.invalidArgument("the embedded UNet fixture is not valid base64") }
      try Data(SelfTestFixture.config.utf8).write(to: dir.appendingPathComponent("config.json"))
      try weights.write(to: dir.appendingPathComponent("diffusion_pytorch_model.safetensors"))
      let io = try SafeTensors.read(bytes: ioBytes).tensors
      guard let x = io["sample"], let t = io["timestep"], let out = io["output"],
        let labels = io["class_labels"]
      else { throw GPUGenError.invalidArgument("the embedded UNet fixture lacks a tensor") }
      let unet = try UNet2DModelLoader.load(from: dir, device: d)
      let got = try unet(
        try Tensor(x.values, shape: x.shape, on: d), timesteps: t.values.map(Double.init),
        classLabels: labels.values.map { Int($0) })
      return SelfTestOutcome(got: try got.toArray(), want: out.values.map(Double.init))
    }
  }
}
