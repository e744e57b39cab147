// `gpugen train classifier`: trains the small CNN that `gpugen evaluate` judges samples with, and reports
// its accuracy on a held-out test split (Fashion-MNIST's t10k by default).
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels
import GPUGenNN

struct TrainClassifier: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "classifier",
    abstract: "Train an image classifier (used by `gpugen evaluate` to judge generated samples).",
    discussion: """
      A small CNN (3×3 convs 32, 64/2, 64/2 with ReLU, linear 128 + ReLU — the feature vector — and a
      linear layer to the classes), trained with cross-entropy, AdamW and a cosine learning-rate decay.
      Initial weights are PyTorch's defaults and the data order is a Philox draw, both keyed by --seed.
      Writes OUT/classifier_config.json and OUT/classifier.safetensors, then prints the accuracy on the
      test data (for fashion-mnist: the t10k split, 10,000 images). `gpugen evaluate --classifier OUT` judges
      with it (without --classifier, evaluate uses the bundled Fashion-MNIST classifier).
      """)

  @Option(
    help: "Training images: fashion-mnist, a labelled IDX image file, or a folder of class sub-folders.")
  var data = "fashion-mnist"

  @Option(
    name: .customLong("test-data"),
    help: "Labelled test images (IDX file or folder). Default with fashion-mnist: its t10k split.")
  var testData: String?

  @Option(help: "Image side the classifier works at (images are padded or resized to it).")
  var imageSize = 28

  @Option(help: "Image channels (1 or 3).")
  var channels = 1

  @Option(
    name: .customLong("conv-channels"),
    help: "Output channels of the three 3×3 convolutions, comma-separated.")
  var convChannels = "32,64,64"

  @Option(
    name: .customLong("feature-dim"), help: "Width of the feature layer (the Fréchet distance's space).")
  var featureDim = 128

  @Option(help: "Passes over the training data.")
  var epochs = 2

  @Option(help: "Batch size.")
  var batchSize = 128

  @Option(help: "Peak learning rate (AdamW, cosine decay to 0).")
  var lr = 1e-3

  @Option(help: "AdamW decoupled weight decay.")
  var weightDecay = 0.01

  @Option(help: "Output folder.")
  var out = "gpugen-classifier"

  @Option(help: "Seed of the initial weights and the data order.")
  var seed: UInt64 = 0

  @OptionGroup var deviceOptions: DeviceOptions

  func run() throws {
    try reportingUserErrors(weightsLabel: "classifier weights") {
      try requireSingleProcess("train classifier")
      try train()
    }
  }

  /// The test split: --test-data, or Fashion-MNIST's t10k when training on fashion-mnist.
  func testSource() -> String? {
    if let testData { return testData }
    guard data == "fashion-mnist" else { return nil }
    return TrainingImages.fashionMNISTFolder().appendingPathComponent("t10k-images-idx3-ubyte.gz").path
  }

  func train() throws {
    var o = ClassifierTrainingOptions()
    (o.epochs, o.batchSize, o.lr, o.weightDecay, o.seed) = (epochs, batchSize, lr, weightDecay, seed)
    try o.validate()
    let parts = convChannels.split(separator: ",", omittingEmptySubsequences: false)
    let widths = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard parts.count == 3, widths.count == 3 else {
      throw ClassifierError.invalidArgument(
        "--conv-channels takes three comma-separated integers, not '\(convChannels)'")
    }
    var config = ClassifierConfig(
      inChannels: channels, imageSize: imageSize, numClasses: 2, convChannels: widths,
      featureDim: featureDim)
    try config.validate()
    let device = try deviceOptions.resolve()
    let images = try TrainingImages.load(source: data, sampleSize: imageSize, channels: channels)
    guard images.labels != nil else {
      throw ClassifierError.mismatch("the training data \(data) has no class labels")
    }
    let test = try testSource().map {
      try TrainingImages.load(source: $0, sampleSize: imageSize, channels: channels)
    }
    if let test, test.labels == nil {
      throw ClassifierError.mismatch("the test data \(testSource()!) has no class labels")
    }
    let classes = max(images.classCount, test?.classCount ?? 0, 2)
    config.numClasses = classes
    let model = try ImageClassifier(config: config, seed: seed, device: device)
    let trainer = try ClassifierTrainer(model: model, data: images, options: o)
    FileHandle.standardError.write(
      Data(
        "gpugen: training a \(model.parameterCount)-parameter classifier (\(classes) classes) on \(images.count) images (\(data)) for \(epochs) epochs of \(trainer.stepsPerEpoch) steps, batch \(batchSize), on \(device)\n"
          .utf8))
    let bar = ProgressBar(total: trainer.totalSteps, label: "training", unit: "it")
    var recent: [(Float, Double)] = []
    let start = Date()
    while trainer.step < trainer.totalSteps {
      let s = try trainer.trainStep()
      recent.append(s)
      if recent.count > 50 { recent.removeFirst() }
      let loss = recent.reduce(0) { $0 + $1.0 } / Float(recent.count)
      let acc = recent.reduce(0) { $0 + $1.1 } / Double(recent.count)
      bar.advance(
        1, note: String(format: "loss %.4f, batch accuracy %.3f (avg of last %d)", loss, acc, recent.count))
    }
    let seconds = Date().timeIntervalSince(start)
    var metadata = [
      "data": data, "epochs": "\(epochs)", "batch_size": "\(batchSize)", "lr": "\(lr)",
      "weight_decay": "\(weightDecay)", "seed": "\(seed)", "steps": "\(trainer.step)",
    ]
    var accuracy: Double?
    if let test, let source = testSource() {
      let tbar = ProgressBar(total: test.count, label: "testing", unit: "images")
      let a = try model.accuracy(on: test, progress: { tbar.advance($0) })
      accuracy = a
      metadata["test_data"] = source
      metadata["test_accuracy"] = String(format: "%.6f", a)
    }
    let outDir = URL(fileURLWithPath: out)
    try model.save(to: outDir, metadata: metadata)
    print(
      String(
        format: "trained %d steps in %.1f s on %@; classifier: %@", trainer.step, seconds, device.spec,
        outDir.path))
    if let accuracy, let test {
      print(String(format: "test accuracy: %.4f (%d images, %@)", accuracy, test.count, testSource()!))
    } else {
      print("test accuracy: not measured (give --test-data)")
    }
  }
}
