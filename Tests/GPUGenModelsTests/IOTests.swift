// PNG grids and .npy interchange.
import Foundation
import XCTest

@testable import GPUGenModels

final class IOTests: XCTestCase {
  func tmp(_ name: String) -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent(
      "gpugen-io-\(UUID().uuidString)-\(name)")
    addTeardownBlock { try? FileManager.default.removeItem(at: u) }
    return u
  }

  func testGridMapsMinusOneToOneOntoBytesAndRoundTripsThroughPNG() throws {
    // Two 1×2×3 gray images: values -1, 0, 1 and clipping beyond.
    let v: [Float] = [-1, 0, 1, -2, 2, 0.5, 1, 1, 1, -1, -1, -1]
    let g = try Image8.grid(v, shape: [2, 1, 2, 3], columns: 2, gutter: 1)
    XCTAssertEqual(g.width, 2 * 3 + 3)
    XCTAssertEqual(g.height, 2 + 2)
    XCTAssertEqual(Array(g.pixels[(1 * g.width + 1)..<(1 * g.width + 4)]), [0, 128, 255])
    XCTAssertEqual(Array(g.pixels[(2 * g.width + 1)..<(2 * g.width + 4)]), [0, 255, 191])
    XCTAssertEqual(Array(g.pixels[(1 * g.width + 5)..<(1 * g.width + 8)]), [255, 255, 255])
    let url = tmp("g.png")
    try g.writePNG(to: url)
    XCTAssertEqual(try Image8.readPNG(from: url, channels: 1), g)
    let rgb = try Image8.grid([Float](repeating: 0.2, count: 3 * 4 * 4), shape: [1, 3, 4, 4])
    try rgb.writePNG(to: url)
    XCTAssertEqual(try Image8.readPNG(from: url, channels: 3), rgb)
    XCTAssertThrowsError(try Image8.grid([1, 2], shape: [1, 2, 1, 1]))
    XCTAssertThrowsError(try Image8.readPNG(from: tmp("missing.png"), channels: 1))
  }

  func testNPYRoundTripAndErrors() throws {
    let url = tmp("a.npy")
    let v = (0..<24).map { Float($0) * 0.25 - 3 }
    try NPY.write(v, shape: [2, 3, 4], to: url)
    let r = try NPY.read(from: url)
    XCTAssertEqual(r.shape, [2, 3, 4])
    XCTAssertEqual(r.values, v)
    // Header is padded so the data starts on a 64-byte boundary, as NumPy does.
    let bytes = try Data(contentsOf: url)
    XCTAssertEqual((bytes.count - 24 * 4) % 64, 0)
    try NPY.write([7], shape: [1], to: url)
    XCTAssertEqual(try NPY.read(from: url).shape, [1])
    try Data("not numpy".utf8).write(to: url)
    XCTAssertThrowsError(try NPY.read(from: url))
    // Truncated data.
    try NPY.write(v, shape: [24], to: url)
    try Data(try Data(contentsOf: url).dropLast(4)).write(to: url)
    XCTAssertThrowsError(try NPY.read(from: url)) { XCTAssertTrue("\($0)".contains("bytes"), "\($0)") }
  }
}
