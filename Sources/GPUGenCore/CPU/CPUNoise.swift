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
}
