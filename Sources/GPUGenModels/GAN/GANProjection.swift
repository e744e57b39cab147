// Projecting images into a GAN's latent space (a GAN has no encoder): for each image x, z is optimised with
// Adam to minimise
//
//   ‖G(z) − x‖² / D  +  λ · ‖f(G(z)) − f(x)‖² / F
//
// (D pixels, F features of a classifier f: the perceptual term that keeps the projection on the image's class
// and shape rather than its blur). Every image's loss is its own term of a sum, so its z moves as if it were
// optimised alone; z starts from N(0, I) keyed by (seed, image index).
import Foundation

/// Projection of images into a generator's latent space.
public enum GANProjection {
  /// What `project` returns: the latents, the generator's images of them and each image's pixel MSE (pixels in
  /// [0, 1]).
  public struct Result: Sendable {
    /// (count × latent_dim) latents.
    public var latents: [Float]
    /// G(z), values in [−1, 1].
    public var images: [Float]
    /// Per-image mean squared error between G(z) and the image, on the [0, 1] scale.
    public var mse: [Double]
  }

  /// Projects `count` images (values in [−1, 1], the generator's sample shape) into `model`'s latent space:
  /// `steps` Adam steps at `lr` on the loss above with weight `featureWeight` on `classifier`'s features (nil:
  /// pixels only). `labels` give a class-conditional generator each image's class (cycled).
  public static func project(
    _ model: GANModel, images: [Float], count: Int, labels: [Int]? = nil, classifier: ImageClassifier?,
    featureWeight: Double = 1, steps: Int = 300, lr: Double = 0.05, batchSize: Int = 64, seed: UInt64 = 0,
    device: Device, progress: (Int) -> Void = { _ in }
  ) throws -> Result {
    guard !model.isToy else { throw ModelError.input("projection is for image GANs, not toy 2-D models") }
    let shape = model.sampleShape, per = shape.reduce(1, *)
    guard count > 0, images.count == count * per else {
      throw ModelError.input("\(images.count) values are not \(count) images of \(shape)")
    }
    guard steps >= 1, lr > 0, lr.isFinite, featureWeight >= 0, featureWeight.isFinite, batchSize > 0 else {
      throw ModelError.input("projection needs steps ≥ 1, a positive learning rate and a feature weight ≥ 0")
    }
    if model.config.conditional && (labels ?? []).isEmpty {
      throw ModelError.input("this GAN is class-conditional: give each image's class (--class)")
    }
    if !model.config.conditional && labels != nil {
      throw ModelError.input("--class given, but this GAN's generator is unconditional")
    }
    let judge: ImageClassifier? =
      featureWeight > 0 && classifier?.config.inChannels == shape[0]
        && classifier?.config.imageSize == shape[1]
      ? classifier : nil
    var out = Result(latents: [], images: [], mse: [])
    var start = 0
    while start < count {
      let n = Swift.min(batchSize, count - start)
      let x = try Tensor(Array(images[(start * per)..<((start + n) * per)]), shape: [n] + shape, on: device)
      let y = labels.map { l in (start..<(start + n)).map { l[$0 % l.count] } }
      let target = try judge.map { j in try Tape.noGrad { try j.forward(x).features } }
      let z = try Tensor.randomNormal(
        shape: [n, model.config.latentDim], seed: seed, step: 0, stream: Streams.ganProjection,
        firstSample: start,
        on: device)
      let optimizer = try Optimizer(parameters: [z], config: .adam())
      // Sums over images, so each z sees only its own image's gradient.
      let pixelScale = Float(1.0 / Double(per))
      let featureScale = judge.map { Float(featureWeight / Double($0.config.featureDim)) } ?? 0
      for _ in 0..<steps {
        let tape = Tape()
        tape.watch(z)
        let loss = try tape.record { () throws -> Tensor in
          let g = try model.generator(z, labels: y)
          let d = try g - x
          var l = try (d * d).sum() * pixelScale
          if let judge, let target {
            let f = try judge.forward(g).features - target
            l = try l + (f * f).sum() * featureScale
          }
          return l
        }
        guard let grad = try tape.gradients(of: loss, wrt: [z])[0] else { break }
        try optimizer.step(grads: [grad], lr: Float(lr))
      }
      let g = try Tape.noGrad { try model.generator(z, labels: y) }
      let gv = try g.toArray()
      out.latents += try z.toArray()
      out.images += gv
      for i in 0..<n {
        var s = 0.0
        for e in 0..<per {
          let d = Double(gv[i * per + e] - images[(start + i) * per + e]) / 2
          s += d * d
        }
        out.mse.append(s / Double(per))
      }
      start += n
      progress(n)
    }
    return out
  }
}
