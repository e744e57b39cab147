// libFuzzer targets for every parser gpugen reads untrusted bytes with (Benchmarks/fuzz.sh builds and runs them;
// docs: Fuzz/README.md). One binary, the target chosen by $GPUGEN_FUZZ_TARGET. Each input must either parse or
// throw — never trap, hang or exhaust memory (AddressSanitizer and libFuzzer's -rss_limit_mb watch) — and what
// parses must re-serialise consistently where a writer exists (a mismatch is a deliberate trap, a finding).
import Foundation
import GPUGenModels
import GPUGenNN

/// The parsers, by the name $GPUGEN_FUZZ_TARGET gives.
let targets: [String: (Data) -> Void] = [
  "safetensors": fuzzSafeTensors, "json": fuzzJSON, "unet-config": fuzzUNetConfig,
  "scheduler-config": fuzzSchedulerConfig, "family-config": fuzzFamilyConfig, "npy": fuzzNPY, "idx": fuzzIDX,
  "png": fuzzPNG,
]

let selected: (Data) -> Void = {
  let name = ProcessInfo.processInfo.environment["GPUGEN_FUZZ_TARGET"] ?? ""
  guard let f = targets[name] else {
    FileHandle.standardError.write(
      Data("set GPUGEN_FUZZ_TARGET to one of \(targets.keys.sorted().joined(separator: ", "))\n".utf8))
    exit(2)
  }
  return f
}()

/// A scratch file per process for the parsers that read from a path.
let scratch = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("gpugen-fuzz-\(getpid())")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
  let data = bytes.map { Data(bytes: $0, count: count) } ?? Data()
  selected(data)
  return 0
}

/// libFuzzer's entry for programs with their own main().
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(
  _ argc: UnsafeMutablePointer<Int32>,
  _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
  _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// SwiftPM links an executable target's entry point under this name; it hands over to libFuzzer.
@_cdecl("GPUGenFuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
  var c = argc
  var v = argv
  return runDriver(&c, &v) { fuzzOne($0, $1) }
}

/// Stops the run with a finding (libFuzzer saves the input).
func finding(_ what: String) -> Never {
  FileHandle.standardError.write(Data("gpugen-fuzz finding: \(what)\n".utf8))
  abort()
}

/// Writes `data` to a scratch file named with `suffix` and returns its URL.
func file(_ data: Data, suffix: String) -> URL {
  let url = scratch.appendingPathExtension(suffix)
  do { try data.write(to: url) } catch { finding("cannot write the scratch file \(url.path): \(error)") }
  return url
}

/// Bit patterns, so that NaN payloads compare equal to themselves.
func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

func fuzzSafeTensors(_ data: Data) {
  guard let parsed = try? SafeTensors.read(bytes: data) else { return }
  // Re-serialise as F32 and read back: the same names, shapes and values.
  let tensors = parsed.order.map { (name: $0, tensor: parsed.tensors[$0]!) }
  guard let bytes = try? SafeTensors.encode(tensors, metadata: parsed.metadata) else { return }
  guard let again = try? SafeTensors.read(bytes: bytes) else {
    finding("safetensors: its own output is refused")
  }
  for (name, t) in parsed.tensors {
    guard let u = again.tensors[name], u.shape == t.shape, bits(u.values) == bits(t.values) else {
      finding("safetensors: tensor \(name) changed on re-serialisation")
    }
  }
  if again.metadata != parsed.metadata { finding("safetensors: metadata changed on re-serialisation") }
}

func fuzzJSON(_ data: Data) {
  guard let text = String(data: data, encoding: .utf8) else { return }
  _ = try? JSONValue(parsing: text)
}

func fuzzUNetConfig(_ data: Data) {
  _ = try? UNet2DConfig(json: data, source: "fuzz.json")
}

func fuzzSchedulerConfig(_ data: Data) {
  guard let text = String(data: data, encoding: .utf8) else { return }
  for family in [nil] + SchedulerFamily.allCases.map(Optional.some) {
    // A config that parses must give a schedule (or a clear error), never an unbounded allocation.
    if let c = try? SchedulerConfig(json: text, family: family) { _ = try? NoiseSchedule(config: c) }
  }
}

/// The first byte picks the family's config; the rest is the JSON. Configs with a writer must re-parse to
/// an equal value.
func fuzzFamilyConfig(_ data: Data) {
  guard let first = data.first else { return }
  let json = data.dropFirst()
  func roundTrip<T: Equatable>(_ parse: (Data) throws -> T, _ write: (T) throws -> Data, _ name: String) {
    guard let v = try? parse(Data(json)) else { return }
    guard let out = try? write(v) else { finding("\(name): a parsed config does not serialise") }
    guard let again = try? parse(out), again == v else { finding("\(name): re-parsed config differs") }
  }
  switch first % 6 {
  case 0: roundTrip({ try ConvVAEConfig(json: $0) }, { try $0.jsonData() }, "ConvVAEConfig")
  case 1: roundTrip({ try AutoencoderKLConfig(json: $0) }, { try $0.jsonData() }, "AutoencoderKLConfig")
  case 2: roundTrip({ try GANNetworkConfig(json: $0) }, { try $0.jsonData() }, "GANNetworkConfig")
  case 3: roundTrip({ try GANModelConfig(json: $0) }, { try $0.jsonData() }, "GANModelConfig")
  case 4: roundTrip({ try ToyDenoiserConfig(json: $0) }, { try $0.jsonData() }, "ToyDenoiserConfig")
  default: roundTrip({ try ToyVAEConfig(json: $0) }, { try $0.jsonData() }, "ToyVAEConfig")
  }
}

func fuzzNPY(_ data: Data) {
  let url = file(data, suffix: "npy")
  guard let (values, shape) = try? NPY.read(from: url) else { return }
  let out = scratch.appendingPathExtension("out.npy")
  guard (try? NPY.write(values, shape: shape, to: out)) != nil else {
    finding("npy: cannot write what it read")
  }
  guard let again = try? NPY.read(from: out), again.shape == shape, bits(again.values) == bits(values) else {
    finding("npy: re-read array differs")
  }
}

func fuzzIDX(_ data: Data) {
  // Both as written and as the inside of a gzip member (the reader inflates .gz files).
  _ = try? IDXArray.read(contentsOf: file(data, suffix: "idx"), maxBytes: 64 << 20)
  _ = try? IDXArray.read(contentsOf: file(data, suffix: "gz"), maxBytes: 64 << 20)
}

func fuzzPNG(_ data: Data) {
  let url = file(data, suffix: "png")
  for channels in [1, 3] {
    guard let image = try? Image8.readPNG(from: url, channels: channels) else { continue }
    let out = scratch.appendingPathExtension("out.png")
    guard (try? image.writePNG(to: out)) != nil else { finding("png: cannot write what it read") }
    guard let again = try? Image8.readPNG(from: out, channels: channels), again.pixels == image.pixels else {
      finding("png: re-read image differs")
    }
  }
  _ = try? Image8.readPNGConverted(from: url, channels: 3)
}
