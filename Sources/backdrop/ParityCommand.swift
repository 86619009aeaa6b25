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
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        if caseDirectories.isEmpty { throw ValidationError("give at least one CASE_DIR") }
    }

    func run() throws {
        threads.apply()
        let suite = ParitySuite(folders: caseDirectories.map { URL(fileURLWithPath: $0) })
        if let empty = suite.foldersWithoutCases.first {
            print("\(empty.relativePath): FAIL  no case.json here or in its subfolders")
            throw ExitCode(1)
        }
        let passed = suite.run { report in
            print(report.lines.joined(separator: "\n"))
            fflush(stdout)
        }
        if suite.cases.count > 1 { print("\(passed)/\(suite.cases.count) cases passed") }
        if passed < suite.cases.count { throw ExitCode(1) }
    }
}
