// Classifier-free guidance: the combination and guidance_rescale against diffusers on a frozen fixture
// (Fixtures/guidance, made by make_fixtures.py there), one batched pass with the null label, every sampler on
// the guided output, class dropout's labels (frequency p, keyed by the global sample index) and its training
// step, --init-from's weight merge, and the commands (`train diffusion --class-dropout/--init-from/--resume`,
// `sample --guidance-scale/--guidance-rescale`) with their bad input.
import Foundation
import GPUGenNN
import XCTest

@testable import GPUGenModels

/// Records every call of `FakeConditionalDenoiser` (batch sizes and labels).
final class CallLog: @unchecked Sendable {
  var calls: [(batch: Int, labels: [Int]?)] = []
}

/// `FakeConditionalDenoiser` that logs its calls.
struct LoggingDenoiser: Denoiser {
  let base = FakeConditionalDenoiser()
  let log: CallLog
  var device: Device { base.device }
  var imageShape: [Int] { base.imageShape }
  var classCount: Int? { base.classCount }
  func callAsFunction(_ x: Tensor, timesteps: [Double], classLabels: [Int]?) throws -> Tensor {
    log.calls.append((x.shape[0], classLabels))
    return try base(x, timesteps: timesteps, classLabels: classLabels)
  }
}

/// The guided output computed the slow way: two separate calls, combined on the host in Double.
struct TwoPassGuidedDenoiser: Denoiser {
  let base = FakeConditionalDenoiser()
  let scale: Double
  var device: Device { base.device }
  var imageShape: [Int] { base.imageShape }
  var classCount: Int? { base.classCount }
  func callAsFunction(_ x: Tensor, timesteps: [Double], classLabels: [Int]?) throws -> Tensor {
    let c = try base(x, timesteps: timesteps, classLabels: classLabels).toArray()
    let u = try base(x, timesteps: timesteps, classLabels: Array(repeating: 3, count: x.shape[0])).toArray()
    return try Tensor(
      zip(c, u).map { Float(Double($1) + scale * (Double($0) - Double($1))) }, shape: x.shape, on: device)
  }
}

final class GuidanceTests: XCTestCase {
  func testCombinationAndRescaleMatchDiffusers() throws {
    let url = try XCTUnwrap(
      Bundle.module.url(forResource: "Fixtures/guidance/guidance", withExtension: "safetensors"))
    let t = try SafeTensors.read(contentsOf: url).tensors
    let c = try XCTUnwrap(t["cond"]), u = try XCTUnwrap(t["uncond"])
    var worst = 0.0
    var cases = 0
    for scale in [0.0, 1.5, 3.0, 7.5] {
      for rescale in [0.0, 0.7, 1.0] {
        let want = try XCTUnwrap(t["s\(scale)_r\(rescale)"]).values
        let g = try ClassifierFreeGuidance(scale: scale, rescale: rescale).combine(
          conditional: try Tensor(c.values, shape: c.shape),
          unconditional: try Tensor(u.values, shape: u.shape)
        ).toArray()
        XCTAssertEqual(g.count, want.count)
        let err = zip(g, want).map { Double(abs($0 - $1)) / max(1, Double(abs($1))) }.max() ?? 0
        XCTAssertLessThan(err, 2e-6, "s \(scale) φ \(rescale)")
        worst = max(worst, err)
        cases += 1
      }
    }
    XCTAssertEqual(cases, 12)
    print("guidance parity against diffusers 0.42.1: worst relative error \(worst) over \(cases) cases")
  }

  func testOneBatchedPassWithTheNullLabelAndScaleOneIsTheModel() throws {
    let log = CallLog()
    let x = try Tensor.randomNormal(shape: [2, 1, 4, 4], seed: 3)
    let guided = try GuidedDenoiser(
      model: LoggingDenoiser(log: log), nullLabel: 3, guidance: ClassifierFreeGuidance(scale: 2.5))
    let g = try guided(x, timesteps: [500], classLabels: [0, 2]).toArray()
    XCTAssertEqual(log.calls.count, 1)
    XCTAssertEqual(log.calls[0].batch, 4)
    XCTAssertEqual(log.calls[0].labels, [0, 2, 3, 3])
    let want = try TwoPassGuidedDenoiser(scale: 2.5)(x, timesteps: [500], classLabels: [0, 2]).toArray()
    for (a, b) in zip(g, want) { XCTAssertEqual(a, b, accuracy: 1e-6) }
    // s = 1: one plain pass of the model on the batch, bit for bit.
    log.calls = []
    let one = try GuidedDenoiser(
      model: LoggingDenoiser(log: log), nullLabel: 3, guidance: ClassifierFreeGuidance(scale: 1, rescale: 0.7)
    )
    XCTAssertEqual(
      try one(x, timesteps: [500], classLabels: [0, 2]).toArray(),
      try FakeConditionalDenoiser()(x, timesteps: [500], classLabels: [0, 2]).toArray())
    XCTAssertEqual(log.calls.count, 1)
    XCTAssertEqual(log.calls[0].batch, 2)
  }

  func testEverySamplerTakesTheGuidedOutput() throws {
    for kind in SamplerKind.allCases {
      let plan = try SamplerPlanner.plan(kind, schedulerConfig: nil, steps: 6, eta: 0, karras: false)
      let request = SampleRequest(count: 3, batchSize: 2, seed: 5, classLabels: [0, 1, 2])
      let guided = try DiffusionSampler(
        unet: try GuidedDenoiser(
          model: FakeConditionalDenoiser(), nullLabel: 3, guidance: ClassifierFreeGuidance(scale: 3)),
        plan: plan
      ).sample(request)
      let slow = try DiffusionSampler(unet: TwoPassGuidedDenoiser(scale: 3), plan: plan).sample(request)
      let plain = try DiffusionSampler(unet: FakeConditionalDenoiser(), plan: plan).sample(request)
      for (a, b) in zip(guided, slow) { XCTAssertEqual(a, b, accuracy: 1e-4, "\(kind)") }
      XCTAssertGreaterThan(
        zip(guided, plain).map { abs($0 - $1) }.max() ?? 0, 1e-3, "\(kind): guidance shows")
      let atOne = try DiffusionSampler(
        unet: try GuidedDenoiser(
          model: FakeConditionalDenoiser(), nullLabel: 3, guidance: ClassifierFreeGuidance(scale: 1)),
        plan: plan
      ).sample(request)
      XCTAssertEqual(atOne, plain, "\(kind): s = 1 is plain conditional sampling, bit for bit")
    }
  }

  func testBadGuidanceIsAnError() throws {
    for g in [
      ClassifierFreeGuidance(scale: -1), ClassifierFreeGuidance(scale: .nan),
      ClassifierFreeGuidance(scale: 2, rescale: 1.5), ClassifierFreeGuidance(scale: 2, rescale: -0.1),
    ] {
      XCTAssertThrowsError(try g.validate(), "\(g)")
    }
    var c = UNet2DConfig()
    (c.sampleSize, c.inChannels, c.outChannels, c.blockOutChannels, c.normNumGroups) = (8, 1, 1, [8, 16], 4)
    (c.downBlockTypes, c.upBlockTypes, c.layersPerBlock, c.numClassEmbeds) = (
      ["DownBlock2D", "DownBlock2D"], ["UpBlock2D", "UpBlock2D"], 1, 3
    )
    let w = try DiffusionTrainer.initialWeights(config: c, seed: 0)
    func unet(_ c: UNet2DConfig) throws -> UNet2D {
      try UNet2D(
        config: c, weights: { n, _ in w[n].map { ($0.shape, $0.values) } }, names: Array(w.keys), device: .cpu
      )
    }
    XCTAssertThrowsError(try GuidedDenoiser(model: try unet(c), guidance: ClassifierFreeGuidance(scale: 2))) {
      XCTAssertTrue("\($0)".contains("null"), "\($0)")
    }
    c.hasNullClass = true
    let m = try unet(c)
    XCTAssertEqual(c.nullClassLabel, 2)
    XCTAssertEqual(m.classCount, 2)
    XCTAssertEqual(try GuidedDenoiser(model: m, guidance: ClassifierFreeGuidance(scale: 2)).nullLabel, 2)
    // The marker survives config.json (a private field diffusers ignores).
    let back = try UNet2DConfig(json: try c.diffusersJSONData())
    XCTAssertTrue(back.hasNullClass)
    XCTAssertFalse(try UNet2DConfig(json: try UNet2DConfig().diffusersJSONData()).hasNullClass)
  }

  func testClassDropoutFrequencyAndGlobalSampleKeys() throws {
    let labels = (0..<20_000).map { $0 % 10 }
    let dropped = try DiffusionTrainer.droppingClasses(
      labels, nullLabel: 10, p: 0.1, seed: 4, step: 7, firstSample: 0)
    let nulls = dropped.filter { $0 == 10 }.count
    // Binomial(20000, 0.1): std 42.
    XCTAssertEqual(Double(nulls), 2000, accuracy: 170)
    XCTAssertTrue(zip(labels, dropped).allSatisfy { $1 == $0 || $1 == 10 })
    // Keyed by the global sample index: a batch of 16 and the two batches of 8 that split it agree.
    let b16 = Array(labels[0..<16])
    let whole = try DiffusionTrainer.droppingClasses(
      b16, nullLabel: 10, p: 0.5, seed: 1, step: 3, firstSample: 0)
    let first = try DiffusionTrainer.droppingClasses(
      Array(b16[0..<8]), nullLabel: 10, p: 0.5, seed: 1, step: 3, firstSample: 0)
    let second = try DiffusionTrainer.droppingClasses(
      Array(b16[8..<16]), nullLabel: 10, p: 0.5, seed: 1, step: 3, firstSample: 8)
    XCTAssertEqual(whole, first + second)
    XCTAssertTrue(whole.contains(10) && whole.contains { $0 != 10 })
    // Another step or seed draws again; p = 0 and p = 1 are exact.
    XCTAssertNotEqual(
      try DiffusionTrainer.droppingClasses(b16, nullLabel: 10, p: 0.5, seed: 1, step: 4, firstSample: 0),
      whole)
    XCTAssertNotEqual(
      try DiffusionTrainer.droppingClasses(b16, nullLabel: 10, p: 0.5, seed: 2, step: 3, firstSample: 0),
      whole)
    XCTAssertEqual(
      try DiffusionTrainer.droppingClasses(b16, nullLabel: 10, p: 0, seed: 1, step: 3, firstSample: 0), b16)
    XCTAssertEqual(
      try DiffusionTrainer.droppingClasses(b16, nullLabel: 10, p: 1, seed: 1, step: 3, firstSample: 0),
      Array(repeating: 10, count: 16))
  }

  /// A tiny class-conditional run with a null label (3 real classes) and class dropout p.
  func trainer(p: Double?) throws -> DiffusionTrainer {
    var c = UNet2DConfig()
    (c.sampleSize, c.inChannels, c.outChannels, c.blockOutChannels, c.normNumGroups) = (8, 1, 1, [8, 16], 4)
    (c.downBlockTypes, c.upBlockTypes, c.layersPerBlock, c.numClassEmbeds, c.hasNullClass) = (
      ["DownBlock2D", "DownBlock2D"], ["UpBlock2D", "UpBlock2D"], 1, 4, true
    )
    let n = 16
    let images = (0..<(n * 64)).map { Float(sin(Double($0) * 0.37)) }
    let data = TrainingImages(
      images: images, labels: (0..<n).map { $0 % 3 }, count: n, channels: 1, size: 8, classCount: 3)
    var o = DiffusionTrainingOptions()
    (o.batchSize, o.lr, o.warmup, o.classDropout, o.weightDecay) = (8, 1e-2, 0, p, 0)
    return try DiffusionTrainer(config: c, data: data, options: o, device: .cpu)
  }

  func testTrainStepTrainsTheNullLabelExactlyWhenDropped() throws {
    func embeddingRows(_ t: DiffusionTrainer) throws -> [[Float]] {
      let i = try XCTUnwrap(t.names.firstIndex(of: "class_embedding.weight"))
      let v = try t.parameters[i].toArray(), w = t.parameters[i].shape[1]
      return (0..<4).map { Array(v[($0 * w)..<(($0 + 1) * w)]) }
    }
    for (p, nullMoves, realMove) in [(1.0, true, false), (0.0, false, true)] {
      let t = try trainer(p: p)
      let before = try embeddingRows(t)
      _ = try t.trainStep()
      let after = try embeddingRows(t)
      XCTAssertEqual(before[3] != after[3], nullMoves, "p = \(p): the null row")
      XCTAssertEqual((0..<3).contains { before[$0] != after[$0] }, realMove, "p = \(p): the real rows")
    }
    var o = DiffusionTrainingOptions()
    o.classDropout = 1.5
    XCTAssertThrowsError(try o.validate())
    o.classDropout = -0.1
    XCTAssertThrowsError(try o.validate())
    // Older checkpoints have no classDropout: they decode (as nil) and train plainly.
    let old = try JSONEncoder().encode(DiffusionTrainingOptions())
    XCTAssertFalse(String(decoding: old, as: UTF8.self).contains("classDropout"))
    XCTAssertNil(try JSONDecoder().decode(DiffusionTrainingOptions.self, from: old).classDropout)
  }

  func testInitFromMergesTheWeightsAndAddsTheNullRow() throws {
    let fresh: [String: TensorData] = [
      "a": TensorData(shape: [2], values: [9, 9]),
      "class_embedding.weight": TensorData(shape: [3, 2], values: [1, 2, 3, 4, 5, 6]),
    ]
    let start: [String: TensorData] = [
      "a": TensorData(shape: [2], values: [7, 8]),
      "class_embedding.weight": TensorData(shape: [2, 2], values: [-1, -2, -3, -4]),
    ]
    let m = try DiffusionTrainer.mergedWeights(start, into: fresh)
    XCTAssertEqual(m["a"]?.values, [7, 8])
    XCTAssertEqual(m["class_embedding.weight"], TensorData(shape: [3, 2], values: [-1, -2, -3, -4, 5, 6]))
    XCTAssertThrowsError(
      try DiffusionTrainer.mergedWeights(["a": TensorData(shape: [3], values: [1, 2, 3])], into: fresh))
    XCTAssertThrowsError(try DiffusionTrainer.mergedWeights(["a": start["a"]!], into: fresh))
  }

  // MARK: The commands

  func tmp() throws -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("gpugen-cfg-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: d) }
    return d
  }

  /// A tiny labelled IDX dataset (24 images of 6×6, 3 classes) and an 8×8 3-class UNet config, in `dir`.
  func fixture(in dir: URL) throws -> (data: String, config: String) {
    let data = try writeLabelledIDX(in: dir, name: "toy", count: 24, size: 6, classes: 3) { i, c, y, x in
      (c == 0 ? x * 40 : c == 1 ? y * 40 : (x + y) * 20) + i % 7
    }
    let config = dir.appendingPathComponent("unet.json")
    try Data(
      """
      {"_class_name": "UNet2DModel", "sample_size": 8, "in_channels": 1, "out_channels": 1,
       "block_out_channels": [8, 16], "layers_per_block": 1, "norm_num_groups": 4,
       "down_block_types": ["DownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "UpBlock2D"],
       "num_class_embeds": 3}
      """.utf8
    ).write(to: config)
    return (data.path, config.path)
  }

  func testCommandsTrainWithClassDropoutAndSampleGuided() throws {
    let d = try tmp()
    let f = try fixture(in: d)
    let common = [
      "--data", f.data, "--batch-size", "4", "--lr", "1e-3", "--warmup", "2", "--checkpoint-every", "2",
      "--sample-every", "0", "--device", "cpu", "--seed", "7",
    ]
    // A plain 3-class run, then a run started from it with class dropout (the embedding gains the null row).
    let plain = d.appendingPathComponent("plain")
    var r = try runGpugen(
      ["train", "diffusion", "--config", f.config, "--steps", "2", "--out", plain.path] + common)
    XCTAssertEqual(r.0, 0, r.2)
    let cfg = d.appendingPathComponent("cfg")
    let start = plain.appendingPathComponent("checkpoint").path
    r = try runGpugen(
      [
        "train", "diffusion", "--init-from", start, "--class-dropout", "0.3", "--steps", "0", "--out",
        cfg.path,
      ]
        + common)
    XCTAssertEqual(r.0, 0, r.2)
    let startW = try SafeTensors.read(
      contentsOf: URL(fileURLWithPath: start + "/unet/diffusion_pytorch_model.safetensors")
    ).tensors
    let step0 = try SafeTensors.read(
      contentsOf: try DiffusionTrainer.latestCheckpoint(in: cfg).appendingPathComponent(
        "training_state/model.safetensors")
    ).tensors
    for (name, t) in startW where name != "class_embedding.weight" { XCTAssertEqual(step0[name], t, name) }
    let emb = try XCTUnwrap(step0["class_embedding.weight"])
    XCTAssertEqual(emb.shape[0], 4)
    XCTAssertEqual(Array(emb.values.prefix(3 * emb.shape[1])), startW["class_embedding.weight"]!.values)
    var c4 = try DiffusionTrainer.savedConfig(in: cfg)
    XCTAssertEqual(c4.numClassEmbeds, 4)
    XCTAssertTrue(c4.hasNullClass)
    c4.hasNullClass = true
    let fresh = try DiffusionTrainer.initialWeights(config: c4, seed: 7)["class_embedding.weight"]!
    XCTAssertEqual(Array(emb.values.suffix(emb.shape[1])), Array(fresh.values.suffix(emb.shape[1])))
    // Resume keeps the dropout.
    r = try runGpugen(["train", "diffusion", "--resume", "--steps", "2", "--out", cfg.path])
    XCTAssertEqual(r.0, 0, r.2)
    XCTAssertEqual(try DiffusionTrainer.savedOptions(in: cfg).classDropout, 0.3)
    // s = 1 is plain conditional sampling, bit for bit; s and φ change the images; classes cycle 0..<3.
    let model = cfg.appendingPathComponent("checkpoint").path
    func sample(_ extra: [String]) throws -> [Float] {
      let npy = d.appendingPathComponent("s\(UUID().uuidString).npy")
      let r = try runGpugen(
        [
          "sample", "--model", model, "--n", "4", "--steps", "3", "--device", "cpu", "--npy", npy.path,
          "--out",
          d.appendingPathComponent("g.png").path,
        ] + extra)
      XCTAssertEqual(r.0, 0, r.2)
      return try NPY.read(from: npy).values
    }
    let base = try sample([]), one = try sample(["--guidance-scale", "1"])
    XCTAssertEqual(base, one)
    XCTAssertEqual(base, try sample(["--class", "0,1,2"]))
    let s3 = try sample(["--guidance-scale", "3"])
    XCTAssertNotEqual(s3, base)
    XCTAssertNotEqual(try sample(["--guidance-scale", "3", "--guidance-rescale", "0.7"]), s3)
    // What `gpugen evaluate` runs: GeneratorKnobs.guidance guides ImageGenerator.sample.
    let generator = try ImageGenerator.load(URL(fileURLWithPath: model), device: .cpu)
    XCTAssertEqual(generator.classCount, 3)
    func knobs(_ g: ClassifierFreeGuidance?) -> GeneratorKnobs {
      var k = GeneratorKnobs()
      (k.steps, k.guidance) = (3, g)
      return k
    }
    let unguided = try generator.sample(
      count: 3, batchSize: 3, seed: 0, knobs: knobs(nil), labels: [0, 1, 2])
    XCTAssertEqual(
      try generator.sample(
        count: 3, batchSize: 3, seed: 0, knobs: knobs(ClassifierFreeGuidance(scale: 1)), labels: [0, 1, 2]),
      unguided)
    XCTAssertNotEqual(
      try generator.sample(
        count: 3, batchSize: 3, seed: 0, knobs: knobs(ClassifierFreeGuidance(scale: 3)), labels: [0, 1, 2]),
      unguided)
    XCTAssertTrue(knobs(ClassifierFreeGuidance(scale: 3)).describe(.diffusion).contains("guidance s 3"))
    // img2img and inpaint take the guidance too (s = 1 is their plain run, bit for bit).
    let image = d.appendingPathComponent("x.npy")
    try NPY.write((0..<128).map { Float(sin(Double($0))) }, shape: [2, 1, 8, 8], to: image)
    for command in [
      ["img2img", "--strength", "0.8"],
      ["inpaint", "--mask", "center", "--steps", "4", "--jump-length", "1"],
    ] {
      func edit(_ extra: [String]) throws -> [Float] {
        let npy = d.appendingPathComponent("e\(UUID().uuidString).npy")
        let r = try runGpugen(
          command + [
            "--model", model, "--image", image.path, "--device", "cpu", "--npy", npy.path, "--out",
            d.appendingPathComponent("e.png").path,
          ] + extra)
        XCTAssertEqual(r.0, 0, "\(command): \(r.2)")
        return try NPY.read(from: npy).values
      }
      let plainEdit = try edit([])
      XCTAssertEqual(try edit(["--guidance-scale", "1"]), plainEdit, "\(command)")
      XCTAssertNotEqual(try edit(["--guidance-scale", "4"]), plainEdit, "\(command)")
    }
    // Bad input: exit status 2 with a message naming the flag.
    let bad: [([String], String)] = [
      (
        ["train", "diffusion", "--class-dropout", "1.5", "--out", d.appendingPathComponent("x").path]
          + common,
        "--class-dropout"
      ),
      (["train", "diffusion", "--resume", "--class-dropout", "0.1", "--out", cfg.path], "--resume"),
      (
        [
          "train", "diffusion", "--init-from", start, "--config", f.config, "--out",
          d.appendingPathComponent("y").path,
        ] + common, "--config"
      ),
      (["sample", "--model", model, "--class", "3", "--n", "1"], "null label"),
      (["sample", "--model", start, "--guidance-scale", "2", "--n", "1"], "null"),
      (["sample", "--model", model, "--guidance-scale", "-1", "--n", "1"], "--guidance-scale"),
      (
        ["sample", "--model", model, "--guidance-scale", "2", "--guidance-rescale", "1.5", "--n", "1"],
        "--guidance-rescale"
      ),
      (["sample", "--model", model, "--guidance-rescale", "0.5", "--n", "1"], "--guidance-rescale"),
      (["sample", "--model", "vae", "--guidance-scale", "2", "--n", "1"], "--guidance-scale"),
      (["evaluate", "--model", start, "--guidance-scale", "2", "--n", "3"], "null"),
      (["evaluate", "--model", "vae", "--guidance-scale", "2", "--n", "10"], "--guidance-scale"),
      (
        ["img2img", "--model", start, "--image", image.path, "--strength", "0.5", "--guidance-scale", "2"],
        "null"
      ),
      (
        ["inpaint", "--model", start, "--image", image.path, "--mask", "half", "--guidance-scale", "2"],
        "null"
      ),
    ]
    for (args, word) in bad {
      let r = try runGpugen(args)
      XCTAssertEqual(r.0, 2, "\(args): \(r.2)")
      XCTAssertTrue(r.2.contains("gpugen: error:") && r.2.contains(word), "\(args): \(r.2)")
    }
  }
}
