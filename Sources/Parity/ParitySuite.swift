import Foundation
import Torch

/// The cases of several folders, as `backdrop parity` takes them: each folder is a case (it holds
/// case.json) or a folder of case folders (searched one level deep).
public struct ParitySuite {
    /// Every case found, folder by folder.
    public let cases: [URL]
    /// The given folders that hold no case.
    public let foldersWithoutCases: [URL]

    public init(folders: [URL]) {
        var cases: [URL] = [], empty: [URL] = []
        for folder in folders {
            let found = Parity.cases(in: folder)
            if found.isEmpty { empty.append(folder) }
            cases += found
        }
        (self.cases, foldersWithoutCases) = (cases, empty)
    }

    /// Runs the cases in order, handing each report to `report` as it finishes; returns how many
    /// cases passed.
    public func run(_ report: (ParityReport) -> Void) -> Int {
        var passed = 0
        for url in cases {
            let result = Parity.run(url)
            report(result)
            if result.passed { passed += 1 }
        }
        return passed
    }
}

extension ParityReport {
    /// The report as text: a line for the case (component, tolerances, time), then one per tensor
    /// (case/name, shape, max-abs and max-relative error, PASS or FAIL, the reason of a failure
    /// that did not get as far as comparing), then the case's error if any.
    public var lines: [String] {
        func number(_ x: Double) -> String { x.isFinite ? String(format: "%.3e", x) : "\(x)" }
        var lines = ["\(name) [\(component), atol \(atol), rtol \(rtol), " + String(format: "%.1fs", seconds) + "]"]
        for t in tensors {
            let shape = "[" + (t.actualShape ?? t.expectedShape).map(String.init).joined(separator: ",") + "]"
            let label = "\(name)/\(t.name)".padding(toLength: max(36, name.count + t.name.count + 2), withPad: " ", startingAt: 0)
            var line = "  \(label) \(shape.padding(toLength: 18, withPad: " ", startingAt: 0)) max-abs \(number(t.maxAbs))  "
                + "max-rel \(number(t.maxRel))  \(t.passed ? "PASS" : "FAIL")"
            if let message = t.message { line += "  (\(message))" }
            lines.append(line)
        }
        if let error { lines.append("  FAIL  \(error)") }
        return lines
    }
}
