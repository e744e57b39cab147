// The buffer pools: size classes let shapes that differ slightly share buffers, and the cap keeps the free
// buffers of several models in one process (a GAN's two networks, `compare`'s three families) bounded.
import XCTest

@testable import GPUGenCore

final class BufferPoolTests: XCTestCase {
  func testSizeClassesRoundUpByAtMostAQuarter() {
    XCTAssertEqual(BufferPool<Int>.sizeClass(0), 16)
    XCTAssertEqual(BufferPool<Int>.sizeClass(17), 20)
    XCTAssertEqual(BufferPool<Int>.sizeClass(1000), 1024)
    XCTAssertEqual(BufferPool<Int>.sizeClass(1025), 1280)
    for n in stride(from: 17, to: 200_000, by: 97) {
      let c = BufferPool<Int>.sizeClass(n)
      XCTAssertGreaterThanOrEqual(c, n)
      XCTAssertLessThanOrEqual(Double(c), Double(n) * 1.25 + 1, "\(n) → \(c)")
    }
  }

  func testPoolCapComesFromGPUGENPOOLMB() {
    setenv("GPUGEN_POOL_MB", "3", 1)
    defer { unsetenv("GPUGEN_POOL_MB") }
    XCTAssertEqual(BufferPool<Int>.defaultCap(fallback: 12345), 3 << 20)
    unsetenv("GPUGEN_POOL_MB")
    XCTAssertEqual(BufferPool<Int>.defaultCap(fallback: 12345), 12345)
  }

  func testPoolDropsTheLargestBuffersOverTheCap() {
    var pool = BufferPool<Int>(capBytes: 1000 * 4)
    XCTAssertEqual(pool.put(1, capacity: 400).map(\.0), [])
    XCTAssertEqual(pool.put(2, capacity: 500).map(\.0), [])
    XCTAssertEqual(pool.put(3, capacity: 300).map(\.0), [2], "the largest goes first")
    XCTAssertEqual(pool.bytes, 700 * 4)
    XCTAssertEqual(pool.take(400), 1)
    XCTAssertNil(pool.take(400))
  }

  /// Shapes alternate between two "models" and drift every round: the pool stays under its cap on every
  /// device, and size classes serve the drifting shapes without new allocations once warm.
  func testAlternatingShapesKeepThePoolBounded() throws {
    for device in allDevices() {
      let cpu = device.backend as? CPUBackend, cl = device.openCL
      let saved = cpu?.poolCapBytes ?? cl?.poolCapBytes ?? 0
      func setCap(_ bytes: Int) {
        cpu?.poolCapBytes = bytes
        cl?.poolCapBytes = bytes
      }
      defer { setCap(saved) }
      device.backend.freePool()
      setCap(1 << 20)
      var allocationsPerRound: [Int] = []
      for round in 0..<20 {
        let before = device.backend.stats.allocations
        for model in 0..<2 {
          let base = model == 0 ? 4096 + 37 * round : 20_000 - 41 * round
          let live = try (0..<3).map { try Tensor.zeros([base + $0], on: device) }
          XCTAssertEqual(live.count, 3)
          XCTAssertLessThanOrEqual(device.backend.stats.pooledBytes, 1 << 20, "\(device.spec) round \(round)")
        }
        XCTAssertLessThanOrEqual(device.backend.stats.pooledBytes, 1 << 20, "\(device.spec) round \(round)")
        allocationsPerRound.append(device.backend.stats.allocations - before)
      }
      XCTAssertEqual(allocationsPerRound.suffix(5), Array(repeating: 0, count: 5), "\(allocationsPerRound)")
      // A cap below one buffer: nothing stays pooled, every round allocates afresh, and nothing breaks.
      setCap(8 * 1024)
      XCTAssertLessThanOrEqual(device.backend.stats.pooledBytes, 8 * 1024)
      for round in 0..<4 {
        let before = device.backend.stats.allocations
        let t = try Tensor.full(Float(round), shape: [4096 + round], on: device)
        XCTAssertEqual(try t.toArray().last, Float(round))
        XCTAssertGreaterThan(device.backend.stats.allocations, before)
      }
      XCTAssertLessThanOrEqual(device.backend.stats.pooledBytes, 8 * 1024)
    }
  }
}
