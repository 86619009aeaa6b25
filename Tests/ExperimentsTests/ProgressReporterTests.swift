import Support
import XCTest

final class ProgressReporterTests: XCTestCase {
    /// A resumed run's earlier steps count as done but not in the rate: the ETA of what is left comes
    /// from this process's own pace.
    func testResumedWorkCountsAsDoneButNotInTheRate() throws {
        let progress = ProgressReporter(title: "train", total: 100, initial: 90, isTerminal: false)
        XCTAssertTrue(progress.line().contains("90/100"), progress.line())
        Thread.sleep(forTimeInterval: 0.2)
        progress.update(91)
        let line = progress.line()
        XCTAssertTrue(line.contains("91/100"), line)
        // One step in at least 0.2 s is at most 5 per second; counting the resumed ones would give ≈ 450.
        let rate = try XCTUnwrap(line.split(separator: " ").first { $0.hasSuffix("/s") }.flatMap { Double($0.dropLast(2)) }, line)
        XCTAssertGreaterThan(rate, 0)
        XCTAssertLessThanOrEqual(rate, 5.01, line)
    }
}
