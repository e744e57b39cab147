// The OpenCL backend: one context and one in-order queue per device, programs compiled once
// (memory + disk cache), a buffer pool, and every Backend op as a kernel launch.
import COpenCL
import Dispatch
import Foundation
import GPUGenKernels

/// A kernel argument.
enum KernelArg {
  case mem(cl_mem)
  case i32(Int32)
  case i64(Int64)
  case f32(Float)
  case u32(UInt32)
  /// OpenCL `float8` / `float4` vectors.
  case float8([Float])
  case float4([Float])
  /// Up to 16 ints passed as an OpenCL `int16` vector (shapes and strides).
  case int16([Int])
}

/// Which family of kernel variants an OpenCL backend launches.
public enum KernelVariants: String, Sendable, CaseIterable, Codable {
  /// The variants chosen for the device's type: GPU variants on GPUs, CPU variants on CPU devices.
  case device
  /// The GPU variants on any device: work-group trees, `gemm_tiled`, per-element strided copies.
  case gpu
  /// The CPU variants on any device: one work-item per row, `gemm_packed`, copies by runs.
  case cpu
}

/// Runs gpugen's ops on one OpenCL device.
public final class OpenCLBackend: Backend, @unchecked Sendable {
  public let info: OpenCLDeviceInfo
  public var name: String { info.name }
  public var stats: BackendStats {
    poolLock.lock()
    defer { poolLock.unlock() }
    var s = _stats
    s.pooledBytes = pool.bytes
    return s
  }

  let device: cl_device_id
  let platform: cl_platform_id
  let context: cl_context
  let queue: cl_command_queue
  let cache: BinaryCache
  /// The GEMM tile configuration in use (default table, or the tuned winner from the cache).
  public internal(set) var gemmConfig: GemmConfig

  private var _stats = BackendStats()
  /// Forces the work-group size of the row reductions (tests run the GPU path on CPU devices).
  var reduceGroupSizeOverride: Int?
  /// Which kernel variants run (`gpugen selftest` forces the GPU variants on CPU devices and back).
  public var kernelVariants = KernelVariants.device
  /// Whether the GPU variants run: on a GPU by default, or when forced.
  var usesGPUVariants: Bool {
    switch kernelVariants {
    case .device: return info.isGPU
    case .gpu: return true
    case .cpu: return false
    }
  }
  /// The GEMM configuration of the variants in use: the device's (tuned) one, or the forced kind's default.
  var activeGemmConfig: GemmConfig {
    if kernelVariants == .device || usesGPUVariants == info.isGPU { return gemmConfig }
    var asKind = info
    asKind.type = usesGPUVariants ? "GPU" : "CPU"
    return GemmConfig.defaultConfig(for: asKind)
  }
  /// GPUGEN_PROFILE=1: synchronise after every kernel and accumulate its time (slows everything down).
  static let profiling = Environment.get("GPUGEN_PROFILE") == "1"
  private var kernelTimes: [String: (count: Int, ns: UInt64)] = [:]

  /// Per-kernel launch counts and total milliseconds, slowest first (GPUGEN_PROFILE=1 only).
  public var kernelProfile: [(name: String, count: Int, ms: Double)] {
    poolLock.withLock { kernelTimes.map { ($0.key, $0.value.count, Double($0.value.ns) / 1e6) } }
      .sorted { $0.ms > $1.ms }
  }
  /// Caps what `limits` reports for every kernel (tests make a pinned 16×16 tile not fit).
  var workGroupLimitOverride: Int?
  private var kernelLimits: [cl_kernel: KernelLimits] = [:]
  /// Free buffers by size class, at most half the device's global memory (`GPUGEN_POOL_MB` overrides).
  private var pool = BufferPool<cl_mem>(capBytes: 0)
  /// The most bytes of free buffers the pool keeps; lowering it releases the excess at once.
  var poolCapBytes: Int {
    get { poolLock.withLock { pool.capBytes } }
    set {
      let released = poolLock.withLock { () -> [(cl_mem, Int)] in
        pool.capBytes = newValue
        return pool.trim()
      }
      release(released)
    }
  }
  private var programs: [String: cl_program] = [:]
  private var kernels: [String: cl_kernel] = [:]
  let poolLock = NSLock()
  private let queueLock = NSRecursiveLock()

  /// GPUGEN_OPENCL_MEMORY_MB: the device memory this process may use, in bytes (tests simulate a small
  /// device: allocations beyond it fail as on a device that size).
  let memoryLimit: Int?
  /// Bytes of device buffers now allocated (live and pooled).
  private var deviceBytes = 0
  /// The convolution workspace cap in floats, when set (`GPUGEN_WORKSPACE_MB`, or tests); see
  /// `workspaceCapFloats`.
  var workspaceCapOverride: Int? = Environment.get("GPUGEN_WORKSPACE_MB").flatMap(Int.init).map {
    ($0 << 20) / 4
  }
  /// Convolutions run in chunks of images so far (their workspace exceeded the cap).
  var chunkedConvolutions = 0

  init(_ ref: CLDeviceRef, cache: BinaryCache = BinaryCache()) throws {
    var info = ref.info
    if let s = Environment.get("GPUGEN_OPENCL_MEMORY_MB"), let mb = Int(s), mb > 0 {
      memoryLimit = mb << 20
      info.globalMemory = info.globalMemory > 0 ? Swift.min(info.globalMemory, mb << 20) : mb << 20
      // As devices of that size report: a quarter of the memory per allocation at most.
      let quarter = info.globalMemory / 4
      info.maxAllocation = info.maxAllocation > 0 ? Swift.min(info.maxAllocation, quarter) : quarter
    } else {
      memoryLimit = nil
    }
    self.info = info
    device = ref.device
    platform = ref.platform
    self.cache = cache
    var status: cl_int = 0
    var dev: cl_device_id? = ref.device
    guard let ctx = clCreateContext(nil, 1, &dev, nil, nil, &status) else {
      throw GPUGenError.openCL(call: "clCreateContext(\(ref.info.name))", status: status)
    }
    try clCheck(status, "clCreateContext(\(ref.info.name))")
    context = ctx
    guard let q = clCreateCommandQueue(ctx, ref.device, 0, &status) else {
      clReleaseContext(ctx)
      throw GPUGenError.openCL(call: "clCreateCommandQueue", status: status)
    }
    queue = q
    pool.capBytes = BufferPool<cl_mem>.defaultCap(
      fallback: info.globalMemory > 0 ? info.globalMemory / 2 : 1 << 30)
    gemmConfig = GemmConfig.defaultConfig(for: ref.info)
    if let tuned = GemmConfig.loadTuned(for: ref.info, cache: cache), tuned.fits(ref.info) {
      gemmConfig = tuned
    }
    if let spec = Environment.get("GPUGEN_GEMM_CONFIG") {
      guard let g = GemmConfig(spec: spec), g.fits(ref.info) else {
        throw GPUGenError.invalidArgument(
          "GPUGEN_GEMM_CONFIG='\(spec)' is not a usable 'variant,TM,TN,WM,WN,KB' on \(ref.info.name)")
      }
      gemmConfig = g
    }
  }

  deinit {
    freePool()
    for k in kernels.values { clReleaseKernel(k) }
    for p in programs.values { clReleaseProgram(p) }
    clReleaseCommandQueue(queue)
    clReleaseContext(context)
  }

  // MARK: Programs

  /// Default build options for every program.
  static let baseOptions = "-cl-std=CL1.2"

  /// Returns the program for a kernel family built with `options`, compiling it only if neither
  /// the in-memory nor the on-disk cache has it.
  func program(family: String, options: String = "") throws -> cl_program {
    guard let body = KernelSources.families[family] else {
      throw GPUGenError.invalidArgument("no kernel family '\(family)'")
    }
    let source = KernelSources.common + "\n" + body
    return try program(source: source, file: "Kernels/\(family).cl", options: options)
  }

  /// Builds (or fetches from cache) a program from arbitrary source text.
  func program(source: String, file: String, options: String) throws -> cl_program {
    let fullOptions = (Self.baseOptions + " " + options).trimmingCharacters(in: .whitespaces)
    let memoryKey = "\(file)|\(fullOptions)|\(source.hashValue)"
    queueLock.lock()
    defer { queueLock.unlock() }
    if let p = programs[memoryKey] { return p }
    let diskKey = BinaryCache.key(
      platform: info.platform, device: info.name, driver: info.driverVersion, options: fullOptions,
      source: source)
    if let binary = cache.load(key: diskKey) {
      if let p = try? buildFromBinary(binary, options: fullOptions) {
        programs[memoryKey] = p
        poolLock.withLock { _stats.programsFromCache += 1 }
        return p
      }
      Diagnostics.warn(
        "kernel cache entry \(cache.url(forKey: diskKey).path) was rejected by the driver; rebuilding it")
    }
    let p = try buildFromSource(source, file: file, options: fullOptions)
    poolLock.withLock { _stats.programsCompiled += 1 }
    programs[memoryKey] = p
    if let binary = programBinary(p) { cache.store(key: diskKey, binary: binary) }
    return p
  }

  /// Compiles `source` and throws its build log on failure. For tests and tools.
  public func compile(source: String, file: String, options: String = "") throws {
    _ = try program(source: source, file: file, options: options)
  }

  /// Compiles every kernel file in Kernels/ with its default options.
  public func compileAllKernels() throws {
    for family in KernelSources.families.keys.sorted() {
      _ = try program(family: family, options: defaultOptions(family: family))
    }
  }

  /// The tunable `-D` options a family is built with by default on this device.
  func defaultOptions(family: String) -> String {
    switch family {
    case "gemm": return gemmConfig.options
    case "bench": return "-DPEAK_VW=\(info.isGPU ? 1 : 16)"
    case "optim": return "-DOLS=\(sumOfSquaresGroupSize)"
    default: return ""
    }
  }

  private func buildFromSource(_ source: String, file: String, options: String) throws -> cl_program {
    var status: cl_int = 0
    let p: cl_program? = source.withCString { ptr in
      var s: UnsafePointer<CChar>? = ptr
      var len = strlen(ptr)
      return clCreateProgramWithSource(context, 1, &s, &len, &status)
    }
    guard let program = p, status == CL_SUCCESS else {
      throw GPUGenError.openCL(call: "clCreateProgramWithSource(\(file))", status: status)
    }
    var dev: cl_device_id? = device
    let b = clBuildProgram(program, 1, &dev, options, nil, nil)
    if b != CL_SUCCESS {
      let log = buildLog(program)
      clReleaseProgram(program)
      if b == CL_BUILD_PROGRAM_FAILURE || b == CL_INVALID_BUILD_OPTIONS || !log.isEmpty {
        throw GPUGenError.kernelBuild(
          file: file, device: info.name, log: log.isEmpty ? clStatusName(b) : log)
      }
      throw GPUGenError.openCL(call: "clBuildProgram(\(file))", status: b)
    }
    return program
  }

  private func buildFromBinary(_ binary: [UInt8], options: String) throws -> cl_program {
    var status: cl_int = 0
    var binStatus: cl_int = 0
    var dev: cl_device_id? = device
    var len = binary.count
    let p: cl_program? = binary.withUnsafeBufferPointer { buf in
      var ptr: UnsafePointer<UInt8>? = buf.baseAddress
      return clCreateProgramWithBinary(context, 1, &dev, &len, &ptr, &binStatus, &status)
    }
    guard let program = p, status == CL_SUCCESS, binStatus == CL_SUCCESS else {
      if let p { clReleaseProgram(p) }
      throw GPUGenError.openCL(call: "clCreateProgramWithBinary", status: status)
    }
    let b = clBuildProgram(program, 1, &dev, options, nil, nil)
    guard b == CL_SUCCESS else {
      clReleaseProgram(program)
      throw GPUGenError.openCL(call: "clBuildProgram(binary)", status: b)
    }
    return program
  }

  private func buildLog(_ program: cl_program) -> String {
    var size = 0
    clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size)
    guard size > 1 else { return "" }
    var bytes = [CChar](repeating: 0, count: size + 1)
    clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &bytes, nil)
    return String(cString: bytes).trimmingCharacters(in: .whitespacesAndNewlines)
  }

  private func programBinary(_ program: cl_program) -> [UInt8]? {
    var size = 0
    guard
      clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARY_SIZES), MemoryLayout<Int>.size, &size, nil)
        == CL_SUCCESS, size > 0
    else { return nil }
    var bytes = [UInt8](repeating: 0, count: size)
    let ok = bytes.withUnsafeMutableBufferPointer { buf -> Bool in
      var ptr: UnsafeMutablePointer<UInt8>? = buf.baseAddress
      return clGetProgramInfo(
        program, cl_program_info(CL_PROGRAM_BINARIES), MemoryLayout<UnsafeMutablePointer<UInt8>?>.size,
        &ptr, nil) == CL_SUCCESS
    }
    return ok ? bytes : nil
  }

  /// The kernel `name` of a family's program (cached).
  func kernel(_ name: String, family: String, options: String? = nil) throws -> cl_kernel {
    let opts = options ?? defaultOptions(family: family)
    let key = "\(family)|\(opts)|\(name)"
    queueLock.lock()
    defer { queueLock.unlock() }
    if let k = kernels[key] { return k }
    let p = try program(family: family, options: opts)
    var status: cl_int = 0
    guard let k = clCreateKernel(p, name, &status), status == CL_SUCCESS else {
      throw GPUGenError.openCL(call: "clCreateKernel(\(name))", status: status)
    }
    kernels[key] = k
    return k
  }

  // MARK: Work-group sizes

  /// What the driver says one kernel can run with on this device.
  struct KernelLimits: Equatable {
    /// CL_KERNEL_WORK_GROUP_SIZE: the largest work-group this kernel runs with (registers, local memory).
    var maxGroupSize: Int
    /// CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE (the warp or wavefront width on GPUs).
    var preferredMultiple: Int
  }

  /// The kernel's work-group limits (queried once per kernel; the device's limit where the query fails).
  func limits(_ k: cl_kernel) -> KernelLimits {
    queueLock.lock()
    defer { queueLock.unlock() }
    func capped(_ l: KernelLimits) -> KernelLimits {
      guard let cap = workGroupLimitOverride else { return l }
      return KernelLimits(
        maxGroupSize: Swift.min(l.maxGroupSize, Swift.max(1, cap)), preferredMultiple: l.preferredMultiple)
    }
    if let l = kernelLimits[k] { return capped(l) }
    var maxSize = 0, multiple = 0
    var dev: cl_device_id? = device
    if clGetKernelWorkGroupInfo(
      k, dev, cl_kernel_work_group_info(CL_KERNEL_WORK_GROUP_SIZE), MemoryLayout<Int>.size, &maxSize, nil)
      != CL_SUCCESS || maxSize <= 0
    {
      maxSize = Swift.max(1, info.maxWorkGroupSize)
    }
    dev = device
    if clGetKernelWorkGroupInfo(
      k, dev, cl_kernel_work_group_info(CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE), MemoryLayout<Int>.size,
      &multiple, nil) != CL_SUCCESS || multiple <= 0
    {
      multiple = 1
    }
    let l = KernelLimits(maxGroupSize: maxSize, preferredMultiple: multiple)
    kernelLimits[k] = l
    return capped(l)
  }

  /// The kernel `name` built with `-D<macro>=<ls>` for the largest power of two `ls` ≤ `desired` that the
  /// built kernel can run as one work-group (CL_KERNEL_WORK_GROUP_SIZE), and that `ls`.
  func fittedGroup(_ name: String, family: String, macro: String, desired: Int) throws -> (cl_kernel, Int) {
    var ls = 1
    while ls * 2 <= Swift.max(desired, 1) { ls *= 2 }
    while true {
      let k = try kernel(name, family: family, options: "-D\(macro)=\(ls)")
      let limit = limits(k).maxGroupSize
      if ls <= limit || ls == 1 { return (k, ls) }
      while ls > limit && ls > 1 { ls /= 2 }
    }
  }

  /// The work-group size of one-dimensional elementwise launches of `k` over `count` items, a multiple of
  /// the kernel's preferred multiple within its limit: 256 with the GPU variants; with the CPU variants one
  /// work-group per compute unit, as a power of two up to 1024 (CPU devices such as PoCL run a work-group as a
  /// loop and compile one loop per size: large groups, few distinct sizes; on PoCL 1024 runs a 1M-element add
  /// as fast as PoCL's own choice, 4096 at half the speed).
  func elementwiseGroupSize(_ k: cl_kernel, count: Int) -> Int {
    let l = limits(k)
    var target = Swift.min(256, l.maxGroupSize)
    if !usesGPUVariants {
      let perUnit = (count + Swift.max(info.computeUnits, 1) - 1) / Swift.max(info.computeUnits, 1)
      var p = 1
      while p * 2 <= Swift.min(perUnit, 1024, l.maxGroupSize) { p *= 2 }
      target = p
    }
    let m = l.preferredMultiple
    return m <= target ? target / m * m : target
  }

  /// Launches a one-dimensional kernel over `count` items with an explicit work-group size and the global
  /// size padded to a multiple of it; the kernel skips items at or past `count` (its last argument, which
  /// `args` must already hold).
  func launchElementwise(_ k: cl_kernel, _ name: String, _ args: [KernelArg], count: Int) throws {
    if count == 0 { return }
    let ls = elementwiseGroupSize(k, count: count)
    try launch(k, name, args, global: [(count + ls - 1) / ls * ls], local: [ls])
  }

  // MARK: Launching

  /// Sets the arguments and enqueues `kernel` (no wait).
  func launch(_ kernel: cl_kernel, _ name: String, _ args: [KernelArg], global: [Int], local: [Int]? = nil)
    throws
  {
    if global.contains(0) { return }
    queueLock.lock()
    defer { queueLock.unlock() }
    var profileStart: UInt64?
    if Self.profiling {
      try clCheck(clFinish(queue), "clFinish")
      profileStart = DispatchTime.now().uptimeNanoseconds
    }
    for (i, arg) in args.enumerated() {
      let idx = cl_uint(i)
      let s: cl_int
      switch arg {
      case .mem(var m): s = clSetKernelArg(kernel, idx, MemoryLayout<cl_mem>.size, &m)
      case .i32(var v): s = clSetKernelArg(kernel, idx, 4, &v)
      case .i64(var v): s = clSetKernelArg(kernel, idx, 8, &v)
      case .f32(var v): s = clSetKernelArg(kernel, idx, 4, &v)
      case .u32(var v): s = clSetKernelArg(kernel, idx, 4, &v)
      case .float8(let values):
        var v = SIMD8<Float>()
        for (j, x) in values.prefix(8).enumerated() { v[j] = x }
        s = clSetKernelArg(kernel, idx, 32, &v)
      case .float4(let values):
        var v = SIMD4<Float>()
        for (j, x) in values.prefix(4).enumerated() { v[j] = x }
        s = clSetKernelArg(kernel, idx, 16, &v)
      case .int16(let values):
        var v = SIMD16<Int32>()
        for (j, x) in values.prefix(16).enumerated() { v[j] = Int32(truncatingIfNeeded: x) }
        s = clSetKernelArg(kernel, idx, 64, &v)
      }
      try clCheck(s, "clSetKernelArg(\(name), \(i))")
    }
    let dims = cl_uint(global.count)
    let status: cl_int
    if let local {
      status = clEnqueueNDRangeKernel(queue, kernel, dims, nil, global, local, 0, nil, nil)
    } else {
      status = clEnqueueNDRangeKernel(queue, kernel, dims, nil, global, nil, 0, nil, nil)
    }
    try clCheck(status, "clEnqueueNDRangeKernel(\(name))")
    poolLock.withLock { _stats.launches += 1 }
    if let t0 = profileStart {
      try clCheck(clFinish(queue), "clFinish")
      let ns = DispatchTime.now().uptimeNanoseconds - t0
      poolLock.withLock {
        kernelTimes[name, default: (0, 0)].count += 1; kernelTimes[name]!.ns += ns
      }
    }
  }

  @inline(__always) func mem(_ b: Buffer) -> cl_mem { OpaquePointer(b.handle) }

  // MARK: Memory

  public func allocate(_ count: Int) throws -> Buffer {
    var capacity = BufferPool<cl_mem>.sizeClass(count)
    // A request that fits the device's largest allocation only without the size-class rounding is made exact.
    if info.maxAllocation > 0 && capacity * MemoryLayout<Float>.size > info.maxAllocation {
      capacity = Swift.max(count, 1)
    }
    poolLock.lock()
    if let h = pool.take(capacity) {
      _stats.poolHits += 1
      poolLock.unlock()
      return Buffer(handle: UnsafeMutableRawPointer(h), capacity: capacity, backend: self)
    }
    poolLock.unlock()
    let bytes = capacity * MemoryLayout<Float>.size
    let handle: cl_mem
    do {
      handle = try createBuffer(bytes: bytes)
    } catch {
      freePool()
      do { handle = try createBuffer(bytes: bytes) } catch {
        throw GPUGenError.outOfMemory(
          bytes: Swift.max(count, 1) * MemoryLayout<Float>.size, device: "\(info.name) (opencl:\(info.index))"
        )
      }
    }
    poolLock.withLock { _stats.allocations += 1 }
    return Buffer(handle: UnsafeMutableRawPointer(handle), capacity: capacity, backend: self)
  }

  private func createBuffer(bytes: Int) throws -> cl_mem {
    if info.maxAllocation > 0 && bytes > info.maxAllocation {
      throw GPUGenError.openCL(call: "clCreateBuffer(\(bytes) bytes)", status: CL_INVALID_BUFFER_SIZE)
    }
    if let limit = memoryLimit, poolLock.withLock({ deviceBytes + bytes > limit }) {
      throw GPUGenError.openCL(
        call: "clCreateBuffer(\(bytes) bytes)", status: CL_MEM_OBJECT_ALLOCATION_FAILURE)
    }
    var status: cl_int = 0
    guard let m = clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE), bytes, nil, &status),
      status == CL_SUCCESS
    else { throw GPUGenError.openCL(call: "clCreateBuffer(\(bytes) bytes)", status: status) }
    poolLock.withLock { deviceBytes += bytes }
    return m
  }

  /// Releases pooled buffers (with their capacities in floats).
  private func release(_ buffers: [(cl_mem, Int)]) {
    for (m, _) in buffers { clReleaseMemObject(m) }
    let bytes = buffers.reduce(0) { $0 + $1.1 * MemoryLayout<Float>.size }
    if bytes > 0 { poolLock.withLock { deviceBytes -= bytes } }
  }

  /// Bytes of device buffers now allocated by this backend, live and pooled.
  var allocatedBytes: Int { poolLock.withLock { deviceBytes } }

  public func recycle(handle: UnsafeMutableRawPointer, capacity: Int) {
    release(poolLock.withLock { pool.put(OpaquePointer(handle), capacity: capacity) })
  }

  public func freePool() {
    release(poolLock.withLock { pool.removeAll() })
  }

  public func upload(_ values: UnsafeBufferPointer<Float>, to buffer: Buffer) throws {
    guard values.count > 0 else { return }
    precondition(values.count <= buffer.capacity)
    // Non-blocking: the data is staged in a private copy that the driver frees once written.
    let bytes = values.count * MemoryLayout<Float>.size
    guard let staging = malloc(bytes) else { throw GPUGenError.outOfMemory(bytes: bytes, device: "host") }
    memcpy(staging, values.baseAddress!, bytes)
    var event: cl_event?
    queueLock.lock()
    defer { queueLock.unlock() }
    let s = clEnqueueWriteBuffer(queue, mem(buffer), cl_bool(CL_FALSE), 0, bytes, staging, 0, nil, &event)
    if s != CL_SUCCESS {
      free(staging)
      throw GPUGenError.openCL(call: "clEnqueueWriteBuffer", status: s)
    }
    let cb = clSetEventCallback(
      event, CL_COMPLETE, { _, _, userData in free(userData) }, staging)
    if cb != CL_SUCCESS {
      clWaitForEvents(1, &event)
      free(staging)
    }
    clReleaseEvent(event)
  }

  public func download(_ buffer: Buffer, count: Int) throws -> [Float] {
    guard count > 0 else { return [] }
    var out = [Float](repeating: 0, count: count)
    queueLock.lock()
    defer { queueLock.unlock() }
    let s = out.withUnsafeMutableBytes { raw in
      clEnqueueReadBuffer(queue, mem(buffer), cl_bool(CL_TRUE), 0, raw.count, raw.baseAddress, 0, nil, nil)
    }
    try clCheck(s, "clEnqueueReadBuffer")
    return out
  }

  public func synchronize() throws {
    try clCheck(clFinish(queue), "clFinish")
  }
}
