// Noise on the native CPU: the Swift Philox4x32-10 + Box–Muller (Noise/Philox.swift), split across cores.

extension CPUBackend {
  public func randomNormal(
    _ y: Buffer, samples: Int, perSample: Int, firstSample: Int, seed: UInt64, step: Int, stream: Int
  ) throws {
    fillBlocks(y, samples: samples, perSample: perSample, firstSample: firstSample, cost: 64) { i, j in
      Philox4x32.normals(seed: seed, sample: i, step: UInt32(step), stream: UInt32(stream), block: j)
    }
  }

  /// Philox uniforms in (0, 1] (see `Backend.randomUniform`).
  public func randomUniform(
    _ y: Buffer, samples: Int, perSample: Int, firstSample: Int, seed: UInt64, step: Int, stream: Int
  ) throws {
    let key = Philox4x32.key(seed: seed)
    fillBlocks(y, samples: samples, perSample: perSample, firstSample: firstSample, cost: 32) { i, j in
      let w = Philox4x32.block(counter: SIMD4(j, i, UInt32(step), UInt32(stream)), key: key)
      return SIMD4(
        Philox4x32.uniform(w[0]), Philox4x32.uniform(w[1]), Philox4x32.uniform(w[2]), Philox4x32.uniform(w[3])
      )
    }
  }

  /// y: (samples, perSample); one Philox block per 4 consecutive elements of a sample: `block(sample, j)`
  /// gives elements 4j..<4j+4 of row `sample − firstSample`.
  private func fillBlocks(
    _ y: Buffer, samples: Int, perSample: Int, firstSample: Int, cost: Int,
    _ block: @escaping (_ sample: UInt32, _ j: UInt32) -> SIMD4<Float>
  ) {
    let blocks = (perSample + 3) / 4
    if samples == 0 || blocks == 0 { return }
    let yp = ptr(y)
    let first = UInt32(firstSample)
    Parallel.forEach(samples * blocks, cost: cost) { range in
      for b in range {
        let i = b / blocks, j = b % blocks
        let z = block(first &+ UInt32(i), UInt32(j))
        let p = yp + i * perSample + 4 * j
        for e in 0..<Swift.min(4, perSample - 4 * j) { p[e] = z[e] }
      }
    }
  }
}
