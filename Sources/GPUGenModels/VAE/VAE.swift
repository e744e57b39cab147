// The VAE family: one interface (encode → Gaussian posterior, decode, prior sampling) over two
// architectures, gpugen's ConvVAE and diffusers' AutoencoderKL, and the negative ELBO they train with.
import Foundation

/// How a VAE's decoder output scores an image.
public enum VAELikelihood: Equatable, Sendable {
  /// Bernoulli pixels: the decoder gives logits, data lie in [0, 1].
  case bernoulli
  /// Gaussian pixels: the decoder gives means; σ is a learned scalar (`log_sigma`) when `sigma` is nil.
  case gaussian(sigma: Double?)

  /// The config name: "bernoulli" or "gaussian".
  public var name: String {
    switch self {
    case .bernoulli: return "bernoulli"
    case .gaussian: return "gaussian"
    }
  }
}

/// A variational autoencoder: q(z | x) = N(μ(x), diag σ²(x)), a decoder p(x | z) and the prior N(0, I).
public protocol VariationalAutoencoder: Module {
  /// (channels, height, width) of the images it encodes and decodes.
  var imageShape: [Int] { get }
  /// The per-image latent shape: [latent_dim] for a vector latent, (C, h, w) for a spatial one.
  var latentShape: [Int] { get }
  /// The likelihood of the decoder's output.
  var likelihood: VAELikelihood { get }
  /// The range the model's images live in: [0, 1] (ConvVAE) or [-1, 1] (AutoencoderKL).
  var dataRange: ClosedRange<Float> { get }
  /// The posterior's mean and log-variance for images x (N, C, H, W) in `dataRange`.
  func encode(_ x: Tensor) throws -> (mean: Tensor, logVariance: Tensor)
  /// The decoder's raw output for latents z (N, latentShape…): logits (Bernoulli) or means (Gaussian).
  func decode(_ z: Tensor) throws -> Tensor
  /// The learned log σ of a Gaussian likelihood (nil otherwise, or when σ is fixed).
  var logSigma: Tensor? { get }
}

extension VariationalAutoencoder {
  /// Latent scalars per image.
  public var latentCount: Int { latentShape.reduce(1, *) }

  /// Decoded images in `dataRange` (the Bernoulli mean σ(logits), or the Gaussian mean clamped).
  public func decodeImages(_ z: Tensor) throws -> Tensor {
    let out = try decode(z)
    switch likelihood {
    case .bernoulli: return try out.sigmoid()
    case .gaussian: return try out.clamp(min: dataRange.lowerBound, max: dataRange.upperBound)
    }
  }

  /// Throws unless x is (N, C, H, W) with this model's image shape; the error names both shapes.
  public func checkImages(_ x: [Int]) throws {
    guard x.count == 4, Array(x.dropFirst()) == imageShape else {
      throw ModelError.input(
        "the images are \(x.dropFirst().map(String.init).joined(separator: "×")) but the model expects "
          + "\(imageShape.map(String.init).joined(separator: "×")) (channels×height×width)")
    }
  }

  /// Throws unless z is (N, latentShape…).
  public func checkLatents(_ z: [Int]) throws {
    guard z.count == latentShape.count + 1, Array(z.dropFirst()) == latentShape else {
      throw ModelError.input(
        "the latents have shape \(z) but the model's latent is (N, \(latentShape.map(String.init).joined(separator: ", ")))"
      )
    }
  }

  /// log σ of a Gaussian likelihood as a tensor on the device (learned or fixed).
  func gaussianLogSigma(on device: Device) throws -> Tensor {
    if let logSigma { return logSigma }
    guard case .gaussian(let s?) = likelihood else {
      throw ModelError.input("this model has no Gaussian likelihood")
    }
    return try Tensor.full(Float(Foundation.log(s)), shape: [1], on: device)
  }

  /// Per-image negative log-likelihood −log p(x | z) in nats, (N): x in `dataRange` (binary for Bernoulli
  /// when binarised), `out` the decoder output.
  public func reconstructionNLL(_ out: Tensor, _ x: Tensor) throws -> Tensor {
    let n = x.shape[0]
    let per = x.count / Swift.max(n, 1)
    switch likelihood {
    case .bernoulli:
      // max(l, 0) − l·x + log(1 + e^−|l|), summed over each image.
      let elementwise = try Tensor.bceWithLogits(out, x)
      return try elementwise.reshaped([n, per]).sum(axes: [1])
    case .gaussian:
      let ls = try gaussianLogSigma(on: x.device)
      let d = try out - x
      let sq = try (d * d).reshaped([n, per]).sum(axes: [1])  // (N)
      let inv = try (ls * -2).exp()  // 1/σ²
      let constant = Float(per) * 0.5 * Float(Foundation.log(2 * Double.pi))
      return try sq * inv * 0.5 + ls * Float(per) + constant
    }
  }
}

/// KL(q(z | x) ‖ N(0, I)) per latent scalar, (N, latentCount): ½(μ² + σ² − 1 − log σ²).
public func gaussianKLTerms(mean mu: Tensor, logVariance lv: Tensor) throws -> Tensor {
  let n = mu.shape[0]
  let t = try (mu * mu + lv.exp() - lv - 1) * 0.5
  return try t.reshaped([n, -1])
}

/// One batch's negative ELBO and its parts (per image, in nats).
public struct ELBOTerms {
  /// The training objective: mean over the batch of NLL + β·KL (with free bits).
  public let loss: Tensor
  /// Mean reconstruction NLL, nats per image.
  public let reconstruction: Float
  /// Mean KL, nats per image (without β or free bits).
  public let kl: Float
  /// The value of `loss`.
  public let lossValue: Float
  /// Negative ELBO (NLL + KL) per image, nats.
  public var negativeELBO: Float { reconstruction + kl }
}

/// The knobs of the ELBO objective.
public struct ELBOOptions: Equatable, Sendable {
  /// KL weight after warm-up.
  public var beta: Double = 1
  /// Steps over which β rises linearly from 0 (0: no warm-up).
  public var klWarmup = 0
  /// Free bits λ: each latent dimension's batch-mean KL counts at least λ nats (0: off).
  public var freeBits: Double = 0
  /// Options with the given values.
  public init(beta: Double = 1, klWarmup: Int = 0, freeBits: Double = 0) {
    (self.beta, self.klWarmup, self.freeBits) = (beta, klWarmup, freeBits)
  }

  /// β at optimizer step `step` (1-based): β·min(1, step/klWarmup).
  public func beta(atStep step: Int) -> Double {
    klWarmup > 0 ? beta * Swift.min(1, Double(step) / Double(klWarmup)) : beta
  }
}

extension VariationalAutoencoder {
  /// The reparameterised forward pass and its negative ELBO on x (N, C, H, W) in `dataRange`, with noise ε
  /// (N, latentShape…) given, β the KL weight and `freeBits` the per-dimension KL floor.
  public func negativeELBO(_ x: Tensor, noise eps: Tensor, beta: Double, freeBits: Double = 0) throws
    -> ELBOTerms
  {
    try checkImages(x.shape)
    let n = Float(x.shape[0])
    let (mu, lv) = try encode(x)
    let z = try mu + (lv * 0.5).exp() * eps
    let out = try decode(z)
    let nll = try reconstructionNLL(out, x)  // (N)
    let klTerms = try gaussianKLTerms(mean: mu, logVariance: lv)  // (N, D)
    let recMean = try nll.sum() / n
    let klPerDim = try klTerms.sum(axes: [0]) / n  // (D)
    let klObjective: Tensor
    if freeBits > 0 {
      klObjective = try klPerDim.maximum(Float(freeBits)).sum()
    } else {
      klObjective = try klPerDim.sum()
    }
    let loss = try recMean + klObjective * Float(beta)
    // The three figures in one download.
    let v = try Tape.noGrad {
      try Tensor.concat([recMean.reshaped([1]), klPerDim.sum().reshaped([1]), loss.reshaped([1])], axis: 0)
        .toArray()
    }
    return ELBOTerms(loss: loss, reconstruction: v[0], kl: v[1], lossValue: v[2])
  }
}
