// Using a VAE: prior samples, encoding, decoding, reconstruction, interpolation. Latent noise for image i
// depends only on (seed, i), as diffusion's noise does, so any batch size gives the same images.
import Foundation

/// Batched VAE operations on host arrays (images in the model's data range, NCHW row-major).
public enum VAEOps {
  /// The prior latents of images `start..<start+count`: τ·z with z ~ N(0, I) keyed by (seed, image index).
  public static func priorLatents(
    _ model: any VariationalAutoencoder, start: Int = 0, count: Int, seed: UInt64, temperature: Double,
    device: Device
  ) throws -> Tensor {
    let z = try Tensor.randomNormal(
      shape: [count] + model.latentShape, seed: seed, step: 0, stream: Streams.priorSample,
      firstSample: start,
      on: device)
    return temperature == 1 ? z : try z * Float(temperature)
  }

  /// `count` images decoded from the prior at temperature τ, in batches; values in the model's data range.
  public static func sample(
    _ model: any VariationalAutoencoder, count: Int, batchSize: Int, seed: UInt64, temperature: Double,
    device: Device, progress: (Int) -> Void = { _ in }
  ) throws -> [Float] {
    guard temperature > 0, temperature.isFinite else {
      throw ModelError.input("--temperature must be positive, got \(temperature)")
    }
    guard count > 0, batchSize > 0 else { throw ModelError.input("--n and --batch-size must be positive") }
    try MemoryBudget.check(
      checkedProduct([count, model.imageShape.reduce(1, *), 4]),
      for: "\(count) images of \(model.imageShape) (the result)", on: Device.cpu, flag: "--n")
    var out: [Float] = []
    var start = 0
    while start < count {
      let n = Swift.min(batchSize, count - start)
      let z = try priorLatents(
        model, start: start, count: n, seed: seed, temperature: temperature, device: device)
      let images = try Tape.noGrad { try model.decodeImages(z).toArray() }
      try NonFiniteError.check(
        images, tensor: "the decoder output", firstImage: start, perImage: images.count / Swift.max(n, 1))
      out += images
      start += n
      progress(n)
    }
    return out
  }

  /// Posterior means (or one draw each, keyed by (seed, image index), with `sample`) of `count` images.
  public static func encode(
    _ model: any VariationalAutoencoder, images: [Float], count: Int, batchSize: Int, sample: Bool = false,
    seed: UInt64 = 0, device: Device
  ) throws -> (mean: [Float], logVariance: [Float]) {
    let per = model.imageShape.reduce(1, *)
    guard images.count == count * per else {
      throw ModelError.input("\(images.count) values are not \(count) images of \(model.imageShape)")
    }
    var mean: [Float] = [], logv: [Float] = []
    var start = 0
    while start < count {
      let n = Swift.min(batchSize, count - start)
      let x = try Tensor(
        Array(images[(start * per)..<((start + n) * per)]), shape: [n] + model.imageShape, on: device)
      let (m, l) = try Tape.noGrad { () throws -> (Tensor, Tensor) in
        let (mu, lv) = try model.encode(x)
        if !sample { return (mu, lv) }
        let eps = try Tensor.randomNormal(
          shape: mu.shape, seed: seed, step: 0, stream: Streams.posteriorSample, firstSample: start,
          on: device)
        return (try mu + (lv * 0.5).exp() * eps, lv)
      }
      mean += try m.toArray()
      logv += try l.toArray()
      start += n
    }
    return (mean, logv)
  }

  /// Decoded images (data range) of `count` latents (count, latentShape…).
  public static func decode(
    _ model: any VariationalAutoencoder, latents: [Float], count: Int, batchSize: Int, device: Device
  ) throws -> [Float] {
    let per = model.latentCount
    guard latents.count == count * per else {
      throw ModelError.input("\(latents.count) values are not \(count) latents of \(model.latentShape)")
    }
    var out: [Float] = []
    var start = 0
    while start < count {
      let n = Swift.min(batchSize, count - start)
      let z = try Tensor(
        Array(latents[(start * per)..<((start + n) * per)]), shape: [n] + model.latentShape, on: device)
      let images = try Tape.noGrad { try model.decodeImages(z).toArray() }
      try NonFiniteError.check(
        images, tensor: "the decoder output", firstImage: start, perImage: images.count / Swift.max(n, 1))
      out += images
      start += n
    }
    return out
  }

  /// Points from a to b: linear, or spherical (slerp) when `slerp`; `frames` ≥ 2 includes both ends.
  public static func interpolate(_ a: [Float], _ b: [Float], frames: Int, slerp: Bool) -> [[Float]] {
    let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    let na = a.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    let nb = b.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    let cosine = na > 0 && nb > 0 ? Swift.max(-1, Swift.min(1, dot / (na * nb))) : 1
    let omega = Foundation.acos(cosine)
    return (0..<frames).map { f in
      let t = frames > 1 ? Double(f) / Double(frames - 1) : 0
      var wa = 1 - t, wb = t
      if slerp && Foundation.sin(omega) > 1e-6 {
        wa = Foundation.sin((1 - t) * omega) / Foundation.sin(omega)
        wb = Foundation.sin(t * omega) / Foundation.sin(omega)
      }
      return zip(a, b).map { Float(wa * Double($0.0) + wb * Double($0.1)) }
    }
  }

  /// Maps images from the model's data range to [-1, 1] (the PNG grid convention).
  public static func toSigned(_ values: [Float], range: ClosedRange<Float>) -> [Float] {
    let lo = range.lowerBound, span = range.upperBound - range.lowerBound
    return values.map { 2 * ($0 - lo) / span - 1 }
  }

  /// Maps [-1, 1] images (TrainingImages) into the model's data range.
  public static func fromSigned(_ values: [Float], range: ClosedRange<Float>) -> [Float] {
    let lo = range.lowerBound, span = range.upperBound - range.lowerBound
    return values.map { lo + ($0 + 1) * 0.5 * span }
  }
}
