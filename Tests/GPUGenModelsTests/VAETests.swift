// The VAE family end to end: the ConvVAE reference architecture, the ELBO and its bounds, training with
// bitwise resume, and every command's handling of bad input (exit status 2), as a user runs them.
import Foundation
import XCTest

@testable import GPUGenModels

final class VAETests: XCTestCase {
  func tmp() throws -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("gpugen-vae-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: d) }
    return d
  }

  /// A tiny IDX data set (48 images of 8×8, 3 classes) and a small ConvVAE config, in `dir`.
  func fixture(in dir: URL, likelihood: String = "bernoulli") throws -> (data: String, config: String) {
    func be32(_ v: Int) -> [UInt8] { [24, 16, 8, 0].map { UInt8((v >> $0) & 0xFF) } }
    let n = 48
    var images: [UInt8] = [0, 0, 8, 3] + be32(n) + be32(8) + be32(8)
    var labels: [UInt8] = [0, 0, 8, 1] + be32(n)
    for i in 0..<n {
      let c = i % 3
      labels.append(UInt8(c))
      for y in 0..<8 {
        for x in 0..<8 {
          images.append(UInt8(min(255, (c == 0 ? x * 32 : c == 1 ? y * 32 : (x + y) * 16) + i % 5)))
        }
      }
    }
    let data = dir.appendingPathComponent("toy-images-idx3-ubyte")
    try Data(images).write(to: data)
    try Data(labels).write(to: dir.appendingPathComponent("toy-labels-idx1-ubyte"))
    let config = dir.appendingPathComponent("vae.json")
    try Data(
      """
      {"_class_name": "ConvVAE", "in_channels": 1, "sample_size": 8, "block_out_channels": [4, 8],
       "latent_dim": 3, "likelihood": "\(likelihood)", "norm": "none"}
      """.utf8
    ).write(to: config)
    return (data.path, config.path)
  }

  func trainArgs(_ f: (data: String, config: String), out: URL, steps: Int, extra: [String] = []) -> [String]
  {
    [
      "train", "vae", "--data", f.data, "--config", f.config, "--steps", "\(steps)", "--batch-size", "8",
      "--checkpoint-every", "4", "--sample-every", "0", "--device", "cpu", "--seed", "3", "--out", out.path,
    ] + extra
  }

  // MARK: Architecture

  func testReferenceConvVAEMatchesThePyTorchModuleTree() throws {
    let m = try ConvVAE(config: ConvVAEConfig(), on: .cpu)
    let shapes = Dictionary(uniqueKeysWithValues: m.namedParameters.map { ($0.name, $0.tensor.shape) })
    XCTAssertEqual(
      shapes,
      [
        "encoder.0.weight": [32, 1, 4, 4], "encoder.0.bias": [32], "encoder.2.weight": [64, 32, 4, 4],
        "encoder.2.bias": [64], "encoder.5.weight": [32, 3136], "encoder.5.bias": [32],
        "decoder.0.weight": [3136, 16], "decoder.0.bias": [3136], "decoder.3.weight": [64, 32, 4, 4],
        "decoder.3.bias": [32], "decoder.5.weight": [32, 1, 4, 4], "decoder.5.bias": [1],
      ])
    XCTAssertEqual(m.parameterCount, 220_385)
    let x = try Tensor.randomUniform(shape: [3, 1, 28, 28], seed: 1)
    let (mu, lv) = try m.encode(x)
    XCTAssertEqual(mu.shape, [3, 16])
    XCTAssertEqual(lv.shape, [3, 16])
    XCTAssertEqual(try m.decode(mu).shape, [3, 1, 28, 28])
    // Gaussian with a learned σ adds log_sigma; batch norm adds buffers.
    var g = ConvVAEConfig()
    (g.likelihood, g.norm) = ("gaussian", "batch")
    let gm = try ConvVAE(config: g, on: .cpu)
    XCTAssertNotNil(gm.namedParameters.first { $0.name == "log_sigma" })
    XCTAssertTrue(gm.namedBuffers.contains { $0.name == "encoder.1.running_mean" })
  }

  func testConfigRejectsUnknownFieldsAndBadValues() throws {
    for (json, word) in [
      (#"{"_class_name": "ConvVAE", "latent_dims": 4}"#, "latent_dims"),
      (#"{"_class_name": "ConvVAE", "likelihood": "laplace"}"#, "laplace"),
      (#"{"_class_name": "ConvVAE", "sample_size": 30}"#, "sample_size"),
      (#"{"_class_name": "Other"}"#, "Other"),
    ] {
      XCTAssertThrowsError(try ConvVAEConfig(json: Data(json.utf8))) { e in
        XCTAssertTrue("\(e)".contains(word), "\(e)")
      }
    }
  }

  // MARK: Loss and bounds

  func testNegativeELBOMatchesItsDefinitionAndTheAnalyticKL() throws {
    var c = ConvVAEConfig()
    (c.sampleSize, c.blockOutChannels, c.latentDim) = (8, [4, 8], 3)
    let m = try ConvVAE(config: c, seed: 2, on: .cpu)
    let x = try Tensor.randomUniform(shape: [4, 1, 8, 8], seed: 9)
    let eps = try Tensor.randomNormal(shape: [4, 3], seed: 10)
    let t = try m.negativeELBO(x, noise: eps, beta: 0.5)
    // Recompute in Double on the host.
    let (mu, lv) = try m.encode(x)
    let z = try mu + (lv * 0.5).exp() * eps
    let logits = try m.decode(z).toArray(), xs = try x.toArray()
    var rec = 0.0
    for (l, v) in zip(logits, xs) {
      let l = Double(l), v = Double(v)
      rec += max(l, 0) - l * v + log(1 + exp(-abs(l)))
    }
    rec /= 4
    var kl = 0.0
    for (a, b) in zip(try mu.toArray(), try lv.toArray()) {
      kl += 0.5 * (Double(a * a) + exp(Double(b)) - Double(b) - 1)
    }
    kl /= 4
    XCTAssertEqual(Double(t.reconstruction), rec, accuracy: 1e-3 * rec)
    XCTAssertEqual(Double(t.kl), kl, accuracy: 1e-4 * max(kl, 1))
    XCTAssertEqual(Double(try t.loss.toArray()[0]), rec + 0.5 * kl, accuracy: 1e-3 * rec)
    // Free bits: each dimension's batch KL counts at least λ.
    let fb = try m.negativeELBO(x, noise: eps, beta: 1, freeBits: 100)
    XCTAssertEqual(Double(try fb.loss.toArray()[0]), rec + 300, accuracy: 1e-3 * (rec + 300))
    // KL warm-up.
    XCTAssertEqual(ELBOOptions(beta: 2, klWarmup: 10).beta(atStep: 5), 1, accuracy: 1e-12)
    XCTAssertEqual(ELBOOptions(beta: 2, klWarmup: 10).beta(atStep: 50), 2, accuracy: 1e-12)
  }

  func testBoundsAreOrderedELBOBelowIWAE50BelowIWAE5000() throws {
    let d = try tmp()
    let f = try fixture(in: d)
    var c = try ConvVAEConfig(json: Data(contentsOf: URL(fileURLWithPath: f.config)))
    c.latentDim = 2
    var data = try TrainingImages.load(source: f.data, sampleSize: 8, channels: 1)
    (data.count, data.images) = (12, Array(data.images.prefix(12 * 64)))
    for device in try Device.all() {
      let m = try ConvVAE(config: c, seed: 4, on: device)
      m.eval()
      let r = try VAEOps.likelihood(m, data: data, samples: 5000, ks: [1, 50, 5000], seed: 1, device: device)
      let i50 = try XCTUnwrap(r.iwaeNats["50"]), i5000 = try XCTUnwrap(r.iwaeNats["5000"])
      XCTAssertLessThan(r.elboNats, i50, "\(device)")
      XCTAssertLessThan(i50, i5000, "\(device)")
      XCTAssertEqual(r.images, 12)
      XCTAssertEqual(r.posteriorMeanVariance.count, 2)
      XCTAssertGreaterThan(r.bitsPerDim(r.elboNats), r.bitsPerDim(i5000))
    }
  }

  func testLikelihoodSeedKeysTheBinarisationAndTheDraws() throws {
    let d = try tmp()
    let f = try fixture(in: d)
    let c = try ConvVAEConfig(json: Data(contentsOf: URL(fileURLWithPath: f.config)))
    let data = try TrainingImages.load(source: f.data, sampleSize: 8, channels: 1)
    let m = try ConvVAE(config: c, seed: 4, on: .cpu)
    m.eval()
    let a = try VAEOps.likelihood(m, data: data, samples: 4, ks: [4], seed: 1, device: .cpu)
    let b = try VAEOps.likelihood(m, data: data, samples: 4, ks: [4], seed: 1, device: .cpu)
    let other = try VAEOps.likelihood(m, data: data, samples: 4, ks: [4], seed: 2, device: .cpu)
    XCTAssertEqual(a.elboNats, b.elboNats)
    XCTAssertNotEqual(a.elboNats, other.elboNats)
  }

  func testPriorSamplesDependOnlyOnSeedAndIndex() throws {
    var c = ConvVAEConfig()
    (c.sampleSize, c.blockOutChannels, c.latentDim) = (8, [4, 8], 3)
    for device in try Device.all() {
      let m = try ConvVAE(config: c, seed: 1, on: device)
      m.eval()
      let a = try VAEOps.sample(m, count: 7, batchSize: 7, seed: 5, temperature: 1, device: device)
      let b = try VAEOps.sample(m, count: 7, batchSize: 3, seed: 5, temperature: 1, device: device)
      let other = try VAEOps.sample(m, count: 7, batchSize: 7, seed: 6, temperature: 1, device: device)
      let cold = try VAEOps.sample(m, count: 7, batchSize: 7, seed: 5, temperature: 0.1, device: device)
      for (u, v) in zip(a, b) { XCTAssertEqual(u, v, accuracy: 1e-6) }
      XCTAssertNotEqual(a, other)
      XCTAssertNotEqual(a, cold)
    }
  }

  // MARK: Training

  func testTrainingLowersTheLossAndResumesBitwise() throws {
    let d = try tmp()
    let f = try fixture(in: d)
    let straight = d.appendingPathComponent("straight"), split = d.appendingPathComponent("split")
    let (s0, _, e0) = try runGpugen(trainArgs(f, out: straight, steps: 24, extra: ["--lr", "3e-3"]))
    XCTAssertEqual(s0, 0, e0)
    let (s1, _, e1) = try runGpugen(trainArgs(f, out: split, steps: 10, extra: ["--lr", "3e-3"]))
    XCTAssertEqual(s1, 0, e1)
    // A changed learning rate (or schedule) with --resume is refused, naming the flag; the saved one is accepted.
    for (flag, value) in [("--lr", "0.0001"), ("--lr-schedule", "cosine"), ("--ema-decay", "0.5")] {
      let (s, _, e) = try runGpugen([
        "train", "vae", "--resume", "--steps", "24", "--out", split.path, "--device", "cpu", flag, value,
      ])
      XCTAssertEqual(s, 2, e)
      XCTAssertTrue(e.contains("\(flag) \(value)") && e.contains("started with"), e)
    }
    let (s2, _, e2) = try runGpugen([
      "train", "vae", "--resume", "--steps", "24", "--out", split.path, "--device", "cpu", "--lr", "0.003",
    ])
    XCTAssertEqual(s2, 0, e2)
    for file in [
      ModelFolder.weightsFile, "training_state/model.safetensors", "training_state/optimizer.safetensors",
    ] {
      let a = try Data(contentsOf: try CheckpointWriter.latest(in: straight).appendingPathComponent(file))
      let b = try Data(contentsOf: try CheckpointWriter.latest(in: split).appendingPathComponent(file))
      XCTAssertEqual(a, b, "\(file) differs after resume")
    }
    let rows = try String(contentsOf: straight.appendingPathComponent("log.csv"), encoding: .utf8)
      .split(separator: "\n")
    XCTAssertEqual(rows.first, "step,loss,reconstruction,kl,beta,grad_norm,lr,seconds,rss_mb,peak_rss_mb")
    XCTAssertEqual(rows.count, 25)
    let loss = rows.dropFirst().map { Double($0.split(separator: ",")[1])! }
    XCTAssertLessThan(loss.suffix(4).reduce(0, +), loss.prefix(4).reduce(0, +))
    XCTAssertTrue(FileManager.default.fileExists(atPath: straight.appendingPathComponent("loss.png").path))
    // The checkpoint is a model folder every VAE command reads.
    let ck = straight.appendingPathComponent("checkpoint").path
    let png = d.appendingPathComponent("s.png").path
    let (s3, o3, e3) = try runGpugen(["sample", "--model", ck, "--n", "6", "--out", png, "--device", "cpu"])
    XCTAssertEqual(s3, 0, e3)
    XCTAssertTrue(o3.contains("6 images"))
  }

  func testAutoencoderKLTrainsResumesAndIsScoredInItsRange() throws {
    let d = try tmp()
    let f = try fixture(in: d)
    let config = d.appendingPathComponent("akl.json")
    try Data(
      """
      {"_class_name": "AutoencoderKL", "in_channels": 1, "out_channels": 1, "sample_size": 8,
       "block_out_channels": [4, 8], "layers_per_block": 1, "norm_num_groups": 4, "latent_channels": 2,
       "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
       "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"]}
      """.utf8
    ).write(to: config)
    let args = { (out: URL, steps: Int) in
      [
        "train", "vae", "--arch", "autoencoder-kl", "--config", config.path, "--data", f.data, "--steps",
        "\(steps)",
        "--batch-size", "4", "--checkpoint-every", "2", "--sample-every", "0", "--device", "cpu", "--out",
        out.path,
      ]
    }
    let a = d.appendingPathComponent("a"), b = d.appendingPathComponent("b")
    XCTAssertEqual(try runGpugen(args(a, 4)).0, 0)
    XCTAssertEqual(try runGpugen(args(b, 2)).0, 0)
    let (s, _, e) = try runGpugen([
      "train", "vae", "--resume", "--steps", "4", "--out", b.path, "--device", "cpu",
    ])
    XCTAssertEqual(s, 0, e)
    let wa = try Data(
      contentsOf: try CheckpointWriter.latest(in: a).appendingPathComponent(
        "training_state/model.safetensors"))
    let wb = try Data(
      contentsOf: try CheckpointWriter.latest(in: b).appendingPathComponent(
        "training_state/model.safetensors"))
    XCTAssertEqual(wa, wb)
    // Without --arch the config's _class_name picks the architecture.
    let c = d.appendingPathComponent("c0")
    var noArch = args(c, 1)
    noArch.removeSubrange(2..<4)
    XCTAssertEqual(try runGpugen(noArch).0, 0)
    XCTAssertEqual(try VAEArchitecture.read(try CheckpointWriter.latest(in: c)).sampleSize, 8)
    XCTAssertNotNil(
      try? AutoencoderKLConfig(json: Data(contentsOf: c.appendingPathComponent("checkpoint/config.json"))))
    let model = try ModelFolder.loadVAE(
      try ModelFolder.classify(a.appendingPathComponent("checkpoint")), device: .cpu)
    XCTAssertEqual(model.latentShape, [2, 4, 4])
    let data = try TrainingImages.load(source: f.data, sampleSize: 8, channels: 1)
    let r = try VAEOps.likelihood(model, data: data, samples: 4, ks: [1, 4], seed: 0, device: .cpu)
    XCTAssertLessThan(r.elboNats, try XCTUnwrap(r.iwaeNats["4"]))
    XCTAssertEqual(r.data, "8-bit, uniform dequantisation")
    let (s2, _, e2) = try runGpugen(
      [
        "train", "vae", "--arch", "autoencoder-kl", "--likelihood", "bernoulli", "--out",
        d.appendingPathComponent("c").path,
      ])
    XCTAssertEqual(s2, 2)
    XCTAssertTrue(e2.contains("Gaussian"), e2)
  }

  /// Every `train vae` flag changes the run: latent size, binarisation, β, KL warm-up and free bits.
  func testTrainingFlagsReachTheRun() throws {
    let d = try tmp()
    let f = try fixture(in: d)
    func run(_ name: String, _ extra: [String]) throws -> [[Double]] {
      let out = d.appendingPathComponent(name)
      let (s, _, e) = try runGpugen(trainArgs(f, out: out, steps: 4, extra: extra))
      XCTAssertEqual(s, 0, e)
      return try String(contentsOf: out.appendingPathComponent("log.csv"), encoding: .utf8).split(
        separator: "\n"
      )
      .dropFirst().map { $0.split(separator: ",").map { Double($0)! } }
    }
    // Columns: step, loss, reconstruction, kl, beta, grad_norm, lr, …
    let base = try run("base", [])
    let latent = try run("latent", ["--latent-dim", "5"])
    let cfg = try ConvVAEConfig(
      json: Data(contentsOf: d.appendingPathComponent("latent/checkpoint/config.json")))
    XCTAssertEqual(cfg.latentDim, 5)
    XCTAssertNotEqual(latent[0][1], base[0][1])
    let binarised = try run("bin", ["--binarize"])
    XCTAssertNotEqual(binarised[0][2], base[0][2])
    let warm = try run("warm", ["--kl-warmup", "4", "--beta", "2"])
    XCTAssertEqual(warm.map { $0[4] }, [0.5, 1, 1.5, 2])
    XCTAssertEqual(warm[0][1], warm[0][2] + 0.5 * warm[0][3], accuracy: 1e-3)
    let free = try run("free", ["--free-bits", "3"])
    XCTAssertEqual(free[0][1], free[0][2] + max(free[0][3], 9), accuracy: 0.05)  // 3 dims × 3 nats floor
    XCTAssertEqual(base[0][4], 1)
  }

  /// `--model vae` is the bundled ConvVAE; a folder named `vae` in the working directory wins over it.
  func testBundledVAEByNameAndALocalFolderWins() throws {
    let d = try tmp()
    let png = d.appendingPathComponent("b.png").path
    let (s0, o0, e0) = try runGpugen([
      "sample", "--model", "vae", "--n", "4", "--out", png, "--device", "cpu",
    ])
    XCTAssertEqual(s0, 0, e0)
    XCTAssertTrue(o0.contains("4 images"), o0)
    let bundled = try Image8.readPNG(from: URL(fileURLWithPath: png), channels: 1)
    XCTAssertEqual(bundled.width, bundled.height)
    // The bundled VAE is a reference ConvVAE.
    let vae = try ModelFolder.loadVAE(
      try ModelFolder.classify(try ModelFolder.locate("vae")), device: .cpu)
    XCTAssertEqual(vae.imageShape, [1, 28, 28])
    XCTAssertEqual(vae.latentShape, [16])
    // A local ./vae folder (a tiny 8×8 model) is used instead.
    let f = try fixture(in: d)
    let (s1, _, e1) = try runGpugen(trainArgs(f, out: d.appendingPathComponent("run"), steps: 2))
    XCTAssertEqual(s1, 0, e1)
    try FileManager.default.copyItem(
      at: try CheckpointWriter.latest(in: d.appendingPathComponent("run")),
      to: d.appendingPathComponent("vae"))
    let p = Process()
    p.executableURL = try XCTUnwrap(
      [
        Bundle(for: Self.self).bundleURL.deletingLastPathComponent(),
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
      ]
      .map { $0.appendingPathComponent("gpugen") }.first {
        FileManager.default.isExecutableFile(atPath: $0.path)
      })
    p.arguments = [
      "sample", "--model", "vae", "--n", "2", "--npy", "local.npy", "--out", "local.png", "--device", "cpu",
    ]
    p.currentDirectoryURL = d
    p.standardError = Pipe()
    p.standardOutput = Pipe()
    try p.run()
    p.waitUntilExit()
    XCTAssertEqual(p.terminationStatus, 0)
    XCTAssertEqual(try NPY.read(from: d.appendingPathComponent("local.npy")).shape, [2, 1, 8, 8])
  }

  func testDivergenceStopsWithStatus3() throws {
    let d = try tmp()
    let f = try fixture(in: d, likelihood: "gaussian")
    let out = d.appendingPathComponent("run")
    let (s, _, e) = try runGpugen(trainArgs(f, out: out, steps: 40, extra: ["--lr", "1e30"]))
    XCTAssertEqual(s, 3, e)
    XCTAssertTrue(e.contains("diverged"), e)
    XCTAssertNoThrow(try CheckpointWriter.latest(in: out))
  }

  // MARK: Bad input

  func testBadInputIsAClearErrorWithStatus2() throws {
    let d = try tmp()
    let f = try fixture(in: d)
    let out = d.appendingPathComponent("run")
    let (s0, _, e0) = try runGpugen(trainArgs(f, out: out, steps: 4))
    XCTAssertEqual(s0, 0, e0)
    let model = out.appendingPathComponent("checkpoint").path
    // A 28×28 PNG for an 8×8 model; a latent file of the wrong shape.
    let bigPNG = d.appendingPathComponent("big.png")
    try Image8(width: 28, height: 28, channels: 1, pixels: [UInt8](repeating: 9, count: 784)).writePNG(
      to: bigPNG)
    let rgbPNG = d.appendingPathComponent("rgb.png")
    try Image8(width: 8, height: 8, channels: 3, pixels: [UInt8](repeating: 9, count: 192)).writePNG(
      to: rgbPNG)
    let badZ = d.appendingPathComponent("z.npy")
    try NPY.write([Float](repeating: 0, count: 10), shape: [2, 5], to: badZ)
    // An unknown _class_name; an unsupported field; weights with a missing tensor.
    func folder(_ name: String, config: String, dropWeight: String? = nil) throws -> String {
      let dir = d.appendingPathComponent(name)
      try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
      try Data(config.utf8).write(to: dir.appendingPathComponent("config.json"))
      var w = try SafeTensors.read(
        contentsOf: URL(fileURLWithPath: model).appendingPathComponent(ModelFolder.weightsFile))
      if let dropWeight { w.tensors[dropWeight] = nil }
      try SafeTensors.write(
        w.tensors.map { ($0.key, $0.value) }, to: dir.appendingPathComponent(ModelFolder.weightsFile))
      return dir.path
    }
    let cfg = try String(
      contentsOf: URL(fileURLWithPath: model).appendingPathComponent("config.json"), encoding: .utf8)
    let unknownClass = try folder(
      "unknown", config: cfg.replacingOccurrences(of: "\"ConvVAE\"", with: "\"VQModel\""))
    let extraField = try folder(
      "extra", config: cfg.replacingOccurrences(of: "{", with: "{\"dropout\": 0.1,"))
    let missing = try folder("missing", config: cfg, dropWeight: "decoder.0.bias")
    let cases: [([String], String)] = [
      (["encode", "--model", model, "--images", bigPNG.path, "--out", badZ.path], "28×28"),
      (["reconstruct", "--model", model, "--images", bigPNG.path], "8×8"),
      (["encode", "--model", model, "--images", rgbPNG.path], "3 channels"),
      (["interpolate", "--model", model, "--from", bigPNG.path, "--to", bigPNG.path], "--resize"),
      (["decode", "--model", model, "--latents", badZ.path], "[2, 5]"),
      (["sample", "--model", model, "--sampler", "ddim"], "--sampler"),
      (["sample", "--model", model, "--steps", "10"], "--steps"),
      (["sample", "--model", model, "--temperature", "0"], "--temperature"),
      (["sample", "--model", model, "--temperature=-1"], "--temperature"),
      (["likelihood", "--model", model, "--k", "0"], "--k"),
      (["sample", "--model", unknownClass], "VQModel"),
      (["sample", "--model", extraField], "dropout"),
      (["sample", "--model", missing], "decoder.0.bias"),
      (["sample", "--model", d.path], "not a model folder"),
      (["encode", "--model", "no-such-model", "--data", "fashion-mnist:test:4"], "no-such-model"),
    ]
    for (args, word) in cases {
      let (s, _, e) = try runGpugen(args + ["--device", "cpu"])
      XCTAssertEqual(s, 2, "\(args): \(e)")
      XCTAssertTrue(e.contains(word), "\(args): expected '\(word)' in: \(e)")
    }
    // With --resize the same PNG is accepted.
    let (s1, _, e1) = try runGpugen([
      "encode", "--model", model, "--images", bigPNG.path, "--resize", "--out",
      d.appendingPathComponent("ok.npy").path,
      "--device", "cpu",
    ])
    XCTAssertEqual(s1, 0, e1)
    let z = try NPY.read(from: d.appendingPathComponent("ok.npy"))
    XCTAssertEqual(z.shape, [1, 3])
  }

  func testEncodeDecodeInterpolateRoundTrip() throws {
    let d = try tmp()
    let f = try fixture(in: d)
    let out = d.appendingPathComponent("run")
    let (s0, _, e0) = try runGpugen(trainArgs(f, out: out, steps: 8))
    XCTAssertEqual(s0, 0, e0)
    let model = out.appendingPathComponent("checkpoint").path
    let z = d.appendingPathComponent("z.npy").path, zs = d.appendingPathComponent("zs.npy").path
    for (args, status) in [
      (["encode", "--model", model, "--data", "\(f.data):5", "--out", z], Int32(0)),
      (["encode", "--model", model, "--data", "\(f.data):5", "--out", zs, "--sample"], 0),
      (
        [
          "decode", "--model", model, "--latents", z, "--npy", d.appendingPathComponent("x.npy").path,
          "--out",
          d.appendingPathComponent("x.png").path,
        ], 0
      ),
      (
        [
          "reconstruct", "--model", model, "--data", f.data, "--n", "6", "--out",
          d.appendingPathComponent("r.png").path,
        ], 0
      ),
      (
        [
          "interpolate", "--model", model, "--traverse", "--frames", "5", "--out",
          d.appendingPathComponent("t.png").path,
        ], 0
      ),
    ] {
      let (s, o, e) = try runGpugen(args + ["--device", "cpu"])
      XCTAssertEqual(s, status, "\(args): \(e)")
      if args[0] == "reconstruct" { XCTAssertTrue(o.contains("MSE"), o) }
    }
    let mean = try NPY.read(from: URL(fileURLWithPath: z)),
      draw = try NPY.read(from: URL(fileURLWithPath: zs))
    XCTAssertEqual(mean.shape, [5, 3])
    XCTAssertNotEqual(mean.values, draw.values, "--sample must draw from the posterior")
    let x = try NPY.read(from: d.appendingPathComponent("x.npy"))
    XCTAssertEqual(x.shape, [5, 1, 8, 8])
    XCTAssertTrue(x.values.allSatisfy { $0 >= -1 && $0 <= 1 })
    // Slerp and linear paths share their ends and differ in between.
    let a: [Float] = [1, 0, 0], b: [Float] = [0, 1, 0]
    let lin = VAEOps.interpolate(a, b, frames: 3, slerp: false),
      sph = VAEOps.interpolate(a, b, frames: 3, slerp: true)
    XCTAssertEqual(lin[0], a)
    XCTAssertEqual(sph[2][1], 1, accuracy: 1e-6)
    XCTAssertEqual(sph[1][0], Float(0.5.squareRoot()), accuracy: 1e-6)
    XCTAssertEqual(lin[1][0], 0.5, accuracy: 1e-6)
  }
}

/// The model framework under the existing families: the UNet's and the classifier's module trees carry their
/// diffusers/PyTorch names, and their initialisation is docs/TRAINING.md's rule.
final class ModuleMigrationTests: XCTestCase {
  /// docs/TRAINING.md's rule, written out: parameter i in name order draws from stream 20 + i; weights of
  /// rank ≥ 2 and their biases U(±1/√fan_in), class embeddings N(0, 1), norms 1 and 0.
  func documentedInitialWeights(_ shapes: [String: [Int]], seed: UInt64) throws -> [String: [Float]] {
    var out: [String: [Float]] = [:]
    for (i, name) in shapes.keys.sorted().enumerated() {
      let shape = shapes[name]!
      let count = shape.reduce(1, *)
      let stream = 20 + i
      if name == "class_embedding.weight" {
        out[name] = try Init.normalValues(count: count, seed: seed, stream: stream)
      } else if name.hasSuffix(".weight") && shape.count >= 2 {
        let bound = Float(1 / Double(shape.dropFirst().reduce(1, *)).squareRoot())
        out[name] = try Init.uniformValues(count: count, bound: bound, seed: seed, stream: stream)
      } else if name.hasSuffix(".bias"), let w = shapes[String(name.dropLast(5)) + ".weight"], w.count >= 2 {
        let bound = Float(1 / Double(w.dropFirst().reduce(1, *)).squareRoot())
        out[name] = try Init.uniformValues(count: count, bound: bound, seed: seed, stream: stream)
      } else {
        out[name] = [Float](repeating: name.hasSuffix(".weight") ? 1 : 0, count: count)
      }
    }
    return out
  }

  func testUNetIsAModuleWithDiffusersNamesAndTheDocumentedInitialisation() throws {
    var config = ReferenceUNet.config
    config.numClassEmbeds = 3
    let w = try DiffusionTrainer.initialWeights(config: config, seed: 11)
    let expected = try documentedInitialWeights(w.mapValues(\.shape), seed: 11)
    XCTAssertEqual(Set(w.keys), Set(expected.keys))
    for (name, values) in expected { XCTAssertEqual(w[name]?.values, values, name) }
    let unet = try UNet2D(
      config: config, weights: { name, _ in w[name].map { ($0.shape, $0.values) } }, names: Array(w.keys),
      device: .cpu)
    XCTAssertEqual(Set(unet.namedParameters.map(\.name)), Set(w.keys))
    XCTAssertEqual(unet.namedParameters.map(\.name).sorted(), unet.parameters.map(\.name).sorted())
    XCTAssertTrue(unet.namedParameters.contains { $0.name == "down_blocks.2.attentions.0.to_out.0.weight" })
    XCTAssertTrue(unet.namedParameters.contains { $0.name == "down_blocks.0.downsamplers.0.conv.weight" })
    XCTAssertEqual(unet.parameterCount, w.values.reduce(0) { $0 + $1.values.count })
    // Module's strict load names what is wrong.
    var bad = w.mapValues { $0 }
    bad["conv_in.weight"] = nil
    XCTAssertThrowsError(try unet.load(bad)) { XCTAssertTrue("\($0)".contains("conv_in.weight"), "\($0)") }
  }

  func testClassifierIsAModuleWithTheSameInitialisation() throws {
    let config = ClassifierConfig(imageSize: 12, convChannels: [4, 8, 8], featureDim: 16)
    let net = try ImageClassifier(config: config, seed: 5, device: .cpu)
    let shapes = Dictionary(uniqueKeysWithValues: config.parameterShapes.map { ($0.name, $0.shape) })
    let expected = try documentedInitialWeights(shapes, seed: 5)
    XCTAssertEqual(net.names, shapes.keys.sorted())
    for (name, t) in net.namedParameters { XCTAssertEqual(try t.toArray(), expected[name], name) }
  }

  func testModuleSaveStoresItsDtype() throws {
    let net = try ImageClassifier(
      config: ClassifierConfig(imageSize: 12, convChannels: [4, 8, 8], featureDim: 16), seed: 1, device: .cpu)
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("gpugen-save-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: d) }
    let f32 = d.appendingPathComponent("a.safetensors"), f16 = d.appendingPathComponent("b.safetensors")
    try net.save(to: f32, dtype: .f32, metadata: [:])
    try net.save(to: f16, dtype: .f16, metadata: [:])
    let header = { (u: URL) in String(decoding: try Data(contentsOf: u).prefix(400), as: UTF8.self) }
    XCTAssertTrue(try header(f16).contains("\"F16\""))
    XCTAssertFalse(try header(f32).contains("\"F16\""))
    let a = try SafeTensors.read(contentsOf: f32).tensors, b = try SafeTensors.read(contentsOf: f16).tensors
    for (name, t) in a {
      for (u, v) in zip(t.values, b[name]!.values) { XCTAssertEqual(u, v, accuracy: 1e-3 * max(1, abs(u))) }
    }
  }

  func testTapesOnTwoThreadsDoNotSeeEachOther() throws {
    let errors = UnsafeMutableBufferPointer<Float>.allocate(capacity: 2)
    defer { errors.deallocate() }
    DispatchQueue.concurrentPerform(iterations: 2) { k in
      do {
        let x = try Tensor.full(Float(k + 2), shape: [4])
        let tape = Tape()
        var worst: Float = 0
        for _ in 0..<200 {
          tape.watch(x)  // gradients(of:) releases the tape, watched tensors included
          let y = try tape.record { try (x * x).sum() }
          let g = try XCTUnwrap(try tape.gradients(of: y, wrt: [x])[0]).toArray()
          worst = max(worst, g.map { abs($0 - 2 * Float(k + 2)) }.max()!)
        }
        errors[k] = worst
      } catch { errors[k] = .infinity }
    }
    XCTAssertEqual(errors[0], 0)
    XCTAssertEqual(errors[1], 0)
  }
}
