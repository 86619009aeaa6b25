import ArgumentParser
import Experiments
import Foundation

struct TableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "table",
        abstract: "The paper's Table I from recorded evaluations, with the published numbers beside them.",
        discussion: """
            Columns: FID ↓, IS ↑, CS ↑, consistency (overlap PSNR ↑ and its ratio to ground truth ↑), US ↑ \
            (user score, when recorded). Rows: for each run, its newest `backdrop eval` of the model, the \
            baseline and the ground-truth views on --split, then the seed paper's and MVDiffusion's \
            published rows. Missing values print as "—" with a footnote giving the reason. Writes \
            table1.md, table1.csv and table1.tex into --out (each atomically) and prints --format.
            """
    )

    @Option(help: "Comma-separated run names (default: every run with evaluations).",
            transform: { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } })
    var runs: [String]?
    @Option(help: "md, csv or latex.") var format: ResultsTable.Format = .md
    @Option(help: "Dataset split of the evaluations.") var split: RunConfig.Split = .test
    @OptionGroup var registry: RegistryOptions
    @Option(name: [.customLong("out"), .customLong("output")], help: "Output folder.") var out: String = "results/tables"
    @Flag(help: "Leave out the published rows.") var noPublished = false

    func run() throws {
        let table = try ResultsTable.fromRegistry(registry.existing(), runNames: runs,
                                                  split: split.rawValue, includePublished: !noPublished)
        if !table.rows.contains(where: { !$0.published }) {
            FileHandle.standardError.write(Data("warning: no evaluations on the \(split.rawValue) split in \(registry.registry) (run `backdrop eval`)\n".utf8))
        }
        let files = try table.write(to: URL(fileURLWithPath: out))
        print(table.render(format), terminator: "")
        print("wrote " + files.map(\.path).joined(separator: ", "))
    }
}

extension ResultsTable.Format: ExpressibleByArgument {}
