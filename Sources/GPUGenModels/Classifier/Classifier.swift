// A small CNN image classifier trained with gpugen's own autograd, used to judge generated samples:
// class-conditional accuracy, and a Fréchet distance in its 128-d feature space (`FrechetDistance`).
//
//   conv 3×3 (C → 32) + ReLU → conv 3×3 stride 2 (32 → 64) + ReLU → conv 3×3 stride 2 (64 → 64) + ReLU
//   → flatten → linear (→ 128) + ReLU  [the feature vector] → linear (→ classes)
//
// Saved as OUT/classifier.safetensors (F32, PyTorch-style names) and OUT/classifier_config.json.
import Foundation
import GPUGenCore
import GPUGenNN

/// Why a classifier could not be built, trained, loaded or used.
public enum ClassifierError: Error, CustomStringConvertible, Equatable {
  /// A bad option or argument.
  case invalidArgument(String)
  /// No classifier in the folder.
  case missing(folder: String)
  /// The classifier folder does not exist (and is not the bundled classifier's name).
  case notFound(folder: String)
  /// A classifier file exists but is malformed.
  case malformed(String, String)
  /// The data (or model) does not fit the classifier.
  case mismatch(String)

  public var description: String {
    switch self {
    case .invalidArgument(let why): return why
    case .missing(let folder):
      return "no classifier in \(folder) (expected \(ImageClassifier.configFile) and "
        + "\(ImageClassifier.weightsFile)): train one with `gpugen train classifier --out \(folder)`"
    case .notFound(let folder):
      return "classifier folder \(folder) does not exist: omit --classifier (or give "
        + "`\(ClassifierFolder.bundledName)`) for the bundled Fashion-MNIST classifier, or train one with "
        + "`gpugen train classifier --out \(folder)`"
    case .malformed(let file, let why): return "malformed classifier \(file): \(why)"
    case .mismatch(let why): return why
    }
  }
}

/// The classifier's architecture.
public struct ClassifierConfig: Codable, Equatable, Sendable {
  /// Image channels (1 or 3).
  public var inChannels: Int
  /// Image side S (images are C×S×S).
  public var imageSize: Int
  /// Number of classes.
  public var numClasses: Int
  /// Output channels of the three 3×3 convolutions (the 2nd and 3rd have stride 2).
  public var convChannels: [Int]
  /// Width of the penultimate layer, the feature vector.
  public var featureDim: Int

  public init(
    inChannels: Int = 1, imageSize: Int = 28, numClasses: Int = 10, convChannels: [Int] = [32, 64, 64],
    featureDim: Int = 128
  ) {
    (self.inChannels, self.imageSize, self.numClasses) = (inChannels, imageSize, numClasses)
    (self.convChannels, self.featureDim) = (convChannels, featureDim)
  }

  enum CodingKeys: String, CodingKey {
    case inChannels = "in_channels"
    case imageSize = "image_size"
    case numClasses = "num_classes"
    case convChannels = "conv_channels"
    case featureDim = "feature_dim"
  }

  /// Side of the last convolution's output: S, then ⌈S/2⌉ twice (3×3, padding 1).
  public var finalSize: Int {
    let half = (imageSize - 1) / 2 + 1
    return (half - 1) / 2 + 1
  }

  /// Inputs of the first linear layer: last conv channels × finalSize².
  public var flattenedSize: Int { (convChannels.last ?? 0) * finalSize * finalSize }

  public func validate() throws {
    guard inChannels >= 1, inChannels <= 4 else {
      throw ClassifierError.invalidArgument("classifier: in_channels \(inChannels) is not in 1...4")
    }
    guard imageSize >= 1, imageSize <= 1024 else {
      throw ClassifierError.invalidArgument("classifier: image_size \(imageSize) is not in 1...1024")
    }
    guard numClasses >= 2 else {
      throw ClassifierError.invalidArgument("classifier: needs at least 2 classes, not \(numClasses)")
    }
    guard convChannels.count == 3, convChannels.allSatisfy({ $0 >= 1 }), featureDim >= 1 else {
      throw ClassifierError.invalidArgument(
        "classifier: conv_channels must be three positive widths and feature_dim positive")
    }
  }

  /// Every parameter's name and shape, in name order (the order of `Init` streams and of the optimizer).
  public var parameterShapes: [(name: String, shape: [Int])] {
    let c = convChannels
    return [
      ("conv1.bias", [c[0]]), ("conv1.weight", [c[0], inChannels, 3, 3]),
      ("conv2.bias", [c[1]]), ("conv2.weight", [c[1], c[0], 3, 3]),
      ("conv3.bias", [c[2]]), ("conv3.weight", [c[2], c[1], 3, 3]),
      ("fc1.bias", [featureDim]), ("fc1.weight", [featureDim, flattenedSize]),
      ("fc2.bias", [numClasses]), ("fc2.weight", [numClasses, featureDim]),
    ]
  }
}

/// The CNN classifier on the Module framework: children conv1…conv3 (Conv2d) and fc1, fc2 (Linear), so its
/// state-dict names are conv1.weight, …, fc2.bias; forward pass, cross-entropy, save and load.
public final class ImageClassifier: Module {
  /// The config file of a classifier folder.
  public static let configFile = "classifier_config.json"
  /// The weights file of a classifier folder.
  public static let weightsFile = "classifier.safetensors"

  /// The architecture.
  public let config: ClassifierConfig
  /// The device holding the weights.
  public let device: Device
  /// The layers.
  public let conv1: Conv2d, conv2: Conv2d, conv3: Conv2d, fc1: Linear, fc2: Linear
  /// Parameter names, sorted; `parameters[i]` is named `names[i]`.
  public let names: [String]
  /// The parameters in name order (fixed once built, so walked once).
  public private(set) lazy var parameters: [Tensor] = trainableParameters

  /// The architecture of `config` on `device`, with the constant initial values of `Module`'s parameters.
  init(config: ClassifierConfig, on device: Device) throws {
    try config.validate()
    self.config = config
    self.device = device
    let c = config.convChannels
    conv1 = try Conv2d(config.inChannels, c[0], kernelSize: 3, stride: 1, padding: 1, on: device)
    conv2 = try Conv2d(c[0], c[1], kernelSize: 3, stride: 2, padding: 1, on: device)
    conv3 = try Conv2d(c[1], c[2], kernelSize: 3, stride: 2, padding: 1, on: device)
    fc1 = try Linear(config.flattenedSize, config.featureDim, on: device)
    fc2 = try Linear(config.featureDim, config.numClasses, on: device)
    names = config.parameterShapes.map(\.name)
    super.init()
    for (n, m) in [("conv1", conv1), ("conv2", conv2), ("conv3", conv3)] as [(String, Module)] { child(n, m) }
    child("fc1", fc1)
    child("fc2", fc2)
  }

  /// A classifier holding `weights` (every parameter, with its shape).
  public convenience init(config: ClassifierConfig, weights: [String: TensorData], device: Device) throws {
    try self.init(config: config, on: device)
    for (name, shape) in config.parameterShapes {
      guard let w = weights[name] else { throw ClassifierError.malformed(name, "missing weight") }
      guard w.shape == shape else {
        throw ClassifierError.malformed(name, "shape \(w.shape), expected \(shape)")
      }
    }
    do { try load(weights) } catch let e as ModuleError { throw ClassifierError.malformed("weights", "\(e)") }
  }

  /// A freshly initialised classifier: PyTorch's default Conv2d/Linear initialisation, U(±1/√fan_in) for
  /// weights and biases, parameter `i` (name order) drawing from Philox stream `Init.stream(parameterIndex: i)`.
  public convenience init(config: ClassifierConfig, seed: UInt64, device: Device) throws {
    try self.init(config: config, on: device)
    try initialize(seed: seed)
  }

  /// PyTorch-default initial weights for `config`.
  public static func initialWeights(config: ClassifierConfig, seed: UInt64) throws -> [String: TensorData] {
    let m = try ImageClassifier(config: config, seed: seed, device: .cpu)
    return Dictionary(
      uniqueKeysWithValues: try m.namedParameters.map { ($0.name, try $0.tensor.toTensorData()) })
  }

  /// Features (N, featureDim) and logits (N, classes) of images x (N, C, S, S).
  public func forward(_ x: Tensor) throws -> (features: Tensor, logits: Tensor) {
    let c = config
    guard x.rank == 4, Array(x.shape.dropFirst()) == [c.inChannels, c.imageSize, c.imageSize] else {
      throw ClassifierError.mismatch(
        "classifier expects images of \(c.inChannels)×\(c.imageSize)×\(c.imageSize), got \(x.shape)")
    }
    var h = try conv1(x, activation: .relu)
    h = try conv2(h, activation: .relu)
    h = try conv3(h, activation: .relu)
    let flat = try h.reshaped([x.shape[0], c.flattenedSize])
    let features = try fc1(flat, activation: .relu)
    return (features, try fc2(features))
  }

  /// Mean cross-entropy of `logits` (N, classes) against integer labels: −mean(Σ onehot·logSoftmax).
  public static func crossEntropy(logits: Tensor, labels: [Int]) throws -> Tensor {
    guard logits.rank == 2, logits.shape[0] == labels.count, !labels.isEmpty else {
      throw GPUGenError.shapeMismatch(
        op: "crossEntropy (logits vs labels)", lhs: logits.shape, rhs: [labels.count])
    }
    let target = try Tensor.oneHot(labels, classes: logits.shape[1], on: logits.device)
    return try (logits.logSoftmax(axis: -1) * target).sum() * (-1 / Float(labels.count))
  }

  /// Predicted classes and features of `count` images (count, C, S, S) given as host values, in batches.
  /// `progress` is called with the number of images done after each batch.
  public func predict(
    _ images: [Float], count: Int, batchSize: Int = 256, progress: (Int) -> Void = { _ in }
  ) throws -> (labels: [Int], features: [Float]) {
    let per = config.inChannels * config.imageSize * config.imageSize
    guard images.count == count * per else {
      throw ClassifierError.mismatch(
        "\(images.count) values are not \(count) images of \(config.inChannels)×\(config.imageSize)×\(config.imageSize)"
      )
    }
    guard batchSize > 0 else { throw ClassifierError.invalidArgument("batch size must be positive") }
    var labels: [Int] = []
    var features: [Float] = []
    labels.reserveCapacity(count)
    features.reserveCapacity(count * config.featureDim)
    var start = 0
    while start < count {
      let n = Swift.min(batchSize, count - start)
      let x = try Tensor(
        Array(images[(start * per)..<((start + n) * per)]),
        shape: [n, config.inChannels, config.imageSize, config.imageSize], on: device)
      let (f, l) = try Tape.noGrad { try forward(x) }
      let logits = try l.toArray()
      let k = config.numClasses
      for i in 0..<n {
        var best = 0
        for j in 1..<k where logits[i * k + j] > logits[i * k + best] { best = j }
        labels.append(best)
      }
      features += try f.toArray()
      start += n
      progress(n)
    }
    return (labels, features)
  }

  /// Fraction of `data`'s images classified as their label.
  public func accuracy(on data: TrainingImages, batchSize: Int = 256, progress: (Int) -> Void = { _ in })
    throws -> Double
  {
    guard let truth = data.labels else {
      throw ClassifierError.mismatch("the data has no labels to measure accuracy against")
    }
    try checkFits(data)
    let predicted = try predict(data.images, count: data.count, batchSize: batchSize, progress: progress)
      .labels
    return Double(zip(predicted, truth).filter { $0 == $1 }.count) / Double(max(data.count, 1))
  }

  /// Throws unless `data`'s images have this classifier's shape.
  public func checkFits(_ data: TrainingImages) throws {
    guard data.channels == config.inChannels, data.size == config.imageSize else {
      throw ClassifierError.mismatch(
        "the data is \(data.channels)×\(data.size)×\(data.size) but the classifier expects "
          + "\(config.inChannels)×\(config.imageSize)×\(config.imageSize)")
    }
  }

  // MARK: Saving and loading

  /// Writes `classifier_config.json` and `classifier.safetensors` (F32) into `dir` (created if needed).
  /// `metadata` goes into the safetensors header (e.g. training figures).
  public func save(to dir: URL, metadata: [String: String] = [:]) throws {
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(config).write(to: dir.appendingPathComponent(Self.configFile), options: .atomic)
    try super.save(to: dir.appendingPathComponent(Self.weightsFile), dtype: .f32, metadata: metadata)
  }

  /// Loads a classifier written by `save` onto `device`.
  public static func load(from dir: URL, device: Device) throws -> ImageClassifier {
    let fm = FileManager.default
    let configURL = dir.appendingPathComponent(configFile)
    let weightsURL = dir.appendingPathComponent(weightsFile)
    guard fm.fileExists(atPath: configURL.path), fm.fileExists(atPath: weightsURL.path) else {
      throw ClassifierError.missing(folder: dir.path)
    }
    let config: ClassifierConfig
    do {
      config = try JSONDecoder().decode(ClassifierConfig.self, from: try Data(contentsOf: configURL))
    } catch {
      throw ClassifierError.malformed(configURL.path, "\(error)")
    }
    let file: SafeTensorsFile
    do { file = try SafeTensors.read(contentsOf: weightsURL) } catch {
      throw ClassifierError.malformed(weightsURL.path, "\(error)")
    }
    return try ImageClassifier(config: config, weights: file.tensors, device: device)
  }
}

/// Hyperparameters of a classifier training run.
public struct ClassifierTrainingOptions: Sendable, Equatable {
  public var epochs = 2
  public var batchSize = 128
  /// Peak learning rate (AdamW), decayed to 0 by a cosine over the run.
  public var lr = 1e-3
  /// AdamW's decoupled weight decay (PyTorch's default).
  public var weightDecay = 0.01
  /// Seed of the initial weights and the data order.
  public var seed: UInt64 = 0

  public init() {}

  public func validate() throws {
    func bad(_ s: String) -> ClassifierError { .invalidArgument(s) }
    guard epochs >= 1 else { throw bad("--epochs must be at least 1") }
    guard batchSize >= 1 else { throw bad("--batch-size must be positive") }
    guard lr.isFinite, lr > 0 else { throw bad("--lr must be positive") }
    guard weightDecay.isFinite, weightDecay >= 0 else { throw bad("--weight-decay must be ≥ 0") }
  }
}

/// Trains an `ImageClassifier` with cross-entropy, AdamW and a cosine learning rate. Epoch `e`'s data order
/// is `DiffusionTrainer.epochOrder(seed:count:epoch:)` (Philox stream 10); batches never straddle epochs.
public final class ClassifierTrainer {
  public let model: ImageClassifier
  public let options: ClassifierTrainingOptions
  public let data: TrainingImages
  public let labels: [Int]
  let optimizer: Optimizer
  let learningRate: LearningRate
  /// Optimizer steps done.
  public private(set) var step = 0
  private lazy var batches = EpochBatches(seed: options.seed, count: data.count, batchSize: options.batchSize)

  public init(model: ImageClassifier, data: TrainingImages, options: ClassifierTrainingOptions) throws {
    try options.validate()
    try model.checkFits(data)
    guard let labels = data.labels else {
      throw ClassifierError.mismatch("classifier training needs labelled data")
    }
    guard data.classCount <= model.config.numClasses else {
      throw ClassifierError.mismatch(
        "the data has \(data.classCount) classes but the classifier has \(model.config.numClasses)")
    }
    guard data.count >= options.batchSize else {
      throw ClassifierError.invalidArgument(
        "--batch-size \(options.batchSize) is larger than the dataset (\(data.count) images)")
    }
    self.model = model
    self.options = options
    self.data = data
    self.labels = labels
    optimizer = try Optimizer(
      parameters: model.parameters, config: .adamW(weightDecay: options.weightDecay))
    learningRate = LearningRate(
      base: options.lr, schedule: .cosine(totalSteps: options.epochs * (data.count / options.batchSize)))
  }

  /// Batches per epoch.
  public var stepsPerEpoch: Int { data.count / options.batchSize }
  /// Steps of the whole run.
  public var totalSteps: Int { options.epochs * stepsPerEpoch }

  /// Dataset indices of step `s`'s batch.
  public func batchIndices(step s: Int) -> [Int] {
    batches.indices(step: s)
  }

  /// One optimizer step; returns the batch's loss and accuracy (before the update).
  @discardableResult
  public func trainStep() throws -> (loss: Float, accuracy: Double) {
    let idx = batchIndices(step: step)
    let per = data.imageElements
    var xv = [Float](repeating: 0, count: idx.count * per)
    data.images.withUnsafeBufferPointer { src in
      xv.withUnsafeMutableBufferPointer { dst in
        for (row, i) in idx.enumerated() {
          (dst.baseAddress! + row * per).update(from: src.baseAddress! + i * per, count: per)
        }
      }
    }
    let x = try Tensor(xv, shape: [idx.count, data.channels, data.size, data.size], on: model.device)
    let y = idx.map { labels[$0] }
    let tape = Tape()
    tape.watch(model.parameters)
    let (loss, logits) = try tape.record { () throws -> (Tensor, Tensor) in
      let l = try model.forward(x).logits
      return (try ImageClassifier.crossEntropy(logits: l, labels: y), l)
    }
    let lossValue = try loss.toArray()[0]
    guard lossValue.isFinite else {
      tape.reset()
      throw TrainingError.diverged(step: step + 1, term: "the classifier loss", value: lossValue)
    }
    let grads = try tape.gradients(of: loss, wrt: model.parameters).enumerated().map { i, g in
      guard let g else { throw TrainingError.invalidOption("parameter \(model.names[i]) got no gradient") }
      return g
    }
    try optimizer.step(grads: grads, lr: learningRate.value(at: step))
    step += 1
    let k = model.config.numClasses
    let lv = try logits.toArray()
    var correct = 0
    for (i, label) in y.enumerated() {
      var best = 0
      for j in 1..<k where lv[i * k + j] > lv[i * k + best] { best = j }
      if best == label { correct += 1 }
    }
    return (lossValue, Double(correct) / Double(y.count))
  }
}
