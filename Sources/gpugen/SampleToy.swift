// `gpugen sample` of a toy 2-D diffusion model or VAE: points with the family's sampling (diffusion:
// --sampler/--steps/--eta/--karras; VAE: --temperature), a scatter plot with the modes marked, the toy scores.
import ArgumentParser
import Foundation
import GPUGenModels

extension Sample {
  /// Samples the toy diffusion model or VAE in the folder of `kind`.
  func sampleToy(_ kind: ModelFolderKind, start t0: Date) throws {
    let family = kind.family
    let others: [(String, Bool, String)] =
      family == .diffusion
      ? [
        ("--temperature", temperature != nil, "VAE"), ("--truncation", truncation != nil, "GAN"),
        ("--truncation-mode", truncationMode != nil, "GAN"),
      ]
      : [
        ("--sampler", sampler != nil, "diffusion"), ("--steps", steps != nil, "diffusion"),
        ("--eta", eta != nil, "diffusion"), ("--karras", karras, "diffusion"),
        ("--truncation", truncation != nil, "GAN"), ("--truncation-mode", truncationMode != nil, "GAN"),
      ]
    let takes = family == .diffusion ? "--sampler, --steps, --eta, --karras" : "--temperature"
    if let f = others.first(where: { $0.1 }) {
      throw ModelError.input(
        "\(f.0) is a \(f.2) option; this model is a toy 2-D \(family.rawValue) model (it takes \(takes))")
    }
    for (flag, given) in [
      ("--class", classes != nil), ("--noise", noise != nil), ("--trajectory", trajectory != nil),
    ] + x0Options.given + guidanceOptions.given
    where given {
      throw ModelError.input("\(flag) does not apply to a toy 2-D model (unconditional points)")
    }
    guard n > 0 else { throw ModelError.input("--n must be positive") }
    if let b = batchSize, b <= 0 { throw ModelError.input("--batch-size must be positive") }
    if let s = steps, s <= 0 { throw ModelError.input("--steps must be positive") }
    if let tau = temperature, !(tau > 0 && tau.isFinite) {
      throw ModelError.input("--temperature must be positive, got \(tau)")
    }
    try output.validate()
    let device = try deviceOptions.resolve()
    guard let model = try ToyModel.load(kind, device: device) else {
      throw ModelError.input("not a toy model folder")
    }
    var o = ToySamplingOptions()
    o.sampler = sampler ?? .ddim
    o.steps = steps ?? (o.sampler == .ddpm ? nil : 20)
    (o.eta, o.karras, o.temperature) = (eta ?? 0, karras, temperature ?? 1)
    let batch = min(batchSize ?? min(n, 2_500), n)
    let toy = model.dataset
    let what = family == .diffusion ? "\(o.sampler.rawValue)" : "prior samples, τ = \(o.temperature)"
    FileHandle.standardError.write(
      Data(
        "gpugen: toy \(family.rawValue) (\(toy.spec)) \(what), \(n) points in batches of \(batch) on \(device)\n"
          .utf8))
    let (total, unit) = try model.progressTotal(count: n, batchSize: batch, options: o)
    let bar = ProgressBar(total: total, label: "sampling", unit: unit)
    let sampleStart = Date()
    let points = try model.sample(
      count: n, seed: seed, batchSize: batch, options: o, progress: { bar.advance($0) })
    let seconds = Date().timeIntervalSince(sampleStart)
    let outputs = StagedOutputs()  // the .npy and the scatter plot, all or nothing
    if let npy = output.npy {
      try outputs.stage(URL(fileURLWithPath: npy)) { try NPY.write(points, shape: [n, 2], to: $0) }
    }
    let s = ToyMetrics.score(points, dataset: toy)
    print("\(toy.spec): \(s.summary)")
    let title = String(
      format: "%d samples: %d/%d modes, %.1f%% high quality", n, s.modesCoveredHighQuality, s.modes,
      100 * s.highQualityFraction)
    let png = output.png(or: "scatter.png")
    try outputs.stage(URL(fileURLWithPath: png)) {
      try ToyScatter.render(points, dataset: toy, title: title).writePNG(to: $0)
    }
    try outputs.commit()
    print(
      String(
        format: "%@: %d samples in %.3f s (%.1f samples/s; startup %.2f s) → %@", device.description, n,
        seconds,
        Double(n) / max(seconds, 1e-9), sampleStart.timeIntervalSince(t0), png))
  }
}
