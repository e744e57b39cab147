// Classifier-free guidance (Ho & Salimans 2022) as diffusers' pipelines apply it: one batched forward pass on
// the conditional and the null-label copies of the batch, ε = ε_u + s·(ε_c − ε_u), then optionally
// `rescale_noise_cfg` (Lin et al. 2023). The samplers' fused updates take the combined output unchanged.
import Foundation

/// The guidance scale s and rescale φ of a guided sampling run.
public struct ClassifierFreeGuidance: Sendable, Equatable {
  /// s: 1 is plain conditional sampling (no unconditional pass), 0 unconditional, > 1 guided.
  public var scale: Double
  /// φ of diffusers' `guidance_rescale` (0: off): the guided output's per-sample std is pulled towards the
  /// conditional output's by the factor φ.
  public var rescale: Double

  /// Guidance with scale `scale` and rescale `rescale`.
  public init(scale: Double = 1, rescale: Double = 0) {
    (self.scale, self.rescale) = (scale, rescale)
  }

  /// Whether sampling needs the unconditional pass (s ≠ 1).
  public var isActive: Bool { scale != 1 }

  /// Errors for values no run can use, naming the flags.
  public func validate() throws {
    guard scale.isFinite, scale >= 0 else {
      throw ModelError.input("--guidance-scale must be a finite number ≥ 0, got \(scale)")
    }
    guard rescale.isFinite, rescale >= 0, rescale <= 1 else {
      throw ModelError.input("--guidance-rescale must be in [0, 1], got \(rescale)")
    }
  }

  /// diffusers' combination of the conditional and unconditional outputs (N, …): u + s·(c − u), then, when
  /// φ > 0, `rescale_noise_cfg`: φ·g·(std(c)/std(g)) + (1 − φ)·g with std over every axis but the batch
  /// (torch's unbiased std).
  public func combine(conditional c: Tensor, unconditional u: Tensor) throws -> Tensor {
    var g = try u + (try (c - u) * Float(scale))
    if rescale > 0 {
      let axes = Array(1..<c.rank)
      let stdC = try c.variance(axes: axes, keepDims: true, correction: 1).sqrt()
      let stdG = try g.variance(axes: axes, keepDims: true, correction: 1).sqrt()
      let rescaled = try g * (try stdC / stdG)
      g = try (try rescaled * Float(rescale)) + (try g * Float(1 - rescale))
    }
    return g
  }
}

/// A denoiser with classifier-free guidance: each call evaluates the model once on the batch twice over —
/// first with the given labels, then with the null label — and combines the halves. At s = 1 it is the model
/// itself (bit for bit, one pass).
public struct GuidedDenoiser: Denoiser {
  /// The class-conditional model.
  public let model: any Denoiser
  /// The model's null label (the unconditional pass's class).
  public let nullLabel: Int
  /// The guidance settings.
  public let guidance: ClassifierFreeGuidance

  /// Wraps `model`, whose unconditional class is `nullLabel`.
  public init(model: any Denoiser, nullLabel: Int, guidance: ClassifierFreeGuidance) throws {
    try guidance.validate()
    (self.model, self.nullLabel, self.guidance) = (model, nullLabel, guidance)
  }

  /// Wraps a UNet; a model without a null label (not trained with class dropout) is an error.
  public init(model: UNet2D, guidance: ClassifierFreeGuidance) throws {
    guard let null = model.config.nullClassLabel else {
      throw ModelError.input(
        "--guidance-scale needs a model trained with class dropout (a null class label: "
          + "`gpugen train diffusion --class-dropout p`); this model "
          + (model.config.numClassEmbeds.map { "has \($0) classes and no null label" }
            ?? "is not class-conditional"))
    }
    try self.init(model: model as any Denoiser, nullLabel: null, guidance: guidance)
  }

  /// The model's device.
  public var device: Device { model.device }
  /// The model's (C, H, W).
  public var imageShape: [Int] { model.imageShape }
  /// The model's real classes (the null label excluded).
  public var classCount: Int? { model.classCount }

  /// The model's estimate for the batch it is called on: twice `batch` (the conditional and the
  /// unconditional copies) when guidance is active.
  public func activationEstimate(batch: Int) -> ActivationEstimate? {
    guard guidance.isActive else { return model.activationEstimate(batch: batch) }
    let (doubled, overflow) = batch.multipliedReportingOverflow(by: 2)
    guard var e = model.activationEstimate(batch: overflow ? Int.max : doubled) else { return nil }
    if overflow { (e.bytes, e.largestBuffer) = (nil, nil) }
    e.what =
      "a batch of \(batch) images with classifier-free guidance (\(overflow ? "2 × \(batch)" : "\(doubled)") "
      + "through the model at once)"
    return e
  }

  /// The guided output for x (N, C, H, W) under `classLabels` (one per sample, or one for all): one model call
  /// on the 2N batch [x; x] with labels [labels; null…], split into its conditional and unconditional halves.
  public func callAsFunction(_ x: Tensor, timesteps: [Double], classLabels: [Int]?) throws -> Tensor {
    guard guidance.isActive else { return try model(x, timesteps: timesteps, classLabels: classLabels) }
    guard let labels = classLabels, !labels.isEmpty else {
      throw ModelError.input("guided sampling needs class labels")
    }
    let n = x.shape[0]
    let l = labels.count == n ? labels : Array(repeating: labels[0], count: n)
    let t = timesteps.count == n ? timesteps + timesteps : timesteps
    let out = try model(
      try Tensor.concat([x, x], axis: 0), timesteps: t,
      classLabels: l + Array(repeating: nullLabel, count: n))
    return try guidance.combine(
      conditional: try out.slice(axis: 0, start: 0, end: n), unconditional: try out.slice(axis: 0, start: n))
  }
}

extension X0Bounding {
  /// The bounding a guided run uses when no flag chooses one (`guidedDefault` for s > 1); a deliberate
  /// difference from diffusers, whose clip_sample saturates the guided x̂₀ (README: "Guidance").
  public static let guidedDefault = X0Bounding.none

  /// The bounding of a run with guidance scale `scale` (nil: unguided) and no bounding flag: the scheduler
  /// config's, except `guidedDefault` when s > 1 (s = 1 stays plain conditional sampling, bit for bit).
  public static func defaultBounding(guidanceScale scale: Double?) -> X0Bounding {
    (scale ?? 1) > 1 ? guidedDefault : .scheduler
  }
}
