import BackdropTestSupport
import Foundation
import XCTest

/// Every hostile input kept under Tests/Fixtures/fuzz/<harness>/ (hand-made, or a crasher `make
/// fuzz` found) goes through its parser again: refused or read, never a crash (docs/security.md#fuzzing).
final class FuzzRegressionTests: XCTestCase {
    func testKeptHostileInputsNeverCrashTheirParsers() throws {
        let fuzz = try TestSupport.builtExecutable("backdrop-fuzz")
        let root = TestSupport.fixture("fuzz")
        let harnesses = try FileManager.default.contentsOfDirectory(atPath: root.path).sorted()
        XCTAssertGreaterThanOrEqual(harnesses.count, 2)
        for harness in harnesses {
            let folder = root.appendingPathComponent(harness)
            let inputs = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted().map { folder.appendingPathComponent($0).path }
            let (status, output) = try TestSupport.run(fuzz, [harness] + inputs)
            XCTAssertEqual(status, 0, "\(harness): \(output)")
            XCTAssertTrue(output.contains("\(inputs.count) inputs replayed"), output)
        }
    }
}
