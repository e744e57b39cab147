// Reproducible Gaussian noise: Philox4x32-10 keyed by the seed, counted by (block, sample, step, stream).

/// Checks the arguments of a noise draw (`Tensor.randomNormal`, `Tensor.samplerStep`): every counter word
/// must fit in 32 bits. Backends trust their callers, as the protocol documents.
func checkNoiseArguments(samples: Int, perSample: Int, firstSample: Int, step: Int, stream: Int) throws {
  let limit = Int(UInt32.max)
  func check(_ ok: Bool, _ what: String) throws {
    if !ok { throw GPUGenError.invalidArgument("randomNormal: \(what)") }
  }
  try check(samples >= 0 && perSample >= 0, "negative size (\(samples) samples of \(perSample))")
  try check(
    firstSample >= 0 && firstSample <= limit && (samples == 0 || firstSample + samples - 1 <= limit),
    "samples \(firstSample)..<\(firstSample + samples) do not fit in 32 bits")
  try check(perSample <= Int(Int32.max), "\(perSample) elements per sample is more than 2³¹ − 1")
  try check(step >= 0 && step <= limit, "step \(step) is not in 0...\(limit)")
  try check(stream >= 0 && stream <= limit, "stream \(stream) is not in 0...\(limit)")
}

extension Tensor {
  /// Standard normal noise of `shape`, whose axis 0 is the sample axis: sample `firstSample + i` gets
  /// the same values whatever the batch size or device (within float tolerance), a function of
  /// (seed, sample, step, stream) only. Use `stream` to draw independent noises for the same step.
  public static func randomNormal(
    shape: [Int], seed: UInt64, step: Int = 0, stream: Int = 0, firstSample: Int = 0, on device: Device = .cpu
  ) throws -> Tensor {
    try philoxDraw(
      "randomNormal", shape: shape, firstSample: firstSample, step: step, stream: stream, on: device
    ) {
      try device.backend.randomNormal(
        $0, samples: $1, perSample: $2, firstSample: firstSample, seed: seed, step: step, stream: stream)
    }
  }

  /// Uniform noise in (0, 1] of `shape` (axis 0 is the sample axis), keyed like `randomNormal`: element 4j + e
  /// of sample i is `Philox4x32.uniform` of word e of the block with counter (j, firstSample + i, step, stream).
  /// Bit-identical on every device.
  public static func randomUniform(
    shape: [Int], seed: UInt64, step: Int = 0, stream: Int = 0, firstSample: Int = 0, on device: Device = .cpu
  ) throws -> Tensor {
    try philoxDraw(
      "randomUniform", shape: shape, firstSample: firstSample, step: step, stream: stream, on: device
    ) {
      try device.backend.randomUniform(
        $0, samples: $1, perSample: $2, firstSample: firstSample, seed: seed, step: step, stream: stream)
    }
  }

  /// Checks a draw's counters and fills a new tensor of `shape` with `fill(buffer, samples, perSample)`.
  private static func philoxDraw(
    _ op: String, shape: [Int], firstSample: Int, step: Int, stream: Int, on device: Device,
    _ fill: (Buffer, Int, Int) throws -> Void
  ) throws -> Tensor {
    guard let samples = shape.first else {
      throw GPUGenError.invalidArgument("\(op): the shape needs a sample axis (rank ≥ 1), got []")
    }
    let perSample = Shape.count(Array(shape.dropFirst()))
    try checkNoiseArguments(
      samples: samples, perSample: perSample, firstSample: firstSample, step: step, stream: stream)
    let y = try Tensor(uninitialized: shape, on: device)
    try fill(y.buffer, samples, perSample)
    return y
  }
}
