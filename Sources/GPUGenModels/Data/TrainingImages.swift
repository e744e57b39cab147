// Training images for `gpugen train diffusion`: IDX files (Fashion-MNIST) or folders of PNGs, mapped to
// [-1, 1] float32 at the model's sample size as docs/TRAINING.md fixes (padding with -1, area resizing).
import Foundation

/// Why a training data source could not be loaded (IDX file problems are `IDXError`s).
public enum DatasetError: Error, CustomStringConvertible, Equatable {
  /// Bad sample size or channel count.
  case invalidArgument(String)
  /// The source is neither `fashion-mnist` nor an existing file or folder.
  case sourceNotFound(String)
  /// The Fashion-MNIST folder or its files are missing.
  case fashionMNISTMissing(folder: String)
  /// A folder holds several IDX image files and none (or several) of them start with `train-`.
  case ambiguousIDX(folder: String, files: [String])
  /// The label file beside an IDX image file is missing.
  case labelsNotFound(images: String, expected: String)
  /// A folder without PNG files (directly or in class sub-folders).
  case noPNGs(folder: String)
  /// A folder with PNG files both directly in it and in sub-folders.
  case mixedPNGFolder(folder: String)
  /// The source holds no images.
  case empty(String)

  public var description: String {
    switch self {
    case .invalidArgument(let why): return why
    case .sourceNotFound(let s):
      return
        "training data \(s) not found: give `fashion-mnist`, an IDX image file, a folder with IDX files, "
        + "or a folder of PNGs (optionally one sub-folder per class)"
    case .fashionMNISTMissing(let folder):
      return "Fashion-MNIST not found in \(folder) (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz): "
        + "install it with `apt-get install dataset-fashion-mnist`, or set GPUGEN_FASHION_MNIST_DIR"
    case .ambiguousIDX(let folder, let files):
      return "folder \(folder) holds several IDX image files (\(files.joined(separator: ", "))); "
        + "give the file itself"
    case .labelsNotFound(let images, let expected):
      return "no label file for IDX images \(images): expected \(expected)"
    case .noPNGs(let folder): return "folder \(folder) holds no PNG files (directly or in class sub-folders)"
    case .mixedPNGFolder(let folder):
      return "folder \(folder) holds PNG files both directly and in sub-folders: "
        + "use either unlabelled PNGs or one sub-folder per class"
    case .empty(let s): return "training data \(s) holds no images"
    }
  }
}

/// A data set of training images at the model's resolution.
public struct TrainingImages: Sendable {
  /// (count, channels, size, size) row-major, values in [-1, 1].
  public var images: [Float]
  /// Class labels in 0..<classCount, or nil for unlabelled data.
  public var labels: [Int]?
  public var count: Int
  public var channels: Int
  public var size: Int
  /// Max label + 1 for IDX labels, the number of class folders for PNGs, 0 when unlabelled.
  public var classCount: Int

  public init(images: [Float], labels: [Int]?, count: Int, channels: Int, size: Int, classCount: Int) {
    (self.images, self.labels, self.count) = (images, labels, count)
    (self.channels, self.size, self.classCount) = (channels, size, classCount)
  }

  /// Floats per image: channels·size·size.
  public var imageElements: Int { channels * size * size }

  /// The values of image `i`, (channels, size, size).
  public func image(_ i: Int) -> ArraySlice<Float> {
    images[(i * imageElements)..<((i + 1) * imageElements)]
  }

  /// The Fashion-MNIST folder: `GPUGEN_FASHION_MNIST_DIR`, or where Debian's `dataset-fashion-mnist` puts it.
  public static func fashionMNISTFolder(environment: [String: String] = ProcessInfo.processInfo.environment)
    -> URL
  {
    if let dir = environment["GPUGEN_FASHION_MNIST_DIR"], !dir.isEmpty {
      return URL(fileURLWithPath: dir, isDirectory: true)
    }
    return URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist", isDirectory: true)
  }

  /// Loads training images from `source`:
  /// - `fashion-mnist`: the training split in `fashionMNISTFolder()`;
  /// - an IDX image file (gzip or plain); labels come from the file named with `labels-idx1` for `images-idx3`
  ///   beside it (a file whose name lacks `images-idx3` is read unlabelled);
  /// - a folder with IDX files (one `*images-idx3-ubyte*`, or the `train-` one of several, and its labels);
  /// - a folder of PNGs, unlabelled, or one sub-folder per class (label = index in sorted name order).
  public static func load(
    source: String, sampleSize: Int, channels: Int,
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) throws -> TrainingImages {
    try checkArguments(sampleSize: sampleSize, channels: channels)
    if source == "fashion-mnist" {
      let folder = fashionMNISTFolder(environment: environment)
      guard let images = try? idxImageFile(in: folder) else {
        throw DatasetError.fashionMNISTMissing(folder: folder.path)
      }
      let labels = labelFile(for: images)
      guard FileManager.default.fileExists(atPath: labels.path) else {
        throw DatasetError.fashionMNISTMissing(folder: folder.path)
      }
      return try loadIDX(images: images, labels: labels, sampleSize: sampleSize, channels: channels)
    }
    let url = URL(fileURLWithPath: source)
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
      throw DatasetError.sourceNotFound(source)
    }
    if !isDir.boolValue {
      var labels: URL? = nil
      if url.lastPathComponent.contains("images-idx3") {
        labels = labelFile(for: url)
        guard FileManager.default.fileExists(atPath: labels!.path) else {
          throw DatasetError.labelsNotFound(images: url.path, expected: labels!.path)
        }
      }
      return try loadIDX(images: url, labels: labels, sampleSize: sampleSize, channels: channels)
    }
    if let images = try idxImageFile(in: url) {
      let labels = labelFile(for: images)
      guard FileManager.default.fileExists(atPath: labels.path) else {
        throw DatasetError.labelsNotFound(images: images.path, expected: labels.path)
      }
      return try loadIDX(images: images, labels: labels, sampleSize: sampleSize, channels: channels)
    }
    return try loadPNGFolder(url, sampleSize: sampleSize, channels: channels)
  }

  /// Loads an IDX image file (count, rows, columns of unsigned bytes) and optionally its IDX label file.
  public static func loadIDX(
    images: URL, labels: URL?, sampleSize: Int, channels: Int, maxBytes: Int = IDXArray.defaultMaxBytes
  ) throws -> TrainingImages {
    try checkArguments(sampleSize: sampleSize, channels: channels)
    let pixels = try IDXArray.read(contentsOf: images, maxBytes: maxBytes)
    try pixels.checkImages()
    let (n, h, w) = (pixels.dimensions[0], pixels.dimensions[1], pixels.dimensions[2])
    var labelValues: [Int]? = nil
    if let labels {
      let l = try IDXArray.read(contentsOf: labels, maxBytes: maxBytes).labels()
      guard l.count == n else {
        throw IDXError.countMismatch(
          images: images.path, imageCount: n, labels: labels.path, labelCount: l.count)
      }
      labelValues = l
    }
    guard n > 0 else { throw DatasetError.empty(images.path) }
    let s = sampleSize
    let plane = s * s
    let resampler = PlaneResampler(width: w, height: h, size: s)
    let values = [Float](unsafeUninitializedCapacity: n * channels * plane) { buf, initialized in
      pixels.payload.withUnsafeBufferPointer { src in
        for i in 0..<n {
          let dst = buf.baseAddress! + i * channels * plane
          resampler.apply(src.baseAddress! + i * h * w, stride: 1, into: dst)
          for c in 1..<channels {
            (dst + c * plane).update(from: dst, count: plane)
          }
        }
      }
      initialized = n * channels * plane
    }
    return TrainingImages(
      images: values, labels: labelValues, count: n, channels: channels, size: s,
      classCount: labelValues.map { ($0.max() ?? -1) + 1 } ?? 0)
  }

  /// Loads a folder of PNGs: unlabelled files directly in it, or one sub-folder per class (labels are the
  /// sub-folder's index in sorted name order). Files are taken in sorted name order.
  public static func loadPNGFolder(_ folder: URL, sampleSize: Int, channels: Int) throws -> TrainingImages {
    try checkArguments(sampleSize: sampleSize, channels: channels)
    let fm = FileManager.default
    func entries(_ dir: URL) throws -> [URL] {
      do {
        return try fm.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
          .filter { !$0.lastPathComponent.hasPrefix(".") }
          .sorted { $0.lastPathComponent < $1.lastPathComponent }
      } catch {
        throw ModelError.malformed(dir.path, "could not list the folder: \(error.localizedDescription)")
      }
    }
    func isDirectory(_ u: URL) -> Bool {
      var d: ObjCBool = false
      return fm.fileExists(atPath: u.path, isDirectory: &d) && d.boolValue
    }
    func pngs(_ list: [URL]) -> [URL] {
      list.filter { $0.pathExtension.lowercased() == "png" && !isDirectory($0) }
    }
    let top = try entries(folder)
    let direct = pngs(top)
    let classFolders = top.filter(isDirectory)
    let perClass = try classFolders.map { pngs(try entries($0)) }
    let nested = perClass.reduce(0) { $0 + $1.count }
    if !direct.isEmpty && nested > 0 { throw DatasetError.mixedPNGFolder(folder: folder.path) }
    guard !direct.isEmpty || nested > 0 else { throw DatasetError.noPNGs(folder: folder.path) }

    var files: [URL]
    var labels: [Int]? = nil
    var classCount = 0
    if !direct.isEmpty {
      files = direct
    } else {
      files = []
      labels = []
      for (k, list) in perClass.enumerated() {
        files += list
        labels! += Array(repeating: k, count: list.count)
      }
      classCount = classFolders.count
    }
    let s = sampleSize
    let plane = s * s
    var values = [Float](repeating: -1, count: files.count * channels * plane)
    try values.withUnsafeMutableBufferPointer { buf in
      for (i, file) in files.enumerated() {
        let img = try Image8.readPNGConverted(from: file, channels: channels)
        let resampler = PlaneResampler(width: img.width, height: img.height, size: s)
        img.pixels.withUnsafeBufferPointer { src in
          for c in 0..<channels {
            resampler.apply(
              src.baseAddress! + c, stride: channels, into: buf.baseAddress! + (i * channels + c) * plane)
          }
        }
      }
    }
    return TrainingImages(
      images: values, labels: labels, count: files.count, channels: channels, size: s, classCount: classCount)
  }

  static func checkArguments(sampleSize: Int, channels: Int) throws {
    guard sampleSize >= 1, sampleSize <= 4096 else {
      throw DatasetError.invalidArgument("sample size \(sampleSize) is not in 1...4096")
    }
    guard channels == 1 || channels == 3 else {
      throw DatasetError.invalidArgument("training images need 1 or 3 channels, not \(channels)")
    }
  }

  /// The IDX image file of a folder: the only `*images-idx3-ubyte*` file, or the only `train-` one; nil if none.
  static func idxImageFile(in folder: URL) throws -> URL? {
    let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
      .filter { $0.contains("images-idx3-ubyte") && !$0.hasPrefix(".") }.sorted()
    if names.isEmpty { return nil }
    if names.count == 1 { return folder.appendingPathComponent(names[0]) }
    let train = names.filter { $0.hasPrefix("train-") }
    guard train.count == 1 else { throw DatasetError.ambiguousIDX(folder: folder.path, files: names) }
    return folder.appendingPathComponent(train[0])
  }

  /// The label file beside an IDX image file: `images-idx3` replaced by `labels-idx1` in its name.
  static func labelFile(for images: URL) -> URL {
    let name = images.lastPathComponent.replacingOccurrences(of: "images-idx3", with: "labels-idx1")
    return images.deletingLastPathComponent().appendingPathComponent(name)
  }
}

/// Maps a uint8 plane of any size onto an S×S float plane: `x/127.5 − 1`; an axis shorter than S is centred
/// with −1 padding (`before = (S − n)/2` rounded down), a longer one is resized by area averaging (each output
/// pixel is the mean of the source pixels it covers, fractional overlaps weighted by their length).
struct PlaneResampler {
  /// For each output index along one axis: the source indices and weights that make it (empty: padding).
  struct Axis {
    var start: [Int]
    var weights: [[Double]]
    /// `before` when the axis is padded (or copied), nil when it is resized.
    var padBefore: Int?

    init(source n: Int, size s: Int) {
      if n <= s {
        let before = (s - n) / 2
        padBefore = before
        start = (0..<s).map { $0 - before }
        weights = (0..<s).map { o in (before..<(before + n)).contains(o) ? [1] : [] }
      } else {
        padBefore = nil
        // Output o covers source [o·n/s, (o+1)·n/s); in units of 1/s, source pixel i covers [i·s, (i+1)·s).
        start = []
        weights = []
        for o in 0..<s {
          let lo = o * n, hi = (o + 1) * n
          let first = lo / s, last = (hi - 1) / s
          start.append(first)
          weights.append(
            (first...last).map { i in
              Double(Swift.min(hi, (i + 1) * s) - Swift.max(lo, i * s)) / Double(n)
            })
        }
      }
    }
  }

  let width: Int, height: Int, size: Int
  let x: Axis, y: Axis
  /// `Float(v) / 127.5 − 1` for every byte, in float32 arithmetic.
  static let table: [Float] = (0..<256).map { Float($0) / 127.5 - 1 }

  init(width: Int, height: Int, size: Int) {
    (self.width, self.height, self.size) = (width, height, size)
    x = Axis(source: width, size: size)
    y = Axis(source: height, size: size)
  }

  /// Writes the S×S plane for the source plane whose pixel (row r, column c) is `src[(r·width + c)·stride]`.
  func apply(_ src: UnsafePointer<UInt8>, stride: Int, into dst: UnsafeMutablePointer<Float>) {
    let s = size
    if let bx = x.padBefore, let by = y.padBefore {
      dst.update(repeating: -1, count: s * s)
      Self.table.withUnsafeBufferPointer { lut in
        for r in 0..<height {
          let row = dst + (by + r) * s + bx
          let srow = src + r * width * stride
          for c in 0..<width { row[c] = lut[Int(srow[c * stride])] }
        }
      }
      return
    }
    // Separable: columns first (height × S), then rows (S × S), in Double; then the byte mapping in float32.
    var tmp = [Double](repeating: 0, count: height * s)
    var colValid = [Bool](repeating: false, count: s)
    for o in 0..<s where !x.weights[o].isEmpty {
      colValid[o] = true
      let w = x.weights[o], first = x.start[o]
      for r in 0..<height {
        var acc = 0.0
        for (k, wk) in w.enumerated() { acc += wk * Double(src[(r * width + first + k) * stride]) }
        tmp[r * s + o] = acc
      }
    }
    for oy in 0..<s {
      let w = y.weights[oy], first = y.start[oy]
      for ox in 0..<s {
        guard !w.isEmpty, colValid[ox] else {
          dst[oy * s + ox] = -1
          continue
        }
        var acc = 0.0
        for (k, wk) in w.enumerated() { acc += wk * tmp[(first + k) * s + ox] }
        dst[oy * s + ox] = Float(acc) / 127.5 - 1
      }
    }
  }
}
