import BackdropTestSupport
import Foundation
import Parity
import Torch
import XCTest

/// `ParitySuite` and the report lines `backdrop parity` prints.
final class ParitySuiteTests: XCTestCase {
    func testSuiteFindsCasesNamesEmptyFoldersAndReportsLines() throws {
        let empty = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: empty) }
        let root = TestSupport.fixture("parity")
        let one = root.appendingPathComponent("clip_gelu")
        let suite = ParitySuite(folders: [one, empty, root])
        XCTAssertEqual(suite.foldersWithoutCases, [empty])
        XCTAssertEqual(suite.cases, [one] + Parity.cases(in: root), "a case folder is itself; a root is searched one level deep")

        var reports: [ParityReport] = []
        let passed = ParitySuite(folders: [one]).run { reports.append($0) }
        XCTAssertEqual(passed, 1)
        let report = try XCTUnwrap(reports.first)
        let lines = report.lines
        XCTAssertTrue(lines[0].hasPrefix("clip_gelu [\(report.component), atol \(report.atol), rtol \(report.rtol), "), lines[0])
        XCTAssertEqual(lines.count, 1 + report.tensors.count)
        for (line, tensor) in zip(lines.dropFirst(), report.tensors) {
            XCTAssertTrue(line.hasPrefix("  clip_gelu/\(tensor.name) "), line)
            XCTAssertTrue(line.hasSuffix("PASS"), line)
            XCTAssertTrue(line.contains("max-abs ") && line.contains("max-rel "), line)
        }
    }

    func testAFailedCaseEndsWithItsError() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data(#"{"component": "no_such_component", "model": "m", "atol": 0, "rtol": 0, "args": {}}"#.utf8)
            .write(to: folder.appendingPathComponent("case.json"))
        var reports: [ParityReport] = []
        XCTAssertEqual(ParitySuite(folders: [folder]).run { reports.append($0) }, 0)
        let last = try XCTUnwrap(reports.first?.lines.last)
        XCTAssertTrue(last.hasPrefix("  FAIL  "), last)
    }
}
