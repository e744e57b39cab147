import XCTest

@testable import GPUGenModels

final class ModelsModuleLinkTests: XCTestCase {
  func testModuleLinks() throws { XCTAssertEqual(try Tensor([2], shape: [1]).toArray(), [2]) }
}
