// The fused sampler update on the native CPU backend.

extension CPUBackend {
  public func samplerStep(
    _ x: Buffer, _ m: Buffer, prev: Buffer?, older: [Buffer], out: Buffer, aux: Buffer?,
    thresholdScales: Buffer?,
    update u: SamplerUpdate,
    samples: Int,
    perSample: Int, firstSample: Int, seed: UInt64, step: Int, stream: Int
  ) throws {
    let xp = ptr(x), mp = ptr(m), pp = prev.map(ptr), op = ptr(out), ap = aux.map(ptr)
    let p2 = u.historyDepth >= 2 ? ptr(older[0]) : nil, p3 = u.historyDepth >= 3 ? ptr(older[1]) : nil
    let (ax, am, ex, em) = (Float(u.ax), Float(u.am), Float(u.ex), Float(u.em))
    let (cx, c0, ce, cp, cz) = (Float(u.cx), Float(u.c0), Float(u.ce), Float(u.cp), Float(u.cz))
    let (cq, cr) = (Float(u.cq), Float(u.cr))
    let (dx, d0, de) = (Float(u.dx), Float(u.d0), Float(u.de))
    let clip = u.clipRange.map(Float.init), sp = thresholdScales.map(ptr)
    let blocks = (perSample + 3) / 4
    Parallel.forEach(samples * blocks, cost: 64) { range in
      for g in range {
        let i = g / blocks, j = g % blocks
        let z: SIMD4<Float> =
          cz != 0
          ? Philox4x32.normals(
            seed: seed, sample: UInt32(truncatingIfNeeded: firstSample + i),
            step: UInt32(truncatingIfNeeded: step),
            stream: UInt32(truncatingIfNeeded: stream), block: UInt32(j)) : .zero
        let base = i * perSample + 4 * j
        for e in 0..<Swift.min(4, perSample - 4 * j) {
          let k = base + e
          let xv = xp[k], mv = mp[k]
          var x0 = ax * xv + am * mv
          if let sp {
            let s = sp[i]
            x0 = Swift.min(Swift.max(x0, -s), s) / s
          } else if let r = clip {
            x0 = Swift.min(Swift.max(x0, -r), r)
          }
          let eps = ex * xv + em * mv
          var o = cx * xv + c0 * x0 + ce * eps + cz * z[e]
          if let pp { o += cp * pp[k] }
          if let p2 { o += cq * p2[k] }
          if let p3 { o += cr * p3[k] }
          op[k] = o
          if let ap { ap[k] = dx * xv + d0 * x0 + de * eps }
        }
      }
    }
  }
}
