// `gpugen train diffusion` as a user runs it: SIGKILL and --resume give bitwise-identical weights on the
// CPU, divergence stops with its own exit status and an intact checkpoint, bad input is a clear error.
import Foundation
import XCTest

@testable import GPUGenModels

final class TrainCommandTests: XCTestCase {
  func executable() throws -> URL {
    let candidates = [
      Bundle(for: Self.self).bundleURL.deletingLastPathComponent(),
      URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
    ].map { $0.appendingPathComponent("gpugen") }
    return try XCTUnwrap(candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) })
  }

  func process(_ args: [String]) throws -> (Process, Pipe, Pipe) {
    let p = Process()
    p.executableURL = try executable()
    p.arguments = args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    return (p, out, err)
  }

  func gpugen(_ args: [String]) throws -> (Int32, String, String) {
    let (p, out, err) = try process(args)
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
  }

  func tmp() throws -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("gpugen-train-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: d) }
    return d
  }

  /// A tiny labelled IDX dataset (40 images of 6×6, 3 classes) and an 8×8 class-conditional UNet config
  /// with attention, in `dir`.
  func fixture(in dir: URL) throws -> (data: String, config: String) {
    let data = try writeLabelledIDX(in: dir, name: "toy", count: 40, size: 6, classes: 3) { i, c, y, x in
      (c == 0 ? x * 40 : c == 1 ? y * 40 : (x + y) * 20) + i % 7
    }
    let config = dir.appendingPathComponent("unet.json")
    try Data(
      """
      {"_class_name": "UNet2DModel", "sample_size": 8, "in_channels": 1, "out_channels": 1,
       "block_out_channels": [8, 16], "layers_per_block": 1, "norm_num_groups": 4,
       "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
       "attention_head_dim": 8, "num_class_embeds": 3}
      """.utf8
    ).write(to: config)
    return (data.path, config.path)
  }

  func trainArgs(_ f: (data: String, config: String), out: URL, steps: Int) -> [String] {
    [
      "train", "diffusion", "--data", f.data, "--config", f.config, "--steps", "\(steps)", "--batch-size",
      "4",
      "--lr", "1e-3", "--warmup", "5", "--checkpoint-every", "3", "--sample-every", "0", "--device", "cpu",
      "--seed", "7", "--out", out.path,
    ]
  }

  func checkpointFiles(_ out: URL) throws -> [String: Data] {
    let dir = try DiffusionTrainer.latestCheckpoint(in: out)
    var files: [String: Data] = [:]
    for f in [
      "training_state/model.safetensors", "training_state/optimizer.safetensors",
      "unet/diffusion_pytorch_model.safetensors",
    ] {
      files[f] = try Data(contentsOf: dir.appendingPathComponent(f))
    }
    return files
  }

  func testSIGKILLAndResumeGiveBitwiseIdenticalWeights() throws {
    let d = try tmp()
    let f = try fixture(in: d)
    let steps = 60
    let straight = d.appendingPathComponent("straight"), killed = d.appendingPathComponent("killed")
    let (s0, _, e0) = try gpugen(trainArgs(f, out: straight, steps: steps))
    XCTAssertEqual(s0, 0, e0)

    // Kill -9 as soon as the run is past its third checkpoint, then resume.
    let (p, _, _) = try process(trainArgs(f, out: killed, steps: steps))
    try p.run()
    let log = killed.appendingPathComponent("log.csv")
    let deadline = Date().addingTimeInterval(120)
    while Date() < deadline {
      let rows = ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n").count - 1
      if rows >= 10 { break }
      usleep(2000)
    }
    kill(p.processIdentifier, SIGKILL)
    p.waitUntilExit()
    XCTAssertEqual(p.terminationReason, .uncaughtSignal, "the run finished before it could be killed")
    let state =
      try JSONSerialization.jsonObject(
        with: Data(
          contentsOf: try DiffusionTrainer.latestCheckpoint(in: killed).appendingPathComponent(
            "training_state/state.json"))) as? [String: Any]
    let killedAt = try XCTUnwrap(state?["step"] as? Int)
    XCTAssertLessThan(killedAt, steps)
    XCTAssertGreaterThanOrEqual(killedAt, 3)

    let (s1, _, e1) = try gpugen(trainArgs(f, out: killed, steps: steps) + ["--resume"])
    XCTAssertEqual(s1, 0, e1)
    XCTAssertTrue(e1.contains("resuming"), e1)
    let a = try checkpointFiles(straight), b = try checkpointFiles(killed)
    for (name, bytes) in a { XCTAssertEqual(bytes, b[name], "\(name) differs after kill + resume") }
    // The log has exactly one row per step.
    let rows = try String(contentsOf: log, encoding: .utf8).split(separator: "\n").dropFirst()
    XCTAssertEqual(rows.map { Int($0.split(separator: ",")[0])! }, Array(1...steps))
  }

  func testDivergenceStopsWithItsOwnStatusAndKeepsTheCheckpoint() throws {
    let d = try tmp()
    let f = try fixture(in: d)
    let out = d.appendingPathComponent("run")
    var args = trainArgs(f, out: out, steps: 50)
    args[args.firstIndex(of: "--lr")! + 1] = "1e30"
    args[args.firstIndex(of: "--warmup")! + 1] = "0"
    args += ["--clip-grad", "0"]
    let (status, _, err) = try gpugen(args)
    XCTAssertEqual(status, 3, err)
    XCTAssertTrue(err.contains("diverged at step"), err)
    XCTAssertTrue(err.contains("loss") || err.contains("gradient"), err)
    // The last good checkpoint is intact and loads.
    let ckpt = try DiffusionTrainer.latestCheckpoint(in: out)
    let unet = try UNet2DModelLoader.load(from: ckpt.appendingPathComponent("unet"), device: .cpu)
    XCTAssertEqual(unet.config.sampleSize, 8)
  }

  func testCheckpointSamplesAndBadInputIsAClearError() throws {
    let d = try tmp()
    let f = try fixture(in: d)
    let out = d.appendingPathComponent("run")
    let (s0, o0, e0) = try gpugen(trainArgs(f, out: out, steps: 3) + ["--sample-every", "3"])
    XCTAssertEqual(s0, 0, e0)
    XCTAssertTrue(o0.contains("trained 3 steps"), o0)
    XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("loss.png").path))
    XCTAssertTrue(
      FileManager.default.fileExists(atPath: out.appendingPathComponent("samples/step-00000003.png").path))
    let grid = d.appendingPathComponent("g.png")
    let (s1, _, e1) = try gpugen([
      "sample", "--model", out.appendingPathComponent("checkpoint").path, "--n", "3", "--steps", "2",
      "--class", "0,1,2", "--device", "cpu", "--out", grid.path,
    ])
    XCTAssertEqual(s1, 0, e1)
    // The same folder again without --resume would overwrite the run: refused.
    let (s2, _, e2) = try gpugen(trainArgs(f, out: out, steps: 3))
    XCTAssertEqual(s2, 2)
    XCTAssertTrue(e2.contains("--resume"), e2)
    let (s3, _, e3) = try gpugen(
      trainArgs((d.appendingPathComponent("nope").path, f.config), out: d, steps: 3))
    XCTAssertEqual(s3, 2)
    XCTAssertTrue(e3.contains("not found"), e3)
    let (s4, _, e4) = try gpugen(
      trainArgs(f, out: d.appendingPathComponent("x"), steps: 3) + ["--prediction", "x0"])
    XCTAssertEqual(s4, 2)
    XCTAssertTrue(e4.contains("--prediction"), e4)
  }

  func testOpenCLTrainingTracksTheCPU() throws {
    let d = try tmp()
    let f = try fixture(in: d)
    var losses: [[Double]] = []
    for device in ["cpu", "opencl"] {
      let out = d.appendingPathComponent(device)
      var args = trainArgs(f, out: out, steps: 4)
      args[args.firstIndex(of: "--device")! + 1] = device
      let (status, _, err) = try gpugen(args)
      XCTAssertEqual(status, 0, err)
      let rows = try String(contentsOf: out.appendingPathComponent("log.csv"), encoding: .utf8)
        .split(separator: "\n").dropFirst()
      losses.append(rows.map { Double($0.split(separator: ",")[1])! })
    }
    XCTAssertEqual(losses[0].count, 4)
    XCTAssertEqual(losses[1].count, 4)
    for (a, b) in zip(losses[0], losses[1]) {
      // Same data, timesteps and noise; float32 differences in the kernels only.
      XCTAssertEqual(a, b, accuracy: 1e-3 * a, "CPU \(losses[0]) vs OpenCL \(losses[1])")
    }
  }
}
