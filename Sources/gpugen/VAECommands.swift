// Using a VAE from the command line: encode, decode, reconstruct, interpolate, likelihood.
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels

/// `--model` for the VAE commands, with the bundled VAE by default.
struct VAEModelOption: ParsableArguments {
  @Option(help: "A VAE folder (ConvVAE or diffusers AutoencoderKL) or a bundled model's name. Default: vae.")
  var model = "vae"

  @OptionGroup var deviceOptions: DeviceOptions

  /// The folder's kind (which family it holds).
  func kind() throws -> ModelFolderKind { try ModelFolder.classify(try ModelFolder.locate(model)) }

  /// The model, loaded on the chosen device (a diffusion model or GAN here is an error naming it).
  func load() throws -> (vae: any VariationalAutoencoder, device: Device) {
    let kind = try kind()
    guard kind.family == .vae else {
      throw ModelError.input(
        "\(model) is a \(kind.family == .gan ? "GAN" : "diffusion model"); this command needs a VAE (--model vae or a VAE folder)"
      )
    }
    let device = try deviceOptions.resolve()
    return (try ModelFolder.loadVAE(kind, device: device), device)
  }
}

/// Where images come from (exactly one of --images, --data).
struct ImageInputOptions: ParsableArguments {
  @Option(parsing: .upToNextOption, help: "PNG files, or one float32 .npy of shape (n, C, H, W) in [-1, 1].")
  var images: [String] = []

  @Option(
    help: "A data set: fashion-mnist:test[:N], fashion-mnist:train[:N], or any training-data source[:N].")
  var data: String?

  @Flag(help: "Resize PNGs of another size to the model's (centre-padding or area averaging).")
  var resize = false

  /// The images in the model's data range, and their count.
  func load(for vae: any VariationalAutoencoder) throws -> (values: [Float], count: Int) {
    let (x, n) = try load(imageShape: vae.imageShape)
    return (VAEOps.fromSigned(x, range: vae.dataRange), n)
  }

  /// The images (values in [−1, 1], each of `imageShape` (C, S, S)) and their count.
  func load(imageShape: [Int]) throws -> (values: [Float], count: Int) {
    let (c, s) = (imageShape[0], imageShape[1])
    let signed: [Float]
    let count: Int
    switch (images.isEmpty, data) {
    case (false, nil):
      if images.count == 1 && images[0].hasSuffix(".npy") {
        (signed, count) = try VAEInput.npy(images[0], imageShape: imageShape)
      } else {
        signed = try VAEInput.pngs(images, channels: c, size: s, resize: resize)
        count = images.count
      }
    case (true, let spec?):
      let d = try VAEInput.dataset(spec, channels: c, size: s)
      (signed, count) = (d.images, d.count)
    default:
      throw ModelError.input("give the images with exactly one of --images or --data")
    }
    guard count > 0 else { throw ModelError.input("no images given") }
    return (signed, count)
  }
}

struct Encode: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract:
      "Encode images to latents: a VAE's posterior means (or draws), a GAN's projections, or a diffusion model's DDIM inversion, as .npy.",
    discussion: """
      A VAE encodes in one pass. A GAN has no encoder: each image is projected by optimising its z with Adam \
      (--steps, --lr) to minimise the pixel MSE plus --feature-weight × the squared distance of the bundled \
      classifier's features (z starts from N(0, I) keyed by --seed and the image index). A class-conditional \
      GAN projects with --class (cycled over the images). The command prints each image's reconstruction \
      error (MSE, pixels in [0, 1]) and, with --grid, writes originals above their projections. A diffusion model \
      (--model diffusion or a pipeline folder) inverts each image by deterministic DDIM run backwards with \
      clipping off (--steps, default 50; diffusers' DDIMInverseScheduler), under --class (cycled; default every \
      class in turn, as sample) when class-conditional: gpugen sample --noise OUT --sampler ddim --steps N \
      with the same classes reconstructs the images. Stochastic samplers cannot be inverted (exit status 2).
      """)
  @OptionGroup var modelOption: VAEModelOption
  @OptionGroup var input: ImageInputOptions
  @Option(help: "Output .npy, float32 (n, latent…).") var out: String = "z.npy"
  @Flag(
    help:
      "VAE: write one posterior draw z = μ + σ·ε per image instead of μ (ε keyed by --seed and the image index)."
  )
  var sample = false
  @Option(help: "Seed of the posterior draws (VAE) or of the initial latents (GAN).") var seed: UInt64 = 0
  @Option(help: "Images per batch.") var batchSize = 256
  @Option(name: .customLong("class"), help: "GAN, diffusion: each image's class (comma-separated, cycled).")
  var classes: String?
  @Option(
    help: "GAN: Adam steps of the projection (default 300); diffusion: DDIM inversion steps (default 50).")
  var steps: Int?
  @Option(
    help: "Diffusion: the sampler to invert; only ddim (deterministic) has an inverse.",
    transform: parseSampler)
  var sampler: SamplerKind?
  @Option(help: "GAN: the projection's learning rate (default 0.05).") var lr: Double?
  @Option(help: "GAN: weight of the classifier-feature distance, 0: pixels only (default 1).")
  var featureWeight: Double?
  @Option(help: "GAN: also write originals above their projections to this PNG.") var grid: String?

  func run() throws {
    try reportingUserErrors {
      guard batchSize > 0 else { throw ModelError.input("--batch-size must be positive") }
      if case .gan(let url) = try modelOption.kind() { return try projectGAN(url) }
      if case .diffusion = try modelOption.kind() { return try invertDiffusion() }
      if sampler != nil { throw ModelError.input("--sampler is a diffusion option; this model is a VAE") }
      let ganOnly: [(String, Bool)] = [
        ("--class", classes != nil), ("--grid", grid != nil), ("--steps", steps != nil), ("--lr", lr != nil),
        ("--feature-weight", featureWeight != nil),
      ]
      if let flag = ganOnly.first(where: { $0.1 }) {
        throw ModelError.input("\(flag.0) is a GAN option; this model is a VAE (it encodes in one pass)")
      }
      let (vae, device) = try modelOption.load()
      let (x, n) = try input.load(for: vae)
      let z = try VAEOps.encode(
        vae, images: x, count: n, batchSize: batchSize, sample: sample, seed: seed, device: device)
      try NPY.write(z.mean, shape: [n] + vae.latentShape, to: URL(fileURLWithPath: out))
      print(
        "encoded \(n) images to \(sample ? "posterior draws" : "posterior means") \([n] + vae.latentShape) → \(out)"
      )
    }
  }

  func projectGAN(_ url: URL) throws {
    if sample { throw ModelError.input("--sample is a VAE option; a GAN's images are projected") }
    let (steps, lr, featureWeight) = (self.steps ?? 300, self.lr ?? 0.05, self.featureWeight ?? 1)
    guard steps >= 1 else { throw ModelError.input("--steps must be at least 1") }
    guard lr > 0, lr.isFinite else { throw ModelError.input("--lr must be positive") }
    guard featureWeight >= 0, featureWeight.isFinite else {
      throw ModelError.input("--feature-weight must be ≥ 0")
    }
    let device = try modelOption.deviceOptions.resolve()
    let gan = try GANModel.load(from: url, device: device)
    guard !gan.isToy else {
      throw ModelError.input("encode projects images; \(modelOption.model) is a toy 2-D GAN")
    }
    let labels = try parseClassList(classes)
    if let l = labels, gan.config.conditional, let bad = l.first(where: { $0 >= gan.config.numClasses }) {
      throw ModelError.input(
        "--class \(bad) is out of range: the model has classes 0..<\(gan.config.numClasses)")
    }
    let (x, n) = try input.load(imageShape: gan.sampleShape)
    let classifier = featureWeight > 0 ? try ImageClassifier.bundled(device: device) : nil
    let bar = ProgressBar(total: n, label: "projecting", unit: "images")
    let r = try GANProjection.project(
      gan, images: x, count: n, labels: labels, classifier: classifier, featureWeight: featureWeight,
      steps: steps, lr: lr, batchSize: min(batchSize, 64), seed: seed, device: device,
      progress: { bar.advance($0) })
    let outputs = StagedOutputs()  // the latents and the grid, all or nothing
    try outputs.stage(URL(fileURLWithPath: out)) {
      try NPY.write(r.latents, shape: [n, gan.config.latentDim], to: $0)
    }
    for (i, e) in r.mse.enumerated() { print(String(format: "image %d: reconstruction MSE %.5f", i, e)) }
    let mean = r.mse.reduce(0, +) / Double(n)
    if let grid {
      let per = gan.sampleShape.reduce(1, *), cols = min(n, 16)
      var tiles: [Float] = []
      var lo = 0
      while lo < n {
        let hi = min(n, lo + cols), pad = (cols - (hi - lo)) * per
        tiles += Array(x[(lo * per)..<(hi * per)]) + [Float](repeating: -1, count: pad)
        tiles += Array(r.images[(lo * per)..<(hi * per)]) + [Float](repeating: -1, count: pad)
        lo = hi
      }
      try outputs.stage(URL(fileURLWithPath: grid)) {
        try Image8.grid(tiles, shape: [tiles.count / per] + gan.sampleShape, columns: cols).zoomed(2)
          .writePNG(to: $0)
      }
    }
    try outputs.commit()
    let how = classifier == nil ? ", pixels only" : String(format: ", feature weight %g", featureWeight)
    print(
      String(
        format: "projected %d images (%d Adam steps%@): mean reconstruction MSE %.5f → %@%@", n, steps, how,
        mean, out, grid.map { ", \($0)" } ?? ""))
  }
}

/// Parses a comma-separated list of non-negative class labels (nil when absent).
func parseClassList(_ text: String?) throws -> [Int]? {
  try text.map { t -> [Int] in
    // Empty items ("1,,2", a trailing comma) are refused, not skipped.
    try t.split(separator: ",", omittingEmptySubsequences: false).map {
      guard let v = Int($0.trimmingCharacters(in: .whitespaces)), v >= 0 else {
        throw ModelError.input("--class takes non-negative integers, got '\(t)'")
      }
      return v
    }
  }
}

struct Decode: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Decode VAE latents (.npy) to images.")
  @OptionGroup var modelOption: VAEModelOption
  @Option(help: "Latents: float32 .npy of shape (n, latent…).") var latents: String
  @OptionGroup var output: ImageOutputOptions
  @Option(help: "Latents per batch.") var batchSize = 256

  func run() throws {
    try reportingUserErrors {
      guard batchSize > 0 else { throw ModelError.input("--batch-size must be positive") }
      try output.validate()
      let (vae, device) = try modelOption.load()
      let a = try NPY.read(from: URL(fileURLWithPath: latents))
      guard a.shape.count == vae.latentShape.count + 1, Array(a.shape.dropFirst()) == vae.latentShape else {
        throw ModelError.input(
          "\(latents) has shape \(a.shape) but the model's latents are (n, \(vae.latentShape.map(String.init).joined(separator: ", ")))"
        )
      }
      let n = a.shape[0]
      guard n > 0 else { throw ModelError.input("\(latents) holds no latents") }
      let x = try VAEOps.decode(vae, latents: a.values, count: n, batchSize: batchSize, device: device)
      try output.write(
        VAEOps.toSigned(x, range: vae.dataRange), shape: [n] + vae.imageShape, default: "decoded.png")
      print("decoded \(n) latents → \(output.png(or: "decoded.png"))")
    }
  }
}

struct Reconstruct: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Reconstruct images through a VAE: originals above reconstructions, with the MSE and the ELBO.")
  @OptionGroup var modelOption: VAEModelOption
  @OptionGroup var input: ImageInputOptions
  @Option(help: "Use the first N images (with --data; default 64).") var n: Int?
  @OptionGroup var output: ImageOutputOptions
  @Option(help: "Seed of the ε of the ELBO estimate.") var seed: UInt64 = 0

  func run() throws {
    try reportingUserErrors {
      if let n, n <= 0 { throw ModelError.input("--n must be positive") }
      try output.validate()
      let (vae, device) = try modelOption.load()
      var (x, count) = try input.load(for: vae)
      let per = vae.imageShape.reduce(1, *)
      let keep = min(count, n ?? (input.data != nil ? 64 : count))
      x = Array(x.prefix(keep * per))
      count = keep
      let (mu, _) = try VAEOps.encode(vae, images: x, count: count, batchSize: 256, device: device)
      let r = try VAEOps.decode(vae, latents: mu, count: count, batchSize: 256, device: device)
      let span = Double(vae.dataRange.upperBound - vae.dataRange.lowerBound)
      let mse = zip(x, r).reduce(0.0) { $0 + pow(Double($1.0 - $1.1) / span, 2) } / Double(x.count)
      // One-sample ELBO on the images as given (grey levels for a Bernoulli model), nats per image.
      let elbo = try Tape.noGrad { () -> Float in
        let xt = try Tensor(x, shape: [count] + vae.imageShape, on: device)
        let eps = try Tensor.randomNormal(
          shape: [count] + vae.latentShape, seed: seed, stream: Streams.posteriorSample, on: device)
        return -(try vae.negativeELBO(xt, noise: eps, beta: 1).negativeELBO)
      }
      let cols = min(count, 16)
      var tiles: [Float] = []
      var row = 0
      while row * cols < count {
        let lo = row * cols, hi = min(count, lo + cols)
        var orig = Array(x[(lo * per)..<(hi * per)]), rec = Array(r[(lo * per)..<(hi * per)])
        let pad = (cols - (hi - lo)) * per
        orig += [Float](repeating: vae.dataRange.lowerBound, count: pad)
        rec += [Float](repeating: vae.dataRange.lowerBound, count: pad)
        tiles += orig + rec
        row += 1
      }
      try output.write(
        VAEOps.toSigned(tiles, range: vae.dataRange), shape: [tiles.count / per] + vae.imageShape,
        columns: cols,
        default: "recon.png")
      let bpd = -Double(elbo) / (Double(per) * log(2.0))
      print(
        String(
          format:
            "%d images: reconstruction MSE %.5f (pixels in [0, 1]); ELBO %.2f nats/image (%.4f bits/dim) → %@",
          count, mse, elbo, bpd, output.png(or: "recon.png")))
    }
  }
}

struct Interpolate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract:
      "Walk a VAE's or GAN's latent space: between two images (a GAN: slerp in z; without --from/--to, samples 0 and 1 of --seed), or (--traverse) along each latent dimension."
  )
  @OptionGroup var modelOption: VAEModelOption
  @Option(help: "The first image (PNG).") var from: String?
  @Option(help: "The last image (PNG).") var to: String?
  @Option(help: "Frames, both ends included (≥ 2).") var frames = 8
  @Flag(help: "Spherical interpolation (slerp) instead of linear.") var slerp = false
  @Flag(
    help:
      "A grid walking each latent dimension in turn from −3 to 3 around the prior mean (or --from's code).")
  var traverse = false
  @Flag(help: "Resize images of another size to the model's.") var resize = false
  @Option(help: "GAN: the seed whose samples 0 and 1 are the ends (without --from/--to).") var seed: UInt64 =
    0
  @Option(name: .customLong("class"), help: "GAN: the class of a class-conditional generator (default 0).")
  var classes: String?
  @OptionGroup var output: ImageOutputOptions

  /// A GAN: slerp in z between the latents of samples 0 and 1 of --seed, or between the projections of --from
  /// and --to; --traverse walks each latent dimension.
  func interpolateGAN(_ url: URL) throws {
    let device = try modelOption.deviceOptions.resolve()
    let gan = try GANModel.load(from: url, device: device)
    let d = gan.config.latentDim
    let labels = try parseClassList(classes) ?? (gan.config.conditional ? [0] : nil)
    guard (labels?.count ?? 1) == 1 else { throw ModelError.input("--class takes one class here") }
    if let l = labels, !gan.config.conditional || l[0] >= gan.config.numClasses {
      throw ModelError.input(
        gan.config.conditional
          ? "--class \(l[0]) is out of range: the model has classes 0..<\(gan.config.numClasses)"
          : "--class given, but this GAN's generator is unconditional")
    }
    func project(_ path: String) throws -> [Float] {
      guard !gan.isToy else { throw ModelError.input("--from/--to are images; this is a toy 2-D GAN") }
      let (c, s) = (gan.sampleShape[0], gan.sampleShape[1])
      let x = try VAEInput.pngs([path], channels: c, size: s, resize: resize)
      let classifier = try? ImageClassifier.bundled(device: device)
      return try GANProjection.project(
        gan, images: x, count: 1, labels: labels, classifier: classifier, seed: seed, device: device
      ).latents
    }
    var latents: [Float] = []
    if traverse {
      let center = try from.map(project) ?? [Float](repeating: 0, count: d)
      for j in 0..<min(d, 64) {
        for f in 0..<frames {
          var z = center
          z[j] = -3 + 6 * Float(f) / Float(frames - 1)
          latents += z
        }
      }
    } else {
      let ends: ([Float], [Float])
      switch (from, to) {
      case (let a?, let b?): ends = (try project(a), try project(b))
      case (nil, nil):
        let z = try GANOps.latents(count: 2, latentDim: d, seed: seed, device: .cpu).toArray()
        ends = (Array(z[0..<d]), Array(z[d...]))
      default:
        throw ModelError.input("give both --from and --to, or neither (then samples 0 and 1 of --seed)")
      }
      // Slerp: the Gaussian prior's mass lies on a shell, which linear paths leave.
      latents = VAEOps.interpolate(ends.0, ends.1, frames: frames, slerp: true).flatMap { $0 }
    }
    let n = latents.count / d
    let zt = try Tensor(latents, shape: [n, d], on: device)
    let y = labels.map { l in [Int](repeating: l[0], count: n) }
    let x = try Tape.noGrad { try gan.generator(zt, labels: y).toArray() }
    let what = traverse ? "traversal" : "slerp in z"
    if gan.isToy {
      let toy = try? ToyDataset.parse(gan.config.data)
      try ToyScatter.render(x, dataset: toy, title: "\(what): \(n) points").writePNG(
        to: URL(fileURLWithPath: output.png(or: "strip.png")))
      if let npy = output.npy { try NPY.write(x, shape: [n, 2], to: URL(fileURLWithPath: npy)) }
    } else {
      try output.write(x, shape: [n] + gan.sampleShape, columns: frames, default: "strip.png")
    }
    print("GAN \(what): \(n) frames → \(output.png(or: "strip.png"))")
  }

  func run() throws {
    try reportingUserErrors {
      guard frames >= 2 && frames <= 256 else { throw ModelError.input("--frames must be in 2…256") }
      try output.validate()
      if case .gan(let url) = try modelOption.kind() { return try interpolateGAN(url) }
      if classes != nil { throw ModelError.input("--class is a GAN option; this model is a VAE") }
      let (vae, device) = try modelOption.load()
      let (c, s) = (vae.imageShape[0], vae.imageShape[1])
      func code(_ path: String) throws -> [Float] {
        let x = VAEOps.fromSigned(
          try VAEInput.pngs([path], channels: c, size: s, resize: resize), range: vae.dataRange)
        return try VAEOps.encode(vae, images: x, count: 1, batchSize: 1, device: device).mean
      }
      var latents: [Float] = []
      var columns = frames
      if traverse {
        let center = try from.map(code) ?? [Float](repeating: 0, count: vae.latentCount)
        let dims = min(vae.latentCount, 64)
        for j in 0..<dims {
          for f in 0..<frames {
            var z = center
            z[j] = -3 + 6 * Float(f) / Float(frames - 1)
            latents += z
          }
        }
      } else {
        guard let from, let to else { throw ModelError.input("give --from and --to (or --traverse)") }
        latents = VAEOps.interpolate(try code(from), try code(to), frames: frames, slerp: slerp).flatMap {
          $0
        }
        columns = frames
      }
      let n = latents.count / vae.latentCount
      let x = try VAEOps.decode(vae, latents: latents, count: n, batchSize: 256, device: device)
      try output.write(
        VAEOps.toSigned(x, range: vae.dataRange), shape: [n] + vae.imageShape, columns: columns,
        default: "strip.png")
      print(
        "\(traverse ? "traversal" : slerp ? "slerp" : "linear interpolation"): \(n) frames → \(output.png(or: "strip.png"))"
      )
    }
  }
}

struct Likelihood: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract:
      "A VAE's ELBO, importance-weighted bounds (IWAE_k) and active units on Fashion-MNIST's test set.",
    discussion: """
      Bernoulli models are scored on the test images binarised once (Philox uniforms keyed by --seed); \
      Gaussian models on the 8-bit images under uniform dequantisation (the bound of the continuous density \
      minus D·ln 256), the convention behind published bits/dim. Every k ≤ --k among 1, 50, 500, 5000 is \
      reported from the same --k importance samples per image, so ELBO ≤ IWAE_k holds image by image.
      """)
  @OptionGroup var modelOption: VAEModelOption
  @Option(help: "Importance samples per image.") var k = 50
  @Option(help: "Test images (the first N of the t10k split).") var n = 10_000
  @Option(help: "Evaluation data (default fashion-mnist:test).") var data = "fashion-mnist:test"
  @Option(help: "Seed of the binarisation/dequantisation and of the importance samples.") var seed: UInt64 = 0
  @Flag(help: "Print one JSON object.") var json = false

  func run() throws {
    try reportingUserErrors {
      guard k >= 1 else { throw ModelError.input("--k must be at least 1, got \(k)") }
      guard n >= 1 else { throw ModelError.input("--n must be at least 1") }
      let (vae, device) = try modelOption.load()
      let d = try VAEInput.dataset("\(data):\(n)", channels: vae.imageShape[0], size: vae.imageShape[1])
      let ks = Array(Set([1, 50, 500, 5000, k].filter { $0 <= k })).sorted()
      let bar = ProgressBar(total: d.count, label: "likelihood", unit: "images")
      let t0 = Date()
      let r = try VAEOps.likelihood(
        vae, data: d, samples: k, ks: ks, seed: seed, device: device, progress: { bar.advance($0) })
      let secs = Date().timeIntervalSince(t0)
      if json {
        var o: [String: Any] = [
          "images": r.images, "samples": r.samples, "dimensions": r.dimensions, "data": r.data,
          "elbo_nats": r.elboNats, "elbo_bits_per_dim": r.bitsPerDim(r.elboNats),
          "active_units": r.activeUnits,
          "latent_dimensions": r.latentDimensions, "seconds": secs,
        ]
        for kk in ks {
          o["iwae\(kk)_nats"] = r.iwaeNats["\(kk)"]!
          o["iwae\(kk)_bits_per_dim"] = r.bitsPerDim(r.iwaeNats["\(kk)"]!)
        }
        let text = try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: text, as: UTF8.self))
        return
      }
      print(
        "\(r.images) test images (\(r.data)), \(r.samples) importance samples each, \(r.dimensions) dims/image:"
      )
      func pad(_ s: String) -> String { s.padding(toLength: 10, withPad: " ", startingAt: 0) }
      print("  \(pad("bound"))   nats/image   bits/dim")
      print("  \(pad("ELBO")) " + String(format: "%12.2f %10.4f", r.elboNats, r.bitsPerDim(r.elboNats)))
      for kk in ks {
        let v = r.iwaeNats["\(kk)"]!
        print("  \(pad("IWAE_\(kk)")) " + String(format: "%12.2f %10.4f", v, r.bitsPerDim(v)))
      }
      print("  active units: \(r.activeUnits) of \(r.latentDimensions) (posterior-mean variance > 0.01)")
    }
  }
}
