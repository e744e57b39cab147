// Tests of the model framework (Sources/GPUGenNN/Module.swift, Layers.swift), on every device of
// `Device.all()` (the native CPU and every OpenCL device):
//   1. the tape gradients of every layer (input and parameters) against Float64 central differences of an
//      independent Float64 reference, which is also the oracle of the forward (with and without a tape);
//   2. BatchNorm2d against PyTorch (Fixtures/modules/make_fixtures.py): training steps, running statistics,
//      evaluation, momentum 0.1 and the cumulative average (momentum nil), and PyTorch's state_dict loading;
//   3. PyTorch's default initialisation bounds, the Philox streams of `initialize(seed:slot:)`;
//   4. Dropout masks and `Tensor.randomUniform` (bit-identical on every device, independent of the batch split);
//   5. the LeakyReLU slope fused into conv2d and linear, on every kernel path (Winograd included);
//   6. module bookkeeping: dotted names, buffers, counts, train/eval, strict load errors, save/load.
// The helpers, the Float64 references and the gradient-check harness are shared with GANLayerTests.
import Foundation
import XCTest

@testable import GPUGenNN

// MARK: - Helpers

/// Deterministic values uniform in `range` (an xorshift stream, as the core tests draw them).
func values(_ n: Int, seed: UInt64, in range: ClosedRange<Float> = -1...1) -> [Float] {
  Benchmarks.randomArray(n, seed: seed).map {
    range.lowerBound + ($0 + 1) / 2 * (range.upperBound - range.lowerBound)
  }
}

/// A stable seed from a name (FNV-1a).
func seed(_ s: String) -> UInt64 {
  var h: UInt64 = 0xcbf2_9ce4_8422_2325
  for b in s.utf8 {
    h ^= UInt64(b)
    h = h &* 0x100_0000_01b3
  }
  return h
}

/// The largest errors of one comparison: max |got − want|, and that divided by max |want| (the array's scale).
struct ErrorStats {
  var abs = 0.0, scaled = 0.0
  mutating func merge(_ o: ErrorStats) {
    abs = Swift.max(abs, o.abs)
    scaled = Swift.max(scaled, o.scaled)
  }
  var text: String { String(format: "max abs %.2e, max abs/scale %.2e", abs, scaled) }
}

/// Asserts |got − want| ≤ atol + rtol·|want| elementwise, failing once with the worst element; returns the errors.
@discardableResult
func assertClose(
  _ got: [Float], _ want: [Double], rtol: Double, atol: Double, _ what: @autoclosure () -> String,
  file: StaticString = #filePath, line: UInt = #line
) -> ErrorStats {
  guard got.count == want.count else {
    XCTFail("\(what()): \(got.count) values, expected \(want.count)", file: file, line: line)
    return ErrorStats(abs: .infinity, scaled: .infinity)
  }
  var worst = -1, worstExcess = 0.0, bad = 0, maxAbs = 0.0, scale = 0.0
  for i in got.indices {
    let e = Swift.abs(Double(got[i]) - want[i])
    maxAbs = Swift.max(maxAbs, e.isNaN ? .infinity : e)
    scale = Swift.max(scale, Swift.abs(want[i]))
    let excess = e - (atol + rtol * Swift.abs(want[i]))
    if !(excess <= 0) {
      bad += 1
      if worst < 0 || !(excess <= worstExcess) { (worst, worstExcess) = (i, excess) }
    }
  }
  if worst >= 0 {
    XCTFail(
      "\(what()): element \(worst) is \(got[worst]), expected \(want[worst]) (rtol \(rtol), atol \(atol); "
        + "\(bad) of \(got.count) off)", file: file, line: line)
  }
  return ErrorStats(abs: maxAbs, scaled: scale > 0 ? maxAbs / scale : maxAbs)
}

func bits(_ v: [Float]) -> [UInt32] { v.map(\.bitPattern) }

func devices(file: StaticString = #filePath, line: UInt = #line) -> [Device] {
  do { return try Device.all() } catch {
    XCTFail("\(error)", file: file, line: line)
    return [.cpu]
  }
}

func assertModuleError(
  _ body: @autoclosure () throws -> Void, _ expected: ModuleError, file: StaticString = #filePath,
  line: UInt = #line
) {
  XCTAssertThrowsError(try body(), file: file, line: line) { error in
    XCTAssertEqual(error as? ModuleError, expected, "\(error)", file: file, line: line)
  }
}

/// Every parameter and buffer's bit patterns, by name.
func snapshot(_ m: Module) throws -> [String: [UInt32]] {
  var out: [String: [UInt32]] = [:]
  for (n, t) in m.stateDict { out[n] = bits(try t.toArray()) }
  return out
}

// MARK: - Float64 references

/// Straightforward Float64 forwards of the layers (NCHW, PyTorch's conventions), the oracle of the tests.
enum Ref {
  /// y = x·Wᵀ + b over the last axis; w is (out, k).
  static func linear(_ x: [Double], k: Int, _ w: [Double], _ b: [Double]?) -> [Double] {
    let out = w.count / k, rows = x.count / k
    var y = [Double](repeating: 0, count: rows * out)
    for r in 0..<rows {
      for o in 0..<out {
        var s = b?[o] ?? 0
        for i in 0..<k { s += x[r * k + i] * w[o * k + i] }
        y[r * out + o] = s
      }
    }
    return y
  }

  static func conv2dShape(_ xs: [Int], _ ws: [Int], stride: (Int, Int), padding: (Int, Int, Int, Int))
    -> [Int]
  {
    [
      xs[0], ws[0], (xs[2] + padding.0 + padding.2 - ws[2]) / stride.0 + 1,
      (xs[3] + padding.1 + padding.3 - ws[3]) / stride.1 + 1,
    ]
  }

  /// Cross-correlation; padding (top, left, bottom, right); w (out, in, kh, kw).
  static func conv2d(
    _ x: [Double], _ xs: [Int], _ w: [Double], _ ws: [Int], _ b: [Double]?, stride: (Int, Int),
    padding: (Int, Int, Int, Int)
  ) -> [Double] {
    let ys = conv2dShape(xs, ws, stride: stride, padding: padding)
    let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3])
    let (o, kh, kw, ho, wo) = (ws[0], ws[2], ws[3], ys[2], ys[3])
    var y = [Double](repeating: 0, count: ys.reduce(1, *))
    for ni in 0..<n {
      for oi in 0..<o {
        for i in 0..<ho {
          for j in 0..<wo {
            var s = b?[oi] ?? 0
            for ci in 0..<c {
              for a in 0..<kh {
                let yy = i * stride.0 - padding.0 + a
                guard yy >= 0 && yy < h else { continue }
                for e in 0..<kw {
                  let xx = j * stride.1 - padding.1 + e
                  guard xx >= 0 && xx < wd else { continue }
                  s += x[((ni * c + ci) * h + yy) * wd + xx] * w[((oi * c + ci) * kh + a) * kw + e]
                }
              }
            }
            y[((ni * o + oi) * ho + i) * wo + j] = s
          }
        }
      }
    }
    return y
  }

  static func convTranspose2dShape(_ xs: [Int], _ ws: [Int], stride: Int, padding: Int, outputPadding: Int)
    -> [Int]
  {
    [
      xs[0], ws[1], (xs[2] - 1) * stride - 2 * padding + ws[2] + outputPadding,
      (xs[3] - 1) * stride - 2 * padding + ws[3] + outputPadding,
    ]
  }

  /// The scatter definition: y[n, o, i·s − p + a, j·s − p + e] += x[n, c, i, j]·w[c, o, a, e].
  static func convTranspose2d(
    _ x: [Double], _ xs: [Int], _ w: [Double], _ ws: [Int], _ b: [Double]?, stride: Int, padding: Int,
    outputPadding: Int
  ) -> [Double] {
    let ys = convTranspose2dShape(xs, ws, stride: stride, padding: padding, outputPadding: outputPadding)
    let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3])
    let (o, kh, kw, ho, wo) = (ws[1], ws[2], ws[3], ys[2], ys[3])
    var y = [Double](repeating: 0, count: ys.reduce(1, *))
    for ni in 0..<n {
      for oi in 0..<o {
        for p in 0..<(ho * wo) { y[(ni * o + oi) * ho * wo + p] = b?[oi] ?? 0 }
      }
      for ci in 0..<c {
        for i in 0..<h {
          for j in 0..<wd {
            let v = x[((ni * c + ci) * h + i) * wd + j]
            for oi in 0..<o {
              for a in 0..<kh {
                let yy = i * stride - padding + a
                guard yy >= 0 && yy < ho else { continue }
                for e in 0..<kw {
                  let xx = j * stride - padding + e
                  guard xx >= 0 && xx < wo else { continue }
                  y[((ni * o + oi) * ho + yy) * wo + xx] += v * w[((ci * o + oi) * kh + a) * kw + e]
                }
              }
            }
          }
        }
      }
    }
    return y
  }

  /// Normalises each (sample, group) of (N, C, H·W) with its biased variance, then the per-channel affine.
  static func groupNorm(_ x: [Double], _ xs: [Int], groups: Int, _ w: [Double], _ b: [Double], eps: Double)
    -> [Double]
  {
    let (n, c) = (xs[0], xs[1])
    let hw = xs.dropFirst(2).reduce(1, *), cpg = c / groups, size = cpg * hw
    var y = x
    for ni in 0..<n {
      for g in 0..<groups {
        let base = (ni * c + g * cpg) * hw
        let mean = x[base..<(base + size)].reduce(0, +) / Double(size)
        let variance = x[base..<(base + size)].map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(size)
        for k in 0..<size {
          let ch = g * cpg + k / hw
          y[base + k] = (x[base + k] - mean) / (variance + eps).squareRoot() * w[ch] + b[ch]
        }
      }
    }
    return y
  }

  /// Training-mode batch normalisation: per channel over (N, H, W), biased variance.
  static func batchNormTraining(_ x: [Double], _ xs: [Int], _ w: [Double], _ b: [Double], eps: Double)
    -> [Double]
  {
    let (n, c) = (xs[0], xs[1])
    let hw = xs.dropFirst(2).reduce(1, *)
    var y = x
    for ch in 0..<c {
      var idx: [Int] = []
      for ni in 0..<n {
        let base = (ni * c + ch) * hw
        idx += Array(base..<(base + hw))
      }
      var mean = 0.0, variance = 0.0
      for i in idx { mean += x[i] }
      mean /= Double(idx.count)
      for i in idx { variance += (x[i] - mean) * (x[i] - mean) }
      variance /= Double(idx.count)
      for i in idx { y[i] = (x[i] - mean) / (variance + eps).squareRoot() * w[ch] + b[ch] }
    }
    return y
  }

  /// Evaluation-mode batch normalisation with running statistics (mean, variance).
  static func batchNormEval(
    _ x: [Double], _ xs: [Int], mean: [Double], variance: [Double], _ w: [Double], _ b: [Double], eps: Double
  ) -> [Double] {
    let (c, hw) = (xs[1], xs.dropFirst(2).reduce(1, *))
    return x.indices.map { i in
      let ch = (i / hw) % c
      return (x[i] - mean[ch]) / (variance[ch] + eps).squareRoot() * w[ch] + b[ch]
    }
  }

  static func relu(_ x: [Double]) -> [Double] { x.map { Swift.max($0, 0) } }

  static func leakyRelu(_ x: [Double], slope: Double) -> [Double] { x.map { $0 >= 0 ? $0 : slope * $0 } }
}

// MARK: - Gradient-check harness

/// One layer of the gradient checks.
struct LayerCase {
  let name: String
  /// The differentiable input's shape (nil: the layer takes no tensor, as Embedding).
  let input: [Int]?
  /// Builds the layer on a device; returns it and its forward.
  let make: (Device) throws -> (Module, (Tensor?) throws -> Tensor)
  /// The Float64 forward of the values by name ("input" and the dotted parameter names).
  let reference: ([String: [Double]]) -> [Double]
  /// The range parameters are drawn from.
  var parameterRange: ClosedRange<Float> = -1...1
  var inputRange: ClosedRange<Float> = -1...1
}

enum GradCheck {
  static let eps = 1e-6
  /// Float32 gradients (and forwards) against Float64 finite differences (and forwards).
  static let gradTolerance = (rtol: 1e-3, atol: 1e-4)
  static let forwardTolerance = (rtol: 1e-4, atol: 1e-5)

  /// Runs every case: the Float64 reference and its central differences once, then each device's forward
  /// (recorded and not) and tape gradients of L = Σ y·r against them. Returns one report line per case.
  static func run(_ cases: [LayerCase], file: StaticString = #filePath, line: UInt = #line) throws -> [String]
  {
    var report: [String] = []
    let all = devices(file: file, line: line)
    for c in cases {
      // Parameter names and shapes from a CPU instance; values drawn per name.
      let (probe, _) = try c.make(.cpu)
      var names = probe.namedParameters.map(\.name)
      var shapes = Dictionary(uniqueKeysWithValues: probe.namedParameters.map { ($0.name, $0.tensor.shape) })
      if let s = c.input {
        names.insert("input", at: 0)
        shapes["input"] = s
      }
      var vals: [String: [Float]] = [:]
      for n in names {
        vals[n] = values(
          shapes[n]!.reduce(1, *), seed: seed(c.name + "/" + n),
          in: n == "input" ? c.inputRange : c.parameterRange)
      }
      let v64 = vals.mapValues { $0.map(Double.init) }
      let y64 = c.reference(v64)
      let r = values(y64.count, seed: seed(c.name + "/cotangent"))
      let r64 = r.map(Double.init)
      func loss(_ v: [String: [Double]]) -> Double { zip(c.reference(v), r64).map(*).reduce(0, +) }
      var fd: [String: [Double]] = [:]
      for n in names {
        var g = [Double](repeating: 0, count: v64[n]!.count)
        for j in g.indices {
          var plus = v64, minus = v64
          plus[n]![j] += eps
          minus[n]![j] -= eps
          g[j] = (loss(plus) - loss(minus)) / (2 * eps)
        }
        XCTAssertTrue(
          g.contains { $0 != 0 }, "\(c.name): d/d\(n) is identically zero", file: file, line: line)
        fd[n] = g
      }
      var forwardErrors = ErrorStats(), gradErrors = ErrorStats()
      for d in all {
        let label = "\(c.name) on \(d.spec)"
        let (m, forward) = try c.make(d)
        XCTAssertEqual(
          m.namedParameters.map(\.name), Array(names.drop { $0 == "input" }), label, file: file, line: line)
        let params = m.namedParameters
        try Tape.noGrad {
          for (n, t) in params { try t.assign(try Tensor(vals[n]!, shape: t.shape, on: d)) }
        }
        let x = try c.input.map { try Tensor(vals["input"]!, shape: $0, on: d) }
        // Without a tape (inference: fused kernels where the backend has them).
        let plain = try forward(x)
        forwardErrors.merge(
          assertClose(
            try plain.toArray(), y64, rtol: forwardTolerance.rtol, atol: forwardTolerance.atol,
            "\(label): forward without a tape", file: file, line: line))
        let tape = Tape()
        let wrt = (x.map { [$0] } ?? []) + params.map(\.tensor)
        tape.watch(wrt)
        let rt = try Tensor(r, shape: plain.shape, on: d)
        let (y, l) = try tape.record {
          let y = try forward(x)
          return (y, try (y * rt).sum())
        }
        XCTAssertEqual(y.shape, plain.shape, label, file: file, line: line)
        forwardErrors.merge(
          assertClose(
            try y.toArray(), y64, rtol: forwardTolerance.rtol, atol: forwardTolerance.atol,
            "\(label): recorded forward", file: file, line: line))
        let grads = try tape.gradients(of: l, wrt: wrt)
        for (k, n) in names.enumerated() {
          guard let g = grads[k] else {
            XCTFail("\(label): no gradient for \(n)", file: file, line: line)
            continue
          }
          XCTAssertEqual(g.shape, shapes[n]!, "\(label): d/d\(n)", file: file, line: line)
          gradErrors.merge(
            assertClose(
              try g.toArray(), fd[n]!, rtol: gradTolerance.rtol, atol: gradTolerance.atol,
              "\(label): tape d/d\(n) vs Float64 central differences", file: file, line: line))
        }
      }
      report.append("\(c.name): forward \(forwardErrors.text); gradients \(gradErrors.text)")
    }
    return report
  }
}

// MARK: - Tests

final class ModuleTests: XCTestCase {
  // MARK: 1. Gradients

  func testLinearAndEmbeddingGradients() throws {
    let cases = [
      LayerCase(
        name: "Linear(5, 4)", input: [3, 5],
        make: { d in
          let l = try Linear(5, 4, on: d); return (l, { try l($0!) })
        },
        reference: { Ref.linear($0["input"]!, k: 5, $0["weight"]!, $0["bias"]) }),
      LayerCase(
        name: "Linear(6, 3, bias: false) on rank 3", input: [2, 2, 6],
        make: { d in
          let l = try Linear(6, 3, bias: false, on: d); return (l, { try l($0!) })
        },
        reference: { Ref.linear($0["input"]!, k: 6, $0["weight"]!, nil) }),
      LayerCase(
        name: "Embedding(5, 3)", input: nil,
        make: { d in
          let e = try Embedding(5, 3, on: d); return (e, { _ in try e([1, 3, 3, 0, 4, 1]) })
        },
        reference: { v in [1, 3, 3, 0, 4, 1].flatMap { Array(v["weight"]![($0 * 3)..<($0 * 3 + 3)]) } }),
    ]
    for line in try GradCheck.run(cases) { print("ModuleTests gradients — \(line)") }
  }

  func testConvolutionGradients() throws {
    func conv(
      _ name: String, _ cin: Int, _ cout: Int, k: (Int, Int), s: (Int, Int), p: (Int, Int, Int, Int), x: [Int]
    ) -> LayerCase {
      LayerCase(
        name: name, input: x,
        make: { d in
          let l = try Conv2d(cin, cout, kernelSize: k, stride: s, padding: p, on: d)
          return (l, { try l($0!) })
        },
        reference: {
          Ref.conv2d(
            $0["input"]!, x, $0["weight"]!, [cout, cin, k.0, k.1], $0["bias"], stride: s, padding: p)
        })
    }
    func transposed(_ name: String, _ cin: Int, _ cout: Int, k: Int, s: Int, p: Int, op: Int, x: [Int])
      -> LayerCase
    {
      LayerCase(
        name: name, input: x,
        make: { d in
          let l = try ConvTranspose2d(
            cin, cout, kernelSize: k, stride: s, padding: p, outputPadding: op, on: d)
          return (l, { try l($0!) })
        },
        reference: {
          Ref.convTranspose2d(
            $0["input"]!, x, $0["weight"]!, [cin, cout, k, k], $0["bias"], stride: s, padding: p,
            outputPadding: op)
        })
    }
    let cases = [
      conv("Conv2d(3, 4, 3, padding 1)", 3, 4, k: (3, 3), s: (1, 1), p: (1, 1, 1, 1), x: [2, 3, 5, 5]),
      conv(
        "Conv2d(3, 4, 3, stride 2, padding 1)", 3, 4, k: (3, 3), s: (2, 2), p: (1, 1, 1, 1), x: [2, 3, 7, 6]),
      conv(
        "Conv2d(2, 3, 2×3, stride 2, padding (0, 1, 1, 2))", 2, 3, k: (2, 3), s: (2, 2), p: (0, 1, 1, 2),
        x: [2, 2, 6, 5]),
      conv(
        "Conv2d(3, 2, 3, padding (1, 0, 2, 1))", 3, 2, k: (3, 3), s: (1, 1), p: (1, 0, 2, 1), x: [1, 3, 5, 4]),
      transposed(
        "ConvTranspose2d(3, 2, 3, stride 2, padding 1)", 3, 2, k: 3, s: 2, p: 1, op: 0, x: [2, 3, 3, 4]),
      transposed(
        "ConvTranspose2d(2, 3, 3, stride 2, padding 1, output padding 1)", 2, 3, k: 3, s: 2, p: 1, op: 1,
        x: [1, 2, 3, 3]),
    ]
    for line in try GradCheck.run(cases) { print("ModuleTests gradients — \(line)") }
  }

  func testNormalisationGradients() throws {
    let cases = [
      LayerCase(
        name: "GroupNorm(2 groups, 4 channels)", input: [2, 4, 3, 3],
        make: { d in
          let l = try GroupNorm(groups: 2, channels: 4, on: d); return (l, { try l($0!) })
        },
        reference: {
          Ref.groupNorm($0["input"]!, [2, 4, 3, 3], groups: 2, $0["weight"]!, $0["bias"]!, eps: 1e-5)
        },
        inputRange: -2...3),
      LayerCase(
        name: "GroupNorm(3 groups, 6 channels, eps 0.1)", input: [2, 6, 2, 3],
        make: { d in
          let l = try GroupNorm(groups: 3, channels: 6, eps: 0.1, on: d); return (l, { try l($0!) })
        },
        reference: {
          Ref.groupNorm(
            $0["input"]!, [2, 6, 2, 3], groups: 3, $0["weight"]!, $0["bias"]!, eps: Double(Float(0.1)))
        }),
      LayerCase(
        name: "BatchNorm2d(3) in training mode", input: [4, 3, 3, 3],
        make: { d in
          let l = try BatchNorm2d(3, on: d); return (l, { try l($0!) })
        },
        reference: {
          Ref.batchNormTraining($0["input"]!, [4, 3, 3, 3], $0["weight"]!, $0["bias"]!, eps: 1e-5)
        },
        inputRange: -1...2),
    ]
    for line in try GradCheck.run(cases) { print("ModuleTests gradients — \(line)") }
  }

  /// BatchNorm2d with the activation after it fused by `Sequential` (training, without affine, evaluation with
  /// running statistics), and the fusion itself: one tape node for BatchNorm2d + ReLU, two when the activation
  /// (SiLU) is not one the kernels fuse.
  func testBatchNormWithFusedActivationGradients() throws {
    let xs = [4, 3, 3, 5]
    let ones = [Double](repeating: 1, count: 3), zeros = [Double](repeating: 0, count: 3)
    let (rm, rv): ([Float], [Float]) = ([0.2, -0.3, 0.1], [0.8, 1.3, 0.6])
    let cases = [
      LayerCase(
        name: "Sequential(BatchNorm2d(3), ReLU) in training mode", input: xs,
        make: { d in
          let s = Sequential([try BatchNorm2d(3, on: d), ActivationLayer(.relu)]); return (s, { try s($0!) })
        },
        reference: {
          Ref.relu(Ref.batchNormTraining($0["input"]!, xs, $0["0.weight"]!, $0["0.bias"]!, eps: 1e-5))
        }, inputRange: -1...2),
      LayerCase(
        name:
          "Sequential(Conv2d(2, 3, 1, bias: false), BatchNorm2d(3, affine: false), LeakyReLU(0.2)) (training)",
        input: [4, 2, 3, 5],
        make: { d in
          let s = Sequential([
            try Conv2d(2, 3, kernelSize: 1, bias: false, on: d), try BatchNorm2d(3, affine: false, on: d),
            ActivationLayer(.leakyRelu(slope: 0.2)),
          ])
          return (s, { try s($0!) })
        },
        reference: { v in
          let h = Ref.conv2d(
            v["input"]!, [4, 2, 3, 5], v["0.weight"]!, [3, 2, 1, 1], nil, stride: (1, 1),
            padding: (0, 0, 0, 0))
          return Ref.leakyRelu(
            Ref.batchNormTraining(h, xs, ones, zeros, eps: 1e-5), slope: Double(Float(0.2)))
        }),
      LayerCase(
        name: "Sequential(BatchNorm2d(3), LeakyReLU(0.2)) in evaluation mode", input: xs,
        make: { d in
          let bn = try BatchNorm2d(3, on: d)
          try bn.runningMean.assign(try Tensor(rm, shape: [3], on: d))
          try bn.runningVar.assign(try Tensor(rv, shape: [3], on: d))
          let s = Sequential([bn, ActivationLayer(.leakyRelu(slope: 0.2))])
          s.eval()
          return (s, { try s($0!) })
        },
        reference: {
          Ref.leakyRelu(
            Ref.batchNormEval(
              $0["input"]!, xs, mean: rm.map(Double.init), variance: rv.map(Double.init), $0["0.weight"]!,
              $0["0.bias"]!, eps: 1e-5), slope: Double(Float(0.2)))
        }, inputRange: -1...2),
    ]
    for line in try GradCheck.run(cases) { print("ModuleTests gradients — \(line)") }
    for d in devices() {
      for (function, nodes) in [(ActivationFunction.relu, 1), (.leakyRelu(slope: 0.2), 1), (.silu, 2)] {
        let s = Sequential([try BatchNorm2d(3, on: d), ActivationLayer(function)])
        let x = try Tensor(values(60, seed: 3), shape: [2, 3, 2, 5], on: d)
        let tape = Tape()
        tape.watch(x)
        _ = try tape.record { try s(x) }
        XCTAssertEqual(tape.count, nodes, "BatchNorm2d + \(function) on \(d.spec): tape nodes")
      }
    }
  }

  func testSequentialWithFusedLeakyReLUGradients() throws {
    let xs = [2, 2, 4, 4]
    let c = LayerCase(
      name: "Sequential(Conv2d, LeakyReLU(0.2), Flatten, Linear, LeakyReLU(0.2))", input: xs,
      make: { d in
        let s = Sequential([
          try Conv2d(2, 3, kernelSize: 3, padding: 1, on: d), ActivationLayer(.leakyRelu(slope: 0.2)),
          Flatten(),
          try Linear(48, 5, on: d), ActivationLayer(.leakyRelu(slope: 0.2)),
        ])
        return (s, { try s($0!) })
      },
      reference: { v in
        let h = Ref.leakyRelu(
          Ref.conv2d(
            v["input"]!, xs, v["0.weight"]!, [3, 2, 3, 3], v["0.bias"], stride: (1, 1), padding: (1, 1, 1, 1)),
          slope: 0.2)
        return Ref.leakyRelu(Ref.linear(h, k: 48, v["3.weight"]!, v["3.bias"]), slope: Double(Float(0.2)))
      }, parameterRange: -0.5...0.5)
    for line in try GradCheck.run([c]) { print("ModuleTests gradients — \(line)") }
  }

  // MARK: 2. BatchNorm2d against PyTorch

  var fixtures: URL { Bundle.module.resourceURL!.appendingPathComponent("Fixtures/modules") }

  func testBatchNorm2dMatchesPyTorch() throws {
    let f = try SafeTensors.read(contentsOf: fixtures.appendingPathComponent("batchnorm.safetensors")).tensors
    func t(_ n: String) throws -> TensorData { try XCTUnwrap(f[n], n) }
    func want(_ n: String) throws -> [Double] { try t(n).values.map(Double.init) }
    var errors = ErrorStats()
    for d in devices() {
      for (tag, momentum) in [("momentum", Float(0.1)), ("cumulative", nil)] as [(String, Float?)] {
        let label = "\(tag) on \(d.spec)"
        let bn = try BatchNorm2d(3, momentum: momentum, on: d)
        try XCTUnwrap(bn.weight).assign(try Tensor(try t("weight"), on: d))
        try XCTUnwrap(bn.bias).assign(try Tensor(try t("bias"), on: d))
        for k in 0..<3 {
          let y = try bn(try Tensor(try t("x\(k)"), on: d))
          errors.merge(
            assertClose(try y.toArray(), try want("\(tag)/y\(k)"), rtol: 1e-5, atol: 1e-6, "\(label): y\(k)"))
          errors.merge(
            assertClose(
              try bn.runningMean.toArray(), try want("\(tag)/running_mean\(k)"), rtol: 1e-5, atol: 1e-6,
              "\(label): running_mean after step \(k)"))
          errors.merge(
            assertClose(
              try bn.runningVar.toArray(), try want("\(tag)/running_var\(k)"), rtol: 1e-5, atol: 1e-6,
              "\(label): running_var after step \(k)"))
          XCTAssertEqual(
            try bn.numBatchesTracked.toArray(), try t("\(tag)/num_batches_tracked\(k)").values, label)
        }
        bn.eval()
        let y3 = try bn(try Tensor(try t("x3"), on: d))
        errors.merge(
          assertClose(try y3.toArray(), try want("\(tag)/y3"), rtol: 1e-5, atol: 1e-6, "\(label): eval y3"))
        // Evaluation leaves the statistics alone.
        errors.merge(
          assertClose(
            try bn.runningMean.toArray(), try want("\(tag)/running_mean"), rtol: 1e-5, atol: 1e-6,
            "\(label): final running_mean"))
        errors.merge(
          assertClose(
            try bn.runningVar.toArray(), try want("\(tag)/running_var"), rtol: 1e-5, atol: 1e-6,
            "\(label): final running_var"))
        XCTAssertEqual(try bn.numBatchesTracked.toArray(), [3], label)
        XCTAssertEqual(try t("\(tag)/num_batches_tracked").values, [3], label)
      }
    }
    // The two modes must disagree (else the cumulative average is not tested).
    let a = try want("momentum/running_var"), b = try want("cumulative/running_var")
    XCTAssertGreaterThan(zip(a, b).map { Swift.abs($0 - $1) }.max() ?? 0, 0.1)
    print("ModuleTests BatchNorm2d vs PyTorch on \(devices().map(\.description)) — \(errors.text)")
  }

  /// PyTorch's own state_dict (num_batches_tracked an int64 scalar of shape []) loads strictly, and the
  /// loaded module evaluates as PyTorch's did.
  func testBatchNorm2dLoadsAPyTorchStateDict() throws {
    let url = fixtures.appendingPathComponent("batchnorm_state.safetensors")
    let file = try SafeTensors.read(contentsOf: url).tensors
    XCTAssertEqual(file["num_batches_tracked"]?.shape, [])
    let f = try SafeTensors.read(contentsOf: fixtures.appendingPathComponent("batchnorm.safetensors")).tensors
    for d in devices() {
      let bn = try BatchNorm2d(3, on: d)
      try bn.load(contentsOf: url)
      XCTAssertEqual(try bn.numBatchesTracked.toArray(), [3], d.spec)
      XCTAssertEqual(bn.numBatchesTracked.shape, [])
      XCTAssertEqual(
        bits(try bn.runningMean.toArray()), bits(try XCTUnwrap(f["momentum/running_mean"]).values))
      XCTAssertEqual(bits(try bn.runningVar.toArray()), bits(try XCTUnwrap(f["momentum/running_var"]).values))
      XCTAssertEqual(bits(try XCTUnwrap(bn.weight).toArray()), bits(try XCTUnwrap(f["weight"]).values))
      bn.eval()
      let y = try bn(try Tensor(try XCTUnwrap(f["x3"]), on: d))
      assertClose(
        try y.toArray(), try XCTUnwrap(f["momentum/y3"]).values.map(Double.init), rtol: 1e-5, atol: 1e-6,
        "eval after loading PyTorch's state_dict on \(d.spec)")
      // A training forward carries on counting from PyTorch's count.
      bn.train()
      _ = try bn(try Tensor(try XCTUnwrap(f["x0"]), on: d))
      XCTAssertEqual(try bn.numBatchesTracked.toArray(), [4], d.spec)
    }
  }

  // MARK: 3. Default initialisation

  /// Asserts every value is within ±bound and, for enough values, that the bound is reached (the largest
  /// magnitude is above 0.9·bound) with a uniform's mean and variance.
  private func assertUniform(
    _ v: [Float], bound: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line
  ) {
    let largest = v.map { Swift.abs($0) }.max() ?? 0
    XCTAssertLessThanOrEqual(largest, bound, "\(what): outside ±\(bound)", file: file, line: line)
    guard v.count >= 64 else { return }
    XCTAssertGreaterThan(largest, 0.9 * bound, "\(what): never near ±\(bound)", file: file, line: line)
    let n = Double(v.count), b = Double(bound)
    let mean = v.map(Double.init).reduce(0, +) / n
    let variance = v.map { (Double($0) - mean) * (Double($0) - mean) }.reduce(0, +) / n
    XCTAssertEqual(mean, 0, accuracy: 4 * b / (3 * n).squareRoot(), "\(what): mean", file: file, line: line)
    XCTAssertEqual(
      variance, b * b / 3, accuracy: 0.15 * b * b / 3, "\(what): variance", file: file, line: line)
  }

  func testDefaultInitialisationFollowsPyTorch() throws {
    var cpuValues: [String: [UInt32]] = [:]
    for d in devices() {
      let linear = try Linear(50, 40, on: d)
      let conv = try Conv2d(6, 8, kernelSize: 3, on: d)
      // ConvTranspose2d's weight is (in, out, k, k): PyTorch's fan-in is out·k·k, not in·k·k.
      let wide = try ConvTranspose2d(4, 64, kernelSize: 2, on: d)  // fan-in 256 (in·k·k would be 16)
      let narrow = try ConvTranspose2d(64, 4, kernelSize: 2, on: d)  // fan-in 16 (in·k·k would be 256)
      let embedding = try Embedding(100, 50, on: d)
      let gn = try GroupNorm(groups: 2, channels: 4, on: d)
      let bn = try BatchNorm2d(4, on: d)
      let all: [(String, Module)] = [
        ("linear", linear), ("conv", conv), ("wide", wide), ("narrow", narrow), ("embedding", embedding),
        ("gn", gn), ("bn", bn),
      ]
      for (_, m) in all {
        // Scribble first: initialisation must overwrite every parameter, constants included.
        for (n, t) in m.namedParameters {
          try t.assign(try Tensor(values(t.count, seed: seed(n)), shape: t.shape, on: d))
        }
        try m.initialize(seed: 1234)
      }
      let label = d.spec
      assertUniform(
        try linear.weight.toArray(), bound: 1 / Float(50).squareRoot(), "Linear weight on \(label)")
      assertUniform(try linear.bias!.toArray(), bound: 1 / Float(50).squareRoot(), "Linear bias on \(label)")
      assertUniform(try conv.weight.toArray(), bound: 1 / Float(54).squareRoot(), "Conv2d weight on \(label)")
      assertUniform(try conv.bias!.toArray(), bound: 1 / Float(54).squareRoot(), "Conv2d bias on \(label)")
      assertUniform(try wide.weight.toArray(), bound: 1 / 16, "ConvTranspose2d(4, 64, 2) weight on \(label)")
      assertUniform(try wide.bias!.toArray(), bound: 1 / 16, "ConvTranspose2d(4, 64, 2) bias on \(label)")
      assertUniform(try narrow.weight.toArray(), bound: 1 / 4, "ConvTranspose2d(64, 4, 2) weight on \(label)")
      assertUniform(try narrow.bias!.toArray(), bound: 1 / 4, "ConvTranspose2d(64, 4, 2) bias on \(label)")
      let e = try embedding.weight.toArray().map(Double.init)
      let mean = e.reduce(0, +) / Double(e.count)
      let variance = e.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(e.count)
      XCTAssertEqual(mean, 0, accuracy: 0.06, "Embedding mean on \(label)")
      XCTAssertEqual(variance, 1, accuracy: 0.1, "Embedding variance on \(label)")
      XCTAssertGreaterThan(
        e.filter { Swift.abs($0) > 2.5 }.count, 20, "Embedding tails on \(label) (N(0, 1))")
      for m in [gn, bn] as [Module] {
        XCTAssertEqual(try m.namedParameters[0].tensor.toArray(), [1, 1, 1, 1], "norm weight on \(label)")
        XCTAssertEqual(try m.namedParameters[1].tensor.toArray(), [0, 0, 0, 0], "norm bias on \(label)")
      }
      // Bit-identical on every device (drawn on the host), and deterministic.
      for (name, m) in all {
        for (n, t) in m.namedParameters {
          let key = "\(name).\(n)", got = bits(try t.toArray())
          if let cpu = cpuValues[key] {
            XCTAssertEqual(got, cpu, "\(key) on \(label) vs the CPU")
          } else {
            cpuValues[key] = got
          }
        }
        try m.initialize(seed: 1234)
        for (n, t) in m.namedParameters {
          XCTAssertEqual(bits(try t.toArray()), cpuValues["\(name).\(n)"], "\(name).\(n): second initialize")
        }
      }
    }
  }

  /// Parameter i in name order draws from `Streams.parameter(i, slot:)`; slots and seeds give other numbers.
  func testInitialisationStreamsSlotsAndSeeds() throws {
    func model() throws -> Sequential {
      Sequential([try Linear(3, 4, on: .cpu), ActivationLayer(.relu), try Linear(4, 20, on: .cpu)])
    }
    let m = try model()
    XCTAssertEqual(m.sortedParameters.map(\.name), ["0.bias", "0.weight", "2.bias", "2.weight"])
    let inits: [Init.Parameter] = [.bias(fanIn: 3), .weight, .bias(fanIn: 4), .weight]
    func draw(seed s: UInt64, slot: Int) throws -> [[Float]] {
      try m.initialize(seed: s, slot: slot)
      return try m.sortedParameters.map { try $0.tensor.toArray() }
    }
    for slot in [0, 1] {
      let got = try draw(seed: 99, slot: slot)
      for (i, (name, t)) in m.sortedParameters.enumerated() {
        let want = try Init.pytorchDefault(
          inits[i], shape: t.shape, seed: 99, stream: Streams.parameter(i, slot: slot)
        ).toArray()
        XCTAssertEqual(bits(got[i]), bits(want), "\(name), slot \(slot)")
      }
    }
    XCTAssertNotEqual(Streams.parameter(0, slot: 1), Streams.parameter(0, slot: 0))
    let a = try draw(seed: 99, slot: 0), b = try draw(seed: 99, slot: 1), c = try draw(seed: 100, slot: 0)
    let again = try draw(seed: 99, slot: 0)
    XCTAssertEqual(a.map(bits), again.map(bits), "initialize(seed:) is deterministic")
    for i in a.indices {
      let name = m.sortedParameters[i].name
      // Independent draws: hardly any element coincides.
      XCTAssertLessThanOrEqual(
        zip(a[i], b[i]).filter { $0 == $1 }.count, a[i].count / 10, "\(name): slot 0 vs 1")
      XCTAssertLessThanOrEqual(
        zip(a[i], c[i]).filter { $0 == $1 }.count, a[i].count / 10, "\(name): seed 99 vs 100")
    }
    // Two models of one run (slot 0 and slot 1) differ; two instances in one slot agree.
    let g = try model(), h = try model()
    try g.initialize(seed: 5, slot: 0)
    try h.initialize(seed: 5, slot: 1)
    XCTAssertNotEqual(try g.trainableParameters[3].toArray(), try h.trainableParameters[3].toArray())
    try h.initialize(seed: 5, slot: 0)
    XCTAssertEqual(try snapshot(g), try snapshot(h))
  }

  // MARK: 4. Dropout and uniform noise

  func testDropoutEvaluationIsTheIdentityAndTrainingKeepsOneMinusP() throws {
    XCTAssertThrowsError(try Dropout(p: 1))
    XCTAssertThrowsError(try Dropout(p: -0.1))
    let (rows, cols) = (64, 4096)
    let xv = values(rows * cols, seed: 5, in: 0.5...1.5)  // never 0: a zero output means dropped
    var cpuOutput: [UInt32]?
    for d in devices() {
      let x = try Tensor(xv, shape: [rows, cols], on: d)
      for p: Float in [0.3, 0.75] {
        let drop = try Dropout(p: p)
        Dropout.setNoise(of: drop, seed: 42, step: 7)
        drop.eval()
        XCTAssertEqual(bits(try drop(x).toArray()), bits(xv), "eval is the identity on \(d.spec)")
        drop.train()
        let y = try drop(x).toArray()
        let kept = y.indices.filter { y[$0] != 0 }
        let fraction = Double(kept.count) / Double(y.count)
        let sigma = (Double(p) * Double(1 - p) / Double(y.count)).squareRoot()
        XCTAssertEqual(fraction, Double(1 - p), accuracy: 5 * sigma, "keep fraction, p \(p) on \(d.spec)")
        let scale = 1 / (1 - p)
        var worst: Float = 0
        for i in kept { worst = Swift.max(worst, Swift.abs(y[i] - xv[i] * scale) / (xv[i] * scale)) }
        XCTAssertLessThanOrEqual(worst, 1e-6, "kept values are x/(1 − p), p \(p) on \(d.spec)")
        // The mask is `u > p` for the documented uniforms of (seed, step, stream, sample).
        let u = try Tensor.randomUniform(shape: [rows, cols], seed: 42, step: 7, stream: Streams.dropout)
          .toArray()
        XCTAssertEqual(
          y.indices.filter { (y[$0] != 0) != (u[$0] > p) }.count, 0,
          "mask vs the uniforms, p \(p) on \(d.spec)")
        if p == 0.3 {
          if let cpu = cpuOutput {
            XCTAssertEqual(bits(y), cpu, "Dropout on \(d.spec) vs the CPU")
          } else {
            cpuOutput = bits(y)
          }
        }
        // The gradient is the mask.
        let tape = Tape()
        tape.watch(x)
        let l = try tape.record { try drop(x).sum() }
        let g = try XCTUnwrap(try tape.gradients(of: l, wrt: [x])[0]).toArray()
        XCTAssertEqual(
          g.indices.filter { g[$0] != (y[$0] != 0 ? scale : 0) }.count, 0, "dDropout/dx on \(d.spec)")
      }
    }
  }

  func testDropoutMaskDependsOnTheSampleNotTheBatchSplit() throws {
    let (n, features) = (8, 37)
    let xv = values(n * features, seed: 9, in: 1...2)
    for d in devices() {
      // Two dropouts in one model: streams Streams.dropout and Streams.dropout + 1.
      let first = try Dropout(p: 0.5), second = try Dropout(p: 0.5)
      let model = Sequential([first, ActivationLayer(.identity), second])
      func run(_ rows: Range<Int>, step: Int = 3, seed s: UInt64 = 11) throws -> ([Float], [Float]) {
        Dropout.setNoise(of: model, seed: s, step: step, firstSample: rows.lowerBound)
        let x = try Tensor(
          Array(xv[(rows.lowerBound * features)..<(rows.upperBound * features)]),
          shape: [rows.count, features], on: d)
        return (try first(x).toArray(), try second(x).toArray())
      }
      _ = try run(0..<1)
      XCTAssertEqual(first.stream, Streams.dropout)
      XCTAssertEqual(second.stream, Streams.dropout + 1)
      let whole = try run(0..<n)
      let low = try run(0..<3), high = try run(3..<n)
      XCTAssertEqual(bits(low.0 + high.0), bits(whole.0), "first dropout: split batch vs whole on \(d.spec)")
      XCTAssertEqual(bits(low.1 + high.1), bits(whole.1), "second dropout: split batch vs whole on \(d.spec)")
      XCTAssertNotEqual(whole.0, whole.1, "two dropouts draw from two streams on \(d.spec)")
      XCTAssertNotEqual(try run(0..<n, step: 4).0, whole.0, "another step, another mask on \(d.spec)")
      XCTAssertNotEqual(try run(0..<n, seed: 12).0, whole.0, "another seed, another mask on \(d.spec)")
      // Rows are not copies of each other (the sample index enters the counter).
      let rowMasks = (0..<n).map { i in whole.0[(i * features)..<((i + 1) * features)].map { $0 != 0 } }
      XCTAssertEqual(Set(rowMasks).count, n, "one mask per sample on \(d.spec)")
    }
  }

  func testRandomUniformIsPhiloxOfTheWordsOnEveryDevice() throws {
    let shape = [3, 5, 3]  // 15 values per sample: three blocks and a tail of 3
    let (s, step, stream, firstSample): (UInt64, Int, Int, Int) = (
      0x0123_4567_89ab_cdef, 3, Streams.dropout + 2, 7
    )
    var want: [UInt32] = []
    for i in 0..<3 {
      for e in 0..<15 {
        let w = Philox4x32.block(
          counter: SIMD4(UInt32(e / 4), UInt32(firstSample + i), UInt32(step), UInt32(stream)),
          key: Philox4x32.key(seed: s))
        want.append(Philox4x32.uniform(w[e % 4]).bitPattern)
      }
    }
    let big = 1 << 20
    var cpuBig: [UInt32]?
    for d in devices() {
      let u = try Tensor.randomUniform(
        shape: shape, seed: s, step: step, stream: stream, firstSample: firstSample, on: d)
      XCTAssertEqual(u.shape, shape)
      XCTAssertEqual(
        bits(try u.toArray()), want, "randomUniform vs Philox4x32.uniform of the words on \(d.spec)")
      let v = try Tensor.randomUniform(shape: [4, big / 4], seed: 77, step: 1, stream: 5, on: d).toArray()
      XCTAssertGreaterThan(v.min() ?? 0, 0, "uniforms are > 0 on \(d.spec)")
      XCTAssertLessThanOrEqual(v.max() ?? 2, 1, "uniforms are ≤ 1 on \(d.spec)")
      let mean = v.map(Double.init).reduce(0, +) / Double(big)
      XCTAssertEqual(mean, 0.5, accuracy: 5 * (1 / (12 * Double(big))).squareRoot(), "mean on \(d.spec)")
      if let cpu = cpuBig {
        XCTAssertEqual(bits(v), cpu, "a million uniforms on \(d.spec) vs the CPU, bit for bit")
      } else {
        cpuBig = bits(v)
      }
    }
  }

  // MARK: 5. The fused LeakyReLU slope

  func testFusedLeakyReLUSlopeOnEveryKernelPath() throws {
    XCTAssertEqual(ActivationFunction(name: "leaky_relu"), .leakyRelu(slope: 0.2))
    XCTAssertEqual(ActivationFunction(name: "leaky_relu:0.3"), .leakyRelu(slope: 0.3))
    XCTAssertEqual(ActivationFunction.leakyRelu(slope: 0.2).fused.alpha, 0.2)
    // (n, c, h, w, cout, kernel, stride): direct stride 1 (several images, one image), strided (im2col),
    // 1×1 (no unfolding), and Winograd (3×3 stride 1, 16 → 16 channels, 4·16·16 = 1,024 output positions).
    let convs: [(n: Int, c: Int, h: Int, w: Int, cout: Int, k: Int, s: Int)] = [
      (2, 3, 8, 8, 4, 3, 1), (1, 3, 8, 8, 9, 3, 1), (2, 3, 9, 8, 4, 3, 2), (2, 4, 6, 6, 5, 1, 1),
      (4, 16, 16, 16, 16, 3, 1),
    ]
    for d in devices() {
      for (ci, k) in convs.enumerated() {
        let x = try Tensor(
          values(k.n * k.c * k.h * k.w, seed: UInt64(10 + ci), in: -2...2), shape: [k.n, k.c, k.h, k.w], on: d
        )
        let w = try Tensor(
          values(k.cout * k.c * k.k * k.k, seed: UInt64(20 + ci), in: -0.5...0.5),
          shape: [k.cout, k.c, k.k, k.k],
          on: d)
        let b = try Tensor(values(k.cout, seed: UInt64(30 + ci)), shape: [k.cout], on: d)
        let pad = k.k / 2
        let p = (pad, pad, pad, pad)
        let plain = try x.conv2d(weight: w, bias: b, stride: (k.s, k.s), padding: p)
        let pre = try plain.toArray()
        XCTAssertGreaterThan(
          pre.filter { $0 < -0.1 }.count, pre.count / 10, "conv case \(ci) has negative outputs")
        var outputs: [Float: [Float]] = [:]
        for slope: Float in [0.2, 0.01] {
          let fused = try x.conv2d(
            weight: w, bias: b, stride: (k.s, k.s), padding: p, activation: .leakyRelu, activationAlpha: slope
          )
          let composed = try plain.leakyRelu(alpha: slope).toArray().map(Double.init)
          assertClose(
            try fused.toArray(), composed, rtol: 1e-6, atol: 1e-6,
            "conv case \(ci) fused leaky ReLU \(slope) on \(d.spec)")
          outputs[slope] = try fused.toArray()
        }
        XCTAssertGreaterThan(
          zip(outputs[0.2]!, outputs[0.01]!).map { Swift.abs($0 - $1) }.max() ?? 0, 0.1,
          "conv case \(ci): slopes 0.2 and 0.01 give the same output on \(d.spec)")
        // Through the layer: Conv2d(x, activation: .leakyRelu(slope: 0.2)).
        let layer = try Conv2d(k.c, k.cout, kernelSize: k.k, stride: k.s, padding: pad, on: d)
        try layer.weight.assign(w)
        try layer.bias!.assign(b)
        assertClose(
          try layer(x, activation: .leakyRelu(slope: 0.2)).toArray(),
          try plain.leakyRelu(alpha: 0.2).toArray().map(Double.init), rtol: 1e-6, atol: 1e-6,
          "Conv2d layer case \(ci) with LeakyReLU(0.2) on \(d.spec)")
      }
      for (li, (rows, inF, outF)) in [(7, 9, 5), (64, 128, 96)].enumerated() {
        let x = try Tensor(values(rows * inF, seed: UInt64(40 + li), in: -2...2), shape: [rows, inF], on: d)
        let w = try Tensor(
          values(outF * inF, seed: UInt64(50 + li), in: -0.5...0.5), shape: [outF, inF], on: d)
        let b = try Tensor(values(outF, seed: UInt64(60 + li)), shape: [outF], on: d)
        let plain = try x.linear(weight: w, bias: b)
        var outputs: [Float: [Float]] = [:]
        for slope: Float in [0.2, 0.01] {
          let fused = try x.linear(weight: w, bias: b, activation: .leakyRelu, activationAlpha: slope)
            .toArray()
          assertClose(
            fused, try plain.leakyRelu(alpha: slope).toArray().map(Double.init), rtol: 1e-6, atol: 1e-6,
            "linear \(rows)×\(inF)→\(outF) fused leaky ReLU \(slope) on \(d.spec)")
          outputs[slope] = fused
        }
        XCTAssertGreaterThan(
          zip(outputs[0.2]!, outputs[0.01]!).map { Swift.abs($0 - $1) }.max() ?? 0, 0.1,
          "linear \(li): slopes 0.2 and 0.01 give the same output on \(d.spec)")
        let layer = try Linear(inF, outF, on: d)
        try layer.weight.assign(w)
        try layer.bias!.assign(b)
        assertClose(
          try layer(x, activation: .leakyRelu(slope: 0.2)).toArray(),
          try plain.leakyRelu(alpha: 0.2).toArray().map(Double.init), rtol: 1e-6, atol: 1e-6,
          "Linear layer \(li) with LeakyReLU(0.2) on \(d.spec)")
      }
    }
  }

  // MARK: 6. Bookkeeping

  /// A nested model: an own parameter, a Sequential encoder, a BatchNorm2d, a Dropout and a Linear head.
  final class TinyNet: Module, UnaryLayer {
    let scale: Tensor
    let encoder: Sequential
    let norm: BatchNorm2d
    let drop: Dropout
    let head: Linear

    init(on d: Device) throws {
      scale = try Tensor.full(1, shape: [1], on: d)
      encoder = Sequential([
        try Conv2d(2, 4, kernelSize: 3, padding: 1, on: d), ActivationLayer(.relu),
        try Conv2d(4, 4, kernelSize: 3, stride: 2, padding: 1, on: d),
      ])
      norm = try BatchNorm2d(4, on: d)
      drop = try Dropout(p: 0.5)
      head = try Linear(64, 3, on: d)
      super.init()
      register(parameter: "scale", scale, initializer: .normWeight)
      child("encoder", encoder)
      child("norm", norm)
      child("drop", drop)
      child("head", head)
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
      try head(try drop(try norm(try encoder(x))).reshaped([x.shape[0], -1])) * scale
    }
  }

  func testNamesCountsAndModes() throws {
    let net = try TinyNet(on: .cpu)
    XCTAssertEqual(
      net.namedParameters.map(\.name),
      [
        "scale", "encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias", "norm.weight",
        "norm.bias", "head.weight", "head.bias",
      ])
    XCTAssertEqual(
      net.namedBuffers.map(\.name), ["norm.running_mean", "norm.running_var", "norm.num_batches_tracked"])
    XCTAssertEqual(net.namedBuffers.map(\.tensor.shape), [[4], [4], []])
    XCTAssertEqual(
      net.namedModules.map(\.name),
      ["", "encoder", "encoder.0", "encoder.1", "encoder.2", "norm", "drop", "head"])
    XCTAssertEqual(net.children.map(\.name), ["encoder", "norm", "drop", "head"])
    XCTAssertEqual(net.encoder.namedParameters.map(\.name), ["0.weight", "0.bias", "2.weight", "2.bias"])
    XCTAssertEqual(net.sortedParameters.map(\.name), net.namedParameters.map(\.name).sorted())
    XCTAssertTrue(
      net.trainableParameters[0] === net.namedParameters.first { $0.name == "encoder.0.bias" }!.tensor)
    // 1 + (4·2·9 + 4) + (4·4·9 + 4) + (4 + 4) + (3·64 + 3)
    XCTAssertEqual(net.parameterCount, 428)
    XCTAssertEqual(net.stateDict.map(\.name), net.namedParameters.map(\.name) + net.namedBuffers.map(\.name))
    // An empty module and `parameter(_:shape:initializer:on:)`.
    let bare = Module()
    XCTAssertEqual(bare.parameterCount, 0)
    let gain = try bare.parameter("gain", shape: [2, 3], initializer: .normWeight, on: .cpu)
    XCTAssertEqual(try gain.toArray(), [Float](repeating: 1, count: 6))
    XCTAssertEqual(bare.namedParameters.map(\.name), ["gain"])
    XCTAssertEqual(bare.parameterCount, 6)

    // train()/eval() reach every module of the tree; a subtree can be switched alone.
    XCTAssertTrue(net.namedModules.allSatisfy { $0.module.isTraining })
    net.eval()
    XCTAssertTrue(net.namedModules.allSatisfy { !$0.module.isTraining })
    net.train()
    XCTAssertTrue(net.namedModules.allSatisfy { $0.module.isTraining })
    net.encoder.eval()
    XCTAssertEqual(
      net.namedModules.filter { !$0.module.isTraining }.map(\.name),
      ["encoder", "encoder.0", "encoder.1", "encoder.2"])
    net.train(true)
    XCTAssertTrue(net.namedModules.allSatisfy { $0.module.isTraining })
  }

  /// What the modes do, on every device: evaluation is deterministic and leaves the statistics alone;
  /// training updates them and draws dropout masks.
  func testTrainAndEvalModesChangeTheForward() throws {
    for d in devices() {
      let net = try TinyNet(on: d)
      try net.initialize(seed: 3)
      let x = try Tensor(values(2 * 2 * 8 * 8, seed: 17, in: -1...3), shape: [2, 2, 8, 8], on: d)
      net.eval()
      let before = try snapshot(net)
      Dropout.setNoise(of: net, seed: 1, step: 0)
      let e1 = try net(x).toArray()
      Dropout.setNoise(of: net, seed: 1, step: 1)
      let e2 = try net(x).toArray()
      XCTAssertEqual(bits(e1), bits(e2), "eval: no dropout on \(d.spec)")
      XCTAssertEqual(try snapshot(net), before, "eval: running statistics untouched on \(d.spec)")
      net.train()
      Dropout.setNoise(of: net, seed: 1, step: 0)
      let t1 = try net(x).toArray()
      XCTAssertEqual(try net.norm.numBatchesTracked.toArray(), [1])
      XCTAssertNotEqual(
        try net.norm.runningMean.toArray(), [0, 0, 0, 0], "train: running mean moves on \(d.spec)")
      Dropout.setNoise(of: net, seed: 1, step: 1)
      let t2 = try net(x).toArray()
      XCTAssertEqual(try net.norm.numBatchesTracked.toArray(), [2])
      XCTAssertNotEqual(t1, t2, "train: another step, another dropout mask on \(d.spec)")
      XCTAssertNotEqual(t1, e1, "train vs eval on \(d.spec)")
    }
  }

  func testStrictLoadErrorsNameTheTensorAndChangeNothing() throws {
    for d in devices() {
      let net = try TinyNet(on: d)
      try net.initialize(seed: 8)
      // New values for every tensor, so a partial load would show.
      var state: [String: TensorData] = [:]
      for (n, t) in net.stateDict {
        state[n] = TensorData(shape: t.shape, values: values(t.count, seed: seed("load/" + n)))
      }
      let before = try snapshot(net)
      func unchanged(_ what: String, line: UInt = #line) throws {
        XCTAssertEqual(try snapshot(net), before, "\(what) on \(d.spec): the module changed", line: line)
      }

      var missing = state
      missing["encoder.2.bias"] = nil
      assertModuleError(try net.load(missing), .missing("encoder.2.bias"))
      try unchanged("missing")
      var noTracked = state
      noTracked["norm.num_batches_tracked"] = nil
      assertModuleError(try net.load(noTracked), .missing("norm.num_batches_tracked"))
      try unchanged("missing buffer")

      var extra = state
      extra["zeta"] = TensorData(shape: [1], values: [0])
      extra["encoder.3.weight"] = TensorData(shape: [2], values: [1, 2])
      assertModuleError(try net.load(extra), .unexpected(["encoder.3.weight", "zeta"]))
      try unchanged("unexpected")

      // Transposed: the same element count, another shape.
      var transposed = state
      transposed["head.weight"] = TensorData(shape: [64, 3], values: state["head.weight"]!.values)
      assertModuleError(
        try net.load(transposed), .shape(name: "head.weight", found: [64, 3], expected: [3, 64]))
      try unchanged("transposed weight")
      assertModuleError(
        try net.load(transposed, strict: false),
        .shape(name: "head.weight", found: [64, 3], expected: [3, 64]))
      try unchanged("transposed weight, not strict")
      var wrongScalar = state
      wrongScalar["norm.num_batches_tracked"] = TensorData(shape: [2], values: [1, 2])
      assertModuleError(
        try net.load(wrongScalar), .shape(name: "norm.num_batches_tracked", found: [2], expected: []))
      try unchanged("misshapen num_batches_tracked")
      var wrongBias = state
      wrongBias["encoder.0.bias"] = TensorData(shape: [5], values: [1, 2, 3, 4, 5])
      assertModuleError(try net.load(wrongBias), .shape(name: "encoder.0.bias", found: [5], expected: [4]))
      try unchanged("misshapen bias")
      XCTAssertEqual(ModuleError.missing("a.b").description, "weight a.b is missing")

      // Not strict: only the given tensors change; unknown ones are ignored.
      try net.load(
        ["head.bias": state["head.bias"]!, "unused": TensorData(shape: [1], values: [3])], strict: false)
      var expected = before
      expected["head.bias"] = bits(state["head.bias"]!.values)
      XCTAssertEqual(try snapshot(net), expected, "non-strict partial load on \(d.spec)")

      // A complete load sets everything, bit for bit.
      try net.load(state)
      XCTAssertEqual(try snapshot(net), state.mapValues { bits($0.values) }, "strict load on \(d.spec)")
    }
  }

  func testSaveLoadRoundTripIsBitExact() throws {
    let dir = try temporaryDirectory(self)
    let all = devices()
    for (i, d) in all.enumerated() {
      let net = try TinyNet(on: d)
      try net.initialize(seed: 21)
      try net.scale.assign(try Tensor([0.75], shape: [1], on: d))
      // Move the buffers away from their initial values.
      Dropout.setNoise(of: net, seed: 2, step: 0)
      for k in 0..<2 {
        _ = try net(
          try Tensor(values(3 * 2 * 8 * 8, seed: UInt64(30 + k), in: -1...2), shape: [3, 2, 8, 8], on: d))
      }
      let saved = try snapshot(net)
      XCTAssertEqual(saved["norm.num_batches_tracked"], [Float(2).bitPattern])
      let url = dir.appendingPathComponent("net-\(i).safetensors")
      try net.save(to: url)
      let file = try SafeTensors.read(contentsOf: url)
      XCTAssertEqual(Set(file.tensors.keys), Set(net.stateDict.map(\.name)))
      XCTAssertEqual(file.tensors["norm.num_batches_tracked"]?.shape, [], "saved as PyTorch's scalar")
      XCTAssertEqual(file.metadata, ["format": "pt"])
      for target in [Device.cpu, d, all.last!] {
        let fresh = try TinyNet(on: target)
        try fresh.initialize(seed: 22)
        XCTAssertNotEqual(try snapshot(fresh), saved)
        try fresh.load(contentsOf: url)
        XCTAssertEqual(try snapshot(fresh), saved, "saved on \(d.spec), loaded on \(target.spec)")
        // The loaded model computes what the saved one does (bit for bit on the same device).
        net.eval()
        fresh.eval()
        let x = values(2 * 2 * 8 * 8, seed: 40, in: -1...1)
        let want = try net(try Tensor(x, shape: [2, 2, 8, 8], on: d)).toArray()
        let got = try fresh(try Tensor(x, shape: [2, 2, 8, 8], on: target)).toArray()
        if target === d {
          XCTAssertEqual(bits(got), bits(want), "outputs after the round trip on \(d.spec)")
        } else {
          assertClose(
            got, want.map(Double.init), rtol: 1e-4, atol: 1e-5,
            "outputs, saved on \(d.spec), loaded on \(target.spec)")
        }
        net.train()
      }
    }
  }
}
