// Global-norm clipping with the divergence stop every trainer shares: a non-finite gradient norm stops the
// run before any weight changes, naming the first parameter whose gradient is not finite.

extension Optimizer {
  /// `clipGradNorm` with `maxNorm` (0: no clipping) that throws `TrainingError.diverged` for optimizer step
  /// `step` (1-based) when the norm is NaN or infinite.
  static func clipOrStop(grads: [Tensor], names: [String], maxNorm: Double, step: Int) throws -> (
    norm: Float, scale: Float
  ) {
    let clip = try clipGradNorm(
      grads: grads, maxNorm: maxNorm > 0 ? Float(maxNorm) : .greatestFiniteMagnitude)
    guard clip.norm.isFinite else {
      var term = "the gradient norm"
      for (g, name) in zip(grads, names) where !(try g.toArray().allSatisfy(\.isFinite)) {
        term = "the gradient of \(name)"
        break
      }
      throw TrainingError.diverged(step: step, term: term, value: clip.norm)
    }
    return clip
  }
}
