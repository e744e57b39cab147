// Sizes from files and flags, checked before anything is allocated: overflow-checked products, and the bytes a
// command will need compared with the memory of the device (host RAM for the CPU backend; global memory and
// the largest single allocation for OpenCL).
import Foundation

/// The product of `factors`, or nil when a factor is negative or the product overflows `Int`.
public func checkedProduct(_ factors: [Int]) -> Int? {
  var p = 1
  for f in factors {
    guard f >= 0 else { return nil }
    let (r, overflow) = p.multipliedReportingOverflow(by: f)
    if overflow { return nil }
    p = r
  }
  return p
}

/// Up-front memory estimates checked against what a device has.
public enum MemoryBudget {
  /// The machine's physical memory in bytes (the CPU backend's device memory).
  public static var hostBytes: Int { Int(clamping: ProcessInfo.processInfo.physicalMemory) }

  /// Throws unless `bytes` (nil: more than `Int` can count) fit on `device`: the host's RAM for the CPU
  /// backend; the global memory for OpenCL, and `largestBuffer` bytes its largest single allocation. The
  /// message names `what`, the size, the device and `flag`, the option that would make it fit.
  public static func check(
    _ bytes: Int?, largestBuffer: Int? = nil, for what: String, on device: Device, flag: String
  ) throws {
    let info = device.openCL?.info
    let limit = info?.globalMemory ?? hostBytes
    let place =
      info.map { "\($0.name) (\(device.spec)) has \(formatBytes($0.globalMemory)) of global memory" }
      ?? "the CPU has \(formatBytes(limit)) of RAM"
    guard let bytes, bytes <= limit else {
      let size = bytes.map(formatBytes) ?? "more bytes than can be counted"
      throw GPUGenError.invalidArgument("\(what) needs \(size), but \(place); lower \(flag)")
    }
    if let info, info.maxAllocation > 0, let one = largestBuffer, one > info.maxAllocation {
      throw GPUGenError.invalidArgument(
        "\(what) needs one buffer of \(formatBytes(one)), more than the largest allocation of \(info.name) "
          + "(\(device.spec), CL_DEVICE_MAX_MEM_ALLOC_SIZE \(formatBytes(info.maxAllocation))); lower \(flag)"
      )
    }
  }
}
