// Noise on the native CPU: the Swift Philox4x32-10 + Box–Muller (Noise/Philox.swift), split across cores.

extension CPUBackend {
  public func randomNormal(
    _ y: Buffer, samples: Int, perSample: Int, firstSample: Int, seed: UInt64, step: Int, stream: Int
  ) throws {
    let blocks = (perSample + 3) / 4
    if samples == 0 || blocks == 0 { return }
    let yp = ptr(y)
    let s = UInt32(step), st = UInt32(stream), first = UInt32(firstSample)
    // y: (samples, perSample); one Philox block per 4 consecutive elements of a sample.
    Parallel.forEach(samples * blocks, cost: 64) { range in
      for b in range {
        let i = b / blocks, j = b % blocks
        let z = Philox4x32.normals(
          seed: seed, sample: first &+ UInt32(i), step: s, stream: st, block: UInt32(j))
        let p = yp + i * perSample + 4 * j
        for e in 0..<Swift.min(4, perSample - 4 * j) { p[e] = z[e] }
      }
    }
  }

  /// Philox uniforms in (0, 1] (see `Backend.randomUniform`).
  public func randomUniform(
    _ y: Buffer, samples: Int, perSample: Int, firstSample: Int, seed: UInt64, step: Int, stream: Int
  ) throws {
    let blocks = (perSample + 3) / 4
    if samples == 0 || blocks == 0 { return }
    let yp = ptr(y)
    let key = Philox4x32.key(seed: seed)
    let s = UInt32(step), st = UInt32(stream), first = UInt32(firstSample)
    Parallel.forEach(samples * blocks, cost: 32) { range in
      for b in range {
        let i = b / blocks, j = b % blocks
        let w = Philox4x32.block(counter: SIMD4(UInt32(j), first &+ UInt32(i), s, st), key: key)
        let p = yp + i * perSample + 4 * j
        for e in 0..<Swift.min(4, perSample - 4 * j) { p[e] = Philox4x32.uniform(w[e]) }
      }
    }
  }
}
