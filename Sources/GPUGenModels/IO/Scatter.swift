// Scatter plots of 2-D points (toy data sets, GAN samples) over a fixed square data range: translucent dots, circles
// around reference points (a toy data set's modes, radius 3σ), grid, ticks, title. Drawn with LinePlot's canvas,
// ticks and bitmap font.
import Foundation

/// A scatter plot of (x, y) points on a square data range shared by both axes, with marker circles.
public struct ScatterPlot: Sendable {
  /// The colour of the points.
  public static let pointColor = LinePlot.palette[0]
  /// The colour of the marker circles.
  public static let markerColor = RGB8(214, 39, 40)
  /// The opacity of one dot: overlapping dots darken towards `pointColor`.
  public static let pointAlpha = 0.35

  /// The first line above the plot.
  public var title: String
  /// A second line above the plot (e.g. `ToyScores.summary`); empty for none.
  public var subtitle: String
  /// The data range of both axes; points outside it are not drawn.
  public var range: ClosedRange<Double>
  /// Row-major (x, y) pairs; non-finite points are skipped.
  public var points: [Float]
  /// Centres of the marker circles.
  public var markers: [(x: Double, y: Double)]
  /// The marker circles' radius in data units (drawn at least 2 pixels wide).
  public var markerRadius: Double

  /// A plot of `points` on `range` with circles of `markerRadius` around `markers`.
  public init(
    title: String = "", subtitle: String = "", range: ClosedRange<Double>, points: [Float] = [],
    markers: [(x: Double, y: Double)] = [], markerRadius: Double = 0
  ) {
    (self.title, self.subtitle, self.range, self.points) = (title, subtitle, range, points)
    (self.markers, self.markerRadius) = (markers, markerRadius)
  }

  /// A plot of `points` on `dataset`'s fixed range with its modes circled at the high-quality radius (3σ);
  /// the title defaults to the data set's `toy:` name.
  public init(dataset: ToyDataset, points: [Float], title: String? = nil, subtitle: String = "") {
    self.init(
      title: title ?? dataset.spec, subtitle: subtitle, range: dataset.plotRange, points: points,
      markers: dataset.modes, markerRadius: ToyMetrics.qualityRadius * dataset.sigma)
  }

  /// Renders the plot as a `size`×`size` RGB image (at least 96).
  public func render(size: Int = 480) -> Image8 {
    let f = frame(size: size)
    var canvas = LinePlot.Canvas(width: f.size, height: f.size)
    let s = f.scale

    for t in f.ticks {
      let (px, py) = (f.pixelX(t.value), f.pixelY(t.value))
      canvas.line(px, f.top, px, f.bottom, LinePlot.gridColor)
      canvas.line(f.left, py, f.right, py, LinePlot.gridColor)
      canvas.line(px, f.bottom + 1, px, f.bottom + 4 * s, .black)
      canvas.line(f.left - 4 * s, py, f.left - 1, py, .black)
      let w = BitmapFont.width(t.label, scale: s)
      canvas.text(
        t.label, x: Swift.min(Swift.max(0, px - w / 2), f.size - w), y: f.bottom + 6 * s, scale: s,
        color: .black)
      canvas.text(t.label, x: f.left - 6 * s - w, y: py - 3 * s, scale: s, color: .black)
    }
    canvas.line(f.right, f.top, f.right, f.bottom, LinePlot.frameColor)
    canvas.line(f.left, f.top, f.right, f.top, LinePlot.frameColor)
    canvas.line(f.left, f.top, f.left, f.bottom, .black)
    canvas.line(f.left, f.bottom, f.right, f.bottom, .black)

    canvas.clip = (f.left + 1, f.top + 1, f.right - 1, f.bottom - 1)
    let dot = s  // a (2·dot + 1)² square
    for i in 0..<(points.count / 2) {
      let (x, y) = (Double(points[2 * i]), Double(points[2 * i + 1]))
      guard x.isFinite, y.isFinite, range.contains(x), range.contains(y) else { continue }
      let (px, py) = (f.pixelX(x), f.pixelY(y))
      for dy in -dot...dot {
        for dx in -dot...dot { canvas.blend(px + dx, py + dy, Self.pointColor, alpha: Self.pointAlpha) }
      }
    }
    let r = f.markerPixels(markerRadius)
    for m in markers {
      canvas.circle(f.pixelX(m.x), f.pixelY(m.y), radius: r, Self.markerColor, brush: s)
    }
    canvas.clip = nil

    // Title lines, each at the plot's scale or smaller where that is too wide for the image.
    var y = 3 * s
    for line in [title, subtitle] where !line.isEmpty {
      let ls = (1...s).last { BitmapFont.width(line, scale: $0) <= f.size - 4 } ?? 1
      let w = BitmapFont.width(line, scale: ls)
      canvas.text(line, x: Swift.max(0, (f.size - w) / 2), y: y + (s - ls) * 7, scale: ls, color: .black)
      y += 10 * s
    }
    return Image8(width: f.size, height: f.size, channels: 3, pixels: canvas.pixels)
  }

  /// Renders the plot and writes it as a PNG file.
  public func writePNG(to url: URL, size: Int = 480) throws {
    try render(size: size).writePNG(to: url)
  }

  // MARK: Layout

  /// Where the square plot area lies and how data maps onto it (the same scale on both axes).
  struct Frame {
    var size: Int, scale: Int
    /// The axes' pixel square (inclusive).
    var left: Int, top: Int, right: Int, bottom: Int
    var lo: Double, hi: Double
    var ticks: [LinePlot.Tick]

    /// Data points keep this many pixels away from the axes.
    var inset: Int { 2 * scale }
    /// Pixels per data unit.
    var pixelsPerUnit: Double { Double(right - left - 2 * inset) / (hi - lo) }

    func pixelX(_ x: Double) -> Int { Int((Double(left + inset) + (x - lo) * pixelsPerUnit).rounded()) }
    func pixelY(_ y: Double) -> Int { Int((Double(bottom - inset) - (y - lo) * pixelsPerUnit).rounded()) }
    /// A radius in data units as pixels, at least 2.
    func markerPixels(_ r: Double) -> Int { Swift.max(2, Int((r * pixelsPerUnit).rounded())) }
  }

  func frame(size requested: Int) -> Frame {
    let size = Swift.max(96, requested)
    let s = Swift.max(1, size / 300)
    var (lo, hi) = (range.lowerBound, range.upperBound)
    if !(hi - lo > 0) || !lo.isFinite || !hi.isFinite { (lo, hi) = (-1, 1) }
    let ticks = LinePlot.linearTicks(lo, hi, target: 6)
    let labelW = ticks.map { BitmapFont.width($0.label, scale: s) }.max() ?? 0
    let lines = [title, subtitle].filter { !$0.isEmpty }.count
    var left = labelW + 12 * s
    let top = lines * 10 * s + 8 * s
    let rightMargin = Swift.max(8 * s, BitmapFont.width(ticks.last?.label ?? "", scale: s) / 2 + 2 * s)
    let bottomMargin = 17 * s
    let (width, height) = (size - left - rightMargin, size - top - bottomMargin)
    let side = Swift.max(4 * s + 8, Swift.min(width, height))
    left += Swift.max(0, (width - side) / 2)
    return Frame(
      size: size, scale: s, left: left, top: top, right: left + side - 1, bottom: top + side - 1, lo: lo,
      hi: hi,
      ticks: ticks)
  }
}

/// Scatter plots of generated 2-D points in one call (the GAN commands' toy plots).
public enum ToyScatter {
  /// A `size`×`size` scatter plot of `points`: on `dataset`'s fixed range with its modes circled at 3σ, or, without
  /// a data set, on the square ±⌈1.1·max |coordinate|⌉ (at least ±1) with no markers.
  public static func render(
    _ points: [Float], dataset: ToyDataset?, title: String, subtitle: String = "", size: Int = 480
  ) -> Image8 {
    if let dataset {
      return ScatterPlot(dataset: dataset, points: points, title: title, subtitle: subtitle).render(
        size: size)
    }
    let largest = points.lazy.filter(\.isFinite).map { abs(Double($0)) }.max() ?? 0
    let half = Swift.max(1, (1.1 * largest).rounded(.up))
    return ScatterPlot(title: title, subtitle: subtitle, range: -half...half, points: points).render(
      size: size)
  }
}

// MARK: Drawing

extension LinePlot.Canvas {
  /// `over` laid with opacity `alpha` (0 < alpha ≤ 1) on `under`, each channel rounded to the nearest level but
  /// moved at least one level towards `over`, so that repeated blends reach `over` exactly.
  static func blended(_ under: RGB8, _ over: RGB8, alpha: Double) -> RGB8 {
    func mix(_ a: UInt8, _ b: UInt8) -> UInt8 {
      let m = UInt8((Double(a) + alpha * (Double(b) - Double(a))).rounded())
      return m != a || a == b ? m : (b > a ? a + 1 : a - 1)
    }
    return RGB8(mix(under.r, over.r), mix(under.g, over.g), mix(under.b, over.b))
  }

  /// Lays `c` with opacity `alpha` on pixel (x, y) (clipped like `set`).
  mutating func blend(_ x: Int, _ y: Int, _ c: RGB8, alpha: Double) {
    guard x >= 0, y >= 0, x < width, y < height else { return }
    let o = (y * width + x) * 3
    set(x, y, Self.blended(RGB8(pixels[o], pixels[o + 1], pixels[o + 2]), c, alpha: alpha))
  }

  /// A midpoint circle of `radius` pixels around (cx, cy), drawn with a `brush`×`brush` square.
  mutating func circle(_ cx: Int, _ cy: Int, radius: Int, _ c: RGB8, brush: Int = 1) {
    let half = (brush - 1) / 2
    func plot(_ x: Int, _ y: Int) {
      for by in 0..<brush { for bx in 0..<brush { set(x - half + bx, y - half + by, c) } }
    }
    var (x, y, err) = (radius, 0, 1 - radius)
    while x >= y {
      for (u, v) in [(x, y), (y, x), (-y, x), (-x, y), (-x, -y), (-y, -x), (y, -x), (x, -y)] {
        plot(cx + u, cy + v)
      }
      y += 1
      if err < 0 {
        err += 2 * y + 1
      } else {
        x -= 1
        err += 2 * (y - x) + 1
      }
    }
  }
}
