// Noise schedules: ᾱ against closed forms, the DDPM posterior variance, timesteps worked out by hand from
// diffusers' formulas, zero terminal SNR, Karras sigmas and σ→t, the tolerant JSON reader, config errors,
// and (Fixtures/schedules) diffusers' own numbers.
import Foundation
import XCTest

@testable import GPUGenModels

final class NoiseScheduleTests: XCTestCase {
  func config(_ family: SchedulerFamily, _ edit: (inout SchedulerConfig) -> Void = { _ in })
    -> SchedulerConfig
  {
    var c = SchedulerConfig(family: family)
    edit(&c)
    return c
  }

  func schedule(
    _ family: SchedulerFamily, precision: NoiseSchedule.Precision = .float32,
    _ edit: (inout SchedulerConfig) -> Void = { _ in }
  ) throws -> NoiseSchedule {
    try NoiseSchedule(config: config(family, edit), precision: precision)
  }

  func assertRelative(
    _ got: [Double], _ want: [Double], _ rtol: Double, _ what: String, file: StaticString = #filePath,
    line: UInt = #line
  ) {
    guard got.count == want.count else {
      return XCTFail("\(what): \(got.count) values, expected \(want.count)", file: file, line: line)
    }
    let bad = (0..<got.count).filter { !(abs(got[$0] - want[$0]) <= rtol * abs(want[$0])) }
    if let i = bad.first {
      XCTFail(
        "\(what): \(bad.count) values off by more than \(rtol) relative, first at \(i): \(got[i]) vs \(want[i])",
        file: file, line: line)
    }
  }

  // MARK: Betas and ᾱ

  func testAlphaBarMatchesClosedFormsForEveryBetaSchedule() throws {
    let t = 1000
    func product(_ betas: [Double]) -> [Double] {
      // ᾱ as exp(Σ log(1 − β)): a different computation from the running product.
      var sum = 0.0
      return betas.map {
        sum += Foundation.log1p(-$0)
        return Foundation.exp(sum)
      }
    }
    let tol = 1e-12
    // linear and scaled_linear: β on a line (in β or √β); ᾱ is the product.
    let linear = (0..<t).map { 1e-4 + Double($0) * (0.02 - 1e-4) / 999 }
    let lin = try schedule(.ddpm, precision: .float64)
    assertRelative(lin.betas, linear, tol, "linear betas")
    assertRelative(lin.alphasCumprod, product(linear), tol, "linear ᾱ")
    let (s, e) = (0.00085.squareRoot(), 0.012.squareRoot())
    let scaled = (0..<t).map { pow(s + Double($0) * (e - s) / 999, 2) }
    let sl = try schedule(.ddim, precision: .float64) {
      $0.betaSchedule = .scaledLinear
      $0.betaStart = 0.00085
      $0.betaEnd = 0.012
    }
    assertRelative(sl.betas, scaled, tol, "scaled_linear betas")
    assertRelative(sl.alphasCumprod, product(scaled), tol, "scaled_linear ᾱ")
    // sigmoid: β = σ(−6 + 12 i/(T−1))·(end − start) + start.
    let sigmoid = (0..<t).map { (i: Int) -> Double in
      let x = -6 + 12 * Double(i) / 999
      return 1 / (1 + exp(-x)) * (0.02 - 1e-4) + 1e-4
    }
    let sg = try schedule(.ddpm, precision: .float64) { $0.betaSchedule = .sigmoid }
    assertRelative(sg.betas, sigmoid, tol, "sigmoid betas")
    assertRelative(sg.alphasCumprod, product(sigmoid), tol, "sigmoid ᾱ")
    // The ᾱ(u)-defined schedules telescope: ᾱₜ = f((t+1)/T)/f(0) wherever β is below the 0.999 cap.
    let cosine: (Double) -> Double = { pow(cos((($0 + 0.008) / 1.008) * Double.pi / 2), 2) }
    let cs = try schedule(.ddpm, precision: .float64) { $0.betaSchedule = .squaredcosCapV2 }
    assertRelative(
      Array(cs.alphasCumprod[0..<(t - 1)]), (0..<(t - 1)).map { cosine(Double($0 + 1) / 1000) / cosine(0) },
      1e-9,
      "cosine ᾱ")
    XCTAssertEqual(cs.betas[t - 1], 0.999, "the cosine schedule's last beta is capped")
    let ex = try schedule(.heunDiscrete, precision: .float64) { $0.betaSchedule = .exp }
    assertRelative(ex.alphasCumprod, (0..<t).map { exp(-12 * Double($0 + 1) / 1000) }, 1e-9, "exp ᾱ")
    let laplace: (Double) -> Double = { u in
      let snr = exp(-0.5 * (0.5 - u < 0 ? -1.0 : 1.0) * log(1 - 2 * abs(0.5 - u) + 1e-6))
      return (snr / (1 + snr)).squareRoot()
    }
    let lp = try schedule(.ddpm, precision: .float64) { $0.betaSchedule = .laplace }
    let firstCapped = lp.betas.firstIndex { $0 >= 0.999 } ?? t
    XCTAssertGreaterThan(firstCapped, 990)
    assertRelative(
      Array(lp.alphasCumprod[0..<firstCapped]),
      (0..<firstCapped).map { laplace(Double($0 + 1) / 1000) / laplace(0) },
      1e-9, "laplace ᾱ")
    // trained_betas replace the schedule; alphas are 1 − β.
    let trained = try schedule(.ddpm, precision: .float64) {
      $0.numTrainTimesteps = 4
      $0.trainedBetas = [0.1, 0.2, 0.3, 0.4]
      $0.betaSchedule = .sigmoid
    }
    XCTAssertEqual(trained.betas, [0.1, 0.2, 0.3, 0.4])
    XCTAssertEqual(trained.alphas, [0.9, 0.8, 0.7, 0.6])
    assertRelative(trained.alphasCumprod, [0.9, 0.72, 0.504, 0.3024], 1e-15, "trained ᾱ")
  }

  func testFloat32PrecisionRoundsLikeDiffusersStores() throws {
    let f64 = try schedule(.ddpm, precision: .float64)
    let f32 = try schedule(.ddpm, precision: .float32)
    XCTAssertTrue(f32.betas.allSatisfy { Double(Float($0)) == $0 }, "float32 betas are float32 values")
    XCTAssertTrue(f32.alphasCumprod.allSatisfy { Double(Float($0)) == $0 }, "float32 ᾱ are float32 values")
    XCTAssertNotEqual(f32.betas, f64.betas)
    // The two differ only by float32 rounding.
    assertRelative(f32.alphasCumprod, f64.alphasCumprod, 2e-6, "float32 vs float64 ᾱ")
    // torch.linspace(1e-4, 0.02, 1000, dtype=float32): its step is a float32 value.
    XCTAssertEqual(f32.betas[0], Double(Float(1e-4)))
    XCTAssertEqual(f32.betas[999], Double(Float(0.02)))
  }

  func testDDPMPosteriorVariance() throws {
    // linear 1e-4..0.02, T = 1000, every timestep (previous = t − 1):
    // β̃ₜ = (1 − ᾱₜ₋₁)/(1 − ᾱₜ)·βₜ, with ᾱ₋₁ = 1, so β̃₀ = 0 (clamped to 1e-20), β̃₄₈₇ ≈ 0.0097916
    // (slightly below β₄₈₇ = 0.0098010), β̃₉₉₉ ≈ 0.0199999835 (ᾱ₉₉₉ ≈ 4e-5, so the ratio is ≈ 1).
    let betas = (0..<1000).map { 1e-4 + Double($0) * (0.02 - 1e-4) / 999 }
    var alphaBar: [Double] = []
    var acc = 1.0
    for b in betas {
      acc *= 1 - b
      alphaBar.append(acc)
    }
    func want(_ t: Int) -> Double {
      let prev = t > 0 ? alphaBar[t - 1] : 1
      return max((1 - prev) / (1 - alphaBar[t]) * betas[t], 1e-20)
    }
    let exact = try schedule(.ddpm, precision: .float64)
    XCTAssertEqual(exact.posteriorVariance(timestep: 0, previousTimestep: -1), 1e-20, "β̃₀ = 0, clamped")
    for t in [1, 2, 487, 998, 999] {
      let v = exact.posteriorVariance(timestep: t, previousTimestep: t - 1)
      XCTAssertEqual(v, want(t), accuracy: 1e-12 * want(t), "β̃ at t = \(t)")
    }
    // To 4 significant digits: 0.009792 and 0.02000.
    XCTAssertEqual(exact.posteriorVariance(timestep: 487, previousTimestep: 486), 0.009792, accuracy: 5e-7)
    XCTAssertEqual(exact.posteriorVariance(timestep: 999, previousTimestep: 998), 0.02000, accuracy: 5e-6)
    // Skipping steps: the previous timestep is whatever the inference schedule visits next.
    let w = (1 - alphaBar[400]) / (1 - alphaBar[500]) * (1 - alphaBar[500] / alphaBar[400])
    XCTAssertEqual(exact.posteriorVariance(timestep: 500, previousTimestep: 400), w, accuracy: 1e-12 * w)
    // diffusers' float32: 1 − ᾱₜ/ᾱₜ₋₁ ≈ βₜ cancels, so the relative error is up to a few ε₃₂/βₜ
    // (≈ 2e-3 at t = 1, 2e-5 at t = 487); the fixtures check these values against diffusers itself.
    let f32 = try schedule(.ddpm, precision: .float32)
    for t in [1, 2, 487, 998, 999] {
      let v = f32.posteriorVariance(timestep: t, previousTimestep: t - 1)
      XCTAssertEqual(v, want(t), accuracy: 4 * 0x1p-24 / betas[t] * want(t), "float32 β̃ at t = \(t)")
    }
    XCTAssertEqual(f32.posteriorVariance(timestep: 487, previousTimestep: 486), 0.009792, accuracy: 5e-7)
    // The noise std per variance_type: √β̃ (fixed_small and, via exp(½ ln β̃), fixed_small_log), √β (fixed_large).
    for type in DDPMVarianceType.allCases {
      let s = try schedule(.ddpm, precision: .float64) { $0.varianceType = type }
      let std = s.ddpmNoiseStd(timestep: 487, previousTimestep: 486)
      let expected = type == .fixedLarge ? betas[487].squareRoot() : want(487).squareRoot()
      XCTAssertEqual(std, expected, accuracy: 1e-12, "\(type)")
    }
  }

  // MARK: Timesteps

  func testDiscreteTimestepsForEverySpacingByHand() throws {
    // T = 1000. leading: (arange(N)·(T // N))[::-1] + offset. trailing: round(arange(T, 0, −T/N)) − 1
    // (no offset). linspace: round_half_even(linspace(0, T − 1, N))[::-1] (no offset).
    let cases: [(TimestepSpacing, Int, Int, [Double])] = [
      (.leading, 10, 0, [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]),
      (.leading, 10, 1, [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]),
      // T // 7 = 142.
      (.leading, 7, 0, [852, 710, 568, 426, 284, 142, 0]),
      (.leading, 7, 1, [853, 711, 569, 427, 285, 143, 1]),
      (.trailing, 10, 0, [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]),
      (.trailing, 10, 1, [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]),
      // 1000 − k·142.857…: 1000, 857.14, 714.29, 571.43, 428.57, 285.71, 142.86.
      (.trailing, 7, 0, [999, 856, 713, 570, 428, 285, 142]),
      (.trailing, 7, 1, [999, 856, 713, 570, 428, 285, 142]),
      (.linspace, 10, 0, [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]),
      // k·166.5: 832.5 → 832 and 166.5 → 166 (ties to even), 499.5 → 500.
      (.linspace, 7, 0, [999, 832, 666, 500, 333, 166, 0]),
      (.linspace, 7, 1, [999, 832, 666, 500, 333, 166, 0]),
    ]
    for family in [SchedulerFamily.ddpm, .ddim] {
      for (spacing, n, offset, want) in cases {
        let s = try schedule(family) {
          $0.timestepSpacing = spacing
          $0.stepsOffset = offset
        }
        XCTAssertEqual(
          try s.timesteps(numInferenceSteps: n), want, "\(family) \(spacing) N=\(n) offset \(offset)")
        XCTAssertEqual(try s.sigmas(numInferenceSteps: n), [])
      }
      XCTAssertEqual(try schedule(family).timesteps(numInferenceSteps: 1), [0])
      XCTAssertEqual(
        try schedule(family).timesteps(numInferenceSteps: 1000), (0..<1000).reversed().map(Double.init))
      XCTAssertThrowsError(try schedule(family).timesteps(numInferenceSteps: 1001))
      XCTAssertThrowsError(try schedule(family).timesteps(numInferenceSteps: 0))
    }
    // trailing with 16 steps hits exact halves: 937.5 → 938, 812.5 → 812 (ties to even), then − 1.
    let t16 = try schedule(.ddim) { $0.timestepSpacing = .trailing }.timesteps(numInferenceSteps: 16)
    XCTAssertEqual(Array(t16.prefix(4)), [999, 937, 874, 811])
  }

  func testDPMSolverAndEulerTimestepsByHand() throws {
    // DPM-Solver: linspace over N + 1 points, the last (0) dropped; leading uses T // (N + 1).
    let dpm: [(TimestepSpacing, Int, Int, [Double])] = [
      // linspace(0, 999, 11) = k·99.9 → 0, 100, 200, 300, 400, 499.5 → 500, 599, 699, 799, 899, 999.
      (.linspace, 10, 0, [999, 899, 799, 699, 599, 500, 400, 300, 200, 100]),
      // linspace(0, 999, 8) = k·142.71 → 143, 285, 428, 571, 714, 856.
      (.linspace, 7, 0, [999, 856, 714, 571, 428, 285, 143]),
      (.leading, 10, 0, [900, 810, 720, 630, 540, 450, 360, 270, 180, 90]),
      (.leading, 7, 1, [876, 751, 626, 501, 376, 251, 126]),
      (.trailing, 7, 0, [999, 856, 713, 570, 428, 285, 142]),
    ]
    for (spacing, n, offset, want) in dpm {
      let s = try schedule(.dpmSolverMultistep) {
        $0.timestepSpacing = spacing
        $0.stepsOffset = offset
      }
      let inf = try s.inference(numInferenceSteps: n)
      XCTAssertEqual(inf.timesteps, want, "DPM-Solver \(spacing) N=\(n)")
      // σ at integer timesteps are the training sigmas, then the final 0.
      XCTAssertEqual(
        inf.sigmas, want.map { s.trainingSigmas[Int($0)] } + [0], "DPM-Solver σ \(spacing) N=\(n)")
      XCTAssertEqual(inf.initNoiseSigma, 1)
    }
    // Euler: float timesteps; linspace keeps the fractions (k·166.5).
    let euler = try schedule(.eulerDiscrete)
    let e7 = try euler.inference(numInferenceSteps: 7)
    XCTAssertEqual(e7.timesteps, [999, 832.5, 666, 499.5, 333, 166.5, 0])
    // σ at 832.5 is the linear interpolation of σ₈₃₂ and σ₈₃₃.
    let s = euler.trainingSigmas
    XCTAssertEqual(e7.sigmas[1], Double(Float((s[832] + s[833]) / 2)), accuracy: 1e-6 * s[832])
    XCTAssertEqual(e7.sigmas.count, 8)
    XCTAssertEqual(e7.sigmas.last, 0)
    XCTAssertEqual(e7.initNoiseSigma, e7.sigmas[0], "linspace: init σ is the largest σ")
    let leading = try schedule(.eulerDiscrete) {
      $0.timestepSpacing = .leading
      $0.stepsOffset = 1
    }.inference(numInferenceSteps: 10)
    XCTAssertEqual(leading.timesteps, [901, 801, 701, 601, 501, 401, 301, 201, 101, 1])
    let top = leading.sigmas[0]
    XCTAssertEqual(leading.initNoiseSigma, (top * top + 1).squareRoot(), accuracy: 1e-6 * top)
    // Heun repeats every timestep but the first, and every sigma but the first and the last.
    let heun = try schedule(.heunDiscrete).inference(numInferenceSteps: 3)
    XCTAssertEqual(heun.timesteps, [999, 499.5, 499.5, 0, 0])
    XCTAssertEqual(heun.sigmas.count, 6)
    XCTAssertEqual(heun.sigmas[1], heun.sigmas[2])
    XCTAssertEqual(heun.sigmas[3], heun.sigmas[4])
    XCTAssertEqual(heun.sigmas[5], 0)
    // The family decides: the same file read as DDIM and as Euler.
    let file = #"{"_class_name": "DDIMScheduler", "steps_offset": 1}"#
    XCTAssertEqual(try NoiseSchedule(json: file).timesteps(numInferenceSteps: 4), [751, 501, 251, 1])
    XCTAssertEqual(
      try NoiseSchedule(json: file, family: .eulerDiscrete).timesteps(numInferenceSteps: 4),
      [999, 666, 333, 0])
  }

  func testFinalSigmaAndLambdaClipping() throws {
    let zero = try schedule(.dpmSolverMultistep).sigmas(numInferenceSteps: 5)
    let min = try schedule(.dpmSolverMultistep) { $0.finalSigmasType = .sigmaMin }.sigmas(
      numInferenceSteps: 5)
    XCTAssertEqual(zero.last, 0)
    XCTAssertEqual(min.last!, try schedule(.dpmSolverMultistep).trainingSigmas[0], accuracy: 1e-12)
    // Cosine: λ falls below −5.1 near t = T; those timesteps are skipped, so linspace starts lower.
    let cosine = try schedule(.dpmSolverMultistep) {
      $0.betaSchedule = .squaredcosCapV2
      $0.lambdaMinClipped = -5.1
    }
    let clipped = try cosine.timesteps(numInferenceSteps: 10)
    let last = cosine.lambdas.filter { $0 >= -5.1 }.count
    XCTAssertLessThan(last, 1000)
    XCTAssertEqual(clipped[0], Double(last - 1))
    let unclipped = try schedule(.dpmSolverMultistep) { $0.betaSchedule = .squaredcosCapV2 }
    XCTAssertEqual(try unclipped.timesteps(numInferenceSteps: 10)[0], 999)
  }

  func testRescaleBetasZeroSNRGivesZeroTerminalSNR() throws {
    for family in [SchedulerFamily.ddpm, .ddim] {
      for precision in [NoiseSchedule.Precision.float32, .float64] {
        let plain = try schedule(family, precision: precision)
        let s = try schedule(family, precision: precision) { $0.rescaleBetasZeroSNR = true }
        XCTAssertEqual(s.alphasCumprod[999], 0, "ᾱ_T with zero terminal SNR (\(family), \(precision))")
        XCTAssertEqual(s.betas[999], 1)
        // √ᾱ₀ is kept; the schedule is a shifted, scaled √ᾱ.
        XCTAssertEqual(s.alphasCumprod[0], plain.alphasCumprod[0], accuracy: 1e-6)
        let sq = plain.alphasCumprod.map { $0.squareRoot() }
        let want = (sq[500] - sq[999]) * sq[0] / (sq[0] - sq[999])
        XCTAssertEqual(
          s.alphasCumprod[500].squareRoot(), want, accuracy: precision == .float64 ? 1e-12 : 1e-6)
        XCTAssertNotEqual(plain.alphasCumprod[999], 0)
      }
    }
    // The sigma families keep σ finite: ᾱ_T is set to 2⁻²⁴.
    for family in [SchedulerFamily.dpmSolverMultistep, .eulerDiscrete, .eulerAncestralDiscrete] {
      let s = try schedule(family) { $0.rescaleBetasZeroSNR = true }
      XCTAssertEqual(s.alphasCumprod[999], 0x1p-24, "\(family)")
      XCTAssertTrue(s.trainingSigmas.allSatisfy(\.isFinite))
    }
    XCTAssertThrowsError(try schedule(.heunDiscrete) { $0.rescaleBetasZeroSNR = true })
  }

  // MARK: Sigmas

  func testKarrasSigmasAndSigmaToTimestep() throws {
    let k = NoiseSchedule.karrasSigmas(sigmaMin: 0.03, sigmaMax: 14.6, count: 5)
    XCTAssertEqual(k.count, 5)
    XCTAssertEqual(k[0], 14.6, accuracy: 1e-12)
    XCTAssertEqual(k[4], 0.03, accuracy: 1e-14)
    let (a, b) = (pow(14.6, 1 / 7.0), pow(0.03, 1 / 7.0))
    XCTAssertEqual(k[2], pow(a + 0.5 * (b - a), 7), accuracy: 1e-12)
    XCTAssertNotEqual(NoiseSchedule.karrasSigmas(sigmaMin: 0.03, sigmaMax: 14.6, count: 5, rho: 3)[2], k[2])
    let s = try schedule(.eulerDiscrete, precision: .float64)
    for t in [0, 1, 10, 500, 998, 999] {
      XCTAssertEqual(s.sigmaToTimestep(s.trainingSigmas[t]), Double(t), accuracy: 1e-9, "σ_\(t) → t")
    }
    // Halfway in log σ between two training sigmas is halfway in t.
    let mid = exp((s.logSigmas[300] + s.logSigmas[301]) / 2)
    XCTAssertEqual(s.sigmaToTimestep(mid), 300.5, accuracy: 1e-9)
    // Clamped to the training range.
    XCTAssertEqual(s.sigmaToTimestep(s.trainingSigmas[0] / 2), 0)
    XCTAssertEqual(s.sigmaToTimestep(s.trainingSigmas[999] * 2), 999)
    // With use_karras_sigmas: N Karras sigmas between the schedule's extremes, and their timesteps.
    let karras = try schedule(.dpmSolverMultistep) { $0.useKarrasSigmas = true }.inference(
      numInferenceSteps: 6)
    let plain = try schedule(.dpmSolverMultistep).inference(numInferenceSteps: 6)
    XCTAssertNotEqual(karras.sigmas, plain.sigmas)
    XCTAssertEqual(karras.timesteps.first, 999)
    XCTAssertEqual(karras.timesteps.last, 0)
    XCTAssertTrue(zip(karras.timesteps, karras.timesteps.dropFirst()).allSatisfy { $0 > $1 })
    // Euler's sigma_min/sigma_max override the Karras endpoints.
    let ranged = try schedule(.eulerDiscrete) {
      $0.useKarrasSigmas = true
      $0.sigmaMin = 0.1
      $0.sigmaMax = 10
    }.sigmas(numInferenceSteps: 4)
    XCTAssertEqual(ranged[0], 10, accuracy: 1e-6)
    XCTAssertEqual(ranged[3], 0.1, accuracy: 1e-7)
  }

  // MARK: JSON and configs

  func testNonStandardJSONParses() throws {
    let text = """
      {
        "_class_name": "DPMSolverMultistepScheduler",
        "_diffusers_version": "0.27.0",
        "lambda_min_clipped": -Infinity,
        "unused_nan": NaN,
        "unused_inf": Infinity,
        "note": "Infinity and -Infinity and NaN stay text here, \\"quoted\\" too \\u00e9\\ud83d\\ude00",
        "nested": {"a": [1, 2.5e-3, -0.0, {"b": null}], "c": {"d": [true, false, -Infinity]}},
        "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
        "use_karras_sigmas": true,
        "trained_betas": null,
        "solver_order": 2.0
      }
      """
    let v = try JSONValue(parsing: text)
    XCTAssertEqual(v["lambda_min_clipped"], .number(-.infinity))
    XCTAssertTrue(v["unused_nan"]!.double!.isNaN)
    XCTAssertEqual(v["unused_inf"], .number(.infinity))
    XCTAssertEqual(v["note"]?.string, "Infinity and -Infinity and NaN stay text here, \"quoted\" too é😀")
    XCTAssertEqual(v["nested"]?["a"]?.array?[1], .number(0.0025))
    XCTAssertEqual(v["nested"]?["c"]?["d"], .array([.bool(true), .bool(false), .number(-.infinity)]))
    let c = try SchedulerConfig(json: text)
    XCTAssertEqual(c.family, .dpmSolverMultistep)
    XCTAssertEqual(c.className, "DPMSolverMultistepScheduler")
    XCTAssertEqual(c.lambdaMinClipped, -.infinity)
    XCTAssertEqual(c.betaSchedule, .scaledLinear)
    XCTAssertTrue(c.useKarrasSigmas)
    XCTAssertEqual(c.solverOrder, 2)
    XCTAssertNil(c.trainedBetas)
    // Unknown fields are kept in `fields` but ignored.
    XCTAssertEqual(c.fields["unused_inf"], .number(.infinity))
    // Malformed text is an error with a position, also for look-alikes of the non-standard tokens.
    for bad in ["{", "[1,]", "{\"a\" 1}", "-Inf", "Infinit", "nan", "\"abc", "01", "1.", "{} x", "[\"\\x\"]"]
    {
      XCTAssertThrowsError(try JSONValue(parsing: bad), bad) {
        XCTAssertTrue($0 is JSONValue.ParseError, bad)
      }
    }
    XCTAssertThrowsError(try SchedulerConfig(json: "[1, 2]")) {
      guard case SchedulerConfigError.invalidJSON = $0 else { return XCTFail("\($0)") }
    }
  }

  func testMissingFieldsTakeTheFamilysDefaultsAndForeignFieldsAreIgnored() throws {
    let text = #"{"_class_name": "EulerDiscreteScheduler", "thresholding": true, "clip_sample": true}"#
    let euler = try SchedulerConfig(json: text)
    XCTAssertEqual(euler.timestepSpacing, .linspace)
    XCTAssertFalse(euler.clipSample, "Euler takes no clip_sample")
    XCTAssertNil(euler.dynamicThreshold, "Euler takes no thresholding")
    // The same file as DDIM: its defaults (leading, clip_sample), and thresholding is now its field (with
    // diffusers' defaults for the ratio and the cap).
    let asDDIM = try euler.reinterpreted(as: .ddim)
    XCTAssertTrue(asDDIM.thresholding)
    XCTAssertEqual(asDDIM.dynamicThreshold, DynamicThreshold(ratio: 0.995, maxValue: 1))
    let ddim = try SchedulerConfig(json: #"{"_class_name": "EulerDiscreteScheduler"}"#, family: .ddim)
    XCTAssertEqual(ddim.timestepSpacing, .leading)
    XCTAssertTrue(ddim.clipSample)
    XCTAssertEqual(ddim.className, "EulerDiscreteScheduler")
    XCTAssertEqual(try SchedulerConfig(json: "{}", family: .heunDiscrete).betaStart, 0.00085)
    // _use_default_values: those keys were defaults when saved and are read as this class's defaults.
    let defaulted = try SchedulerConfig(
      json:
        #"{"_class_name": "DDIMScheduler", "timestep_spacing": "trailing", "_use_default_values": ["timestep_spacing"]}"#
    )
    XCTAssertEqual(defaulted.timestepSpacing, .leading)
    // A class gpugen does not reproduce needs an explicit family.
    let pndm = #"{"_class_name": "PNDMScheduler", "skip_prk_steps": true, "steps_offset": 1}"#
    XCTAssertThrowsError(try SchedulerConfig(json: pndm)) {
      XCTAssertEqual(($0 as? SchedulerConfigError)?.field, "_class_name")
    }
    XCTAssertEqual(try SchedulerConfig(json: pndm, family: .ddim).stepsOffset, 1)
    // diffusers' aliases: DEIS configs read as DPM-Solver++ / midpoint.
    let deis = try SchedulerConfig(
      json: #"{"algorithm_type": "deis", "solver_type": "logrho"}"#, family: .dpmSolverMultistep)
    XCTAssertEqual(deis.algorithmType, .dpmSolverPlusPlus)
    XCTAssertEqual(deis.solverType, .midpoint)
  }

  func testUnsupportedValuesNameTheField() throws {
    let cases: [(String, SchedulerFamily, String)] = [
      (#"{"beta_schedule": "cubic"}"#, .ddpm, "beta_schedule"),
      (#"{"beta_schedule": "sigmoid"}"#, .ddim, "beta_schedule"),
      (#"{"timestep_spacing": "uniform"}"#, .ddim, "timestep_spacing"),
      (#"{"prediction_type": "flow_prediction"}"#, .eulerDiscrete, "prediction_type"),
      (#"{"thresholding": true, "dynamic_thresholding_ratio": 1.5}"#, .ddpm, "dynamic_thresholding_ratio"),
      (#"{"thresholding": true, "sample_max_value": 0}"#, .ddim, "sample_max_value"),
      (#"{"thresholding": "yes"}"#, .dpmSolverMultistep, "thresholding"),
      (#"{"variance_type": "learned_range"}"#, .ddpm, "variance_type"),
      (#"{"variance_type": "learned_range"}"#, .dpmSolverMultistep, "variance_type"),
      (#"{"use_exponential_sigmas": true}"#, .eulerDiscrete, "use_exponential_sigmas"),
      (#"{"use_lu_lambdas": true}"#, .dpmSolverMultistep, "use_lu_lambdas"),
      (#"{"algorithm_type": "dpmsolver"}"#, .dpmSolverMultistep, "final_sigmas_type"),
      (#"{"solver_order": 4}"#, .dpmSolverMultistep, "solver_order"),
      (#"{"interpolation_type": "cubic"}"#, .eulerDiscrete, "interpolation_type"),
      (#"{"num_train_timesteps": "1000"}"#, .ddpm, "num_train_timesteps"),
      (#"{"num_train_timesteps": 10.5}"#, .ddpm, "num_train_timesteps"),
      (#"{"trained_betas": [0.1, "x"]}"#, .ddpm, "trained_betas"),
      (#"{"num_train_timesteps": 3, "trained_betas": [0.1, 0.2]}"#, .ddpm, "trained_betas"),
      (#"{"clip_sample": "yes"}"#, .ddim, "clip_sample"),
    ]
    for (text, family, field) in cases {
      XCTAssertThrowsError(try SchedulerConfig(json: text, family: family), text) { error in
        XCTAssertEqual((error as? SchedulerConfigError)?.field, field, "\(text): \(error)")
        XCTAssertTrue("\(error)".contains(field), "the message names \(field): \(error)")
      }
    }
    XCTAssertThrowsError(try SchedulerConfig(json: #"{"beta_schedule": "cubic"}"#, family: .ddpm)) {
      XCTAssertTrue("\($0)".contains("cubic"), "the message names the value: \($0)")
    }
    // Fields another family takes are not validated for this one, and null flags read as false.
    XCTAssertNoThrow(
      try SchedulerConfig(
        json: #"{"use_lu_lambdas": true, "use_karras_sigmas": null}"#, family: .eulerDiscrete))
  }

  // MARK: diffusers fixtures

  func testMatchesDiffusersFixtures() throws {
    // Tests/GPUGenModelsTests/Fixtures/schedules/make_fixtures.py: diffusers' own betas, ᾱ, timesteps,
    // sigmas, init σ and DDPM variances. 1e-6 relative: diffusers keeps them in float32 and transcendental
    // functions (sigmoid, log, exp) may differ by an ulp (6e-8) between torch/numpy and Swift.
    guard let url = Bundle.module.url(forResource: "Fixtures/schedules/schedules", withExtension: "json")
    else {
      return XCTFail("Fixtures/schedules/schedules.json is missing from the test bundle")
    }
    let root = try JSONValue(parsing: try String(contentsOf: url, encoding: .utf8))
    let cases = try XCTUnwrap(root["cases"]?.array)
    XCTAssertGreaterThanOrEqual(cases.count, 25)
    let rtol = 1e-6
    func numbers(_ v: JSONValue?) -> [Double] { v?.array?.compactMap(\.double) ?? [] }
    for c in cases {
      let name = c["name"]?.string ?? "?"
      let s = try NoiseSchedule(json: try XCTUnwrap(c["config_json"]?.string))
      let idx = numbers(c["indices"]).map { Int($0) }
      if s.config.rescaleBetasZeroSNR {
        // Rescaled betas are 1 − (a ratio of √ᾱ² values); torch's float32 sqrt is not always correctly
        // rounded (1 ulp off for ~0.5% of inputs), which 1 − α magnifies by 1/β. Compare α = 1 − β.
        assertRelative(
          idx.map { 1 - s.betas[$0] }, numbers(c["betas"]).map { 1 - $0 }, rtol, "\(name) alphas")
      } else {
        assertRelative(idx.map { s.betas[$0] }, numbers(c["betas"]), rtol, "\(name) betas")
      }
      assertRelative(idx.map { s.alphasCumprod[$0] }, numbers(c["alphas_cumprod"]), rtol, "\(name) ᾱ")
      for step in c["inference"]?.array ?? [] {
        let n = Int(step["steps"]?.double ?? 0)
        let got = try s.inference(numInferenceSteps: n)
        assertRelative(got.timesteps, numbers(step["timesteps"]), rtol, "\(name) N=\(n) timesteps")
        if let sigmas = step["sigmas"] {
          assertRelative(got.sigmas, numbers(sigmas), rtol, "\(name) N=\(n) sigmas")
          assertRelative(
            [got.initNoiseSigma], [step["init_noise_sigma"]?.double ?? .nan], rtol, "\(name) init σ")
        }
        for row in step["variance"]?.array ?? [] {
          let r = numbers(row)
          let (t, prev) = (Int(r[0]), Int(r[1]))
          let v = s.posteriorVariance(timestep: t, previousTimestep: prev)
          assertRelative([v], [r[2]], rtol, "\(name) N=\(n) variance at t = \(t)")
          let std = s.ddpmNoiseStd(timestep: t, previousTimestep: prev)
          assertRelative([std], [r[3]], rtol, "\(name) N=\(n) noise std at t = \(t)")
        }
      }
    }
  }
}
