// Line plots: where lines land, breaks at NaN, log scale, legend, empty charts, ticks, the bitmap font.
import Foundation
import XCTest

@testable import GPUGenModels

final class PlotTests: XCTestCase {
  func color(_ img: Image8, _ x: Int, _ y: Int) -> RGB8 {
    let o = (y * img.width + x) * 3
    return RGB8(img.pixels[o], img.pixels[o + 1], img.pixels[o + 2])
  }

  /// Rows in column x that have colour c.
  func rows(_ img: Image8, x: Int, _ c: RGB8) -> [Int] {
    (0..<img.height).filter { color(img, x, $0) == c }
  }

  func testLinePassesThroughItsPointsAndNowhereElse() throws {
    var plot = LinePlot(title: "Loss", xLabel: "step", yLabel: "loss")
    let xs = (0...10).map(Double.init)
    plot.add("", x: xs, y: xs.map { 10 - $0 })  // unnamed: no legend swatch in that colour
    let img = plot.render(width: 400, height: 300)
    XCTAssertEqual(img.width, 400)
    XCTAssertEqual(img.height, 300)
    XCTAssertEqual(img.channels, 3)
    XCTAssertEqual(img.pixels.count, 400 * 300 * 3)
    let f = plot.frame(width: 400, height: 300)
    let blue = LinePlot.palette[0]
    for k in 0...10 {
      let (x, y) = (f.pixelX(Double(k)), f.pixelY(Double(10 - k)))
      XCTAssertEqual(color(img, x, y), blue, "point \(k) at (\(x), \(y))")
    }
    // Every column between the end points is crossed exactly where the straight line runs (±1 pixel), and
    // the colour appears in no other column.
    let (xa, xb) = (f.pixelX(0), f.pixelX(10))
    let (ya, yb) = (Double(f.pixelY(10)), Double(f.pixelY(0)))
    for x in 0..<img.width {
      let r = rows(img, x: x, blue)
      if x < xa || x > xb {
        XCTAssertEqual(r, [], "column \(x)")
        continue
      }
      XCTAssertFalse(r.isEmpty, "column \(x)")
      let expected = ya + (yb - ya) * Double(x - xa) / Double(xb - xa)
      for y in r { XCTAssertLessThanOrEqual(abs(Double(y) - expected), 1.0, "(\(x), \(y))") }
    }
    // Background is white off the line (a point below the diagonal away from grid lines).
    let gridX = Set(f.xTicks.map { f.pixelX($0.value) }), gridY = Set(f.yTicks.map { f.pixelY($0.value) })
    let probeX = (f.pixelX(7)...f.pixelX(9)).first { !gridX.contains($0) }!
    let probeY = (f.pixelY(2)...f.pixelY(1)).first { !gridY.contains($0) }!
    XCTAssertEqual(color(img, probeX, probeY), .white)
    XCTAssertEqual(color(img, img.width - 1, img.height - 1), .white)
    // Axes are black; the title puts black pixels in the top rows.
    XCTAssertEqual(color(img, f.left, (f.top + f.bottom) / 2), .black)
    XCTAssertEqual(color(img, (f.left + f.right) / 2, f.bottom), .black)
    XCTAssertTrue((0..<12).contains { y in (0..<img.width).contains { color(img, $0, y) == .black } })
    // Tick labels of the x axis: 0, 2, ..., 10.
    XCTAssertEqual(f.xTicks.map(\.label), ["0", "2", "4", "6", "8", "10"])
  }

  func testNaNAndInfinityBreakTheLine() {
    var plot = LinePlot()
    plot.add("", x: [0, 1, 2, 3, 4], y: [1, 2, .nan, 4, .infinity])
    let img = plot.render(width: 300, height: 200)
    let f = plot.frame(width: 300, height: 200)
    let c = LinePlot.palette[0]
    XCTAssertEqual(color(img, f.pixelX(0), f.pixelY(1)), c)
    XCTAssertEqual(color(img, f.pixelX(3), f.pixelY(4)), c)  // an isolated point is still drawn
    // No line from x = 1 to x = 3 across the NaN, none after the last finite point.
    for x in (f.pixelX(1) + 1)..<f.pixelX(3) { XCTAssertEqual(rows(img, x: x, c), [], "column \(x)") }
    for x in (f.pixelX(3) + 1)..<img.width { XCTAssertEqual(rows(img, x: x, c), [], "column \(x)") }
    // The y range ignores the non-finite values.
    XCTAssertLessThan(f.yMax, 5)
  }

  func testLogScaleSkipsNonPositiveValues() throws {
    var plot = LinePlot(title: "log", logY: true)
    plot.add("loss", x: [0, 1, 2, 3, 4], y: [100, 0, -1, 10, 1])
    let img = plot.render(width: 400, height: 300)
    let f = plot.frame(width: 400, height: 300)
    let c = LinePlot.palette[0]
    XCTAssertEqual(f.yTicks.map(\.label), ["1", "10", "100"])
    // Decades are evenly spaced.
    let (p1, p10, p100) = (f.pixelY(1), f.pixelY(10), f.pixelY(100))
    XCTAssertLessThanOrEqual(abs((p1 - p10) - (p10 - p100)), 1)
    XCTAssertEqual(color(img, f.pixelX(0), p100), c)
    XCTAssertEqual(color(img, f.pixelX(3), p10), c)
    XCTAssertEqual(color(img, f.pixelX(4), p1), c)
    // Points 1 and 2 (0 and −1) are skipped: nothing between x = 0 and x = 3.
    for x in (f.pixelX(0) + 1)..<f.pixelX(3) { XCTAssertEqual(rows(img, x: x, c), [], "column \(x)") }
    // All non-positive: an empty log chart.
    var none = LinePlot(logY: true)
    none.add("zero", x: [0, 1], y: [0, -3])
    let e = none.render(width: 200, height: 150)
    XCTAssertEqual(e.pixels.count, 200 * 150 * 3)
    XCTAssertGreaterThanOrEqual(none.frame(width: 200, height: 150).yTicks.count, 2)
  }

  func testLegendShowsNamedSeriesColours() {
    var plot = LinePlot()
    plot.add("train", x: [0, 1], y: [0, 0])
    plot.add("ema", x: [0, 1], y: [0.5, 0.5], color: RGB8(1, 2, 3))
    XCTAssertEqual(plot.series.map(\.color), [LinePlot.palette[0], RGB8(1, 2, 3)])
    let img = plot.render(width: 400, height: 300)
    let f = plot.frame(width: 400, height: 300)
    // The legend lies in the top-right corner of the plot area; both colours appear there as swatches.
    func inLegend(_ c: RGB8) -> Int {
      var n = 0
      for y in (f.top + 2)..<(f.top + 40) {
        for x in (f.right - 150)..<f.right where color(img, x, y) == c { n += 1 }
      }
      return n
    }
    XCTAssertGreaterThanOrEqual(inLegend(LinePlot.palette[0]), 16)
    XCTAssertGreaterThanOrEqual(inLegend(RGB8(1, 2, 3)), 16)

    // A rising line covers the top-right corner, so the legend moves to the top left.
    var rising = LinePlot()
    rising.add("up", x: (0...100).map(Double.init), y: (0...100).map(Double.init), color: RGB8(9, 9, 9))
    let r = rising.render(width: 400, height: 300)
    let g = rising.frame(width: 400, height: 300)
    var frameColoured = 0
    for y in (g.top + 2)..<(g.top + 40) {
      for x in (g.left + 2)..<(g.left + 100) where color(r, x, y) == LinePlot.frameColor {
        frameColoured += 1
      }
    }
    XCTAssertGreaterThan(frameColoured, 40, "legend box border in the top-left corner")
    XCTAssertEqual(color(r, g.pixelX(100), g.pixelY(100)), RGB8(9, 9, 9))
  }

  func testEmptyChartsRenderAndWritePNG() throws {
    for plot in [
      LinePlot(title: "empty"),
      {
        var p = LinePlot(); p.add("none", x: [], y: []); return p
      }(),
    ] {
      let img = plot.render(width: 320, height: 200)
      XCTAssertEqual(img.width, 320)
      XCTAssertEqual(img.height, 200)
      let f = plot.frame(width: 320, height: 200)
      XCTAssertEqual(color(img, f.left, (f.top + f.bottom) / 2), .black)
      XCTAssertGreaterThanOrEqual(f.xTicks.count, 2)
      XCTAssertGreaterThanOrEqual(f.yTicks.count, 2)
      let url = FileManager.default.temporaryDirectory.appendingPathComponent("gpugen-plot-\(UUID()).png")
      defer { try? FileManager.default.removeItem(at: url) }
      try plot.writePNG(to: url, width: 320, height: 200)
      XCTAssertEqual(try Image8.readPNG(from: url, channels: 3), img)
    }
    // Tiny sizes are raised to a minimum rather than crashing.
    XCTAssertEqual(LinePlot().render(width: 1, height: 1).width, 64)
  }

  func testMovingAverage() {
    XCTAssertEqual(movingAverage([1, 2, 3, 4], window: 2), [1, 1.5, 2.5, 3.5])
    XCTAssertEqual(movingAverage([1, 2, 3, 4], window: 1), [1, 2, 3, 4])
    XCTAssertEqual(movingAverage([3, 6, 9, 12], window: 10), [3, 4.5, 6, 7.5])
    let m = movingAverage([1, .nan, 3, 5], window: 3)
    XCTAssertEqual(m[0], 1)
    XCTAssertTrue(m[1].isNaN)
    XCTAssertEqual(m[2], 2)  // mean of the finite values 1, 3
    XCTAssertEqual(m[3], 4)  // 3, 5
    XCTAssertEqual(movingAverage([], window: 5), [])
  }

  func testTickLabels() {
    XCTAssertEqual(LinePlot.linearTicks(0, 1).map(\.label), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"])
    XCTAssertEqual(LinePlot.linearTicks(-0.03, 0.07).map(\.label), ["-0.02", "0.00", "0.02", "0.04", "0.06"])
    XCTAssertEqual(LinePlot.linearTicks(0, 1000).map(\.value), [0, 200, 400, 600, 800, 1000])
    XCTAssertEqual(LinePlot.tickLabel(1e-4, decimals: 0), "1e-4")
    XCTAssertEqual(LinePlot.tickLabel(2.5e6, decimals: 0), "2.5e6")
    XCTAssertEqual(LinePlot.tickLabel(-3e-5, decimals: 0), "-3e-5")
    XCTAssertEqual(LinePlot.tickLabel(0.05, decimals: 2), "0.05")
    XCTAssertEqual(LinePlot.logTicks(-3, 0).map(\.label), ["0.001", "0.01", "0.1", "1"])
    // Less than a decade: 1-2-5 multiples.
    XCTAssertEqual(LinePlot.logTicks(log10(0.15), log10(0.6)).map(\.label), ["0.2", "0.5"])
  }

  func testBitmapFontCoversTheNeededCharactersAndDrawsGlyphs() {
    let needed = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-+:,()/_ =%"
    for ch in needed { XCTAssertNotNil(BitmapFont.glyphs[ch], "missing \(ch)") }
    // No two glyphs are the same bitmap, and each fits in 5 columns.
    var seen: [[UInt8]: Character] = [:]
    for (ch, rows) in BitmapFont.glyphs {
      XCTAssertEqual(rows.count, 7, "\(ch)")
      XCTAssertTrue(rows.allSatisfy { $0 < 32 }, "\(ch)")
      if let other = seen[rows] { XCTFail("\(ch) and \(other) share a glyph") }
      seen[rows] = ch
    }
    XCTAssertEqual(BitmapFont.rows("~"), BitmapFont.rows("?"))
    XCTAssertEqual(BitmapFont.rows("ß"), BitmapFont.rows("?"))
    // Drawing "1" at scale 2 reproduces its bitmap.
    var canvas = LinePlot.Canvas(width: 12, height: 14)
    canvas.text("1", x: 0, y: 0, scale: 2, color: .black)
    let glyph = BitmapFont.rows("1")
    for y in 0..<14 {
      for x in 0..<10 {
        let on = glyph[y / 2] & (0x10 >> UInt8(x / 2)) != 0
        XCTAssertEqual(canvas.pixels[(y * 12 + x) * 3], on ? 0 : 255, "(\(x), \(y))")
      }
    }
    XCTAssertEqual(BitmapFont.width("10", scale: 2), 22)
  }
}
