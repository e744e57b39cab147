import XCTest

@testable import GPUGenNN

final class ModuleLinkTests: XCTestCase {
  func testModuleLinks() throws { XCTAssertEqual(try Tensor([1], shape: [1]).toArray(), [1]) }
}
