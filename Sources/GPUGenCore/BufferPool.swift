// The buffer pool both backends share: free buffers kept by size class, at most a capped number of bytes.
import Foundation

/// Free buffers kept for reuse, keyed by size class. Requests are rounded up to a class (four per octave, so
/// at most 25 % more than asked), which lets different shapes share buffers; the pooled bytes never exceed
/// `capBytes`: a buffer returned over the cap releases the largest pooled buffers until it fits.
struct BufferPool<Handle> {
  /// The most bytes of free buffers kept.
  var capBytes: Int
  /// Bytes of free buffers now pooled.
  private(set) var bytes = 0
  private var free: [Int: [Handle]] = [:]

  init(capBytes: Int) { self.capBytes = capBytes }

  /// The capacity (in floats) that serves a request of `count` floats: 16 below 16, else `count` rounded up
  /// to a quarter of the power of two below it (17 → 20, 1000 → 1024, 1025 → 1280).
  static func sizeClass(_ count: Int) -> Int {
    if count <= 16 { return 16 }
    let octave = 1 << (Int.bitWidth - 1 - (count - 1).leadingZeroBitCount)
    let step = octave / 4
    return (count + step - 1) / step * step
  }

  /// A pooled buffer of exactly `capacity` floats (a size class), if there is one.
  mutating func take(_ capacity: Int) -> Handle? {
    guard var list = free[capacity], let h = list.popLast() else { return nil }
    free[capacity] = list.isEmpty ? nil : list
    bytes -= capacity * MemoryLayout<Float>.size
    return h
  }

  /// Pools `handle` (of `capacity` floats); returns the handles (with their capacities) the caller must
  /// release to stay under the cap (the largest first, possibly `handle` itself).
  mutating func put(_ handle: Handle, capacity: Int) -> [(Handle, Int)] {
    free[capacity, default: []].append(handle)
    bytes += capacity * MemoryLayout<Float>.size
    return trim()
  }

  /// Releases the largest pooled buffers until the pooled bytes are within the cap; returns them with their
  /// capacities.
  mutating func trim() -> [(Handle, Int)] {
    var released: [(Handle, Int)] = []
    while bytes > capBytes, let largest = free.keys.max(), let h = take(largest) {
      released.append((h, largest))
    }
    return released
  }

  /// Empties the pool; returns every handle, with its capacity, for the caller to release.
  mutating func removeAll() -> [(Handle, Int)] {
    let all = free.flatMap { entry in entry.value.map { ($0, entry.key) } }
    free.removeAll()
    bytes = 0
    return all
  }

  /// The default cap: `GPUGEN_POOL_MB` if set, else `fallback` bytes.
  static func defaultCap(fallback: Int) -> Int {
    if let s = Environment.get("GPUGEN_POOL_MB"), let mb = Int(s), mb >= 0 { return mb << 20 }
    return fallback
  }
}
