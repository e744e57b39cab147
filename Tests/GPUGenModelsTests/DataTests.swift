// IDX reading (plain and gzip) with its validation errors, and TrainingImages loading: padding, area resizing,
// channel conversion, source resolution, PNG class folders, Fashion-MNIST.
import Foundation
import XCTest

@testable import GPUGenModels

final class DataTests: XCTestCase {
  // MARK: Helpers

  func tmpDir() throws -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent("gpugen-data-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: u) }
    return u
  }

  /// An IDX file: magic 00 00, type, rank, big-endian dimensions, payload.
  func idx(type: UInt8, dims: [Int], payload: [UInt8]) -> [UInt8] {
    var b: [UInt8] = [0, 0, type, UInt8(dims.count)]
    for d in dims {
      b += [UInt8(d >> 24 & 0xff), UInt8(d >> 16 & 0xff), UInt8(d >> 8 & 0xff), UInt8(d & 0xff)]
    }
    return b + payload
  }

  @discardableResult
  func write(_ bytes: [UInt8], _ dir: URL, _ name: String, gzip: Bool = false) throws -> URL {
    let u = dir.appendingPathComponent(name)
    try Data(gzip ? try Gzip.compress(bytes) : bytes).write(to: u)
    return u
  }

  /// Asserts that `body` throws an IDXError accepted by `match` whose message names `path`.
  func assertIDXError(
    _ body: @autoclosure () throws -> Any, path: String, file: StaticString = #filePath, line: UInt = #line,
    _ match: (IDXError) -> Bool
  ) {
    do {
      _ = try body()
      XCTFail("no error thrown", file: file, line: line)
    } catch let e as IDXError {
      XCTAssertTrue(match(e), "unexpected error \(e)", file: file, line: line)
      XCTAssertTrue(e.description.contains(path), "message lacks the path: \(e)", file: file, line: line)
    } catch {
      XCTFail("not an IDXError: \(error)", file: file, line: line)
    }
  }

  func assertDatasetError(
    _ body: @autoclosure () throws -> Any, file: StaticString = #filePath, line: UInt = #line,
    _ match: (DatasetError) -> Bool
  ) {
    do {
      _ = try body()
      XCTFail("no error thrown", file: file, line: line)
    } catch let e as DatasetError {
      XCTAssertTrue(match(e), "unexpected error \(e)", file: file, line: line)
    } catch {
      XCTFail("not a DatasetError: \(error)", file: file, line: line)
    }
  }

  func px(_ v: UInt8) -> Float { Float(v) / 127.5 - 1 }

  // MARK: IDX

  func testIDXPlainAndGzipReadTheSameArrayWhateverTheExtension() throws {
    let dir = try tmpDir()
    let payload = (0..<(3 * 4 * 5)).map { UInt8(($0 * 37) % 256) }
    let bytes = idx(type: 0x08, dims: [3, 4, 5], payload: payload)
    let files = [
      try write(bytes, dir, "plain-idx3-ubyte"),
      try write(bytes, dir, "zipped-idx3-ubyte.gz", gzip: true),
      try write(bytes, dir, "zipped-without-extension", gzip: true),
      try write(bytes, dir, "plain-named.gz"),
    ]
    for f in files {
      let a = try IDXArray.read(contentsOf: f)
      XCTAssertEqual(a.type, .uint8, f.path)
      XCTAssertEqual(a.dimensions, [3, 4, 5], f.path)
      XCTAssertEqual(Array(a.payload), payload, f.path)
      XCTAssertEqual(a.values(), payload.map(Double.init), f.path)
    }
    // Concatenated gzip members decompress to the concatenation, as gunzip does.
    let half = bytes.count / 2
    let joined = try Gzip.compress(Array(bytes[..<half])) + Gzip.compress(Array(bytes[half...]))
    let multi = try write(joined, dir, "multi.gz")
    XCTAssertEqual(Array(try IDXArray.read(contentsOf: multi).payload), payload)
  }

  func testIDXConvertsEveryElementTypeFromBigEndian() throws {
    func check(_ type: UInt8, _ payload: [UInt8], _ expected: [Double]) throws {
      let a = try IDXArray.parse(idx(type: type, dims: [expected.count], payload: payload), path: "t")
      XCTAssertEqual(a.values(), expected, "type \(type)")
    }
    try check(0x09, [0x7f, 0x80, 0xff], [127, -128, -1])
    try check(0x0B, [0x01, 0x02, 0xff, 0xfe], [258, -2])
    try check(0x0C, [0x00, 0x01, 0x00, 0x00, 0xff, 0xff, 0xff, 0xfd], [65536, -3])
    try check(0x0D, [0x3f, 0xc0, 0x00, 0x00, 0xc1, 0x20, 0x00, 0x00], [1.5, -10])
    try check(0x0E, [0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18], [Double.pi])
  }

  func testIDXEachMalformationHasItsOwnError() throws {
    let dir = try tmpDir()
    let good = idx(type: 0x08, dims: [2, 3], payload: [1, 2, 3, 4, 5, 6])

    let missing = dir.appendingPathComponent("nope-idx3-ubyte")
    assertIDXError(try IDXArray.read(contentsOf: missing), path: missing.path) {
      if case .missing = $0 { return true } else { return false }
    }
    assertIDXError(try IDXArray.read(contentsOf: dir), path: dir.path) {
      if case .unreadable = $0 { return true } else { return false }
    }
    func bad(_ bytes: [UInt8], gzip: Bool = false, _ match: (IDXError) -> Bool, line: UInt = #line) throws {
      let u = try write(bytes, dir, "case-\(line)", gzip: gzip)
      assertIDXError(try IDXArray.read(contentsOf: u), path: u.path, line: line, match)
    }
    try bad([0, 0, 8]) { if case .truncatedHeader(_, 3, 4) = $0 { return true } else { return false } }
    try bad([0, 0, 8, 2, 0, 0, 0, 2]) {
      if case .truncatedHeader(_, 8, 12) = $0 { return true } else { return false }
    }
    try bad([0, 1] + good.dropFirst(2)) {
      if case .badMagic(_, 0, 1) = $0 { return true } else { return false }
    }
    try bad([0x1f, 0x8c] + good.dropFirst(2)) {
      if case .badMagic(_, 0x1f, 0x8c) = $0 { return true } else { return false }
    }
    try bad([0, 0, 0x0A] + good.dropFirst(3)) {
      if case .unknownType(_, 0x0A) = $0 { return true } else { return false }
    }
    try bad([0, 0, 8, 0]) { if case .badDimensionCount(_, 0) = $0 { return true } else { return false } }
    try bad(idx(type: 8, dims: Array(repeating: 1, count: 9), payload: [7])) {
      if case .badDimensionCount(_, 9) = $0 { return true } else { return false }
    }
    try bad(idx(type: 8, dims: [65536, 65536], payload: [])) {
      if case .tooManyElements(_, [65536, 65536]) = $0 { return true } else { return false }
    }
    try bad(idx(type: 8, dims: [0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF], payload: [])) {
      if case .tooManyElements = $0 { return true } else { return false }
    }
    try bad(Array(good.dropLast())) {
      if case .truncatedPayload(_, 6, 5) = $0 { return true } else { return false }
    }
    try bad(idx(type: 0x0C, dims: [2], payload: [0, 0, 0, 1, 0, 0, 0])) {
      if case .truncatedPayload(_, 8, 7) = $0 { return true } else { return false }
    }
    try bad(good + [9, 9]) { if case .trailingBytes(_, 6, 8) = $0 { return true } else { return false } }

    // gzip: cut short, corrupted, garbage after the stream, and a decompression bomb. (A valid IDX file of
    // 1018 bytes, so that each case has one defect: the stream never inflates past its header's size.)
    let zipped = try Gzip.compress(
      idx(type: 0x08, dims: [2, 503], payload: Array(repeating: 0, count: 1006)))
    try bad(Array(zipped.prefix(zipped.count - 6))) {
      if case .truncatedGzip = $0 { return true } else { return false }
    }
    try bad(Array(zipped.prefix(12))) { if case .truncatedGzip = $0 { return true } else { return false } }
    var flipped = zipped
    flipped[zipped.count - 8] ^= 0xff  // CRC32 in the trailer
    try bad(flipped) { if case .corruptGzip = $0 { return true } else { return false } }
    var badBlock = zipped
    badBlock[10] = 0xff  // first deflate block header: reserved block type 3
    try bad(badBlock) { if case .corruptGzip = $0 { return true } else { return false } }
    try bad(try Gzip.compress(good) + [1, 2, 3]) {
      if case .corruptGzip(_, let why) = $0 { return why.contains("trailing") } else { return false }
    }
    let bomb = try write(
      idx(type: 8, dims: [100_000], payload: Array(repeating: 0, count: 100_000)), dir, "bomb", gzip: true)
    XCTAssertLessThan(try Data(contentsOf: bomb).count, 1000)
    assertIDXError(try IDXArray.read(contentsOf: bomb, maxBytes: 50_000), path: bomb.path) {
      if case .tooLarge(_, 50_000) = $0 { return true } else { return false }
    }
    let plainBig = try write(good, dir, "plain-big")
    assertIDXError(try IDXArray.read(contentsOf: plainBig, maxBytes: 10), path: plainBig.path) {
      if case .tooLarge(_, 10) = $0 { return true } else { return false }
    }
    XCTAssertEqual(try IDXArray.read(contentsOf: bomb, maxBytes: 100_020).count, 100_000)
  }

  func testIDXImageAndLabelFileChecks() throws {
    let dir = try tmpDir()
    let images = try write(
      idx(type: 8, dims: [2, 2, 2], payload: [0, 1, 2, 3, 4, 5, 6, 7]), dir, "i-images-idx3-ubyte")
    let labels3 = try write(idx(type: 8, dims: [3], payload: [0, 1, 2]), dir, "l3")
    func load(_ i: URL, _ l: URL?) throws -> TrainingImages {
      try TrainingImages.loadIDX(images: i, labels: l, sampleSize: 2, channels: 1)
    }
    assertIDXError(try load(images, labels3), path: labels3.path) {
      if case .countMismatch(images.path, 2, labels3.path, 3) = $0 { return true } else { return false }
    }
    let flat = try write(idx(type: 8, dims: [8], payload: Array(0..<8)), dir, "flat")
    assertIDXError(try load(flat, nil), path: flat.path) {
      if case .imagesNot3D(_, [8]) = $0 { return true } else { return false }
    }
    let shorts = try write(idx(type: 0x0B, dims: [1, 1, 2], payload: [0, 1, 0, 2]), dir, "shorts")
    assertIDXError(try load(shorts, nil), path: shorts.path) {
      if case .wrongType(_, _, .int16) = $0 { return true } else { return false }
    }
    let labels2D = try write(idx(type: 8, dims: [2, 1], payload: [0, 1]), dir, "l2d")
    assertIDXError(try load(images, labels2D), path: labels2D.path) {
      if case .labelsNot1D(_, [2, 1]) = $0 { return true } else { return false }
    }
    let floatLabels = try write(idx(type: 0x0D, dims: [2], payload: Array(repeating: 0, count: 8)), dir, "lf")
    assertIDXError(try load(images, floatLabels), path: floatLabels.path) {
      if case .wrongType(_, _, .float32) = $0 { return true } else { return false }
    }
    let big = try write(idx(type: 0x0B, dims: [2], payload: [0, 1, 0x01, 0x2c]), dir, "l300")
    assertIDXError(try load(images, big), path: big.path) {
      if case .labelOutOfRange(_, 1, 300) = $0 { return true } else { return false }
    }
    let negative = try write(idx(type: 0x09, dims: [2], payload: [0xff, 1]), dir, "lneg")
    assertIDXError(try load(images, negative), path: negative.path) {
      if case .labelOutOfRange(_, 0, -1) = $0 { return true } else { return false }
    }
    let int16Labels = try write(idx(type: 0x0B, dims: [2], payload: [0, 4, 0, 255]), dir, "l16")
    let ok = try load(images, int16Labels)
    XCTAssertEqual(ok.labels, [4, 255])
    XCTAssertEqual(ok.classCount, 256)
    let empty = try write(idx(type: 8, dims: [0, 2, 2], payload: []), dir, "empty")
    assertDatasetError(try load(empty, nil)) { if case .empty = $0 { return true } else { return false } }
  }

  // MARK: Pixel mapping

  func testPadding28To32CentresTheImageWithMinusOne() throws {
    let dir = try tmpDir()
    let payload: [UInt8] = (0..<(2 * 28 * 28)).map { (i: Int) -> UInt8 in UInt8((i * 7 + 3) % 256) }
    let f = try write(
      idx(type: 8, dims: [2, 28, 28], payload: payload), dir, "x-images-idx3-ubyte", gzip: true)
    let d = try TrainingImages.loadIDX(images: f, labels: nil, sampleSize: 32, channels: 1)
    XCTAssertEqual(d.count, 2)
    XCTAssertEqual(d.images.count, 2 * 32 * 32)
    XCTAssertNil(d.labels)
    XCTAssertEqual(d.classCount, 0)
    for i in 0..<2 {
      let img = Array(d.image(i))
      for y in 0..<32 {
        for x in 0..<32 {
          let inside = (2..<30).contains(y) && (2..<30).contains(x)
          let want = inside ? px(payload[i * 784 + (y - 2) * 28 + (x - 2)]) : -1
          XCTAssertEqual(img[y * 32 + x], want, "image \(i) (\(y), \(x))")
        }
      }
    }
    // (2, 2) is the first image pixel; rows 0 and 1 are padding.
    XCTAssertEqual(d.images[2 * 32 + 2], px(payload[0]))
    XCTAssertEqual(Array(d.images[0..<64]), Array(repeating: -1, count: 64))
    // The mapping is x/127.5 - 1: 0 → -1, 255 → 1.
    XCTAssertEqual(px(0), -1)
    XCTAssertEqual(px(255), 1)

    // Odd padding puts the extra row/column after: 5 → 8 has 1 before and 2 after.
    let g = try write(idx(type: 8, dims: [1, 5, 5], payload: Array(repeating: 255, count: 25)), dir, "odd")
    let o = try TrainingImages.loadIDX(images: g, labels: nil, sampleSize: 8, channels: 1)
    let rowSums = (0..<8).map { y in (0..<8).filter { o.images[y * 8 + $0] == 1 }.count }
    XCTAssertEqual(rowSums, [0, 5, 5, 5, 5, 5, 0, 0])
    XCTAssertEqual((0..<8).map { o.images[3 * 8 + $0] }, [-1, 1, 1, 1, 1, 1, -1, -1])
  }

  func testLargerImagesAreResizedByAreaAveraging() throws {
    let dir = try tmpDir()
    // 4×4 → 2×2: each output is the mean of a 2×2 block.
    let a: [UInt8] = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 255]
    let f = try write(idx(type: 8, dims: [1, 4, 4], payload: a), dir, "a")
    let d = try TrainingImages.loadIDX(images: f, labels: nil, sampleSize: 2, channels: 1)
    func mapped(_ mean: Double) -> Float { Float(mean) / 127.5 - 1 }
    XCTAssertEqual(d.images[0], mapped(25), accuracy: 1e-6)  // 0, 10, 40, 50
    XCTAssertEqual(d.images[1], mapped(45), accuracy: 1e-6)  // 20, 30, 60, 70
    XCTAssertEqual(d.images[2], mapped(105), accuracy: 1e-6)  // 80, 90, 120, 130
    XCTAssertEqual(d.images[3], mapped((100.0 + 110 + 140 + 255) / 4), accuracy: 1e-6)

    // 3×3 → 2×2: fractional overlaps; output 0 covers source [0, 1.5) (weights 2/3, 1/3).
    let b: [UInt8] = [9, 18, 27, 36, 45, 54, 63, 72, 81]
    let g = try write(idx(type: 8, dims: [1, 3, 3], payload: b), dir, "b")
    let e = try TrainingImages.loadIDX(images: g, labels: nil, sampleSize: 2, channels: 1)
    func at(_ r: Int, _ c: Int) -> Double { Double(b[r * 3 + c]) }
    let w: [[Double]] = [[2.0 / 3, 1.0 / 3, 0], [0, 1.0 / 3, 2.0 / 3]]
    for oy in 0..<2 {
      for ox in 0..<2 {
        var mean = 0.0
        for r in 0..<3 { for c in 0..<3 { mean += w[oy][r] * w[ox][c] * at(r, c) } }
        XCTAssertEqual(e.images[oy * 2 + ox], mapped(mean), accuracy: 1e-5, "(\(oy), \(ox))")
      }
    }

    // Non-square 6 rows × 2 columns → 4×4: rows resized (6 → 4), columns padded (1 before, 1 after).
    let c: [UInt8] = [0, 60, 30, 90, 60, 120, 90, 150, 120, 180, 150, 210]
    let h = try write(idx(type: 8, dims: [1, 6, 2], payload: c), dir, "c")
    let n = try TrainingImages.loadIDX(images: h, labels: nil, sampleSize: 4, channels: 1)
    for oy in 0..<4 {
      XCTAssertEqual(n.images[oy * 4], -1)
      XCTAssertEqual(n.images[oy * 4 + 3], -1)
      // Output row oy covers source rows [1.5·oy, 1.5·oy + 1.5).
      var left = 0.0
      for r in 0..<6 {
        let overlap = max(0, min(Double(r + 1), 1.5 * Double(oy + 1)) - max(Double(r), 1.5 * Double(oy)))
        left += overlap / 1.5 * Double(c[r * 2])
      }
      XCTAssertEqual(n.images[oy * 4 + 1], mapped(left), accuracy: 1e-5, "row \(oy)")
    }
  }

  func testGrayIDXImagesAreReplicatedForThreeChannels() throws {
    let dir = try tmpDir()
    let f = try write(idx(type: 8, dims: [2, 2, 2], payload: [0, 64, 128, 255, 1, 2, 3, 4]), dir, "g")
    let d = try TrainingImages.loadIDX(images: f, labels: nil, sampleSize: 2, channels: 3)
    XCTAssertEqual(d.images.count, 2 * 3 * 4)
    for i in 0..<2 {
      let img = Array(d.image(i))
      XCTAssertEqual(Array(img[0..<4]), Array(img[4..<8]))
      XCTAssertEqual(Array(img[0..<4]), Array(img[8..<12]))
    }
    XCTAssertEqual(Array(Array(d.image(0))[0..<4]), [0, 64, 128, 255].map { px($0) })
    assertDatasetError(try TrainingImages.loadIDX(images: f, labels: nil, sampleSize: 2, channels: 2)) {
      if case .invalidArgument = $0 { return true } else { return false }
    }
    assertDatasetError(try TrainingImages.loadIDX(images: f, labels: nil, sampleSize: 0, channels: 1)) {
      if case .invalidArgument = $0 { return true } else { return false }
    }
  }

  // MARK: Sources

  func testSourceResolutionForIDXFilesAndFolders() throws {
    let dir = try tmpDir()
    let train = idx(type: 8, dims: [3, 2, 2], payload: Array(0..<12))
    let test = idx(type: 8, dims: [1, 2, 2], payload: [9, 9, 9, 9])
    try write(train, dir, "train-images-idx3-ubyte.gz", gzip: true)
    try write(idx(type: 8, dims: [3], payload: [2, 0, 4]), dir, "train-labels-idx1-ubyte.gz", gzip: true)
    try write(test, dir, "t10k-images-idx3-ubyte.gz", gzip: true)
    try write(idx(type: 8, dims: [1], payload: [1]), dir, "t10k-labels-idx1-ubyte.gz", gzip: true)

    // A folder with train and t10k files uses the train split.
    let a = try TrainingImages.load(source: dir.path, sampleSize: 2, channels: 1)
    XCTAssertEqual(a.count, 3)
    XCTAssertEqual(a.labels, [2, 0, 4])
    XCTAssertEqual(a.classCount, 5)
    // A file path finds its labels beside it.
    let b = try TrainingImages.load(
      source: dir.appendingPathComponent("t10k-images-idx3-ubyte.gz").path, sampleSize: 2, channels: 1)
    XCTAssertEqual(b.count, 1)
    XCTAssertEqual(b.labels, [1])
    XCTAssertEqual(b.images, [9, 9, 9, 9].map { px($0) })
    // `fashion-mnist` with the folder override.
    let c = try TrainingImages.load(
      source: "fashion-mnist", sampleSize: 2, channels: 1, environment: ["GPUGEN_FASHION_MNIST_DIR": dir.path]
    )
    XCTAssertEqual(c.labels, [2, 0, 4])

    // Errors: missing labels, ambiguous folder, missing source, missing Fashion-MNIST.
    let lone = try tmpDir()
    let loneImages = try write(test, lone, "a-images-idx3-ubyte")
    assertDatasetError(try TrainingImages.load(source: loneImages.path, sampleSize: 2, channels: 1)) {
      if case .labelsNotFound(loneImages.path, let expected) = $0 {
        return expected.hasSuffix("a-labels-idx1-ubyte")
      } else {
        return false
      }
    }
    try write(test, lone, "b-images-idx3-ubyte")
    assertDatasetError(try TrainingImages.load(source: lone.path, sampleSize: 2, channels: 1)) {
      if case .ambiguousIDX(_, let files) = $0 { return files.count == 2 } else { return false }
    }
    // An image file without `images-idx3` in its name loads unlabelled.
    let unnamed = try write(test, lone, "pixels.idx")
    XCTAssertNil(try TrainingImages.load(source: unnamed.path, sampleSize: 2, channels: 1).labels)
    assertDatasetError(try TrainingImages.load(source: dir.path + "/nope", sampleSize: 2, channels: 1)) {
      if case .sourceNotFound = $0 { return true } else { return false }
    }
    let emptyDir = try tmpDir()
    do {
      _ = try TrainingImages.load(
        source: "fashion-mnist", sampleSize: 2, channels: 1,
        environment: ["GPUGEN_FASHION_MNIST_DIR": emptyDir.path])
      XCTFail("no error")
    } catch let e as DatasetError {
      XCTAssertEqual(e, .fashionMNISTMissing(folder: emptyDir.path))
      XCTAssertTrue(e.description.contains("apt-get install dataset-fashion-mnist"), e.description)
    }
    XCTAssertEqual(
      TrainingImages.fashionMNISTFolder(environment: [:]).path, "/usr/share/datasets/fashion-mnist")
  }

  func testPNGFolderWithClassSubfoldersAndChannelConversion() throws {
    let dir = try tmpDir()
    let fm = FileManager.default
    // Class folders sorted by name: "ankle" = 0, "bag" = 1 (created in the other order).
    for name in ["bag", "ankle"] {
      try fm.createDirectory(at: dir.appendingPathComponent(name), withIntermediateDirectories: true)
    }
    let rgb = Image8(
      width: 2, height: 2, channels: 3, pixels: [10, 200, 30, 255, 0, 0, 0, 0, 255, 50, 50, 50])
    let gray = Image8(width: 2, height: 2, channels: 1, pixels: [0, 85, 170, 255])
    let big = Image8(width: 4, height: 4, channels: 1, pixels: (0..<16).map { UInt8($0 * 16) })
    try rgb.writePNG(to: dir.appendingPathComponent("bag/b1.png"))
    try gray.writePNG(to: dir.appendingPathComponent("ankle/a2.png"))
    try big.writePNG(to: dir.appendingPathComponent("ankle/a1.png"))
    try Data("not an image".utf8).write(to: dir.appendingPathComponent("ankle/notes.txt"))

    let g = try TrainingImages.load(source: dir.path, sampleSize: 2, channels: 1)
    XCTAssertEqual(g.count, 3)
    XCTAssertEqual(g.labels, [0, 0, 1])  // ankle/a1, ankle/a2, bag/b1
    XCTAssertEqual(g.classCount, 2)
    // a1: 4×4 → 2×2 by area averaging.
    XCTAssertEqual(g.images[0], Float((0.0 + 16 + 64 + 80) / 4) / 127.5 - 1, accuracy: 1e-6)
    XCTAssertEqual(Array(g.image(1)), gray.pixels.map { px($0) })
    // RGB → gray by ITU-R 601 luma: 0.299·10 + 0.587·200 + 0.114·30 = 123.81 → 124.
    XCTAssertEqual(Array(g.image(2)), [124, 76, 29, 50].map { px($0) })

    let c = try TrainingImages.load(source: dir.path, sampleSize: 2, channels: 3)
    XCTAssertEqual(c.images.count, 3 * 3 * 4)
    // Gray replicated over R, G, B; RGB kept per channel.
    let c1 = Array(c.image(1)), c2 = Array(c.image(2))
    for ch in 0..<3 { XCTAssertEqual(Array(c1[(ch * 4)..<(ch * 4 + 4)]), gray.pixels.map { px($0) }) }
    XCTAssertEqual(Array(c2[0..<4]), [10, 255, 0, 50].map { px($0) })
    XCTAssertEqual(Array(c2[4..<8]), [200, 0, 0, 50].map { px($0) })
    XCTAssertEqual(Array(c2[8..<12]), [30, 0, 255, 50].map { px($0) })

    // Smaller PNGs are padded like IDX images.
    let p = try TrainingImages.load(
      source: dir.appendingPathComponent("bag").path, sampleSize: 4, channels: 1)
    XCTAssertNil(p.labels)
    XCTAssertEqual(p.classCount, 0)
    XCTAssertEqual(Array(p.images[4..<8]), [-1, px(124), px(76), -1])

    // Errors: no PNGs, PNGs both directly and in sub-folders, an undecodable .png.
    let empty = try tmpDir()
    try fm.createDirectory(at: empty.appendingPathComponent("cls"), withIntermediateDirectories: true)
    assertDatasetError(try TrainingImages.load(source: empty.path, sampleSize: 2, channels: 1)) {
      $0 == .noPNGs(folder: empty.path)
    }
    try gray.writePNG(to: dir.appendingPathComponent("top.png"))
    assertDatasetError(try TrainingImages.load(source: dir.path, sampleSize: 2, channels: 1)) {
      $0 == .mixedPNGFolder(folder: dir.path)
    }
    try fm.removeItem(at: dir.appendingPathComponent("top.png"))
    try Data("junk".utf8).write(to: dir.appendingPathComponent("bag/broken.png"))
    XCTAssertThrowsError(try TrainingImages.load(source: dir.path, sampleSize: 2, channels: 1)) {
      XCTAssertTrue("\($0)".contains("broken.png"), "\($0)")
    }
  }

  func testFashionMNISTLoadsWhenInstalled() throws {
    let folder = TrainingImages.fashionMNISTFolder()
    try XCTSkipUnless(
      FileManager.default.fileExists(
        atPath: folder.appendingPathComponent("train-images-idx3-ubyte.gz").path),
      "dataset-fashion-mnist is not installed")
    let start = Date()
    let d = try TrainingImages.load(source: "fashion-mnist", sampleSize: 28, channels: 1)
    print("Fashion-MNIST: 60000 images loaded in \(Date().timeIntervalSince(start)) s")
    XCTAssertEqual(d.count, 60000)
    XCTAssertEqual(d.channels, 1)
    XCTAssertEqual(d.size, 28)
    XCTAssertEqual(d.classCount, 10)
    XCTAssertEqual(d.images.count, 60000 * 28 * 28)
    // Values checked with Python's gzip module: labels start 9, 0, 0, 3; the last is 5; image 0 sums to
    // 76247 and has 217 at (14, 14); every class has 6000 images.
    XCTAssertEqual(Array(d.labels!.prefix(4)), [9, 0, 0, 3])
    XCTAssertEqual(d.labels!.last, 5)
    XCTAssertEqual(d.image(0).reduce(0.0) { $0 + Double(($1 + 1) * 127.5).rounded() }, 76247)
    XCTAssertEqual(d.images[14 * 28 + 14], px(217))
    var perClass = [Int](repeating: 0, count: 10)
    for l in d.labels! { perClass[l] += 1 }
    XCTAssertEqual(perClass, Array(repeating: 6000, count: 10))
  }
}
