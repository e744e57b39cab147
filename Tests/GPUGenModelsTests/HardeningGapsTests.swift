// Issue 15's remaining gaps: the report folders of `compare` and `export` all or nothing, training's PNGs
// replaced whole, optimizer moments and EMA weights checked for non-finite values on --resume, and the
// up-front batch-memory estimate of classifier-free guided sampling.
import Foundation
import XCTest

@testable import GPUGenModels

extension HardeningTests {
  /// The names in `dir` that are staging temporaries (hidden, `.tmp-` in the name), recursively.
  func temporaries(in dir: URL) -> [String] {
    let names = FileManager.default.subpaths(atPath: dir.path) ?? []
    return names.filter { ($0 as NSString).lastPathComponent.hasPrefix(".") && $0.contains(".tmp-") }.sorted()
  }

  // MARK: Output folders, all or nothing

  func testStagedFoldersAreAllOrNothingAndReplaceOnlyAtTheEnd() throws {
    let d = try tmp()
    let fm = FileManager.default
    let out = d.appendingPathComponent("report")
    do {
      let outputs = StagedOutputs()
      XCTAssertThrowsError(
        try outputs.stageFolder(out) { tmp in
          try Data("a".utf8).write(to: tmp.appendingPathComponent("a.txt"))
          throw ModelError.input("failed half way")
        })
    }
    XCTAssertEqual(try fm.contentsOfDirectory(atPath: d.path), [], "a failed folder leaves nothing")
    let outputs = StagedOutputs()
    try outputs.stageFolder(out) { try Data("1".utf8).write(to: $0.appendingPathComponent("a.txt")) }
    XCTAssertFalse(fm.fileExists(atPath: out.path), "not in place before commit")
    try outputs.commit()
    XCTAssertEqual(try String(contentsOf: out.appendingPathComponent("a.txt"), encoding: .utf8), "1")
    // A second writer replaces the folder whole at commit, and only then.
    let second = StagedOutputs()
    try second.stageFolder(out) { try Data("2".utf8).write(to: $0.appendingPathComponent("b.txt")) }
    XCTAssertEqual(try fm.contentsOfDirectory(atPath: out.path), ["a.txt"])
    try second.commit()
    XCTAssertEqual(try fm.contentsOfDirectory(atPath: out.path), ["b.txt"])
    XCTAssertEqual(try fm.contentsOfDirectory(atPath: d.path), ["report"])
    // A killed writer's hidden folder is removed; a live process's is not.
    let dead = d.appendingPathComponent(".report.tmp-999999999-0")
    let live = d.appendingPathComponent(".report.tmp-1-0")
    for u in [dead, live] { try fm.createDirectory(at: u, withIntermediateDirectories: true) }
    XCTAssertEqual(StagedOutputs.removeStaleTemporaries(of: out), [".report.tmp-999999999-0"])
    XCTAssertEqual(try fm.contentsOfDirectory(atPath: d.path).sorted(), [".report.tmp-1-0", "report"])
  }

  /// A report whose second figure cannot be written (its id names a folder that does not exist).
  func failingReport(title: String) throws -> ComparisonReport {
    let grid = try Image8.grid([0, 0.5, -0.5, 1], shape: [1, 1, 2, 2])
    return ComparisonReport(
      title: title, setup: [], columns: ["m"], families: ["GAN"],
      rows: [
        ComparisonRow(
          key: "fidelity", title: "fidelity", measured: "precision", cells: ["0.9"], verdict: "m",
          figures: [
            try ReportFigure(id: "grid", caption: "samples", image: grid),
            try ReportFigure(id: "no-such-folder/grid", caption: "unwritable", image: grid),
          ])
      ], sections: [])
  }

  func testAFailingCompareReportLeavesNoFolderAndKeepsTheEarlierReport() throws {
    let d = try tmp()
    let fm = FileManager.default
    let out = d.appendingPathComponent("compare-report")
    XCTAssertThrowsError(try failingReport(title: "first").write(to: out, json: [:]))
    XCTAssertEqual(try fm.contentsOfDirectory(atPath: d.path), [], "a failed report leaves no folder")
    var good = try failingReport(title: "earlier")
    good.rows[0].figures.removeLast()
    try good.write(to: out, json: ["n": 1])
    let before = try fm.subpathsOfDirectory(atPath: out.path).sorted()
    let html = try Data(contentsOf: out.appendingPathComponent("index.html"))
    XCTAssertEqual(before, ["figures", "figures/grid.png", "index.html", "report.json", "report.md"])
    // A failed rewrite leaves the earlier report as it was.
    XCTAssertThrowsError(try failingReport(title: "later").write(to: out, json: ["n": 2]))
    XCTAssertEqual(try fm.subpathsOfDirectory(atPath: out.path).sorted(), before)
    XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("index.html")), html)
    XCTAssertEqual(try fm.contentsOfDirectory(atPath: d.path), ["compare-report"])
    // A successful one replaces it whole (no figure of the earlier report is left behind).
    var next = try failingReport(title: "next")
    next.rows[0].figures = []
    try next.write(to: out, json: ["n": 3])
    XCTAssertEqual(
      try fm.subpathsOfDirectory(atPath: out.path).sorted(),
      ["figures", "index.html", "report.json", "report.md"])
    XCTAssertEqual(try fm.contentsOfDirectory(atPath: d.path), ["compare-report"])
  }

  func testAFailingExportLeavesNoFolderAndAKilledOnesIsRemoved() throws {
    let d = try tmp()
    let fm = FileManager.default
    let gan = d.appendingPathComponent("gan")
    try fm.copyItem(at: try XCTUnwrap(try DefaultModel.bundled(named: "gan")), to: gan)
    // The discriminator's weights are missing: the export fails after the generator's are written.
    try fm.removeItem(
      at: gan.appendingPathComponent("\(GANModel.discriminatorFolder)/\(ModelFolder.weightsFile)"))
    let out = d.appendingPathComponent("exports/gan-f16")
    try fm.createDirectory(at: out.deletingLastPathComponent(), withIntermediateDirectories: true)
    // What a killed export left: its hidden folder, half written.
    let killed = d.appendingPathComponent("exports/.gan-f16.tmp-999999999-0")
    try fm.createDirectory(at: killed.appendingPathComponent("generator"), withIntermediateDirectories: true)
    assertOneLineError(
      try runGpugen(["export", "--model", gan.path, "--out", out.path]), containing: "discriminator")
    XCTAssertEqual(try fm.contentsOfDirectory(atPath: out.deletingLastPathComponent().path), [])
    // A pipeline export succeeds and leaves nothing but the folder.
    let pipe = d.appendingPathComponent("exports/pipe")
    let r = try runGpugen(["export", "--model", try DefaultModel.url().path, "--out", pipe.path])
    XCTAssertEqual(r.0, 0, r.2)
    XCTAssertEqual(try fm.contentsOfDirectory(atPath: pipe.deletingLastPathComponent().path), ["pipe"])
    XCTAssertTrue(fm.fileExists(atPath: pipe.appendingPathComponent("unet/config.json").path))
  }

  func testAFailingEvaluateWritesNothing() throws {
    let d = try tmp()
    let r = try runGpugen(
      [
        "evaluate", "--device", "cpu", "--n", "10", "--json", "--real", d.appendingPathComponent("none").path,
      ], in: d)
    XCTAssertEqual(r.0, 2, r.2)
    XCTAssertEqual(r.1, "", "nothing on stdout")
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: d.path), [])
  }

  // MARK: PNGs rewritten during training

  func testReplacingAFileWritesATemporaryAndRenamesIt() throws {
    let d = try tmp()
    let fm = FileManager.default
    let png = d.appendingPathComponent("loss.png"), keep = d.appendingPathComponent("keep")
    try Data("old".utf8).write(to: png)
    try fm.linkItem(at: png, to: keep)  // the old file's inode: an in-place rewrite would change it too
    // A writer that fails half way leaves the old file whole and no temporary.
    struct Killed: Error {}
    XCTAssertThrowsError(
      try StagedOutputs.replace(png) {
        XCTAssertNotEqual($0, png)
        try Data("ne".utf8).write(to: $0)
        throw Killed()
      })
    XCTAssertEqual(try Data(contentsOf: png), Data("old".utf8))
    XCTAssertEqual(try fm.contentsOfDirectory(atPath: d.path).sorted(), ["keep", "loss.png"])
    try StagedOutputs.replace(png) {
      try Image8(width: 1, height: 1, channels: 1, pixels: [7]).writePNG(to: $0)
    }
    XCTAssertEqual(try Image8.readPNG(from: png, channels: 1).pixels, [7])
    XCTAssertEqual(try Data(contentsOf: keep), Data("old".utf8), "replaced by a rename, not rewritten")
    XCTAssertEqual(try fm.contentsOfDirectory(atPath: d.path).sorted(), ["keep", "loss.png"])
  }

  /// Runs `args` into a fresh `out` holding an old `loss.png`, `collapse.png` and each of `samples` (hard
  /// linked, so an in-place rewrite shows in the link), then checks each was replaced by a rename with a
  /// whole PNG and no temporary remains.
  func assertTrainingReplacesItsPNGs(
    _ args: [String], out: URL, files: [String], line: UInt = #line
  ) throws {
    let fm = FileManager.default
    try fm.createDirectory(at: out.appendingPathComponent("samples"), withIntermediateDirectories: true)
    let keep = out.deletingLastPathComponent().appendingPathComponent("\(out.lastPathComponent)-keep")
    try fm.createDirectory(at: keep, withIntermediateDirectories: true)
    for (i, f) in files.enumerated() {
      try Data("old".utf8).write(to: out.appendingPathComponent(f))
      try fm.linkItem(at: out.appendingPathComponent(f), to: keep.appendingPathComponent("\(i)"))
    }
    // What a run killed while writing its plot and a sample grid left behind.
    for stale in [".loss.png.tmp-99999-0", "samples/.step-00000009.png.tmp-99999-0"] {
      try Data("half".utf8).write(to: out.appendingPathComponent(stale))
    }
    let r = try runGpugen(args + ["--out", out.path])
    XCTAssertEqual(r.0, 0, r.2, line: line)
    for (i, f) in files.enumerated() {
      XCTAssertEqual(
        try Data(contentsOf: keep.appendingPathComponent("\(i)")), Data("old".utf8),
        "\(f) rewritten in place",
        line: line)
      XCTAssertNoThrow(try Image8.pngHeader(of: out.appendingPathComponent(f)), f, line: line)
    }
    XCTAssertEqual(temporaries(in: out), [], line: line)
  }

  func testTrainingReplacesItsLossCollapseAndSamplePNGsWhole() throws {
    let d = try tmp()
    let one = ["--steps", "1", "--checkpoint-every", "1", "--sample-every", "1", "--device", "cpu"]
    try assertTrainingReplacesItsPNGs(
      ["train", "diffusion", "--data", "toy:ring8"] + one, out: d.appendingPathComponent("toy"),
      files: ["loss.png", "samples/step-00000001.png"])
    try assertTrainingReplacesItsPNGs(
      ["train", "gan", "--data", "toy:ring8", "--batch-size", "16"] + one,
      out: d.appendingPathComponent("gan"),
      files: ["loss.png", "collapse.png", "samples/step-00000001.png"])
    let image = Array(try trainFixture(in: d).dropLast(6)) + ["--device", "cpu"]
    try assertTrainingReplacesItsPNGs(
      image + ["--steps", "1", "--checkpoint-every", "1", "--sample-every", "1"],
      out: d.appendingPathComponent("diffusion"), files: ["loss.png", "samples/step-00000001.png"])
    let data = try writeLabelledIDX(in: d, name: "v", count: 16, size: 28, classes: 2) { i, _, y, x in
      (x * 9 + y * 3 + i * 11) % 256
    }
    try assertTrainingReplacesItsPNGs(
      ["train", "vae", "--data", data.path, "--batch-size", "8"] + one, out: d.appendingPathComponent("vae"),
      files: ["loss.png", "samples/prior-00000001.png", "samples/recon-00000001.png"])
  }

  // MARK: Non-finite optimizer moments and EMA weights on --resume

  /// Sets the first value of the first tensor of checkpoint file `file` whose name starts with `prefix` to
  /// NaN; returns the tensor's name.
  func poison(_ file: URL, prefix: String) throws -> String {
    let f = try SafeTensors.read(contentsOf: file)
    let name = try XCTUnwrap(f.order.first { $0.hasPrefix(prefix) }, "\(file.path): no tensor \(prefix)…")
    var t = f.tensors
    t[name]!.values[0] = .nan
    try SafeTensors.write(f.order.map { ($0, t[$0]!) }, metadata: f.metadata, to: file)
    return name
  }

  func testResumeRefusesANaNInAnAdamMomentOrTheEMANamingTheTensor() throws {
    let d = try tmp()
    let fm = FileManager.default
    let image = Array(try trainFixture(in: d).dropLast(6)) + ["--device", "cpu"]
    let data = try writeLabelledIDX(in: d, name: "v", count: 16, size: 28, classes: 2) { i, _, y, x in
      (x * 9 + y * 3 + i * 11) % 256
    }
    let toy = ["--data", "toy:ring8", "--device", "cpu"]
    // Per family: the command, the optimizer files, the EMA weights file (in the checkpoint folder).
    let families: [(String, [String], [String], String)] = [
      (
        "diffusion", image, ["training_state/optimizer.safetensors"],
        "unet/diffusion_pytorch_model.safetensors"
      ),
      (
        "toy diffusion", ["train", "diffusion"] + toy, ["training_state/optimizer.safetensors"],
        ModelFolder.weightsFile
      ),
      ("toy vae", ["train", "vae"] + toy, ["training_state/optimizer.safetensors"], ModelFolder.weightsFile),
      (
        "vae", ["train", "vae", "--data", data.path, "--batch-size", "8", "--device", "cpu"],
        ["training_state/optimizer.safetensors"], ModelFolder.weightsFile
      ),
      (
        "gan", ["train", "gan", "--batch-size", "16"] + toy,
        ["training_state/optimizer_g.safetensors", "training_state/optimizer_d.safetensors"],
        "\(GANModel.generatorFolder)/\(ModelFolder.weightsFile)"
      ),
    ]
    for (family, args, optimizers, ema) in families {
      let run = d.appendingPathComponent(family.replacingOccurrences(of: " ", with: "-"))
      let r = try runGpugen(args + ["--steps", "1", "--sample-every", "0", "--out", run.path])
      XCTAssertEqual(r.0, 0, "\(family): \(r.2)")
      // Each optimizer file with a NaN in one of its moments (first or second), then the EMA.
      let moments = optimizers.enumerated().map { ($1, $0 % 2 == 0 ? "exp_avg_sq." : "exp_avg.") }
      for (file, prefix) in moments + [(ema, "")] {
        let copy = d.appendingPathComponent("\(run.lastPathComponent)-\(UUID().uuidString)")
        try fm.copyItem(at: run, to: copy)
        let checkpoint = try CheckpointWriter.latest(in: copy)
        let name = try poison(checkpoint.appendingPathComponent(file), prefix: prefix)
        let bad = try runGpugen(
          args + ["--steps", "2", "--sample-every", "0", "--resume", "--out", copy.path])
        assertOneLineError(bad, containing: "checkpoint: \(file): weight \(name) holds nan at flat index 0")
        try fm.removeItem(at: copy)
      }
    }
  }

  // MARK: The batch-memory estimate of guided sampling

  func testGuidedSamplingIsRefusedUpFrontWhenTheDoubledBatchCannotFit() throws {
    // The bundled (class-dropout) UNet: guided, each call runs twice the batch, and the estimate says so.
    let unet = try UNet2DModelLoader.load(
      from: try DefaultModel.url().appendingPathComponent("unet"), device: .cpu)
    let guided = try GuidedDenoiser(model: unet, guidance: ClassifierFreeGuidance(scale: 3))
    let e4 = try XCTUnwrap(guided.activationEstimate(batch: 4)),
      u8 = try XCTUnwrap(unet.activationEstimate(batch: 8))
    XCTAssertEqual(e4.bytes, u8.bytes)
    XCTAssertEqual(e4.largestBuffer, u8.largestBuffer)
    XCTAssertEqual(e4.bytes, 8 * 3 * 16 * 28 * 28 * 4)
    let plain = try GuidedDenoiser(model: unet, guidance: ClassifierFreeGuidance(scale: 1))
    XCTAssertEqual(plain.activationEstimate(batch: 4), unet.activationEstimate(batch: 4))
    XCTAssertNil(guided.activationEstimate(batch: Int.max)?.bytes, "an overflowing doubled batch")
    // A model whose batch of 2 takes 2/3 of the machine's memory: unguided it runs, guided (4 at once) it is
    // refused before the first model call.
    let big = SizedDenoiser(bytesPerImage: MemoryBudget.hostBytes / 3)
    let plan = try SamplerPlanner.plan(.ddim, schedulerConfig: nil, steps: 2)
    let request = SampleRequest(count: 2, batchSize: 2, seed: 0, classLabels: [0])
    XCTAssertEqual(try DiffusionSampler(unet: big, plan: plan).sample(request).count, 8)
    XCTAssertEqual(big.calls, 2)
    let sampler = DiffusionSampler(
      unet: try GuidedDenoiser(model: big, nullLabel: 2, guidance: ClassifierFreeGuidance(scale: 3)),
      plan: plan)
    assertThrows(
      "guided", containing: "a batch of 2 images with classifier-free guidance (4 through the model"
    ) {
      _ = try sampler.sample(request)
    }
    assertThrows("flag", containing: "lower --batch-size") { _ = try sampler.sample(request) }
    XCTAssertEqual(big.calls, 2, "refused before any model call")
  }

  /// On a simulated 16 MiB OpenCL device, batch 64 of the bundled UNet fits (9.2 MiB) but guided sampling's
  /// 128 at once (18.4 MiB) does not: refused up front, naming --batch-size, and nothing written.
  func testCommandLineGuidedSamplingChecksTheDoubledBatchOnASmallDevice() throws {
    guard let index = try Device.openCLDevices().first?.index else {
      throw XCTSkip("no OpenCL device")
    }
    let d = try tmp()
    let grid = d.appendingPathComponent("g.png")
    let r = try runGpugen(
      [
        "sample", "--device", "opencl:\(index)", "--n", "64", "--batch-size", "64", "--steps", "1", "--class",
        "1",
        "--guidance-scale", "3", "--out", grid.path,
      ], env: ["GPUGEN_OPENCL_MEMORY_MB": "16"])
    assertOneLineError(
      r,
      containing:
        "a batch of 64 images with classifier-free guidance (128 through the model at once) needs 18.4 MiB")
    XCTAssertTrue(r.2.contains("lower --batch-size"), r.2)
    XCTAssertFalse(FileManager.default.fileExists(atPath: grid.path))
  }
}

/// A class-conditional denoiser on 1×2×2 images (two classes, null label 2) that predicts zero noise and
/// estimates `bytesPerImage` of device memory per image of a batch; it counts its calls.
final class SizedDenoiser: Denoiser {
  let bytesPerImage: Int
  var calls = 0
  init(bytesPerImage: Int) { self.bytesPerImage = bytesPerImage }
  var device: Device { Device.cpu }
  var imageShape: [Int] { [1, 2, 2] }
  var classCount: Int? { 2 }
  func callAsFunction(_ x: Tensor, timesteps: [Double], classLabels: [Int]?) throws -> Tensor {
    calls += 1
    return try x.mul(0)
  }
  func activationEstimate(batch: Int) -> ActivationEstimate? {
    let b = checkedProduct([batch, bytesPerImage])
    return ActivationEstimate(
      bytes: b, largestBuffer: b, what: "a batch of \(batch) images through the model")
  }
}
