// `gpugen train diffusion|vae`, `sample` and `evaluate` on toy 2-D data, as a user runs them: the files a run
// writes, --resume, scatter plots and toy scores, evaluate on a toy model of every family (text and --json), and
// bad input (exit status 2 and a message naming the problem).
import Foundation
import XCTest

@testable import GPUGenModels

final class ToyCommandTests: XCTestCase {
  func tmp() throws -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent(
      "gpugen-toycli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: d) }
    return d
  }

  /// `gpugen args --device cpu`.
  func gpugen(_ args: [String]) throws -> (Int32, String, String) {
    try runGpugen(args + ["--device", "cpu"])
  }

  /// A small toy config (hidden widths 16, 16) of `className` written to `dir`/`name`.
  func config(_ className: String, in dir: URL, name: String, extra: String = "") throws -> String {
    let url = dir.appendingPathComponent(name)
    let time = className == ToyDenoiserConfig.className ? #", "time_embedding_dim": 8"# : ""
    try Data(#"{"_class_name": "\#(className)", "hidden_dims": [16, 16]\#(time)\#(extra)}"#.utf8).write(
      to: url)
    return url.path
  }

  /// log.csv's step column.
  func loggedSteps(_ out: URL) throws -> [Int] {
    try String(contentsOf: out.appendingPathComponent("log.csv"), encoding: .utf8).split(separator: "\n")
      .dropFirst().map { Int($0.split(separator: ",")[0]) ?? -1 }
  }

  func exists(_ url: URL, _ path: String) -> Bool {
    FileManager.default.fileExists(atPath: url.appendingPathComponent(path).path)
  }

  /// `evaluate --json` as an object.
  func evaluateJSON(_ args: [String]) throws -> [String: Any] {
    let (s, o, e) = try gpugen(["evaluate", "--json"] + args)
    XCTAssertEqual(s, 0, e)
    return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(o.utf8)) as? [String: Any], o)
  }

  /// Trains, samples, evaluates and resumes a toy run of `family` (diffusion or vae) on ring8.
  func trainSampleEvaluate(_ family: String, className: String, sampleArgs: [String], evaluateArgs: [String])
    throws
  {
    let d = try tmp()
    let out = d.appendingPathComponent(family)
    let cfg = try config(className, in: d, name: "\(family).json")
    let (s, o, e) = try gpugen([
      "train", family, "--data", "toy:ring8", "--config", cfg, "--steps", "20", "--batch-size", "32",
      "--sample-every", "10", "--checkpoint-every", "10", "--out", out.path,
    ])
    XCTAssertEqual(s, 0, e)
    XCTAssertTrue(o.contains("trained 20 steps"), o)
    XCTAssertTrue(e.contains("toy \(family == "vae" ? "VAE" : "denoiser")") && e.contains("ring8"), e)
    XCTAssertEqual(try loggedSteps(out), Array(1...20))
    for f in ["samples/step-00000010.png", "samples/step-00000020.png", "loss.png", "checkpoint/config.json"]
    {
      XCTAssertTrue(exists(out, f), f)
    }
    let ckpt = out.appendingPathComponent("checkpoint")
    XCTAssertEqual(try ModelFolder.classify(ckpt).family.rawValue, family)

    // sample: a scatter plot, (N, 2) points and the scores.
    let npy = d.appendingPathComponent("p.npy"), png = d.appendingPathComponent("s.png")
    let (s1, o1, e1) = try gpugen(
      ["sample", "--model", ckpt.path, "--n", "50", "--npy", npy.path, "--out", png.path] + sampleArgs)
    XCTAssertEqual(s1, 0, e1)
    XCTAssertTrue(o1.contains("toy:ring8: modes") && o1.contains("/8 hit") && o1.contains("n 50"), o1)
    XCTAssertEqual(try NPY.read(from: npy).shape, [50, 2])
    XCTAssertTrue(FileManager.default.fileExists(atPath: png.path))

    // evaluate: --n and --seed reach the run; the JSON scores are the points' scores.
    let j = try evaluateJSON(["--model", ckpt.path, "--n", "40", "--seed", "3"] + evaluateArgs)
    XCTAssertEqual(j["family"] as? String, family)
    XCTAssertEqual(j["n"] as? Int, 40)
    XCTAssertEqual(j["seed"] as? Int, 3)
    XCTAssertEqual(j["data"] as? String, "toy:ring8")
    let r = try XCTUnwrap(j["results"] as? [String: Any])
    XCTAssertEqual(r["modes"] as? Int, 8)
    XCTAssertEqual((r["hq_per_mode"] as? [Int])?.count, 8)
    for key in ["modes_covered_hq", "modes_covered_share", "hq_fraction", "kl_from_uniform"] {
      XCTAssertNotNil(r[key], key)
    }
    // --seed reaches the sampling: another seed, other points.
    let npy2 = d.appendingPathComponent("p2.npy")
    let (s4, _, e4) = try gpugen(
      ["sample", "--model", ckpt.path, "--n", "50", "--npy", npy2.path, "--out", png.path, "--seed", "9"]
        + sampleArgs)
    XCTAssertEqual(s4, 0, e4)
    XCTAssertNotEqual(try NPY.read(from: npy).values, try NPY.read(from: npy2).values)
    let (s2, o2, e2) = try gpugen(["evaluate", "--model", ckpt.path] + evaluateArgs)
    XCTAssertEqual(s2, 0, e2)
    XCTAssertTrue(o2.contains("samples:  2500, seed 0") && o2.contains("high-quality share"), o2)

    // --resume continues to the new total.
    let (s3, o3, e3) = try gpugen(["train", family, "--resume", "--steps", "30", "--out", out.path])
    XCTAssertEqual(s3, 0, e3)
    XCTAssertTrue(o3.contains("trained 10 steps"), o3)
    XCTAssertEqual(try loggedSteps(out), Array(1...30))
    XCTAssertEqual(try CheckpointWriter.latest(in: out).lastPathComponent, "checkpoint-00000030")
  }

  func testToyDiffusionTrainsSamplesEvaluatesAndResumes() throws {
    try trainSampleEvaluate(
      "diffusion", className: ToyDenoiserConfig.className,
      sampleArgs: ["--sampler", "dpmpp-2m", "--steps", "5"],
      evaluateArgs: ["--steps", "5"])
  }

  func testToyVAETrainsSamplesEvaluatesAndResumes() throws {
    try trainSampleEvaluate(
      "vae", className: ToyVAEConfig.className, sampleArgs: ["--temperature", "0.5"],
      evaluateArgs: ["--temperature", "0.5"])
  }

  /// A toy GAN is evaluated like the others (today's image path used to refuse it).
  func testEvaluateMeasuresAToyGAN() throws {
    let d = try tmp()
    let out = d.appendingPathComponent("gan")
    let (s, _, e) = try gpugen([
      "train", "gan", "--data", "toy:grid25", "--steps", "2", "--batch-size", "8", "--sample-every", "0",
      "--out",
      out.path,
    ])
    XCTAssertEqual(s, 0, e)
    let ckpt = out.appendingPathComponent("checkpoint").path
    let j = try evaluateJSON(["--model", ckpt, "--n", "30", "--truncation", "0.5"])
    XCTAssertEqual(j["family"] as? String, "gan")
    XCTAssertEqual(j["n"] as? Int, 30)
    XCTAssertEqual((j["sampling"] as? [String: Any])?["truncation"] as? Double, 0.5)
    XCTAssertEqual((j["results"] as? [String: Any])?["modes"] as? Int, 25)
    let (s1, o1, e1) = try gpugen(["evaluate", "--model", ckpt])
    XCTAssertEqual(s1, 0, e1)
    XCTAssertTrue(o1.contains("toy 2-D GAN, toy:grid25") && o1.contains("/25"), o1)
  }

  func testBadInputIsAClearErrorWithStatus2() throws {
    let d = try tmp()
    let convVAE = d.appendingPathComponent("conv.json")
    try Data(#"{"_class_name": "ConvVAE", "latent_dim": 4}"#.utf8).write(to: convVAE)
    let toyVAECfg = try config(ToyVAEConfig.className, in: d, name: "tv.json")
    let ringVAECfg = try config(
      ToyVAEConfig.className, in: d, name: "ring.json", extra: #", "data": "toy:ring8""#)
    // A toy model of each family, two steps.
    var folders: [String: String] = [:]
    for (family, cls) in [("diffusion", ToyDenoiserConfig.className), ("vae", ToyVAEConfig.className)] {
      let out = d.appendingPathComponent(family)
      let (s, _, e) = try gpugen([
        "train", family, "--data", "toy:ring8", "--config", try config(cls, in: d, name: "\(family).json"),
        "--steps", "2", "--batch-size", "8", "--sample-every", "0", "--out", out.path,
      ])
      XCTAssertEqual(s, 0, e)
      folders[family] = out.appendingPathComponent("checkpoint").path
    }
    let bad = d.appendingPathComponent("bad").path
    let cases: [([String], [String])] = [
      (
        ["train", "vae", "--data", "toy:grid25", "--config", convVAE.path, "--out", bad],
        ["ConvVAE", "ToyVAE"]
      ),
      (
        ["train", "vae", "--data", "fashion-mnist", "--config", toyVAECfg, "--out", bad],
        ["ToyVAE", "toy data"]
      ),
      (
        ["train", "vae", "--data", "toy:grid25", "--config", ringVAECfg, "--out", bad],
        ["toy:ring8", "toy:grid25"]
      ),
      (["train", "vae", "--data", "toy:grid25", "--likelihood", "bernoulli", "--out", bad], ["Gaussian"]),
      (["train", "vae", "--data", "toy:grid25", "--arch", "conv-vae", "--out", bad], ["--arch"]),
      (
        ["train", "diffusion", "--data", "toy:ring8", "--class-conditional", "--out", bad],
        ["--class-conditional"]
      ),
      (["train", "diffusion", "--data", "toy:moons", "--out", bad], ["toy:moons", "toy:ring8"]),
      (["sample", "--model", folders["diffusion"]!, "--temperature", "0.5"], ["--temperature", "VAE"]),
      (["sample", "--model", folders["vae"]!, "--sampler", "ddim"], ["--sampler", "diffusion"]),
      (["sample", "--model", folders["vae"]!, "--class", "1"], ["--class"]),
      (["evaluate", "--model", folders["vae"]!, "--sampler", "dpmpp-2m"], ["--sampler", "toy 2-D vae"]),
      (["evaluate", "--model", folders["diffusion"]!, "--temperature", "2"], ["--temperature", "VAE"]),
      (["evaluate", "--model", folders["diffusion"]!, "--n", "0"], ["--n"]),
      (["evaluate", "--model", folders["vae"]!, "--real", "x"], ["--real"]),
      (["encode", "--model", folders["vae"]!, "--images", "x"], ["toy 2-D VAE"]),
    ]
    for (args, words) in cases {
      let (s, _, e) = try gpugen(args)
      XCTAssertEqual(s, 2, "\(args): \(e)")
      for w in words { XCTAssertTrue(e.contains(w), "\(args): '\(w)' not in \(e)") }
    }
  }
}
