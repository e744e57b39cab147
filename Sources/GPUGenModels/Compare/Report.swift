// The comparison report's content and its three renderings: a self-contained HTML page (inline PNGs and SVG
// plots, no script, nothing fetched at view time), Markdown, and JSON with every figure under plain keys.
import Foundation

/// A figure of the report: a PNG (sample grids, scatter plots) or an SVG plot.
public struct ReportFigure: Sendable {
  /// The figure's content.
  public enum Content: Sendable {
    case png(Data)
    case svg(String)
  }
  /// A file-name-safe identifier (the PNG is also written as `figures/<id>.png`).
  public var id: String
  /// The caption.
  public var caption: String
  public var content: Content

  /// A figure.
  public init(id: String, caption: String, content: Content) {
    (self.id, self.caption, self.content) = (id, caption, content)
  }

  /// A PNG figure of `image`, encoded through a temporary file.
  public init(id: String, caption: String, image: Image8) throws {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent(
      "gpugen-fig-\(UUID().uuidString).png")
    defer { try? FileManager.default.removeItem(at: url) }
    try image.writePNG(to: url)
    self.init(id: id, caption: caption, content: .png(try Data(contentsOf: url)))
  }
}

/// A table: a header and rows of cells.
public struct ReportTable: Sendable {
  public var header: [String]
  public var rows: [[String]]

  /// A table.
  public init(header: [String], rows: [[String]]) { (self.header, self.rows) = (header, rows) }
}

/// One row of the comparison: a criterion, one cell per column (model), the verdict and its figures.
public struct ComparisonRow: Sendable {
  /// A plain key (fidelity, diversity, ease_of_training, sampling_speed, latent, knobs, editing).
  public var key: String
  /// The criterion and what is measured for it.
  public var title: String, measured: String
  /// One cell per column of the report.
  public var cells: [String]
  /// One line, generated from the numbers: which family wins the row and by how much.
  public var verdict: String
  public var figures: [ReportFigure]

  /// A row.
  public init(
    key: String, title: String, measured: String, cells: [String], verdict: String,
    figures: [ReportFigure] = []
  ) {
    (self.key, self.title, self.measured, self.cells, self.verdict, self.figures) = (
      key, title, measured, cells, verdict, figures
    )
  }
}

/// A section after the main table (calibration, the seed's profile, toy runs, caveats).
public struct ReportSection: Sendable {
  public var id: String
  public var title: String
  public var paragraphs: [String]
  public var table: ReportTable?
  public var figures: [ReportFigure]

  /// A section.
  public init(
    id: String, title: String, paragraphs: [String] = [], table: ReportTable? = nil,
    figures: [ReportFigure] = []
  ) {
    (self.id, self.title, self.paragraphs, self.table, self.figures) = (id, title, paragraphs, table, figures)
  }
}

/// The whole comparison report.
public struct ComparisonReport: Sendable {
  /// The marker report.json carries, so that `--out` can tell a report folder from any other.
  public static let marker = "gpugen compare report"

  public var title: String
  /// How the report was made: lines printed under the title.
  public var setup: [String]
  /// The column labels (one model each) and their families.
  public var columns: [String]
  public var families: [String]
  public var rows: [ComparisonRow]
  public var sections: [ReportSection]

  /// A report.
  public init(
    title: String, setup: [String], columns: [String], families: [String], rows: [ComparisonRow],
    sections: [ReportSection]
  ) {
    (self.title, self.setup, self.columns, self.families, self.rows, self.sections) = (
      title, setup, columns, families, rows, sections
    )
  }

  /// Whether `url` may receive a report: it does not exist, is an empty folder, or holds an earlier report.
  public static func checkOutputFolder(_ url: URL) throws {
    let fm = FileManager.default
    var isDir: ObjCBool = false
    guard fm.fileExists(atPath: url.path, isDirectory: &isDir) else { return }
    guard isDir.boolValue else {
      throw ModelError.input("--out \(url.path) is a file, not a report folder")
    }
    let contents = try fm.contentsOfDirectory(atPath: url.path)
    if contents.isEmpty { return }
    let json = url.appendingPathComponent("report.json")
    guard let data = fm.contents(atPath: json.path),
      let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      o["generator"] as? String == marker
    else {
      throw ModelError.input(
        "--out \(url.path) exists and is not a gpugen compare report folder (no report.json of ours in it); "
          + "choose a new folder")
    }
  }

  // MARK: HTML

  static func html(_ s: String) -> String { SVGPlot.escape(s) }

  func figureHTML(_ f: ReportFigure) -> String {
    let body: String
    switch f.content {
    case .png(let d):
      body = "<img alt=\"\(Self.html(f.caption))\" src=\"data:image/png;base64,\(d.base64EncodedString())\"/>"
    case .svg(let s): body = s
    }
    return
      "<figure id=\"fig-\(f.id)\" class=\"figure\">\(body)<figcaption>\(Self.html(f.caption))</figcaption></figure>\n"
  }

  func tableHTML(_ t: ReportTable, id: String) -> String {
    var h =
      "<table id=\"\(id)\"><thead><tr>" + t.header.map { "<th>\(Self.html($0))</th>" }.joined()
      + "</tr></thead><tbody>\n"
    for r in t.rows { h += "<tr>" + r.map { "<td>\(Self.html($0))</td>" }.joined() + "</tr>\n" }
    return h + "</tbody></table>\n"
  }

  /// The self-contained HTML page.
  public func renderHTML() -> String {
    var h = """
      <!DOCTYPE html>
      <html lang="en"><head><meta charset="utf-8"><title>\(Self.html(title))</title>
      <style>
      body{font-family:sans-serif;margin:24px;max-width:1400px;color:#222}
      table{border-collapse:collapse;margin:12px 0}
      th,td{border:1px solid #bbb;padding:6px 9px;vertical-align:top;font-size:13px}
      th{background:#eee}
      td.verdict{background:#f6f6e8;font-style:italic}
      .figures{display:flex;flex-wrap:wrap;gap:14px}
      figure{margin:6px;border:1px solid #ddd;padding:6px}
      figcaption{font-size:12px;color:#555;max-width:560px}
      img{image-rendering:pixelated;max-width:420px}
      </style></head><body>
      <h1>\(Self.html(title))</h1>
      <ul id="setup">\(setup.map { "<li>\(Self.html($0))</li>" }.joined())</ul>
      <table id="comparison"><thead><tr><th>criterion</th><th>what is measured</th>
      """
    for (c, f) in zip(columns, families) { h += "<th>\(Self.html(c)) (\(Self.html(f)))</th>" }
    h += "<th>verdict</th></tr></thead><tbody>\n"
    for r in rows {
      h += "<tr id=\"row-\(r.key)\"><th>\(Self.html(r.title))</th><td>\(Self.html(r.measured))</td>"
      for (i, c) in r.cells.enumerated() {
        h +=
          "<td class=\"cell\" data-row=\"\(r.key)\" data-col=\"\(Self.html(columns[i]))\">\(Self.html(c))</td>"
      }
      h += "<td class=\"verdict\" data-row=\"\(r.key)\">\(Self.html(r.verdict))</td></tr>\n"
    }
    h += "</tbody></table>\n"
    for r in rows where !r.figures.isEmpty {
      h += "<h2 id=\"figures-\(r.key)\">\(Self.html(r.title))</h2><div class=\"figures\">"
      h += r.figures.map(figureHTML).joined() + "</div>\n"
    }
    for s in sections {
      h += "<h2 id=\"\(s.id)\">\(Self.html(s.title))</h2>\n"
      for p in s.paragraphs { h += "<p>\(Self.html(p))</p>\n" }
      if let t = s.table { h += tableHTML(t, id: "table-\(s.id)") }
      if !s.figures.isEmpty {
        h += "<div class=\"figures\">" + s.figures.map(figureHTML).joined() + "</div>\n"
      }
    }
    return h + "</body></html>\n"
  }

  // MARK: Markdown

  static func md(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }

  /// The report as Markdown (tables and verdicts; figures by file name).
  public func renderMarkdown() -> String {
    var m = "# \(title)\n\n" + setup.map { "- \($0)\n" }.joined() + "\n"
    m +=
      "| criterion | " + zip(columns, families).map { "\(Self.md($0)) (\($1))" }.joined(separator: " | ")
      + " | verdict |\n"
    m += "|---|" + columns.map { _ in "---|" }.joined() + "---|\n"
    for r in rows {
      m +=
        "| \(Self.md(r.title)) | " + r.cells.map(Self.md).joined(separator: " | ")
        + " | \(Self.md(r.verdict)) |\n"
    }
    for r in rows where !r.figures.isEmpty {
      m += "\n## \(r.title)\n\n" + r.figures.map { figureMarkdown($0) }.joined()
    }
    for s in sections {
      m += "\n## \(s.title)\n\n" + s.paragraphs.map { "\($0)\n\n" }.joined()
      if let t = s.table {
        m +=
          "| " + t.header.map(Self.md).joined(separator: " | ") + " |\n|"
          + t.header.map { _ in "---|" }.joined()
          + "\n"
        for row in t.rows { m += "| " + row.map(Self.md).joined(separator: " | ") + " |\n" }
        m += "\n"
      }
      m += s.figures.map { figureMarkdown($0) }.joined()
    }
    return m
  }

  func figureMarkdown(_ f: ReportFigure) -> String {
    switch f.content {
    case .png: return "![\(f.caption)](figures/\(f.id).png)\n\n"
    case .svg: return "![\(f.caption)](figures/\(f.id).svg)\n\n"
    }
  }

  /// Writes index.html, report.md, report.json (`json` plus the marker) and figures/ into `dir`.
  public func write(to dir: URL, json: [String: Any]) throws {
    try Self.checkOutputFolder(dir)
    // Written whole into a hidden folder beside `dir`, which replaces `dir` (an earlier report) only at the
    // end: a run that fails part way leaves the earlier report, or nothing.
    let outputs = StagedOutputs()
    try outputs.stageFolder(dir) { try writeFiles(to: $0, json: json) }
    try outputs.commit()
  }

  /// Writes figures/, report.json, report.md and index.html into the folder `dir`.
  func writeFiles(to dir: URL, json: [String: Any]) throws {
    let fm = FileManager.default
    let figures = dir.appendingPathComponent("figures")
    try fm.createDirectory(at: figures, withIntermediateDirectories: true)
    for f in rows.flatMap(\.figures) + sections.flatMap(\.figures) {
      switch f.content {
      case .png(let d): try d.write(to: figures.appendingPathComponent("\(f.id).png"))
      case .svg(let s): try Data(s.utf8).write(to: figures.appendingPathComponent("\(f.id).svg"))
      }
    }
    var o = json
    o["generator"] = Self.marker
    o["rows"] = rows.map { r -> [String: Any] in
      [
        "key": r.key, "title": r.title, "measured": r.measured, "verdict": r.verdict,
        "cells": Dictionary(uniqueKeysWithValues: zip(columns, r.cells)),
      ]
    }
    let data = try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys])
    try data.write(to: dir.appendingPathComponent("report.json"))
    try Data(renderMarkdown().utf8).write(to: dir.appendingPathComponent("report.md"))
    try Data(renderHTML().utf8).write(to: dir.appendingPathComponent("index.html"))
  }
}
