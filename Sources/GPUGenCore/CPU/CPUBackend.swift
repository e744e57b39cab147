// The native CPU backend: OpenBLAS for GEMM, Swift loops split across cores for everything else.
import CBLAS
import CPUPeak
import Dispatch
import Foundation

/// Runs gpugen's ops on the host CPU.
public final class CPUBackend: Backend, @unchecked Sendable {
  public let name: String
  public var stats: BackendStats {
    lock.withLock {
      var s = _stats
      s.pooledBytes = pool.bytes
      return s
    }
  }
  private var _stats = BackendStats()
  /// Free buffers by size class, at most a quarter of the memory (4 GiB at most; `GPUGEN_POOL_MB` overrides).
  private var pool = BufferPool<UnsafeMutableRawPointer>(
    capBytes: BufferPool<UnsafeMutableRawPointer>.defaultCap(
      fallback: Swift.min(Int(ProcessInfo.processInfo.physicalMemory / 4), 4 << 30)))
  /// The most bytes of free buffers the pool keeps; lowering it releases the excess at once.
  var poolCapBytes: Int {
    get { lock.withLock { pool.capBytes } }
    set {
      let released = lock.withLock { () -> [(UnsafeMutableRawPointer, Int)] in
        pool.capBytes = newValue
        return pool.trim()
      }
      for (p, _) in released { free(p) }
    }
  }
  private let lock = NSLock()

  public init() {
    name = "native CPU (\(Parallel.cores) cores, OpenBLAS)"
  }

  /// GPUGEN_PROFILE=1: accumulate the time of each backend op.
  static let profiling = Environment.get("GPUGEN_PROFILE") == "1"
  private var opTimes: [String: (count: Int, ns: UInt64)] = [:]

  /// Per-op call counts and total milliseconds, slowest first (GPUGEN_PROFILE=1 only).
  public var opProfile: [(name: String, count: Int, ms: Double)] {
    lock.withLock { opTimes.map { ($0.key, $0.value.count, Double($0.value.ns) / 1e6) } }.sorted {
      $0.ms > $1.ms
    }
  }

  @inline(__always) func timed<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
    guard Self.profiling else { return try body() }
    let t0 = DispatchTime.now().uptimeNanoseconds
    defer {
      let ns = DispatchTime.now().uptimeNanoseconds - t0
      lock.withLock {
        opTimes[name, default: (0, 0)].count += 1
        opTimes[name]!.ns += ns
      }
    }
    return try body()
  }

  @inline(__always) func ptr(_ b: Buffer) -> UnsafeMutablePointer<Float> {
    b.handle.assumingMemoryBound(to: Float.self)
  }

  // MARK: Memory

  public func allocate(_ count: Int) throws -> Buffer {
    let capacity = BufferPool<UnsafeMutableRawPointer>.sizeClass(count)
    if let h = lock.withLock({ pool.take(capacity) }) {
      lock.withLock { _stats.poolHits += 1 }
      return Buffer(handle: h, capacity: capacity, backend: self)
    }
    let (bytes, overflow) = capacity.multipliedReportingOverflow(by: MemoryLayout<Float>.size)
    if overflow { throw GPUGenError.outOfMemory(bytes: Int.max, device: name) }
    var raw = Self.alignedAlloc(bytes)
    if raw == nil {
      freePool()
      raw = Self.alignedAlloc(bytes)
    }
    guard let raw else {
      throw GPUGenError.outOfMemory(
        bytes: Swift.max(count, 1) * MemoryLayout<Float>.size, device: "cpu (\(name))")
    }
    lock.withLock { _stats.allocations += 1 }
    return Buffer(handle: raw, capacity: capacity, backend: self)
  }

  private static func alignedAlloc(_ bytes: Int) -> UnsafeMutableRawPointer? {
    var p: UnsafeMutableRawPointer?
    return posix_memalign(&p, 64, bytes) == 0 ? p : nil
  }

  public func recycle(handle: UnsafeMutableRawPointer, capacity: Int) {
    let released = lock.withLock { pool.put(handle, capacity: capacity) }
    for (p, _) in released { free(p) }
  }

  public func freePool() {
    let all = lock.withLock { pool.removeAll() }
    for (p, _) in all { free(p) }
  }

  public func upload(_ values: UnsafeBufferPointer<Float>, to buffer: Buffer) throws {
    guard let base = values.baseAddress, values.count > 0 else { return }
    ptr(buffer).update(from: base, count: values.count)
  }

  public func download(_ buffer: Buffer, count: Int) throws -> [Float] {
    Array(UnsafeBufferPointer(start: ptr(buffer), count: count))
  }

  public func synchronize() throws {}

  // MARK: Elementwise

  public func fill(_ y: Buffer, count: Int, value: Float) throws {
    timed("fill") {
      let yp = ptr(y)
      Parallel.forEach(count) { r in (yp + r.lowerBound).update(repeating: value, count: r.count) }
    }
  }

  @inline(__always)
  private func map(_ x: Buffer, _ y: Buffer, _ count: Int, cost: Int = 1, _ f: (Float) -> Float) {
    let xp = ptr(x), yp = ptr(y)
    Parallel.forEach(count, cost: cost) { r in
      for i in r { yp[i] = f(xp[i]) }
    }
  }

  /// y = f(x) through a C loop, split across cores.
  @inline(__always)
  private func cmap(
    _ x: Buffer, _ y: Buffer, _ count: Int,
    _ f: (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void
  ) {
    let xp = ptr(x), yp = ptr(y)
    Parallel.forEach(count, cost: 8) { r in f(xp + r.lowerBound, yp + r.lowerBound, r.count) }
  }

  public func unary(_ op: UnaryOp, _ x: Buffer, _ y: Buffer, count: Int, alpha: Float) throws {
    timed("unary") {
      switch op {
      case .neg: map(x, y, count) { -$0 }
      case .abs: map(x, y, count) { Swift.abs($0) }
      case .exp: cmap(x, y, count, gpugen_exp)
      case .log: map(x, y, count, cost: 8) { Foundation.log($0) }
      case .sqrt: map(x, y, count) { $0.squareRoot() }
      case .rsqrt: map(x, y, count) { 1 / $0.squareRoot() }
      case .sin: map(x, y, count, cost: 8) { Foundation.sin($0) }
      case .cos: map(x, y, count, cost: 8) { Foundation.cos($0) }
      case .tanh: map(x, y, count, cost: 8) { Foundation.tanh($0) }
      case .sigmoid: cmap(x, y, count, gpugen_sigmoid)
      case .relu: map(x, y, count) { Swift.max($0, 0) }
      case .leakyRelu: map(x, y, count) { $0 >= 0 ? $0 : alpha * $0 }
      case .silu:
        let xp = ptr(x), yp = ptr(y)
        Parallel.forEach(count, cost: 8) { r in
          gpugen_affine(xp + r.lowerBound, yp + r.lowerBound, r.count, 1, 0, 1)
        }
      case .gelu: map(x, y, count, cost: 8) { cpuGelu($0) }
      }
    }
  }

  @inline(__always)
  private func zip(
    _ a: Buffer, _ b: Buffer, _ y: Buffer, _ layout: BroadcastLayout, cost: Int = 1,
    _ f: (Float, Float) -> Float
  ) {
    let ap = ptr(a), bp = ptr(b), yp = ptr(y)
    let shape = layout.shape
    if shape.isEmpty || layout.count == 0 {
      if layout.count == 1 { yp[0] = f(ap[0], bp[0]) }
      return
    }
    let inner = shape[shape.count - 1]
    let sa = layout.strides[0].last!, sb = layout.strides[1].last!
    let rows = layout.count / inner
    if rows == 1 && sa == 1 && sb == 1 {
      Parallel.forEach(inner, cost: cost) { r in
        for i in r { yp[i] = f(ap[i], bp[i]) }
      }
      return
    }
    Parallel.forEach(rows, cost: inner * cost) { rr in
      forEachRow(shape: shape, strides: layout.strides, rows: rr) { row, off in
        let pa = ap + off[0], pb = bp + off[1], py = yp + row * inner
        if sa == 1 && sb == 1 {
          for j in 0..<inner { py[j] = f(pa[j], pb[j]) }
        } else if sb == 0 {
          let q = pb[0]
          for j in 0..<inner { py[j] = f(pa[j * sa], q) }
        } else if sa == 0 {
          let p = pa[0]
          for j in 0..<inner { py[j] = f(p, pb[j * sb]) }
        } else {
          for j in 0..<inner { py[j] = f(pa[j * sa], pb[j * sb]) }
        }
      }
    }
  }

  public func binary(_ op: BinaryOp, _ a: Buffer, _ b: Buffer, _ y: Buffer, layout: BroadcastLayout) throws {
    timed(Self.profiling ? "binary \(op) \(layout)" : "binary") {
      switch op {
      case .add: zip(a, b, y, layout) { $0 + $1 }
      case .sub: zip(a, b, y, layout) { $0 - $1 }
      case .mul: zip(a, b, y, layout) { $0 * $1 }
      case .div: zip(a, b, y, layout) { $0 / $1 }
      case .pow: zip(a, b, y, layout, cost: 16) { Foundation.pow($0, $1) }
      case .maximum: zip(a, b, y, layout) { cpuMax($0, $1) }
      case .minimum: zip(a, b, y, layout) { cpuMin($0, $1) }
      }
    }
  }

  public func binaryScalar(
    _ op: BinaryOp, _ a: Buffer, scalar s: Float, scalarFirst: Bool, _ y: Buffer, count: Int
  ) throws {
    timed("binaryScalar") {
      switch (op, scalarFirst) {
      case (.add, _): map(a, y, count) { $0 + s }
      case (.mul, _): map(a, y, count) { $0 * s }
      case (.maximum, _): map(a, y, count) { cpuMax($0, s) }
      case (.minimum, _): map(a, y, count) { cpuMin($0, s) }
      case (.sub, false): map(a, y, count) { $0 - s }
      case (.sub, true): map(a, y, count) { s - $0 }
      case (.div, false): map(a, y, count) { $0 / s }
      case (.div, true): map(a, y, count) { s / $0 }
      case (.pow, false): map(a, y, count, cost: 16) { Foundation.pow($0, s) }
      case (.pow, true): map(a, y, count, cost: 16) { Foundation.pow(s, $0) }
      }
    }
  }

  public func clamp(_ x: Buffer, _ y: Buffer, count: Int, lower: Float, upper: Float) throws {
    timed("clamp") {
      map(x, y, count) { cpuMin(cpuMax($0, lower), upper) }
    }
  }

  public func select(_ cond: Buffer, _ a: Buffer, _ b: Buffer, _ y: Buffer, layout: BroadcastLayout) throws {
    timed("select") {
      let cp = ptr(cond), ap = ptr(a), bp = ptr(b), yp = ptr(y)
      let shape = layout.shape.isEmpty ? [1] : layout.shape
      let strides = layout.shape.isEmpty ? [[0], [0], [0]] : layout.strides
      let inner = shape.last!
      guard inner > 0 else { return }
      let rows = layout.count / inner
      let (sc, sa, sb) = (strides[0].last!, strides[1].last!, strides[2].last!)
      Parallel.forEach(rows, cost: inner) { rr in
        forEachRow(shape: shape, strides: strides, rows: rr) { row, off in
          let pc = cp + off[0], pa = ap + off[1], pb = bp + off[2], py = yp + row * inner
          for j in 0..<inner { py[j] = pc[j * sc] != 0 ? pa[j * sa] : pb[j * sb] }
        }
      }
    }
  }

  public func copyStrided(_ x: Buffer, _ y: Buffer, _ c: StridedCopy) throws {
    timed(Self.profiling ? "copyStrided \(c.shape) \(c.xStrides)->\(c.yStrides)" : "copyStrided") {
      let xp = ptr(x) + c.xOffset, yp = ptr(y) + c.yOffset
      let count = c.shape.reduce(1, *)
      if count == 0 { return }
      if c.shape.isEmpty {
        yp[0] = xp[0]
        return
      }
      let inner = c.shape.last!
      let sx = c.xStrides.last!, sy = c.yStrides.last!
      if inner <= 4 && c.shape.count >= 2 {
        // A tiny last axis (nearest upsampling's duplicates, 2×2 blocks): rows of the last two axes, so
        // that the per-row bookkeeping is paid once per row of the axis before it.
        let outer = c.shape[c.shape.count - 2]
        let ox = c.xStrides[c.shape.count - 2], oy = c.yStrides[c.shape.count - 2]
        if !(sx == 0 && sy == 1 && ox == 1 && oy == inner) && c.shape.count <= 16 {
          // Kernel rearrangements ((O, C, 2, 2, 2, 2) and the like): the rows' bookkeeping in C.
          Parallel.forEach(count / (inner * outer), cost: inner * outer) { rr in
            c.shape.withUnsafeBufferPointer { sh in
              c.xStrides.withUnsafeBufferPointer { xs in
                c.yStrides.withUnsafeBufferPointer { ys in
                  gpugen_copy_strided(
                    xp, yp, Int32(c.shape.count), sh.baseAddress, xs.baseAddress, ys.baseAddress,
                    rr.lowerBound,
                    rr.upperBound)
                }
              }
            }
          }
          return
        }
        let lead = Array(c.shape.dropLast())
        let xs = Array(c.xStrides.dropLast()), ys = Array(c.yStrides.dropLast())
        Parallel.forEach(count / (inner * outer), cost: inner * outer) { rr in
          forEachRow(shape: lead, strides: [xs, ys], rows: rr) { _, off in
            let px = xp + off[0], py = yp + off[1]
            if sx == 0 && sy == 1 && ox == 1 && oy == inner {
              gpugen_repeat(px, py, outer, Int32(inner))  // duplicates of a contiguous row
              return
            }
            for i in 0..<outer {
              let qx = px + i * ox, qy = py + i * oy
              for j in 0..<inner { qy[j * sy] = qx[j * sx] }
            }
          }
        }
        return
      }
      Parallel.forEach(count / inner, cost: inner) { rr in
        forEachRow(shape: c.shape, strides: [c.xStrides, c.yStrides], rows: rr) { _, off in
          let px = xp + off[0], py = yp + off[1]
          if sx == 1 && sy == 1 {
            py.update(from: px, count: inner)
          } else {
            for j in 0..<inner { py[j * sy] = px[j * sx] }
          }
        }
      }
    }
  }

  // MARK: Reductions

  public func reduce(
    _ op: ReduceOp, _ x: Buffer, _ y: Buffer, outer: Int, r: Int, inner: Int, correction: Int
  ) throws {
    timed(Self.profiling ? "reduce \(op) \(outer)x\(r)x\(inner)" : "reduce") {
      let xp = ptr(x), yp = ptr(y)
      let combine: (Float, Float) -> Float = op == .max ? { cpuMax($0, $1) } : { $0 + $1 }
      let start: Float = op == .max ? -.infinity : 0
      if inner == 1 && r <= 8 && (op == .sum || op == .mean) {
        // Short rows (the 2×2 blocks of an upsampling's gradient): a plain loop, no call per row.
        let scale = op == .mean ? 1 / Double(r) : 1
        Parallel.forEach(outer, cost: r) { rows in
          for o in rows {
            let p = xp + o * r
            var acc = 0.0
            for j in 0..<r { acc += Double(p[j]) }
            yp[o] = Float(acc * scale)
          }
        }
        return
      }
      if inner > 1 && (op == .sum || op == .mean) {
        // Column sums: tasks of (outer index, block of 256 columns), so that a single long reduction (a
        // linear layer's bias gradient over 4,096 rows) also uses every core; the row loop vectorises.
        let width = 256, blocks = (inner + width - 1) / width
        let scale: Float = op == .mean ? 1 / Float(r) : 1
        Parallel.forEach(outer * blocks, cost: r * Swift.min(inner, width)) { tasks in
          for task in tasks {
            let o = task / blocks, i0 = task % blocks * width, n = Swift.min(width, inner - i0)
            let out = yp + o * inner + i0, base = xp + o * r * inner + i0
            out.update(repeating: 0, count: n)
            for j in 0..<r {
              let row = base + j * inner
              for i in 0..<n { out[i] += row[i] }
            }
            if op == .mean { for i in 0..<n { out[i] *= scale } }
          }
        }
        return
      }
      if inner == 1 {
        Parallel.forEach(outer, cost: r) { rows in
          for o in rows {
            let p = xp + o * r
            // Sums: 16 float lanes added in Double (gpugen_sum), so a long row (a loss over a whole batch)
            // keeps float32 accuracy instead of drifting in one running total.
            switch op {
            case .max:
              var acc = start
              for j in 0..<r { acc = combine(acc, p[j]) }
              yp[o] = acc
            case .sum: yp[o] = Float(gpugen_sum(p, r))
            case .mean: yp[o] = Float(gpugen_sum(p, r) / Double(r))
            case .variance:
              let mean = Float(gpugen_sum(p, r) / Double(r))
              yp[o] = Float(gpugen_squared_deviation(p, r, mean) / Double(r - correction))
            }
          }
        }
        return
      }
      // inner > 1: accumulate whole rows of length `inner` (vectorisable), parallel over outer×inner.
      Parallel.forEach(outer, cost: r * inner) { rows in
        for o in rows {
          let base = xp + o * r * inner, out = yp + o * inner
          out.update(repeating: start, count: inner)
          for j in 0..<r {
            let row = base + j * inner
            for i in 0..<inner { out[i] = combine(out[i], row[i]) }
          }
          switch op {
          case .sum, .max: break
          case .mean:
            for i in 0..<inner { out[i] /= Float(r) }
          case .variance:
            let mean = UnsafeMutablePointer<Float>.allocate(capacity: inner)
            defer { mean.deallocate() }
            for i in 0..<inner {
              mean[i] = out[i] / Float(r)
              out[i] = 0
            }
            for j in 0..<r {
              let row = base + j * inner
              for i in 0..<inner {
                let d = row[i] - mean[i]
                out[i] += d * d
              }
            }
            for i in 0..<inner { out[i] /= Float(r - correction) }
          }
        }
      }
    }
  }

  public func softmax(_ x: Buffer, _ y: Buffer, outer: Int, r: Int, inner: Int, log: Bool) throws {
    timed("softmax") {
      let xp = ptr(x), yp = ptr(y)
      if inner == 1 {
        Parallel.forEach(outer, cost: r * 8) { rows in
          for o in rows { gpugen_softmax_row(xp + o * r, yp + o * r, r, log ? 1 : 0) }
        }
        return
      }
      Parallel.forEach(outer * inner, cost: r * 8) { items in
        for item in items {
          let o = item / inner, i = item % inner
          let base = o * r * inner + i
          var m = -Float.infinity
          for j in 0..<r { m = cpuMax(m, xp[base + j * inner]) }
          var s: Float = 0
          for j in 0..<r { s += Foundation.exp(xp[base + j * inner] - m) }
          let ls = Foundation.log(s), inv = 1 / s
          for j in 0..<r {
            let v = xp[base + j * inner] - m
            yp[base + j * inner] = log ? v - ls : Foundation.exp(v) * inv
          }
        }
      }
    }
  }

  // MARK: GEMM

  /// A·Bᵀ with few rows and columns but a long K (convolution weight gradients: Cout × C·KH·KW × N·HO·WO):
  /// BLAS parallelises over M and N, so it runs these on one core; here K is split into fixed chunks.
  static func isDotShaped(_ d: GemmDescriptor) -> Bool {
    !d.transA && d.transB && d.m * d.n <= 1 << 18 && d.k >= 2048 && d.k >= 2 * Swift.max(d.m, d.n)
  }

  /// C = alpha·Σ_chunks A_k·B_kᵀ + beta·C over K chunks of 1024 (a fixed split, so the sum's order does not
  /// depend on the core count), each chunk's dot products in `gpugen_gemm_nt_dots`.
  private func dotGemm(
    _ d: GemmDescriptor, _ pa: UnsafeMutablePointer<Float>, _ pb: UnsafeMutablePointer<Float>,
    _ pc: UnsafeMutablePointer<Float>
  ) {
    let chunk = 1024
    let chunks = (d.k + chunk - 1) / chunk
    let mn = d.m * d.n
    let partial = UnsafeMutablePointer<Float>.allocate(capacity: chunks * mn)
    defer { partial.deallocate() }
    Parallel.forEach(chunks, cost: mn * chunk) { r in
      for ch in r {
        gpugen_gemm_nt_dots(
          pa, d.lda, pb, d.ldb, partial + ch * mn, d.n, d.m, d.n, ch * chunk, Swift.min(d.k, (ch + 1) * chunk)
        )
      }
    }
    Parallel.forEach(d.m, cost: d.n * chunks) { rows in
      for i in rows {
        for j in 0..<d.n {
          var s: Float = 0
          for ch in 0..<chunks { s += partial[ch * mn + i * d.n + j] }
          let o = i * d.ldc + j
          pc[o] = d.beta == 0 ? d.alpha * s : d.alpha * s + d.beta * pc[o]
        }
      }
    }
  }

  public func gemm(_ d: GemmDescriptor, _ a: Buffer, _ b: Buffer, _ c: Buffer, bias: Buffer?) throws {
    // Profiles group GEMMs by shape (M×N×K, batch, transposes).
    let label =
      Self.profiling
      ? "gemm \(d.m)x\(d.n)x\(d.k)\(d.batch > 1 ? " b\(d.batch)" : "")\(d.transA ? " tA" : "")\(d.transB ? " tB" : "")"
      : "gemm"
    timed(label) {
      if d.m == 0 || d.n == 0 || d.batch == 0 { return }
      let ap = ptr(a), bp = ptr(b), cp = ptr(c)
      for i in 0..<d.batch {
        let pa = ap + i * d.strideA, pb = bp + i * d.strideB, pc = cp + i * d.strideC
        if d.k == 0 {
          // BLAS leaves C untouched when K = 0 only if beta = 1; make beta·C explicit.
          for r in 0..<d.m {
            for j in 0..<d.n { pc[r * d.ldc + j] = d.beta == 0 ? 0 : d.beta * pc[r * d.ldc + j] }
          }
        } else if Self.isDotShaped(d) {
          dotGemm(d, pa, pb, pc)
        } else {
          cblas_sgemm(
            CblasRowMajor, d.transA ? CblasTrans : CblasNoTrans, d.transB ? CblasTrans : CblasNoTrans,
            Int32(d.m), Int32(d.n), Int32(d.k), d.alpha, pa, Int32(d.lda), pb, Int32(d.ldb), d.beta, pc,
            Int32(d.ldc))
        }
      }
      let biasMode = bias == nil ? BiasMode.none : d.biasMode
      if biasMode == .none && d.activation == .none { return }
      let biasp = bias.map(ptr)
      let act = d.activation, alpha = d.activationAlpha
      Parallel.forEach(d.batch * d.m, cost: d.n * 4) { rows in
        for row in rows {
          let bi = row / d.m, r = row % d.m
          let pc = cp + bi * d.strideC + r * d.ldc
          switch biasMode {
          case .perColumn: for j in 0..<d.n { pc[j] += biasp![j] }
          case .perRow:
            let v = biasp![r]
            for j in 0..<d.n { pc[j] += v }
          case .none: break
          }
          if act != .none { for j in 0..<d.n { pc[j] = cpuActivate(pc[j], act, alpha) } }
        }
      }
    }
  }
}

@inline(__always) func cpuMax(_ a: Float, _ b: Float) -> Float {
  a.isNaN ? b : (b.isNaN ? a : Swift.max(a, b))
}
@inline(__always) func cpuMin(_ a: Float, _ b: Float) -> Float {
  a.isNaN ? b : (b.isNaN ? a : Swift.min(a, b))
}
@inline(__always) func cpuGelu(_ x: Float) -> Float {
  0.5 * x * (1 + Foundation.erf(x * 0.70710678118654752))
}

@inline(__always) func cpuActivate(_ v: Float, _ act: Activation, _ alpha: Float) -> Float {
  switch act {
  case .none: return v
  case .relu: return Swift.max(v, 0)
  case .leakyRelu: return v >= 0 ? v : alpha * v
  case .silu: return v / (1 + Foundation.exp(-v))
  case .gelu: return cpuGelu(v)
  case .sigmoid: return 1 / (1 + Foundation.exp(-v))
  case .tanh: return Foundation.tanh(v)
  }
}
