// Noise on OpenCL: Kernels/noise.cl (Philox4x32-10 + Box–Muller from common.cl).
import COpenCL

extension OpenCLBackend {
  public func randomNormal(
    _ y: Buffer, samples: Int, perSample: Int, firstSample: Int, seed: UInt64, step: Int, stream: Int
  ) throws {
    try philoxKernel(
      "noise_normal", y, samples: samples, perSample: perSample, firstSample: firstSample, seed: seed,
      step: step,
      stream: stream)
  }

  /// Philox uniforms in (0, 1] with the `noise_uniform` kernel (see `Backend.randomUniform`).
  public func randomUniform(
    _ y: Buffer, samples: Int, perSample: Int, firstSample: Int, seed: UInt64, step: Int, stream: Int
  ) throws {
    try philoxKernel(
      "noise_uniform", y, samples: samples, perSample: perSample, firstSample: firstSample, seed: seed,
      step: step, stream: stream)
  }

  /// Launches a noise.cl kernel with the (y, perSample, blocks, firstSample, seed, step, stream) signature:
  /// one work-item per Philox block.
  private func philoxKernel(
    _ name: String, _ y: Buffer, samples: Int, perSample: Int, firstSample: Int, seed: UInt64, step: Int,
    stream: Int
  ) throws {
    let blocks = (perSample + 3) / 4
    if samples == 0 || blocks == 0 { return }
    let key = Philox4x32.key(seed: seed)
    let k = try kernel(name, family: "noise")
    try launch(
      k, name,
      [
        .mem(mem(y)), .i32(Int32(perSample)), .i32(Int32(blocks)), .u32(UInt32(firstSample)), .u32(key[0]),
        .u32(key[1]), .u32(UInt32(step)), .u32(UInt32(stream)),
      ], global: [samples * blocks])
  }

  /// Runs Philox4x32-10 on the device for each (counter, key) pair (the raw words; for tests).
  func philoxRaw(counters: [SIMD4<UInt32>], keys: [SIMD2<UInt32>]) throws -> [SIMD4<UInt32>] {
    precondition(counters.count == keys.count)
    var words: [UInt32] = []
    for (c, k) in zip(counters, keys) { words += [c[0], c[1], c[2], c[3], k[0], k[1]] }
    let out = try runWordKernel("noise_philox_raw", words: words, outCount: 4 * counters.count)
    return stride(from: 0, to: out.count, by: 4).map {
      SIMD4(out[$0].bitPattern, out[$0 + 1].bitPattern, out[$0 + 2].bitPattern, out[$0 + 3].bitPattern)
    }
  }

  /// Box–Muller on the device for each block of four words (the normals; for tests).
  func boxMullerRaw(_ blocks: [SIMD4<UInt32>]) throws -> [SIMD4<Float>] {
    let words = blocks.flatMap { [$0[0], $0[1], $0[2], $0[3]] }
    let out = try runWordKernel("noise_box_muller_raw", words: words, outCount: words.count)
    return stride(from: 0, to: out.count, by: 4).map { SIMD4(out[$0], out[$0 + 1], out[$0 + 2], out[$0 + 3]) }
  }

  /// Uploads 32-bit words (bit patterns in a float buffer), runs `name(in, out)` once per output block
  /// of 4, and returns the output as floats (bit patterns preserved).
  private func runWordKernel(_ name: String, words: [UInt32], outCount: Int) throws -> [Float] {
    let input = try allocate(words.count)
    let output = try allocate(outCount)
    try words.map { Float(bitPattern: $0) }.withUnsafeBufferPointer { try upload($0, to: input) }
    let k = try kernel(name, family: "noise")
    try launch(k, name, [.mem(mem(input)), .mem(mem(output))], global: [outCount / 4])
    return try download(output, count: outCount)
  }
}
