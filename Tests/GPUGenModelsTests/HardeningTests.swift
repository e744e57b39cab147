// Hostile input and faults (issue 15): sizes checked before allocation, numbers range-checked, non-finite
// weights, noise and samples refused, output folders locked, stale temporaries removed, file-system errors as
// one line, outputs all or nothing. One test (at least) per class; the library's checks first, then the CLI.
import Foundation
import XCTest

@testable import GPUGenModels

final class HardeningTests: XCTestCase {
  func tmp() throws -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent(
      "gpugen-harden-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: u) }
    return u
  }

  /// A small valid UNet config as JSON fields, with `changes` applied.
  func unetJSON(_ changes: [String: Any]) throws -> Data {
    var c: [String: Any] = [
      "_class_name": "UNet2DModel", "sample_size": 8, "in_channels": 1, "out_channels": 1,
      "block_out_channels": [8, 16], "layers_per_block": 1, "norm_num_groups": 4,
      "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
      "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
      "attention_head_dim": 8,
    ]
    for (k, v) in changes { c[k] = v }
    return try JSONSerialization.data(withJSONObject: c)
  }

  func assertThrows(_ what: String, containing text: String, _ body: () throws -> Void) {
    do {
      try body()
      XCTFail("\(what): accepted")
    } catch {
      XCTAssertTrue("\(error)".contains(text), "\(what): \(error)")
    }
  }

  // MARK: Sizes (no trap, no runaway allocation)

  func testOversizedAndOverflowingUNetSizesAreRefusedBeforeAllocation() throws {
    XCTAssertNoThrow(try UNet2DConfig(json: try unetJSON([:]), source: "c.json"))
    for size in [1_000_000_000, 2_147_483_648, 1 << 40] {
      assertThrows("sample_size \(size)", containing: "sample_size: \(size)") {
        _ = try UNet2DConfig(json: try unetJSON(["sample_size": size]), source: "c.json")
      }
    }
  }

  func testAutoencoderKLConfigSizesAndFactorsAreChecked() throws {
    func config(_ fields: String) throws -> AutoencoderKLConfig {
      try AutoencoderKLConfig(
        json: Data("{\"_class_name\": \"AutoencoderKL\"\(fields)}".utf8), source: "vae.json")
    }
    XCTAssertNoThrow(try config(""))
    let cases: [(String, String)] = [
      (#", "sample_size": 2147483648"#, "sample_size: 2147483648"),
      (#", "scaling_factor": 0"#, "scaling_factor"),
      (#", "shift_factor": Infinity"#, "shift_factor"),
      (#", "latents_std": [1, 0, 1, 1]"#, "latents_std: 0.0"),
      (#", "latents_mean": [0, NaN, 0, 0]"#, "latents_mean: expected a finite number"),
    ]
    for (fields, text) in cases { assertThrows(fields, containing: text) { _ = try config(fields) } }
  }

  func testZeroGroupsIsAnErrorNotADivisionByZero() throws {
    assertThrows("norm_num_groups 0", containing: "norm_num_groups: 0 must be positive") {
      _ = try UNet2DConfig(json: try unetJSON(["norm_num_groups": 0]), source: "c.json")
    }
    assertThrows("attn_norm_num_groups 0", containing: "attn_norm_num_groups: 0") {
      _ = try UNet2DConfig(json: try unetJSON(["attn_norm_num_groups": 0]), source: "c.json")
    }
    assertThrows("attn_norm_num_groups 3", containing: "does not divide") {
      _ = try UNet2DConfig(json: try unetJSON(["attn_norm_num_groups": 3]), source: "c.json")
    }
  }

  /// The bytes of a float32 .npy whose header declares `shape` and holds `values`.
  func npy(shape: String, values: [Float]) -> [UInt8] {
    var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }"
    header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
    var b: [UInt8] =
      [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xff), UInt8(header.utf8.count >> 8)]
    b += Array(header.utf8)
    for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { b += $0 } }
    return b
  }

  func testNPYHeadersWithOverflowingShapesAreRefused() throws {
    XCTAssertEqual(try NPY.parse(npy(shape: "(1, 2)", values: [1, 2]), path: "a.npy").shape, [1, 2])
    assertThrows("path named", containing: "malformed /x/b.npy: ") {
      _ = try NPY.parse(npy(shape: "(3,)", values: [1]), path: "/x/b.npy")
    }
    // Found by the npy fuzz target: a ')' before the '(' made an inverted range (a trap).
    assertThrows("reversed parentheses", containing: "malformed shape") {
      _ = try NPY.parse(npy(shape: "6, )(1, ", values: [0]), path: "a.npy")
    }
    for shape in [
      "(4611686018427387904, 3, 16, 16)", "(4294967296, 4294967296, 3, 16)", "(2305843009213693952,)",
    ] {
      assertThrows(shape, containing: "more values than can be counted") {
        _ = try NPY.parse(npy(shape: shape, values: [0]), path: "a.npy")
      }
    }
  }

  func testCheckedProductAndTrainingBatchEstimate() throws {
    XCTAssertEqual(checkedProduct([2, 3, 7]), 42)
    XCTAssertEqual(checkedProduct([]), 1)
    XCTAssertNil(checkedProduct([1 << 32, 1 << 32]))
    XCTAssertNil(checkedProduct([2, -1]))
    var o = DiffusionTrainingOptions()
    o.batchSize = 4
    XCTAssertNoThrow(try o.checkBatchFits(valuesPerSample: 1000, live: 16, on: Device.cpu))
    assertThrows("values", containing: "a training batch of 4 needs") {
      try o.checkBatchFits(valuesPerSample: 1 << 40, live: 1, on: Device.cpu)
    }
    assertThrows("live", containing: "lower --batch-size") {
      try o.checkBatchFits(valuesPerSample: 1000, live: 1 << 40, on: Device.cpu)
    }
    o.batchSize = 1 << 40
    assertThrows("batch", containing: "a training batch of \(1 << 40)") {
      try o.checkBatchFits(valuesPerSample: 1000, live: 1, on: Device.cpu)
    }
  }

  func testMemoryBudgetNamesTheSizeTheDeviceAndTheFlag() throws {
    XCTAssertNoThrow(try MemoryBudget.check(1 << 20, for: "x", on: Device.cpu, flag: "--n"))
    assertThrows("4 EiB", containing: "lower --batch-size") {
      try MemoryBudget.check(1 << 62, for: "a batch of 9", on: Device.cpu, flag: "--batch-size")
    }
    assertThrows(
      "uncountable", containing: "a batch of 9 needs more bytes than can be counted, but the CPU has"
    ) {
      try MemoryBudget.check(nil, for: "a batch of 9", on: Device.cpu, flag: "--batch-size")
    }
    assertThrows("host RAM", containing: "of RAM") {
      try MemoryBudget.check(MemoryBudget.hostBytes + 1, for: "x", on: Device.cpu, flag: "--n")
    }
    // On OpenCL, one buffer over CL_DEVICE_MAX_MEM_ALLOC_SIZE is refused even when the total fits.
    guard let cl = try Device.all().first(where: { $0.isOpenCL }), let info = cl.openCL?.info,
      info.maxAllocation > 0, info.maxAllocation < info.globalMemory
    else { throw XCTSkip("no OpenCL device with a max allocation below its global memory") }
    XCTAssertNoThrow(try MemoryBudget.check(info.maxAllocation, for: "x", on: cl, flag: "--n"))
    assertThrows("max alloc", containing: "CL_DEVICE_MAX_MEM_ALLOC_SIZE") {
      try MemoryBudget.check(
        info.maxAllocation, largestBuffer: info.maxAllocation + 1, for: "x", on: cl, flag: "--batch-size")
    }
  }

  func testSamplingRefusesAnImpossibleCountBeforeAllocating() throws {
    let plan = try SamplerPlanner.plan(.ddim, schedulerConfig: nil, steps: 2)
    let sampler = DiffusionSampler(unet: ScriptedDenoiser(nanAt: nil), plan: plan)
    assertThrows("n 2^60", containing: "lower --n") {
      _ = try sampler.sample(SampleRequest(count: 1 << 60, batchSize: 1, seed: 0))
    }
    assertThrows("n·per overflow", containing: "lower --n") {
      _ = try sampler.sample(SampleRequest(count: Int.max / 2, batchSize: 1, seed: 0))
    }
  }

  func testGzipIsInflatedOnlyUpToTheSizeItsIDXHeaderDeclares() throws {
    let d = try tmp()
    func be32(_ v: Int) -> [UInt8] { [24, 16, 8, 0].map { UInt8((v >> $0) & 0xFF) } }
    // The header promises 2 images of 2×2 (8 bytes); the stream inflates to 16 MB of zeros.
    let bomb = try Gzip.compress(
      [0, 0, 8, 3] + be32(2) + be32(2) + be32(2) + [UInt8](repeating: 0, count: 16 << 20))
    let url = d.appendingPathComponent("bomb-idx3-ubyte.gz")
    try Data(bomb).write(to: url)
    assertThrows("bomb", containing: "inflates past the 24 bytes its header declares") {
      _ = try IDXArray.read(contentsOf: url)
    }
    // The same header with exactly its payload reads.
    try Data(try Gzip.compress([0, 0, 8, 3] + be32(2) + be32(2) + be32(2) + [UInt8](repeating: 7, count: 8)))
      .write(to: url)
    XCTAssertEqual(try IDXArray.read(contentsOf: url).dimensions, [2, 2, 2])
    // A prefix read stops early and returns what there is.
    let stream = try Gzip.compress([1, 2, 3, 4, 5])
    XCTAssertEqual(try stream.withUnsafeBytes { try Gzip.decompress($0, limit: 2, prefix: 2) }, [1, 2])
  }

  // MARK: Numbers valid as JSON, not as models

  func testConfigFieldsOutsideTheirRangeAreRefused() throws {
    let cases: [(String, Any, String)] = [
      ("norm_eps", -1, "norm_eps"), ("norm_eps", 0, "norm_eps"), ("dropout", 1.5, "dropout"),
      ("dropout", -0.1, "dropout"), ("time_embedding_dim", 0, "time_embedding_dim"),
    ]
    for (key, value, text) in cases {
      assertThrows("\(key) \(value)", containing: text) {
        _ = try UNet2DConfig(json: try unetJSON([key: value]), source: "c.json")
      }
    }
    // The non-standard literals Python writes, and an overflowing number.
    for literal in ["NaN", "Infinity", "1e400"] {
      var text = String(decoding: try unetJSON([:]), as: UTF8.self)
      text = text.replacingOccurrences(
        of: "\"_class_name\"", with: "\"norm_eps\": \(literal), \"_class_name\"")
      assertThrows("norm_eps \(literal)", containing: "norm_eps") {
        _ = try UNet2DConfig(json: Data(text.utf8), source: "c.json")
      }
    }
    let ok = #"{"beta_start": 0.0001, "beta_end": 0.02, "num_train_timesteps": 1000}"#
    XCTAssertNoThrow(try SchedulerConfig(json: ok, family: .ddim))
    let bad: [(String, String)] = [
      (#"{"beta_end": 1.0}"#, "beta_end"), (#"{"beta_end": -0.02}"#, "beta_end"),
      (#"{"beta_start": 0}"#, "beta_start"), (#"{"num_train_timesteps": 1e12}"#, "num_train_timesteps"),
      (#"{"num_train_timesteps": 1000000001}"#, "num_train_timesteps"),
      (#"{"trained_betas": [0.1, 1.0], "num_train_timesteps": 2}"#, "trained_betas"),
    ]
    for (json, field) in bad {
      assertThrows(json, containing: field) { _ = try SchedulerConfig(json: json, family: .ddim) }
    }
    XCTAssertThrowsError(try SamplingBounds.checkEta(1e9))
    XCTAssertThrowsError(try SamplingBounds.checkEta(-0.1))
    XCTAssertNoThrow(try SamplingBounds.checkEta(1))
    assertThrows("flag named", containing: "--my-eta") { try SamplingBounds.checkEta(2, flag: "--my-eta") }
  }

  func testNonFiniteWeightsAndNoiseAreRefusedNamingTheTensor() throws {
    let layer = try Linear(2, 1, on: Device.cpu)
    let good = [
      "weight": TensorData(shape: [1, 2], values: [1, 2]), "bias": TensorData(shape: [1], values: [0]),
    ]
    XCTAssertNoThrow(try layer.load(good))
    var bad = good
    bad["weight"] = TensorData(shape: [1, 2], values: [1, .infinity])
    XCTAssertThrowsError(try layer.load(bad)) {
      XCTAssertEqual($0 as? ModuleError, .nonFinite(name: "weight", index: 1, value: .infinity))
    }
    let loader = ParameterLoader({ _, _ in ([2], [0, .nan]) }, device: Device.cpu)
    assertThrows("UNet weight", containing: "weight w: holds nan at flat index 1") {
      _ = try loader.load("w", [2])
    }
    assertThrows("noise", containing: "value 1 (of shape [2]") {
      _ = try NPY.parse(npy(shape: "(2,)", values: [0, .nan]), path: "noise.npy")
    }
  }

  func testIDXWithNoRowsAndPNGPaletteIndicesBeyondThePaletteAreRefused() throws {
    let d = try tmp()
    func be32(_ v: Int) -> [UInt8] { [24, 16, 8, 0].map { UInt8((v >> $0) & 0xFF) } }
    for dims in [[3, 0, 28], [3, 28, 0]] {
      let empty = try IDXArray.parse([0, 0, 8, 3] + dims.flatMap(be32), path: "e")
      assertThrows("0 rows", containing: "have no pixels") { try empty.checkImages() }
    }
    XCTAssertNoThrow(
      try IDXArray.parse([0, 0, 8, 3] + be32(1) + be32(1) + be32(1) + [9], path: "e").checkImages())
    // 2×2 palette image with 2 palette entries; the second pixel of each row uses index 5.
    let hex =
      "89504e470d0a1a0a0000000d49484452000000020000000208030000004568fd1600000006504c5445000000ffffffa5d99fdd"
      + "0000000e49444154789c6360606560600500001f000b9bfa3cf70000000049454e44ae426082"
    var bytes: [UInt8] = []
    var i = hex.startIndex
    while i < hex.endIndex {
      let j = hex.index(i, offsetBy: 2)
      bytes.append(UInt8(hex[i..<j], radix: 16)!)
      i = j
    }
    let png = d.appendingPathComponent("pal.png")
    try Data(bytes).write(to: png)
    assertThrows("palette", containing: "has palette index 5, but the palette has 2 entries") {
      _ = try Image8.readPNGConverted(from: png, channels: 1)
    }
    assertThrows("palette", containing: "has palette index 5, but the palette has 2 entries") {
      _ = try Image8.readPNG(from: png, channels: 3)
    }
  }

  // MARK: Non-finite values at sampling time

  func testNaNAtSamplingTimeNamesTheStepAndTheTensor() throws {
    let plan = try SamplerPlanner.plan(.ddim, schedulerConfig: nil, steps: 5)
    let clean = DiffusionSampler(unet: ScriptedDenoiser(nanAt: nil), plan: plan)
    XCTAssertEqual(try clean.sample(SampleRequest(count: 3, batchSize: 2, seed: 1)).count, 3 * 4)
    let third = plan.evaluations[2].timestep
    let sampler = DiffusionSampler(unet: ScriptedDenoiser(nanAt: third), plan: plan)
    XCTAssertThrowsError(try sampler.sample(SampleRequest(count: 3, batchSize: 2, seed: 1))) {
      let e = $0 as? NonFiniteError
      XCTAssertEqual(e?.step, 3)
      XCTAssertEqual(e?.tensor, "the model output")
      XCTAssertEqual(e?.image, 0)
      XCTAssertTrue("\($0)".contains("at step 3 of 5"), "\($0)")
    }
  }

  func testEndOfRunCheckNamesTheTensorImageAndSteps() throws {
    XCTAssertNoThrow(try NonFiniteError.check([0, 1, 2, 3], tensor: "t", firstImage: 0, perImage: 2))
    XCTAssertThrowsError(
      try NonFiniteError.check(
        [0, 1, 2, .infinity], tensor: "the decoder output", firstImage: 4, perImage: 2, steps: 7)
    ) {
      XCTAssertEqual(
        $0 as? NonFiniteError,
        NonFiniteError(tensor: "the decoder output", step: nil, of: 7, image: 5, value: .infinity))
      XCTAssertEqual("\($0)", "non-finite value (inf) in the decoder output, image 5; no output was written")
    }
  }

  // MARK: Output folders and files

  func testASecondWriterOfAnOutputFolderIsRefusedNamingTheHolder() throws {
    let d = try tmp().appendingPathComponent("run")
    let first = try OutputFolderLock(d)
    XCTAssertTrue(first.createdFolder)
    XCTAssertThrowsError(try OutputFolderLock(d)) {
      XCTAssertEqual($0 as? OutputFolderLocked, OutputFolderLocked(folder: d.path, pid: Int(getpid())))
      XCTAssertTrue("\($0)".contains("process \(getpid())"))
    }
    first.release()
    let second = try OutputFolderLock(d)
    XCTAssertFalse(second.createdFolder)
    second.release(removingFolder: true)
    XCTAssertTrue(FileManager.default.fileExists(atPath: d.path), "only a folder the lock created is removed")
    let third = try OutputFolderLock(d.appendingPathComponent("new/deeper/run"))
    XCTAssertTrue(FileManager.default.fileExists(atPath: d.appendingPathComponent("new/deeper/run").path))
    third.release(removingFolder: true)
    XCTAssertFalse(FileManager.default.fileExists(atPath: d.appendingPathComponent("new").path))
  }

  func testStaleCheckpointTemporariesAreRemovedAtStartupAndAfterAFailedWrite() throws {
    let d = try tmp()
    let fm = FileManager.default
    for name in [".checkpoint-00000040.tmp-123", ".checkpoint.tmp-123"] {
      try fm.createDirectory(at: d.appendingPathComponent(name), withIntermediateDirectories: true)
    }
    try Data().write(to: d.appendingPathComponent("checkpoint-notes.txt"))
    XCTAssertEqual(
      CheckpointWriter.removeStaleTemporaries(in: d), [".checkpoint-00000040.tmp-123", ".checkpoint.tmp-123"])
    XCTAssertEqual(try fm.contentsOfDirectory(atPath: d.path), ["checkpoint-notes.txt"])
    // A write that fails half way (a tensor cannot be fetched: a full disk fails the same way) leaves nothing.
    struct Full: Error {}
    let files: [(path: String, file: CheckpointFile)] = [
      ("a.json", .data(Data("{}".utf8))),
      ("w.safetensors", .tensors([("w", LazyTensor(shape: [1]) { throw Full() })], metadata: [:])),
    ]
    XCTAssertThrowsError(try CheckpointWriter.write(files, step: 5, to: d))
    XCTAssertEqual(try fm.contentsOfDirectory(atPath: d.path), ["checkpoint-notes.txt"])
  }

  func testACopiedCheckpointFolderResumesAndIsReplacedByTheNextCheckpoint() throws {
    // `cp -rL` (or an archive) turns the `checkpoint` link into a plain folder and may drop checkpoint-<step>.
    let d = try tmp()
    let fm = FileManager.default
    func files(_ step: Int) -> [(path: String, file: CheckpointFile)] {
      [("a.json", .data(Data("\(step)".utf8))), (CheckpointWriter.stateFile, .data(Data("{}".utf8)))]
    }
    let written = try CheckpointWriter.write(files(10), step: 10, to: d)
    let copy = try tmp()
    try fm.copyItem(at: written, to: copy.appendingPathComponent(CheckpointWriter.latestLink))
    XCTAssertEqual(try CheckpointWriter.latest(in: copy).lastPathComponent, CheckpointWriter.latestLink)
    try CheckpointWriter.write(files(20), step: 20, to: copy)
    XCTAssertEqual(
      try fm.contentsOfDirectory(atPath: copy.path).sorted(),
      [CheckpointWriter.latestLink, "checkpoint-00000020"])
    XCTAssertEqual(
      try fm.destinationOfSymbolicLink(atPath: copy.appendingPathComponent("checkpoint").path),
      "checkpoint-00000020")
    XCTAssertEqual(
      try Data(contentsOf: CheckpointWriter.latest(in: copy).appendingPathComponent("a.json")),
      Data("20".utf8))
    // A kill after the copied folder was moved aside and before the link: the new checkpoint is the newest.
    try fm.removeItem(at: copy.appendingPathComponent("checkpoint"))
    try fm.copyItem(at: written, to: copy.appendingPathComponent("checkpoint-0-copied"))
    XCTAssertEqual(try CheckpointWriter.latest(in: copy).lastPathComponent, "checkpoint-00000020")
  }

  func testFileSystemErrorsNameThePathAndTheReason() throws {
    // Tests run as root, for whom permission bits do not apply: the errno mapping is checked directly, and a
    // read-only file system where the machine has one (/proc/sys as a container mounts it).
    XCTAssertEqual(
      "\(FileSystemError(path: "/o/x.png", operation: "write", code: EROFS))",
      "cannot write /o/x.png: read-only file system")
    XCTAssertEqual(
      "\(FileSystemError(path: "/o", operation: "create folder", code: EACCES))",
      "cannot create folder /o: permission denied")
    XCTAssertEqual(
      FileSystemError(path: "p", operation: "write", code: ENOSPC).reason, "no space left on device")
    let cocoa = CocoaError(.fileWriteVolumeReadOnly, userInfo: [NSFilePathErrorKey: "/ro/f"])
    XCTAssertEqual(
      FileSystemError.from(cocoa), FileSystemError(path: "/ro/f", operation: "write", code: EROFS))
    XCTAssertEqual(
      FileSystemError.from(CocoaError(.fileWriteUnknown), path: "/f")?.path, nil,
      "no errno, no FileSystemError")
    let posix = NSError(domain: NSPOSIXErrorDomain, code: Int(ENOSPC))
    XCTAssertEqual(
      FileSystemError.from(posix, path: "/full/f"),
      FileSystemError(path: "/full/f", operation: "write", code: ENOSPC))
    XCTAssertNil(FileSystemError.from(posix), "no path, no FileSystemError")
    let d = try tmp()
    assertThrows("is a directory", containing: "cannot write \(d.path): is a directory") {
      try StagedOutputs.checkDestination(d.path)
    }
    assertThrows("no parent", containing: "no such file or directory") {
      try StagedOutputs.checkDestination(d.appendingPathComponent("none/x.npy").path)
    }
  }

  func testStagedOutputsAreAllOrNothing() throws {
    let d = try tmp()
    let png = d.appendingPathComponent("grid.png"), npyURL = d.appendingPathComponent("x.npy")
    do {
      let outputs = StagedOutputs()
      try outputs.stage(png) { try Data("png".utf8).write(to: $0) }
      XCTAssertThrowsError(try outputs.stage(npyURL) { _ in throw ModelError.input("failed half way") })
    }
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: d.path), [], "nothing left behind")
    let outputs = StagedOutputs()
    try outputs.stage(png) { try Data("png".utf8).write(to: $0) }
    try outputs.stage(npyURL) { try Data("npy".utf8).write(to: $0) }
    XCTAssertFalse(FileManager.default.fileExists(atPath: png.path), "not in place before commit")
    try outputs.commit()
    XCTAssertEqual(
      try FileManager.default.contentsOfDirectory(atPath: d.path).sorted(), ["grid.png", "x.npy"])
    let discarded = StagedOutputs()
    try discarded.stage(d.appendingPathComponent("late.png")) { try Data().write(to: $0) }
    discarded.discard()
    XCTAssertEqual(
      try FileManager.default.contentsOfDirectory(atPath: d.path).sorted(), ["grid.png", "x.npy"])
  }

  // MARK: The command line: exit status 2 (or 3) and one line

  /// A copy of the bundled pipeline folder in `dir`, with `unet` and `scheduler` config changes and `weights`
  /// applied to its tensors.
  func pipeline(
    in dir: URL, _ name: String, unet: [String: Any] = [:], scheduler: [String: Any] = [:],
    weights: ((inout [String: TensorData]) -> Void)? = nil
  ) throws -> URL {
    let to = dir.appendingPathComponent(name)
    try FileManager.default.copyItem(at: try DefaultModel.url(), to: to)
    for (file, changes) in [("unet/config.json", unet), ("scheduler/scheduler_config.json", scheduler)]
    where !changes.isEmpty {
      let url = to.appendingPathComponent(file)
      var c = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
      for (k, v) in changes { c[k] = v }
      try JSONSerialization.data(withJSONObject: c).write(to: url)
    }
    if let weights {
      let url = to.appendingPathComponent("unet/diffusion_pytorch_model.safetensors")
      let file = try SafeTensors.read(contentsOf: url)
      var t = file.tensors
      weights(&t)
      try SafeTensors.write(file.order.map { ($0, t[$0]!) }, to: url)
    }
    return to
  }

  func assertOneLineError(
    _ r: (Int32, String, String), status: Int32 = 2, containing text: String, line: UInt = #line
  ) {
    XCTAssertEqual(r.0, status, r.2, line: line)
    // Progress lines may come first; the error is one line, and nothing else (no "Error:", no dump).
    let lines = r.2.split(separator: "\n")
    XCTAssertEqual(lines.filter { $0.hasPrefix("gpugen: error: ") }.count, 1, r.2, line: line)
    XCTAssertFalse(lines.contains { $0.hasPrefix("Error") || $0.contains("Error Domain") }, r.2, line: line)
    XCTAssertTrue(r.2.contains(text), "expected '\(text)' in: \(r.2)", line: line)
  }

  func testCommandLineRefusesHostileNumbersWithOneLineAndWritesNothing() throws {
    let d = try tmp()
    let grid = d.appendingPathComponent("g.png")
    let base = ["sample", "--device", "cpu", "--n", "2", "--steps", "2", "--out", grid.path]
    let nanNoise = d.appendingPathComponent("nan.npy")
    var noise = [Float](repeating: 0, count: 2 * 28 * 28)
    noise[5] = .nan
    try NPY.write(noise, shape: [2, 1, 28, 28], to: nanNoise)
    let adir = d.appendingPathComponent("adir")
    try FileManager.default.createDirectory(at: adir, withIntermediateDirectories: true)
    let cases: [([String], String)] = [
      (
        ["--model", try pipeline(in: d, "big", unet: ["sample_size": 1_000_000_000]).path],
        "sample_size: 1000000000"
      ),
      (
        ["--model", try pipeline(in: d, "wrap", unet: ["sample_size": 2_147_483_648]).path],
        "sample_size: 2147483648"
      ),
      (["--model", try pipeline(in: d, "g0", unet: ["norm_num_groups": 0]).path], "norm_num_groups: 0"),
      (["--model", try pipeline(in: d, "eps", unet: ["norm_eps": -1]).path], "norm_eps: -1"),
      (["--model", try pipeline(in: d, "drop", unet: ["dropout": 2]).path], "dropout: 2"),
      (
        ["--model", try pipeline(in: d, "T", scheduler: ["num_train_timesteps": 1e12]).path],
        "num_train_timesteps"
      ),
      (["--model", try pipeline(in: d, "beta", scheduler: ["beta_end": 1.0]).path], "beta_end"),
      (
        [
          "--model",
          try pipeline(in: d, "nanw") { $0["conv_in.bias"]!.values[1] = .nan }.path,
        ], "weight conv_in.bias: holds nan at flat index 1"
      ),
      (["--noise", nanNoise.path], "value 5 (of shape [2, 1, 28, 28]"),
      (["--class", "1,,2"], "--class takes non-negative integers, got '1,,2'"),
      (["--eta", "1e9"], "--eta must lie in [0.0, 1.0]"),
      (["--n", "1000000000"], "lower --n"),
      (["--npy", adir.path], "cannot write \(adir.path): is a directory"),
      (["--out", "/sys/gpugen-x.png"], "cannot write /sys/gpugen-x.png: permission denied"),
    ]
    for (args, text) in cases {
      let r = try runGpugen(base + args)
      assertOneLineError(r, containing: text)
      XCTAssertFalse(FileManager.default.fileExists(atPath: grid.path), "\(args) wrote the grid")
    }
  }

  func testCommandLineRefusesAnImpossibleCountForEveryFamily() throws {
    let d = try tmp()
    for (model, n) in [
      ("diffusion", Int.max), ("vae", 1 << 62), ("gan", 1 << 62), ("diffusion", 1_000_000_000),
    ] {
      let grid = d.appendingPathComponent("\(model).png")
      let r = try runGpugen([
        "sample", "--model", model, "--device", "cpu", "--n", "\(n)", "--out", grid.path,
      ])
      assertOneLineError(r, containing: "gpugen: error: \(n) ")
      XCTAssertTrue(r.2.contains("lower --n"), r.2)
      XCTAssertFalse(FileManager.default.fileExists(atPath: grid.path))
    }
  }

  func testCommandLineNaNAtSamplingTimeExitsWith3NamingTheStep() throws {
    let d = try tmp()
    // Finite weights whose output overflows: conv_out scaled to 1e38.
    let model = try pipeline(in: d, "overflow") { t in
      t["conv_out.weight"]!.values = t["conv_out.weight"]!.values.map { $0 == 0 ? 1e38 : $0 * 1e38 }
    }
    let grid = d.appendingPathComponent("g.png"), npy = d.appendingPathComponent("g.npy")
    let r = try runGpugen([
      "sample", "--model", model.path, "--device", "cpu", "--n", "2", "--steps", "3", "--out", grid.path,
      "--npy",
      npy.path,
    ])
    assertOneLineError(
      r, status: 3, containing: "in the model output at step 2 of 3, image 0; no output was written")
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: d.path), ["overflow"])
  }

  /// A tiny 6×6 IDX data set with labels, and an 8×8 UNet config, in `dir`.
  func trainFixture(in dir: URL) throws -> [String] {
    func be32(_ v: Int) -> [UInt8] { [24, 16, 8, 0].map { UInt8((v >> $0) & 0xFF) } }
    var images: [UInt8] = [0, 0, 8, 3] + be32(8) + be32(6) + be32(6)
    for i in 0..<(8 * 36) { images.append(UInt8(i * 7 % 256)) }
    let data = dir.appendingPathComponent("t-images-idx3-ubyte")
    try Data(images).write(to: data)
    try Data([0, 0, 8, 1] + be32(8) + (0..<8).map { UInt8($0 % 2) }).write(
      to: dir.appendingPathComponent("t-labels-idx1-ubyte"))
    let config = dir.appendingPathComponent("unet.json")
    try unetJSON(["block_out_channels": [4, 8], "attention_head_dim": 4]).write(to: config)
    return [
      "train", "diffusion", "--data", data.path, "--config", config.path, "--batch-size", "2", "--warmup",
      "0",
      "--checkpoint-every", "2", "--sample-every", "0", "--device", "cpu",
    ]
  }

  func testCommandLineTrainingOutputFolders() throws {
    let d = try tmp()
    let fm = FileManager.default
    let args = try trainFixture(in: d)
    let out = d.appendingPathComponent("run")
    // A rejected option leaves no --out behind (that would block the rerun).
    assertOneLineError(
      try runGpugen(args + ["--out", out.path, "--steps", "2", "--batch-size", "0"]),
      containing: "--batch-size must be positive")
    XCTAssertFalse(fm.fileExists(atPath: out.path))
    assertOneLineError(
      try runGpugen(args + ["--out", "/sys/gpugen-run", "--steps", "2"]),
      containing: "cannot create folder /sys/gpugen-run: operation not permitted")
    // A second writer is refused, naming the holder.
    do {
      let held = try OutputFolderLock(out)
      assertOneLineError(
        try runGpugen(args + ["--out", out.path, "--steps", "2"]), containing: "process \(getpid())")
      XCTAssertTrue(fm.fileExists(atPath: out.path), "the holder's folder is left alone")
      held.release(removingFolder: true)
    }
    XCTAssertEqual(try runGpugen(args + ["--out", out.path, "--steps", "2"]).0, 0)
    // A killed write's temporary folder, and log rows past the checkpoint (another writer's, or a kill's).
    let stale = out.appendingPathComponent(".checkpoint-00000004.tmp-99999")
    try fm.createDirectory(at: stale, withIntermediateDirectories: true)
    let log = out.appendingPathComponent("log.csv")
    let text = try String(contentsOf: log, encoding: .utf8)
    let junk = text.split(separator: "\n")[1].split(separator: ",").dropFirst().joined(separator: ",")
    try (text + "5,\(junk)\n7,\(junk)\n").write(to: log, atomically: true, encoding: .utf8)
    let r = try runGpugen(args + ["--out", out.path, "--steps", "3", "--resume"])
    XCTAssertEqual(r.0, 0, r.2)
    XCTAssertFalse(fm.fileExists(atPath: stale.path))
    let steps = try String(contentsOf: log, encoding: .utf8).split(separator: "\n").dropFirst().map {
      $0.split(separator: ",")[0]
    }
    XCTAssertEqual(steps, ["1", "2", "3"])
  }
}

/// A denoiser on 1×2×2 images that predicts zero noise, or NaN at one timestep.
final class ScriptedDenoiser: Denoiser {
  let nanAt: Double?
  init(nanAt: Double?) { self.nanAt = nanAt }
  var device: Device { Device.cpu }
  var imageShape: [Int] { [1, 2, 2] }
  var classCount: Int? { nil }
  func callAsFunction(_ x: Tensor, timesteps: [Double], classLabels: [Int]?) throws -> Tensor {
    try x.mul(timesteps.first == nanAt ? Float.nan : 0)
  }
}
