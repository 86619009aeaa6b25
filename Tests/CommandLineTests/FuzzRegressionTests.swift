import BackdropTestSupport
import Foundation
import XCTest

/// Every hostile input kept under Tests/Fixtures/fuzz/<harness>/ (hand-made, or a crasher `make
/// fuzz` found) goes through its parser again: refused or read, never a crash (docs/security.md#fuzzing).
final class FuzzRegressionTests: XCTestCase {
    func testKeptHostileInputsNeverCrashTheirParsers() throws {
        let backdrop = try TestSupport.backdropExecutable()
        let fuzz = backdrop.deletingLastPathComponent().appendingPathComponent("backdrop-fuzz")
        guard FileManager.default.isExecutableFile(atPath: fuzz.path) else { throw XCTSkip("backdrop-fuzz is not built") }
        let root = TestSupport.fixture("fuzz")
        let harnesses = try FileManager.default.contentsOfDirectory(atPath: root.path).sorted()
        XCTAssertGreaterThanOrEqual(harnesses.count, 2)
        for harness in harnesses {
            let folder = root.appendingPathComponent(harness)
            let inputs = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted().map { folder.appendingPathComponent($0).path }
            let process = Process()
            process.executableURL = fuzz
            process.arguments = [harness] + inputs
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationReason, .exit, "\(harness): \(output)")
            XCTAssertEqual(process.terminationStatus, 0, "\(harness): \(output)")
            XCTAssertTrue(output.contains("\(inputs.count) inputs replayed"), output)
        }
    }
}
