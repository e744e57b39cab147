// `gpugen compare`: the report's renderings (every cell and figure present, nothing fetched at view time, and
// the page loaded by a real browser, headless Chromium), the output-folder rule, the command end to end on small
// settings, and its errors for bad input (exit status 2).
import Foundation
import GPUGenCore
import XCTest

@testable import GPUGenModels

final class CompareTests: XCTestCase {
  func tmp() throws -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent(
      "gpugen-compare-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: d) }
    return d
  }

  func sampleReport() throws -> ComparisonReport {
    let grid = try Image8.grid((0..<(4 * 64)).map { Float($0 % 7) / 3 - 1 }, shape: [4, 1, 8, 8], columns: 2)
    var plot = SVGPlot(title: "a <plot>", xLabel: "x", yLabel: "y", logX: true)
    plot.series = [.init(name: "s & t", x: [1, 10, 100], y: [3, 2, 1], labels: ["a", "b", "c"])]
    return ComparisonReport(
      title: "test report", setup: ["N = 10", "feature space: test"], columns: ["g", "v"],
      families: ["GAN", "VAE"],
      rows: [
        ComparisonRow(
          key: "fidelity", title: "fidelity", measured: "precision",
          cells: ["precision 0.900", "precision 0.700"],
          verdict: "g has the highest precision (0.900; v 0.700)",
          figures: [try ReportFigure(id: "grid-g", caption: "g's samples", image: grid)]),
        ComparisonRow(
          key: "speed", title: "sampling speed", measured: "images/s",
          cells: ["1000 images/s", "2000 images/s | x"],
          verdict: "v is fastest",
          figures: [ReportFigure(id: "plot", caption: "a plot", content: .svg(plot.render()))]),
      ],
      sections: [
        ReportSection(
          id: "calibration", title: "Calibration", paragraphs: ["real against real"],
          table: ReportTable(header: ["N", "FID"], rows: [["500", "3.2"], ["1000", "1.6"]]))
      ])
  }

  func testTheHTMLHoldsEveryCellVerdictAndFigureInline() throws {
    let r = try sampleReport()
    let html = r.renderHTML()
    for row in r.rows {
      XCTAssertTrue(html.contains("id=\"row-\(row.key)\""))
      for (i, c) in row.cells.enumerated() {
        XCTAssertTrue(
          html.contains("data-row=\"\(row.key)\" data-col=\"\(r.columns[i])\">\(SVGPlot.escape(c))</td>"), c)
      }
      XCTAssertTrue(html.contains(SVGPlot.escape(row.verdict)))
    }
    XCTAssertTrue(html.contains("<img alt=\"g&#39;s samples\"") || html.contains("<img alt=\"g's samples\""))
    XCTAssertTrue(html.contains("src=\"data:image/png;base64,iVBORw0KGgo"), "an inline PNG")
    XCTAssertTrue(html.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""))
    XCTAssertTrue(html.contains("a &lt;plot&gt;"), "SVG text is escaped")
    XCTAssertTrue(html.contains("<td>1000</td><td>1.6</td>"))
    // Self-contained: no address but the SVG namespace.
    let addresses = html.components(separatedBy: "http").count - 1
    let namespaces = html.components(separatedBy: "http://www.w3.org/2000/svg").count - 1
    XCTAssertEqual(addresses, namespaces)
    XCTAssertFalse(html.contains("<script"))
    let md = r.renderMarkdown()
    XCTAssertTrue(md.contains("| sampling speed | 1000 images/s | 2000 images/s \\| x | v is fastest |"), md)
    XCTAssertTrue(md.contains("![g's samples](figures/grid-g.png)"))
  }

  func testWriteAndTheOutputFolderRule() throws {
    let d = try tmp()
    let r = try sampleReport()
    let out = d.appendingPathComponent("report")
    try r.write(to: out, json: ["n": 10])
    for f in ["index.html", "report.md", "report.json", "figures/grid-g.png", "figures/plot.svg"] {
      XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(f).path), f)
    }
    let json = try XCTUnwrap(
      JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("report.json")))
        as? [String: Any])
    XCTAssertEqual(json["generator"] as? String, ComparisonReport.marker)
    XCTAssertEqual((json["n"] as? NSNumber)?.intValue, 10)
    let rows = try XCTUnwrap(json["rows"] as? [[String: Any]])
    XCTAssertEqual(rows.map { $0["key"] as? String }, ["fidelity", "speed"])
    XCTAssertEqual((rows[0]["cells"] as? [String: String])?["v"], "precision 0.700")
    // A report folder may be written again; an empty one too; a folder of anything else, or a file, may not.
    XCTAssertNoThrow(try r.write(to: out, json: [:]))
    XCTAssertNoThrow(try ComparisonReport.checkOutputFolder(d.appendingPathComponent("new")))
    let other = d.appendingPathComponent("other")
    try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
    XCTAssertNoThrow(try ComparisonReport.checkOutputFolder(other))
    try Data("x".utf8).write(to: other.appendingPathComponent("notes.txt"))
    XCTAssertThrowsError(try ComparisonReport.checkOutputFolder(other)) { e in
      XCTAssertTrue("\(e)".contains("not a gpugen compare report folder"), "\(e)")
    }
    XCTAssertThrowsError(try ComparisonReport.checkOutputFolder(other.appendingPathComponent("notes.txt")))
  }

  /// Headless Chromium (Debian's `chromium`, installed by scripts/install-deps).
  func chromium() throws -> String {
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
    where FileManager.default.isExecutableFile(atPath: p) {
      return p
    }
    XCTFail("no headless Chromium (/usr/bin/chromium): run scripts/install-deps")
    throw XCTSkip("no Chromium")
  }

  /// The DOM of `html` after a real browser loaded it from disk, with a probe script that counts the decoded
  /// images and the SVG plots into the page's title.
  func loadInBrowser(_ html: String, in dir: URL) throws -> String {
    let probe = """
      <script>window.addEventListener('load',()=>{const im=[...document.images];\
      document.title='loaded '+im.filter(i=>i.complete&&i.naturalWidth>0).length+'/'+im.length+\
      ' svg '+document.querySelectorAll('svg').length+' cells '+document.querySelectorAll('td.cell').length;});</script>
      """
    let page = dir.appendingPathComponent("probe.html")
    try Data(html.replacingOccurrences(of: "</body>", with: probe + "</body>").utf8).write(to: page)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try chromium())
    p.arguments = [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
      "--user-data-dir=\(dir.path)/profile",
      "--virtual-time-budget=5000", "--dump-dom", page.absoluteString,
    ]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    XCTAssertEqual(p.terminationStatus, 0)
    return String(decoding: data, as: UTF8.self)
  }

  func testTheReportLoadsInHeadlessChromiumWithEveryFigure() throws {
    let d = try tmp()
    let r = try sampleReport()
    let dom = try loadInBrowser(r.renderHTML(), in: d)
    XCTAssertTrue(dom.contains("<title>loaded 1/1 svg 1 cells 4</title>"), String(dom.prefix(600)))
    XCTAssertTrue(dom.contains("g has the highest precision"))
  }

  // MARK: The command

  func testCompareEndToEndOnSmallSettings() throws {
    try XCTSkipUnless(
      FileManager.default.fileExists(
        atPath: TrainingImages.fashionMNISTFolder().appendingPathComponent("t10k-images-idx3-ubyte.gz").path),
      "dataset-fashion-mnist is not installed")
    let d = try tmp()
    let out = d.appendingPathComponent("report")
    // The speed row on every device given: the CPU and, where there is one, an OpenCL device (PoCL in CI).
    let cl = try Device.openCLDevices().first.map { "opencl:\($0.index)" }
    let devices = ["cpu"] + (cl.map { [$0] } ?? [])
    let (status, stdout, err) = try runGpugen([
      "compare", "--quick", "--n", "100", "--seeds", "1", "--toy-steps", "30", "--projection-steps", "3",
      "--inversion-steps", "2",
      "--device", devices.joined(separator: ","),
      "--out", out.path,
    ])
    XCTAssertEqual(status, 0, err)
    XCTAssertTrue(stdout.contains("report: \(out.path)/index.html"), stdout)
    let json = try XCTUnwrap(
      JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("report.json")))
        as? [String: Any])
    XCTAssertEqual(json["columns"] as? [String], ["gan", "vae", "diffusion"])
    let families = try XCTUnwrap(json["families"] as? [String: [String: Any]])
    for name in ["gan", "vae", "diffusion"] {
      let f = try XCTUnwrap(families[name], name)
      XCTAssertEqual(f["family"] as? String, name)
      XCTAssertEqual((f["n"] as? NSNumber)?.intValue, 100)
      XCTAssertEqual(f["device"] as? String, "cpu")
      XCTAssertTrue((f["feature_space"] as? String ?? "").contains("classifier"))
      for key in [
        "precision", "recall", "density", "coverage", "fid", "kid", "images_per_s", "nfe", "ms_per_image",
      ] {
        XCTAssertNotNil(f[key] as? NSNumber, "\(name).\(key)")
      }
      let toy = try XCTUnwrap(f["toy"] as? [String: Any])
      XCTAssertEqual((toy["runs"] as? NSNumber)?.intValue, 1)
      XCTAssertEqual(toy["data"] as? String, "toy:grid25")
      XCTAssertEqual((f["sweep"] as? [Any])?.count, 3)
    }
    XCTAssertEqual((families["diffusion"]?["nfe"] as? NSNumber)?.intValue, 20)
    XCTAssertEqual(json["devices"] as? [String], devices)
    for name in ["gan", "vae", "diffusion"] {
      let speed = try XCTUnwrap(families[name]?["speed"] as? [[String: Any]], name)
      XCTAssertEqual(Set(speed.compactMap { $0["device"] as? String }), Set(devices), name)
    }
    let ddpm = try XCTUnwrap(
      (families["diffusion"]?["speed"] as? [[String: Any]])?.first {
        ($0["nfe"] as? NSNumber)?.intValue == 1000
      })
    XCTAssertEqual(ddpm["measured"] as? Bool, false, "--quick estimates the DDPM speed")
    XCTAssertEqual((families["gan"]?["nfe"] as? NSNumber)?.intValue, 1)
    XCTAssertNotNil(families["vae"]?["reconstruction_mse"] as? NSNumber)
    XCTAssertNotNil(families["gan"]?["reconstruction_mse"] as? NSNumber)
    XCTAssertNotNil(families["diffusion"]?["reconstruction_mse"] as? NSNumber)
    XCTAssertTrue(
      (families["diffusion"]?["reconstruction_method"] as? String ?? "").contains("DDIM inversion, 2 steps"))
    XCTAssertTrue((families["gan"]?["reconstruction_method"] as? String ?? "").contains("3 Adam steps"))
    XCTAssertEqual((json["calibration"] as? [Any])?.count, 3)
    XCTAssertEqual(
      (json["toy_runs"] as? [[String: Any]])?.map { ($0["steps"] as? NSNumber)?.intValue }, [30, 30, 30])
    let rows = try XCTUnwrap(json["rows"] as? [[String: Any]])
    XCTAssertEqual(
      rows.compactMap { $0["key"] as? String },
      ["fidelity", "diversity", "ease_of_training", "sampling_speed", "latent", "knobs", "editing"])
    for row in rows { XCTAssertFalse((row["verdict"] as? String ?? "").isEmpty, "\(row)") }
    XCTAssertFalse((json["profile"] as? [Any] ?? []).isEmpty)
    let html = try String(contentsOf: out.appendingPathComponent("index.html"), encoding: .utf8)
    XCTAssertEqual(html.components(separatedBy: "<td class=\"cell\"").count - 1, 7 * 3)
    for f in [
      "samples-gan", "samples-vae", "samples-diffusion", "toy-gan", "loss-vae", "knobs-pr", "fid-bias",
    ] {
      XCTAssertTrue(html.contains("id=\"fig-\(f)\""), f)
    }
    let dom = try loadInBrowser(html, in: d)
    XCTAssertTrue(dom.contains("cells 21</title>"), String(dom.prefix(400)))
    XCTAssertTrue(dom.contains("<title>loaded 7/7 "), String(dom.prefix(400)))
  }

  func testCompareBadInputExits2NamingTheProblem() throws {
    let d = try tmp()
    func fails(_ args: [String], _ message: String) throws {
      let (status, _, err) = try runGpugen(
        ["compare", "--device", "cpu", "--out", d.appendingPathComponent("r").path] + args)
      XCTAssertEqual(status, 2, err)
      XCTAssertTrue(err.contains(message), "\(args): \(err)")
      XCTAssertFalse(
        FileManager.default.fileExists(atPath: d.appendingPathComponent("r").path), "nothing written")
    }
    let notModel = d.appendingPathComponent("photos")
    try FileManager.default.createDirectory(at: notModel, withIntermediateDirectories: true)
    try Data("x".utf8).write(to: notModel.appendingPathComponent("a.txt"))
    try fails(["--models", "x=\(notModel.path)"], "not a model folder")
    try fails(["--models", "x=/nonexistent/gpugen-model"], "/nonexistent/gpugen-model")
    let small = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/unet/noattn", withExtension: nil))
    try fails(["--models", "gan=gan,small=\(small.path)"], "compare models of one image size")
    try fails(["--n", "5"], "smallest N the metrics allow")
    try fails(["--n", "15"], "multiple of the classifier's 10 classes")
    try fails(["--data", "cifar"], "--data must be fashion-mnist, toy:grid25 or toy:ring8")
    try fails(["--seeds", "0"], "--seeds")
    try fails(["--toy-steps", "0"], "--toy-steps")
    try fails(["--projection-steps", "0"], "--projection-steps")
    try fails(["--inversion-steps", "0"], "--inversion-steps")
    try fails(["--data", "toy:ring8", "--models", "gan=gan"], "--models applies to image models")
    try fails(["--data", "toy:ring8", "--n", "100"], "--n applies to image models")
    try fails(["--data", "toy:ring8", "--classifier", "classifier"], "--classifier applies to image models")
    try fails(["--n", "20000"], "lower --n to at most 5000")
    try fails(["--models", "a.b=gan,a-b=vae"], "names a-b twice")
    let clf = d.appendingPathComponent("clf16")
    try ImageClassifier(
      config: ClassifierConfig(imageSize: 16, convChannels: [2, 2, 2], featureDim: 4), seed: 0, device: .cpu
    ).save(to: clf)
    try fails(["--classifier", clf.path, "--n", "10"], "takes 1×16×16")
    let (status, _, err) = try runGpugen(["compare", "--device", "cpu", "--out", notModel.path])
    XCTAssertEqual(status, 2, err)
    XCTAssertTrue(err.contains("is not a gpugen compare report folder"), err)
  }

  func testToyComparisonIsReproducibleAndFollowsTheSeed() throws {
    let d = try tmp()
    func run(_ name: String, seed: Int) throws -> [String: Any] {
      let out = d.appendingPathComponent(name)
      let (status, _, err) = try runGpugen([
        "compare", "--data", "toy:ring8", "--seeds", "2", "--toy-steps", "25", "--seed", "\(seed)",
        "--device",
        "cpu", "--out", out.path,
      ])
      XCTAssertEqual(status, 0, err)
      return try XCTUnwrap(
        JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("report.json")))
          as? [String: Any])
    }
    let a = try run("a", seed: 3), b = try run("b", seed: 3), c = try run("c", seed: 4)
    XCTAssertEqual(a["data"] as? String, "toy:ring8")
    XCTAssertEqual(a["columns"] as? [String], ["gan (toy)", "vae (toy)", "diffusion (toy)"])
    let rows = try XCTUnwrap(a["rows"] as? [[String: Any]])
    XCTAssertEqual(rows.compactMap { $0["key"] as? String }, ["fidelity", "diversity", "ease_of_training"])
    func runs(_ o: [String: Any]) -> [[String: Double]] {
      (o["toy_runs"] as? [[String: Any]] ?? []).map { r in
        r.filter { $0.key != "seconds" }.compactMapValues { ($0 as? NSNumber)?.doubleValue }
      }
    }
    XCTAssertEqual(runs(a).count, 6)
    XCTAssertEqual(runs(a).map { $0["seed"] }, [3, 4, 3, 4, 3, 4])
    XCTAssertEqual(runs(a), runs(b), "the same seed gives the same numbers")
    XCTAssertNotEqual(runs(a), runs(c), "--seed is used")
    XCTAssertEqual(runs(c).map { $0["seed"] }, [4, 5, 4, 5, 4, 5])
  }
}
