// `gpugen sample` as a user runs it: the bundled model, outputs, reproducibility and bad input.
import Foundation
import GPUGenNN
import XCTest

@testable import GPUGenModels

final class SampleCommandTests: XCTestCase {
  func gpugen(_ args: [String], env: [String: String] = [:]) throws -> (Int32, String, String) {
    try runGpugen(args, env: env)
  }

  func tmp() throws -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent(
      "gpugen-sample-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: d) }
    return d
  }

  func testDefaultModelSamplesWithoutAPath() throws {
    let d = try tmp()
    let (status, out, err) = try gpugen([
      "sample", "--n", "3", "--steps", "3", "--device", "cpu", "--out",
      d.appendingPathComponent("g.png").path,
      "--npy", d.appendingPathComponent("x.npy").path, "--trajectory", d.appendingPathComponent("t.png").path,
    ])
    XCTAssertEqual(status, 0, err)
    XCTAssertTrue(out.contains("images/s"), out)
    XCTAssertTrue(err.contains("sampling"), err)  // the progress bar
    let x = try NPY.read(from: d.appendingPathComponent("x.npy"))
    XCTAssertEqual(x.shape, [3, 1, 28, 28])
    XCTAssertTrue(x.values.allSatisfy { $0.isFinite })
    let grid = try Image8.readPNG(from: d.appendingPathComponent("g.png"), channels: 1)
    XCTAssertGreaterThan(grid.width, 56)
    let strip = try Image8.readPNG(from: d.appendingPathComponent("t.png"), channels: 1)
    XCTAssertGreaterThan(strip.width, grid.width)  // 3 steps across, 3 images down
  }

  /// `gpugen export`: F32 and back to F16 keeps every weight (the bundled model is F16), the copies sample,
  /// and an existing --out or a bad --dtype is refused.
  func testExportRoundTripsTheBundledModel() throws {
    let d = try tmp()
    let original = try DiffusionModelFolder.resolve(try DefaultModel.url())
    let f32 = d.appendingPathComponent("f32"), f16 = d.appendingPathComponent("f16")
    var (status, out, err) = try gpugen([
      "export", "--model", try DefaultModel.url().path, "--out", f32.path, "--dtype", "f32",
    ])
    XCTAssertEqual(status, 0, err)
    XCTAssertTrue(out.contains("as F32"), out)
    (status, _, err) = try gpugen(["export", "--model", f32.path, "--out", f16.path])
    XCTAssertEqual(status, 0, err)
    let name = "unet/diffusion_pytorch_model.safetensors"
    let a = try SafeTensors.read(
      contentsOf: original.unet.appendingPathComponent("diffusion_pytorch_model.safetensors"))
    let b = try SafeTensors.read(contentsOf: f32.appendingPathComponent(name))
    let c = try SafeTensors.read(contentsOf: f16.appendingPathComponent(name))
    XCTAssertEqual(a.tensors, b.tensors)
    XCTAssertEqual(a.tensors, c.tensors)
    XCTAssertGreaterThan(
      try FileManager.default.attributesOfItem(atPath: f32.appendingPathComponent(name).path)[.size] as! Int,
      try FileManager.default.attributesOfItem(atPath: f16.appendingPathComponent(name).path)[.size] as! Int)
    XCTAssertNotNil(try DiffusionModelFolder.resolve(f16).schedulerConfig)
    (status, _, err) = try gpugen([
      "sample", "--model", f16.path, "--n", "2", "--steps", "2", "--device", "cpu", "--out",
      d.appendingPathComponent("g.png").path,
    ])
    XCTAssertEqual(status, 0, err)
    (status, _, err) = try gpugen(["export", "--model", f32.path, "--out", f16.path])
    XCTAssertEqual(status, 2)
    XCTAssertTrue(err.contains("already exists"), err)
    (status, _, err) = try gpugen([
      "export", "--model", f32.path, "--out", d.appendingPathComponent("x").path, "--dtype", "q4",
    ])
    XCTAssertEqual(status, 2)
    XCTAssertTrue(err.contains("--dtype"), err)
  }

  func testSameSeedSameImagesAcrossBatchSizesAndDevices() throws {
    let d = try tmp()
    func run(_ extra: [String], _ name: String) throws -> [Float] {
      let path = d.appendingPathComponent(name).path
      let (status, _, err) = try gpugen(
        [
          "sample", "--n", "4", "--steps", "4", "--seed", "11", "--out",
          d.appendingPathComponent("\(name).png").path, "--npy", path,
        ] + extra)
      XCTAssertEqual(status, 0, err)
      return try NPY.read(from: URL(fileURLWithPath: path)).values
    }
    let a = try run(["--device", "cpu", "--batch-size", "4"], "a.npy")
    let b = try run(["--device", "cpu", "--batch-size", "1"], "b.npy")
    XCTAssertLessThanOrEqual(zip(a, b).map { Swift.abs($0 - $1) }.max()!, 1e-4)
    let c = try run(["--device", "cpu", "--batch-size", "4", "--seed", "12"], "c.npy")
    XCTAssertGreaterThan(zip(a, c).map { Swift.abs($0 - $1) }.max()!, 0.1)
    if let cl = try Device.openCLDevices().first {
      let o = try run(["--device", "opencl:\(cl.index)"], "o.npy")
      XCTAssertLessThanOrEqual(zip(a, o).map { Swift.abs($0 - $1) }.max()!, 1e-3, "CPU vs opencl:\(cl.index)")
    }
    // --noise reproduces a run from its initial noise: zeros in, a deterministic sampler gives one answer.
    let noise = d.appendingPathComponent("noise.npy")
    try NPY.write([Float](repeating: 0, count: 4 * 28 * 28), shape: [4, 1, 28, 28], to: noise)
    let z1 = try run(["--device", "cpu", "--noise", noise.path, "--sampler", "ddim"], "z1.npy")
    let z2 = try run(
      ["--device", "cpu", "--noise", noise.path, "--sampler", "ddim", "--seed", "99"], "z2.npy")
    XCTAssertEqual(z1, z2)
  }

  func testBadInputGivesAClearErrorAndExitStatus2() throws {
    let d = try tmp()
    let out = d.appendingPathComponent("g.png").path
    // A broken model folder: config that is not JSON, then weights cut short.
    let broken = d.appendingPathComponent("broken")
    try FileManager.default.createDirectory(at: broken, withIntermediateDirectories: true)
    try Data("{ not json".utf8).write(to: broken.appendingPathComponent("config.json"))
    let unconditional = d.appendingPathComponent("uncond")
    try FileManager.default.createDirectory(at: unconditional, withIntermediateDirectories: true)
    let def = try DefaultModel.url().appendingPathComponent("unet")
    var cfg = try XCTUnwrap(
      JSONSerialization.jsonObject(with: Data(contentsOf: def.appendingPathComponent("config.json")))
        as? [String: Any])
    cfg["num_class_embeds"] = NSNull()
    cfg["_gpugen_null_class"] = nil  // no class embedding: no null label either
    try JSONSerialization.data(withJSONObject: cfg).write(
      to: unconditional.appendingPathComponent("config.json"))
    let weights = try SafeTensors.read(
      contentsOf: def.appendingPathComponent("diffusion_pytorch_model.safetensors"))
    try SafeTensors.write(
      weights.order.filter { $0 != "class_embedding.weight" }.map { ($0, weights.tensors[$0]!) },
      to: unconditional.appendingPathComponent("diffusion_pytorch_model.safetensors"))
    let truncated = d.appendingPathComponent("truncated")
    try FileManager.default.createDirectory(at: truncated, withIntermediateDirectories: true)
    try FileManager.default.copyItem(
      at: def.appendingPathComponent("config.json"), to: truncated.appendingPathComponent("config.json"))
    let bytes = try Data(contentsOf: def.appendingPathComponent("diffusion_pytorch_model.safetensors"))
    try bytes.prefix(bytes.count / 2).write(
      to: truncated.appendingPathComponent("diffusion_pytorch_model.safetensors"))
    let wrongNoise = d.appendingPathComponent("noise.npy")
    try NPY.write([Float](repeating: 0, count: 2 * 28 * 28), shape: [2, 1, 28, 28], to: wrongNoise)

    let cases: [([String], String)] = [
      (["--model", d.appendingPathComponent("nope").path], "missing model folder"),
      (["--model", broken.path], "malformed"),
      (["--model", truncated.path], "truncated"),
      (["--sampler", "plms"], "unknown sampler"),
      (["--model", unconditional.path, "--class", "3"], "not class-conditional"),
      (["--class", "12"], "out of range"),
      (["--class", "x"], "--class"),
      (["--noise", wrongNoise.path, "--n", "3"], "shape"),
      (["--noise", d.appendingPathComponent("none.npy").path], "missing"),
      (["--steps", "0"], "--steps"),
      (["--karras", "--sampler", "ddim"], "--karras"),
    ]
    for (args, needle) in cases {
      let (status, _, err) = try gpugen(
        ["sample", "--n", "2", "--steps", "2", "--device", "cpu", "--out", out] + args)
      XCTAssertEqual(status, 2, "\(args): \(err)")
      XCTAssertTrue(err.contains("error") && err.contains(needle), "\(args): \(err)")
      XCTAssertFalse(err.contains("Fatal error") || err.contains("Stack dump"), "\(args) crashed: \(err)")
    }
    // The unconditional model itself samples fine.
    let (ok, _, err) = try gpugen([
      "sample", "--model", unconditional.path, "--n", "2", "--steps", "2", "--device", "cpu", "--out", out,
    ])
    XCTAssertEqual(ok, 0, err)
  }
}
