// DiffAugment (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training", NeurIPS 2020):
// random translation and cutout applied to both the real and the generated images the discriminator sees,
// differentiable with respect to the images so the generator trains through them. The semantics follow the
// reference DiffAugment_pytorch.py; the random numbers are Philox draws keyed by (seed, sample, step, stream),
// computed on the host, so an image's augmentation depends on its index only, not on the batch split or the
// device. Built from the engine's differentiable ops (batched GEMMs with 0/1 shift matrices, a mask multiply).
import Foundation

/// A DiffAugment policy. Each draws from its own stream, `stream + streamOffset`.
public enum DiffAugmentPolicy: String, CaseIterable, Sendable {
  /// Shift each image by whole pixels in [−r, r] on each axis (r = ⌊size·0.125 + 0.5⌋), filling with zeros.
  case translation
  /// Zero a (⌊H·0.5 + 0.5⌋ × ⌊W·0.5 + 0.5⌋) box at a random centre in each image, clipped at the border.
  case cutout

  /// What the policy adds to the caller's stream: a call with `stream` s uses streams s ..< s + `allCases.count`.
  public var streamOffset: Int {
    switch self {
    case .translation: return 0
    case .cutout: return 1
    }
  }
}

/// Differentiable augmentations for GAN discriminators (see `DiffAugmentPolicy`).
public enum DiffAugment {
  /// The translation bound as a fraction of the image size (the reference's ratio 1/8).
  public static let translationRatio = 0.125
  /// The cutout side as a fraction of the image size (the reference's ratio 1/2).
  public static let cutoutRatio = 0.5

  /// Reads a comma-separated policy list ("translation,cutout"); "" or "none" is no augmentation.
  public static func policies(parsing text: String) throws -> [DiffAugmentPolicy] {
    let t = text.trimmingCharacters(in: .whitespaces).lowercased()
    if t.isEmpty || t == "none" { return [] }
    let names = t.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    let policies = try names.map { name in
      guard let p = DiffAugmentPolicy(rawValue: name) else {
        let known = DiffAugmentPolicy.allCases.map(\.rawValue).joined(separator: ", ")
        throw ModuleError.invalidArgument("DiffAugment: unknown policy \"\(name)\" (known: \(known))")
      }
      return p
    }
    try checkDistinct(policies)
    return policies
  }

  /// Applies `policies` in order to x (N, C, H, W). Image i's random parameters are Philox draws keyed by
  /// (seed, sample firstSample + i, step, stream + policy.streamOffset), so splitting a batch into calls with
  /// the matching `firstSample` gives the same rows. Differentiable with respect to x.
  public static func apply(
    _ x: Tensor, policies: [DiffAugmentPolicy], seed: UInt64, step: Int, stream: Int, firstSample: Int = 0
  ) throws -> Tensor {
    guard x.rank == 4, x.shape.allSatisfy({ $0 > 0 }) else {
      throw ModuleError.invalidArgument("DiffAugment: the input \(x.shape) is not a non-empty (N, C, H, W)")
    }
    try checkDistinct(policies)
    try checkKey(
      samples: x.shape[0], step: step, stream: stream, firstSample: firstSample, policies: policies)
    var y = x
    for p in policies {
      let s = stream + p.streamOffset
      switch p {
      case .translation:
        let shifts = translations(
          samples: x.shape[0], height: x.shape[2], width: x.shape[3], seed: seed, step: step, stream: s,
          firstSample: firstSample)
        y = try translate(y, shifts)
      case .cutout:
        let boxes = cutouts(
          samples: x.shape[0], height: x.shape[2], width: x.shape[3], seed: seed, step: step, stream: s,
          firstSample: firstSample)
        y = try cut(y, boxes)
      }
    }
    return y
  }

  /// The translation of each image: output pixel (i, j) reads input pixel (i + dy, j + dx) (zero outside),
  /// dy and dx uniform integers in [−r, r] from words 0 and 1 of Philox counter (0, sample, step, stream).
  public static func translations(
    samples: Int, height: Int, width: Int, seed: UInt64, step: Int, stream: Int, firstSample: Int = 0
  ) -> [(dy: Int, dx: Int)] {
    let rh = Int(Double(height) * translationRatio + 0.5), rw = Int(Double(width) * translationRatio + 0.5)
    return (0..<samples).map { i in
      let w = words(seed: seed, sample: firstSample + i, step: step, stream: stream)
      return (integer(w[0], in: -rh...rh), integer(w[1], in: -rw...rw))
    }
  }

  /// The zeroed box of each image as half-open row and column ranges: the reference's square of side
  /// s = ⌊size·0.5 + 0.5⌋ per axis centred at an offset uniform in 0 ..< size + 1 − s mod 2 (words 0 and 1 of
  /// Philox counter (0, sample, step, stream)), starting s/2 before it, clipped at the border.
  public static func cutouts(
    samples: Int, height: Int, width: Int, seed: UInt64, step: Int, stream: Int, firstSample: Int = 0
  ) -> [(rows: Range<Int>, columns: Range<Int>)] {
    func range(_ word: UInt32, _ size: Int) -> Range<Int> {
      let side = Int(Double(size) * cutoutRatio + 0.5)
      guard side > 0 else { return 0..<0 }
      let offset = integer(word, in: 0...(size - side % 2))
      let low = offset - side / 2
      return Swift.max(low, 0)..<Swift.min(low + side, size)
    }
    return (0..<samples).map { i in
      let w = words(seed: seed, sample: firstSample + i, step: step, stream: stream)
      return (range(w[0], height), range(w[1], width))
    }
  }

  // MARK: The ops

  /// Per-image integer shifts as two batched GEMMs with 0/1 matrices (rows: A·X over H with X viewed as
  /// (N, H, C·W); columns: X·B over W with X viewed as (N, C·H, W)); an axis with no shift is skipped.
  static func translate(_ x: Tensor, _ shifts: [(dy: Int, dx: Int)]) throws -> Tensor {
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    var y = x
    if shifts.contains(where: { $0.dy != 0 }) {
      // A[i, k] = 1 where k = i + dy: output row i reads input row i + dy.
      var a = [Float](repeating: 0, count: n * h * h)
      for (b, s) in shifts.enumerated() {
        for i in 0..<h where (0..<h).contains(i + s.dy) { a[(b * h + i) * h + i + s.dy] = 1 }
      }
      let rows = try Tensor(a, shape: [n, h, h], on: x.device)
      let hFirst = try y.permuted([0, 2, 1, 3]).reshaped([n, h, c * w])
      y = try Tensor.gemm(rows, hFirst).reshaped([n, h, c, w]).permuted([0, 2, 1, 3])
    }
    if shifts.contains(where: { $0.dx != 0 }) {
      // B[k, j] = 1 where k = j + dx: output column j reads input column j + dx.
      var b = [Float](repeating: 0, count: n * w * w)
      for (m, s) in shifts.enumerated() {
        for j in 0..<w where (0..<w).contains(j + s.dx) { b[(m * w + j + s.dx) * w + j] = 1 }
      }
      let columns = try Tensor(b, shape: [n, w, w], on: x.device)
      y = try Tensor.gemm(try y.reshaped([n, c * h, w]), columns).reshaped([n, c, h, w])
    }
    return y
  }

  /// x times a per-image (N, 1, H, W) mask that is 0 inside each box and 1 elsewhere.
  static func cut(_ x: Tensor, _ boxes: [(rows: Range<Int>, columns: Range<Int>)]) throws -> Tensor {
    let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
    var mask = [Float](repeating: 1, count: n * h * w)
    for (b, box) in boxes.enumerated() {
      for i in box.rows {
        for j in box.columns { mask[(b * h + i) * w + j] = 0 }
      }
    }
    return try x * Tensor(mask, shape: [n, 1, h, w], on: x.device)
  }

  // MARK: Draws

  /// The four words of Philox counter (0, sample, step, stream) under the seed.
  private static func words(seed: UInt64, sample: Int, step: Int, stream: Int) -> SIMD4<UInt32> {
    Philox4x32.block(
      counter: SIMD4(0, UInt32(sample), UInt32(step), UInt32(stream)), key: Philox4x32.key(seed: seed))
  }

  /// A word to an integer uniform in `range` (multiply-shift: ⌊word·count / 2³²⌋).
  private static func integer(_ word: UInt32, in range: ClosedRange<Int>) -> Int {
    range.lowerBound + Int((UInt64(word) * UInt64(range.count)) >> 32)
  }

  private static func checkDistinct(_ policies: [DiffAugmentPolicy]) throws {
    guard Set(policies).count == policies.count else {
      throw ModuleError.invalidArgument(
        "DiffAugment: policy listed twice in \(policies.map(\.rawValue)) (each draws from one stream)")
    }
  }

  /// Every counter word must fit in 32 bits.
  private static func checkKey(
    samples: Int, step: Int, stream: Int, firstSample: Int, policies: [DiffAugmentPolicy]
  ) throws {
    let limit = Int(UInt32.max)
    guard firstSample >= 0, firstSample + samples - 1 <= limit else {
      throw ModuleError.invalidArgument(
        "DiffAugment: samples \(firstSample)..<\(firstSample + samples) do not fit in 32 bits")
    }
    guard step >= 0, step <= limit else {
      throw ModuleError.invalidArgument("DiffAugment: step \(step) is not in 0...\(limit)")
    }
    let top = stream + (policies.map(\.streamOffset).max() ?? 0)
    guard stream >= 0, top <= limit else {
      throw ModuleError.invalidArgument("DiffAugment: streams \(stream)...\(top) are not in 0...\(limit)")
    }
  }
}
