// Tests of the GAN layers (SpectralNorm.swift, ConditionalBatchNorm2d in Layers.swift, DiffAugment.swift) on
// every device of `Device.all()`, with ModuleTests' helpers and gradient-check harness:
//   1. spectral normalisation: σ against the largest singular value (Jacobi on the Gram matrix, Float64)
//      after 20 training forwards; tape gradients of W/σ(W) layers against Float64 central differences
//      (evaluation mode, fixed u and v), fused paths included; train updates u and v, eval does not; state
//      dict names and shapes, save/load, initialisation streams, argument errors;
//   2. ConditionalBatchNorm2d: gradients, γ = 1 / β = 0 initialisation, labels select rows, batch vs running
//      statistics, errors; BatchNorm2d without affine;
//   3. DiffAugment: gradients, an independent Float64 reference of the pixels, the Philox keying of the draws,
//      batch splits, device agreement, errors.
import Foundation
import XCTest

@testable import GPUGenNN

// MARK: - Float64 linear algebra

/// The weight (Float64) as the spectral norm's (rows, columns) matrix: axis `dim` first, the rest flattened.
private func weightMatrix(_ w: [Double], shape: [Int], dim: Int) -> (rows: Int, columns: Int, m: [Double]) {
  let rows = shape[dim], columns = w.count / rows
  guard dim != 0 else { return (rows, columns, w) }
  // dim 1 of (a, b, rest…): M[j][i·rest + k] = w[(i·b + j)·rest + k].
  precondition(dim == 1, "only dims 0 and 1 are used")
  let (a, rest) = (shape[0], shape.dropFirst(2).reduce(1, *))
  var m = [Double](repeating: 0, count: w.count)
  for i in 0..<a {
    for j in 0..<rows {
      for k in 0..<rest { m[j * columns + i * rest + k] = w[(i * rows + j) * rest + k] }
    }
  }
  return (rows, columns, m)
}

/// The eigenvalues of a symmetric n×n matrix by cyclic Jacobi rotations.
private func symmetricEigenvalues(_ matrix: [Double], n: Int) -> [Double] {
  var a = matrix
  for _ in 0..<100 {
    var off = 0.0
    for p in 0..<n { for q in (p + 1)..<n { off += a[p * n + q] * a[p * n + q] } }
    if off < 1e-28 { break }
    for p in 0..<n {
      for q in (p + 1)..<n where a[p * n + q] != 0 {
        let theta = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q])
        let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
        let c = 1 / (t * t + 1).squareRoot(), s = t * c
        for k in 0..<n {
          let (akp, akq) = (a[k * n + p], a[k * n + q])
          a[k * n + p] = c * akp - s * akq
          a[k * n + q] = s * akp + c * akq
        }
        for k in 0..<n {
          let (apk, aqk) = (a[p * n + k], a[q * n + k])
          a[p * n + k] = c * apk - s * aqk
          a[q * n + k] = s * apk + c * aqk
        }
      }
    }
  }
  return (0..<n).map { a[$0 * n + $0] }
}

/// The largest singular value of a (rows, columns) matrix: √ of the largest eigenvalue of the smaller Gram.
private func largestSingularValue(_ m: [Double], rows: Int, columns: Int) -> Double {
  let byRows = rows <= columns
  let n = byRows ? rows : columns, k = byRows ? columns : rows
  func at(_ i: Int, _ j: Int) -> Double { byRows ? m[i * columns + j] : m[j * columns + i] }
  var g = [Double](repeating: 0, count: n * n)
  for i in 0..<n {
    for j in 0..<n { for l in 0..<k { g[i * n + j] += at(i, l) * at(j, l) } }
  }
  return symmetricEigenvalues(g, n: n).max()!.squareRoot()
}

private func normalize(_ x: [Double]) -> [Double] {
  let n = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
  return x.map { $0 / n }
}

/// The converged singular vectors (u, v) of the largest singular value (100 Float64 power iterations).
private func singularVectors(_ m: [Double], rows: Int, columns: Int) -> (u: [Double], v: [Double]) {
  var u = normalize((0..<rows).map { 1 + 0.1 * Double($0) })
  var v = [Double](repeating: 0, count: columns)
  for _ in 0..<100 {
    var mtu = [Double](repeating: 0, count: columns)
    for i in 0..<rows { for j in 0..<columns { mtu[j] += m[i * columns + j] * u[i] } }
    v = normalize(mtu)
    var mv = [Double](repeating: 0, count: rows)
    for i in 0..<rows { for j in 0..<columns { mv[i] += m[i * columns + j] * v[j] } }
    u = normalize(mv)
  }
  return (u, v)
}

/// uᵀ·M·v.
private func sigma(_ m: [Double], rows: Int, columns: Int, u: [Double], v: [Double]) -> Double {
  var s = 0.0
  for i in 0..<rows { for j in 0..<columns { s += u[i] * m[i * columns + j] * v[j] } }
  return s
}

/// Asserts that `body` throws `expected` (for calls that return a value).
private func assertThrowsModuleError<T>(
  _ body: @autoclosure () throws -> T, _ expected: ModuleError, file: StaticString = #filePath,
  line: UInt = #line
) {
  XCTAssertThrowsError(try body(), file: file, line: line) { error in
    XCTAssertEqual(error as? ModuleError, expected, "\(error)", file: file, line: line)
  }
}

private func norm(_ x: [Float]) -> Double { x.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot() }

// MARK: - Spectral-norm gradient cases

/// A spectrally normalised layer case for `GradCheck.run`: the layer is put in evaluation mode with u and v
/// fixed to the converged singular vectors of the weight the harness assigns (drawn from the same seed as
/// the harness draws it), and the reference divides that weight by uᵀ·W·v with the same (Float32) u and v.
private func spectralCase(
  _ name: String, input: [Int]?, weightShape: [Int], dim: Int, weightName: String = "weight_orig",
  make: @escaping (Device) throws -> (Module, any SpectralNormalizable, (Tensor?) throws -> Tensor),
  reference: @escaping (_ v: [String: [Double]], _ normalizedWeight: [Double]) -> [Double]
) -> LayerCase {
  let count = weightShape.reduce(1, *)
  let w = values(count, seed: seed(name + "/" + weightName)).map(Double.init)
  let (rows, columns, m) = weightMatrix(w, shape: weightShape, dim: dim)
  let (u64, v64) = singularVectors(m, rows: rows, columns: columns)
  let (u, v) = (u64.map { Float($0) }, v64.map { Float($0) })
  return LayerCase(
    name: name, input: input,
    make: { d in
      let (module, layer, forward) = try make(d)
      let sn = try XCTUnwrap(layer.spectralNorm)
      try sn.u.assign(try Tensor(u, shape: [rows], on: d))
      try sn.v.assign(try Tensor(v, shape: [columns], on: d))
      module.eval()
      return (module, forward)
    },
    reference: { vals in
      let w = vals[weightName]!
      let (_, _, m) = weightMatrix(w, shape: weightShape, dim: dim)
      let s = sigma(
        m, rows: rows, columns: columns, u: u.map(Double.init), v: v.map(Double.init))
      return reference(vals, w.map { $0 / s })
    })
}

// MARK: - DiffAugment reference

/// The augmentation in Float64 from the documented draws: translation reads (i + dy, j + dx) or 0, cutout
/// zeroes the box.
private func referenceAugment(
  _ x: [Double], _ shape: [Int], policies: [DiffAugmentPolicy], seed: UInt64, step: Int, stream: Int,
  firstSample: Int = 0
) -> [Double] {
  let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
  var y = x
  for p in policies {
    let s = stream + p.streamOffset
    switch p {
    case .translation:
      let t = DiffAugment.translations(
        samples: n, height: h, width: w, seed: seed, step: step, stream: s, firstSample: firstSample)
      var out = [Double](repeating: 0, count: y.count)
      for b in 0..<n {
        for ch in 0..<c {
          for i in 0..<h {
            for j in 0..<w {
              let (si, sj) = (i + t[b].dy, j + t[b].dx)
              guard (0..<h).contains(si), (0..<w).contains(sj) else { continue }
              out[((b * c + ch) * h + i) * w + j] = y[((b * c + ch) * h + si) * w + sj]
            }
          }
        }
      }
      y = out
    case .cutout:
      let boxes = DiffAugment.cutouts(
        samples: n, height: h, width: w, seed: seed, step: step, stream: s, firstSample: firstSample)
      for b in 0..<n {
        for ch in 0..<c {
          for i in boxes[b].rows { for j in boxes[b].columns { y[((b * c + ch) * h + i) * w + j] = 0 } }
        }
      }
    }
  }
  return y
}

// MARK: - Tests

final class GANLayerTests: XCTestCase {
  // MARK: 1. Spectral normalisation

  func testSpectralNormSigmaConvergesToTheLargestSingularValue() throws {
    var worst = 0.0
    var lines: [String] = []
    for d in devices() {
      // (name, layer, weight shape, dim, one training forward).
      let linear = try Linear(10, 6, on: d)
      let conv = try Conv2d(3, 4, kernelSize: 3, padding: 1, on: d)
      let transposed = try ConvTranspose2d(3, 5, kernelSize: 3, stride: 2, padding: 1, on: d)
      let embedding = try Embedding(7, 5, on: d)
      let x2 = try Tensor(values(20, seed: 1), shape: [2, 10], on: d)
      let x4 = try Tensor(values(2 * 3 * 4 * 4, seed: 2), shape: [2, 3, 4, 4], on: d)
      let layers: [(String, any SpectralNormalizable, Int, () throws -> Tensor)] = [
        ("Linear(10, 6)", linear, 0, { try linear(x2) }),
        ("Conv2d(3, 4, 3)", conv, 0, { try conv(x4) }),
        ("ConvTranspose2d(3, 5, 3)", transposed, 1, { try transposed(x4) }),
        ("Embedding(7, 5)", embedding, 0, { try embedding([0, 3, 6]) }),
      ]
      for (name, layer, dim, forward) in layers {
        let label = "\(name) on \(d.spec)"
        let weight = try XCTUnwrap(layer.namedParameters.first { $0.name == "weight" }?.tensor, label)
        try weight.assign(try Tensor(values(weight.count, seed: seed(name)), shape: weight.shape, on: d))
        try layer.applySpectralNorm(powerIterations: 1, eps: 1e-12)
        let sn = try XCTUnwrap(layer.spectralNorm, label)
        XCTAssertEqual(sn.dim, dim, label)
        for _ in 0..<20 { _ = try forward() }
        let got = Double(try sn.sigma(of: weight).toArray()[0])
        let (rows, columns, m) = weightMatrix(
          try weight.toArray().map(Double.init), shape: weight.shape, dim: dim)
        let want = largestSingularValue(m, rows: rows, columns: columns)
        // The Float64 power iteration agrees with Jacobi (a check of the oracle itself).
        let (u, v) = singularVectors(m, rows: rows, columns: columns)
        XCTAssertEqual(sigma(m, rows: rows, columns: columns, u: u, v: v), want, accuracy: 1e-9 * want, label)
        let rel = abs(got - want) / want
        worst = max(worst, rel)
        XCTAssertLessThan(rel, 0.01, "\(label): σ \(got), largest singular value \(want)")
        XCTAssertEqual(norm(try sn.u.toArray()), 1, accuracy: 1e-5, label)
        XCTAssertEqual(norm(try sn.v.toArray()), 1, accuracy: 1e-5, label)
        lines.append(String(format: "%@: σ %.6f vs %.6f (rel %.1e)", label, got, want, rel))
      }
    }
    for l in lines { print("GANLayerTests σ — \(l)") }
    print(
      String(format: "GANLayerTests σ vs SVD after 20 training forwards: worst relative error %.2e", worst))
  }

  func testSpectralNormGradients() throws {
    let cases = [
      spectralCase(
        "SN Linear(5, 4)", input: [3, 5], weightShape: [4, 5], dim: 0,
        make: { d in
          let l = try Linear(5, 4, on: d)
          try l.applySpectralNorm()
          return (l, l, { try l($0!) })
        },
        reference: { v, w in Ref.linear(v["input"]!, k: 5, w, v["bias"]) }),
      spectralCase(
        "SN Conv2d(3, 4, 3, padding 1)", input: [2, 3, 5, 5], weightShape: [4, 3, 3, 3], dim: 0,
        make: { d in
          let l = try Conv2d(3, 4, kernelSize: 3, padding: 1, on: d)
          try l.applySpectralNorm()
          return (l, l, { try l($0!) })
        },
        reference: { v, w in
          Ref.conv2d(
            v["input"]!, [2, 3, 5, 5], w, [4, 3, 3, 3], v["bias"], stride: (1, 1), padding: (1, 1, 1, 1))
        }),
      spectralCase(
        "SN ConvTranspose2d(3, 2, 3, stride 2, padding 1)", input: [2, 3, 3, 4], weightShape: [3, 2, 3, 3],
        dim: 1,
        make: { d in
          let l = try ConvTranspose2d(3, 2, kernelSize: 3, stride: 2, padding: 1, on: d)
          try l.applySpectralNorm()
          return (l, l, { try l($0!) })
        },
        reference: { v, w in
          Ref.convTranspose2d(
            v["input"]!, [2, 3, 3, 4], w, [3, 2, 3, 3], v["bias"], stride: 2, padding: 1, outputPadding: 0)
        }),
      spectralCase(
        "SN Embedding(5, 3)", input: nil, weightShape: [5, 3], dim: 0,
        make: { d in
          let e = try Embedding(5, 3, on: d)
          try e.applySpectralNorm()
          return (e, e, { _ in try e([1, 3, 3, 0, 4, 1]) })
        },
        reference: { _, w in [1, 3, 3, 0, 4, 1].flatMap { Array(w[($0 * 3)..<($0 * 3 + 3)]) } }),
      // The fused paths: Sequential hands the LeakyReLU to the layer.
      spectralCase(
        "SN Sequential(Conv2d(2, 3, 3, padding 1), LeakyReLU(0.2))", input: [2, 2, 4, 4],
        weightShape: [3, 2, 3, 3], dim: 0, weightName: "0.weight_orig",
        make: { d in
          let c = try Conv2d(2, 3, kernelSize: 3, padding: 1, on: d)
          try c.applySpectralNorm()
          let s = Sequential([c, ActivationLayer(.leakyRelu(slope: 0.2))])
          return (s, c, { try s($0!) })
        },
        reference: { v, w in
          Ref.leakyRelu(
            Ref.conv2d(
              v["input"]!, [2, 2, 4, 4], w, [3, 2, 3, 3], v["0.bias"], stride: (1, 1), padding: (1, 1, 1, 1)),
            slope: Double(Float(0.2)))
        }),
      spectralCase(
        "SN Sequential(Linear(6, 4), LeakyReLU(0.2))", input: [3, 6], weightShape: [4, 6], dim: 0,
        weightName: "0.weight_orig",
        make: { d in
          let l = try Linear(6, 4, on: d)
          try l.applySpectralNorm()
          let s = Sequential([l, ActivationLayer(.leakyRelu(slope: 0.2))])
          return (s, l, { try s($0!) })
        },
        reference: { v, w in
          Ref.leakyRelu(Ref.linear(v["input"]!, k: 6, w, v["0.bias"]), slope: Double(Float(0.2)))
        }),
      spectralCase(
        "SN ConvTranspose2d(2, 3, 3, stride 2, padding 1) + fused ReLU", input: [1, 2, 3, 3],
        weightShape: [2, 3, 3, 3], dim: 1,
        make: { d in
          let l = try ConvTranspose2d(2, 3, kernelSize: 3, stride: 2, padding: 1, on: d)
          try l.applySpectralNorm()
          return (l, l, { try l($0!, activation: .relu) })
        },
        reference: { v, w in
          Ref.leakyRelu(
            Ref.convTranspose2d(
              v["input"]!, [1, 2, 3, 3], w, [2, 3, 3, 3], v["bias"], stride: 2, padding: 1, outputPadding: 0),
            slope: 0)
        }),
    ]
    for line in try GradCheck.run(cases) { print("GANLayerTests gradients — \(line)") }
  }

  func testSpectralNormTrainingUpdatesUAndVAndEvaluationDoesNot() throws {
    var errors = ErrorStats()
    for d in devices() {
      let label = d.spec
      let l = try Linear(6, 4, on: d)
      try l.weight.assign(try Tensor(values(24, seed: 11), shape: [4, 6], on: d))
      try l.bias!.assign(try Tensor(values(4, seed: 12), shape: [4], on: d))
      try l.applySpectralNorm()
      let sn = try XCTUnwrap(l.spectralNorm)
      let x = try Tensor(values(18, seed: 13), shape: [3, 6], on: d)
      let w64 = try l.weight.toArray().map(Double.init), b64 = try l.bias!.toArray().map(Double.init)
      let x64 = try x.toArray().map(Double.init)
      func expected(_ u: [Float], _ v: [Float]) -> [Double] {
        let s = sigma(w64, rows: 4, columns: 6, u: u.map(Double.init), v: v.map(Double.init))
        return Ref.linear(x64, k: 6, w64.map { $0 / s }, b64)
      }

      l.eval()
      let (u0, v0) = (try sn.u.toArray(), try sn.v.toArray())
      let yEval = try l(x)
      XCTAssertEqual(bits(try sn.u.toArray()), bits(u0), "\(label): evaluation changed u")
      XCTAssertEqual(bits(try sn.v.toArray()), bits(v0), "\(label): evaluation changed v")
      errors.merge(
        assertClose(try yEval.toArray(), expected(u0, v0), rtol: 1e-4, atol: 1e-5, "\(label): eval"))

      l.train()
      let yTrain = try l(x)
      let (u1, v1) = (try sn.u.toArray(), try sn.v.toArray())
      XCTAssertNotEqual(bits(u1), bits(u0), "\(label): training did not update u")
      XCTAssertNotEqual(bits(v1), bits(v0), "\(label): training did not update v")
      // One iteration from (u0, v0): v1 = normalize(Wᵀu0), u1 = normalize(W·v1).
      let vWant = normalize((0..<6).map { j in (0..<4).reduce(0) { $0 + w64[$1 * 6 + j] * Double(u0[$1]) } })
      let uWant = normalize((0..<4).map { i in (0..<6).reduce(0) { $0 + w64[i * 6 + $1] * vWant[$1] } })
      errors.merge(assertClose(v1, vWant, rtol: 1e-5, atol: 1e-6, "\(label): v after one power iteration"))
      errors.merge(assertClose(u1, uWant, rtol: 1e-5, atol: 1e-6, "\(label): u after one power iteration"))
      // The training forward divides by σ of the updated vectors.
      errors.merge(
        assertClose(try yTrain.toArray(), expected(u1, v1), rtol: 1e-4, atol: 1e-5, "\(label): train"))

      // Two training forwards recorded before one backward (a discriminator on real, then fake images):
      // the first forward's gradient uses the u and v it saw, not the ones the second wrote in place.
      let r = try Tensor(values(12, seed: 14), shape: [3, 4], on: d)
      let start = (try sn.u.toArray(), try sn.v.toArray())
      func gradient(secondForward: Bool) throws -> [Float] {
        try sn.u.assign(try Tensor(start.0, shape: [4], on: d))
        try sn.v.assign(try Tensor(start.1, shape: [6], on: d))
        let tape = Tape()
        tape.watch(l.weight)
        let loss = try tape.record {
          let first = try (l(x) * r).sum()
          if secondForward { _ = try l(x) }
          return first
        }
        return try XCTUnwrap(try tape.gradients(of: loss, wrt: [l.weight])[0]).toArray()
      }
      XCTAssertEqual(bits(try gradient(secondForward: true)), bits(try gradient(secondForward: false)), label)

      // Conv2d's per-image bias / residual path uses the normalised weight too. (Initialised first: an
      // all-zero weight has σ = 0, and W/σ is NaN, as in torch.)
      let conv = try Conv2d(2, 3, kernelSize: 3, padding: 1, on: d)
      try conv.initialize(seed: 16)
      try conv.applySpectralNorm()
      conv.eval()
      let xc = try Tensor(values(2 * 2 * 4 * 4, seed: 15), shape: [2, 2, 4, 4], on: d)
      let plain = try conv(xc).toArray()
      let viaBias = try conv(xc, imageBias: try Tensor.zeros([2, 3], on: d)).toArray()
      assertClose(viaBias, plain.map(Double.init), rtol: 1e-6, atol: 1e-6, "\(label): conv with image bias")
    }
    print("GANLayerTests spectral norm train/eval — \(errors.text)")
  }

  func testSpectralNormStateDictSaveLoadAndErrors() throws {
    let dir = try temporaryDirectory(self)
    for d in devices() {
      let label = d.spec
      let l = try Linear(6, 4, on: d)
      XCTAssertNil(l.spectralNorm)
      try l.applySpectralNorm(powerIterations: 2, eps: 1e-6)
      XCTAssertEqual(l.namedParameters.map(\.name), ["weight_orig", "bias"], label)
      XCTAssertEqual(l.namedBuffers.map(\.name), ["weight_u", "weight_v"], label)
      XCTAssertEqual(l.namedBuffers.map(\.tensor.shape), [[4], [6]], label)
      XCTAssertTrue(l.namedParameters[0].tensor === l.weight, label)
      XCTAssertEqual(l.spectralNorm?.powerIterations, 2)
      XCTAssertEqual(l.spectralNorm?.eps, 1e-6)

      let t = try ConvTranspose2d(3, 5, kernelSize: 3, on: d)
      try t.applySpectralNorm()
      XCTAssertEqual(
        t.stateDict.map(\.name), ["weight_orig", "bias", "weight_u", "weight_v"], label)
      XCTAssertEqual(t.namedBuffers.map(\.tensor.shape), [[5], [27]], "\(label): dim 1: (out, in·kh·kw)")
      let e = try Embedding(7, 3, on: d)
      try e.applySpectralNorm()
      XCTAssertEqual(e.stateDict.map(\.name), ["weight_orig", "weight_u", "weight_v"], label)
      XCTAssertEqual(e.namedBuffers.map(\.tensor.shape), [[7], [3]], label)
      let s = Sequential([try Conv2d(2, 3, kernelSize: 3, on: d), ActivationLayer(.relu)])
      try (s.layers[0] as! Conv2d).applySpectralNorm()
      XCTAssertEqual(
        s.stateDict.map(\.name), ["0.weight_orig", "0.bias", "0.weight_u", "0.weight_v"], label)
      XCTAssertEqual(s.namedBuffers.map(\.tensor.shape), [[3], [18]], label)

      // Valid before `initialize`: unit vectors.
      XCTAssertEqual(norm(try l.spectralNorm!.u.toArray()), 1, accuracy: 1e-6, label)
      XCTAssertEqual(norm(try l.spectralNorm!.v.toArray()), 1, accuracy: 1e-6, label)

      // Save/load round trip keeps u and v (after a training forward moved them).
      try l.initialize(seed: 3)
      _ = try l(try Tensor(values(12, seed: 4), shape: [2, 6], on: d))
      let url = dir.appendingPathComponent("sn-\(d.spec.filter(\.isLetter)).safetensors")
      try l.save(to: url)
      let saved = try snapshot(l)
      let m = try Linear(6, 4, on: d)
      try m.applySpectralNorm(powerIterations: 2, eps: 1e-6)
      XCTAssertNotEqual(try snapshot(m), saved, label)
      try m.load(contentsOf: url)
      XCTAssertEqual(try snapshot(m), saved, "\(label): save/load")
      // A layer without spectral norm does not take the file (strict names).
      XCTAssertThrowsError(try Linear(6, 4, on: d).load(contentsOf: url), label)

      // Arguments.
      let fresh = try Conv2d(2, 2, kernelSize: 1, on: d)
      assertModuleError(
        try fresh.applySpectralNorm(powerIterations: 0),
        .invalidArgument("spectral norm: powerIterations must be at least 1, got 0"))
      assertModuleError(
        try fresh.applySpectralNorm(eps: 0),
        .invalidArgument("spectral norm: eps must be positive and finite, got 0.0"))
      XCTAssertNil(fresh.spectralNorm)
      XCTAssertEqual(fresh.namedParameters.map(\.name), ["weight", "bias"], "a failed apply changes nothing")
      try fresh.applySpectralNorm()
      assertModuleError(
        try fresh.applySpectralNorm(), .invalidArgument("spectral norm is already applied to this Conv2d"))
      assertModuleError(
        try fresh.renameParameter("weight", to: "w"), .invalidArgument("renameParameter: no parameter weight")
      )
      assertModuleError(
        try fresh.renameParameter("bias", to: "weight_orig"),
        .invalidArgument("renameParameter: a parameter weight_orig already exists"))
    }
  }

  func testSpectralNormVectorsAreDrawnByInitializeFromBufferStreams() throws {
    var reference: [String: [UInt32]]?
    for d in devices() {
      let label = d.spec
      // Buffers in name order: 0.weight_u, 0.weight_v, 1.num_batches_tracked, 1.running_mean,
      // 1.running_var, 2.weight_u, 2.weight_v.
      let conv = try Conv2d(2, 3, kernelSize: 3, on: d)
      let linear = try Linear(12, 5, on: d)
      let model = Sequential([conv, try BatchNorm2d(3, on: d), linear])
      try conv.applySpectralNorm()
      try linear.applySpectralNorm()
      try Tape.noGrad {
        try (model.layers[1] as! BatchNorm2d).runningMean.assign(try Tensor.full(7, shape: [3], on: d))
      }
      try model.initialize(seed: 21)
      func want(_ count: Int, _ index: Int, slot: Int = 0) throws -> [UInt32] {
        bits(
          try SpectralNorm.unitNormal(
            count: count, eps: 1e-12, seed: 21, stream: Streams.buffer(index, slot: slot), on: .cpu
          ).toArray())
      }
      XCTAssertEqual(bits(try conv.spectralNorm!.u.toArray()), try want(3, 0), label)
      XCTAssertEqual(bits(try conv.spectralNorm!.v.toArray()), try want(18, 1), label)
      XCTAssertEqual(bits(try linear.spectralNorm!.u.toArray()), try want(5, 5), label)
      XCTAssertEqual(bits(try linear.spectralNorm!.v.toArray()), try want(12, 6), label)
      XCTAssertEqual(norm(try linear.spectralNorm!.v.toArray()), 1, accuracy: 1e-6)
      // Buffers without an initialiser keep their values.
      XCTAssertEqual(try (model.layers[1] as! BatchNorm2d).runningMean.toArray(), [7, 7, 7], label)
      // Bit-identical on every device (drawn on the host).
      let state = try snapshot(model)
      if let reference { XCTAssertEqual(state, reference, label) } else { reference = state }
      // A second model of the run (slot 1) draws other vectors.
      try model.initialize(seed: 21, slot: 1)
      XCTAssertEqual(bits(try conv.spectralNorm!.u.toArray()), try want(3, 0, slot: 1), label)
      XCTAssertNotEqual(try want(3, 0, slot: 1), try want(3, 0), label)
    }
    XCTAssertNotEqual(Streams.buffer(0, slot: 1), Streams.buffer(0))
    XCTAssertLessThanOrEqual(Streams.buffer(Streams.parameterSlotWidth - 1, slot: 63), Int(UInt32.max))
  }

  // MARK: 2. Conditional batch norm

  func testConditionalBatchNormGradients() throws {
    let labels = [2, 0, 2, 1]
    let xs = [4, 3, 3, 3]
    let c = LayerCase(
      name: "ConditionalBatchNorm2d(3 channels, 3 classes) in training mode", input: xs,
      make: { d in
        let l = try ConditionalBatchNorm2d(channels: 3, classes: 3, on: d)
        return (l, { try l($0!, labels: labels) })
      },
      reference: { v in
        let ones = [Double](repeating: 1, count: 3), zeros = [Double](repeating: 0, count: 3)
        var y = Ref.batchNormTraining(v["input"]!, xs, ones, zeros, eps: 1e-5)
        let table = v["embed.weight"]!
        for n in 0..<4 {
          for ch in 0..<3 {
            let (g, b) = (table[labels[n] * 6 + ch], table[labels[n] * 6 + 3 + ch])
            for k in 0..<9 { y[(n * 3 + ch) * 9 + k] = g * y[(n * 3 + ch) * 9 + k] + b }
          }
        }
        return y
      },
      inputRange: -1...2)
    for line in try GradCheck.run([c]) { print("GANLayerTests gradients — \(line)") }
  }

  func testConditionalBatchNormInitLabelsModesAndErrors() throws {
    var errors = ErrorStats()
    for d in devices() {
      let label = d.spec
      let l = try ConditionalBatchNorm2d(channels: 2, classes: 3, momentum: 0.1, on: d)
      XCTAssertEqual(l.namedParameters.map(\.name), ["embed.weight"], label)
      XCTAssertEqual(
        l.stateDict.map(\.name),
        ["embed.weight", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"], label)
      let identity: [Float] = [1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0]
      XCTAssertEqual(try l.embed.weight.toArray(), identity, "\(label): γ = 1, β = 0 on creation")
      try l.initialize(seed: 5)
      XCTAssertEqual(try l.embed.weight.toArray(), identity, "\(label): γ = 1, β = 0 after initialize")

      let xs = [4, 2, 2, 3]
      let x64 = values(48, seed: 31, in: -1...2)
      let x = try Tensor(x64, shape: xs, on: d)
      // Fresh: out = BN(x) with batch statistics in training mode.
      let bnRef = Ref.batchNormTraining(x64.map(Double.init), xs, [1, 1], [0, 0], eps: 1e-5)
      errors.merge(
        assertClose(
          try l(x, labels: [0, 1, 2, 0]).toArray(), bnRef, rtol: 1e-4, atol: 1e-5, "\(label): train"))
      // The running statistics moved by that step; evaluation normalises with them.
      let (rm, rv) = (try l.bn.runningMean.toArray(), try l.bn.runningVar.toArray())
      XCTAssertNotEqual(rm, [0, 0], label)
      let table = values(12, seed: 32)
      try l.embed.weight.assign(try Tensor(table, shape: [3, 4], on: d))
      l.eval()
      let labels = [2, 0, 1, 2]
      let got = try l(x, labels: labels).toArray()
      var want = [Double](repeating: 0, count: 48)
      for n in 0..<4 {
        for ch in 0..<2 {
          let (g, b) = (Double(table[labels[n] * 4 + ch]), Double(table[labels[n] * 4 + 2 + ch]))
          for k in 0..<6 {
            let i = (n * 2 + ch) * 6 + k
            want[i] = g * (Double(x64[i]) - Double(rm[ch])) / (Double(rv[ch]) + 1e-5).squareRoot() + b
          }
        }
      }
      errors.merge(assertClose(got, want, rtol: 1e-4, atol: 1e-5, "\(label): eval with running statistics"))
      XCTAssertEqual(try l.bn.runningMean.toArray(), rm, "\(label): eval does not update the statistics")
      // Different labels, different outputs (the same image under classes 0 and 1).
      let same = try Tensor(Array(x64[0..<12]) + Array(x64[0..<12]), shape: [2, 2, 2, 3], on: d)
      let pair = try l(same, labels: [0, 1]).toArray()
      XCTAssertNotEqual(Array(pair[0..<12]), Array(pair[12..<24]), label)

      assertThrowsModuleError(
        try l(x, labels: [0, 1, 3, 0]),
        .invalidArgument("ConditionalBatchNorm2d: label 3 is out of range 0..<3"))
      assertThrowsModuleError(
        try l(x, labels: [0, -1, 2, 0]),
        .invalidArgument("ConditionalBatchNorm2d: label -1 is out of range 0..<3"))
      assertThrowsModuleError(
        try l(x, labels: [0, 1]), .invalidArgument("ConditionalBatchNorm2d: 2 labels for 4 images"))
      assertThrowsModuleError(
        try l(try Tensor.zeros([4, 3, 2, 2], on: d), labels: [0, 1, 2, 0]),
        .invalidArgument("ConditionalBatchNorm2d: input [4, 3, 2, 2] is not (N, 2, H, W)"))
    }
    assertThrowsModuleError(
      try ConditionalBatchNorm2d(channels: 0, classes: 3, on: .cpu),
      .invalidArgument("ConditionalBatchNorm2d(channels 0, classes 3): sizes must be positive"))
    print("GANLayerTests ConditionalBatchNorm2d — \(errors.text)")
  }

  func testBatchNormWithoutAffineHasOnlyBuffers() throws {
    for d in devices() {
      let bn = try BatchNorm2d(3, affine: false, on: d)
      XCTAssertNil(bn.weight)
      XCTAssertNil(bn.bias)
      XCTAssertTrue(bn.namedParameters.isEmpty)
      XCTAssertEqual(bn.stateDict.map(\.name), ["running_mean", "running_var", "num_batches_tracked"])
      let xs = [3, 3, 2, 2]
      let x = values(36, seed: 41, in: -1...3)
      let y = try bn(try Tensor(x, shape: xs, on: d)).toArray()
      assertClose(
        y, Ref.batchNormTraining(x.map(Double.init), xs, [1, 1, 1], [0, 0, 0], eps: 1e-5), rtol: 1e-4,
        atol: 1e-5, "BatchNorm2d(affine: false) on \(d.spec)")
    }
  }

  // MARK: 3. DiffAugment

  func testDiffAugmentGradients() throws {
    func augment(_ name: String, _ xs: [Int], _ policies: [DiffAugmentPolicy], seed s: UInt64, step: Int)
      -> LayerCase
    {
      LayerCase(
        name: name, input: xs,
        make: { _ in
          (Module(), { try DiffAugment.apply($0!, policies: policies, seed: s, step: step, stream: 300) })
        },
        reference: {
          referenceAugment($0["input"]!, xs, policies: policies, seed: s, step: step, stream: 300)
        })
    }
    let cases = [
      augment(
        "DiffAugment translation,cutout on 3×2×8×8", [3, 2, 8, 8], [.translation, .cutout], seed: 9, step: 4),
      augment("DiffAugment translation on 4×1×16×12", [4, 1, 16, 12], [.translation], seed: 10, step: 0),
      augment(
        "DiffAugment cutout,translation on 2×3×7×9", [2, 3, 7, 9], [.cutout, .translation], seed: 11, step: 2),
    ]
    for line in try GradCheck.run(cases) { print("GANLayerTests gradients — \(line)") }
  }

  func testDiffAugmentPixelsSplitsAndDevices() throws {
    let xs = [8, 3, 16, 16]
    let x = values(xs.reduce(1, *), seed: 51, in: 1...2)  // no zeros: a zero in the output is a cut pixel
    let (seed, step, stream) = (UInt64(77), 5, 1000)
    var first: [DiffAugmentPolicy: [UInt32]] = [:]
    for d in devices() {
      let label = d.spec
      let xt = try Tensor(x, shape: xs, on: d)
      for policies in [[DiffAugmentPolicy.translation], [.cutout], [.translation, .cutout]] {
        let tag = "\(label) \(policies.map(\.rawValue))"
        let y = try DiffAugment.apply(xt, policies: policies, seed: seed, step: step, stream: stream)
        XCTAssertEqual(y.shape, xs, tag)
        let got = try y.toArray()
        // Exact: a 0/1 GEMM and a mask multiply move and zero pixels without rounding.
        let want = referenceAugment(
          x.map(Double.init), xs, policies: policies, seed: seed, step: step, stream: stream)
        XCTAssertEqual(got, want.map { Float($0) }, tag)
        XCTAssertNotEqual(got, x, "\(tag): the policy changed nothing")
        // Split into rows 0..<3 and 3..<8 with matching firstSample: the same rows.
        let a = try DiffAugment.apply(
          try Tensor(Array(x[0..<(3 * 768)]), shape: [3, 3, 16, 16], on: d), policies: policies, seed: seed,
          step: step, stream: stream)
        let b = try DiffAugment.apply(
          try Tensor(Array(x[(3 * 768)...]), shape: [5, 3, 16, 16], on: d), policies: policies, seed: seed,
          step: step, stream: stream, firstSample: 3)
        XCTAssertEqual(bits(try a.toArray() + b.toArray()), bits(got), "\(tag): batch split")
        if policies.count == 1 {
          if let f = first[policies[0]] {
            XCTAssertEqual(bits(got), f, "\(tag): devices agree")
          } else {
            first[policies[0]] = bits(got)
          }
        }
      }
      // Translation: images with shift (0, 0) are untouched; the others are the input moved.
      let shifts = DiffAugment.translations(
        samples: 8, height: 16, width: 16, seed: seed, step: step, stream: stream)
      let moved = try DiffAugment.apply(xt, policies: [.translation], seed: seed, step: step, stream: stream)
        .toArray()
      for (i, s) in shifts.enumerated() where s == (0, 0) {
        XCTAssertEqual(
          Array(moved[(i * 768)..<((i + 1) * 768)]), Array(x[(i * 768)..<((i + 1) * 768)]), label)
      }
      XCTAssertTrue(shifts.contains { $0 != (0, 0) }, "\(label): every image unshifted")
      // Cutout: zero inside the box, untouched outside.
      let boxes = DiffAugment.cutouts(
        samples: 8, height: 16, width: 16, seed: seed, step: step, stream: stream + 1)
      let cut = try DiffAugment.apply(xt, policies: [.cutout], seed: seed, step: step, stream: stream)
        .toArray()
      for (n, box) in boxes.enumerated() {
        XCTAssertFalse(box.rows.isEmpty || box.columns.isEmpty, label)
        XCTAssertLessThanOrEqual(box.rows.count, 8)
        for ch in 0..<3 {
          for i in 0..<16 {
            for j in 0..<16 {
              let k = ((n * 3 + ch) * 16 + i) * 16 + j
              let inside = box.rows.contains(i) && box.columns.contains(j)
              XCTAssertEqual(cut[k], inside ? 0 : x[k], "\(label): image \(n) pixel (\(i), \(j))")
            }
          }
        }
      }
    }
  }

  func testDiffAugmentDrawsArePhiloxOfTheSampleStepAndStream() throws {
    let (seed, step, stream) = (UInt64(0x1234_5678_9abc), 17, 40)
    let t = DiffAugment.translations(
      samples: 2000, height: 32, width: 24, seed: seed, step: step, stream: stream)
    let c = DiffAugment.cutouts(samples: 2000, height: 32, width: 24, seed: seed, step: step, stream: stream)
    for i in [0, 1, 999] {
      let w = Philox4x32.block(
        counter: SIMD4(0, UInt32(i), UInt32(step), UInt32(stream)), key: Philox4x32.key(seed: seed))
      XCTAssertEqual(t[i].dy, -4 + Int((UInt64(w[0]) * 9) >> 32))
      XCTAssertEqual(t[i].dx, -3 + Int((UInt64(w[1]) * 7) >> 32))
      // Side 16 (even) on rows: offset in 0...32; side 12 (even) on columns: offset in 0...24.
      let (oy, ox) = (Int((UInt64(w[0]) * 33) >> 32), Int((UInt64(w[1]) * 25) >> 32))
      XCTAssertEqual(c[i].rows, max(oy - 8, 0)..<min(oy + 8, 32))
      XCTAssertEqual(c[i].columns, max(ox - 6, 0)..<min(ox + 6, 24))
    }
    // Every shift in [−r, r] occurs, and nothing outside it.
    XCTAssertEqual(Set(t.map(\.dy)), Set(-4...4))
    XCTAssertEqual(Set(t.map(\.dx)), Set(-3...3))
    // Cutout boxes reach both borders.
    XCTAssertTrue(c.contains { $0.rows.lowerBound == 0 } && c.contains { $0.rows.upperBound == 32 })
    // A sample's draw does not depend on the batch: rows 500..< of one call are another call's from 500.
    let tail = DiffAugment.translations(
      samples: 10, height: 32, width: 24, seed: seed, step: step, stream: stream, firstSample: 500)
    XCTAssertTrue(zip(tail, t[500..<510]).allSatisfy { $0 == $1 })
    // Odd side: 5·0.5 + 0.5 = 3 rows, offset in 0...4.
    let odd = DiffAugment.cutouts(samples: 500, height: 5, width: 5, seed: seed, step: step, stream: stream)
    XCTAssertTrue(odd.allSatisfy { $0.rows.count >= 2 && $0.rows.count <= 3 })
    XCTAssertEqual(Set(odd.map(\.rows.lowerBound)), Set(0...3))
    // Step and stream change the draws.
    let other = DiffAugment.translations(
      samples: 50, height: 32, width: 24, seed: seed, step: step + 1, stream: stream)
    XCTAssertFalse(zip(other, t).allSatisfy { $0 == $1 })
  }

  func testDiffAugmentArgumentsAndPolicyParsing() throws {
    XCTAssertEqual(try DiffAugment.policies(parsing: "translation,cutout"), [.translation, .cutout])
    XCTAssertEqual(try DiffAugment.policies(parsing: " Cutout "), [.cutout])
    XCTAssertEqual(try DiffAugment.policies(parsing: "none"), [])
    XCTAssertEqual(try DiffAugment.policies(parsing: ""), [])
    assertThrowsModuleError(
      try DiffAugment.policies(parsing: "color"),
      .invalidArgument("DiffAugment: unknown policy \"color\" (known: translation, cutout)"))
    XCTAssertThrowsError(try DiffAugment.policies(parsing: "cutout,cutout"))
    XCTAssertEqual(DiffAugmentPolicy.allCases.map(\.streamOffset), [0, 1])
    let x = try Tensor.full(1, shape: [2, 1, 4, 4])
    XCTAssertThrowsError(
      try DiffAugment.apply(try x.reshaped([2, 4, 4]), policies: [.cutout], seed: 0, step: 0, stream: 0))
    XCTAssertThrowsError(try DiffAugment.apply(x, policies: [.cutout, .cutout], seed: 0, step: 0, stream: 0))
    XCTAssertThrowsError(try DiffAugment.apply(x, policies: [.cutout], seed: 0, step: -1, stream: 0))
    XCTAssertThrowsError(try DiffAugment.apply(x, policies: [.cutout], seed: 0, step: 0, stream: -1))
    XCTAssertThrowsError(
      try DiffAugment.apply(x, policies: [.cutout], seed: 0, step: 0, stream: Int(UInt32.max)))
    XCTAssertThrowsError(
      try DiffAugment.apply(x, policies: [.cutout], seed: 0, step: 0, stream: 0, firstSample: Int(UInt32.max))
    )
    // No policies: the input itself.
    XCTAssertTrue(try DiffAugment.apply(x, policies: [], seed: 0, step: 0, stream: 0) === x)
    // A 3×3 image: translation radius 0 (nothing moves), cutout side 2.
    let small = try Tensor(values(18, seed: 61, in: 1...2), shape: [2, 1, 3, 3])
    XCTAssertEqual(
      try DiffAugment.apply(small, policies: [.translation], seed: 1, step: 0, stream: 0).toArray(),
      try small.toArray())
  }
}
