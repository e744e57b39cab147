// Float32 n-d tensors in row-major (NCHW) layout, stored on a device.

/// A contiguous Float32 tensor on a device. Ops return new tensors; reshape shares storage.
public final class Tensor: CustomStringConvertible, @unchecked Sendable {
  /// Dimensions, outermost first (NCHW for images).
  public let shape: [Int]
  /// The device holding the data.
  public let device: Device
  /// Device storage (at least `count` floats).
  public let buffer: Buffer

  /// Number of elements.
  public var count: Int { shape.reduce(1, *) }
  /// Number of dimensions.
  public var rank: Int { shape.count }
  public var description: String { "Tensor(\(shape), \(device.spec))" }

  init(shape: [Int], device: Device, buffer: Buffer) {
    self.shape = shape
    self.device = device
    self.buffer = buffer
  }

  /// An uninitialised tensor (contents are whatever the pool held).
  public init(uninitialized shape: [Int], on device: Device) throws {
    try Shape.validate(shape)
    self.shape = shape
    self.device = device
    buffer = try device.backend.allocate(Shape.count(shape))
  }

  /// A tensor holding `values` (row-major), which must have exactly `shape`'s element count.
  public convenience init(_ values: [Float], shape: [Int], on device: Device = .cpu) throws {
    try Shape.validate(shape)
    guard values.count == Shape.count(shape) else {
      throw GPUGenError.shapeMismatch(op: "Tensor(values:shape:)", lhs: [values.count], rhs: shape)
    }
    try self.init(uninitialized: shape, on: device)
    try values.withUnsafeBufferPointer { try device.backend.upload($0, to: buffer) }
  }

  /// A tensor with every element equal to `value`.
  public static func full(_ value: Float, shape: [Int], on device: Device = .cpu) throws -> Tensor {
    let t = try Tensor(uninitialized: shape, on: device)
    try device.backend.fill(t.buffer, count: t.count, value: value)
    return t
  }

  /// A tensor of zeros.
  public static func zeros(_ shape: [Int], on device: Device = .cpu) throws -> Tensor {
    try full(0, shape: shape, on: device)
  }

  /// Reads the values back to the host (waits for pending work on the device).
  public func toArray() throws -> [Float] { try device.backend.download(buffer, count: count) }

  /// A copy of this tensor on `device` (self when already there).
  public func to(_ target: Device) throws -> Tensor {
    if target === device { return self }
    return try Tensor(try toArray(), shape: shape, on: target)
  }

  /// A copy with its own storage.
  public func copy() throws -> Tensor {
    let y = try Tensor(uninitialized: shape, on: device)
    let c = StridedCopy(shape: [count], xStrides: [1], xOffset: 0, yStrides: [1], yOffset: 0)
    if count > 0 { try device.backend.copyStrided(buffer, y.buffer, c) }
    Tape.record(y, [self]) { dy, _ in [dy] }
    return y
  }

  /// The same data viewed with another shape (no copy). One dimension may be -1.
  public func reshaped(_ newShape: [Int]) throws -> Tensor {
    var s = newShape
    if let i = s.firstIndex(of: -1) {
      let known = s.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
      guard known > 0, count % known == 0 else {
        throw GPUGenError.shapeMismatch(op: "reshape", lhs: shape, rhs: newShape)
      }
      s[i] = count / known
    }
    try Shape.validate(s)
    guard Shape.count(s) == count else {
      throw GPUGenError.shapeMismatch(op: "reshape", lhs: shape, rhs: newShape)
    }
    let y = Tensor(shape: s, device: device, buffer: buffer)
    Tape.record(y, [self]) { [shape] dy, _ in [try dy.reshaped(shape)] }
    return y
  }

  func sameDevice(_ other: Tensor, _ op: String) throws {
    guard other.device === device else {
      throw GPUGenError.invalidArgument(
        "\(op): tensors are on different devices (\(device.spec) and \(other.device.spec))")
    }
  }
}

/// Shape arithmetic.
public enum Shape {
  /// Element count of a shape.
  public static func count(_ shape: [Int]) -> Int { shape.reduce(1, *) }

  /// Row-major strides.
  public static func strides(_ shape: [Int]) -> [Int] {
    var s = [Int](repeating: 1, count: shape.count)
    var acc = 1
    for d in stride(from: shape.count - 1, through: 0, by: -1) {
      s[d] = acc
      acc *= shape[d]
    }
    return s
  }

  static func validate(_ shape: [Int]) throws {
    var total = 1
    for d in shape {
      guard d >= 0 else { throw GPUGenError.invalidArgument("negative dimension in shape \(shape)") }
      let (p, o) = total.multipliedReportingOverflow(by: d)
      guard !o, p <= Int(Int32.max) else {
        throw GPUGenError.invalidArgument("shape \(shape) has too many elements")
      }
      total = p
    }
  }

  /// Normalises a possibly negative axis.
  static func axis(_ a: Int, rank: Int, _ op: String) throws -> Int {
    let r = a < 0 ? a + rank : a
    guard r >= 0 && r < max(rank, 1) else {
      throw GPUGenError.invalidArgument("\(op): axis \(a) is out of range for rank \(rank)")
    }
    return r
  }

  /// NumPy broadcast of two shapes.
  public static func broadcast(_ a: [Int], _ b: [Int], _ op: String = "broadcast") throws -> [Int] {
    let r = max(a.count, b.count)
    var out = [Int](repeating: 1, count: r)
    for i in 0..<r {
      let da = i < r - a.count ? 1 : a[i - (r - a.count)]
      let db = i < r - b.count ? 1 : b[i - (r - b.count)]
      if da == db || db == 1 {
        out[i] = da
      } else if da == 1 {
        out[i] = db
      } else {
        throw GPUGenError.shapeMismatch(op: op, lhs: a, rhs: b)
      }
    }
    return out
  }

  /// Strides that read `shape` as broadcast to `out` (0 along broadcast axes).
  static func broadcastStrides(_ shape: [Int], to out: [Int]) -> [Int] {
    let st = strides(shape)
    let off = out.count - shape.count
    return (0..<out.count).map { i in
      i < off || shape[i - off] == 1 ? 0 : st[i - off]
    }
  }

  /// The highest rank a broadcast or strided copy may have after collapsing (int16 kernel arguments).
  public static let maxStridedRank = 16

  /// Drops size-1 axes and merges neighbours that are contiguous in every operand.
  /// Throws when the collapsed rank exceeds `maxStridedRank` (the same limit on every backend).
  static func collapse(_ shape: [Int], _ strides: [[Int]], op: String) throws -> (
    shape: [Int], strides: [[Int]]
  ) {
    let c = collapse(shape, strides)
    if c.shape.count > maxStridedRank {
      throw GPUGenError.invalidArgument(
        "\(op): shape \(shape) needs \(c.shape.count) strided axes; at most \(maxStridedRank) are supported")
    }
    return c
  }

  static func collapse(_ shape: [Int], _ strides: [[Int]]) -> (shape: [Int], strides: [[Int]]) {
    var s: [Int] = []
    var st: [[Int]] = strides.map { _ in [] }
    for d in 0..<shape.count where shape[d] != 1 {
      if let last = s.last, (0..<strides.count).allSatisfy({ st[$0].last! == strides[$0][d] * shape[d] }) {
        s[s.count - 1] = last * shape[d]
        for o in 0..<strides.count { st[o][st[o].count - 1] = strides[o][d] }
      } else {
        s.append(shape[d])
        for o in 0..<strides.count { st[o].append(strides[o][d]) }
      }
    }
    if s.isEmpty { return ([1], strides.map { _ in [1] }) }
    return (s, st)
  }
}
