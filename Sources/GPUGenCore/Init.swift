// PyTorch's default parameter initialisation, drawn from Philox4x32-10 so that a run is reproducible from its
// seed (docs/TRAINING.md: parameter i draws from stream 20 + i).

/// Parameter initialisation. Values are generated on the host with the Swift Philox and uploaded, so they are
/// bit-identical on every device. Element `e` of a tensor uses word `e mod 4` of the Philox block with
/// counter (e / 4, 0, 0, stream) and key `seed` — the counters of `Tensor.randomNormal` with one sample
/// at step 0.
public enum Init {
  /// The streams of docs/TRAINING.md: parameter `index` (in safetensors-name order) of the model in `slot`
  /// draws from `Streams.parameter(index, slot:)` (stream 20 + index for slot 0).
  public static func stream(parameterIndex index: Int, slot: Int = 0) -> Int {
    Streams.parameter(index, slot: slot)
  }

  /// `count` values uniform in [−bound, bound]: `bound·(2u − 1)` with `u = Philox4x32.uniform(word)` in (0, 1].
  public static func uniformValues(count: Int, bound: Float, seed: UInt64, stream: Int) throws -> [Float] {
    try check(count: count, stream: stream)
    return generate(count: count) { block in
      let w = Philox4x32.block(
        counter: SIMD4(UInt32(block), 0, 0, UInt32(stream)), key: Philox4x32.key(seed: seed))
      return SIMD4(
        bound * (2 * Philox4x32.uniform(w[0]) - 1), bound * (2 * Philox4x32.uniform(w[1]) - 1),
        bound * (2 * Philox4x32.uniform(w[2]) - 1), bound * (2 * Philox4x32.uniform(w[3]) - 1))
    }
  }

  /// `count` standard normals: exactly the values of `Tensor.randomNormal(shape: [1, count], seed:, step: 0,
  /// stream:)` on the native CPU (Box–Muller on Philox words).
  public static func normalValues(count: Int, seed: UInt64, stream: Int) throws -> [Float] {
    try check(count: count, stream: stream)
    return generate(count: count) { block in
      Philox4x32.normals(seed: seed, sample: 0, step: 0, stream: UInt32(stream), block: UInt32(block))
    }
  }

  /// A tensor uniform in [−bound, bound] (see `uniformValues`).
  public static func uniform(shape: [Int], bound: Float, seed: UInt64, stream: Int, on device: Device = .cpu)
    throws -> Tensor
  {
    try Shape.validate(shape)
    guard bound.isFinite && bound >= 0 else {
      throw GPUGenError.invalidArgument("Init.uniform: bound \(bound) must be finite and ≥ 0")
    }
    let values = try uniformValues(count: Shape.count(shape), bound: bound, seed: seed, stream: stream)
    return try Tensor(values, shape: shape, on: device)
  }

  /// A tensor of `mean + std·z` with standard normals z (see `normalValues`).
  public static func normal(
    shape: [Int], mean: Float = 0, std: Float = 1, seed: UInt64, stream: Int, on device: Device = .cpu
  ) throws -> Tensor {
    try Shape.validate(shape)
    var values = try normalValues(count: Shape.count(shape), seed: seed, stream: stream)
    if mean != 0 || std != 1 {
      for i in values.indices { values[i] = mean + std * values[i] }
    }
    return try Tensor(values, shape: shape, on: device)
  }

  /// PyTorch's fan-in of a weight: `shape[1]·∏ shape[2...]` (in-features of a Linear (out, in) weight,
  /// in-channels/groups × kernel size of a Conv2d (out, in/groups, kh, kw) weight).
  public static func fanIn(weightShape shape: [Int]) throws -> Int {
    guard shape.count >= 2 else {
      throw GPUGenError.invalidArgument("Init.fanIn: a weight needs rank ≥ 2, got shape \(shape)")
    }
    return shape.dropFirst().reduce(1, *)
  }

  /// The bound of PyTorch's default Linear/Conv2d initialisation: `kaiming_uniform_(a: √5)` gives
  /// gain·√(3/fan_in) with gain √(2/(1 + 5)), i.e. 1/√fan_in, which is also the bias bound (0 when fan_in is 0).
  public static func defaultBound(fanIn: Int) -> Float {
    fanIn > 0 ? Float(1 / Double(fanIn).squareRoot()) : 0
  }

  /// A parameter's role in its layer, which decides PyTorch's default initialisation.
  public enum Parameter: Sendable, Equatable {
    /// Conv2d / Linear weight: U(−1/√fan_in, 1/√fan_in), fan_in from the weight's shape.
    case weight
    /// Conv2d / Linear bias: U(−1/√fan_in, 1/√fan_in) with the fan-in of the layer's weight.
    case bias(fanIn: Int)
    /// GroupNorm / BatchNorm / LayerNorm weight: ones.
    case normWeight
    /// GroupNorm / BatchNorm / LayerNorm bias: zeros.
    case normBias
    /// Embedding table: N(0, 1).
    case embedding
    /// A conditional norm's (classes, 2·channels) table: γ = 1 in the first `channels` columns, β = 0 in
    /// the rest (drawn from nothing).
    case conditionalNormEmbedding(channels: Int)
  }

  /// A freshly initialised parameter as PyTorch's `reset_parameters` would make it, with Philox draws from
  /// (`seed`, `stream`). Constant parameters draw nothing.
  public static func pytorchDefault(
    _ parameter: Parameter, shape: [Int], seed: UInt64, stream: Int, on device: Device = .cpu
  ) throws -> Tensor {
    switch parameter {
    case .weight:
      return try uniform(
        shape: shape, bound: defaultBound(fanIn: fanIn(weightShape: shape)), seed: seed, stream: stream,
        on: device)
    case .bias(let fanIn):
      return try uniform(
        shape: shape, bound: defaultBound(fanIn: fanIn), seed: seed, stream: stream, on: device)
    case .normWeight:
      return try Tensor.full(1, shape: shape, on: device)
    case .normBias:
      return try Tensor.zeros(shape, on: device)
    case .embedding:
      return try normal(shape: shape, seed: seed, stream: stream, on: device)
    case .conditionalNormEmbedding(let channels):
      guard shape.count == 2, shape[1] == 2 * channels, channels >= 0 else {
        throw GPUGenError.invalidArgument(
          "Init.conditionalNormEmbedding: shape \(shape) is not (classes, 2·\(channels))")
      }
      try Shape.validate(shape)
      let row = [Float](repeating: 1, count: channels) + [Float](repeating: 0, count: channels)
      return try Tensor(Array([[Float]](repeating: row, count: shape[0]).joined()), shape: shape, on: device)
    }
  }

  private static func check(count: Int, stream: Int) throws {
    guard count >= 0 && (count + 3) / 4 <= Int(UInt32.max) + 1 else {
      throw GPUGenError.invalidArgument("Init: \(count) values need more than 2³² Philox blocks")
    }
    guard stream >= 0 && stream <= Int(UInt32.max) else {
      throw GPUGenError.invalidArgument("Init: stream \(stream) is not in 0...\(UInt32.max)")
    }
  }

  /// Fills `count` values from 4-value blocks, in parallel.
  private static func generate(count: Int, _ block: (Int) -> SIMD4<Float>) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { out, initialized in
      let blocks = (count + 3) / 4
      let base = out.baseAddress
      Parallel.forEach(blocks, cost: 64) { range in
        for b in range {
          let v = block(b)
          for e in 0..<Swift.min(4, count - 4 * b) { base![4 * b + e] = v[e] }
        }
      }
      initialized = count
    }
  }
}
