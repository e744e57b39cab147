// The diffusion and VAE families' toy models and `ToyTraining`: the MLP denoiser's gradients against Float64
// central differences, every sampler driving it, folders (save, load, classify), training that lowers the loss,
// bitwise resume, and `ToyTraining.run` reproducible and honouring steps, seed and sample count.
import Foundation
import GPUGenCore
import XCTest

@testable import GPUGenModels

final class ToyFamiliesTests: XCTestCase {
  func tmp() throws -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent(
      "gpugen-toyfam-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: d) }
    return d
  }

  func smallDenoiser(_ data: ToyDataset = .ring8) -> ToyDenoiserConfig {
    var c = ToyDenoiserConfig()
    (c.data, c.hiddenDims, c.timeEmbeddingDim) = (data.spec, [16, 16], 8)
    return c
  }

  func smallVAE(_ data: ToyDataset = .ring8) -> ToyVAEConfig {
    var c = ToyVAEConfig()
    (c.data, c.hiddenDims) = (data.spec, [16, 16])
    return c
  }

  func diffusionOptions(_ data: ToyDataset = .ring8, steps: Int = 10) -> DiffusionTrainingOptions {
    var o = DiffusionTrainingOptions.toyDefaults()
    (o.data, o.steps, o.batchSize, o.warmup, o.seed) = (data.spec, steps, 32, 0, 3)
    return o
  }

  func vaeOptions(_ data: ToyDataset = .ring8, steps: Int = 10) -> VAETrainingOptions {
    var o = VAETrainingOptions.toyDefaults()
    (o.data, o.steps, o.batchSize, o.seed) = (data.spec, steps, 32, 3)
    return o
  }

  /// Every file of a checkpoint folder's model (config, weights, scheduler) as bytes.
  func folderBytes(_ dir: URL) throws -> [String: Data] {
    var out: [String: Data] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
    where name.hasSuffix(".json") || name.hasSuffix(".safetensors") {
      out[name] = try Data(contentsOf: dir.appendingPathComponent(name))
    }
    for name in ["model.safetensors", "optimizer.safetensors"] {
      out["training_state/" + name] = try Data(
        contentsOf: dir.appendingPathComponent("training_state").appendingPathComponent(name))
    }
    return out
  }

  // MARK: The denoiser

  /// The tape's gradients of Σ r ⊙ ε̂ with respect to every weight match Float64 central differences of the
  /// same network written out in Double (sinusoidal embedding, [h, e] into each hidden layer, SiLU).
  func testDenoiserGradientsMatchFloat64CentralDifferences() throws {
    var c = smallDenoiser()
    (c.hiddenDims, c.timeEmbeddingDim) = ([5, 4], 4)
    let m = try ToyDenoiser(config: c, seed: 11, on: .cpu)
    let n = 3
    let x: [Float] = [0.3, -1.2, 2.0, 0.5, -0.7, 1.1]
    let t: [Double] = [3, 250, 999]
    let r: [Float] = [0.5, -1, 0.25, 2, -0.75, 1.5]
    let emb = UNet2D.timestepEmbedding(t, dim: 4, flipSinToCos: true, freqShift: 0).map(Double.init)
    let params = m.sortedParameters
    var values = try params.map { try $0.tensor.toArray().map(Double.init) }
    let index = Dictionary(uniqueKeysWithValues: params.enumerated().map { ($1.name, $0) })
    func loss(_ v: [[Double]]) -> Double {
      var total = 0.0
      for i in 0..<n {
        var h = [Double(x[2 * i]), Double(x[2 * i + 1])]
        for l in 0..<m.net.count {
          let w = v[index["net.\(l).weight"]!], b = v[index["net.\(l).bias"]!]
          let last = l == m.net.count - 1
          let input = last ? h : h + Array(emb[(4 * i)..<(4 * i + 4)])
          let outs = b.count
          h = (0..<outs).map { o in
            let z = b[o] + (0..<input.count).reduce(0.0) { $0 + w[o * input.count + $1] * input[$1] }
            return last ? z : z / (1 + Foundation.exp(-z))
          }
        }
        total += Double(r[2 * i]) * h[0] + Double(r[2 * i + 1]) * h[1]
      }
      return total
    }
    let tape = Tape()
    let tensors = params.map(\.tensor)
    tape.watch(tensors)
    let xt = try Tensor(x, shape: [n, 2], on: .cpu), rt = try Tensor(r, shape: [n, 2], on: .cpu)
    let l = try tape.record { try (try m(xt, timesteps: t) * rt).sum() }
    XCTAssertEqual(Double(try l.toArray()[0]), loss(values), accuracy: 1e-4)
    let grads = try tape.gradients(of: l, wrt: tensors)
    let eps = 1e-6
    for (k, p) in params.enumerated() {
      let g = try XCTUnwrap(grads[k], p.name).toArray()
      for j in values[k].indices {
        let keep = values[k][j]
        values[k][j] = keep + eps
        let plus = loss(values)
        values[k][j] = keep - eps
        let minus = loss(values)
        values[k][j] = keep
        let fd = (plus - minus) / (2 * eps)
        XCTAssertEqual(Double(g[j]), fd, accuracy: 1e-4 + 1e-3 * abs(fd), "\(p.name)[\(j)]")
      }
    }
  }

  /// The denoiser runs under every sampler on the toy schedule: (N, 2) finite points, the same for any batch
  /// split; a wrong shape, timestep count or class labels are errors.
  func testDenoiserRunsOnEverySampler() throws {
    let m = try ToyDenoiser(config: smallDenoiser(), seed: 1, on: .cpu)
    let json = String(
      decoding: try JSONSerialization.data(
        withJSONObject: ToyDiffusionTrainer.defaultSchedulerJSON(prediction: "epsilon")),
      as: UTF8.self)
    for kind in SamplerKind.allCases {
      let plan = try SamplerPlanner.plan(kind, schedulerJSON: json, steps: kind == .ddpm ? 50 : 8)
      let s = DiffusionSampler(unet: m, plan: plan)
      let all = try s.sample(SampleRequest(count: 6, batchSize: 6, seed: 4))
      let split = try s.sample(SampleRequest(count: 6, batchSize: 4, seed: 4))
      XCTAssertEqual(all.count, 12, kind.rawValue)
      XCTAssertTrue(all.allSatisfy(\.isFinite), kind.rawValue)
      XCTAssertEqual(all, split, kind.rawValue)
    }
    let x = try Tensor.zeros([3, 2], on: .cpu)
    XCTAssertThrowsError(try m(try Tensor.zeros([3, 2, 1, 1], on: .cpu), timesteps: [1]))
    XCTAssertThrowsError(try m(x, timesteps: [1, 2]))
    XCTAssertThrowsError(try m(x, timesteps: [1], classLabels: [0, 0, 0]))
    XCTAssertEqual(try m(x, timesteps: [5]).shape, [3, 2])
  }

  // MARK: Folders

  func testConfigsRoundTripAndRejectBadFields() throws {
    var d = smallDenoiser(.grid25)
    d.activation = "relu"
    XCTAssertEqual(try ToyDenoiserConfig(json: try d.jsonData()), d)
    var v = smallVAE(.grid25)
    (v.latentDim, v.gaussianSigma) = (3, 0.1)
    XCTAssertEqual(try ToyVAEConfig(json: try v.jsonData()), v)
    let bad: [(String, String)] = [
      (#"{"_class_name": "ToyDenoiser", "depth": 3}"#, "depth"),
      (#"{"_class_name": "ToyDenoiser", "data": "toy:moons"}"#, "toy:moons"),
      (#"{"_class_name": "ToyDenoiser", "time_embedding_dim": 7}"#, "time_embedding_dim"),
      (#"{"_class_name": "ToyDenoiser", "act_fn": "swoosh"}"#, "swoosh"),
      (#"{"_class_name": "ConvVAE"}"#, "ConvVAE"),
    ]
    for (json, word) in bad {
      XCTAssertThrowsError(try ToyDenoiserConfig(json: Data(json.utf8))) {
        XCTAssertTrue("\($0)".contains(word), "\($0)")
      }
    }
    XCTAssertThrowsError(try ToyVAEConfig(json: Data(#"{"likelihood": "bernoulli"}"#.utf8))) {
      XCTAssertTrue("\($0)".contains("Gaussian"), "\($0)")
    }
    XCTAssertThrowsError(try ToyVAEConfig(json: Data(#"{"gaussian_sigma": -1}"#.utf8)))
  }

  /// A checkpoint is a model folder: classified by family, loaded with the EMA weights, sampled by `ToyModel`.
  func testCheckpointsAreToyFoldersThatLoadAndClassify() throws {
    let d = try tmp()
    let dt = try ToyDiffusionTrainer(
      config: smallDenoiser(), options: diffusionOptions(steps: 3), device: .cpu)
    for _ in 0..<3 { _ = try dt.trainStep() }
    let dDir = try dt.writeCheckpoint(to: d.appendingPathComponent("diffusion"))
    let vt = try ToyVAETrainer(
      config: smallVAE(.grid25), options: vaeOptions(.grid25, steps: 3), device: .cpu)
    for _ in 0..<3 { _ = try vt.trainStep() }
    let vDir = try vt.writeCheckpoint(to: d.appendingPathComponent("vae"))

    XCTAssertEqual(try ModelFolder.classify(dDir), .toyDiffusion(dDir))
    XCTAssertEqual(try ModelFolder.classify(vDir), .toyVAE(vDir))
    XCTAssertEqual(try ModelFolder.classify(dDir).family, .diffusion)
    XCTAssertEqual(try ModelFolder.classify(vDir).family, .vae)
    for name in ["config.json", ModelFolder.weightsFile, ToyDenoiser.schedulerFile] {
      XCTAssertTrue(FileManager.default.fileExists(atPath: dDir.appendingPathComponent(name).path), name)
    }
    let sched =
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: dDir.appendingPathComponent(ToyDenoiser.schedulerFile))) as? [String: Any]
    XCTAssertEqual(sched?["clip_sample"] as? Bool, false)
    XCTAssertEqual(try ToyDenoiser.readFolder(dDir).config.data, "toy:ring8")
    XCTAssertEqual(try ToyVAE.readConfig(vDir).data, "toy:grid25")

    // The loaded weights are the EMA's, not the raw ones.
    let loadedD = try ToyDenoiser.load(from: dDir, device: .cpu), emaD = try dt.emaModel()
    let x = try Tensor([0.1, 0.2, -1, 2], shape: [2, 2], on: .cpu)
    XCTAssertEqual(
      try loadedD(x, timesteps: [10, 500]).toArray(), try emaD(x, timesteps: [10, 500]).toArray())
    XCTAssertNotEqual(
      try loadedD(x, timesteps: [10, 500]).toArray(), try dt.model(x, timesteps: [10, 500]).toArray())
    let loadedV = try ToyVAE.load(from: vDir, device: .cpu)
    let z = try Tensor([0.5, -0.5, 1, 0], shape: [2, 2], on: .cpu)
    XCTAssertEqual(try loadedV.decode(z).toArray(), try vt.emaModel().decode(z).toArray())

    // Any family's toy folder samples through ToyModel; image commands refuse the toy VAE clearly.
    for (dir, family) in [(dDir, ModelFamily.diffusion), (vDir, .vae)] {
      let model = try XCTUnwrap(try ToyModel.load(try ModelFolder.classify(dir), device: .cpu))
      XCTAssertEqual(model.family, family)
      let a = try model.sample(count: 10, seed: 2, batchSize: 10)
      XCTAssertEqual(a.count, 20)
      XCTAssertEqual(a, try model.sample(count: 10, seed: 2, batchSize: 3))
      XCTAssertNotEqual(a, try model.sample(count: 10, seed: 3, batchSize: 10))
    }
    XCTAssertThrowsError(try ModelFolder.loadVAE(try ModelFolder.classify(vDir), device: .cpu)) {
      XCTAssertTrue("\($0)".contains("toy 2-D VAE"), "\($0)")
    }
    // A missing scheduler config is named.
    try FileManager.default.removeItem(at: dDir.appendingPathComponent(ToyDenoiser.schedulerFile))
    XCTAssertThrowsError(try ToyDenoiser.readFolder(dDir)) {
      XCTAssertTrue("\($0)".contains(ToyDenoiser.schedulerFile), "\($0)")
    }
  }

  // MARK: Training

  /// A few hundred steps lower each family's loss (mean of the last 30 steps below the first 30).
  func testShortTrainingLowersTheLoss() throws {
    var o = diffusionOptions(steps: 300)
    o.lrSchedule = "constant"
    let dt = try ToyDiffusionTrainer(config: smallDenoiser(), options: o, device: .cpu)
    var dl: [Float] = []
    for _ in 0..<300 { dl.append(try dt.trainStep().loss) }
    let vt = try ToyVAETrainer(config: smallVAE(), options: vaeOptions(steps: 300), device: .cpu)
    var vl: [Float] = []
    for _ in 0..<300 { vl.append(try vt.trainStep().loss) }
    func mean(_ l: ArraySlice<Float>) -> Float { l.reduce(0, +) / Float(l.count) }
    // ε-MSE starts near 1; the negative ELBO (nats per point) has no fixed scale, so it must drop by 0.2 nats.
    XCTAssertLessThan(
      mean(dl.suffix(30)), 0.8 * mean(dl.prefix(30)), "diffusion: \(dl.prefix(30)) → \(dl.suffix(30))")
    XCTAssertLessThan(
      mean(vl.suffix(30)), mean(vl.prefix(30)) - 0.2, "vae: \(vl.prefix(30)) → \(vl.suffix(30))")
  }

  /// 6 steps straight and 3 + resume + 3 write the same bytes, for both families.
  func testResumeIsBitwise() throws {
    let d = try tmp()
    let straight = try ToyDiffusionTrainer(
      config: smallDenoiser(), options: diffusionOptions(steps: 6), device: .cpu)
    for _ in 0..<6 { _ = try straight.trainStep() }
    let a = try straight.writeCheckpoint(to: d.appendingPathComponent("a"))
    let split = try ToyDiffusionTrainer(
      config: smallDenoiser(), options: diffusionOptions(steps: 6), device: .cpu)
    for _ in 0..<3 { _ = try split.trainStep() }
    try split.writeCheckpoint(to: d.appendingPathComponent("b"))
    let resumed = try ToyDiffusionTrainer.resume(from: d.appendingPathComponent("b"), device: .cpu)
    XCTAssertEqual(resumed.step, 3)
    for _ in 0..<3 { _ = try resumed.trainStep() }
    XCTAssertEqual(
      try folderBytes(a), try folderBytes(try resumed.writeCheckpoint(to: d.appendingPathComponent("b"))))

    let vs = try ToyVAETrainer(config: smallVAE(), options: vaeOptions(steps: 6), device: .cpu)
    for _ in 0..<6 { _ = try vs.trainStep() }
    let va = try vs.writeCheckpoint(to: d.appendingPathComponent("va"))
    let vsplit = try ToyVAETrainer(config: smallVAE(), options: vaeOptions(steps: 6), device: .cpu)
    for _ in 0..<3 { _ = try vsplit.trainStep() }
    try vsplit.writeCheckpoint(to: d.appendingPathComponent("vb"))
    let vr = try ToyVAETrainer.resume(
      from: d.appendingPathComponent("vb"), device: .cpu, changes: ResumeChanges(steps: 6))
    for _ in 0..<3 { _ = try vr.trainStep() }
    XCTAssertEqual(
      try folderBytes(va), try folderBytes(try vr.writeCheckpoint(to: d.appendingPathComponent("vb"))))
    XCTAssertEqual(try ToyVAETrainer.savedOptions(in: d.appendingPathComponent("vb")).steps, 6)
    // A diffusion checkpoint is not a VAE's.
    XCTAssertThrowsError(try ToyVAETrainer.resume(from: d.appendingPathComponent("b"), device: .cpu))
  }

  /// Bad runs are refused: image data, a data set that disagrees with the config, binarisation.
  func testBadOptionsAreNamed() throws {
    var o = diffusionOptions()
    o.data = "fashion-mnist"
    XCTAssertThrowsError(try ToyDiffusionTrainer(config: smallDenoiser(), options: o, device: .cpu)) {
      XCTAssertTrue("\($0)".contains("toy data"), "\($0)")
    }
    XCTAssertThrowsError(
      try ToyDiffusionTrainer(config: smallDenoiser(.grid25), options: diffusionOptions(.ring8), device: .cpu)
    ) { XCTAssertTrue("\($0)".contains("toy:grid25"), "\($0)") }
    var v = vaeOptions()
    v.dynamicBinarization = true
    XCTAssertThrowsError(try ToyVAETrainer(config: smallVAE(), options: v, device: .cpu)) {
      XCTAssertTrue("\($0)".contains("Bernoulli"), "\($0)")
    }
  }

  // MARK: ToyTraining

  /// The same seed gives the same losses and samples bit for bit; another seed different ones (every family).
  func testRunIsReproducible() throws {
    for family in ModelFamily.allCases {
      let a = try ToyTraining.run(
        family: family, dataset: .ring8, seed: 5, steps: 3, sampleCount: 20, device: .cpu)
      let b = try ToyTraining.run(
        family: family, dataset: .ring8, seed: 5, steps: 3, sampleCount: 20, device: .cpu)
      let c = try ToyTraining.run(
        family: family, dataset: .ring8, seed: 6, steps: 3, sampleCount: 20, device: .cpu)
      XCTAssertEqual(a.samples, b.samples, family.rawValue)
      XCTAssertEqual(a.losses, b.losses, family.rawValue)
      XCTAssertEqual(a.scores, b.scores, family.rawValue)
      XCTAssertNotEqual(a.samples, c.samples, family.rawValue)
      XCTAssertNotEqual(a.losses, c.losses, family.rawValue)
      XCTAssertEqual(a.family, family)
    }
  }

  /// steps, seed, sampleCount and the data set reach the run (each would fail if ignored).
  func testRunHonoursStepsSeedCountAndData() throws {
    var calls = 0
    let r = try ToyTraining.run(
      family: .diffusion, dataset: .grid25, seed: 1, steps: 4, sampleCount: 30, device: .cpu,
      progress: { calls += $0 }
    )
    XCTAssertEqual(r.lossNames, ["loss"])
    XCTAssertEqual(r.losses.count, 4)
    XCTAssertTrue(r.losses.allSatisfy { $0.count == 1 && $0[0].isFinite })
    XCTAssertEqual(calls, 4)
    XCTAssertEqual(r.samples.count, 60)
    XCTAssertEqual(r.scores.count, 30)
    XCTAssertEqual(r.scores.modes, 25)
    XCTAssertEqual(r.scores, ToyMetrics.score(r.samples, dataset: .grid25))
    let longer = try ToyTraining.run(
      family: .diffusion, dataset: .grid25, seed: 1, steps: 6, sampleCount: 30, device: .cpu)
    XCTAssertEqual(longer.losses.count, 6)
    XCTAssertEqual(Array(longer.losses.prefix(4)), r.losses)
    XCTAssertNotEqual(longer.samples, r.samples)
    let vae = try ToyTraining.run(
      family: .vae, dataset: .ring8, seed: 1, steps: 2, sampleCount: 7, device: .cpu)
    XCTAssertEqual(vae.lossNames, ["loss", "reconstruction", "kl"])
    XCTAssertEqual(vae.losses.count, 2)
    XCTAssertEqual(vae.samples.count, 14)
    XCTAssertEqual(vae.scores.modes, 8)
    let gan = try ToyTraining.run(
      family: .gan, dataset: .ring8, seed: 1, steps: 2, sampleCount: 9, device: .cpu)
    XCTAssertEqual(gan.lossNames, ["d_loss", "g_loss"])
    XCTAssertEqual(gan.losses.count, 2)
    XCTAssertEqual(gan.samples.count, 18)
    XCTAssertGreaterThanOrEqual(vae.seconds, 0)
    XCTAssertEqual(ToyTraining.defaultSteps(.diffusion), DiffusionTrainingOptions.toyDefaults().steps)
    XCTAssertEqual(ToyTraining.defaultSteps(.vae), VAETrainingOptions.toyDefaults().steps)
    XCTAssertEqual(ToyTraining.defaultSteps(.gan), GANTrainingOptions.compareToyDefaults().steps)
    XCTAssertEqual(ToyTraining.defaultSteps(.gan), 5_000)
    // The GAN trains as compareToyDefaults() and the plain MLP pair say (not the batch-norm toy generator).
    var o = GANTrainingOptions.compareToyDefaults()
    (o.data, o.steps, o.seed) = ("toy:ring8", 2, 1)
    let trainer = try GANTrainer(
      model: GANModelConfig(latentDim: 2, loss: .ns, conditional: false, numClasses: 0, data: "toy:ring8"),
      generator: GANNetworkConfig(architecture: .mlp, role: .generator),
      discriminator: GANNetworkConfig(architecture: .mlp, role: .discriminator), data: .toy(.ring8),
      options: o,
      device: .cpu)
    var losses: [[Double]] = []
    while trainer.step < 2 {
      let s = try trainer.trainStep()
      losses.append([Double(s.dLoss), Double(s.gLoss)])
    }
    XCTAssertEqual(gan.losses, losses)
    XCTAssertEqual(
      [Double(o.batchSize), o.lr, o.lrD, o.beta1, o.beta2], [256, 2e-4, 2e-4, 0, 0.9])
    XCTAssertEqual(o.lrSchedule, "constant")
    XCTAssertThrowsError(
      try ToyTraining.run(family: .vae, dataset: .ring8, seed: 1, steps: 1, sampleCount: 0, device: .cpu))
  }
}
