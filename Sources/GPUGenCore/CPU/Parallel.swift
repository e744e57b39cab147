// Splitting work across cores for the native CPU backend.
import CPUPeak
import Dispatch
import Foundation

enum Parallel {
  /// Worker threads: $GPUGEN_NUM_THREADS if set, else the cores this process may run on (its affinity mask,
  /// which `mpirun` narrows to one core per rank; Foundation's count ignores it).
  static let cores: Int = {
    if let s = ProcessInfo.processInfo.environment["GPUGEN_NUM_THREADS"], let n = Int(s), n > 0 {
      return min(n, 1024)
    }
    let online = max(1, ProcessInfo.processInfo.activeProcessorCount)
    let allowed = Int(gpugen_affinity_cpus())
    return allowed > 0 ? min(allowed, online) : online
  }()

  /// Runs `body` over disjoint chunks of 0..<n, in parallel when the work is large enough.
  /// `cost` is the approximate work per index (in elementary operations).
  @inline(__always)
  static func forEach(_ n: Int, cost: Int = 1, _ body: (Range<Int>) -> Void) {
    if n <= 0 { return }
    let total = n * max(cost, 1)
    let chunks = min(n, min(cores * 4, total / 32_768))
    if chunks <= 1 {
      body(0..<n)
      return
    }
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
      let lo = n * c / chunks, hi = n * (c + 1) / chunks
      if lo < hi { body(lo..<hi) }
    }
  }
}

/// Iterates row-major over all but the last axis of `shape`, calling `body(rowIndex, offsets)`
/// where offsets[i] is the element offset of that row in operand i (per `strides[i]`).
@inline(__always)
func forEachRow(
  shape: [Int], strides: [[Int]], rows: Range<Int>, _ body: (Int, UnsafeMutableBufferPointer<Int>) -> Void
) {
  let outerRank = shape.count - 1
  let ops = strides.count
  withUnsafeTemporaryAllocation(of: Int.self, capacity: max(outerRank, 1)) { idx in
    withUnsafeTemporaryAllocation(of: Int.self, capacity: ops) { off in
      // Decompose the first row index.
      var r = rows.lowerBound
      for d in stride(from: outerRank - 1, through: 0, by: -1) {
        idx[d] = r % shape[d]
        r /= shape[d]
      }
      for o in 0..<ops {
        var s = 0
        for d in 0..<outerRank { s += idx[d] * strides[o][d] }
        off[o] = s
      }
      for row in rows {
        body(row, off)
        // Odometer increment.
        var d = outerRank - 1
        while d >= 0 {
          idx[d] += 1
          for o in 0..<ops { off[o] += strides[o][d] }
          if idx[d] < shape[d] { break }
          for o in 0..<ops { off[o] -= strides[o][d] * shape[d] }
          idx[d] = 0
          d -= 1
        }
      }
    }
  }
}
