// Inputs for the VAE commands (PNG files, .npy arrays, data-set splits) and the likelihood bounds:
// the ELBO and the importance-weighted bound IWAE_k (Burda et al.), in nats and bits per dimension,
// and the active units (Burda et al.: dimensions whose posterior mean varies across the data, Cov > 0.01).
import Foundation

/// Images for encode, reconstruct and interpolate, in [-1, 1] at the model's size.
public enum VAEInput {
  /// PNG files as (count, C, H, W) values in [-1, 1]. A size or channel count other than the model's is an
  /// error naming both, unless `resize` (centre-padding or area resizing as for training data; colour to luma
  /// or gray replicated).
  public static func pngs(_ paths: [String], channels: Int, size: Int, resize: Bool) throws -> [Float] {
    var out: [Float] = []
    for p in paths {
      let header = try Image8.pngHeader(of: URL(fileURLWithPath: p))
      let given = header.colour ? 3 : 1
      if (header.width != size || header.height != size || given != channels) && !resize {
        throw ModelError.input(
          "\(p) is \(header.width)×\(header.height) with \(given) channel\(given == 1 ? "" : "s") but the model takes "
            + "\(size)×\(size) images with \(channels) channel\(channels == 1 ? "" : "s"); pass --resize to resize/convert it"
        )
      }
      let img = try Image8.readPNGConverted(from: URL(fileURLWithPath: p), channels: channels)
      let r = PlaneResampler(width: img.width, height: img.height, size: size)
      var planes = [Float](repeating: 0, count: channels * size * size)
      img.pixels.withUnsafeBufferPointer { src in
        planes.withUnsafeMutableBufferPointer { dst in
          for c in 0..<channels {
            r.apply(src.baseAddress! + c, stride: channels, into: dst.baseAddress! + c * size * size)
          }
        }
      }
      out += planes
    }
    return out
  }

  /// A float32 .npy of shape (n, C, H, W) with values in [-1, 1]; its shape must be the model's.
  public static func npy(_ path: String, imageShape: [Int]) throws -> (values: [Float], count: Int) {
    let a = try NPY.read(from: URL(fileURLWithPath: path))
    guard a.shape.count == 4, Array(a.shape.dropFirst()) == imageShape else {
      throw ModelError.input(
        "\(path) has shape \(a.shape) but the model takes (n, \(imageShape.map(String.init).joined(separator: ", "))) images"
      )
    }
    return (a.values, a.shape[0])
  }

  /// `fashion-mnist[:train|:test][:N]`, or any training-data source with an optional `:N`: the first N images.
  public static func dataset(_ spec: String, channels: Int, size: Int) throws -> TrainingImages {
    var parts = spec.split(separator: ":").map(String.init)
    var limit: Int?
    if parts.count > 1, let n = Int(parts.last!) {
      guard n > 0 else { throw ModelError.input("\(spec): the image count must be positive") }
      limit = n
      parts.removeLast()
    }
    var source = parts.joined(separator: ":")
    if source == "fashion-mnist:test" {
      source = TrainingImages.fashionMNISTFolder().appendingPathComponent("t10k-images-idx3-ubyte.gz").path
    } else if source == "fashion-mnist:train" {
      source = "fashion-mnist"
    }
    var d = try TrainingImages.load(source: source, sampleSize: size, channels: channels)
    if let limit, limit < d.count {
      d.images = Array(d.images.prefix(limit * d.imageElements))
      d.labels = d.labels.map { Array($0.prefix(limit)) }
      d.count = limit
    }
    return d
  }
}

/// The likelihood bounds of a VAE on a data set.
public struct VAELikelihoodReport: Codable, Sendable {
  /// Images evaluated, importance samples, dimensions per image.
  public var images: Int, samples: Int, dimensions: Int
  /// The data convention: "binarised (fixed, seeded)" or "8-bit, uniform dequantisation".
  public var data: String
  /// Mean ELBO (nats per image; the mean of log w over the samples).
  public var elboNats: Double
  /// Mean IWAE_k for each k evaluated (nats per image), keyed by k.
  public var iwaeNats: [String: Double]
  /// Latent dimensions whose posterior mean has variance > 0.01 across the images.
  public var activeUnits: Int
  /// Latent dimensions in all.
  public var latentDimensions: Int
  /// Per-dimension variance of the posterior mean.
  public var posteriorMeanVariance: [Double]

  /// Nats to bits per dimension (of a negative log-likelihood).
  public func bitsPerDim(_ nats: Double) -> Double { -nats / (Double(dimensions) * Foundation.log(2.0)) }
}

extension VAEOps {
  /// ELBO and IWAE_k (k in `ks`, each ≤ `samples`, all from one set of `samples` draws per image) of `data`.
  /// Bernoulli: the images binarised once with Philox uniforms keyed by `seed`; Gaussian: the 8-bit levels
  /// dequantised with seeded uniforms (mapped into the model's data range), and the bound converted to the
  /// discrete data (+ D·ln(range width) − D·ln 256).
  public static func likelihood(
    _ model: any VariationalAutoencoder, data: TrainingImages, samples k: Int, ks: [Int], seed: UInt64,
    device: Device, progress: (Int) -> Void = { _ in }
  ) throws -> VAELikelihoodReport {
    guard k >= 1 else { throw ModelError.input("--k must be at least 1, got \(k)") }
    let range = model.dataRange
    let span = Double(range.upperBound - range.lowerBound)
    if model.likelihood == .bernoulli && range != 0...1 {
      throw ModelError.input("a Bernoulli likelihood needs data in [0, 1]")
    }
    try model.checkImages([data.count, data.channels, data.size, data.size])
    let per = data.imageElements
    let d = model.latentCount
    let gaussian = model.likelihood != .bernoulli
    var logWSum = 0.0
    var iwae = [Int: Double]()
    var means: [Float] = []
    let batch = Swift.max(1, Swift.min(64, 4096 / Swift.max(1, Swift.min(k, 64))))
    var start = 0
    while start < data.count {
      let n = Swift.min(batch, data.count - start)
      let unit = VAETrainer.unitImages(data, Array(start..<(start + n)))
      let shape = [n, data.channels, data.size, data.size]
      let u = try Tensor.randomUniform(
        shape: shape, seed: seed, stream: Streams.evaluationBinarisation, firstSample: start, on: device)
      var x =
        gaussian
        ? try VAETrainer.dequantise(unit, shape: shape, uniforms: u)
        : try VAETrainer.binarise(try Tensor(unit, shape: shape, on: device), uniforms: u)
      if range != 0...1 { x = try x * Float(span) + range.lowerBound }
      var logW = [Double](repeating: 0, count: n * k)  // (image, sample)
      try Tape.noGrad {
        let (mu, lv) = try model.encode(x)
        means += try mu.toArray()
        let chunk = Swift.max(1, Swift.min(k, 4096 / n))
        var s0 = 0
        while s0 < k {
          let kc = Swift.min(chunk, k - s0)
          // Sample j of image i: ε keyed by (seed, image index, step = j).
          var epsParts: [Tensor] = []
          for j in s0..<(s0 + kc) {
            epsParts.append(
              try Tensor.randomNormal(
                shape: [n, d], seed: seed, step: j, stream: Streams.importanceSamples, firstSample: start,
                on: device))
          }
          let eps = try Tensor.concat(epsParts, axis: 0)  // (kc·n, d), sample-major
          let muR = try Tensor.concat(Array(repeating: try mu.reshaped([n, d]), count: kc), axis: 0)
          let lvR = try Tensor.concat(Array(repeating: try lv.reshaped([n, d]), count: kc), axis: 0)
          let z = try muR + (lvR * 0.5).exp() * eps
          let xR = try Tensor.concat(Array(repeating: x, count: kc), axis: 0)
          let out = try model.decode(try z.reshaped([kc * n] + model.latentShape))
          let nll = try model.reconstructionNLL(out, xR)  // (kc·n)
          let logPz = try (z * z).sum(axes: [1]) * -0.5
          let logQ = try ((eps * eps).sum(axes: [1]) + lvR.sum(axes: [1])) * -0.5
          let lw = try (nll.neg() + logPz - logQ).toArray()  // the 2π terms cancel
          for jj in 0..<kc { for i in 0..<n { logW[i * k + s0 + jj] = Double(lw[jj * n + i]) } }
          s0 += kc
        }
      }
      // The density of [0, 1] data is span^D times that of the model's range; the discrete 8-bit data's
      // probability is the density times (1/256)^D.
      let shift = gaussian ? Double(per) * (Foundation.log(span) - Foundation.log(256.0)) : 0
      for i in 0..<n {
        let row = logW[(i * k)..<((i + 1) * k)]
        logWSum += row.reduce(0, +) / Double(k) + shift
        for kk in ks where kk <= k {
          let head = row.prefix(kk)
          let m = head.max()!
          let lme = m + Foundation.log(head.reduce(0) { $0 + Foundation.exp($1 - m) } / Double(kk))
          iwae[kk, default: 0] += lme + shift
        }
      }
      start += n
      progress(n)
    }
    let count = Double(data.count)
    var variances: [Double] = []
    for j in 0..<d {
      var s = 0.0, s2 = 0.0
      for i in 0..<data.count {
        let v = Double(means[i * d + j])
        s += v
        s2 += v * v
      }
      let m = s / count
      variances.append(Swift.max(0, s2 / count - m * m))
    }
    return VAELikelihoodReport(
      images: data.count, samples: k, dimensions: per,
      data: gaussian ? "8-bit, uniform dequantisation" : "binarised (fixed, seeded)",
      elboNats: logWSum / count,
      iwaeNats: Dictionary(uniqueKeysWithValues: iwae.map { ("\($0.key)", $0.value / count) }),
      activeUnits: variances.filter { $0 > 0.01 }.count, latentDimensions: d, posteriorMeanVariance: variances
    )
  }
}
