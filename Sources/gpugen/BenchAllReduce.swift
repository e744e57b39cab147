// `gpugen bench allreduce`: the gradient all-reduce's bandwidth between the processes of an mpirun job.
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels

struct BenchAllReduce: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "allreduce",
    abstract:
      "All-reduce bandwidth between the processes of an mpirun job (run as mpirun -np P gpugen bench allreduce).",
    discussion: """
      Sums a buffer of --mb megabytes of Float32 over the ranks --rounds times (after one warm-up) and prints, \
      on rank 0, the best time, the algorithm bandwidth (bytes / time) and the bus bandwidth \
      (2(P − 1)/P × bytes / time, the traffic per process of a ring all-reduce), as nccl-tests reports them. \
      In one process it measures nothing and says so.
      """)

  @Option(help: "Megabytes per all-reduce (the bucket size of --bucket-mb in training).")
  var mb: Double = 25

  @Option(help: "Timed all-reduces (the best is reported).")
  var rounds = 10

  @Flag(help: "Print one JSON line.")
  var json = false

  func run() throws {
    try reportingUserErrors {
      guard mb > 0, mb <= 4096 else { throw TrainingError.invalidOption("--mb must be in (0, 4096]") }
      guard rounds >= 1, rounds <= 100_000 else {
        throw TrainingError.invalidOption("--rounds must be in 1...100000")
      }
      let world = try Communicator.world()
      guard world.isDistributed else {
        throw TrainingError.invalidOption(
          "bench allreduce needs several processes: mpirun -np 2 gpugen bench allreduce")
      }
      let count = Int(mb * 1_048_576) / 4
      var buffer = [Float](repeating: 1, count: count)
      try world.allReduceSum(&buffer)
      var best = Double.infinity
      for _ in 0..<rounds {
        try world.barrier()
        let t0 = Date()
        try world.allReduceSum(&buffer)
        best = min(best, Date().timeIntervalSince(t0))
      }
      // Every element is P^(rounds + 1) now: a check that the sums happened.
      let expected = pow(Float(world.size), Float(rounds + 1))
      guard abs(buffer[count - 1] - expected) <= expected * 1e-5 else {
        throw TrainingError.invalidOption("all-reduce gave \(buffer[count - 1]), expected \(expected)")
      }
      guard world.isRoot else { return }
      let bytes = Double(count * 4)
      let algo = bytes / best / 1e9
      let bus = algo * 2 * Double(world.size - 1) / Double(world.size)
      if json {
        print(
          jsonLine([
            "processes": world.size, "bytes": Int(bytes), "seconds": best, "algorithm_gbps": algo,
            "bus_gbps": bus,
          ]))
      } else {
        print(
          String(
            format:
              "all-reduce of %.1f MB over %d processes: %.3f ms, algorithm bandwidth %.2f GB/s, bus bandwidth %.2f GB/s",
            bytes / 1e6, world.size, best * 1e3, algo, bus))
      }
    }
  }
}
