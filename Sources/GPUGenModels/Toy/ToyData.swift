// Toy 2-D data sets for GANs (and any generator of points): mixtures of equal-weight isotropic Gaussians whose
// modes are far apart (≥ 30σ), so mode coverage and sample quality can be counted exactly (ToyMetrics.swift).
// Every sample is a Philox draw keyed by (seed, sample, step, Streams.toyData): independent of the batch size.
import Foundation
import GPUGenCore

/// A toy 2-D data set: a mixture of equal-weight isotropic Gaussians, chosen by `toy:<name>`.
public enum ToyDataset: String, CaseIterable, Sendable {
  /// Eight Gaussians on the circle of radius 2, mode k at angle 2πk/8, σ = 0.02.
  case ring8
  /// Twenty-five Gaussians at {−4, −2, 0, 2, 4}², σ = 0.05.
  case grid25

  /// The prefix that marks a toy data set in a `--data` value.
  public static let prefix = "toy:"

  /// The data set's name as a `--data` value: `toy:ring8`, `toy:grid25`.
  public var spec: String { Self.prefix + rawValue }

  /// The mixture's means, in mode order (ring8: by angle; grid25: x fastest, from (−4, −4) to (4, 4)).
  public var modes: [(x: Double, y: Double)] {
    switch self {
    case .ring8:
      return (0..<8).map { k in
        let a = 2 * Double.pi * Double(k) / 8
        return (2 * cos(a), 2 * sin(a))
      }
    case .grid25:
      return (0..<25).map { (k: Int) -> (x: Double, y: Double) in
        let (col, row) = (k % 5, k / 5)
        return (Double(2 * col - 4), Double(2 * row - 4))
      }
    }
  }

  /// The standard deviation of each coordinate around its mode.
  public var sigma: Double {
    switch self {
    case .ring8: return 0.02
    case .grid25: return 0.05
    }
  }

  /// The square data range plots use on both axes (fixed per data set, so plots of different runs compare).
  public var plotRange: ClosedRange<Double> {
    switch self {
    case .ring8: return -3...3
    case .grid25: return -6...6
    }
  }

  /// Whether a `--data` value names a toy data set (starts with `toy:`); `parse` says whether the name is known.
  public static func isToy(_ spec: String) -> Bool { spec.hasPrefix(prefix) }

  /// The data set named by `toy:<name>` or the bare `<name>`; an unknown name is a `DatasetError` listing the
  /// valid ones.
  public static func parse(_ spec: String) throws -> ToyDataset {
    let name = isToy(spec) ? String(spec.dropFirst(prefix.count)) : spec
    guard let d = ToyDataset(rawValue: name) else {
      let choices = allCases.map(\.spec)
      let list = choices.dropLast().joined(separator: ", ") + " or " + choices.last!
      throw DatasetError.invalidArgument("unknown toy data set '\(spec)'; choose \(list)")
    }
    return d
  }

  /// `count` points, row-major (x₀, y₀, x₁, y₁, …). Sample i is a function of (seed, firstSample + i, step)
  /// only: the Philox block with counter (0, firstSample + i, step, `Streams.toyData`) gives its offsets
  /// (Box–Muller on words x, y: the values `Tensor.randomNormal` draws for 2 elements a sample) and its mode
  /// (word z mod the number of modes); the point is Float(mode + σ·offset), computed in Double.
  /// Requires count ≥ 0 and every counter word (firstSample + i, step) to fit in 32 bits.
  public func sample(count: Int, seed: UInt64, step: Int, firstSample: Int = 0) -> [Float] {
    precondition(
      count >= 0 && firstSample >= 0 && firstSample + count - 1 <= Int(UInt32.max) && step >= 0
        && step <= Int(UInt32.max),
      "ToyDataset.sample: count \(count), firstSample \(firstSample), step \(step) out of range")
    let modes = self.modes
    let k = UInt32(modes.count)
    let key = Philox4x32.key(seed: seed)
    let (s, stream) = (UInt32(step), UInt32(Streams.toyData))
    var out = [Float](repeating: 0, count: 2 * count)
    for i in 0..<count {
      let w = Philox4x32.block(counter: SIMD4(0, UInt32(firstSample + i), s, stream), key: key)
      let (dx, dy) = Philox4x32.boxMuller(w[0], w[1])
      let m = modes[Int(w[2] % k)]
      out[2 * i] = Float(m.x + sigma * Double(dx))
      out[2 * i + 1] = Float(m.y + sigma * Double(dy))
    }
    return out
  }

  /// The same points as `sample(count:seed:step:firstSample:)` as a (count, 2) tensor on `device`; a counter
  /// out of range is a `DatasetError`.
  public func sample(count: Int, seed: UInt64, step: Int, firstSample: Int = 0, on device: Device) throws
    -> Tensor
  {
    let limit = Int(UInt32.max)
    guard count >= 0, firstSample >= 0, firstSample + count - 1 <= limit, step >= 0, step <= limit else {
      throw DatasetError.invalidArgument(
        "\(spec): count \(count), first sample \(firstSample) and step \(step) must fit in 32-bit counters")
    }
    return try Tensor(
      sample(count: count, seed: seed, step: step, firstSample: firstSample), shape: [count, 2], on: device)
  }
}
