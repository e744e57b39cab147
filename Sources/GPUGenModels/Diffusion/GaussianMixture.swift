// An exact denoiser for a Gaussian-mixture data distribution: checks samplers without any training.
import Foundation

/// An isotropic Gaussian mixture in `dimension` dimensions, and its exact ε(x, t) under a VP schedule.
public struct GaussianMixture: Sendable {
  public var weights: [Double]
  public var means: [[Double]]
  /// Per-component standard deviation (isotropic).
  public var stds: [Double]
  public var dimension: Int { means[0].count }

  public init(weights: [Double], means: [[Double]], stds: [Double]) {
    (self.weights, self.means, self.stds) = (weights, means, stds)
  }

  /// A 2-D, three-component mixture with unequal weights and well-separated modes.
  public static let standard = GaussianMixture(
    weights: [0.5, 0.3, 0.2], means: [[-1.5, -0.5], [1.5, -0.5], [0, 1.5]], stds: [0.25, 0.3, 0.2])

  /// ε(x) for x_t = √ᾱ x₀ + √(1−ᾱ) ε: −√(1−ᾱ) ∇log p_t(x), with p_t the noised mixture.
  public func epsilon(_ x: [Double], alphaBar a: Double) -> [Double] {
    let d = dimension
    var logs = [Double](), grads = [[Double]]()
    for k in 0..<weights.count {
      let v = a * stds[k] * stds[k] + 1 - a
      var sq = 0.0
      var g = [Double](repeating: 0, count: d)
      for j in 0..<d {
        let diff = x[j] - a.squareRoot() * means[k][j]
        sq += diff * diff
        g[j] = -diff / v
      }
      logs.append(Foundation.log(weights[k]) - 0.5 * sq / v - 0.5 * Double(d) * Foundation.log(v))
      grads.append(g)
    }
    let m = logs.max()!
    let e = logs.map { Foundation.exp($0 - m) }, z = e.reduce(0, +)
    return (0..<d).map { j in
      -(1 - a).squareRoot() * (0..<weights.count).map { e[$0] / z * grads[$0][j] }.reduce(0, +)
    }
  }

  /// Sample statistics: the share of samples nearest to each mean, and the mean of those samples.
  public func statistics(_ samples: [[Double]]) -> (weights: [Double], means: [[Double]]) {
    var counts = [Double](repeating: 0, count: weights.count)
    var sums = [[Double]](repeating: [Double](repeating: 0, count: dimension), count: weights.count)
    for s in samples {
      let k = (0..<weights.count).min { a, b in
        zip(s, means[a]).map { ($0 - $1) * ($0 - $1) }.reduce(0, +)
          < zip(s, means[b]).map { ($0 - $1) * ($0 - $1) }.reduce(0, +)
      }!
      counts[k] += 1
      for j in 0..<dimension { sums[k][j] += s[j] }
    }
    return (
      counts.map { $0 / Double(samples.count) },
      (0..<weights.count).map { k in sums[k].map { $0 / Swift.max(counts[k], 1) } }
    )
  }
}

/// The mixture's exact ε as a `Denoiser` over (N, dimension, 1, 1) samples, for a given schedule.
public struct GaussianMixtureDenoiser: Denoiser {
  public let mixture: GaussianMixture
  public let device: Device
  /// Training sigmas √((1−ᾱ)/ᾱ); fractional timesteps interpolate them linearly, as diffusers does.
  let sigmas: [Double]
  public var imageShape: [Int] { [mixture.dimension, 1, 1] }
  public var classCount: Int? { nil }

  public init(mixture: GaussianMixture, schedule: NoiseSchedule, device: Device) {
    self.mixture = mixture
    self.device = device
    sigmas = schedule.alphasCumprod.map { ((1 - $0) / $0).squareRoot() }
  }

  /// ᾱ at a (possibly fractional) timestep.
  func alphaBar(_ t: Double) -> Double {
    let lo = Swift.max(0, Swift.min(Int(t.rounded(.down)), sigmas.count - 1)),
      hi = Swift.min(lo + 1, sigmas.count - 1)
    let w = t - Double(lo)
    let s = sigmas[lo] * (1 - w) + sigmas[hi] * w
    return 1 / (1 + s * s)
  }

  public func callAsFunction(_ x: Tensor, timesteps: [Double], classLabels: [Int]?) throws -> Tensor {
    let v = try x.toArray()
    let d = mixture.dimension, n = x.shape[0]
    var out = [Float](repeating: 0, count: v.count)
    for i in 0..<n {
      let a = alphaBar(timesteps.count == n ? timesteps[i] : timesteps[0])
      let e = mixture.epsilon((0..<d).map { Double(v[i * d + $0]) }, alphaBar: a)
      for j in 0..<d { out[i * d + j] = Float(e[j]) }
    }
    return try Tensor(out, shape: x.shape, on: device)
  }
}
