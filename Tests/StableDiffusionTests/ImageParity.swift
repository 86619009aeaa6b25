import BackdropTestSupport
import Foundation
import Parity
import XCTest

/// One committed image-side parity case (Tests/Fixtures/parity/NAME, made by
/// tools/parity/image.py) through `backdrop parity`'s harness, with its errors printed.
enum ImageParity {
    static func run(_ name: String, file: StaticString = #filePath, line: UInt = #line) {
        let report = Parity.run(TestSupport.fixture("parity/\(name)"))
        XCTAssertNil(report.error, "\(name): \(report.error ?? "")", file: file, line: line)
        XCTAssertFalse(report.tensors.isEmpty, "\(name): nothing compared", file: file, line: line)
        for t in report.tensors {
            print(String(format: "parity %@/%@ %@ max-abs %.3e max-rel %.3e", name, t.name, "\(t.expectedShape)",
                         t.maxAbs, t.maxRel))
            XCTAssertTrue(t.passed, "\(name)/\(t.name): max-abs \(t.maxAbs) \(t.message ?? "")", file: file, line: line)
        }
    }
}
