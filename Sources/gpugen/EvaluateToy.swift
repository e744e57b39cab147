// `gpugen evaluate` of a toy 2-D model of any family (GAN, diffusion, VAE): N points sampled the family's way
// (diffusion: --sampler/--steps/--eta; VAE: --temperature; GAN: --truncation), scored against the data set's
// modes (ToyMetrics): modes covered by both rules, the high-quality share and KL(p ‖ uniform). No classifier.
import ArgumentParser
import Foundation
import GPUGenCore
import GPUGenModels

extension Evaluate {
  /// The default number of points a toy model is measured on.
  static let toySampleCount = 2_500

  /// The folder `--model` names and what it holds, when it holds a toy 2-D model (else nil).
  func toyFolder() throws -> (url: URL, kind: ModelFolderKind)? {
    let url = try ModelFolder.locate(model)
    let kind = try ModelFolder.classify(url)
    return ToyModel.isToy(kind) ? (url, kind) : nil
  }

  /// Measures a toy model (see the file header); prints the scores, or one JSON object with --json.
  func evaluateToy(_ url: URL, kind: ModelFolderKind) throws {
    let family = kind.family
    let count = nOption ?? Evaluate.toySampleCount
    let (sampler, steps, eta) = (self.sampler ?? .ddim, self.steps ?? 20, self.eta ?? 0)
    guard count > 0 else { throw ModelError.input("--n must be positive") }
    guard count <= 10_000_000 else { throw ModelError.input("--n \(count) is above 10,000,000 points") }
    guard steps > 0 else { throw ModelError.input("--steps must be positive") }
    guard eta >= 0 else { throw ModelError.input("--eta must be ≥ 0") }
    if let b = batchSize, b <= 0 { throw ModelError.input("--batch-size must be positive") }
    let misplaced: [(String, Bool, ModelFamily)] = [
      ("--temperature", temperature != nil, .vae), ("--truncation", truncation != nil, .gan),
      ("--truncation-mode", truncationMode != nil, .gan), ("--sampler", self.sampler != nil, .diffusion),
      ("--steps", self.steps != nil, .diffusion), ("--eta", self.eta != nil, .diffusion),
    ]
    if let f = misplaced.first(where: { $0.1 && $0.2 != family }) {
      throw ModelError.input(
        "\(f.0) is a \(f.2 == .gan ? "GAN" : f.2 == .vae ? "VAE" : "diffusion") option; this model is a toy 2-D \(family == .gan ? "GAN" : family.rawValue) model"
      )
    }
    if let f = (guidanceOptions.given + x0Options.given).first(where: { $0.1 }) {
      throw ModelError.input(
        "\(f.0) needs a class-conditional image diffusion model; this is a toy 2-D model")
    }
    if let psi = truncation, !(psi > 0 && psi.isFinite) {
      throw ModelError.input("--truncation ψ must be positive, got \(psi)")
    }
    if truncationMode != nil && truncation == nil {
      throw ModelError.input("--truncation-mode needs --truncation ψ")
    }
    if let tau = temperature, !(tau > 0 && tau.isFinite) {
      throw ModelError.input("--temperature must be positive, got \(tau)")
    }
    for (flag, given) in [("--classifier", classifier != nil), ("--real", real != nil)] where given {
      throw ModelError.input(
        "\(flag) does not apply to a toy 2-D model (it is scored against its data set's modes)")
    }
    let device = try deviceOptions.resolve()
    guard let model = try ToyModel.load(kind, device: device) else {
      throw ModelError.input("\(url.path) is not a toy 2-D model")
    }
    var o = ToySamplingOptions()
    (o.sampler, o.steps, o.eta, o.temperature) = (sampler, steps, eta, temperature ?? 1)
    (o.truncation, o.truncationMode) = (truncation, truncationMode ?? .resample)
    let batch = min(batchSize ?? min(count, 2_500), count)
    let (total, unit) = try model.progressTotal(count: count, batchSize: batch, options: o)
    let bar = ProgressBar(total: total, label: "sampling", unit: unit)
    let t0 = Date()
    let points = try model.sample(count: count, seed: seed, batchSize: batch, options: o) { bar.advance($0) }
    let seconds = Date().timeIntervalSince(t0)
    let toy = model.dataset
    let s = ToyMetrics.score(points, dataset: toy)
    var sampling: [String: Any]
    switch family {
    case .diffusion: sampling = ["sampler": sampler.rawValue, "steps": steps, "eta": eta]
    case .vae: sampling = ["temperature": o.temperature]
    case .gan: sampling = ["truncation": truncation ?? 1, "truncation_mode": o.truncationMode.rawValue]
    }
    if json {
      let scores: [String: Any] = [
        "modes": s.modes, "modes_covered_hq": s.modesCoveredHighQuality,
        "modes_covered_share": s.modesCoveredShare,
        "hq_fraction": s.highQualityFraction, "kl_from_uniform": s.klFromUniform,
        "hq_per_mode": s.highQualityPerMode,
      ]
      let obj: [String: Any] = [
        "model": url.path, "family": family.rawValue, "data": toy.spec, "n": count, "seed": seed,
        "sampling": sampling, "seconds": seconds, "results": scores,
      ]
      print(
        String(
          decoding: try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys]),
          as: UTF8.self))
      return
    }
    let how = sampling.keys.sorted().map { "\($0) \(sampling[$0]!)" }.joined(separator: ", ")
    print("model:    \(url.path) (toy 2-D \(family == .gan ? "GAN" : family.rawValue), \(toy.spec))")
    print("samples:  \(count), seed \(seed), \(how), " + String(format: "%.2f s", seconds))
    print("")
    func row(_ label: String, _ value: String) {
      print(label.padding(toLength: 44, withPad: " ", startingAt: 0) + value)
    }
    row("modes with ≥ 1 high-quality point", "\(s.modesCoveredHighQuality)/\(s.modes)")
    row("modes with ≥ 10 % of their share (HQ)", "\(s.modesCoveredShare)/\(s.modes)")
    row(
      String(format: "high-quality share (within %.0fσ of a mode)", ToyMetrics.qualityRadius),
      String(format: "%.2f %%", 100 * s.highQualityFraction))
    row("KL(HQ modes ‖ uniform)", String(format: "%.4f nats", s.klFromUniform))
  }
}
