// Optimizer step, EMA update and sum of squares on the native CPU: the formulas of Kernels/optim.cl in the
// same float operations (`addingProduct` where the kernel uses `fma`), split across cores.

import CPUPeak

extension CPUBackend {
  public func optimizerStep(
    _ param: Buffer, _ grad: Buffer, _ state1: Buffer?, _ state2: Buffer?, count: Int, update: OptimizerUpdate
  ) throws {
    if count == 0 { return }
    let (coef, coef2, flags) = update.kernelArguments
    let pp = ptr(param), gp = ptr(grad)
    let scale = coef[0], wd = coef[1], negLR = coef[3]
    let l2 = flags & OptimizerUpdate.flagL2 != 0
    switch update.kind {
    case .sgd:
      let momentum = coef[4], keep = coef[5]
      let first = flags & OptimizerUpdate.flagFirst != 0
      let nesterov = flags & OptimizerUpdate.flagNesterov != 0
      let bp = flags & OptimizerUpdate.flagMomentum != 0 ? state1.map(ptr) : nil
      timed("optimizerStep") {
        Parallel.forEach(count, cost: 8) { range in
          for i in range {
            let p = pp[i]
            var g = gp[i] * scale
            if l2 { g = g.addingProduct(p, wd) }
            if let bp {
              let b = first ? g : (bp[i] * momentum).addingProduct(g, keep)
              bp[i] = b
              g = nesterov ? g.addingProduct(b, momentum) : b
            }
            pp[i] = p.addingProduct(g, negLR)
          }
        }
      }
    case .adam, .adamW:
      guard let state1, let state2 else {
        throw GPUGenError.invalidArgument("optimizerStep: Adam needs both state buffers")
      }
      let mp = ptr(state1), vp = ptr(state2)
      let decayFactor = coef[2], w = coef[4], beta2 = coef[5], c2 = coef[6], bc2Sqrt = coef[7]
      let eps = coef2[0], wMinus1 = coef2[1]
      let decoupled = flags & OptimizerUpdate.flagDecoupled != 0
      let small = flags & OptimizerUpdate.flagLerpSmall != 0
      // The C loop (Sources/CPUPeak/cpumath.c) runs these operations on whole vectors:
      // p ← p·decay (AdamW); g ← g·scale (+ p·wd, L2); m ← m + w·(g − m) or g + (w − 1)·(g − m);
      // v ← v·β₂ + c₂·g²; p ← p + (−lr·m) / (√v / √(1 − β₂ᵗ) + ε).
      let cflags = Int32((decoupled ? 1 : 0) | (l2 ? 2 : 0) | (small ? 4 : 0))
      timed("optimizerStep") {
        Parallel.forEach(count, cost: 16) { r in
          let o = r.lowerBound
          gpugen_adam(
            pp + o, gp + o, mp + o, vp + o, r.count, scale, decayFactor, wd, w, wMinus1, beta2, c2, bc2Sqrt,
            eps,
            negLR, cflags)
        }
      }
    }
  }

  public func emaUpdate(_ ema: Buffer, _ param: Buffer, count: Int, decay: Double) throws {
    let ep = ptr(ema), pp = ptr(param)
    let w = Float(1 - decay)
    timed("emaUpdate") {
      Parallel.forEach(count, cost: 4) { r in gpugen_ema(ep + r.lowerBound, pp + r.lowerBound, r.count, w) }
    }
  }

  /// Blocks of 256 elements are summed in eight float lanes of 32 squares each and a pairwise tree over the
  /// lanes; the block sums are added in Double, in a fixed order (the result does not depend on the number of
  /// cores).
  public func sumOfSquares(_ x: Buffer, _ y: Buffer, count: Int, slot: Int) throws {
    let xp = ptr(x)
    let block = 256, superBlock = 65_536
    let supers = (count + superBlock - 1) / superBlock
    var sums = [Double](repeating: 0, count: supers)
    timed("sumOfSquares") {
      sums.withUnsafeMutableBufferPointer { sp in
        Parallel.forEach(supers, cost: superBlock) { range in
          for s in range {
            var total = 0.0
            var lo = s * superBlock
            let end = Swift.min(count, lo + superBlock)
            while lo < end {
              total += Double(Self.blockSumOfSquares(xp + lo, Swift.min(block, end - lo)))
              lo += block
            }
            sp[s] = total
          }
        }
      }
    }
    ptr(y)[slot] = Float(sums.reduce(0, +))
  }

  @inline(__always)
  private static func blockSumOfSquares(_ x: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
    var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
    var s4: Float = 0, s5: Float = 0, s6: Float = 0, s7: Float = 0
    var j = 0
    while j + 8 <= n {
      s0 = s0.addingProduct(x[j], x[j])
      s1 = s1.addingProduct(x[j + 1], x[j + 1])
      s2 = s2.addingProduct(x[j + 2], x[j + 2])
      s3 = s3.addingProduct(x[j + 3], x[j + 3])
      s4 = s4.addingProduct(x[j + 4], x[j + 4])
      s5 = s5.addingProduct(x[j + 5], x[j + 5])
      s6 = s6.addingProduct(x[j + 6], x[j + 6])
      s7 = s7.addingProduct(x[j + 7], x[j + 7])
      j += 8
    }
    while j < n {
      s0 = s0.addingProduct(x[j], x[j])
      j += 1
    }
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
  }
}
