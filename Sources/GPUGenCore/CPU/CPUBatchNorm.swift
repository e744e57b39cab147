// Batch normalisation on the native CPU backend: one task per channel (the channel's N runs of H·W floats),
// the loops in Sources/CPUPeak/cpumath.c (statistics in two passes, sums in 16 float lanes per run added in
// double).
import CPUPeak
import Foundation

extension CPUBackend {
  /// The C loops' activation code: 0 none, 1 ReLU, 2 leaky ReLU.
  private static func code(_ g: BatchNormGeometry) -> Int32 {
    switch g.activation {
    case .relu: return 1
    case .leakyRelu: return 2
    default: return 0
    }
  }

  /// Training-mode batch norm (see `Backend.batchNormTraining`): one task per channel.
  public func batchNormTraining(
    _ x: Buffer, _ y: Buffer, gamma: Buffer?, beta: Buffer?, mean: Buffer, invstd: Buffer,
    runningMean: Buffer?,
    runningVar: Buffer?, momentum: Float, _ g: BatchNormGeometry
  ) throws {
    try g.validate()
    timed(Self.profiling ? "batchNormTraining \(g.n)x\(g.c)x\(g.hw)" : "batchNormTraining") {
      let xp = ptr(x), yp = ptr(y), mp = ptr(mean), sp = ptr(invstd)
      let gp = gamma.map(ptr), bp = beta.map(ptr)
      let running = runningMean.flatMap { m in runningVar.map { (ptr(m), ptr($0)) } }
      let m = g.perChannel, stride = g.c * g.hw, act = Self.code(g)
      // The unbiased variance's factor and the momentum's complement, in float32 as PyTorch's update.
      let unbias = Float(m) / Float(Swift.max(m - 1, 1)), keep = 1 - momentum
      Parallel.forEach(g.c, cost: m * 6) { channels in
        for ch in channels {
          var mu = 0.0, variance = 0.0
          let src = xp + ch * g.hw
          gpugen_bn_stats(src, g.n, g.hw, stride, &mu, &variance)
          let rstd = Float(1 / (variance + Double(g.eps)).squareRoot())
          let meanF = Float(mu)
          let scale = rstd * (gp?[ch] ?? 1)
          gpugen_bn_apply(
            src, yp + ch * g.hw, g.n, g.hw, stride, meanF, scale, bp?[ch] ?? 0, act, g.activationAlpha)
          mp[ch] = meanF
          sp[ch] = rstd
          if let r = running {
            r.0[ch] = r.0[ch] * keep + meanF * momentum
            r.1[ch] = r.1[ch] * keep + Float(variance) * unbias * momentum
          }
        }
      }
    }
  }

  /// Evaluation-mode batch norm (see `Backend.batchNormInference`): one task per channel.
  public func batchNormInference(
    _ x: Buffer, _ y: Buffer, gamma: Buffer?, beta: Buffer?, runningMean: Buffer, runningVar: Buffer,
    _ g: BatchNormGeometry
  ) throws {
    try g.validate()
    timed("batchNormInference") {
      let xp = ptr(x), yp = ptr(y), rm = ptr(runningMean), rv = ptr(runningVar)
      let gp = gamma.map(ptr), bp = beta.map(ptr)
      let stride = g.c * g.hw, act = Self.code(g)
      Parallel.forEach(g.c, cost: g.perChannel * 2) { channels in
        for ch in channels {
          let scale = 1 / (rv[ch] + g.eps).squareRoot() * (gp?[ch] ?? 1)
          gpugen_bn_apply(
            xp + ch * g.hw, yp + ch * g.hw, g.n, g.hw, stride, rm[ch], scale, bp?[ch] ?? 0, act,
            g.activationAlpha)
        }
      }
    }
  }

  /// Batch-norm backward (see `Backend.batchNormBackward`): one task per channel.
  public func batchNormBackward(
    _ x: Buffer, _ y: Buffer?, _ dy: Buffer, gamma: Buffer?, mean: Buffer, invstd: Buffer, dx: Buffer,
    dgamma: Buffer, dbeta: Buffer, training: Bool, _ g: BatchNormGeometry
  ) throws {
    try g.validate()
    guard g.activation == .none || y != nil else {
      throw GPUGenError.invalidArgument("batchNormBackward: a fused activation needs the output")
    }
    timed(Self.profiling ? "batchNormBackward \(g.n)x\(g.c)x\(g.hw)" : "batchNormBackward") {
      let xp = ptr(x), yp = y.map(ptr), gp = ptr(dy), dxp = ptr(dx), mp = ptr(mean), sp = ptr(invstd)
      let gam = gamma.map(ptr), dgp = ptr(dgamma), dbp = ptr(dbeta)
      let stride = g.c * g.hw, act = Self.code(g)
      Parallel.forEach(g.c, cost: g.perChannel * 8) { channels in
        for ch in channels {
          let o = ch * g.hw
          gpugen_bn_backward(
            xp + o, yp.map { $0 + o }, gp + o, dxp + o, g.n, g.hw, stride, mp[ch], sp[ch], gam?[ch] ?? 1,
            training ? 1 : 0, act, g.activationAlpha, dgp + ch, dbp + ch)
        }
      }
    }
  }
}
