// Optimizers, gradient clipping, learning-rate schedules, EMA and initialisation against PyTorch/diffusers
// (Fixtures/optim/optim.json, written by Fixtures/optim/make_optim_fixture.py), on every device.
import Foundation
import XCTest

@testable import GPUGenCore

/// The fixture written by make_optim_fixture.py.
struct OptimFixture: Decodable {
  struct Config: Decodable {
    var kind: String
    var momentum: Double?
    var dampening: Double?
    var nesterov: Bool?
    var beta1: Double?
    var beta2: Double?
    var eps: Double?
    var weightDecay: Double?

    var optimizer: OptimizerConfig {
      switch kind {
      case "sgd":
        return .sgd(
          momentum: momentum ?? 0, dampening: dampening ?? 0, nesterov: nesterov ?? false,
          weightDecay: weightDecay ?? 0)
      case "adam":
        return .adam(beta1: beta1!, beta2: beta2!, eps: eps!, weightDecay: weightDecay ?? 0)
      default:
        return .adamW(beta1: beta1!, beta2: beta2!, eps: eps!, weightDecay: weightDecay ?? 0)
      }
    }
  }
  struct Case: Decodable {
    var name: String
    var config: Config
    var params: [[Double]]
    var state: [String: [Double]]
    var clip: Double?
    var norms: [Double]?
    var scales: [Double]?
  }
  struct Clip: Decodable {
    var maxNorm: Double
    var shapes: [[Int]]
    var grads: [[Double]]
    var norm: Double
    var scale: Double
    var clipped: [[Double]]
  }
  struct Schedule: Decodable {
    var kind: String
    var base: Double
    var warmup: Int
    var total: Int
    var steps: [Int]
    var values: [Double]
  }
  struct EMADecay: Decodable {
    var decay: Double
    var minDecay: Double
    var updateAfterStep: Int
    var useEmaWarmup: Bool
    var invGamma: Double
    var power: Double
    var steps: [Int]
    var decays: [Double]
  }
  struct EMARun: Decodable {
    var decay: Double
    var params: [[Double]]
    var decays: [Double]
    var shadows: [[Double]]
  }
  struct InitBound: Decodable {
    var name: String
    var weightShape: [Int]
    var fanIn: Int
    var weightBound: Double
    var biasBound: Double
  }

  var param: [Double]
  var grads: [[Double]]
  var lrs: [Double]
  var optimizers: [Case]
  var clip: [Clip]
  var lrSchedules: [Schedule]
  var emaDecay: [EMADecay]
  var emaRun: EMARun
  var `init`: [InitBound]

  static func load() throws -> OptimFixture {
    let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/optim/optim", withExtension: "json"))
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    return try decoder.decode(OptimFixture.self, from: Data(contentsOf: url))
  }
}

extension Array where Element == Double {
  var floats: [Float] { map { Float($0) } }
}

final class OptimTests: XCTestCase {
  /// PyTorch parity: 1e-6 relative (the fixture's values are O(0.1..10), so atol only covers exact zeros).
  let rtol = 1e-6, atol = 1e-9

  func testOptimizersMatchPyTorchOnEveryDevice() throws {
    let f = try OptimFixture.load()
    XCTAssertEqual(f.optimizers.count, 8)
    for device in allDevices() {
      for c in f.optimizers {
        let what = "\(c.name) on \(device)"
        let p = try Tensor(f.param.floats, shape: [f.param.count], on: device)
        let opt = try Optimizer(parameters: [p], config: c.config.optimizer)
        for s in 0..<f.grads.count {
          let g = try Tensor(f.grads[s].floats, shape: [f.param.count], on: device)
          var scale: Float = 1
          if let clip = c.clip {
            let r = try Optimizer.clipGradNorm(grads: [g], maxNorm: Float(clip))
            assertClose([r.norm], [c.norms![s]], rtol: rtol, atol: 0, "\(what): norm at step \(s)")
            assertClose([r.scale], [c.scales![s]], rtol: rtol, atol: 0, "\(what): scale at step \(s)")
            // Step with torch's own clip factor: its float32 norm can be an ulp away from the exact one
            // (which clipGradNorm rounds to), and exp_avg's cancellations would amplify that ulp.
            scale = Float(c.scales![s])
          }
          try opt.step(grads: [g], lr: Float(f.lrs[s]), gradScale: scale)
          XCTAssertEqual(opt.stepCount, s + 1)
          assertClose(try p.toArray(), c.params[s], rtol: rtol, atol: atol, "\(what): parameter at step \(s)")
        }
        let (state, step) = try opt.exportState()
        XCTAssertEqual(step, f.grads.count)
        XCTAssertEqual(Set(state.keys), Set(c.state.keys.map { "\($0).0" }), what)
        for (key, want) in c.state {
          let got = try XCTUnwrap(state["\(key).0"], "\(what): \(key)")
          assertClose(try got.toArray(), want, rtol: rtol, atol: atol, "\(what): \(key)")
        }
      }
    }
  }

  func testClipGradNormMatchesTorchAndScalesThroughTheStep() throws {
    let f = try OptimFixture.load()
    for device in allDevices() {
      for c in f.clip {
        let what = "max_norm \(c.maxNorm) on \(device)"
        let grads = try zip(c.grads, c.shapes).map { try Tensor($0.floats, shape: $1, on: device) }
        let (norm, scale) = try Optimizer.clipGradNorm(grads: grads, maxNorm: Float(c.maxNorm))
        assertClose([norm], [c.norm], rtol: rtol, atol: 0, "\(what): norm")
        assertClose([scale], [c.scale], rtol: rtol, atol: 0, "\(what): scale")
        // Plain SGD with lr 1 from zeros leaves p = −gradScale·g: torch's clipped gradients, negated.
        let params = try c.shapes.map { try Tensor.zeros($0, on: device) }
        try Optimizer(parameters: params, config: .sgd()).step(grads: grads, lr: 1, gradScale: scale)
        for (p, want) in zip(params, c.clipped) {
          assertClose(try p.toArray(), want.map { -$0 }, rtol: rtol, atol: 0, "\(what): clipped gradient")
        }
      }
      XCTAssertTrue(try Optimizer.clipGradNorm(grads: [], maxNorm: 1) == (0, 1))
      let nan = try Tensor([1, .nan, 2], shape: [3], on: device)
      XCTAssertTrue(try Optimizer.clipGradNorm(grads: [nan], maxNorm: 1).scale.isNaN, "NaN norm on \(device)")
    }
  }

  func testSumOfSquaresIsAccurateOnEveryDevice() throws {
    // Sizes around the OpenCL one-group limit (8 per work-item) and the CPU blocks, plus a large one.
    for device in allDevices() {
      for (k, n) in [1, 37, 511, 513, 2048, 2049, 65_537, 1_000_003].enumerated() {
        let values = randomValues(n, seed: UInt64(100 + k), in: -3...3)
        let x = try Tensor(values, shape: [n], on: device)
        let want = values.reduce(0.0) { $0 + Double($1) * Double($1) }
        assertClose(try x.sumOfSquares().toArray(), [want], rtol: 1e-6, atol: 0, "n \(n) on \(device)")
      }
      // Slots: each tensor writes its own element of one buffer, the others are untouched.
      let y = try Tensor([7, 7, 7], shape: [3], on: device)
      let a = try Tensor([3, 4], shape: [2], on: device)
      try device.backend.sumOfSquares(a.buffer, y.buffer, count: 2, slot: 1)
      XCTAssertEqual(try y.toArray(), [7, 25, 7], "slots on \(device)")
      let b = try Tensor([2], shape: [1], on: device)
      try device.backend.sumOfSquares(b.buffer, y.buffer, count: 1)
      XCTAssertEqual(try y.toArray(), [4, 25, 7], "slot 0 on \(device)")
    }
  }

  /// The element update in PyTorch's float operations, written out independently of the kernels.
  func reference(
    _ u: OptimizerUpdate, p p0: [Float], g g0: [Float], s1: [Float], s2: [Float]
  ) -> (p: [Float], s1: [Float], s2: [Float]) {
    var p = p0, s1 = s1, s2 = s2
    for i in p.indices {
      var g = g0[i] * u.gradScale
      switch u.kind {
      case .sgd:
        if u.weightDecay != 0 { g = g.addingProduct(p[i], Float(u.weightDecay)) }  // grad.add(p, alpha=wd)
        if u.momentum != 0 {
          // buf.mul_(momentum).add_(grad, alpha=1 - dampening), or a clone of grad on the first step.
          s1[i] = u.firstStep ? g : (s1[i] * Float(u.momentum)).addingProduct(g, Float(1 - u.dampening))
          g = u.nesterov ? g.addingProduct(s1[i], Float(u.momentum)) : s1[i]
        }
        p[i] = p[i].addingProduct(g, Float(-u.lr))  // param.add_(grad, alpha=-lr)
      case .adam, .adamW:
        if u.weightDecay != 0 {
          if u.kind == .adamW {
            p[i] *= Float(1 - u.lr * u.weightDecay)
          } else {
            g = g.addingProduct(p[i], Float(u.weightDecay))
          }
        }
        let w = Float(1 - u.beta1)  // exp_avg.lerp_(grad, 1 - beta1)
        s1[i] = w < 0.5 ? s1[i].addingProduct(w, g - s1[i]) : g.addingProduct(w - 1, g - s1[i])
        s2[i] = (s2[i] * Float(u.beta2)).addingProduct(Float(1 - u.beta2) * g, g)  // mul_, addcmul_
        // bias_correction = 1 - beta ** step (every Adam update of the test is step 3).
        let bc1 = 1 - Foundation.pow(u.beta1, 3), bc2 = 1 - Foundation.pow(u.beta2, 3)
        // denom = (exp_avg_sq.sqrt() / bias_correction2 ** 0.5).add_(eps)
        let denom = s2[i].squareRoot() / Float(Foundation.pow(bc2, 0.5)) + Float(u.eps)
        p[i] += Float(-(u.lr / bc1)) * s1[i] / denom  // param.addcdiv_(exp_avg, denom, value=-step_size)
      }
    }
    return (p, s1, s2)
  }

  func testFusedStepMatchesTheFloatReferenceOnLargeTensors() throws {
    // 100 003 elements: several CPU chunks and an OpenCL global size that is not a multiple of 64.
    let n = 100_003
    let p = randomValues(n, seed: 1), g = randomValues(n, seed: 2, in: -2...2)
    let m = randomValues(n, seed: 3, in: -0.1...0.1), v = randomValues(n, seed: 4, in: 0...0.01)
    let updates: [OptimizerUpdate] = [
      .sgd(lr: 0.1, step: 3),
      .sgd(lr: 0.1, momentum: 0.9, weightDecay: 0.01, step: 1, gradScale: 0.5),
      .sgd(lr: 0.1, momentum: 0.9, dampening: 0.3, weightDecay: 0.01, step: 3),
      .sgd(lr: 0.1, momentum: 0.8, nesterov: true, step: 3, gradScale: 0.25),
      .adam(lr: 0.01, weightDecay: 0.1, decoupled: false, step: 3, gradScale: 0.75),
      .adam(lr: 0.01, beta1: 0.2, beta2: 0.9, eps: 1e-6, decoupled: false, step: 3),
      .adam(lr: 0.01, weightDecay: 0.1, decoupled: true, step: 3),
    ]
    for device in allDevices() {
      for u in updates {
        let what = "\(u.kind) momentum \(u.momentum) wd \(u.weightDecay) on \(device)"
        let pt = try Tensor(p, shape: [n], on: device), gt = try Tensor(g, shape: [n], on: device)
        let s1 = try Tensor(m, shape: [n], on: device), s2 = try Tensor(v, shape: [n], on: device)
        try Tensor.optimizerStep(param: pt, grad: gt, state1: s1, state2: s2, update: u)
        let want = reference(u, p: p, g: g, s1: m, s2: v)
        // The CPU runs the same float operations; OpenCL's sqrt and division may differ by an ulp or two.
        let tol = device.isOpenCL ? 1e-6 : 0
        assertClose(try pt.toArray(), want.p.map(Double.init), rtol: tol, atol: tol * 1e-3, "\(what): param")
        if u.usesState1 {
          assertClose(
            try s1.toArray(), want.s1.map(Double.init), rtol: tol, atol: tol * 1e-3, "\(what): state1")
        }
        XCTAssertEqual(try gt.toArray(), g, "\(what): the gradient is read-only")
        if u.usesState2 {
          assertClose(
            try s2.toArray(), want.s2.map(Double.init), rtol: tol, atol: tol * 1e-3, "\(what): state2")
        } else {
          XCTAssertEqual(try s2.toArray(), v, "\(what): unused state untouched")
        }
      }
    }
  }

  func testInvalidOptimizerArgumentsThrowAndLeaveTheParametersAlone() throws {
    let p = try Tensor([1, 2, 3], shape: [3])
    XCTAssertThrowsError(try Optimizer(parameters: [p], config: .sgd(momentum: 0, nesterov: true)))
    XCTAssertThrowsError(try Optimizer(parameters: [p], config: .adam(beta1: 1)))
    let opt = try Optimizer(parameters: [p, p], config: .adamW())
    let g = try Tensor([1, 1, 1], shape: [3]), bad = try Tensor([1, 1], shape: [2])
    XCTAssertThrowsError(try opt.step(grads: [g, bad], lr: 0.1))
    XCTAssertThrowsError(try opt.step(grads: [g], lr: 0.1))
    XCTAssertThrowsError(try opt.step(grads: [g, g], lr: -1))
    XCTAssertEqual(try p.toArray(), [1, 2, 3])
    XCTAssertEqual(opt.stepCount, 0)
  }

  func testStateExportImportReproducesTheNextStepBitwise() throws {
    let shapes = [[5, 7], [3], [1, 1, 9]]
    let names = ["down.weight", "down.bias", "mid.norm"]
    let configs: [OptimizerConfig] = [
      .adamW(weightDecay: 0.05), .adam(weightDecay: 0.01), .sgd(momentum: 0.9, nesterov: true),
      .sgd(momentum: 0.5, dampening: 0.2, weightDecay: 0.1), .sgd(),
    ]
    func grads(_ step: Int, on device: Device) throws -> [Tensor] {
      try shapes.enumerated().map { i, s in
        try Tensor(randomValues(Shape.count(s), seed: UInt64(10 * step + i)), shape: s, on: device)
      }
    }
    for device in allDevices() {
      for config in configs {
        let what = "\(config) on \(device)"
        let params = try shapes.enumerated().map { i, s in
          try Tensor(randomValues(Shape.count(s), seed: UInt64(50 + i)), shape: s, on: device)
        }
        let a = try Optimizer(parameters: params, config: config)
        for s in 0..<3 { try a.step(grads: try grads(s, on: device), lr: 0.01 * Float(s + 1)) }
        let (state, step) = try a.exportState(names: names)
        XCTAssertEqual(step, 3)
        XCTAssertEqual(
          Set(state.keys), Set(config.stateNames.flatMap { k in names.map { "\(k).\($0)" } }), what)
        // Through the host (as a checkpoint file would), into an optimizer over copies of the parameters.
        let saved = try state.mapValues { try Tensor(try $0.toArray(), shape: $0.shape, on: .cpu) }
        let copies = try params.map { try Tensor(try $0.toArray(), shape: $0.shape, on: device) }
        let b = try Optimizer(parameters: copies, config: config)
        try b.importState(saved, step: step, names: names)
        XCTAssertEqual(b.stepCount, 3)
        let g = try grads(3, on: device)
        try a.step(grads: g, lr: 0.02, gradScale: 0.7)
        try b.step(grads: g, lr: 0.02, gradScale: 0.7)
        for i in params.indices {
          XCTAssertEqual(try params[i].toArray(), try copies[i].toArray(), "\(what): parameter \(i)")
        }
        let (sa, _) = try a.exportState(names: names), (sb, _) = try b.exportState(names: names)
        for (key, t) in sa { XCTAssertEqual(try t.toArray(), try sb[key]?.toArray(), "\(what): \(key)") }
        // The export is a snapshot: the step above did not change it.
        if let key = state.keys.first {
          XCTAssertEqual(try state[key]!.toArray(), try saved[key]!.toArray(), "\(what): export is a copy")
        }
        if let key = state.keys.first {
          var missing = saved
          missing[key] = nil
          XCTAssertThrowsError(try b.importState(missing, step: 3, names: names), what)
          XCTAssertEqual(b.stepCount, 4, "\(what): a failed import changes nothing")
        }
      }
    }
  }

  func testLearningRateSchedulesMatchDiffusers() throws {
    let f = try OptimFixture.load()
    XCTAssertEqual(f.lrSchedules.count, 4)
    for c in f.lrSchedules {
      let lr = LearningRate(
        base: c.base, warmupSteps: c.warmup,
        schedule: c.kind == "constant" ? .constant : .cosine(totalSteps: c.total))
      for (s, want) in zip(c.steps, c.values) {
        XCTAssertEqual(c.base * lr.factor(at: s), want, "\(c.kind) warmup \(c.warmup) at step \(s)")
        XCTAssertEqual(lr.value(at: s), Float(want), "\(c.kind) warmup \(c.warmup) at step \(s)")
      }
    }
    // A floor: the cosine runs from base to minLR after the warmup.
    let floored = LearningRate(base: 1e-3, warmupSteps: 10, schedule: .cosine(totalSteps: 110, minLR: 1e-4))
    XCTAssertEqual(floored.value(at: 5), Float(5e-4))
    XCTAssertEqual(floored.value(at: 10), Float(1e-3))
    XCTAssertEqual(Double(floored.value(at: 60)), 5.5e-4, accuracy: 1e-10)
    XCTAssertEqual(floored.value(at: 110), Float(1e-4))
  }

  func testEMADecayMatchesDiffusers() throws {
    let f = try OptimFixture.load()
    XCTAssertEqual(f.emaDecay.count, 4)
    for c in f.emaDecay {
      let ema = try EMA(
        parameters: [], maxDecay: c.decay, minDecay: c.minDecay, updateAfterStep: c.updateAfterStep,
        useWarmup: c.useEmaWarmup, invGamma: c.invGamma, power: c.power)
      for (s, want) in zip(c.steps, c.decays) {
        XCTAssertEqual(ema.decay(at: s), want, "warmup \(c.useEmaWarmup) after \(c.updateAfterStep) at \(s)")
      }
    }
  }

  func testEMAStepMatchesDiffusersOnEveryDevice() throws {
    let f = try OptimFixture.load()
    let n = f.param.count
    for device in allDevices() {
      let ema = try EMA(
        parameters: [try Tensor(f.param.floats, shape: [n], on: device)], maxDecay: f.emaRun.decay)
      for s in 0..<f.emaRun.params.count {
        let d = try ema.step(parameters: [try Tensor(f.emaRun.params[s].floats, shape: [n], on: device)])
        XCTAssertEqual(d, f.emaRun.decays[s], "decay at step \(s)")
        XCTAssertEqual(ema.optimizationStep, s + 1)
        assertClose(
          try ema.shadow[0].toArray(), f.emaRun.shadows[s], rtol: rtol, atol: atol,
          "shadow at \(s) on \(device)")
      }
      // Restoring the shadow and the step count continues identically.
      let copy = try EMA(parameters: [try Tensor.zeros([n], on: device)], maxDecay: f.emaRun.decay)
      try copy.importState(shadow: [try ema.shadow[0].to(.cpu)], optimizationStep: ema.optimizationStep)
      let next = try Tensor(f.param.floats, shape: [n], on: device)
      XCTAssertEqual(try copy.step(parameters: [next]), try ema.step(parameters: [next]))
      XCTAssertEqual(try copy.shadow[0].toArray(), try ema.shadow[0].toArray(), "restored EMA on \(device)")
    }
  }

  func testDefaultInitBoundsMatchPyTorch() throws {
    let f = try OptimFixture.load()
    for c in f.`init` {
      XCTAssertEqual(try Init.fanIn(weightShape: c.weightShape), c.fanIn, c.name)
      let bound = Init.defaultBound(fanIn: c.fanIn)
      assertClose([bound], [c.weightBound], rtol: 1e-7, atol: 0, "\(c.name) weight bound")
      assertClose([bound], [c.biasBound], rtol: 1e-7, atol: 0, "\(c.name) bias bound")
      let w = try Init.pytorchDefault(.weight, shape: c.weightShape, seed: 3, stream: 20).toArray()
      XCTAssertTrue(w.allSatisfy { Swift.abs($0) <= bound }, c.name)
      let b = try Init.pytorchDefault(.bias(fanIn: c.fanIn), shape: [c.weightShape[0]], seed: 3, stream: 21)
      XCTAssertTrue(try b.toArray().allSatisfy { Swift.abs($0) <= bound }, c.name)
    }
    XCTAssertThrowsError(try Init.fanIn(weightShape: [4]))
    XCTAssertEqual(
      try Init.pytorchDefault(.normWeight, shape: [3], seed: 0, stream: 20).toArray(), [1, 1, 1])
    XCTAssertEqual(try Init.pytorchDefault(.normBias, shape: [2], seed: 0, stream: 20).toArray(), [0, 0])
    XCTAssertEqual(
      try Init.pytorchDefault(.embedding, shape: [10, 4], seed: 5, stream: 22).toArray(),
      try Init.normal(shape: [10, 4], seed: 5, stream: 22).toArray())
    XCTAssertEqual(Init.stream(parameterIndex: 3), 23)
  }

  func testInitDistributionsAndDeterminism() throws {
    let n = 1_000_003
    let bound: Float = 0.125
    let u = try Init.uniformValues(count: n, bound: bound, seed: 42, stream: 20)
    XCTAssertTrue(u.allSatisfy { Swift.abs($0) <= bound })
    XCTAssertGreaterThan(u.max()!, bound * 0.9999)
    XCTAssertLessThan(u.min()!, -bound * 0.9999)
    // U(−b, b): mean 0 (standard error b/√(3n)), variance b²/3 (standard error ≈ 0.3·b²/√n); allow ~6σ.
    let (um, uv) = moments(u)
    let b = Double(bound)
    XCTAssertLessThan(Swift.abs(um), 6 * b / (3.0 * Double(n)).squareRoot())
    XCTAssertEqual(uv, b * b / 3, accuracy: 0.005 * b * b / 3)
    // N(0, 1): mean 0 (standard error 1/√n), variance 1 (standard error √(2/n)).
    let z = try Init.normalValues(count: n, seed: 42, stream: 21)
    let (zm, zv) = moments(z)
    XCTAssertLessThan(Swift.abs(zm), 6 / Double(n).squareRoot())
    XCTAssertEqual(zv, 1, accuracy: 0.01)
    let scaled = try Init.normal(shape: [1000], mean: 2, std: 0.5, seed: 42, stream: 21).toArray()
    XCTAssertEqual(scaled, z.prefix(1000).map { 2 + 0.5 * $0 })
    // The normals are Tensor.randomNormal's with one sample at step 0.
    XCTAssertEqual(
      try Init.normalValues(count: 1001, seed: 9, stream: 25),
      try Tensor.randomNormal(shape: [1, 1001], seed: 9, step: 0, stream: 25, on: .cpu).toArray())
    // Deterministic per (seed, stream), different across either; a prefix of a longer draw.
    XCTAssertEqual(try Init.uniformValues(count: n, bound: bound, seed: 42, stream: 20), u)
    XCTAssertEqual(try Init.uniformValues(count: 37, bound: bound, seed: 42, stream: 20), Array(u.prefix(37)))
    XCTAssertNotEqual(
      try Init.uniformValues(count: 37, bound: bound, seed: 42, stream: 21), Array(u.prefix(37)))
    XCTAssertNotEqual(
      try Init.uniformValues(count: 37, bound: bound, seed: 43, stream: 20), Array(u.prefix(37)))
    // Identical on every device.
    for device in allDevices() {
      let w = try Init.uniform(shape: [37, 3], bound: bound, seed: 42, stream: 20, on: device)
      XCTAssertEqual(w.device.spec, device.spec)
      XCTAssertEqual(try w.toArray(), Array(u.prefix(111)), "uniform on \(device)")
      let e = try Init.normal(shape: [5, 7], seed: 42, stream: 21, on: device)
      XCTAssertEqual(try e.toArray(), Array(z.prefix(35)), "normal on \(device)")
    }
    XCTAssertThrowsError(try Init.uniform(shape: [2], bound: -1, seed: 0, stream: 20))
    XCTAssertThrowsError(try Init.normalValues(count: 2, seed: 0, stream: -1))
  }

  func moments(_ x: [Float]) -> (mean: Double, variance: Double) {
    let mean = x.reduce(0.0) { $0 + Double($1) } / Double(x.count)
    let variance = x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(x.count)
    return (mean, variance)
  }
}
