import ArgumentParser
import Foundation
import Parity
import Torch

struct ParityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parity",
        abstract: "Run reference cases and compare each output tensor with the reference implementation's.",
        discussion: """
            A case folder holds case.json {"component", "model", "atol", "rtol", "args"}, the model \
            (weights and config as the reference library saves them), inputs.safetensors and \
            expected.safetensors (format: docs/parity.md). Each output tensor passes when \
            max|out − exp| ≤ atol + rtol·max|exp|. One line per tensor: case/name, shape, max-abs \
            error, max-relative error (max-abs / max|exp|), PASS or FAIL.

            A folder without case.json is searched one level deep for case folders, so \
            `backdrop parity Tests/Fixtures/parity` runs every committed case. Write cases with \
            tools/make_parity_cases.py (random weights, any config) or your own script.

            Exit status: 0 when every tensor of every case passes, 1 otherwise.
            """
    )

    @Argument(help: ArgumentHelp("Case folders (or folders of case folders).", valueName: "CASE_DIR"))
    var caseDirectories: [String]

    @Option(help: "Intra-op threads (default: LibTorch's own choice).")
    var threads: Int?

    func validate() throws {
        if caseDirectories.isEmpty { throw ValidationError("give at least one CASE_DIR") }
    }

    func run() throws {
        if let threads { Runtime.threads = threads }
        var cases: [URL] = []
        for path in caseDirectories {
            let url = URL(fileURLWithPath: path)
            let found = Parity.cases(in: url)
            if found.isEmpty {
                print("\(path): FAIL  no case.json here or in its subfolders")
                throw ExitCode(1)
            }
            cases += found
        }
        var failures = 0
        for url in cases {
            let report = Parity.run(url)
            print(Self.lines(report).joined(separator: "\n"))
            fflush(stdout)
            if !report.passed { failures += 1 }
        }
        if cases.count > 1 { print("\(cases.count - failures)/\(cases.count) cases passed") }
        if failures > 0 { throw ExitCode(1) }
    }

    static func lines(_ report: ParityReport) -> [String] {
        func number(_ x: Double) -> String { x.isFinite ? String(format: "%.3e", x) : "\(x)" }
        var lines = ["\(report.name) [\(report.component), atol \(report.atol), rtol \(report.rtol), "
            + String(format: "%.1fs", report.seconds) + "]"]
        for t in report.tensors {
            let shape = "[" + (t.actualShape ?? t.expectedShape).map(String.init).joined(separator: ",") + "]"
            let name = "\(report.name)/\(t.name)".padding(toLength: max(36, report.name.count + t.name.count + 2), withPad: " ", startingAt: 0)
            var line = "  \(name) \(shape.padding(toLength: 18, withPad: " ", startingAt: 0)) max-abs \(number(t.maxAbs))  max-rel \(number(t.maxRel))  \(t.passed ? "PASS" : "FAIL")"
            if let message = t.message { line += "  (\(message))" }
            lines.append(line)
        }
        if let error = report.error { lines.append("  FAIL  \(error)") }
        return lines
    }
}
