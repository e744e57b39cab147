// The one training loop every family runs on: progress bar (the family's loss terms, it/s, ETA), OUT/log.csv
// with the family's columns, OUT/loss.png, checkpoint cadence, sample grids every K steps, SIGINT (write a
// checkpoint, then exit 130) and the divergence stop (exit 3, raised by the family's step as
// `TrainingError.diverged`, before the weights change, so the last checkpoint stays intact).
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels

/// What the loop needs of a family's training run.
protocol TrainingRun: AnyObject {
  /// Optimizer steps done, and the total.
  var currentStep: Int { get }
  var totalSteps: Int { get }
  var checkpointEvery: Int { get }
  var sampleEvery: Int { get }
  /// The log.csv columns after `step` (the first is the loss the bar shows).
  var logColumns: [String] { get }
  /// The columns loss.png plots.
  var plotColumns: [String] { get }
  /// One optimizer step; returns the values of `logColumns`.
  func trainOneStep() throws -> [Double]
  /// The progress bar's note for one step's values.
  func note(_ values: [Double]) -> String
  func writeCheckpoint(to outDir: URL) throws
  /// Writes the family's grids into OUT/samples.
  func writeSamples(to outDir: URL) throws
}

/// Set by SIGINT/SIGTERM: finish the current step, write a checkpoint, exit.
nonisolated(unsafe) var stopRequested: sig_atomic_t = 0

/// Runs `run` to its total steps, logging to `log`; prints the summary line. Under data parallelism every
/// rank runs the loop; rank 0 alone writes the log, checkpoints and grids and prints progress, the others
/// wait for each checkpoint at a barrier, and a stop request on any rank stops every rank at the same step.
func runTrainingLoop(
  _ run: TrainingRun, log: TrainingLog, outDir: URL, device: Device, parallel: DataParallel = .single
) throws {
  signal(SIGINT) { _ in stopRequested = 1 }
  signal(SIGTERM) { _ in stopRequested = 1 }
  let comm = parallel.communicator
  let bar =
    comm.isRoot
    ? ProgressBar(total: max(run.totalSteps - run.currentStep, 1), label: "training", unit: "it") : nil
  let start = Date()
  let first = run.currentStep
  while run.currentStep < run.totalSteps {
    let t0 = Date()
    let values = try run.trainOneStep()
    if comm.isRoot { try log.append(step: run.currentStep, values, seconds: Date().timeIntervalSince(t0)) }
    bar?.advance(1, note: run.note(values))
    if comm.isDistributed {
      var flag = [Double(stopRequested)]
      try comm.allReduceMax(&flag)
      if flag[0] != 0 { stopRequested = 1 }
    }
    let last = run.currentStep == run.totalSteps
    if run.currentStep % run.checkpointEvery == 0 || last || stopRequested != 0 {
      if comm.isRoot {
        try run.writeCheckpoint(to: outDir)
        try log.plot(run.plotColumns, to: outDir.appendingPathComponent("loss.png"))
      }
      try comm.barrier()
    }
    if comm.isRoot && run.sampleEvery > 0 && (run.currentStep % run.sampleEvery == 0 || last) {
      try run.writeSamples(to: outDir)
    }
    if stopRequested != 0 {
      if comm.isRoot {
        FileHandle.standardError.write(
          Data(
            "\ngpugen: stopped at step \(run.currentStep); checkpoint written, continue with --resume\n".utf8)
        )
      }
      throw ExitCode(130)
    }
  }
  guard comm.isRoot else { return }
  let done = run.currentStep - first
  let secs = Date().timeIntervalSince(start)
  let ranks = comm.isDistributed ? " × \(comm.size) processes" : ""
  print(
    String(
      format: "trained %d steps in %.1f s (%.2f it/s) on %@%@; checkpoint: %@", done, secs,
      secs > 0 ? Double(done) / secs : 0, device.spec, ranks,
      outDir.appendingPathComponent(CheckpointWriter.latestLink).path))
}

/// OUT/log.csv: one row per optimizer step (`step`, the family's columns, seconds, rss_mb, peak_rss_mb),
/// flushed as it goes; on resume, rows after the checkpoint are dropped (they are about to be recomputed).
final class TrainingLog {
  let url: URL
  let handle: FileHandle
  let columns: [String]
  var steps: [Double] = []
  /// Values per column, by row.
  var rows: [[Double]] = []

  /// The header line.
  var header: String { (["step"] + columns + ["seconds", "rss_mb", "peak_rss_mb"]).joined(separator: ",") }

  /// False on the ranks other than 0 of a data-parallel run: nothing is read or written.
  let enabled: Bool

  init(url: URL, columns: [String], keepingSteps keep: Int, enabled: Bool = true) throws {
    self.url = url
    self.columns = columns
    self.enabled = enabled
    guard enabled else {
      handle = FileHandle.nullDevice
      return
    }
    var lines = [(["step"] + columns + ["seconds", "rss_mb", "peak_rss_mb"]).joined(separator: ",")]
    if keep > 0, let text = try? String(contentsOf: url, encoding: .utf8) {
      for line in text.split(separator: "\n").dropFirst() {
        let f = line.split(separator: ",")
        guard f.count >= 1 + columns.count, let s = Int(f[0]), s <= keep else { continue }
        let values = f[1...columns.count].map { Double($0) ?? .nan }
        lines.append(String(line))
        steps.append(Double(s))
        rows.append(values)
      }
    }
    try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: url, options: .atomic)
    handle = try FileHandle(forWritingTo: url)
    try handle.seekToEnd()
  }

  func append(step: Int, _ values: [Double], seconds: Double) throws {
    let memory = residentMemory()
    let fields =
      ["\(step)"] + values.map { String(format: "%.9g", $0) }
      + [
        String(format: "%.4f", seconds), String(format: "%.1f", memory.rss),
        String(format: "%.1f", memory.peak),
      ]
    try handle.write(contentsOf: Data((fields.joined(separator: ",") + "\n").utf8))
    steps.append(Double(step))
    rows.append(values)
  }

  /// The curves of `names` (log scale), each with its moving average.
  func plot(_ names: [String], to url: URL) throws {
    guard enabled else { return }
    let palette: [(RGB8, RGB8)] = [
      (RGB8(170, 190, 230), RGB8(20, 60, 170)), (RGB8(235, 190, 160), RGB8(190, 80, 20)),
      (RGB8(170, 220, 180), RGB8(30, 130, 60)),
    ]
    let title =
      names.count == 1 ? "training loss (\(names[0]))" : "training: " + names.joined(separator: ", ")
    let positive = names.allSatisfy { n in
      guard let c = columns.firstIndex(of: n) else { return true }
      return rows.allSatisfy { !($0[c] <= 0) }
    }
    var plot = LinePlot(
      title: title, xLabel: "step", yLabel: names.count == 1 ? "loss" : "nats", logY: positive)
    for (k, name) in names.enumerated() {
      guard let c = columns.firstIndex(of: name) else { continue }
      let ys = rows.map { $0[c] }
      let colors = palette[k % palette.count]
      plot.add(name, x: steps, y: ys, color: colors.0)
      if ys.count >= 10 {
        plot.add(
          "\(name) (moving average)", x: steps, y: movingAverage(ys, window: max(10, ys.count / 50)),
          color: colors.1)
      }
    }
    let image = plot.render(width: 720, height: 400)
    try StagedOutputs.replace(url) { try image.writePNG(to: $0) }
  }
}

/// Current and peak resident set size of this process in MB (VmRSS and VmHWM of /proc/self/status).
func residentMemory() -> (rss: Double, peak: Double) {
  guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else {
    return (.nan, peakResidentMegabytes())
  }
  func field(_ name: String) -> Double {
    guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }),
      let kb = Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    else { return .nan }
    return kb / 1024
  }
  return (field("VmRSS"), field("VmHWM"))
}

/// A moving average of the last `window` values (for the progress bar).
final class RecentAverage {
  private var values: [Double] = []
  let window: Int
  init(window: Int = 50) { self.window = window }
  func add(_ v: Double) -> Double {
    values.append(v)
    if values.count > window { values.removeFirst() }
    return values.reduce(0, +) / Double(values.count)
  }
}

/// What every family's `train` does around its own model under data parallelism: the job's processes, this
/// rank's device, and --out, which every rank checks before rank 0 writes to it. Rank 0 alone creates --out,
/// writes the log and checkpoints and prints; the others read only.
struct TrainingJob {
  /// The processes and how they share each batch.
  let parallel: DataParallel
  /// This rank's device.
  let device: Device
  /// The run's output folder.
  let outDir: URL

  init(training: TrainingOptionGroup, distributed: DistributedOptions, deviceOptions: DeviceOptions) throws {
    parallel = try distributed.parallel()
    device = try deviceOptions.resolve()
    // Rank 0 alone takes the folder's lock (the other ranks of the job only read --out).
    outDir = try training.outputFolder(writer: parallel.communicator.isRoot)
    try parallel.communicator.barrier()
  }

  /// True on the rank that writes (rank 0, or the only process).
  var isRoot: Bool { parallel.communicator.isRoot }

  /// " × P processes" in a data-parallel job, else "".
  var processesNote: String { parallel.processes > 1 ? " × \(parallel.processes) processes" : "" }

  /// Throws unless the global batch `batchSize` splits evenly over the processes.
  func checkBatch(_ batchSize: Int) throws { _ = try parallel.share(ofBatch: batchSize) }

  /// Creates --out (rank 0).
  func createOutput() throws {
    if isRoot { try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true) }
  }

  /// OUT/log.csv with `columns`, keeping the rows up to `keepingSteps` (rank 0; a null log elsewhere).
  func log(columns: [String], keepingSteps: Int) throws -> TrainingLog {
    try TrainingLog(
      url: outDir.appendingPathComponent("log.csv"), columns: columns, keepingSteps: keepingSteps,
      enabled: isRoot)
  }

  /// Prints `line` on stderr (rank 0).
  func announce(_ line: String) {
    if isRoot { FileHandle.standardError.write(Data((line + "\n").utf8)) }
  }

  /// Checks that every rank runs the same thing (`items`: name and value), then runs the loop.
  func run(_ run: TrainingRun, agreeing items: [(name: String, value: String)]) throws {
    try parallel.checkAgreement(items + [("the step", "\(run.currentStep)")])
    let log = try log(columns: run.logColumns, keepingSteps: run.currentStep)
    try runTrainingLoop(run, log: log, outDir: outDir, device: device, parallel: parallel)
  }
}

/// On --resume, refuses a --config whose model differs from the one the checkpoint in `out` was trained with.
func refuseOtherConfig<T: Equatable>(_ given: T?, saved: T, config path: String?, out: String) throws {
  guard let given, let path, given != saved else { return }
  throw TrainingError.invalidOption(
    "--resume: the checkpoint in \(out) was trained with another model config than --config \(path); drop --config to continue it, or choose another --out"
  )
}

/// Refuses to run `what` in more than one process (only `train diffusion|vae|gan` on images are data-parallel).
func requireSingleProcess(_ what: String) throws {
  let size = Int(ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] ?? "") ?? 1
  if size > 1 {
    throw TrainingError.invalidOption(
      "\(what) runs in one process, not under mpirun -np \(size); only train diffusion, vae and gan are data-parallel"
    )
  }
}
