// `gpugen train gan` and `gpugen sample` with GAN folders, as a user runs them: the files a run writes, the
// collapse signal and samples on toy data, --resume (bitwise on the CPU), every train gan flag reaching the run,
// sampling options, divergence (exit status 3) and bad input (exit status 2 and a message naming the problem).
import Foundation
import XCTest

@testable import GPUGenModels

final class GANCommandTests: XCTestCase {
  func tmp() throws -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent(
      "gpugen-gancli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: d) }
    return d
  }

  /// `gpugen args --device cpu`.
  func gpugen(_ args: [String]) throws -> (Int32, String, String) {
    try runGpugen(args + ["--device", "cpu"])
  }

  /// A tiny {"generator", "discriminator"} config file: DCGAN widths [8, 16], latent 8.
  func config(in dir: URL, name: String = "gan.json", size: Int = 28, discriminatorSize: Int? = nil) throws
    -> String
  {
    let url = dir.appendingPathComponent(name)
    try Data(
      """
      {"generator": {"_class_name": "DCGANGenerator", "sample_size": \(size), "block_out_channels": [8, 16],
                     "latent_dim": 8},
       "discriminator": {"_class_name": "DCGANDiscriminator", "sample_size": \(discriminatorSize ?? size),
                         "block_out_channels": [8, 16]}}
      """.utf8
    ).write(to: url)
    return url.path
  }

  /// A tiny labelled IDX data set: 24 images of 8×8 in 3 classes.
  func fixture(in dir: URL, size: Int = 8) throws -> String {
    func be32(_ v: Int) -> [UInt8] { [24, 16, 8, 0].map { UInt8((v >> $0) & 0xFF) } }
    let n = 24
    var images: [UInt8] = [0, 0, 8, 3] + be32(n) + be32(size) + be32(size)
    var labels: [UInt8] = [0, 0, 8, 1] + be32(n)
    for i in 0..<n {
      let c = i % 3
      labels.append(UInt8(c))
      for y in 0..<size {
        for x in 0..<size {
          images.append(UInt8(min(255, (c == 0 ? x * 32 : c == 1 ? y * 32 : (x + y) * 16) + i % 5)))
        }
      }
    }
    let data = dir.appendingPathComponent("toy-images-idx3-ubyte")
    try Data(images).write(to: data)
    try Data(labels).write(to: dir.appendingPathComponent("toy-labels-idx1-ubyte"))
    return data.path
  }

  /// log.csv as a header and rows of numbers.
  func log(_ out: URL) throws -> (header: String, rows: [[Double]]) {
    let lines = try String(contentsOf: out.appendingPathComponent("log.csv"), encoding: .utf8)
      .split(separator: "\n")
    return (
      String(lines[0]), lines.dropFirst().map { $0.split(separator: ",").map { Double($0) ?? .nan } }
    )
  }

  /// collapse.csv as (step, signal, value) rows.
  func collapse(_ out: URL) throws -> [(step: Int, signal: String, value: Double)] {
    let lines = try String(contentsOf: out.appendingPathComponent("collapse.csv"), encoding: .utf8)
      .split(separator: "\n")
    XCTAssertEqual(lines.first, "step,signal,value")
    return lines.dropFirst().map { line in
      let f = line.split(separator: ",")
      return (Int(f[0]) ?? -1, String(f[1]), Double(f[2]) ?? -1)
    }
  }

  /// Every file under `dir` (relative path → contents).
  func files(_ dir: URL) throws -> [String: Data] {
    var out: [String: Data] = [:]
    let root = dir.resolvingSymlinksInPath().path
    let e = try XCTUnwrap(FileManager.default.enumerator(atPath: root))
    while let p = e.nextObject() as? String {
      var isDir: ObjCBool = false
      let full = root + "/" + p
      if FileManager.default.fileExists(atPath: full, isDirectory: &isDir), !isDir.boolValue {
        out[p] = try Data(contentsOf: URL(fileURLWithPath: full))
      }
    }
    return out
  }

  func exists(_ url: URL, _ path: String) -> Bool {
    FileManager.default.fileExists(atPath: url.appendingPathComponent(path).path)
  }

  // MARK: Training and sampling

  func testTrainOnFashionMNISTWritesAGANFolderLogAndPlot() throws {
    let d = try tmp()
    let out = d.appendingPathComponent("run")
    let (s, o, e) = try gpugen([
      "train", "gan", "--config", try config(in: d), "--data", "fashion-mnist", "--steps", "4",
      "--batch-size",
      "8", "--sample-every", "4", "--checkpoint-every", "2", "--seed", "1", "--out", out.path,
    ])
    XCTAssertEqual(s, 0, e)
    XCTAssertTrue(o.contains("trained 4 steps"), o)
    let ck = out.appendingPathComponent("checkpoint")
    for f in [
      "gan_config.json", "generator/config.json", "generator/diffusion_pytorch_model.safetensors",
      "discriminator/config.json", "discriminator/diffusion_pytorch_model.safetensors",
      "training_state/generator.safetensors", "training_state/optimizer_g.safetensors",
      "training_state/optimizer_d.safetensors", "training_state/state.json",
    ] {
      XCTAssertTrue(exists(ck, f), f)
    }
    XCTAssertEqual(try CheckpointWriter.latest(in: out).lastPathComponent, "checkpoint-00000004")
    XCTAssertTrue(exists(out, "loss.png"))
    XCTAssertTrue(exists(out, "samples/step-00000004.png"))
    XCTAssertEqual(try collapse(out).map(\.step), [4])
    XCTAssertEqual(try collapse(out).map(\.signal), ["class_entropy"])
    // The bundled classifier judged the samples: an entropy in [0, ln 10], not nan.
    for v in try collapse(out).map(\.value) {
      XCTAssertTrue(v >= 0 && v <= Foundation.log(10.0) + 1e-9, "class entropy \(v)")
    }
    XCTAssertFalse(e.contains("no classifier"), e)
    let (header, rows) = try log(out)
    XCTAssertTrue(
      header.hasPrefix("step,d_loss,g_loss,d_real,d_fake,grad_norm_d,grad_norm_g,"), header)
    XCTAssertEqual(rows.map { $0[0] }, [1, 2, 3, 4])
    for r in rows {
      XCTAssertGreaterThan(r[1], 0)  // the ns D loss
      for p in [r[3], r[4]] { XCTAssertTrue(p > 0 && p < 1, "D(x) and D(G(z)) are probabilities: \(r)") }
      XCTAssertGreaterThan(r[5], 0)
      XCTAssertGreaterThan(r[6], 0)
    }
    let saved = try GANTrainer.savedState(in: out)
    XCTAssertEqual(saved.model.latentDim, 8)
    XCTAssertEqual(saved.generator.blockOutChannels, [8, 16])
    XCTAssertEqual(saved.discriminator.norm, .batch)
    XCTAssertFalse(saved.model.conditional)
    // Every flag left out keeps the image default (the reference's learning rates, betas, EMA, ns loss, …).
    var defaults = GANTrainingOptions()
    (defaults.steps, defaults.batchSize, defaults.sampleEvery, defaults.checkpointEvery, defaults.seed) = (
      4, 8, 4, 2, 1
    )
    XCTAssertEqual(saved.options, defaults)

    // The checkpoint is a GAN folder `gpugen sample` reads: a grid and the samples as .npy.
    func sample(_ name: String, _ extra: [String] = []) throws -> [Float] {
      let npy = d.appendingPathComponent("\(name).npy")
      let (s, o, e) = try gpugen(
        [
          "sample", "--model", ck.path, "--n", "6", "--npy", npy.path, "--out",
          d.appendingPathComponent("\(name).png").path,
        ] + extra)
      XCTAssertEqual(s, 0, e)
      XCTAssertTrue(o.contains("6 samples"), o)
      XCTAssertTrue(exists(d, "\(name).png"))
      let a = try NPY.read(from: npy)
      XCTAssertEqual(a.shape, [6, 1, 28, 28])
      return a.values
    }
    let x = try sample("x")
    XCTAssertTrue(x.allSatisfy { $0 >= -1 && $0 <= 1 })
    for (u, v) in zip(x, try sample("b4", ["--batch-size", "4"])) { XCTAssertEqual(u, v, accuracy: 1e-6) }
    XCTAssertEqual(try sample("t1", ["--truncation", "1"]), x)
    XCTAssertNotEqual(try sample("t05", ["--truncation", "0.5"]), x)
    XCTAssertNotEqual(try sample("scale", ["--truncation", "0.5", "--truncation-mode", "scale"]), x)
    XCTAssertNotEqual(try sample("seed", ["--seed", "1"]), x)
  }

  /// Without a classifier (here: GPUGEN_DEFAULT_CLASSIFIER naming a missing folder) the run still trains, says
  /// once why the collapse signal is missing, and logs nan.
  func testMissingClassifierIsAWarningAndANanSignal() throws {
    let d = try tmp()
    let out = d.appendingPathComponent("run")
    let (s, _, e) = try runGpugen(
      [
        "train", "gan", "--config", try config(in: d), "--data", "fashion-mnist", "--steps", "4",
        "--batch-size",
        "8", "--sample-every", "2", "--out", out.path, "--device", "cpu",
      ], env: ["GPUGEN_DEFAULT_CLASSIFIER": d.appendingPathComponent("missing").path])
    XCTAssertEqual(s, 0, e)
    XCTAssertEqual(e.components(separatedBy: "no classifier for the collapse signal").count, 2, e)
    let signal = try collapse(out)
    XCTAssertEqual(signal.map(\.step), [2, 4])
    XCTAssertTrue(signal.allSatisfy { $0.value.isNaN })
  }

  func testToyRunLogsTheCollapseSignalSamplesAndResumes() throws {
    let d = try tmp()
    let out = d.appendingPathComponent("toy")
    let (s, _, e) = try gpugen([
      "train", "gan", "--data", "toy:ring8", "--steps", "20", "--sample-every", "10", "--checkpoint-every",
      "10",
      "--batch-size", "32", "--out", out.path,
    ])
    XCTAssertEqual(s, 0, e)
    let signal = try collapse(out)
    XCTAssertEqual(signal.map(\.step), [10, 20])
    XCTAssertEqual(signal.map(\.signal), ["modes_covered", "modes_covered"])
    for r in signal { XCTAssertTrue((0...8).contains(r.value) && r.value == r.value.rounded(), "\(r)") }
    for f in ["samples/step-00000010.png", "samples/step-00000020.png", "collapse.png", "loss.png"] {
      XCTAssertTrue(exists(out, f), f)
    }
    let saved = try GANTrainer.savedState(in: out)
    XCTAssertEqual(saved.generator.architecture, .mlp)
    XCTAssertEqual(saved.model.data, "toy:ring8")

    // A scatter plot and (N, 2) points.
    let npy = d.appendingPathComponent("p.npy"), png = d.appendingPathComponent("s.png")
    let (s1, o1, e1) = try gpugen([
      "sample", "--model", out.appendingPathComponent("checkpoint").path, "--n", "50", "--npy", npy.path,
      "--out", png.path,
    ])
    XCTAssertEqual(s1, 0, e1)
    XCTAssertTrue(o1.contains("toy:ring8") && o1.contains("/8") && o1.contains("50 samples"), o1)
    XCTAssertEqual(try NPY.read(from: npy).shape, [50, 2])
    XCTAssertTrue(FileManager.default.fileExists(atPath: png.path))

    // A flag that would change the saved run is refused with --resume (never silently ignored), and nothing is
    // trained or written; one equal to the saved value is accepted.
    let before = try log(out).rows.count
    // The toy default schedule is cosine: the other one.
    let other = GANTrainingOptions.toyDefaults().lrSchedule == "cosine" ? "constant" : "cosine"
    for (flags, needle) in [
      (["--lr-schedule", other], "--lr-schedule \(other)"), (["--lr-d", "0.5"], "--lr-d 0.5"),
      (["--loss", "hinge"], "--loss hinge"), (["--betas", "0.9,0.99"], "--betas 0.9,0.99"),
      (["--batch-size", "7"], "--batch-size 7"), (["--seed", "3"], "--seed 3"),
    ] {
      let (s, _, e) = try gpugen(["train", "gan", "--resume", "--steps", "30", "--out", out.path] + flags)
      XCTAssertEqual(s, 2, "\(flags): \(e)")
      XCTAssertTrue(e.contains(needle) && e.contains("--resume keeps a run's options"), e)
      XCTAssertEqual(try log(out).rows.count, before)
    }
    // --resume continues to the new total, with new checkpoint and sample intervals (saved for the next resume).
    let schedule = try GANTrainer.savedState(in: out).options.lrSchedule
    let (s2, o2, e2) = try gpugen([
      "train", "gan", "--resume", "--steps", "30", "--out", out.path, "--lr-schedule", schedule,
      "--checkpoint-every", "4", "--sample-every", "5",
    ])
    XCTAssertEqual(s2, 0, e2)
    XCTAssertTrue(o2.contains("trained 10 steps"), o2)
    XCTAssertEqual(try log(out).rows.map { Int($0[0]) }, Array(1...30))
    XCTAssertEqual(try collapse(out).map(\.step), [10, 20, 25, 30])
    XCTAssertEqual(try CheckpointWriter.latest(in: out).lastPathComponent, "checkpoint-00000030")
    let resumed = try GANTrainer.savedState(in: out).options
    XCTAssertEqual([resumed.steps, resumed.checkpointEvery, resumed.sampleEvery], [30, 4, 5])
  }

  /// Class-conditional, spectral norm, DiffAugment and n_dis 2 from the command line: 4 steps straight and 2 +
  /// --resume 2 write the same checkpoint bytes and the same log; the model samples by class.
  func testClassConditionalRunResumesBitwiseAndSamplesByClass() throws {
    let d = try tmp()
    let data = try fixture(in: d), cfg = try config(in: d, size: 8)
    func train(_ out: URL, steps: Int) throws {
      let (s, _, e) = try gpugen([
        "train", "gan", "--data", data, "--config", cfg, "--class-conditional", "--spectral-norm", "--loss",
        "hinge", "--diffaugment", "translation,cutout", "--n-dis", "2", "--steps", "\(steps)", "--batch-size",
        "6", "--checkpoint-every", "2", "--sample-every", "0", "--seed", "3", "--out", out.path,
      ])
      XCTAssertEqual(s, 0, e)
    }
    let straight = d.appendingPathComponent("straight"), split = d.appendingPathComponent("split")
    try train(straight, steps: 4)
    try train(split, steps: 2)
    let (s, _, e) = try gpugen(["train", "gan", "--resume", "--steps", "4", "--out", split.path])
    XCTAssertEqual(s, 0, e)
    let a = try files(try CheckpointWriter.latest(in: straight)),
      b = try files(try CheckpointWriter.latest(in: split))
    XCTAssertEqual(a.keys.sorted(), b.keys.sorted())
    XCTAssertEqual(a.count, 9)
    for (k, v) in a where b[k] != v { XCTFail("\(k) differs after resume") }
    // log.csv: the same figures (all but the timing and memory columns).
    let la = try log(straight), lb = try log(split)
    XCTAssertEqual(la.rows.count, 4)
    XCTAssertEqual(la.rows.map { Array($0.prefix(9)) }, lb.rows.map { Array($0.prefix(9)) })

    // Sampling by class: without --class every class in turn.
    let ck = straight.appendingPathComponent("checkpoint").path
    func sample(_ extra: [String]) throws -> [Float] {
      let npy = d.appendingPathComponent("\(UUID().uuidString).npy")
      let (s, _, e) = try gpugen(
        [
          "sample", "--model", ck, "--n", "6", "--npy", npy.path, "--out",
          d.appendingPathComponent("g.png").path,
        ]
          + extra)
      XCTAssertEqual(s, 0, e)
      let a = try NPY.read(from: npy)
      XCTAssertEqual(a.shape, [6, 1, 8, 8])
      return a.values
    }
    let every = try sample([])
    XCTAssertEqual(every, try sample(["--class", "0,1,2"]))
    XCTAssertNotEqual(every, try sample(["--class", "2,1,0"]))
    XCTAssertNotEqual(try sample(["--class", "1"]), try sample(["--class", "2"]))
  }

  /// Each `train gan` flag lands in training_state/state.json or the configs, and in the run.
  func testEveryTrainGANFlagReachesTheRun() throws {
    let d = try tmp()
    let out = d.appendingPathComponent("flags")
    let (s, _, e) = try gpugen([
      "train", "gan", "--config", try config(in: d), "--data", "fashion-mnist", "--steps", "1", "--loss",
      "hinge",
      "--spectral-norm", "--n-dis", "2", "--lr-g", "3e-4", "--lr-d", "5e-4", "--betas", "0.1,0.8",
      "--ema-decay", "0.9", "--class-conditional", "--diffaugment", "translation,cutout", "--latent-dim", "5",
      "--batch-size", "6", "--seed", "7", "--checkpoint-every", "3", "--sample-every", "9", "--out", out.path,
    ])
    XCTAssertEqual(s, 0, e)
    let saved = try GANTrainer.savedState(in: out)
    let o = saved.options
    XCTAssertEqual(o.loss, .hinge)
    XCTAssertEqual(o.nDis, 2)
    XCTAssertEqual(o.lr, 3e-4)
    XCTAssertEqual(o.lrD, 5e-4)
    XCTAssertEqual([o.beta1, o.beta2], [0.1, 0.8])
    XCTAssertEqual(o.emaDecay, 0.9)
    XCTAssertEqual(o.diffAugment, ["translation", "cutout"])
    XCTAssertEqual(o.batchSize, 6)
    XCTAssertEqual(o.seed, 7)
    XCTAssertEqual(o.checkpointEvery, 3)
    XCTAssertEqual(o.sampleEvery, 9)
    XCTAssertEqual(o.steps, 1)
    XCTAssertEqual(o.data, "fashion-mnist")
    XCTAssertEqual(
      saved.model,
      GANModelConfig(latentDim: 5, loss: .hinge, conditional: true, numClasses: 10, data: "fashion-mnist"))
    XCTAssertEqual(saved.generator.latentDim, 5)
    XCTAssertEqual(saved.generator.numClasses, 10)
    XCTAssertEqual(saved.generator.norm, .batch)
    XCTAssertEqual(saved.discriminator.norm, .spectral)
    XCTAssertEqual(saved.discriminator.numClasses, 10)
    // The run itself: two D steps for the one G step, the learning rates it logged, the networks it saved.
    let state =
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: saved.state.appendingPathComponent("training_state/state.json")))
      as? [String: Any]
    XCTAssertEqual(state?["optimizerStepD"] as? Int, 2)
    XCTAssertEqual(state?["optimizerStepG"] as? Int, 1)
    let (header, rows) = try log(out)
    let columns = header.split(separator: ",").map(String.init)
    let lrG = try XCTUnwrap(columns.firstIndex(of: "lr_g")),
      lrD = try XCTUnwrap(columns.firstIndex(of: "lr_d"))
    // The logged rates are the Float32 rates the step used.
    XCTAssertEqual(rows.count, 1)
    XCTAssertEqual(rows[0][lrG], Double(Float(3e-4)), accuracy: 1e-12)
    XCTAssertEqual(rows[0][lrD], Double(Float(5e-4)), accuracy: 1e-12)
    let gan = try GANModel.load(from: saved.state, device: .cpu, discriminator: true)
    XCTAssertEqual(
      gan.generator.namedParameters.first { $0.name == "net.0.weight" }?.tensor.shape, [16 * 7 * 7, 5])
    XCTAssertEqual(
      gan.discriminator?.namedParameters.first { $0.name == "embed.weight_orig" }?.tensor.shape,
      [10, 16 * 7 * 7])
    XCTAssertTrue(exists(out, "samples/step-00000001.png"))  // the last step samples

    // Toy data: --pack reaches the discriminator, --lr sets both learning rates, the toy betas stay.
    let toy = d.appendingPathComponent("toy")
    let (s1, _, e1) = try gpugen([
      "train", "gan", "--data", "toy:ring8", "--pack", "2", "--lr", "1e-3", "--latent-dim", "3", "--steps",
      "1", "--batch-size", "8", "--sample-every", "0", "--out", toy.path,
    ])
    XCTAssertEqual(s1, 0, e1)
    let t = try GANTrainer.savedState(in: toy)
    XCTAssertEqual(t.discriminator.pack, 2)
    XCTAssertEqual(t.generator.latentDim, 3)
    XCTAssertEqual(t.model.latentDim, 3)
    XCTAssertEqual([t.options.lr, t.options.lrD], [1e-3, 1e-3])
    // The toy defaults (not the image defaults 0.5, 0.999).
    let toyDefaults = GANTrainingOptions.toyDefaults()
    XCTAssertEqual([t.options.beta1, t.options.beta2], [toyDefaults.beta1, toyDefaults.beta2])
    XCTAssertNotEqual([t.options.beta1, t.options.beta2], [0.5, 0.999])
    XCTAssertEqual(t.options.batchSize, 8)
    XCTAssertEqual(t.options.loss, .ns)
    XCTAssertEqual(t.options.nDis, 1)
    XCTAssertEqual(t.discriminator.norm, .none)
    let packed = try GANModel.load(from: t.state, device: .cpu, discriminator: true)
    XCTAssertEqual(
      packed.discriminator?.namedParameters.first { $0.name == "net.0.weight" }?.tensor.shape[1], 4)
  }

  /// Tools/gan_toy_bn_generator.json (docs/GAN_TOY.md's closest setting to the grid25 target) trains an MLP
  /// generator with batch norm in each hidden layer; the flags still apply on top of it.
  func testBatchNormToyGeneratorConfigReachesTheRun() throws {
    let config = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("Tools/gan_toy_bn_generator.json")
    let out = try tmp().appendingPathComponent("bn")
    let (s, _, e) = try gpugen([
      "train", "gan", "--data", "toy:grid25", "--config", config.path, "--loss", "hinge", "--spectral-norm",
      "--steps", "2", "--batch-size", "8", "--out", out.path,
    ])
    XCTAssertEqual(s, 0, e)
    let saved = try GANTrainer.savedState(in: out)
    XCTAssertEqual(saved.generator.norm, .batch)
    XCTAssertEqual(saved.generator.hiddenDims, [256, 256, 256])
    XCTAssertEqual(saved.discriminator.norm, .spectral)
    let model = try GANModel.load(from: out.appendingPathComponent("checkpoint"), device: .cpu)
    XCTAssertTrue(model.generator.namedModules.contains { $0.module is BatchNorm2d })
    XCTAssertTrue(model.generator.namedBuffers.contains { $0.name == "net.1.running_mean" })
  }

  /// Without flags, toy data trains with GANTrainingOptions.toyDefaults().
  func testToyDefaultsReachTheRun() throws {
    let d = try tmp()
    let out = d.appendingPathComponent("toy")
    let (s, _, e) = try gpugen(["train", "gan", "--data", "toy:ring8", "--steps", "1", "--out", out.path])
    XCTAssertEqual(s, 0, e)
    let saved = try GANTrainer.savedState(in: out)
    var expected = GANTrainingOptions.toyDefaults()
    (expected.data, expected.steps) = ("toy:ring8", 1)
    XCTAssertEqual(saved.options, expected)
    XCTAssertEqual(saved.generator, GANNetworkConfig.toyGenerator)
    XCTAssertEqual(saved.discriminator, GANNetworkConfig.toyDiscriminator)
    // The grid25 recipe of docs/GAN_TOY.md: a batch-norm MLP generator, a plain MLP discriminator (hinge +
    // spectral norm come from the flags), a cosine-decayed learning rate.
    XCTAssertEqual(saved.generator.norm, .batch)
    XCTAssertEqual([saved.generator.latentDim] + saved.generator.hiddenDims, [2, 400, 400, 400, 400])
    XCTAssertEqual(saved.discriminator.norm, .none)
    XCTAssertEqual(saved.discriminator.hiddenDims, [256, 256, 256])
    XCTAssertEqual(
      [Double(expected.batchSize), expected.lr, expected.lrD, expected.beta1, expected.beta2],
      [128, 1e-3, 1e-3, 0, 0.9])
    XCTAssertEqual(GANTrainingOptions.toyDefaults().steps, 60_000)
    XCTAssertEqual(expected.lrSchedule, "cosine")
    let model = try GANModel.load(from: out.appendingPathComponent("checkpoint"), device: .cpu)
    XCTAssertTrue(model.generator.namedModules.contains { $0.module is BatchNorm2d })
    XCTAssertEqual(
      saved.model,
      GANModelConfig(latentDim: 2, loss: .ns, conditional: false, numClasses: 0, data: "toy:ring8"))
  }

  /// log.csv's lr_g and lr_d are the rates each step trained at (here the warmup's 1/4 and 2/4).
  func testLogHasTheLearningRatesEachStepTrainedAt() throws {
    let d = try tmp()
    let out = d.appendingPathComponent("warm")
    let (s, _, e) = try gpugen([
      "train", "gan", "--data", "toy:ring8", "--lr-g", "1e-3", "--lr-d", "2e-3", "--warmup", "4", "--steps",
      "2",
      "--batch-size", "8", "--sample-every", "0", "--out", out.path,
    ])
    XCTAssertEqual(s, 0, e)
    XCTAssertEqual(try GANTrainer.savedState(in: out).options.warmup, 4)
    let (header, rows) = try log(out)
    let columns = header.split(separator: ",").map(String.init)
    XCTAssertEqual(rows.count, 2)
    for (name, lr) in [("lr_g", 1e-3), ("lr_d", 2e-3)] {
      let c = try XCTUnwrap(columns.firstIndex(of: name), name)
      XCTAssertEqual(rows[0][c], lr / 4, accuracy: 1e-9, name)
      XCTAssertEqual(rows[1][c], lr / 2, accuracy: 1e-9, name)
    }
  }

  func testDivergenceStopsWithStatus3() throws {
    let d = try tmp()
    let out = d.appendingPathComponent("run")
    let (s, _, e) = try gpugen([
      "train", "gan", "--data", "toy:ring8", "--loss", "hinge", "--lr", "1e30", "--steps", "20",
      "--batch-size",
      "16", "--sample-every", "0", "--out", out.path,
    ])
    XCTAssertEqual(s, 3, e)
    XCTAssertTrue(e.contains("diverged"), e)
    XCTAssertNoThrow(try CheckpointWriter.latest(in: out))
  }

  // MARK: Bad input

  /// --instance-selection trains on the kept share of each class, saves the choice in the checkpoint and
  /// resumes on it bitwise; --init-from starts a new run from a GAN folder's weights with fresh optimizers. Their
  /// misuses exit 2.
  func testInstanceSelectionAndInitFrom() throws {
    let d = try tmp()
    let data = try fixture(in: d, size: 28), cfg = try config(in: d)
    func train(_ out: URL, _ extra: [String], config: Bool = true) throws -> (Int32, String, String) {
      try gpugen(
        ["train", "gan", "--data", data, "--class-conditional", "--batch-size", "4", "--sample-every", "0"]
          + (config ? ["--config", cfg] : []) + ["--out", out.path] + extra)
    }
    let split = d.appendingPathComponent("split"), straight = d.appendingPathComponent("straight")
    let (s, _, e) = try train(split, ["--instance-selection", "0.5", "--steps", "2"])
    XCTAssertEqual(s, 0, e)
    XCTAssertTrue(e.contains("training on 12 of 24 images"), e)
    let saved = try XCTUnwrap(try GANTrainer.savedSelection(in: CheckpointWriter.latest(in: split)))
    XCTAssertEqual([saved.of, saved.indices.count], [24, 12])
    XCTAssertEqual(saved.ratio, 0.5)
    // The fixture's class is the index mod 3: each class keeps 4 of its 8 images.
    XCTAssertEqual(Dictionary(grouping: saved.indices) { $0 % 3 }.mapValues(\.count), [0: 4, 1: 4, 2: 4])
    // 2 steps + --resume 2 = 4 straight, bit for bit (the resumed run reads the saved selection).
    XCTAssertEqual(try train(straight, ["--instance-selection", "0.5", "--steps", "4"]).0, 0)
    let (s2, _, e2) = try gpugen(["train", "gan", "--resume", "--steps", "4", "--out", split.path])
    XCTAssertEqual(s2, 0, e2)
    let a = try files(try CheckpointWriter.latest(in: straight))
    let b = try files(try CheckpointWriter.latest(in: split))
    XCTAssertEqual(a.keys.sorted(), b.keys.sorted())
    for (k, v) in a where b[k] != v { XCTFail("\(k) differs after resume") }
    XCTAssertNotNil(a[InstanceSelection.checkpointFile])
    // Without the selection (or with another share) the run trains on other images.
    let all = d.appendingPathComponent("all"), most = d.appendingPathComponent("most")
    XCTAssertEqual(try train(all, ["--steps", "4"]).0, 0)
    XCTAssertEqual(try train(most, ["--instance-selection", "0.75", "--steps", "4"]).0, 0)
    let g = "generator/\(ModelFolder.weightsFile)"
    let others = [
      try files(try CheckpointWriter.latest(in: all)), try files(try CheckpointWriter.latest(in: most)),
    ]
    for o in others { XCTAssertNotEqual(o[g], a[g]) }
    XCTAssertNil(others[0][InstanceSelection.checkpointFile])
    XCTAssertEqual(
      try GANTrainer.savedSelection(in: CheckpointWriter.latest(in: most))?.indices.count, 18)

    // --init-from: a 0-step run starts from the folder's networks (the trained generator of a checkpoint).
    let start = straight.appendingPathComponent("checkpoint")
    let fine = d.appendingPathComponent("fine")
    let (s3, _, e3) = try train(fine, ["--init-from", start.path, "--steps", "0"], config: false)
    XCTAssertEqual(s3, 0, e3)
    let f = try files(try CheckpointWriter.latest(in: fine))
    for k in [g, "discriminator/\(ModelFolder.weightsFile)", "training_state/generator.safetensors"] {
      XCTAssertEqual(f[k], a[k], k)
    }
    let fresh = try XCTUnwrap(try GANTrainer.savedState(in: fine))
    XCTAssertEqual(fresh.generator, try GANTrainer.savedState(in: straight).generator)
    // It trains on: 2 steps from the started weights.
    let (s4, _, e4) = try train(
      d.appendingPathComponent("fine2"), ["--init-from", start.path, "--steps", "2"], config: false)
    XCTAssertEqual(s4, 0, e4)

    // Misuses: exit 2, naming the flag.
    let toy = ["train", "gan", "--data", "toy:ring8", "--steps", "1"]
    for (args, needle) in [
      (
        toy + ["--instance-selection", "0.5", "--out", d.appendingPathComponent("t").path],
        "--instance-selection"
      ),
      (
        [
          "train", "gan", "--data", data, "--instance-selection", "0", "--out",
          d.appendingPathComponent("z").path,
        ],
        "--instance-selection"
      ),
      (
        [
          "train", "gan", "--data", data, "--instance-selection", "1.5", "--out",
          d.appendingPathComponent("o").path,
        ],
        "--instance-selection"
      ),
      (
        ["train", "gan", "--resume", "--out", split.path, "--instance-selection", "0.7"],
        "--instance-selection 0.7"
      ),
      (["train", "gan", "--resume", "--out", split.path, "--init-from", start.path], "--init-from"),
      (
        [
          "train", "gan", "--data", data, "--config", cfg, "--init-from", start.path, "--out",
          d.appendingPathComponent("c").path,
        ], "--init-from"
      ),
      (
        ["train", "gan", "--data", data, "--init-from", d.path, "--out", d.appendingPathComponent("n").path],
        "--init-from"
      ),
    ] {
      let (s, _, e) = try gpugen(args)
      XCTAssertEqual(s, 2, "\(args): \(e)")
      XCTAssertTrue(e.contains(needle), "\(args): \(e)")
    }
    // 8×8 images do not fit the bundled classifier the selection scores with by default; --classifier gives
    // one that fits, which then also judges the collapse signal (nan under the bundled one).
    let small = try fixture(in: try tmp()), g8 = try config(in: d, name: "g8.json", size: 8)
    let eight = ["train", "gan", "--data", small, "--config", g8, "--class-conditional", "--batch-size", "4"]
    let (s5, _, e5) = try gpugen(
      eight + ["--instance-selection", "0.5", "--out", d.appendingPathComponent("s").path])
    XCTAssertEqual(s5, 2, e5)
    XCTAssertTrue(e5.contains("1×28×28"), e5)
    let judge = d.appendingPathComponent("judge")
    try ImageClassifier(
      config: ClassifierConfig(
        inChannels: 1, imageSize: 8, numClasses: 3, convChannels: [4, 8, 8], featureDim: 16),
      seed: 0, device: .cpu
    ).save(to: judge)
    let judged = d.appendingPathComponent("judged")
    let (s6, _, e6) = try gpugen(
      eight + [
        "--instance-selection", "0.5", "--classifier", judge.path, "--steps", "2", "--sample-every", "2",
        "--out",
        judged.path,
      ])
    XCTAssertEqual(s6, 0, e6)
    XCTAssertTrue(e6.contains("training on 12 of 24 images") && e6.contains(judge.path), e6)
    let signal = try collapse(judged)
    XCTAssertEqual(signal.map(\.step), [2])
    XCTAssertTrue(signal[0].value.isFinite && signal[0].value <= Foundation.log(3.0) + 1e-9, "\(signal)")
    let (s7, _, e7) = try gpugen([
      "train", "gan", "--resume", "--out", judged.path, "--classifier", "classifier",
    ])
    XCTAssertEqual(s7, 2, e7)
    XCTAssertTrue(e7.contains("--classifier"), e7)
    let (s8, _, e8) = try gpugen(["train", "gan", "--resume", "--steps", "3", "--out", judged.path])
    XCTAssertEqual(s8, 0, e8)
  }

  func testBadInputIsAClearErrorWithStatus2() throws {
    let d = try tmp()
    let fm = FileManager.default
    // An unconditional toy GAN and a class-conditional image GAN, one step each.
    let toy = d.appendingPathComponent("toy"), cond = d.appendingPathComponent("cond")
    let data = try fixture(in: d), cfg8 = try config(in: d, name: "g8.json", size: 8)
    for args in [
      ["--data", "toy:ring8", "--batch-size", "8", "--out", toy.path],
      ["--data", data, "--config", cfg8, "--class-conditional", "--batch-size", "6", "--out", cond.path],
    ] {
      let (s, _, e) = try gpugen(["train", "gan", "--steps", "1", "--sample-every", "0"] + args)
      XCTAssertEqual(s, 0, e)
    }
    let toyGAN = toy.appendingPathComponent("checkpoint").path,
      condGAN = cond.appendingPathComponent("checkpoint")
    // A copy whose discriminator/config.json no longer fits the generator; a copy without generator/.
    let misfit = d.appendingPathComponent("misfit"), noG = d.appendingPathComponent("no-generator")
    for copy in [misfit, noG] { try fm.copyItem(at: condGAN.resolvingSymlinksInPath(), to: copy) }
    let dConfig = misfit.appendingPathComponent("discriminator/config.json")
    try Data(
      try String(contentsOf: dConfig, encoding: .utf8).replacingOccurrences(
        of: "\"sample_size\" : 8", with: "\"sample_size\" : 16"
      ).utf8
    ).write(to: dConfig)
    try fm.removeItem(at: noG.appendingPathComponent("generator"))
    let mismatch = try config(in: d, name: "mismatch.json", size: 28, discriminatorSize: 32)
    let mlp = d.appendingPathComponent("mlp.json")
    try Data(
      #"{"generator": {"_class_name": "MLPGenerator"}, "discriminator": {"_class_name": "MLPDiscriminator"}}"#
        .utf8
    ).write(to: mlp)
    let out = d.appendingPathComponent("bad").path
    let cases: [([String], [String])] = [
      (["sample", "--model", toyGAN, "--truncation", "0"], ["--truncation", "positive"]),
      (["sample", "--model", toyGAN, "--truncation=-1"], ["--truncation", "positive"]),
      (["sample", "--model", toyGAN, "--truncation", "-1"], ["--truncation"]),
      (["sample", "--model", toyGAN, "--truncation=-0.5", "--truncation-mode", "scale"], ["--truncation"]),
      (["sample", "--model", toyGAN, "--class", "3"], ["--class", "unconditional"]),
      (["sample", "--model", condGAN.path, "--class", "99"], ["--class 99", "0..<3"]),
      (["sample", "--model", misfit.path], ["do not fit", "[1, 8, 8]", "[1, 16, 16]"]),
      (["sample", "--model", noG.path], ["generator"]),
      (["sample", "--model", toyGAN, "--steps", "20"], ["--steps", "GAN"]),
      (["sample", "--model", toyGAN, "--sampler", "ddim"], ["--sampler", "GAN"]),
      (["sample", "--model", toyGAN, "--temperature", "1"], ["--temperature", "GAN"]),
      (["sample", "--model", toyGAN, "--eta", "0.5"], ["--eta", "GAN"]),
      (["sample", "--model", toyGAN, "--karras"], ["--karras", "GAN"]),
      (["sample", "--model", "vae", "--truncation", "0.5"], ["--truncation", "VAE"]),
      (["sample", "--model", "vae", "--truncation-mode", "scale"], ["--truncation-mode", "VAE"]),
      (["sample", "--truncation", "0.5"], ["--truncation", "diffusion"]),
      (["train", "gan", "--config", mismatch, "--out", out], ["do not fit", "[1, 28, 28]", "[1, 32, 32]"]),
      (["train", "gan", "--n-dis", "0", "--out", out], ["--n-dis"]),
      (["train", "gan", "--resume", "--out", out], ["--resume", "no checkpoint"]),
      (["train", "gan", "--data", "toy:nope", "--out", out], ["toy:nope", "toy:ring8"]),
      (
        ["train", "gan", "--data", "toy:ring8", "--pack", "3", "--batch-size", "8", "--out", out],
        ["--pack 3"]
      ),
      (
        ["train", "gan", "--data", "toy:ring8", "--diffaugment", "flip", "--out", out],
        ["--diffaugment", "flip"]
      ),
      (["train", "gan", "--data", "toy:ring8", "--betas", "1.5,0.9", "--out", out], ["--betas", "1.5"]),
      (["train", "gan", "--data", "toy:ring8", "--betas", "0.5", "--out", out], ["--betas"]),
      (
        ["train", "gan", "--data", "toy:ring8", "--class-conditional", "--out", out], ["--class-conditional"]
      ),
      (["train", "gan", "--data", "toy:ring8", "--loss", "wgan", "--out", out], ["--loss"]),
      (["train", "gan", "--data", data, "--config", mlp.path, "--out", out], ["MLP", "toy"]),
      (
        [
          "train", "gan", "--data", data, "--config", cfg8, "--pack", "2", "--class-conditional", "--out",
          out,
        ],
        ["pack", "class-conditional"]
      ),
    ]
    for (args, words) in cases {
      let (s, _, e) = try gpugen(args)
      XCTAssertEqual(s, 2, "\(args): \(e)")
      for w in words { XCTAssertTrue(e.contains(w), "\(args): expected '\(w)' in: \(e)") }
    }
  }

  /// DiffAugment transforms images: on 2-D toy data it is refused before the run starts, naming the flag.
  func testDiffAugmentOnToyDataIsRefusedUpFront() throws {
    let d = try tmp()
    let out = d.appendingPathComponent("run")
    let (s, _, e) = try gpugen([
      "train", "gan", "--data", "toy:ring8", "--diffaugment", "translation", "--steps", "2", "--batch-size",
      "8",
      "--out", out.path,
    ])
    XCTAssertEqual(s, 2, e)
    XCTAssertTrue(e.contains("--diffaugment"), e)
    XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("checkpoint").path))
  }
}

extension GANCommandTests {
  func testEvaluateTheBundledGANWithAndWithoutTruncation() throws {
    try XCTSkipUnless(
      FileManager.default.fileExists(
        atPath: TrainingImages.fashionMNISTFolder().appendingPathComponent("t10k-images-idx3-ubyte.gz").path),
      "dataset-fashion-mnist is not installed")
    func run(_ extra: [String]) throws -> [String: Any] {
      let (status, out, err) = try runGpugen(
        ["evaluate", "--model", "gan", "--n", "100", "--device", "cpu", "--json"] + extra)
      XCTAssertEqual(status, 0, err)
      return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], out)
    }
    let plain = try run([])
    XCTAssertEqual(plain["family"] as? String, "gan")
    XCTAssertEqual(plain["conditional"] as? Bool, true)
    XCTAssertEqual((plain["nfe"] as? NSNumber)?.intValue, 1)
    XCTAssertEqual((plain["truncation"] as? NSNumber)?.doubleValue, 1)
    let truncated = try run(["--truncation", "0.3"])
    XCTAssertEqual((truncated["truncation"] as? NSNumber)?.doubleValue, 0.3)
    // ψ is used: truncation trades recall for fidelity.
    let r0 = try XCTUnwrap((plain["recall"] as? NSNumber)?.doubleValue)
    let r1 = try XCTUnwrap((truncated["recall"] as? NSNumber)?.doubleValue)
    XCTAssertLessThan(r1, r0)
    let scaled = try run(["--truncation", "0.3", "--truncation-mode", "scale"])
    XCTAssertEqual(scaled["truncation_mode"] as? String, "scale")
    XCTAssertNotEqual(
      (scaled["fid"] as? NSNumber)?.doubleValue, (truncated["fid"] as? NSNumber)?.doubleValue,
      "--truncation-mode is used")
  }
}
