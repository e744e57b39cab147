// `gpugen devices`: every OpenCL platform and device, and which one auto/gpu would pick.
import ArgumentParser
import Foundation
import GPUGenCore

struct Devices: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "List the native CPU backend and every OpenCL device on every platform.",
    discussion: "Devices marked [auto] and [gpu] are the ones --device auto and --device gpu would pick.")

  @Flag(help: "Print the list as JSON.")
  var json = false

  func run() throws {
    try reportingErrors {
      let infos = try Device.openCLDevices()
      let gpu = Device.preferredGPUIndex()
      let autoSpec = gpu.map { "opencl:\($0)" } ?? "cpu"
      let gpuSpec = autoSpec
      if json {
        struct Entry: Encodable {
          var spec: String
          var backend: String
          var name: String
          var auto: Bool
          var gpu: Bool
          var opencl: OpenCLDeviceInfo?
        }
        var entries = [
          Entry(
            spec: "cpu", backend: "native", name: Device.cpu.name, auto: autoSpec == "cpu",
            gpu: gpuSpec == "cpu", opencl: nil)
        ]
        for i in infos {
          let s = "opencl:\(i.index)"
          entries.append(
            Entry(spec: s, backend: "opencl", name: i.name, auto: autoSpec == s, gpu: gpuSpec == s, opencl: i)
          )
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        print(String(decoding: try enc.encode(entries), as: UTF8.self))
        return
      }
      func marks(_ s: String) -> String {
        var m: [String] = []
        if autoSpec == s { m.append("[auto]") }
        if gpuSpec == s { m.append(gpu == nil ? "[gpu fallback]" : "[gpu]") }
        return m.isEmpty ? "" : " " + m.joined(separator: " ")
      }
      print("cpu\(marks("cpu"))")
      print("    \(Device.cpu.name)")
      if infos.isEmpty {
        print("\nNo OpenCL platform or device found (install an ICD, e.g. pocl-opencl-icd).")
      }
      var platform = ""
      for i in infos {
        if i.platform != platform {
          platform = i.platform
          print("\nplatform: \(i.platform) (\(i.platformVersion))")
        }
        print("opencl:\(i.index)\(marks("opencl:\(i.index)"))")
        print("    name:             \(i.name)")
        print("    type:             \(i.type)")
        print("    vendor:           \(i.vendor)")
        print("    compute units:    \(i.computeUnits)")
        print("    clock:            \(i.clockMHz) MHz")
        print("    global memory:    \(formatBytes(i.globalMemory))")
        print("    local memory:     \(formatBytes(i.localMemory))")
        print("    max work-group:   \(i.maxWorkGroupSize)")
        print("    OpenCL C:         \(i.openCLCVersion)")
        print("    driver:           \(i.driverVersion)")
        print("    fp64:             \(i.fp64 ? "yes" : "no")")
      }
    }
  }
}
