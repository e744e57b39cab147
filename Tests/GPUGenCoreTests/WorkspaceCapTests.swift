// Bounded OpenCL workspaces: a convolution whose im2col matrix or Winograd buffers exceed the cap runs in
// chunks of images with the same result, and the reference UNet samples at batch 64 on a 128 MiB device.
import Foundation
import XCTest

@testable import GPUGenCore

final class WorkspaceCapTests: XCTestCase {
  func testConvolutionsUnderATinyWorkspaceCapRunInChunksAndAgree() throws {
    for device in openCLDevices() {
      let cl = try XCTUnwrap(device.openCL)
      defer { cl.workspaceCapOverride = nil }
      cl.workspaceCapOverride = 500  // floats: below one image of the 4×4/2 and Winograd checks
      let before = cl.chunkedConvolutions
      let rows = SelfTest.run(SelfTest.convChecks(quick: true), on: device)
      XCTAssertFalse(rows.isEmpty)
      XCTAssertTrue(rows.allSatisfy(\.passed), "\(rows.filter { !$0.passed })")
      XCTAssertEqual(
        cl.chunkedConvolutions - before, 3,
        "4×4/2 (im2col), Winograd, Winograd adding; the 1×1 needs no workspace")
    }
  }
}
