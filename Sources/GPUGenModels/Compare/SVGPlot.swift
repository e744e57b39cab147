// Small SVG line and point plots for the comparison report: inline in the HTML, readable with no script and
// no network. Axes with ticks, one colour per series, an optional log x axis, a legend.
import Foundation

/// An SVG plot of line series (each optionally with marked, labelled points).
public struct SVGPlot: Sendable {
  /// One series: its points in order, drawn as a polyline; `labels` (if given) are written next to the points.
  public struct Series: Sendable {
    public var name: String
    public var x: [Double]
    public var y: [Double]
    public var labels: [String]?
    public var dashed: Bool

    /// A series named `name`.
    public init(name: String, x: [Double], y: [Double], labels: [String]? = nil, dashed: Bool = false) {
      (self.name, self.x, self.y, self.labels, self.dashed) = (name, x, y, labels, dashed)
    }
  }

  /// The title, axis labels and whether the x axis is logarithmic.
  public var title: String, xLabel: String, yLabel: String
  public var logX = false
  /// Fixed axis ranges (nil: fitted to the data).
  public var xRange: ClosedRange<Double>?, yRange: ClosedRange<Double>?
  /// The series, drawn in order.
  public var series: [Series] = []

  /// The colours series take in order.
  public static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"]

  /// An empty plot.
  public init(title: String, xLabel: String, yLabel: String, logX: Bool = false) {
    (self.title, self.xLabel, self.yLabel, self.logX) = (title, xLabel, yLabel, logX)
  }

  /// Escapes text for XML.
  public static func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
      .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
  }

  /// A short label for a number (3 significant figures at most).
  public static func format(_ v: Double) -> String {
    if v == 0 { return "0" }
    let a = abs(v)
    if v == v.rounded() && a < 1e6 { return String(format: "%.0f", v) }
    if a >= 1000 || a < 0.01 { return String(format: "%.2g", v) }
    if a >= 10 { return String(format: "%.0f", v) }
    if a >= 1 { return String(format: "%.1f", v) }
    return String(format: "%.2f", v)
  }

  /// The SVG document, `width` × `height` pixels.
  public func render(width: Int = 560, height: Int = 340) -> String {
    let (left, right, top, bottom) = (64.0, 16.0, 30.0, 46.0)
    let pw = Double(width) - left - right, ph = Double(height) - top - bottom
    let tx: (Double) -> Double = { logX ? Foundation.log10(Swift.max($0, 1e-300)) : $0 }
    let pts = series.flatMap { s in
      zip(s.x, s.y).filter { $0.0.isFinite && $0.1.isFinite && (!logX || $0.0 > 0) }
    }
    var xs = pts.map { tx($0.0) }, ys = pts.map(\.1)
    if let r = xRange { xs += [tx(r.lowerBound), tx(r.upperBound)] }
    if let r = yRange { ys += [r.lowerBound, r.upperBound] }
    var (x0, x1) = (xs.min() ?? 0, xs.max() ?? 1), (y0, y1) = (ys.min() ?? 0, ys.max() ?? 1)
    if let r = xRange { (x0, x1) = (tx(r.lowerBound), tx(r.upperBound)) }
    if let r = yRange { (y0, y1) = (r.lowerBound, r.upperBound) }
    if x1 - x0 < 1e-12 { (x0, x1) = (x0 - 0.5, x1 + 0.5) }
    if y1 - y0 < 1e-12 { (y0, y1) = (y0 - 0.5, y1 + 0.5) }
    if yRange == nil {
      let pad = (y1 - y0) * 0.05
      (y0, y1) = (y0 - pad, y1 + pad)
    }
    let px: (Double) -> Double = { left + (tx($0) - x0) / (x1 - x0) * pw }
    let py: (Double) -> Double = { top + (1 - ($0 - y0) / (y1 - y0)) * ph }
    var svg = """
      <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" \
      font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/>
      <text x="\(width / 2)" y="18" text-anchor="middle" font-size="13" font-weight="bold">\(Self.escape(title))</text>
      <rect x="\(left)" y="\(top)" width="\(pw)" height="\(ph)" fill="none" stroke="#444"/>

      """
    for i in 0...4 {
      let fy = y0 + (y1 - y0) * Double(i) / 4
      let yy = py(fy)
      svg += "<line x1=\"\(left - 4)\" y1=\"\(yy)\" x2=\"\(left + pw)\" y2=\"\(yy)\" stroke=\"#ddd\"/>"
      svg += "<text x=\"\(left - 6)\" y=\"\(yy + 4)\" text-anchor=\"end\">\(Self.format(fy))</text>\n"
      let fx = x0 + (x1 - x0) * Double(i) / 4
      let xv = logX ? Foundation.pow(10, fx) : fx
      let xx = left + (fx - x0) / (x1 - x0) * pw
      svg += "<line x1=\"\(xx)\" y1=\"\(top + ph)\" x2=\"\(xx)\" y2=\"\(top + ph + 4)\" stroke=\"#444\"/>"
      svg += "<text x=\"\(xx)\" y=\"\(top + ph + 16)\" text-anchor=\"middle\">\(Self.format(xv))</text>\n"
    }
    svg +=
      "<text x=\"\(left + pw / 2)\" y=\"\(Double(height) - 8)\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>\n"
    svg +=
      "<text x=\"14\" y=\"\(top + ph / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 14 \(top + ph / 2))\">\(Self.escape(yLabel))</text>\n"
    for (k, s) in series.enumerated() {
      let color = Self.colors[k % Self.colors.count]
      let p = zip(s.x, s.y).filter { $0.0.isFinite && $0.1.isFinite && (!logX || $0.0 > 0) }
      let path = p.map { String(format: "%.1f,%.1f", px($0.0), py($0.1)) }.joined(separator: " ")
      svg +=
        "<polyline class=\"series\" data-name=\"\(Self.escape(s.name))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.6\""
        + (s.dashed ? " stroke-dasharray=\"5,3\"" : "") + " points=\"\(path)\"/>\n"
      if let labels = s.labels {
        for (i, (x, y)) in zip(s.x, s.y).enumerated() where x.isFinite && y.isFinite && i < labels.count {
          svg += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>", px(x), py(y), color)
          svg += String(
            format: "<text x=\"%.1f\" y=\"%.1f\" fill=\"%@\">%@</text>\n", px(x) + 5, py(y) - 4, color,
            Self.escape(labels[i]))
        }
      }
      let ly = top + 14 + Double(k) * 14
      svg +=
        "<line x1=\"\(left + pw - 130)\" y1=\"\(ly - 4)\" x2=\"\(left + pw - 112)\" y2=\"\(ly - 4)\" stroke=\"\(color)\" stroke-width=\"2\"/>"
      svg += "<text x=\"\(left + pw - 108)\" y=\"\(ly)\">\(Self.escape(s.name))</text>\n"
    }
    return svg + "</svg>"
  }
}
