// The GAN family at the library level: the reference DCGAN against its PyTorch module tree (names, shapes and
// counts worked out by hand), spectral and no normalisation, class-conditional networks (conditional batch norm
// in G, the projection term ⟨embed(y), h⟩ in D), PacGAN packing, the configs and their errors, the losses
// against their closed forms, training (bitwise resume with every piece of state, n_dis, each option changing
// the run, DiffAugment) and sampling (latents keyed by (seed, index), truncation, class labels).
import Foundation
import XCTest

@testable import GPUGenModels

final class GANTests: XCTestCase {
  func tmp() throws -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("gpugen-gan-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: d) }
    return d
  }

  // MARK: Fixtures

  /// A tiny DCGAN network for 8×8 images: widths [8, 16] (final side 2), latent 8.
  func tinyDCGAN(
    _ role: GANRole, classes: Int = 0, norm: GANNorm = .batch, pack: Int = 1, channels: Int = 1, size: Int = 8
  ) -> GANNetworkConfig {
    var c = GANNetworkConfig(role: role)
    (c.channels, c.sampleSize, c.blockOutChannels) = (channels, size, [8, 16])
    if role == .generator { c.latentDim = 8 }
    (c.numClasses, c.norm, c.pack) = (classes, norm, pack)
    return c
  }

  /// The toy MLP with hidden widths [32, 32].
  func tinyMLP(_ role: GANRole, pack: Int = 1, norm: GANNorm = .none) -> GANNetworkConfig {
    var c = GANNetworkConfig(architecture: .mlp, role: role)
    (c.hiddenDims, c.pack, c.norm) = ([32, 32], pack, norm)
    return c
  }

  /// 24 synthetic 8×8 grey images in [−1, 1], 3 classes (each its own gradient), labelled.
  func images(count: Int = 24) -> TrainingImages {
    var v: [Float] = []
    for i in 0..<count {
      let c = i % 3
      for y in 0..<8 {
        for x in 0..<8 {
          let base = c == 0 ? Float(x) / 7 : c == 1 ? Float(y) / 7 : Float(x + y) / 14
          v.append((2 * base - 1) * 0.9 + Float(i % 5) * 0.02)
        }
      }
    }
    return TrainingImages(
      images: v, labels: (0..<count).map { $0 % 3 }, count: count, channels: 1, size: 8, classCount: 3)
  }

  /// A run of the tiny DCGAN on `images()`: batch 8, 4 steps, seed 5.
  func imageTrainer(
    conditional: Bool = false, dNorm: GANNorm = .batch, device: Device = .cpu,
    _ edit: (inout GANTrainingOptions) -> Void = { _ in }
  ) throws -> GANTrainer {
    var o = GANTrainingOptions()
    (o.batchSize, o.steps, o.data, o.seed) = (8, 4, "synthetic", 5)
    edit(&o)
    let k = conditional ? 3 : 0
    let model = GANModelConfig(
      latentDim: 8, loss: o.loss, conditional: conditional, numClasses: k, data: o.data)
    return try GANTrainer(
      model: model, generator: tinyDCGAN(.generator, classes: k),
      discriminator: tinyDCGAN(.discriminator, classes: k, norm: dNorm), data: .images(images()), options: o,
      device: device)
  }

  /// A run of the tiny MLP pair on toy:ring8: the toy defaults with batch 8, 4 steps, seed 5.
  func toyTrainer(pack: Int = 1, _ edit: (inout GANTrainingOptions) -> Void = { _ in }) throws -> GANTrainer {
    var o = GANTrainingOptions.toyDefaults()
    (o.batchSize, o.steps, o.data, o.seed) = (8, 4, "toy:ring8", 5)
    edit(&o)
    let model = GANModelConfig(latentDim: 2, loss: o.loss, conditional: false, numClasses: 0, data: o.data)
    return try GANTrainer(
      model: model, generator: tinyMLP(.generator), discriminator: tinyMLP(.discriminator, pack: pack),
      data: .toy(.ring8), options: o, device: .cpu)
  }

  /// Every tensor of a run as bit patterns, by name: the raw generator and the discriminator (parameters and
  /// buffers), the EMA, both optimizers' states, and the counters.
  func state(_ t: GANTrainer) throws -> [String: [UInt32]] {
    var s: [String: [UInt32]] = [:]
    func put(_ key: String, _ x: Tensor) throws { s[key] = try x.toArray().map(\.bitPattern) }
    for (n, x) in t.generator.stateDict { try put("G.\(n)", x) }
    for (n, x) in t.discriminator.stateDict { try put("D.\(n)", x) }
    for (n, x) in zip(t.namesG, t.ema.shadow) { try put("EMA.\(n)", x) }
    let og = try t.optimizerG.exportState(names: t.namesG), od = try t.optimizerD.exportState(names: t.namesD)
    for (n, x) in og.tensors { try put("optG.\(n)", x) }
    for (n, x) in od.tensors { try put("optD.\(n)", x) }
    s["counters"] = [t.step, og.step, od.step, t.ema.optimizationStep].map { UInt32($0) }
    return s
  }

  func assertSameState(_ a: [String: [UInt32]], _ b: [String: [UInt32]], _ what: String) {
    XCTAssertEqual(a.keys.sorted(), b.keys.sorted(), what)
    for key in a.keys.sorted() where a[key] != b[key] { XCTFail("\(what): \(key) differs") }
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

  func shapes(_ m: Module) -> [String: [Int]] {
    Dictionary(uniqueKeysWithValues: m.namedParameters.map { ($0.name, $0.tensor.shape) })
  }

  func bufferShapes(_ m: Module) -> [String: [Int]] {
    Dictionary(uniqueKeysWithValues: m.namedBuffers.map { ($0.name, $0.tensor.shape) })
  }

  func hasBatchNorm(_ m: Module) -> Bool {
    m.namedModules.contains { $0.module is BatchNorm2d || $0.module is ConditionalBatchNorm2d }
  }

  // MARK: Architecture

  func testReferenceDCGANMatchesThePyTorchModuleTree() throws {
    let g = try GANGenerator(config: GANNetworkConfig(role: .generator), on: .cpu)
    XCTAssertEqual(
      shapes(g),
      [
        "net.0.weight": [6272, 64], "net.0.bias": [6272], "net.2.weight": [128], "net.2.bias": [128],
        "net.4.weight": [128, 64, 4, 4], "net.4.bias": [64], "net.5.weight": [64], "net.5.bias": [64],
        "net.7.weight": [64, 1, 4, 4], "net.7.bias": [1],
      ])
    XCTAssertEqual(
      bufferShapes(g),
      [
        "net.2.running_mean": [128], "net.2.running_var": [128], "net.2.num_batches_tracked": [],
        "net.5.running_mean": [64], "net.5.running_var": [64], "net.5.num_batches_tracked": [],
      ])
    // Linear(64, 6272) + BN(128) + ConvT(128, 64, 4) + BN(64) + ConvT(64, 1, 4).
    let gCount = (64 * 6272 + 6272) + 2 * 128 + (128 * 64 * 16 + 64) + 2 * 64 + (64 * 1 * 16 + 1)
    XCTAssertEqual(gCount, 540_225)
    XCTAssertEqual(g.parameterCount, gCount)
    let gl = g.net.layers
    XCTAssertEqual(gl.count, 9)
    XCTAssertEqual((gl[0] as? Linear).map { [$0.features.in, $0.features.out] }, [64, 6272])
    XCTAssertEqual((gl[1] as? Unflatten)?.shape, [128, 7, 7])
    XCTAssertTrue(gl[2] is BatchNorm2d)
    XCTAssertEqual((gl[3] as? ActivationLayer)?.function, .relu)
    for (i, (cin, cout)) in [(4, (128, 64)), (7, (64, 1))] {
      let c = try XCTUnwrap(gl[i] as? ConvTranspose2d, "net.\(i)")
      XCTAssertEqual(c.weight.shape, [cin, cout, 4, 4])
      XCTAssertEqual([c.stride, c.padding, c.outputPadding], [2, 1, 0])
    }
    XCTAssertTrue(gl[5] is BatchNorm2d)
    XCTAssertEqual((gl[6] as? ActivationLayer)?.function, .relu)
    XCTAssertEqual((gl[8] as? ActivationLayer)?.function, .tanh)

    let d = try GANDiscriminator(config: GANNetworkConfig(role: .discriminator), on: .cpu)
    XCTAssertEqual(
      shapes(d),
      [
        "net.0.weight": [64, 1, 4, 4], "net.0.bias": [64], "net.2.weight": [128, 64, 4, 4],
        "net.2.bias": [128],
        "net.3.weight": [128], "net.3.bias": [128], "linear.weight": [1, 6272], "linear.bias": [1],
      ])
    XCTAssertEqual(
      bufferShapes(d),
      ["net.3.running_mean": [128], "net.3.running_var": [128], "net.3.num_batches_tracked": []])
    // Conv2d(1, 64, 4) + Conv2d(64, 128, 4) + BN(128) + Linear(6272, 1).
    let dCount = (64 * 1 * 16 + 64) + (128 * 64 * 16 + 128) + 2 * 128 + (6272 + 1)
    XCTAssertEqual(dCount, 138_817)
    XCTAssertEqual(d.parameterCount, dCount)
    let dl = d.net.layers
    XCTAssertEqual(dl.count, 6)
    for i in [0, 2] {
      let c = try XCTUnwrap(dl[i] as? Conv2d, "net.\(i)")
      XCTAssertEqual([c.stride.0, c.stride.1], [2, 2])
      XCTAssertEqual([c.padding.0, c.padding.1, c.padding.2, c.padding.3], [1, 1, 1, 1])
    }
    XCTAssertEqual((dl[1] as? ActivationLayer)?.function, .leakyRelu(slope: 0.2))
    XCTAssertTrue(dl[3] is BatchNorm2d)
    XCTAssertEqual((dl[4] as? ActivationLayer)?.function, .leakyRelu(slope: 0.2))
    XCTAssertTrue(dl[5] is Flatten)
    XCTAssertEqual([d.linear.features.in, d.linear.features.out], [6272, 1])
    XCTAssertNil(d.embed)

    // Output shapes and ranges.
    let z = try Tensor.randomNormal(shape: [3, 64], seed: 1)
    let x = try g(z)
    XCTAssertEqual(x.shape, [3, 1, 28, 28])
    let pixels = try x.toArray()
    XCTAssertTrue(pixels.allSatisfy { $0 >= -1 && $0 <= 1 })
    XCTAssertGreaterThan(Set(pixels).count, 100)
    XCTAssertEqual(try d(x).shape, [3, 1])
    XCTAssertThrowsError(try g(try Tensor.randomNormal(shape: [3, 63], seed: 1))) {
      XCTAssertTrue("\($0)".contains("(N, 64)"), "\($0)")
    }
    XCTAssertThrowsError(try d(try Tensor.randomNormal(shape: [2, 1, 32, 32], seed: 1))) {
      XCTAssertTrue("\($0)".contains("[1, 28, 28]"), "\($0)")
    }
    // A config of the other role is refused.
    XCTAssertThrowsError(try GANGenerator(config: GANNetworkConfig(role: .discriminator), on: .cpu)) {
      XCTAssertTrue("\($0)".contains("not a generator"), "\($0)")
    }
    XCTAssertThrowsError(try GANDiscriminator(config: GANNetworkConfig(role: .generator), on: .cpu)) {
      XCTAssertTrue("\($0)".contains("not a discriminator"), "\($0)")
    }
  }

  func testSpectralAndNoNormalisation() throws {
    var gc = GANNetworkConfig(role: .generator), dc = GANNetworkConfig(role: .discriminator)
    (gc.norm, dc.norm) = (.spectral, .spectral)
    let g = try GANGenerator(config: gc, on: .cpu), d = try GANDiscriminator(config: dc, on: .cpu)
    XCTAssertFalse(hasBatchNorm(g))
    XCTAssertFalse(hasBatchNorm(d))
    // G: Linear → ReLU → Unflatten → ConvT → ReLU → ConvT → tanh; ConvT weights are (in, out, k, k), so their
    // matrix rows are the output channels (torch's dim 1).
    XCTAssertEqual(
      shapes(g),
      [
        "net.0.weight_orig": [6272, 64], "net.0.bias": [6272], "net.3.weight_orig": [128, 64, 4, 4],
        "net.3.bias": [64], "net.5.weight_orig": [64, 1, 4, 4], "net.5.bias": [1],
      ])
    XCTAssertEqual(
      bufferShapes(g),
      [
        "net.0.weight_u": [6272], "net.0.weight_v": [64], "net.3.weight_u": [64], "net.3.weight_v": [2048],
        "net.5.weight_u": [1], "net.5.weight_v": [1024],
      ])
    XCTAssertEqual(g.parameterCount, 540_225 - 2 * 128 - 2 * 64)
    XCTAssertEqual(
      shapes(d),
      [
        "net.0.weight_orig": [64, 1, 4, 4], "net.0.bias": [64], "net.2.weight_orig": [128, 64, 4, 4],
        "net.2.bias": [128], "linear.weight_orig": [1, 6272], "linear.bias": [1],
      ])
    XCTAssertEqual(
      bufferShapes(d),
      [
        "net.0.weight_u": [64], "net.0.weight_v": [16], "net.2.weight_u": [128], "net.2.weight_v": [1024],
        "linear.weight_u": [1], "linear.weight_v": [6272],
      ])
    XCTAssertEqual(d.parameterCount, 138_817 - 2 * 128)
    XCTAssertTrue(d.net.layers[4] is Flatten)
    let x = try g(try Tensor.randomNormal(shape: [2, 64], seed: 2))
    XCTAssertEqual(x.shape, [2, 1, 28, 28])
    XCTAssertTrue(try x.toArray().allSatisfy { $0 >= -1 && $0 <= 1 })
    XCTAssertEqual(try d(x).shape, [2, 1])
    // A training forward runs a power iteration; evaluation leaves u alone.
    let sn = try XCTUnwrap((d.net.layers[2] as? Conv2d)?.spectralNorm)
    let u0 = try sn.u.toArray()
    _ = try d(x)
    let u1 = try sn.u.toArray()
    XCTAssertNotEqual(u0, u1)
    d.eval()
    _ = try d(x)
    XCTAssertEqual(try sn.u.toArray(), u1)

    // norm none: neither batch norms nor spectral normalisation.
    (gc.norm, dc.norm) = (.none, .none)
    let gn = try GANGenerator(config: gc, on: .cpu), dn = try GANDiscriminator(config: dc, on: .cpu)
    XCTAssertFalse(hasBatchNorm(gn))
    XCTAssertFalse(hasBatchNorm(dn))
    XCTAssertTrue(gn.namedBuffers.isEmpty)
    XCTAssertTrue(dn.namedBuffers.isEmpty)
    XCTAssertEqual(
      Set(shapes(dn).keys),
      ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias", "linear.weight", "linear.bias"])
    XCTAssertEqual(gn.parameterCount, 540_225 - 2 * 128 - 2 * 64)
    XCTAssertEqual(try dn(try gn(try Tensor.randomNormal(shape: [2, 64], seed: 2))).shape, [2, 1])
  }

  /// An MLP generator with norm batch is PyTorch's Sequential(Linear, BatchNorm1d, ReLU, …, Linear): each hidden
  /// layer normalised with the batch's statistics in training (zero mean, unit variance per feature before the
  /// affine) and with the running ones in evaluation.
  func testMLPGeneratorWithBatchNorm() throws {
    var c = tinyMLP(.generator, norm: .batch)
    c.hiddenDims = [16, 8]
    XCTAssertEqual(try GANNetworkConfig(json: try c.jsonData()), c)
    let g = try GANGenerator(config: c, seed: 3, on: .cpu)
    XCTAssertTrue(hasBatchNorm(g))
    XCTAssertEqual(
      shapes(g),
      [
        "net.0.weight": [16, 2], "net.0.bias": [16], "net.1.weight": [16], "net.1.bias": [16],
        "net.3.weight": [8, 16], "net.3.bias": [8], "net.4.weight": [8], "net.4.bias": [8],
        "net.6.weight": [2, 8], "net.6.bias": [2],
      ])
    XCTAssertEqual(
      Set(bufferShapes(g).keys),
      [
        "net.1.running_mean", "net.1.running_var", "net.1.num_batches_tracked", "net.4.running_mean",
        "net.4.running_var", "net.4.num_batches_tracked",
      ])
    // Training: the first hidden layer's pre-activations, normalised over the batch, have mean 0 and variance 1
    // (γ = 1, β = 0), so ReLU keeps about half of them; the running mean moves off zero.
    let z = try Tensor.randomNormal(shape: [64, 2], seed: 4)
    let bn = try XCTUnwrap(g.net.layers[1] as? BatchNorm2d)
    let h = try bn(try (g.net.layers[0] as! Linear)(z))
    XCTAssertEqual(h.shape, [64, 16])
    let v = try h.toArray()
    for j in 0..<16 {
      let col = (0..<64).map { Double(v[$0 * 16 + j]) }
      let mean = col.reduce(0, +) / 64
      let variance = col.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 64
      XCTAssertEqual(mean, 0, accuracy: 1e-4)
      XCTAssertEqual(variance, 1, accuracy: 1e-2)
    }
    XCTAssertTrue(try bn.runningMean.toArray().contains { $0 != 0 })
    let train = try g(z).toArray()
    g.eval()
    let eval = try g(z).toArray()
    XCTAssertEqual(train.count, 128)
    XCTAssertNotEqual(train, eval)
    // The same generator without the norm has neither the batch norms nor their buffers.
    c.norm = .none
    let plain = try GANGenerator(config: c, seed: 3, on: .cpu)
    XCTAssertFalse(hasBatchNorm(plain))
    XCTAssertTrue(plain.namedBuffers.isEmpty)
  }

  func testSampleSizes32And64WithThreeChannels() throws {
    for (size, widths) in [(32, [8, 16]), (64, [8, 16, 16])] {
      var g = GANNetworkConfig(role: .generator), d = GANNetworkConfig(role: .discriminator)
      (g.channels, g.sampleSize, g.blockOutChannels, g.latentDim) = (3, size, widths, 16)
      (d.channels, d.sampleSize, d.blockOutChannels) = (3, size, widths)
      let gen = try GANGenerator(config: g, on: .cpu), disc = try GANDiscriminator(config: d, on: .cpu)
      let s = size >> widths.count
      XCTAssertEqual(gen.namedParameters.first { $0.name == "net.0.weight" }?.tensor.shape, [16 * s * s, 16])
      XCTAssertEqual(disc.namedParameters.first { $0.name == "net.0.weight" }?.tensor.shape, [8, 3, 4, 4])
      XCTAssertEqual(disc.linear.features.in, 16 * s * s)
      let x = try gen(try Tensor.randomNormal(shape: [2, 16], seed: 3))
      XCTAssertEqual(x.shape, [2, 3, size, size])
      XCTAssertTrue(try x.toArray().allSatisfy { $0 >= -1 && $0 <= 1 })
      XCTAssertEqual(try disc(x).shape, [2, 1])
    }
  }

  // MARK: Class-conditional networks

  func testClassConditionalGeneratorAndProjectionDiscriminator() throws {
    let g = try GANGenerator(config: tinyDCGAN(.generator, classes: 3), seed: 1, on: .cpu)
    XCTAssertTrue(g.net.layers[2] is ConditionalBatchNorm2d)
    XCTAssertTrue(g.net.layers[5] is ConditionalBatchNorm2d)
    let gs = shapes(g)
    XCTAssertEqual(gs["net.2.embed.weight"], [3, 2 * 16])
    XCTAssertEqual(gs["net.5.embed.weight"], [3, 2 * 8])
    XCTAssertNil(gs["net.2.weight"])
    XCTAssertEqual(bufferShapes(g)["net.2.bn.running_mean"], [16])
    let d = try GANDiscriminator(config: tinyDCGAN(.discriminator, classes: 3), seed: 1, on: .cpu)
    XCTAssertEqual(shapes(d)["embed.weight"], [3, 16 * 2 * 2])
    XCTAssertNotNil(d.embed)

    // Labels change G's output once the class table is not the initial γ = 1, β = 0.
    for case let c as ConditionalBatchNorm2d in g.net.layers {
      try c.embed.weight.assign(try Tensor.randomNormal(shape: c.embed.weight.shape, seed: 7))
    }
    g.eval()
    let z = try Tensor.randomNormal(shape: [2, 8], seed: 2)
    let a = try g(z, labels: [0, 0]).toArray(), b = try g(z, labels: [1, 1]).toArray()
    XCTAssertNotEqual(a, b)
    XCTAssertTrue(a.allSatisfy { $0 >= -1 && $0 <= 1 })

    // D(x, y) = linear(h) + ⟨embed(y), h⟩ with h the flattened features.
    d.eval()
    let x = try Tensor.randomNormal(shape: [4, 1, 8, 8], seed: 3)
    let y = [0, 2, 1, 2]
    let out = try d(x, labels: y).toArray()
    XCTAssertEqual(try d(x, labels: y).shape, [4, 1])
    let hT = try d.net(x)
    XCTAssertEqual(hT.shape, [4, 64])
    let h = try hT.toArray(), base = try d.linear(hT).toArray(), e = try d.embed!.weight.toArray()
    var projection: [Double] = []
    for i in 0..<4 {
      var p = 0.0
      for k in 0..<64 { p += Double(e[y[i] * 64 + k]) * Double(h[i * 64 + k]) }
      projection.append(p)
      let expected = Double(base[i]) + p
      XCTAssertEqual(Double(out[i]), expected, accuracy: 1e-4 * max(1, abs(expected)), "sample \(i)")
    }
    XCTAssertGreaterThan(projection.map(abs).max()!, 1e-2)
    XCTAssertNotEqual(try d(x, labels: [1, 1, 1, 1]).toArray(), try d(x, labels: [0, 0, 0, 0]).toArray())

    // Labels missing, out of range, miscounted, or given to an unconditional network.
    let cases: [(() throws -> Tensor, String)] = [
      ({ try g(z) }, "class-conditional"),
      ({ try g(z, labels: [0, 3]) }, "class 3"),
      ({ try g(z, labels: [0, -1]) }, "class -1"),
      ({ try g(z, labels: [0]) }, "1 class labels for 2 samples"),
      ({ try d(x) }, "class-conditional"),
      ({ try d(x, labels: [0, 1, 2, 3]) }, "class 3"),
      (
        { try GANGenerator(config: self.tinyDCGAN(.generator), on: .cpu)(z, labels: [0, 0]) },
        "unconditional"
      ),
      (
        { try GANDiscriminator(config: self.tinyDCGAN(.discriminator), on: .cpu)(x, labels: [0, 0, 0, 0]) },
        "unconditional"
      ),
    ]
    for (i, (call, word)) in cases.enumerated() {
      XCTAssertThrowsError(try call(), "case \(i)") {
        XCTAssertTrue("\($0)".contains(word), "case \(i): \($0)")
      }
    }
  }

  // MARK: PacGAN

  func testPacGANDiscriminatorPacksSamplesAlongTheChannels() throws {
    let d = try GANDiscriminator(config: tinyDCGAN(.discriminator, norm: .none, pack: 2), seed: 1, on: .cpu)
    XCTAssertEqual(shapes(d)["net.0.weight"], [8, 2, 4, 4])
    let x = try Tensor.randomNormal(shape: [6, 1, 8, 8], seed: 4)
    let out = try d(x).toArray()
    XCTAssertEqual(try d(x).shape, [3, 1])
    // Logit 0 is D's view of samples 0 and 1 side by side (in that order), whatever else is in the batch.
    let v = try x.toArray()
    let pair = try d(try Tensor(Array(v[0..<128]), shape: [2, 1, 8, 8])).toArray()
    XCTAssertEqual(pair[0], out[0], accuracy: 1e-5)
    let swapped = try d(try Tensor(Array(v[64..<128] + v[0..<64]), shape: [2, 1, 8, 8])).toArray()
    XCTAssertNotEqual(swapped[0], out[0])
    XCTAssertThrowsError(try d(try Tensor.randomNormal(shape: [5, 1, 8, 8], seed: 4))) {
      XCTAssertTrue("\($0)".contains("divisible by 2"), "\($0)")
    }
    // The MLP: its first Linear takes data_dim · pack inputs.
    let m = try GANDiscriminator(config: tinyMLP(.discriminator, pack: 2), on: .cpu)
    XCTAssertEqual(shapes(m)["net.0.weight"], [32, 4])
    XCTAssertEqual(try m(try Tensor.randomNormal(shape: [8, 2], seed: 5)).shape, [4, 1])
    XCTAssertThrowsError(try m(try Tensor.randomNormal(shape: [7, 2], seed: 5)))
    // A run whose batch is not a multiple of the pack is refused up front.
    XCTAssertThrowsError(try toyTrainer(pack: 3)) { XCTAssertTrue("\($0)".contains("--pack 3"), "\($0)") }
  }

  // MARK: Configs

  func testConfigJSONRoundTripsAndRejectsBadFields() throws {
    var cond = tinyDCGAN(.discriminator, classes: 4, norm: .spectral)
    cond.channels = 3
    var wide = GANNetworkConfig(role: .generator)
    (wide.sampleSize, wide.blockOutChannels, wide.latentDim) = (64, [16, 32, 64], 100)
    for c in [
      GANNetworkConfig(role: .generator), GANNetworkConfig(role: .discriminator), cond, wide,
      tinyDCGAN(.generator, classes: 3), tinyDCGAN(.discriminator, norm: .none, pack: 4),
      tinyMLP(.generator), tinyMLP(.discriminator, pack: 2, norm: .spectral),
    ] {
      XCTAssertEqual(try GANNetworkConfig(json: try c.jsonData()), c, c.className)
    }
    let m = GANModelConfig(
      latentDim: 12, loss: .hinge, conditional: true, numClasses: 10, data: "fashion-mnist")
    XCTAssertEqual(try GANModelConfig(json: try m.jsonData()), m)
    let toy = GANModelConfig(latentDim: 2, loss: .ns, conditional: false, numClasses: 0, data: "toy:grid25")
    XCTAssertEqual(try GANModelConfig(json: try toy.jsonData()), toy)

    for (json, words) in [
      (#"{"_class_name": "DCGANGenerator", "widths": [8]}"#, ["widths"]),
      (#"{"_class_name": "DCGANGenerator", "pack": 2}"#, ["pack"]),
      (#"{"_class_name": "DCGANDiscriminator", "latent_dim": 8}"#, ["latent_dim"]),
      (#"{"_class_name": "MLPGenerator", "sample_size": 28}"#, ["sample_size"]),
      (#"{"_class_name": "DCGANGenerator", "norm": "layer"}"#, ["norm layer"]),
      (#"{"_class_name": "MLPDiscriminator", "norm": "batch"}"#, ["norm batch", "MLP discriminator"]),
      (#"{"_class_name": "MLPGenerator", "num_classes": 3}"#, ["class-conditional MLP generator"]),
      (
        #"{"_class_name": "DCGANGenerator", "num_classes": 3, "norm": "spectral"}"#,
        ["class-conditional", "norm batch"]
      ),
      (
        #"{"_class_name": "DCGANDiscriminator", "pack": 2, "num_classes": 3}"#, ["pack", "class-conditional"]
      ),
      (#"{"_class_name": "DCGANDiscriminator", "sample_size": 30}"#, ["sample_size 30"]),
      (#"{"_class_name": "DCGANGenerator", "latent_dim": 2.5}"#, ["latent_dim"]),
    ] {
      XCTAssertThrowsError(try GANNetworkConfig(json: Data(json.utf8), source: "g.json"), json) { e in
        for w in words + ["g.json"] { XCTAssertTrue("\(e)".contains(w), "\(json): expected '\(w)' in \(e)") }
      }
    }
    for (json, word) in [
      (#"{"latent_dim": 8, "temperature": 1}"#, "temperature"),
      (#"{"latent_dim": 8, "loss": "wgan"}"#, "wgan"),
      (#"{"latent_dim": 8, "conditional": true}"#, "num_classes 0"),
      (#"{"loss": "ns"}"#, "latent_dim"),
    ] {
      XCTAssertThrowsError(try GANModelConfig(json: Data(json.utf8)), json) {
        XCTAssertTrue("\($0)".contains(word), "\(json): \($0)")
      }
    }
  }

  /// An unknown _class_name is named in the error, beside the ones gpugen reads.
  func testUnknownClassNameIsNamed() throws {
    XCTAssertThrowsError(
      try GANNetworkConfig(json: Data(#"{"_class_name": "BigGANGenerator"}"#.utf8), source: "g.json")
    ) { e in
      for w in ["BigGANGenerator", "DCGANGenerator", "g.json"] {
        XCTAssertTrue("\(e)".contains(w), "expected '\(w)' in \(e)")
      }
    }
  }

  func testModelConfigCheckNamesBothSides() throws {
    let m = GANModelConfig(latentDim: 64, loss: .ns, conditional: false, numClasses: 0, data: "fashion-mnist")
    let g = GANNetworkConfig(role: .generator), d = GANNetworkConfig(role: .discriminator)
    XCTAssertNoThrow(try m.check(generator: g, discriminator: d, source: "src"))
    var d32 = d
    d32.sampleSize = 32
    var g8 = g
    g8.latentDim = 8
    var d3 = d
    d3.channels = 3
    var cg = g, cd = d
    (cg.numClasses, cd.numClasses) = (10, 3)
    let conditional = GANModelConfig(
      latentDim: 64, loss: .ns, conditional: true, numClasses: 10, data: "fashion-mnist")
    var cg3 = g
    cg3.numClasses = 3
    var cd10 = d
    cd10.numClasses = 10
    for (model, gen, disc, words) in [
      (m, g, d32, ["[1, 28, 28]", "[1, 32, 32]"]),
      (m, g, d3, ["[1, 28, 28]", "[3, 28, 28]"]),
      (m, g8, d, ["latent_dim 64", "the generator 8"]),
      (conditional, cg, cd, ["10 classes", "discriminator has num_classes 3"]),
      (conditional, cg3, cd10, ["10 classes", "generator has num_classes 3"]),
      (m, cg, d, ["unconditional", "num_classes 10 (generator)"]),
      (m, d, g, ["DCGANDiscriminator", "DCGANGenerator"]),
    ] {
      XCTAssertThrowsError(try model.check(generator: gen, discriminator: disc, source: "src"), "\(words)") {
        e in
        for w in words + ["src", "do not fit"] {
          XCTAssertTrue("\(e)".contains(w), "expected '\(w)' in \(e)")
        }
      }
    }
  }

  // MARK: Losses

  func testLossesEqualTheirClosedForms() throws {
    let r: [Float] = [-3, -0.5, 0, 0.7, 1.5, 4], f: [Float] = [2, -1.5, 0.3, -0.9, 5, -4]
    func softplus(_ x: Double) -> Double { max(x, 0) + log1p(exp(-abs(x))) }
    func mean(_ v: [Double]) -> Double { v.reduce(0, +) / Double(v.count) }
    let rd = r.map(Double.init), fd = f.map(Double.init)
    let expected: [GANLoss: (d: Double, g: Double, real: Double)] = [
      .ns: (
        mean(rd.map { softplus(-$0) }) + mean(fd.map { softplus($0) }), mean(fd.map { softplus(-$0) }),
        mean(rd.map { 1 / (1 + exp(-$0)) })
      ),
      .hinge: (mean(rd.map { max(0, 1 - $0) }) + mean(fd.map { max(0, 1 + $0) }), -mean(fd), mean(rd)),
    ]
    for loss in GANLoss.allCases {
      let t = try toyTrainer { $0.loss = loss }
      let real = try Tensor(r, shape: [6, 1]), fake = try Tensor(f, shape: [6, 1])
      let e = try XCTUnwrap(expected[loss])
      let dl = Double(try t.dLoss(real: real, fake: fake).toArray()[0])
      let gl = Double(try t.gLoss(fake: fake).toArray()[0])
      XCTAssertEqual(dl, e.d, accuracy: 1e-5 * max(1, abs(e.d)), "\(loss) D")
      XCTAssertEqual(gl, e.g, accuracy: 1e-5 * max(1, abs(e.g)), "\(loss) G")
      XCTAssertEqual(Double(try t.readable(real).toArray()[0]), e.real, accuracy: 1e-5, "\(loss) D(x)")
    }
    XCTAssertNotEqual(expected[.ns]!.d, expected[.hinge]!.d)
  }

  // MARK: Training

  /// Class-conditional, spectral norm and projection in D, conditional batch norm in G, DiffAugment
  /// translation + cutout, n_dis 2: 4 steps straight equal 2 steps, a checkpoint, resume, 2 steps, bit for bit.
  func testConditionalSpectralRunResumesBitwise() throws {
    let make = {
      try self.imageTrainer(conditional: true, dNorm: .spectral) {
        (o: inout GANTrainingOptions) in
        (o.nDis, o.diffAugment, o.loss) = (2, ["translation", "cutout"], .hinge)
      }
    }
    let straight = try make()
    let initial = try state(straight)
    for _ in 0..<4 { _ = try straight.trainStep() }
    let split = try make()
    for _ in 0..<2 { _ = try split.trainStep() }
    let d = try tmp()
    try split.writeCheckpoint(to: d.appendingPathComponent("split"))
    let resumed = try GANTrainer.resume(
      from: d.appendingPathComponent("split"), data: .images(images()), device: .cpu)
    XCTAssertEqual(resumed.step, 2)
    XCTAssertEqual(resumed.options, straight.options)
    for _ in 0..<2 { _ = try resumed.trainStep() }
    let a = try state(straight), b = try state(resumed)
    assertSameState(a, b, "resumed run")
    XCTAssertEqual(a["counters"], [4, 4, 8, 4])
    // The state holds every piece, and training moved each of them.
    for key in [
      "G.net.2.embed.weight", "G.net.2.bn.running_mean", "G.net.2.bn.num_batches_tracked",
      "D.net.0.weight_orig", "D.net.0.weight_u", "D.net.2.weight_v", "D.embed.weight_orig",
      "D.embed.weight_u",
      "D.linear.weight_v", "EMA.net.0.weight", "optG.exp_avg.net.0.weight",
      "optD.exp_avg_sq.embed.weight_orig",
    ] {
      XCTAssertNotNil(a[key], key)
      XCTAssertNotEqual(a[key], initial[key], "\(key) did not change")
    }
    // The checkpoints both runs write are the same bytes.
    let ca = try straight.writeCheckpoint(to: d.appendingPathComponent("a"))
    let cb = try resumed.writeCheckpoint(to: d.appendingPathComponent("b"))
    let fa = try files(ca), fb = try files(cb)
    XCTAssertEqual(fa.keys.sorted(), fb.keys.sorted())
    XCTAssertTrue(fa.keys.contains("training_state/optimizer_d.safetensors"))
    for (k, v) in fa where fb[k] != v { XCTFail("\(k) differs") }
  }

  func testMLPPackedRunResumesBitwise() throws {
    let straight = try toyTrainer(pack: 2)
    for _ in 0..<4 { _ = try straight.trainStep() }
    let split = try toyTrainer(pack: 2)
    for _ in 0..<2 { _ = try split.trainStep() }
    let d = try tmp()
    try split.writeCheckpoint(to: d)
    let resumed = try GANTrainer.resume(from: d, data: .toy(.ring8), device: .cpu)
    XCTAssertEqual(resumed.discriminatorConfig.pack, 2)
    XCTAssertEqual(resumed.generatorConfig.architecture, .mlp)
    for _ in 0..<2 { _ = try resumed.trainStep() }
    assertSameState(try state(straight), try state(resumed), "resumed packed MLP run")
    XCTAssertEqual(try state(resumed)["counters"], [4, 4, 4, 4])
    // `changes` replace the total and the checkpoint and sample intervals, and are checked like new options.
    let changed = try GANTrainer.resume(
      from: d, data: .toy(.ring8), device: .cpu,
      changes: ResumeChanges(steps: 9, checkpointEvery: 7, sampleEvery: 0)
    ).options
    XCTAssertEqual([changed.steps, changed.checkpointEvery, changed.sampleEvery], [9, 7, 0])
    XCTAssertThrowsError(
      try GANTrainer.resume(
        from: d, data: .toy(.ring8), device: .cpu, changes: ResumeChanges(checkpointEvery: 0)))
  }

  /// Instance selection: squared Mahalanobis distances against a direct 3 × 3 inverse (with the same ridge), each class keeping
  /// round(ratio · count) images nearest its own mean (planted outliers go first), one group without labels, and
  /// a share outside (0, 1] refused.
  func testInstanceSelectionKeepsTheDensestShareOfEachClass() throws {
    var state: UInt64 = 12_345
    func uniform() -> Double {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Double(state >> 11) / Double(1 << 53)
    }
    // Two classes of 40 correlated 3-d points around different means; the last point of each is far out.
    var features: [Float] = []
    var labels: [Int] = []
    for c in 0..<2 {
      for i in 0..<40 {
        let (a, b, e) = (uniform() - 0.5, uniform() - 0.5, uniform() - 0.5)
        var p = [a + 10 * Double(c), a + 0.3 * b, 2 * e - Double(c)]
        if i == 39 { p = p.map { $0 + (c == 0 ? 4 : -4) } }
        features += p.map(Float.init)
        labels.append(c)
      }
    }
    // Distances of class 0 against mean, covariance (n − 1) and its cofactor inverse.
    let rows = Array(0..<40)
    let got = InstanceSelection.mahalanobis(features: features, dimension: 3, rows: rows)
    let x = rows.map { r in (0..<3).map { Double(features[r * 3 + $0]) } }
    let mu = (0..<3).map { j in x.map { $0[j] }.reduce(0, +) / 40 }
    var cv = [[Double]](repeating: [0, 0, 0], count: 3)
    for p in x { for i in 0..<3 { for j in 0..<3 { cv[i][j] += (p[i] - mu[i]) * (p[j] - mu[j]) / 39 } } }
    // The documented ridge: 1e-6 of the mean variance on the diagonal.
    let ridge = 1e-6 * (cv[0][0] + cv[1][1] + cv[2][2]) / 3
    for i in 0..<3 { cv[i][i] += ridge }
    let det =
      cv[0][0] * (cv[1][1] * cv[2][2] - cv[1][2] * cv[2][1]) - cv[0][1]
      * (cv[1][0] * cv[2][2] - cv[1][2] * cv[2][0])
      + cv[0][2] * (cv[1][0] * cv[2][1] - cv[1][1] * cv[2][0])
    var inv = [[Double]](repeating: [0, 0, 0], count: 3)
    for i in 0..<3 {
      for j in 0..<3 {
        let (r0, r1) = ((j + 1) % 3, (j + 2) % 3), (c0, c1) = ((i + 1) % 3, (i + 2) % 3)
        inv[i][j] = (cv[r0][c0] * cv[r1][c1] - cv[r0][c1] * cv[r1][c0]) / det
      }
    }
    for (k, p) in x.enumerated() {
      let dx = (0..<3).map { p[$0] - mu[$0] }
      var want = 0.0
      for i in 0..<3 { for j in 0..<3 { want += dx[i] * inv[i][j] * dx[j] } }
      XCTAssertEqual(got[k], want, accuracy: 1e-9 * want + 1e-12, "row \(k)")
    }
    XCTAssertEqual(got.indices.max { got[$0] < got[$1] }, 39, "the planted outlier is the farthest")

    // Each class keeps round(ratio · 40), nearest its own mean first; the outliers are the first to go.
    for (ratio, kept) in [(0.5, 20), (0.9, 36), (0.99, 40), (1.0, 40)] {
      let sel = try InstanceSelection.select(features: features, dimension: 3, labels: labels, ratio: ratio)
      XCTAssertEqual(sel, sel.sorted())
      XCTAssertEqual(sel.filter { $0 < 40 }.count, kept, "\(ratio)")
      XCTAssertEqual(sel.filter { $0 >= 40 }.count, kept, "\(ratio)")
      if kept < 40 { XCTAssertFalse(sel.contains(39) || sel.contains(79), "\(ratio)") }
      let threshold = sel.filter { $0 < 40 }.map { got[$0] }.max()!
      for r in rows where !sel.contains(r) { XCTAssertGreaterThanOrEqual(got[r], threshold) }
    }
    // Without labels one Gaussian covers both clusters: the share is of the whole set.
    let pooled = try InstanceSelection.select(features: features, dimension: 3, labels: nil, ratio: 0.5)
    XCTAssertEqual(pooled.count, 40)
    for bad in [0.0, -0.5, 1.5, .nan] {
      XCTAssertThrowsError(
        try InstanceSelection.select(features: features, dimension: 3, labels: labels, ratio: bad), "\(bad)")
    }
    // The subset keeps images and labels together.
    let images = TrainingImages(
      images: (0..<12).map(Float.init), labels: [0, 1, 2], count: 3, channels: 1, size: 2, classCount: 3)
    let sub = try images.subset([2, 0])
    XCTAssertEqual(sub.images, [8, 9, 10, 11, 0, 1, 2, 3])
    XCTAssertEqual(sub.labels, [2, 0])
    XCTAssertEqual([sub.count, sub.classCount], [2, 3])
    XCTAssertThrowsError(try images.subset([3]))
  }

  func testNDisTakesKDiscriminatorStepsPerGeneratorStep() throws {
    for k in [1, 3] {
      let t = try toyTrainer { $0.nDis = k }
      for _ in 0..<2 { _ = try t.trainStep() }
      XCTAssertEqual(t.optimizerD.stepCount, 2 * k)
      XCTAssertEqual(t.optimizerG.stepCount, 2)
      XCTAssertEqual(t.ema.optimizationStep, 2)
      XCTAssertEqual(t.step, 2)
    }
    XCTAssertThrowsError(try toyTrainer { $0.nDis = 0 }) {
      XCTAssertTrue("\($0)".contains("--n-dis"), "\($0)")
    }
  }

  /// Each option changes the run where it should (an option that is ignored fails).
  func testEveryTrainingOptionChangesTheRun() throws {
    typealias Snapshot = (g: [[Float]], d: [[Float]], ema: [[Float]], decay: Double?)
    func run(_ steps: Int, _ edit: (inout GANTrainingOptions) -> Void = { _ in }) throws -> Snapshot {
      let t = try toyTrainer(edit)
      for _ in 0..<steps { _ = try t.trainStep() }
      return (
        try t.generator.sortedParameters.map { try $0.tensor.toArray() },
        try t.discriminator.sortedParameters.map { try $0.tensor.toArray() },
        try t.ema.shadow.map { try $0.toArray() }, t.ema.lastDecay
      )
    }
    let one = try run(1), three = try run(3)
    // D steps before G: a new G learning rate leaves D's first step alone; a new D learning rate does not.
    let lrG = try run(1) { $0.lr = 5e-4 }
    XCTAssertEqual(lrG.d, one.d)
    XCTAssertNotEqual(lrG.g, one.g)
    let lrD = try run(1) { $0.lrD = 5e-4 }
    XCTAssertNotEqual(lrD.d, one.d)
    // Adam's betas matter from its second step, in both networks.
    for (name, edit) in [
      ("beta1", { (o: inout GANTrainingOptions) in o.beta1 = o.beta1 == 0.3 ? 0.6 : 0.3 }),
      ("beta2", { (o: inout GANTrainingOptions) in o.beta2 = 0.5 }),
    ] {
      let r = try run(3, edit)
      XCTAssertNotEqual(r.d, three.d, name)
      XCTAssertNotEqual(r.g, three.g, name)
    }
    // The EMA decay changes only the average (the step-s decay is min((1 + s)/(10 + s), cap)).
    let ema = try run(3) { $0.emaDecay = 0.1 }
    XCTAssertEqual(ema.g, three.g)
    XCTAssertEqual(ema.d, three.d)
    XCTAssertNotEqual(ema.ema, three.ema)
    XCTAssertEqual(ema.decay, 0.1)
    XCTAssertEqual(three.decay!, 3.0 / 12, accuracy: 1e-12)
    for (name, r) in [
      ("clipGrad", try run(3) { $0.clipGrad = 1e-3 }), ("warmup", try run(1) { $0.warmup = 4 }),
      ("lrSchedule", try run(3) { $0.lrSchedule = $0.lrSchedule == "cosine" ? "constant" : "cosine" }),
      ("seed", try run(1) { $0.seed = 6 }),
      ("batchSize", try run(1) { $0.batchSize = 16 }), ("loss", try run(1) { $0.loss = .hinge }),
      ("nDis", try run(1) { $0.nDis = 2 }),
    ] {
      XCTAssertNotEqual(r.d, name == "lrSchedule" || name == "clipGrad" ? three.d : one.d, name)
    }
  }

  func testDiffAugmentChangesWhatTheDiscriminatorSees() throws {
    let plain = try imageTrainer()
    let x = try plain.realBatch(0).x
    XCTAssertEqual(x.shape, [8, 1, 8, 8])
    XCTAssertEqual(try plain.augment(x, step: 0, stream: 0).toArray(), try x.toArray())
    _ = try plain.trainStep()
    let plainD = try plain.discriminator.sortedParameters.map { try $0.tensor.toArray() }
    for policy in DiffAugmentPolicy.allCases {
      let t = try imageTrainer { $0.diffAugment = [policy.rawValue] }
      XCTAssertNotEqual(try t.augment(x, step: 0, stream: 0).toArray(), try x.toArray(), policy.rawValue)
      _ = try t.trainStep()
      XCTAssertNotEqual(
        try t.discriminator.sortedParameters.map { try $0.tensor.toArray() }, plainD, policy.rawValue)
    }
    var o = GANTrainingOptions()
    o.diffAugment = ["flip"]
    XCTAssertThrowsError(try o.validate()) { XCTAssertTrue("\($0)".contains("flip"), "\($0)") }
  }

  /// The same run on every device (OpenCL included) logs the same figures, within float tolerance.
  func testTrainingStepsAgreeOnEveryDevice() throws {
    var reference: [[Float]]?
    for device in try Device.all() {
      let t = try imageTrainer(conditional: true, dNorm: .spectral, device: device) {
        (o: inout GANTrainingOptions) in
        (o.nDis, o.diffAugment) = (2, ["translation", "cutout"])
      }
      let figures = try (0..<2).map { _ in
        let s = try t.trainStep()
        return [s.dLoss, s.gLoss, s.dReal, s.dFake, s.gradNormD, s.gradNormG]
      }
      XCTAssertTrue(figures.joined().allSatisfy(\.isFinite), "\(device)")
      if let reference {
        for (a, b) in zip(reference.joined(), figures.joined()) {
          XCTAssertEqual(a, b, accuracy: 1e-3 * max(1, abs(a)), "\(device)")
        }
      } else {
        reference = figures
      }
    }
  }

  func testDivergenceIsReported() throws {
    let t = try toyTrainer { o in (o.lr, o.lrD, o.loss) = (1e30, 1e30, .hinge) }
    var thrown: Error?
    for _ in 0..<10 {
      do { _ = try t.trainStep() } catch {
        thrown = error
        break
      }
    }
    let e = try XCTUnwrap(thrown, "a run at lr 1e30 did not diverge")
    guard case TrainingError.diverged = e else { return XCTFail("\(e)") }
  }

  // MARK: Sampling

  func conditionalModel() throws -> GANModel {
    let g = try GANGenerator(config: tinyDCGAN(.generator, classes: 3), seed: 2, on: .cpu)
    for case let c as ConditionalBatchNorm2d in g.net.layers {
      try c.embed.weight.assign(try Tensor.randomNormal(shape: c.embed.weight.shape, seed: 9))
    }
    g.eval()
    return GANModel(
      config: GANModelConfig(latentDim: 8, loss: .ns, conditional: true, numClasses: 3, data: "synthetic"),
      generator: g, discriminator: nil)
  }

  func testSamplesDependOnlyOnSeedAndIndex() throws {
    let config = GANModelConfig(latentDim: 8, loss: .ns, conditional: false, numClasses: 0, data: "synthetic")
    var reference: (samples: [Float], truncated: [Float])?
    for device in try Device.all() {
      let g = try GANGenerator(config: tinyDCGAN(.generator), seed: 3, on: device)
      g.eval()
      let model = GANModel(config: config, generator: g, discriminator: nil)
      let runs = try [7, 3, 1].map {
        try GANOps.sample(model, count: 7, batchSize: $0, seed: 4, device: device)
      }
      XCTAssertEqual(runs[0].count, 7 * 64)
      for r in runs.dropFirst() {
        for (u, v) in zip(runs[0], r) { XCTAssertEqual(u, v, accuracy: 1e-6, "\(device)") }
      }
      let truncated = try GANOps.latents(count: 7, latentDim: 8, seed: 4, truncation: 0.5, device: device)
        .toArray()
      if let reference {
        for (u, v) in zip(reference.samples, runs[0]) { XCTAssertEqual(u, v, accuracy: 1e-4, "\(device)") }
        for (u, v) in zip(reference.truncated, truncated) {
          XCTAssertEqual(u, v, accuracy: 1e-5, "\(device)")
        }
      } else {
        reference = (runs[0], truncated)
      }
      XCTAssertNotEqual(try GANOps.sample(model, count: 7, batchSize: 7, seed: 5, device: device), runs[0])
      // The latents of samples 3..<7 are rows 3..<7 of the 7, with and without truncation.
      for psi in [nil, 0.5] as [Double?] {
        let all = try GANOps.latents(count: 7, latentDim: 8, seed: 4, truncation: psi, device: device)
          .toArray()
        let tail = try GANOps.latents(
          start: 3, count: 4, latentDim: 8, seed: 4, truncation: psi, device: device
        )
        .toArray()
        XCTAssertEqual(Array(all[24...]), tail, "\(device) ψ \(String(describing: psi))")
      }
    }
  }

  func testTruncation() throws {
    let z = try GANOps.latents(count: 64, latentDim: 8, seed: 6, device: .cpu).toArray()
    // ψ = 1 (both modes), a ψ no draw reaches, and no ψ leave z untouched.
    for (psi, mode) in [(1.0, TruncationMode.resample), (1, .scale), (10, .resample)]
      as [(Double, TruncationMode)]
    {
      let t = try GANOps.latents(count: 64, latentDim: 8, seed: 6, truncation: psi, mode: mode, device: .cpu)
      XCTAssertEqual(try t.toArray().map(\.bitPattern), z.map(\.bitPattern), "ψ \(psi) \(mode)")
    }
    // resample: every |z| ≤ ψ; the coordinates already inside stay; the others were redrawn.
    let psi = 0.5
    let r = try GANOps.latents(
      count: 64, latentDim: 8, seed: 6, truncation: psi, mode: .resample, device: .cpu
    )
    .toArray()
    XCTAssertTrue(r.allSatisfy { abs($0) <= Float(psi) })
    var kept = 0, redrawn = 0
    for (a, b) in zip(z, r) {
      if abs(a) <= Float(psi) {
        XCTAssertEqual(a.bitPattern, b.bitPattern)
        kept += 1
      } else {
        XCTAssertNotEqual(a, b)
        redrawn += 1
      }
    }
    XCTAssertGreaterThan(kept, 50)
    XCTAssertGreaterThan(redrawn, 50)
    // scale: exactly z·ψ.
    let s = try GANOps.latents(count: 64, latentDim: 8, seed: 6, truncation: 0.7, mode: .scale, device: .cpu)
      .toArray()
    XCTAssertEqual(s.map(\.bitPattern), z.map { ($0 * Float(0.7)).bitPattern })
    // ψ ≤ 0 (or not finite) is an error in both modes.
    for bad in [0, -1, .nan, .infinity] as [Double] {
      for mode in TruncationMode.allCases {
        XCTAssertThrowsError(
          try GANOps.latents(count: 2, latentDim: 8, seed: 6, truncation: bad, mode: mode, device: .cpu)
        ) { XCTAssertTrue("\($0)".contains("--truncation"), "\($0)") }
      }
    }
    // Truncated latents reach the samples.
    let model = try conditionalModel()
    let plain = try GANOps.sample(model, count: 4, batchSize: 4, seed: 1, labels: [0], device: .cpu)
    let truncated = try GANOps.sample(
      model, count: 4, batchSize: 4, seed: 1, truncation: 0.3, labels: [0], device: .cpu)
    XCTAssertNotEqual(plain, truncated)
  }

  func testClassLabelsCycle() throws {
    let model = try conditionalModel()
    let z = try GANOps.latents(count: 5, latentDim: 8, seed: 2, device: .cpu)
    let expected = try Tape.noGrad { try model.generator(z, labels: [0, 2, 0, 2, 0]).toArray() }
    for batch in [5, 2] {
      let s = try GANOps.sample(model, count: 5, batchSize: batch, seed: 2, labels: [0, 2], device: .cpu)
      for (u, v) in zip(s, expected) { XCTAssertEqual(u, v, accuracy: 1e-6, "batch \(batch)") }
    }
    XCTAssertNotEqual(
      try GANOps.sample(model, count: 5, batchSize: 5, seed: 2, labels: [2, 0], device: .cpu), expected)
    XCTAssertThrowsError(try GANOps.sample(model, count: 5, batchSize: 5, seed: 2, device: .cpu)) {
      XCTAssertTrue("\($0)".contains("class-conditional"), "\($0)")
    }
    XCTAssertThrowsError(try GANOps.sample(model, count: 5, batchSize: 5, seed: 2, labels: [], device: .cpu))
    XCTAssertThrowsError(try GANOps.sample(model, count: 5, batchSize: 5, seed: 2, labels: [3], device: .cpu))
    {
      XCTAssertTrue("\($0)".contains("class 3"), "\($0)")
    }
    XCTAssertThrowsError(try GANOps.sample(model, count: 0, batchSize: 5, seed: 2, labels: [0], device: .cpu))
  }

  // MARK: Model folders

  func testCheckpointIsAGANFolder() throws {
    let t = try imageTrainer(conditional: true)
    for _ in 0..<2 { _ = try t.trainStep() }
    let d = try tmp()
    let ck = try t.writeCheckpoint(to: d)
    XCTAssertTrue(GANModel.isGANFolder(ck))
    XCTAssertEqual(try ModelFolder.classify(ck), .gan(ck))
    let gan = try GANModel.load(from: ck, device: .cpu, discriminator: true)
    XCTAssertEqual(gan.config, t.modelConfig)
    XCTAssertEqual(gan.generator.config, t.generatorConfig)
    XCTAssertFalse(gan.generator.isTraining)
    XCTAssertFalse(gan.isToy)
    XCTAssertEqual(gan.sampleShape, [1, 8, 8])
    // The folder's generator is the EMA (with the raw generator's buffers); the discriminator is the raw one.
    let loaded = Dictionary(uniqueKeysWithValues: gan.generator.stateDict.map { ($0.name, $0.tensor) })
    for (n, s) in zip(t.namesG, t.ema.shadow) { XCTAssertEqual(try loaded[n]?.toArray(), try s.toArray(), n) }
    for (n, b) in t.generator.namedBuffers { XCTAssertEqual(try loaded[n]?.toArray(), try b.toArray(), n) }
    let disc = try XCTUnwrap(gan.discriminator)
    XCTAssertFalse(disc.isTraining)
    let trained = Dictionary(uniqueKeysWithValues: t.discriminator.stateDict.map { ($0.name, $0.tensor) })
    for (n, x) in disc.stateDict { XCTAssertEqual(try x.toArray(), try trained[n]?.toArray(), n) }
    // The EMA generator the trainer samples with is the same network.
    let ema = try t.emaModel()
    let a = try GANOps.sample(ema, count: 3, batchSize: 3, seed: 0, labels: [1], device: .cpu)
    let b = try GANOps.sample(gan, count: 3, batchSize: 3, seed: 0, labels: [1], device: .cpu)
    XCTAssertEqual(a, b)

    // A folder without its generator, or whose configs do not fit, is an error naming the problem.
    let fm = FileManager.default
    let noG = d.appendingPathComponent("no-generator")
    try fm.copyItem(at: ck, to: noG)
    try fm.removeItem(at: noG.appendingPathComponent("generator"))
    XCTAssertTrue(GANModel.isGANFolder(noG))
    XCTAssertThrowsError(try GANModel.load(from: noG, device: .cpu)) {
      XCTAssertTrue("\($0)".contains("generator"), "\($0)")
    }
    let misfit = d.appendingPathComponent("misfit")
    try fm.copyItem(at: ck, to: misfit)
    var dc = t.discriminatorConfig
    dc.sampleSize = 16
    try dc.jsonData().write(to: misfit.appendingPathComponent("discriminator/config.json"))
    XCTAssertThrowsError(try GANModel.load(from: misfit, device: .cpu)) {
      XCTAssertTrue("\($0)".contains("[1, 8, 8]") && "\($0)".contains("[1, 16, 16]"), "\($0)")
    }
  }
}

extension GANTests {
  /// A tiny unconditional DCGAN (1×8×8 images, latent 8) in eval mode, and images it makes from known latents.
  func projectionFixture() throws -> (GANModel, images: [Float]) {
    let g = try GANGenerator(config: tinyDCGAN(.generator), seed: 6, on: .cpu)
    g.eval()
    let model = GANModel(
      config: GANModelConfig(latentDim: 8, loss: .ns, conditional: false, numClasses: 0, data: "synthetic"),
      generator: g, discriminator: nil)
    let images = try GANOps.sample(model, count: 6, batchSize: 6, seed: 40, device: .cpu)
    return (model, images)
  }

  func testProjectionFindsLatentsThatReproduceTheImagesAndHonoursItsParameters() throws {
    let (model, images) = try projectionFixture()
    func project(
      steps: Int = 60, lr: Double = 0.05, seed: UInt64 = 0, batchSize: Int = 6,
      classifier: ImageClassifier? = nil,
      featureWeight: Double = 1
    ) throws -> GANProjection.Result {
      try GANProjection.project(
        model, images: images, count: 6, classifier: classifier, featureWeight: featureWeight, steps: steps,
        lr: lr,
        batchSize: batchSize, seed: seed, device: .cpu)
    }
    let short = try project(steps: 1), long = try project()
    XCTAssertEqual(long.latents.count, 6 * 8)
    XCTAssertEqual(long.images.count, images.count)
    XCTAssertEqual(long.mse.count, 6)
    let mean = { (r: GANProjection.Result) in r.mse.reduce(0, +) / Double(r.mse.count) }
    XCTAssertLessThan(mean(long), 0.5 * mean(short), "more steps: a closer reconstruction (steps is used)")
    // Each image's MSE is its own reconstruction error on the [0, 1] scale.
    var direct = 0.0
    for e in 0..<64 { direct += pow(Double(long.images[e] - images[e]) / 2, 2) }
    XCTAssertEqual(long.mse[0], direct / 64, accuracy: 1e-9)
    // lr and seed are used; the batch size is not (each latent sees only its image's gradient).
    let slow = try project(lr: 1e-5)
    XCTAssertGreaterThan(mean(slow), mean(long))
    XCTAssertNotEqual(try project(steps: 5, seed: 1).latents, try project(steps: 5, seed: 0).latents)
    let split = try project(batchSize: 4)
    for (a, b) in zip(split.latents, long.latents) { XCTAssertEqual(a, b, accuracy: 1e-4) }
    // A feature term (a classifier of the generator's images) changes the optimum; weight 0 switches it off.
    let judge = try ImageClassifier(
      config: ClassifierConfig(imageSize: 8, numClasses: 2, convChannels: [2, 2, 2], featureDim: 4), seed: 3,
      device: .cpu)
    let withFeatures = try project(steps: 20, classifier: judge, featureWeight: 50)
    XCTAssertNotEqual(withFeatures.latents, try project(steps: 20).latents, "featureWeight is used")
    XCTAssertEqual(
      try project(steps: 20, classifier: judge, featureWeight: 0).latents, try project(steps: 20).latents)
    // Bad input.
    XCTAssertThrowsError(try project(steps: 0))
    XCTAssertThrowsError(try project(lr: -1))
    XCTAssertThrowsError(
      try GANProjection.project(
        model, images: images, count: 6, labels: [0], classifier: nil, steps: 2, device: .cpu))
    XCTAssertThrowsError(
      try GANProjection.project(
        model, images: Array(images.dropLast()), count: 6, classifier: nil, device: .cpu))
  }
}
