// Toy 2-D data sets: their modes and noise statistics, batch-split independence of the Philox draws, `toy:`
// parsing, the mode metrics against NumPy (Fixtures/toy) and on the data's own samples, and the scatter plot.
import Foundation
import GPUGenCore
import XCTest

@testable import GPUGenModels

final class ToyTests: XCTestCase {
  // MARK: Data

  func testModesAndSigmas() {
    let ring = ToyDataset.ring8.modes
    XCTAssertEqual(ring.count, 8)
    for (k, m) in ring.enumerated() {
      XCTAssertEqual((m.x * m.x + m.y * m.y).squareRoot(), 2, accuracy: 1e-12, "ring mode \(k)")
      XCTAssertEqual(atan2(m.y, m.x), Double.pi * Double(k <= 4 ? k : k - 8) / 4, accuracy: 1e-12)
    }
    let grid = ToyDataset.grid25.modes
    XCTAssertEqual(grid.count, 25)
    XCTAssertEqual(grid.first!.x, -4)
    XCTAssertEqual(grid.first!.y, -4)
    XCTAssertEqual(grid[1].x, -2)
    XCTAssertEqual(grid[5].y, -2)
    XCTAssertEqual(grid.last!.x, 4)
    XCTAssertEqual(grid.last!.y, 4)
    XCTAssertEqual(Set(grid.map { "\($0.x),\($0.y)" }).count, 25)
    XCTAssertEqual(ToyDataset.ring8.sigma, 0.02)
    XCTAssertEqual(ToyDataset.grid25.sigma, 0.05)
    XCTAssertEqual(ToyDataset.allCases.map(\.spec), ["toy:ring8", "toy:grid25"])
    // Modes are far apart in σ, so every point within 3σ of a mode is nearest to it.
    for d in ToyDataset.allCases {
      let ms = d.modes
      var closest = Double.infinity
      for i in ms.indices {
        for j in ms.indices where j > i {
          closest = min(closest, hypot(ms[i].x - ms[j].x, ms[i].y - ms[j].y))
        }
      }
      XCTAssertGreaterThan(closest, 30 * d.sigma, "\(d)")
    }
  }

  func testSamplesFollowTheMixture() {
    for d in ToyDataset.allCases {
      let n = 20_000
      let pts = d.sample(count: n, seed: 7, step: 3)
      XCTAssertEqual(pts.count, 2 * n)
      let modes = d.modes
      var hits = [Int](repeating: 0, count: modes.count)
      var sumDistance = 0.0, within3 = 0
      for i in 0..<n {
        let (k, d2) = ToyMetrics.nearestMode(x: Double(pts[2 * i]), y: Double(pts[2 * i + 1]), modes: modes)
        hits[k] += 1
        sumDistance += d2.squareRoot()
        if d2.squareRoot() <= 3 * d.sigma { within3 += 1 }
      }
      // Rayleigh(σ): mean σ·√(π/2), sd 0.655σ → the mean of 20,000 is within ~0.5 % (2 % is > 4 sd).
      let mean = sumDistance / Double(n)
      XCTAssertEqual(mean / (d.sigma * (Double.pi / 2).squareRoot()), 1, accuracy: 0.02, "\(d) mean distance")
      // P(r ≤ 3σ) = 1 − e^{−4.5} = 0.98889; sd of the rate ≈ 0.00074.
      XCTAssertEqual(Double(within3) / Double(n), 1 - exp(-4.5), accuracy: 0.003, "\(d) rate within 3σ")
      // Every mode is hit about n/K times (binomial sd ≈ √(n/K)).
      let fair = Double(n) / Double(modes.count)
      for (k, h) in hits.enumerated() {
        XCTAssertGreaterThan(h, 0, "\(d) mode \(k)")
        XCTAssertLessThan(abs(Double(h) - fair), 5 * fair.squareRoot(), "\(d) mode \(k): \(h) of \(n)")
      }
      // Both coordinates' offsets are centred (each mean within ~5 sd of 0).
      var (sx, sy) = (0.0, 0.0)
      for i in 0..<n {
        let (k, _) = ToyMetrics.nearestMode(x: Double(pts[2 * i]), y: Double(pts[2 * i + 1]), modes: modes)
        sx += Double(pts[2 * i]) - modes[k].x
        sy += Double(pts[2 * i + 1]) - modes[k].y
      }
      XCTAssertLessThan(abs(sx / Double(n)), 5 * d.sigma / Double(n).squareRoot(), "\(d) x offset")
      XCTAssertLessThan(abs(sy / Double(n)), 5 * d.sigma / Double(n).squareRoot(), "\(d) y offset")
    }
  }

  func testSamplesDoNotDependOnTheBatchSplit() throws {
    let d = ToyDataset.grid25
    let whole = d.sample(count: 100, seed: 42, step: 5)
    var split: [Float] = []
    for (first, count) in [(0, 1), (1, 30), (31, 64), (95, 5)] {
      split += d.sample(count: count, seed: 42, step: 5, firstSample: first)
    }
    XCTAssertEqual(split, whole)
    // A different seed, step or data set draws different points; the same key the same ones.
    XCTAssertEqual(d.sample(count: 100, seed: 42, step: 5), whole)
    XCTAssertNotEqual(d.sample(count: 100, seed: 43, step: 5), whole)
    XCTAssertNotEqual(d.sample(count: 100, seed: 42, step: 6), whole)
    XCTAssertEqual(d.sample(count: 0, seed: 42, step: 5), [])
    // The offsets are Tensor.randomNormal's values for 2 elements a sample in the toy stream.
    let noise = try Tensor.randomNormal(shape: [100, 2], seed: 42, step: 5, stream: Streams.toyData).toArray()
    let modes = d.modes
    for i in 0..<100 {
      let (k, _) = ToyMetrics.nearestMode(x: Double(whole[2 * i]), y: Double(whole[2 * i + 1]), modes: modes)
      XCTAssertEqual(whole[2 * i], Float(modes[k].x + d.sigma * Double(noise[2 * i])), "sample \(i) x")
      XCTAssertEqual(
        whole[2 * i + 1], Float(modes[k].y + d.sigma * Double(noise[2 * i + 1])), "sample \(i) y")
    }
    // The tensor form holds the same values as a (count, 2) tensor.
    let t = try d.sample(count: 31, seed: 42, step: 5, firstSample: 1, on: .cpu)
    XCTAssertEqual(t.shape, [31, 2])
    XCTAssertEqual(try t.toArray(), Array(whole[2..<64]))
    XCTAssertThrowsError(try d.sample(count: 1, seed: 0, step: -1, on: .cpu))
    XCTAssertThrowsError(try d.sample(count: 2, seed: 0, step: 0, firstSample: Int(UInt32.max), on: .cpu))
  }

  func testParse() throws {
    XCTAssertEqual(try ToyDataset.parse("toy:ring8"), .ring8)
    XCTAssertEqual(try ToyDataset.parse("toy:grid25"), .grid25)
    XCTAssertEqual(try ToyDataset.parse("ring8"), .ring8)
    XCTAssertEqual(try ToyDataset.parse("grid25"), .grid25)
    XCTAssertTrue(ToyDataset.isToy("toy:ring8"))
    XCTAssertTrue(ToyDataset.isToy("toy:foo"))
    XCTAssertFalse(ToyDataset.isToy("fashion-mnist"))
    XCTAssertFalse(ToyDataset.isToy("ring8"))
    for bad in ["toy:foo", "toy:", "toy:Ring8", "foo", ""] {
      XCTAssertThrowsError(try ToyDataset.parse(bad), bad) { error in
        XCTAssertEqual(
          error as? DatasetError,
          .invalidArgument("unknown toy data set '\(bad)'; choose toy:ring8 or toy:grid25"))
      }
    }
  }

  // MARK: Metrics

  struct Fixture: Decodable {
    struct Case: Decodable {
      var name: String
      var dataset: String
      var points: [Double]
      var expected: ToyScores
    }
    var cases: [Case]
  }

  func testScoresMatchNumPy() throws {
    let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/toy/toy", withExtension: "json"))
    let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    XCTAssertEqual(fixture.cases.count, 8)
    for c in fixture.cases {
      let got = ToyMetrics.score(c.points.map(Float.init), dataset: try ToyDataset.parse(c.dataset))
      let want = c.expected
      XCTAssertEqual(got.modes, want.modes, c.name)
      XCTAssertEqual(got.count, want.count, c.name)
      XCTAssertEqual(got.highQualityPerMode, want.highQualityPerMode, c.name)
      XCTAssertEqual(got.modesCoveredHighQuality, want.modesCoveredHighQuality, c.name)
      XCTAssertEqual(got.modesCoveredShare, want.modesCoveredShare, c.name)
      XCTAssertEqual(got.highQualityFraction, want.highQualityFraction, accuracy: 1e-9, c.name)
      XCTAssertEqual(got.klFromUniform, want.klFromUniform, accuracy: 1e-9, c.name)
    }
    // The fixture covers the edge cases: the share rule's boundary (2 HQ points = 10 % of 500/25), a mode hit
    // once (not covered by share), no HQ point (KL = log K) and no point at all.
    let byName = Dictionary(uniqueKeysWithValues: fixture.cases.map { ($0.name, $0.expected) })
    let boundary = try XCTUnwrap(byName["grid25-share-boundary"])
    XCTAssertEqual(boundary.highQualityPerMode.suffix(3), [2, 1, 0])
    XCTAssertEqual(boundary.modesCoveredHighQuality - boundary.modesCoveredShare, 1)
    XCTAssertEqual(try XCTUnwrap(byName["ring8-no-high-quality"]).klFromUniform, log(8), accuracy: 1e-15)
    XCTAssertEqual(try XCTUnwrap(byName["grid25-empty"]).count, 0)
  }

  func testOwnSamplesScoreFullCoverageAndCollapseScoresLow() {
    for d in ToyDataset.allCases {
      let k = d.modes.count
      let s = ToyMetrics.score(d.sample(count: 10_000, seed: 1, step: 0), dataset: d)
      XCTAssertEqual(s.modes, k)
      XCTAssertEqual(s.count, 10_000)
      XCTAssertEqual(s.modesCoveredHighQuality, k, "\(d) \(s.summary)")
      XCTAssertEqual(s.modesCoveredShare, k, "\(d) \(s.summary)")
      XCTAssertGreaterThan(s.highQualityFraction, 0.98, "\(d)")
      XCTAssertLessThan(s.klFromUniform, 0.01, "\(d)")

      // Collapse: only the samples of the first 3 modes.
      let modes = d.modes
      var collapsed: [Float] = []
      let pts = d.sample(count: 10_000, seed: 2, step: 0)
      for i in 0..<10_000 {
        let (m, _) = ToyMetrics.nearestMode(x: Double(pts[2 * i]), y: Double(pts[2 * i + 1]), modes: modes)
        if m < 3 { collapsed += [pts[2 * i], pts[2 * i + 1]] }
      }
      let c = ToyMetrics.score(collapsed, dataset: d)
      XCTAssertEqual(c.modesCoveredHighQuality, 3, "\(d)")
      XCTAssertEqual(c.modesCoveredShare, 3, "\(d)")
      XCTAssertEqual(c.klFromUniform, log(Double(k) / 3), accuracy: 0.01, "\(d)")
      // Every point shifted by (±9σ, ±9σ) off its mode: none is high quality.
      let blurred = pts.enumerated().map {
        $0.element + Float(9 * d.sigma) * (($0.offset / 2) % 2 == 0 ? 1 : -1)
      }
      let b = ToyMetrics.score(blurred, dataset: d)
      XCTAssertEqual(b.highQualityFraction, 0)
      XCTAssertEqual(b.modesCoveredHighQuality, 0)
      XCTAssertEqual(b.klFromUniform, log(Double(k)), accuracy: 1e-15)
    }
    // Non-finite points count but are never high quality; no point at all scores zero coverage.
    let nan = ToyMetrics.score([.nan, 0, .infinity, 2, 2, 0], dataset: .ring8)
    XCTAssertEqual(nan.count, 3)
    XCTAssertEqual(nan.highQualityPerMode, [1, 0, 0, 0, 0, 0, 0, 0])
    XCTAssertEqual(nan.highQualityFraction, 1.0 / 3.0, accuracy: 1e-15)
    XCTAssertEqual(nan.klFromUniform, log(8), accuracy: 1e-15)  // all HQ points on one mode
    let empty = ToyMetrics.score([], dataset: .grid25)
    XCTAssertEqual(empty.modesCoveredShare, 0)
    XCTAssertEqual(empty.highQualityFraction, 0)
    XCTAssertEqual(empty.klFromUniform, log(25), accuracy: 1e-15)
  }

  func testScoresSummaryAndCodable() throws {
    let s = ToyScores(
      modes: 8, count: 20_000, highQualityPerMode: [2500, 2500, 2500, 2500, 2500, 2500, 2400, 2378],
      modesCoveredHighQuality: 8, modesCoveredShare: 8, highQualityFraction: 0.98890, klFromUniform: 0.0012)
    XCTAssertEqual(s.summary, "modes 8/8 hit, 8/8 over 10% share, HQ 98.9%, KL 0.0012, n 20000")
    XCTAssertTrue(s.summary.allSatisfy { BitmapFont.glyphs[$0] != nil }, "drawable by the plot font")
    XCTAssertEqual(try JSONDecoder().decode(ToyScores.self, from: JSONEncoder().encode(s)), s)
  }

  // MARK: Scatter plot

  func color(_ img: Image8, _ x: Int, _ y: Int) -> RGB8 {
    let o = (y * img.width + x) * 3
    return RGB8(img.pixels[o], img.pixels[o + 1], img.pixels[o + 2])
  }

  func testScatterPlotPlacesPointsAndModeCircles() throws {
    // Three points: one between grid lines far from every mode, one exactly on mode 0 (2, 0), where two grid
    // lines cross, and one off the range (not drawn).
    let plot = ScatterPlot(dataset: .ring8, points: [-0.5, 0.5, 2, 0, 5, 5], subtitle: "modes 1/8 hit")
    let size = 400
    let img = plot.render(size: size)
    XCTAssertEqual(img.width, size)
    XCTAssertEqual(img.height, size)
    XCTAssertEqual(img.channels, 3)
    XCTAssertEqual(img.pixels.count, size * size * 3)
    XCTAssertEqual(plot.title, "toy:ring8")
    let f = plot.frame(size: size)
    XCTAssertEqual(f.right - f.left, f.bottom - f.top, "square plot area")
    XCTAssertEqual(f.ticks.map(\.label), ["-3", "-2", "-1", "0", "1", "2", "3"])
    // The range's ends sit the inset inside the axes, on both axes alike.
    XCTAssertEqual(f.pixelX(-3), f.left + f.inset)
    XCTAssertEqual(f.pixelX(3), f.right - f.inset)
    XCTAssertEqual(f.pixelY(-3), f.bottom - f.inset)
    XCTAssertEqual(f.pixelY(3), f.top + f.inset)

    // The lone point is a 3×3 translucent dot on white; the pixels around it stay white.
    let dot = LinePlot.Canvas.blended(.white, ScatterPlot.pointColor, alpha: ScatterPlot.pointAlpha)
    let (px, py) = (f.pixelX(-0.5), f.pixelY(0.5))
    for dy in -1...1 {
      for dx in -1...1 { XCTAssertEqual(color(img, px + dx, py + dy), dot, "(\(dx), \(dy))") }
    }
    for (dx, dy) in [(-2, 0), (2, 0), (0, -2), (0, 2), (2, 2)] {
      XCTAssertEqual(color(img, px + dx, py + dy), .white, "(\(dx), \(dy))")
    }
    // Every mode has a red circle of radius 3σ in pixels; its centre is not red (mode 0 holds the blue dot).
    let r = f.markerPixels(3 * ToyDataset.ring8.sigma)
    XCTAssertEqual(r, Int((0.06 * f.pixelsPerUnit).rounded()))
    XCTAssertGreaterThanOrEqual(r, 3)
    let red = ScatterPlot.markerColor
    for (k, m) in ToyDataset.ring8.modes.enumerated() {
      let (cx, cy) = (f.pixelX(m.x), f.pixelY(m.y))
      for (dx, dy) in [(r, 0), (-r, 0), (0, r), (0, -r)] {
        XCTAssertEqual(color(img, cx + dx, cy + dy), red, "mode \(k) circle at (\(dx), \(dy))")
      }
      XCTAssertNotEqual(color(img, cx, cy), red, "mode \(k) centre")
      XCTAssertNotEqual(color(img, cx + r + 2, cy), red, "mode \(k) outside")
    }
    let onGrid = LinePlot.Canvas.blended(
      LinePlot.gridColor, ScatterPlot.pointColor, alpha: ScatterPlot.pointAlpha)
    XCTAssertEqual(color(img, f.pixelX(2), f.pixelY(0)), onGrid)
    // Red appears nowhere but near the modes; the dot colour only at the two in-range points.
    var redPixels = 0, dotPixels = 0
    for y in 0..<size {
      for x in 0..<size {
        let c = color(img, x, y)
        if c == red {
          redPixels += 1
          let near = ToyDataset.ring8.modes.contains {
            abs(f.pixelX($0.x) - x) <= r + 1 && abs(f.pixelY($0.y) - y) <= r + 1
          }
          XCTAssertTrue(near, "red at (\(x), \(y))")
        }
        if c == dot { dotPixels += 1 }
      }
    }
    XCTAssertGreaterThan(redPixels, 8 * 4 * r)
    XCTAssertEqual(dotPixels, 9 + 4)  // 5 pixels of mode 0's dot lie on its two grid lines
    // Axes are black, the title and subtitle put black pixels in the top rows, grid lines are grey.
    XCTAssertEqual(color(img, f.left, (f.top + f.bottom) / 2), .black)
    XCTAssertEqual(color(img, (f.left + f.right) / 2, f.bottom), .black)
    XCTAssertTrue((0..<10).contains { y in (0..<size).contains { color(img, $0, y) == .black } })
    XCTAssertTrue((11..<20).contains { y in (0..<size).contains { color(img, $0, y) == .black } })
    XCTAssertEqual(color(img, f.pixelX(-1), f.pixelY(-2.5)), LinePlot.gridColor)

    let url = FileManager.default.temporaryDirectory.appendingPathComponent("gpugen-scatter-\(UUID()).png")
    defer { try? FileManager.default.removeItem(at: url) }
    try plot.writePNG(to: url, size: size)
    XCTAssertEqual(try Image8.readPNG(from: url, channels: 3), img)
  }

  func testScatterPlotDarkensWithDensityAndUsesTheDataSetRange() {
    // Many points on one spot approach the point colour; grid25's range gives ticks every 2.
    let plot = ScatterPlot(dataset: .grid25, points: [Float](repeating: 0, count: 2 * 50))
    let img = plot.render(size: 300)
    let f = plot.frame(size: 300)
    XCTAssertEqual(f.ticks.map(\.label), ["-6", "-4", "-2", "0", "2", "4", "6"])
    XCTAssertEqual(color(img, f.pixelX(0), f.pixelY(0)), ScatterPlot.pointColor)
    // A full 20,000-sample plot renders at the default size; tiny sizes are raised to 96.
    let full = ScatterPlot(
      dataset: .grid25, points: ToyDataset.grid25.sample(count: 20_000, seed: 0, step: 0))
    XCTAssertEqual(full.render().width, 480)
    XCTAssertEqual(ScatterPlot(range: -1...1).render(size: 10).width, 96)
    // ToyScatter: the data set's plot, or a range fitted to the points without one.
    let pts: [Float] = [0.5, -2.5, 1, 1]
    XCTAssertEqual(
      ToyScatter.render(pts, dataset: .ring8, title: "t", size: 200),
      ScatterPlot(dataset: .ring8, points: pts, title: "t").render(size: 200))
    XCTAssertEqual(
      ToyScatter.render(pts + [.nan, 0], dataset: nil, title: "t", size: 200),
      ScatterPlot(title: "t", range: -3...3, points: pts + [.nan, 0]).render(size: 200))
    XCTAssertEqual(
      ToyScatter.render([], dataset: nil, title: "", size: 200), ScatterPlot(range: -1...1).render(size: 200))
    // A caption too wide for the plot's font scale (2 at 640 pixels) is drawn smaller, inside the image.
    let caption = ToyMetrics.score(ToyDataset.grid25.sample(count: 100, seed: 0, step: 0), dataset: .grid25)
    let wide = ScatterPlot(dataset: .grid25, points: [], subtitle: caption.summary)
    let big = wide.render(size: 640)
    XCTAssertGreaterThan(BitmapFont.width(caption.summary, scale: 2), 640)
    let captionRows = 20..<40
    XCTAssertTrue(captionRows.contains { y in (0..<640).contains { color(big, $0, y) == .black } })
    for y in captionRows {
      XCTAssertNotEqual(color(big, 0, y), .black, "row \(y)")
      XCTAssertNotEqual(color(big, 639, y), .black, "row \(y)")
    }
  }
}
