// Data-parallel training under Open MPI, as a user runs it: `mpirun -np 2 gpugen train …` gives the weights of
// the single-process run with the same global batch (every draw is keyed by the global sample index), for
// every family; --sync-batchnorm gives the single process's BatchNorm statistics; a killed rank stops the job
// with the last checkpoint intact, and a P = 2 checkpoint resumes with P = 1.
import Foundation
import GPUGenNN
import XCTest

final class DistributedTests: XCTestCase {
  func tmp() throws -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("gpugen-mpi-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: d) }
    return d
  }

  /// Open MPI's launcher: a failure, not a skip, when it is missing (the README's set-up installs it).
  func mpirun() throws -> URL {
    for dir in ["/usr/bin", "/usr/local/bin"] {
      let u = URL(fileURLWithPath: dir).appendingPathComponent("mpirun")
      if FileManager.default.isExecutableFile(atPath: u.path) { return u }
    }
    XCTFail("mpirun not found: install openmpi-bin and libopenmpi-dev (scripts/install-deps does)")
    throw XCTSkip("no mpirun")
  }

  /// `mpirun -np p gpugen args` (as root, more ranks than cores allowed).
  func mpi(_ p: Int, _ args: [String]) throws -> (Int32, String, String) {
    try runProgram(
      try mpirun(),
      ["--allow-run-as-root", "--oversubscribe", "-np", "\(p)", try gpugenExecutable().path] + args,
      env: ["OPENBLAS_NUM_THREADS": "1"])
  }

  /// 64 labelled 28×28 images in 3 classes (an IDX pair) in `dir`; returns the image file's path.
  func images(in dir: URL) throws -> String {
    try writeLabelledIDX(in: dir, name: "fix", count: 64, size: 28, classes: 3) { i, c, y, x in
      ((c == 0 ? x * 9 : c == 1 ? y * 9 : (x + y) * 4) + 13 * i) % 256
    }.path
  }

  /// A 45k-parameter class-conditional 28×28 UNet config in `dir`.
  func unetConfig(in dir: URL) throws -> String {
    let url = dir.appendingPathComponent("unet.json")
    try Data(
      """
      {"_class_name": "UNet2DModel", "sample_size": 28, "in_channels": 1, "out_channels": 1,
       "block_out_channels": [8, 16], "layers_per_block": 1, "norm_num_groups": 4,
       "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
       "attention_head_dim": 8, "num_class_embeds": 3}
      """.utf8
    ).write(to: url)
    return url.path
  }

  /// Every tensor of every safetensors file under `a`'s checkpoint against `b`'s (optimizer moments aside):
  /// the largest ‖a − b‖ / ‖a‖ over tensors, and its name.
  func worstDifference(_ a: URL, _ b: URL) throws -> (Double, String) {
    let ca = a.appendingPathComponent("checkpoint").resolvingSymlinksInPath()
    let cb = b.appendingPathComponent("checkpoint").resolvingSymlinksInPath()
    var worst = (0.0, "")
    var files = 0
    let e = try XCTUnwrap(FileManager.default.enumerator(atPath: ca.path))
    for case let rel as String in e where rel.hasSuffix(".safetensors") && !rel.contains("optimizer") {
      files += 1
      let ta = try SafeTensors.read(contentsOf: ca.appendingPathComponent(rel)).tensors
      let tb = try SafeTensors.read(contentsOf: cb.appendingPathComponent(rel)).tensors
      XCTAssertEqual(Set(ta.keys), Set(tb.keys), rel)
      for (name, x) in ta {
        let y = try XCTUnwrap(tb[name]).values
        var diff = 0.0
        var norm = 0.0
        for (u, v) in zip(x.values, y) {
          diff += Double(u - v) * Double(u - v)
          norm += Double(u) * Double(u)
        }
        let r = norm > 0 ? (diff / norm).squareRoot() : diff.squareRoot()
        if r > worst.0 { worst = (r, "\(rel): \(name)") }
      }
    }
    XCTAssertGreaterThan(files, 0, "no weights under \(ca.path)")
    return worst
  }

  /// Trains `args` for 20 steps in one process and with `mpirun -np 2`, and compares the weights.
  func assertSameWeights(
    _ family: String, _ args: [String], file: StaticString = #filePath, line: UInt = #line
  )
    throws
  {
    let dir = try tmp()
    let one = dir.appendingPathComponent("p1"), two = dir.appendingPathComponent("p2")
    let common = ["train", family, "--steps", "20", "--device", "cpu", "--sample-every", "0"] + args
    let (s1, _, e1) = try runGpugen(common + ["--out", one.path], env: ["OPENBLAS_NUM_THREADS": "1"])
    XCTAssertEqual(s1, 0, e1, file: file, line: line)
    let (s2, o2, e2) = try mpi(2, common + ["--out", two.path])
    XCTAssertEqual(s2, 0, e2, file: file, line: line)
    XCTAssertTrue(o2.contains("× 2 processes"), o2, file: file, line: line)
    let (worst, name) = try worstDifference(one, two)
    XCTAssertLessThanOrEqual(worst, 1e-5, "\(family): \(name)", file: file, line: line)
  }

  func testEveryFamilyMatchesTheSingleProcessRun() throws {
    let dir = try tmp()
    let data = try images(in: dir)
    try assertSameWeights(
      "diffusion", ["--data", data, "--config", try unetConfig(in: dir), "--batch-size", "8"])
    try assertSameWeights("vae", ["--data", data, "--batch-size", "16"])
    // No BatchNorm here (a DCGAN with spectral norm in D, none in G; and the toy MLP pair without the toy
    // generator's batch norm): BatchNorm's statistics are per rank unless synchronised (the next test).
    let gan = dir.appendingPathComponent("gan.json")
    try Data(
      """
      {"generator": {"_class_name": "DCGANGenerator", "norm": "none", "block_out_channels": [32, 16]},
       "discriminator": {"_class_name": "DCGANDiscriminator", "norm": "spectral", "block_out_channels": [16, 32]}}
      """.utf8
    ).write(to: gan)
    try assertSameWeights(
      "gan",
      ["--data", data, "--config", gan.path, "--batch-size", "16", "--diffaugment", "translation,cutout"])
    let toy = dir.appendingPathComponent("toy.json")
    try Data(
      #"{"generator": {"_class_name": "MLPGenerator", "norm": "none"}, "discriminator": {"_class_name": "MLPDiscriminator"}}"#
        .utf8
    ).write(to: toy)
    try assertSameWeights("gan", ["--data", "toy:ring8", "--config", toy.path, "--batch-size", "64"])
  }

  /// Class dropout (`--class-dropout`): each rank draws the labels of its share's global sample indices, so
  /// two processes drop the same samples as one and the weights (the null label's row too) agree.
  func testClassDropoutMatchesTheSingleProcessRun() throws {
    let dir = try tmp()
    try assertSameWeights(
      "diffusion",
      [
        "--data", try images(in: dir), "--config", try unetConfig(in: dir), "--batch-size", "8",
        "--class-dropout",
        "0.5",
      ])
  }

  /// The logged (d_loss, g_loss, d_real, d_fake) of each step.
  func ganLosses(_ out: URL) throws -> [[Double]] {
    let text = try String(contentsOf: out.appendingPathComponent("log.csv"), encoding: .utf8)
    return text.split(separator: "\n").dropFirst().map { line in
      line.split(separator: ",").dropFirst().prefix(4).map { Double($0) ?? .nan }
    }
  }

  func testSyncBatchNormUsesTheGlobalBatchStatistics() throws {
    // The reference DCGAN (BatchNorm in G and D), 3 steps. A layer's bias before BatchNorm has a true gradient
    // of zero, which Adam turns from rounding noise into ±lr steps, so the comparison is on the losses,
    // which every parameter and statistic feeds. Batch 64 (32 per rank): every convolution then takes the same
    // kernel in both runs (Winograd from 1,024 output positions a call), so only the statistics differ.
    let dir = try tmp()
    let data = try images(in: dir)
    let common = ["train", "gan", "--data", data, "--steps", "3", "--batch-size", "64", "--device", "cpu"]
    let one = dir.appendingPathComponent("p1")
    XCTAssertEqual(try runGpugen(common + ["--out", one.path]).0, 0)
    let synced = dir.appendingPathComponent("sync"), local = dir.appendingPathComponent("local")
    let (s2, _, e2) = try mpi(2, common + ["--out", synced.path, "--sync-batchnorm"])
    XCTAssertEqual(s2, 0, e2)
    XCTAssertEqual(try mpi(2, common + ["--out", local.path]).0, 0)
    let (a, b, c) = (try ganLosses(one), try ganLosses(synced), try ganLosses(local))
    XCTAssertEqual(a.count, 3)
    func worst(_ x: [[Double]], _ y: [[Double]]) -> Double {
      zip(x.joined(), y.joined()).map { abs($0 - $1) / max(abs($0), 1e-6) }.max() ?? .nan
    }
    XCTAssertEqual(b.count, 3)
    XCTAssertLessThan(worst(a, b), 1e-4, "synchronised BatchNorm: \(a) vs \(b)")
    // Per-rank statistics (the default) are visibly different: the flag is what made them agree.
    XCTAssertGreaterThan(worst(a, c), 1e-3, "per-rank BatchNorm: \(a) vs \(c)")
  }

  func testAKilledRankStopsTheJobAndItsCheckpointResumesInOneProcess() throws {
    let dir = try tmp()
    let data = try images(in: dir)
    let config = try unetConfig(in: dir)
    let out = dir.appendingPathComponent("killed")
    let args = [
      "train", "diffusion", "--data", data, "--config", config, "--batch-size", "8", "--device", "cpu",
      "--sample-every", "0", "--checkpoint-every", "2",
    ]
    let job = Process()
    job.executableURL = try mpirun()
    job.arguments =
      ["--allow-run-as-root", "--oversubscribe", "-np", "2", try gpugenExecutable().path] + args
      + ["--steps", "100000", "--out", out.path]
    job.environment = ProcessInfo.processInfo.environment.merging(["OPENBLAS_NUM_THREADS": "1"]) { $1 }
    let err = Pipe()
    job.standardError = err
    job.standardOutput = FileHandle.nullDevice
    try job.run()
    // Wait for the checkpoint of step 4, then SIGKILL rank 1.
    let link = out.appendingPathComponent("checkpoint")
    let deadline = Date().addingTimeInterval(120)
    while Date() < deadline {
      if let dest = try? FileManager.default.destinationOfSymbolicLink(atPath: link.path),
        let s = Int(dest.suffix(8)), s >= 4
      {
        break
      }
      usleep(100_000)
    }
    var killed = false
    let children = try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap(Int32.init)
    for pid in children {
      guard
        let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let ppid = stat.split(separator: ")").last?.split(separator: " ").dropFirst().first,
        Int32(ppid) == job.processIdentifier,
        let env = FileManager.default.contents(atPath: "/proc/\(pid)/environ"),
        String(decoding: env, as: UTF8.self).split(separator: "\0").contains("OMPI_COMM_WORLD_RANK=1")
      else { continue }
      kill(pid, SIGKILL)
      killed = true
    }
    XCTAssertTrue(killed, "rank 1 not found among mpirun's children")
    let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    job.waitUntilExit()
    XCTAssertNotEqual(job.terminationStatus, 0)
    XCTAssertTrue(message.contains("rank 1"), message)
    // The last checkpoint is whole: a single process resumes it and trains on.
    let dest = try FileManager.default.destinationOfSymbolicLink(atPath: link.path)
    let step = try XCTUnwrap(Int(dest.suffix(8)))
    XCTAssertGreaterThanOrEqual(step, 4)
    let (s, o, e) = try runGpugen(
      ["train", "diffusion", "--resume", "--out", out.path, "--steps", "\(step + 2)", "--device", "cpu"])
    XCTAssertEqual(s, 0, e)
    XCTAssertTrue(o.contains("trained 2 steps"), o)
    // …and lands where a single process trained straight through lands.
    let straight = dir.appendingPathComponent("straight")
    let (s1, _, e1) = try runGpugen(args + ["--steps", "\(step + 2)", "--out", straight.path])
    XCTAssertEqual(s1, 0, e1)
    let (worst, name) = try worstDifference(straight, out)
    XCTAssertLessThanOrEqual(worst, 1e-5, name)
  }

  func testBadInputIsAClearErrorOnEveryRank() throws {
    let dir = try tmp()
    let data = try images(in: dir)
    let base = ["train", "vae", "--data", data, "--steps", "2"]
    // A global batch that does not split over the processes.
    let (s1, _, e1) = try mpi(
      2, base + ["--device", "cpu", "--batch-size", "15", "--out", dir.appendingPathComponent("a").path])
    XCTAssertEqual(s1, 2, e1)
    XCTAssertTrue(
      e1.contains("--batch-size 15 is the global batch and must be divisible by the 2 processes"), e1)
    XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("a").path))
    // A device a rank cannot open is named with the rank.
    let (s2, _, e2) = try mpi(
      2,
      base + ["--batch-size", "16", "--device", "opencl:99", "--out", dir.appendingPathComponent("b").path])
    XCTAssertEqual(s2, 2, e2)
    XCTAssertTrue(e2.contains("gpugen: error: rank "), e2)
    XCTAssertTrue(e2.contains("opencl:99"), e2)
    // Ranks started with different runs (mpirun's MPMD syntax) are named at start-up.
    let out = dir.appendingPathComponent("c").path
    let exe = try gpugenExecutable().path
    let (s4, _, e4) = try runProgram(
      try mpirun(),
      ["--allow-run-as-root", "--oversubscribe", "-np", "1", exe] + base
        + ["--device", "cpu", "--batch-size", "16", "--out", out, ":", "-np", "1", exe] + base
        + ["--device", "cpu", "--batch-size", "16", "--out", out, "--lr", "0.002"],
      env: ["OPENBLAS_NUM_THREADS": "1"])
    XCTAssertEqual(s4, 2, e4)
    XCTAssertTrue(e4.contains("the ranks disagree: the training options: rank 1 differs from rank 0"), e4)
    // --resume with a --config of another model.
    let dir2 = try tmp()
    let config = try unetConfig(in: dir2)
    let run = [
      "train", "diffusion", "--data", data, "--config", config, "--batch-size", "8", "--device", "cpu",
      "--sample-every", "0", "--steps", "1", "--out", dir2.appendingPathComponent("r").path,
    ]
    XCTAssertEqual(try runGpugen(run).0, 0)
    let other = dir2.appendingPathComponent("other.json")
    try Data(
      try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(
        of: "\"layers_per_block\": 1", with: "\"layers_per_block\": 2"
      ).utf8
    ).write(to: other)
    let resumed = run.map { $0 == config ? other.path : $0 == "1" ? "2" : $0 } + ["--resume"]
    let (s5, _, e5) = try mpi(2, resumed)
    XCTAssertEqual(s5, 2, e5)
    XCTAssertTrue(e5.contains("was trained with another model config than --config"), e5)
    XCTAssertEqual(try runGpugen(run.map { $0 == "1" ? "2" : $0 } + ["--resume"]).0, 0)
    // Commands that are not data-parallel refuse to run P times over the same outputs.
    let (s3, _, e3) = try mpi(2, ["sample", "--n", "1", "--out", dir.appendingPathComponent("g.png").path])
    XCTAssertEqual(s3, 2, e3)
    XCTAssertTrue(e3.contains("runs in one process"), e3)
  }
}
