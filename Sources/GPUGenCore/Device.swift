// Device selection: `auto`, `gpu`, `cpu`, `opencl`, `opencl:N`, the same words for --device and
// GPUGEN_DEVICE.
import Foundation

/// A compute device: the native CPU backend or one OpenCL device.
public final class Device: CustomStringConvertible, @unchecked Sendable {
  /// What kind of device this is.
  public enum Kind: Equatable, Sendable {
    case cpu
    case openCL(OpenCLDeviceInfo)
  }

  public let kind: Kind
  public let backend: any Backend

  init(kind: Kind, backend: any Backend) {
    self.kind = kind
    self.backend = backend
  }

  /// The spec that selects exactly this device (`cpu` or `opencl:N`).
  public var spec: String {
    switch kind {
    case .cpu: return "cpu"
    case .openCL(let info): return "opencl:\(info.index)"
    }
  }

  public var name: String { backend.name }
  public var description: String { "\(spec) (\(name))" }
  public var isOpenCL: Bool { spec != "cpu" }

  /// The OpenCL backend, if this is an OpenCL device.
  public var openCL: OpenCLBackend? { backend as? OpenCLBackend }

  /// The native CPU backend (always available).
  public static let cpu = Device(kind: .cpu, backend: CPUBackend())

  nonisolated(unsafe) private static var openCLCache: [Int: Device] = [:]
  nonisolated(unsafe) private static var enumerated: [CLDeviceRef]?
  private static let lock = NSLock()

  /// The devices created so far in this process (the CPU first).
  public static var instantiated: [Device] {
    lock.lock()
    defer { lock.unlock() }
    return [Device.cpu] + openCLCache.keys.sorted().compactMap { openCLCache[$0] }
  }

  /// Every OpenCL device on every platform (empty when there is no OpenCL runtime or device).
  public static func openCLDevices() throws -> [OpenCLDeviceInfo] { try openCLRefs().map(\.info) }

  static func openCLRefs() throws -> [CLDeviceRef] {
    lock.lock()
    defer { lock.unlock() }
    if let e = enumerated { return e }
    let e = try enumerateOpenCLDevices()
    enumerated = e
    return e
  }

  /// The device `opencl:N`, created once per process.
  public static func openCL(_ index: Int) throws -> Device {
    let refs = try openCLRefs()
    guard refs.indices.contains(index) else {
      throw GPUGenError.deviceNotFound(requested: "opencl:\(index)", available: try availableDescriptions())
    }
    lock.lock()
    defer { lock.unlock() }
    if let d = openCLCache[index] { return d }
    let d = Device(kind: .openCL(refs[index].info), backend: try OpenCLBackend(refs[index]))
    openCLCache[index] = d
    return d
  }

  /// Every device: the native CPU plus each OpenCL device. With GPUGEN_REQUIRE_OPENCL=1, throws
  /// if there is no usable OpenCL device.
  public static func all() throws -> [Device] {
    var refs: [CLDeviceRef] = []
    do { refs = try openCLRefs() } catch {
      if Environment.requireOpenCL { throw GPUGenError.openCLRequired(reason: "\(error)") }
    }
    if refs.isEmpty && Environment.requireOpenCL {
      throw GPUGenError.openCLRequired(
        reason: "no OpenCL platform or device was found (is an ICD such as pocl-opencl-icd installed?)")
    }
    var out = [Device.cpu]
    for r in refs { out.append(try openCL(r.info.index)) }
    return out
  }

  /// One line per selectable device, for error messages and `gpugen devices`.
  public static func availableDescriptions() throws -> [String] {
    var lines = ["cpu — \(Device.cpu.name)"]
    for info in (try? openCLRefs().map(\.info)) ?? [] {
      lines.append("opencl:\(info.index) — \(info.name) [\(info.type), \(info.platform)]")
    }
    return lines
  }

  /// The OpenCL device `auto` and `gpu` prefer: the first GPU, by enumeration order.
  public static func preferredGPUIndex() -> Int? {
    ((try? openCLRefs()) ?? []).first { $0.info.isGPU }?.info.index
  }

  /// Resolves a device spec (`auto`, `gpu`, `cpu`, `opencl`, `opencl:N`); nil means
  /// $GPUGEN_DEVICE, else `auto`. `gpu` with no GPU falls back with one warning line.
  public static func select(_ spec: String? = nil) throws -> Device {
    let raw = spec ?? Environment.get("GPUGEN_DEVICE") ?? "auto"
    let s = raw.trimmingCharacters(in: .whitespaces).lowercased()
    switch s {
    case "cpu":
      return .cpu
    case "auto":
      if let i = preferredGPUIndex(), let d = try? openCL(i) { return d }
      return .cpu
    case "gpu":
      if let i = preferredGPUIndex() {
        do { return try openCL(i) } catch {
          Diagnostics.warn(
            "the OpenCL GPU opencl:\(i) failed to start (\(error)); using cpu (\(Device.cpu.name)) instead")
          return .cpu
        }
      }
      Diagnostics.warn("no OpenCL GPU found; using cpu (\(Device.cpu.name)) instead")
      return .cpu
    case "opencl":
      return try openCL(0)
    default:
      if s.hasPrefix("opencl:"), let i = Int(s.dropFirst("opencl:".count)), i >= 0 {
        return try openCL(i)
      }
      throw GPUGenError.deviceNotFound(requested: raw, available: try availableDescriptions())
    }
  }
}
