// Entry point: fix OpenBLAS's kernel choice and thread spinning if needed, then run the command tree.
import ArgumentParser
import Foundation
import GPUGenCore

#if os(Linux)
  // OpenBLAS reads its environment only when it loads, so re-run this process once with it set:
  // - OPENBLAS_CORETYPE when it picked legacy kernels for this CPU;
  // - OPENBLAS_THREAD_TIMEOUT=4 (2⁴ cycles) unless the user chose one: by default its worker threads
  //   busy-wait ~2²⁸ cycles after every call, stealing the cores from the convolutions and elementwise
  //   work that run between GEMMs (measured: UNet eval at batch 64 634 → 510–562 ms, a training step
  //   2.2–2.5 → 1.9–2.05 s).
  var relaunch = false
  if let core = OpenBLASCore.recommendedCoreType() {
    setenv("OPENBLAS_CORETYPE", core, 1)
    relaunch = true
  }
  if ProcessInfo.processInfo.environment["OPENBLAS_THREAD_TIMEOUT"] == nil {
    setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1)
    relaunch = true
  }
  if relaunch {
    // execv only returns on failure: then carry on with OpenBLAS as it loaded.
    _ = execv("/proc/self/exe", CommandLine.unsafeArgv)
  }
#endif

// Usage errors (an unknown flag, a value outside an enum's cases) exit with status 2 like every other bad
// input, instead of ArgumentParser's 64.
do {
  // Under mpirun -np P > 1 only `train diffusion|vae|gan` and `bench allreduce` run (each rank a share of every batch); any other
  // command would run P times over the same outputs.
  let words = CommandLine.arguments.dropFirst().filter { !$0.hasPrefix("-") }.prefix(2)
  let second = words.dropFirst().first ?? ""
  let parallelCommand =
    (words.first == "train" && ["diffusion", "vae", "gan"].contains(second))
    || (words.first == "bench" && second == "allreduce")
  if !parallelCommand {
    do { try requireSingleProcess("gpugen \(words.joined(separator: " "))") } catch {
      FileHandle.standardError.write(Data("gpugen: error: \(error)\n".utf8))
      exit(2)
    }
  }
  var command = try GPUGen.parseAsRoot()
  try command.run()
} catch {
  let code = GPUGen.exitCode(for: error)
  if code.rawValue == 64 {
    // In gpugen's own format ("gpugen: error: …"), followed by ArgumentParser's usage hint.
    var text = GPUGen.fullMessage(for: error)
    if text.hasPrefix("Error: ") { text = "gpugen: error: " + text.dropFirst("Error: ".count) }
    FileHandle.standardError.write(Data((text + "\n").utf8))
    exit(2)
  }
  // In a data-parallel job one failing rank ends them all (the others would wait in a collective forever).
  if let world = Communicator.initialisedWorld, world.isDistributed, code != .success, code.rawValue != 130 {
    let text = GPUGen.fullMessage(for: error)
    if !text.isEmpty { FileHandle.standardError.write(Data("\(errorPrefix())\(text)\n".utf8)) }
    world.abort(code: code.rawValue)
  }
  GPUGen.exit(withError: error)
}
