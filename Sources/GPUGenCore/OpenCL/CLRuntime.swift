// Thin OpenCL helpers: one status check, info queries, and enumeration of every platform's devices.
import COpenCL
import Foundation

/// Throws a named error unless `status` is CL_SUCCESS.
@inline(__always)
func clCheck(_ status: cl_int, _ call: @autoclosure () -> String) throws {
  if status != CL_SUCCESS { throw GPUGenError.openCL(call: call(), status: status) }
}

/// What `gpugen devices` shows about one OpenCL device.
public struct OpenCLDeviceInfo: Sendable, Codable, Equatable {
  /// Index over every device of every platform: the N of `opencl:N`.
  public var index: Int
  public var platform: String
  public var platformVersion: String
  public var name: String
  public var vendor: String
  public var type: String
  public var computeUnits: Int
  public var clockMHz: Int
  public var globalMemory: Int
  public var localMemory: Int
  public var maxAllocation: Int
  public var maxWorkGroupSize: Int
  public var openCLCVersion: String
  public var driverVersion: String
  public var fp64: Bool

  /// True for GPU (and accelerator) devices.
  public var isGPU: Bool { type == "GPU" || type == "ACCELERATOR" }
}

/// An OpenCL device found by enumeration, with its platform.
struct CLDeviceRef {
  var platform: cl_platform_id
  var device: cl_device_id
  var info: OpenCLDeviceInfo
}

enum CLQuery {
  static func string(_ device: cl_device_id, _ param: cl_device_info) -> String {
    var size = 0
    guard clGetDeviceInfo(device, param, 0, nil, &size) == CL_SUCCESS, size > 0 else { return "" }
    var bytes = [CChar](repeating: 0, count: size + 1)
    guard clGetDeviceInfo(device, param, size, &bytes, nil) == CL_SUCCESS else { return "" }
    return String(cString: bytes).trimmingCharacters(in: .whitespaces)
  }

  static func value<T: FixedWidthInteger>(_ device: cl_device_id, _ param: cl_device_info, _: T.Type)
    -> T
  {
    var v: T = 0
    _ = clGetDeviceInfo(device, param, MemoryLayout<T>.size, &v, nil)
    return v
  }

  static func platformString(_ platform: cl_platform_id, _ param: cl_platform_info) -> String {
    var size = 0
    guard clGetPlatformInfo(platform, param, 0, nil, &size) == CL_SUCCESS, size > 0 else { return "" }
    var bytes = [CChar](repeating: 0, count: size + 1)
    guard clGetPlatformInfo(platform, param, size, &bytes, nil) == CL_SUCCESS else { return "" }
    return String(cString: bytes).trimmingCharacters(in: .whitespaces)
  }

  static func typeName(_ t: cl_device_type) -> String {
    if t & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 { return "GPU" }
    if t & cl_device_type(CL_DEVICE_TYPE_ACCELERATOR) != 0 { return "ACCELERATOR" }
    if t & cl_device_type(CL_DEVICE_TYPE_CPU) != 0 { return "CPU" }
    return "OTHER"
  }
}

/// Enumerates every device of every OpenCL platform. Throws only on a driver error that is not
/// "no platforms" (an ICD loader with no vendors answers CL_PLATFORM_NOT_FOUND_KHR).
func enumerateOpenCLDevices() throws -> [CLDeviceRef] {
  var count: cl_uint = 0
  let status = clGetPlatformIDs(0, nil, &count)
  if status == -1001 || count == 0 { return [] }
  try clCheck(status, "clGetPlatformIDs")
  var platforms = [cl_platform_id?](repeating: nil, count: Int(count))
  try clCheck(clGetPlatformIDs(count, &platforms, nil), "clGetPlatformIDs")
  var result: [CLDeviceRef] = []
  for case let platform? in platforms {
    // A platform whose device query fails is skipped with one warning; the others stay usable.
    // (GPUGEN_FAIL_PLATFORM=NAME makes the query fail for platforms whose name contains NAME: tests.)
    let platformName = CLQuery.platformString(platform, cl_platform_info(CL_PLATFORM_NAME))
    let simulated =
      Environment.get("GPUGEN_FAIL_PLATFORM").map { !$0.isEmpty && platformName.contains($0) } ?? false
    var n: cl_uint = 0
    var s =
      simulated
      ? CL_OUT_OF_HOST_MEMORY : clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &n)
    if s == CL_DEVICE_NOT_FOUND || (s == CL_SUCCESS && n == 0) { continue }
    var devices = [cl_device_id?](repeating: nil, count: Int(n))
    if s == CL_SUCCESS { s = clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), n, &devices, nil) }
    if s != CL_SUCCESS {
      Diagnostics.warn(
        "OpenCL platform '\(platformName)' failed to list its devices (\(clStatusName(s)) in clGetDeviceIDs); skipping it"
      )
      continue
    }
    for case let device? in devices {
      let type = CLQuery.value(device, cl_device_info(CL_DEVICE_TYPE), cl_device_type.self)
      let fp64 = CLQuery.value(device, cl_device_info(CL_DEVICE_DOUBLE_FP_CONFIG), cl_ulong.self)
      let info = OpenCLDeviceInfo(
        index: result.count,
        platform: platformName,
        platformVersion: CLQuery.platformString(platform, cl_platform_info(CL_PLATFORM_VERSION)),
        name: CLQuery.string(device, cl_device_info(CL_DEVICE_NAME)),
        vendor: CLQuery.string(device, cl_device_info(CL_DEVICE_VENDOR)),
        type: CLQuery.typeName(type),
        computeUnits: Int(CLQuery.value(device, cl_device_info(CL_DEVICE_MAX_COMPUTE_UNITS), cl_uint.self)),
        clockMHz: Int(CLQuery.value(device, cl_device_info(CL_DEVICE_MAX_CLOCK_FREQUENCY), cl_uint.self)),
        globalMemory: Int(CLQuery.value(device, cl_device_info(CL_DEVICE_GLOBAL_MEM_SIZE), cl_ulong.self)),
        localMemory: Int(CLQuery.value(device, cl_device_info(CL_DEVICE_LOCAL_MEM_SIZE), cl_ulong.self)),
        maxAllocation: Int(
          CLQuery.value(device, cl_device_info(CL_DEVICE_MAX_MEM_ALLOC_SIZE), cl_ulong.self)),
        maxWorkGroupSize: Int(
          CLQuery.value(device, cl_device_info(CL_DEVICE_MAX_WORK_GROUP_SIZE), Int.self)),
        openCLCVersion: CLQuery.string(device, cl_device_info(CL_DEVICE_OPENCL_C_VERSION)),
        driverVersion: CLQuery.string(device, cl_device_info(CL_DRIVER_VERSION)),
        fp64: fp64 != 0)
      result.append(CLDeviceRef(platform: platform, device: device, info: info))
    }
  }
  return result
}
