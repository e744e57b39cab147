// Line plots (the training loss curve) rendered into an RGB `Image8`: axes, ticks with labels, legend, title,
// optional log-scale y, drawn with Bresenham lines and the built-in 5×7 bitmap font.
import Foundation

/// An 8-bit RGB colour.
public struct RGB8: Equatable, Hashable, Sendable {
  public var r: UInt8, g: UInt8, b: UInt8
  public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { (self.r, self.g, self.b) = (r, g, b) }

  public static let white = RGB8(255, 255, 255)
  public static let black = RGB8(0, 0, 0)
}

/// The trailing moving average of `values` over `window` entries: entry i is the mean of the finite values
/// among `values[max(0, i − window + 1)...i]`; a non-finite entry stays NaN (so plotted lines still break).
public func movingAverage(_ values: [Double], window: Int) -> [Double] {
  guard window > 1 else { return values }
  var out = [Double](repeating: .nan, count: values.count)
  var sum = 0.0, n = 0
  for i in values.indices {
    if values[i].isFinite { (sum, n) = (sum + values[i], n + 1) }
    if i >= window, values[i - window].isFinite { (sum, n) = (sum - values[i - window], n - 1) }
    if values[i].isFinite { out[i] = sum / Double(n) }
  }
  return out
}

/// A chart of one or more named (x, y) series.
public struct LinePlot: Sendable {
  public struct Series: Sendable {
    public var name: String
    public var x: [Double]
    public var y: [Double]
    public var color: RGB8
  }

  /// Series colours, in order of addition.
  public static let palette: [RGB8] = [
    RGB8(31, 119, 180), RGB8(255, 127, 14), RGB8(44, 160, 44), RGB8(214, 39, 40),
    RGB8(148, 103, 189), RGB8(140, 86, 75), RGB8(227, 119, 194), RGB8(127, 127, 127),
  ]
  static let gridColor = RGB8(225, 225, 225)
  static let frameColor = RGB8(160, 160, 160)

  public var title: String
  public var xLabel: String
  public var yLabel: String
  /// Logarithmic y axis; points with y ≤ 0 are then skipped (they break the line).
  public var logY: Bool
  public var series: [Series] = []

  public init(title: String = "", xLabel: String = "", yLabel: String = "", logY: Bool = false) {
    (self.title, self.xLabel, self.yLabel, self.logY) = (title, xLabel, yLabel, logY)
  }

  /// Adds a series (points beyond the shorter of x and y are ignored); the colour defaults to the palette.
  public mutating func add(_ name: String, x: [Double], y: [Double], color: RGB8? = nil) {
    let c = color ?? Self.palette[series.count % Self.palette.count]
    series.append(Series(name: name, x: x, y: y, color: c))
  }

  /// Renders the chart as an RGB image (at least 64×48 pixels).
  public func render(width: Int = 800, height: Int = 480) -> Image8 {
    let f = frame(width: width, height: height)
    var canvas = Canvas(width: f.width, height: f.height)
    let s = f.scale
    let lineH = 10 * s

    // Grid, ticks and tick labels.
    for t in f.xTicks {
      let px = f.pixelX(t.value)
      canvas.line(px, f.top, px, f.bottom, Self.gridColor)
      canvas.line(px, f.bottom + 1, px, f.bottom + 4 * s, .black)
      let w = BitmapFont.width(t.label, scale: s)
      let lx = Swift.min(Swift.max(0, px - w / 2), f.width - w)
      canvas.text(t.label, x: lx, y: f.bottom + 6 * s, scale: s, color: .black)
    }
    for t in f.yTicks {
      let py = f.pixelY(t.value)
      canvas.line(f.left, py, f.right, py, Self.gridColor)
      canvas.line(f.left - 4 * s, py, f.left - 1, py, .black)
      let w = BitmapFont.width(t.label, scale: s)
      canvas.text(t.label, x: f.left - 6 * s - w, y: py - 3 * s, scale: s, color: .black)
    }
    // Frame and axes.
    canvas.line(f.right, f.top, f.right, f.bottom, Self.frameColor)
    canvas.line(f.left, f.top, f.right, f.top, Self.frameColor)
    canvas.line(f.left, f.top, f.left, f.bottom, .black)
    canvas.line(f.left, f.bottom, f.right, f.bottom, .black)

    // Series, clipped to the inside of the axes.
    canvas.clip = (f.left + 1, f.top + 1, f.right - 1, f.bottom - 1)
    for ser in series {
      var previous: (Int, Int)? = nil
      for i in 0..<Swift.min(ser.x.count, ser.y.count) {
        guard f.isPlottable(x: ser.x[i], y: ser.y[i]) else {
          previous = nil
          continue
        }
        let p = (f.pixelX(ser.x[i]), f.pixelY(ser.y[i]))
        if let q = previous {
          canvas.line(q.0, q.1, p.0, p.1, ser.color, brush: s)
        } else {
          canvas.line(p.0, p.1, p.0, p.1, ser.color, brush: s)
        }
        previous = p
      }
    }
    canvas.clip = nil

    // Title, axis labels, legend.
    if !title.isEmpty {
      let w = BitmapFont.width(title, scale: s)
      canvas.text(title, x: Swift.max(0, (f.width - w) / 2), y: 3 * s, scale: s, color: .black)
    }
    if !yLabel.isEmpty {
      canvas.text(yLabel, x: Swift.max(0, f.left - 6 * s), y: f.top - lineH, scale: s, color: .black)
    }
    if !xLabel.isEmpty {
      let w = BitmapFont.width(xLabel, scale: s)
      canvas.text(
        xLabel, x: Swift.max(0, (f.left + f.right - w) / 2), y: f.bottom + 6 * s + lineH, scale: s,
        color: .black)
    }
    let named = series.filter { !$0.name.isEmpty }
    if !named.isEmpty {
      let swatch = 16 * s
      let textW = named.map { BitmapFont.width($0.name, scale: s) }.max()!
      let boxW = 4 * s + swatch + 4 * s + textW + 4 * s
      let boxH = named.count * lineH + 4 * s
      // The plot-area corner the series cover least (top right first on ties).
      let colours = Set(series.map(\.color))
      let corners = [
        (f.right - 6 * s - boxW, f.top + 6 * s), (f.left + 6 * s, f.top + 6 * s),
        (f.right - 6 * s - boxW, f.bottom - 6 * s - boxH), (f.left + 6 * s, f.bottom - 6 * s - boxH),
      ]
      let covered = corners.map { canvas.count(colours, $0.0, $0.1, $0.0 + boxW, $0.1 + boxH) }
      let (bx, by) = corners[covered.firstIndex(of: covered.min()!)!]
      canvas.fill(bx, by, bx + boxW, by + boxH, .white)
      canvas.rect(bx, by, bx + boxW, by + boxH, Self.frameColor)
      for (k, ser) in named.enumerated() {
        let rowY = by + 3 * s + k * lineH
        let midY = rowY + 3 * s
        canvas.fill(
          bx + 4 * s, midY - s / 2, bx + 4 * s + swatch, midY - s / 2 + Swift.max(2, s) - 1, ser.color)
        canvas.text(ser.name, x: bx + 8 * s + swatch, y: rowY, scale: s, color: .black)
      }
    }
    return Image8(width: f.width, height: f.height, channels: 3, pixels: canvas.pixels)
  }

  /// Renders the chart and writes it as a PNG file.
  public func writePNG(to url: URL, width: Int = 800, height: Int = 480) throws {
    try render(width: width, height: height).writePNG(to: url)
  }

  // MARK: Layout

  struct Tick {
    var value: Double
    var label: String
  }

  /// Where the plot area lies and how data maps onto it.
  struct Frame {
    var width: Int, height: Int, scale: Int
    /// The axes' pixel rectangle (inclusive).
    var left: Int, top: Int, right: Int, bottom: Int
    var xMin: Double, xMax: Double
    /// The y range (log10 of it for a log axis).
    var yMin: Double, yMax: Double
    var logY: Bool
    var xTicks: [Tick], yTicks: [Tick]

    func isPlottable(x: Double, y: Double) -> Bool {
      x.isFinite && y.isFinite && (!logY || y > 0)
    }

    /// Data points keep this many pixels away from the axes.
    var inset: Int { 2 * scale }

    func pixelX(_ x: Double) -> Int {
      let (a, b) = (Double(left + inset), Double(right - inset))
      return Int((a + (x - xMin) / (xMax - xMin) * (b - a)).rounded())
    }

    func pixelY(_ y: Double) -> Int {
      let v = logY ? log10(y) : y
      return Int((Double(bottom) - (v - yMin) / (yMax - yMin) * Double(bottom - top)).rounded())
    }
  }

  func frame(width requestedWidth: Int, height requestedHeight: Int) -> Frame {
    let width = Swift.max(64, requestedWidth), height = Swift.max(48, requestedHeight)
    let s = Swift.max(1, Swift.min(width, height) / 300)
    let lineH = 10 * s

    // Data ranges over plottable points.
    var xs: [Double] = [], ys: [Double] = []
    for ser in series {
      for i in 0..<Swift.min(ser.x.count, ser.y.count) {
        let (x, y) = (ser.x[i], ser.y[i])
        guard x.isFinite, y.isFinite, !logY || y > 0 else { continue }
        xs.append(x)
        ys.append(logY ? log10(y) : y)
      }
    }
    var (x0, x1) = (xs.min() ?? 0, xs.max() ?? 1)
    if x1 - x0 <= 0 { (x0, x1) = (x0 - 0.5, x1 + 0.5) }
    var (y0, y1) = (ys.min() ?? 0, ys.max() ?? 1)
    if y1 - y0 <= Swift.max(abs(y0), abs(y1)) * 1e-12 {
      (y0, y1) = (y0 - 0.5, y1 + 0.5)
    } else {
      let pad = (y1 - y0) * 0.05
      (y0, y1) = (y0 - pad, y1 + pad)
    }
    let xTicks = Self.linearTicks(x0, x1)
    let yTicks = logY ? Self.logTicks(y0, y1) : Self.linearTicks(y0, y1)

    let labelW = yTicks.map { BitmapFont.width($0.label, scale: s) }.max() ?? 0
    let left = Swift.max(labelW + 10 * s, BitmapFont.width(yLabel, scale: s) / 2) + 2 * s
    let top = (title.isEmpty ? 0 : lineH + 2 * s) + (yLabel.isEmpty ? 0 : lineH) + 8 * s
    let lastXLabel = BitmapFont.width(xTicks.last?.label ?? "", scale: s)
    let right = width - 1 - Swift.max(8 * s, lastXLabel / 2 + 2 * s)
    let bottom = height - 1 - (6 * s + 7 * s + 4 * s) - (xLabel.isEmpty ? 0 : lineH)
    return Frame(
      width: width, height: height, scale: s, left: left, top: top, right: Swift.max(right, left + 2),
      bottom: Swift.max(bottom, top + 2), xMin: x0, xMax: x1, yMin: y0, yMax: y1, logY: logY,
      xTicks: xTicks, yTicks: yTicks)
  }
}

// MARK: Ticks

extension LinePlot {
  /// About five ticks at 1, 2 or 5 × 10^k steps inside [lo, hi], labelled with the step's decimals.
  static func linearTicks(_ lo: Double, _ hi: Double, target: Double = 5) -> [Tick] {
    let raw = (hi - lo) / target
    guard raw > 0, raw.isFinite else { return [] }
    let mag = pow(10, floor(log10(raw)))
    let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw * 0.999 }!
    let first = (lo / step).rounded(.up), last = (hi / step).rounded(.down)
    guard last >= first, last - first < 100 else { return [] }
    let decimals = Swift.max(0, -Int(floor(log10(step) + 1e-9)))
    return stride(from: first, through: last, by: 1).map { k in
      let v = k * step
      return Tick(value: v, label: tickLabel(v == 0 ? 0 : v, decimals: decimals))
    }
  }

  /// Ticks for a log axis spanning log10 values [lo, hi]: powers of ten, or 1-2-5 multiples when fewer than
  /// three powers fit, or linear ticks when the span is too small for either.
  static func logTicks(_ lo: Double, _ hi: Double) -> [Tick] {
    guard lo.isFinite, hi.isFinite, hi > lo else { return [] }
    var candidates: [(value: Double, power: Bool)] = []
    for k in Int(floor(lo))...Int(ceil(hi)) {
      for m in [1.0, 2, 5] {
        let v = m * pow(10, Double(k))
        let l = log10(v)
        if l >= lo - 1e-12, l <= hi + 1e-12 { candidates.append((v, m == 1)) }
      }
    }
    var chosen = candidates.filter(\.power).map(\.value)
    if chosen.count < 3 { chosen = candidates.map(\.value) }
    if chosen.count < 2 {
      return linearTicks(pow(10, lo), pow(10, hi)).filter { $0.value > 0 }.map {
        Tick(value: $0.value, label: $0.label)
      }
    }
    let every = (chosen.count + 5) / 6
    return stride(from: 0, to: chosen.count, by: every).map { i in
      let v = chosen[i]
      return Tick(value: v, label: tickLabel(v, decimals: Swift.max(0, -Int(floor(log10(v) + 1e-9)))))
    }
  }

  /// A compact tick label: fixed-point with `decimals`, or `m e k` notation for very large or small values.
  static func tickLabel(_ v: Double, decimals: Int) -> String {
    let a = abs(v)
    if v != 0 && (a >= 1e5 || a < 1e-3) {
      var e = Int(floor(log10(a)))
      var m = (v / pow(10, Double(e)) * 100).rounded() / 100
      if abs(m) >= 10 { (m, e) = (m / 10, e + 1) }
      var ms = String(format: "%.2f", m)
      while ms.hasSuffix("0") { ms.removeLast() }
      if ms.hasSuffix(".") { ms.removeLast() }
      return "\(ms)e\(e)"
    }
    return String(format: "%.\(Swift.min(decimals, 8))f", v)
  }
}

// MARK: Drawing

extension LinePlot {
  /// An RGB pixel buffer with clipped drawing primitives.
  struct Canvas {
    let width: Int, height: Int
    var pixels: [UInt8]
    /// Drawing is limited to this inclusive rectangle (x0, y0, x1, y1) when set.
    var clip: (Int, Int, Int, Int)? = nil

    init(width: Int, height: Int) {
      (self.width, self.height) = (width, height)
      pixels = [UInt8](repeating: 255, count: width * height * 3)
    }

    mutating func set(_ x: Int, _ y: Int, _ c: RGB8) {
      guard x >= 0, y >= 0, x < width, y < height else { return }
      if let (x0, y0, x1, y1) = clip, x < x0 || x > x1 || y < y0 || y > y1 { return }
      let o = (y * width + x) * 3
      (pixels[o], pixels[o + 1], pixels[o + 2]) = (c.r, c.g, c.b)
    }

    /// A Bresenham line from (x0, y0) to (x1, y1) inclusive, drawn with a `brush`×`brush` square.
    mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: RGB8, brush: Int = 1) {
      let dx = abs(x1 - x0), dy = -abs(y1 - y0)
      let sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
      var (x, y, err) = (x0, y0, dx + dy)
      let half = (brush - 1) / 2
      while true {
        if brush <= 1 {
          set(x, y, c)
        } else {
          for by in 0..<brush { for bx in 0..<brush { set(x - half + bx, y - half + by, c) } }
        }
        if x == x1 && y == y1 { break }
        let e2 = 2 * err
        if e2 >= dy {
          err += dy
          x += sx
        }
        if e2 <= dx {
          err += dx
          y += sy
        }
      }
    }

    /// How many pixels of the inclusive rectangle have one of `colours`.
    func count(_ colours: Set<RGB8>, _ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int) -> Int {
      let (xa, xb) = (Swift.max(0, x0), Swift.min(width - 1, x1))
      let (ya, yb) = (Swift.max(0, y0), Swift.min(height - 1, y1))
      guard xa <= xb, ya <= yb else { return 0 }
      var n = 0
      for y in ya...yb {
        for x in xa...xb {
          let o = (y * width + x) * 3
          if colours.contains(RGB8(pixels[o], pixels[o + 1], pixels[o + 2])) { n += 1 }
        }
      }
      return n
    }

    mutating func fill(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: RGB8) {
      guard x1 >= x0, y1 >= y0 else { return }
      for y in y0...y1 { for x in x0...x1 { set(x, y, c) } }
    }

    mutating func rect(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: RGB8) {
      line(x0, y0, x1, y0, c)
      line(x0, y1, x1, y1, c)
      line(x0, y0, x0, y1, c)
      line(x1, y0, x1, y1, c)
    }

    /// Draws `text` with its top-left corner at (x, y), each font pixel a `scale`×`scale` square; descenders
    /// reach two font rows below the 7-row cell.
    mutating func text(_ text: String, x: Int, y: Int, scale: Int, color: RGB8) {
      var cx = x
      for ch in text {
        let dy = BitmapFont.rowOffset(ch)
        for (r0, bits) in BitmapFont.rows(ch).enumerated() {
          let r = r0 + dy
          for col in 0..<BitmapFont.glyphWidth where bits & (0x10 >> UInt8(col)) != 0 {
            fill(cx + col * scale, y + r * scale, cx + (col + 1) * scale - 1, y + (r + 1) * scale - 1, color)
          }
        }
        cx += BitmapFont.advance * scale
      }
    }
  }
}
