import BackdropTestSupport
import Foundation
import XCTest

@testable import Experiments

/// Table I from registry rows: the newest evaluation per system, published rows beside them, and
/// "—" with a footnote for every missing value, in Markdown, CSV and LaTeX.
final class ResultsTableTests: XCTestCase {
    func makeRegistry() throws -> (RunRegistry, URL) {
        let folder = try TestSupport.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        return (try RunRegistry(url: folder.appendingPathComponent("runs.sqlite")), folder)
    }

    func record(_ registry: RunRegistry, run: Int64, system: String, fid: Double?, psnr: Double, ratio: Double,
                notes: [ResultsTable.Metric: String]) throws {
        try registry.record(.init(runId: run, system: system, checkpoint: "/runs/x/checkpoints/step-00000004", split: "test",
                                  count: 16, fid: fid, clipScore: nil, consistencyPsnr: psnr, consistencyRatio: ratio,
                                  notes: RunRegistry.Evaluation.notes(notes)))
    }

    /// A minimal CSV reader (quoted fields with doubled quotes), to check the file parses back.
    func parseCSV(_ text: String) -> [[String]] {
        text.split(separator: "\n").map { line in
            var fields: [String] = [], field = "", quoted = false
            var chars = Array(line)[...]
            while let c = chars.popFirst() {
                if quoted {
                    if c == "\"" { if chars.first == "\"" { field.append("\""); chars.removeFirst() } else { quoted = false } } else { field.append(c) }
                } else if c == "\"" { quoted = true } else if c == "," { fields.append(field); field = "" } else { field.append(c) }
            }
            return fields + [field]
        }
    }

    func testTableFromRegistryInAllFormats() throws {
        let (registry, folder) = try makeRegistry()
        let run = try registry.startRun(name: "smoke_a", configJSON: "{}", outputDir: "/runs/x")
        let other = try registry.startRun(name: "other", configJSON: "{}", outputDir: "/runs/y")
        let noIS = "IS unavailable: the Inception weights (fid_inception_nvidia.pt) have no 1008-way classifier"
        let noCLIP = "CLIP model not configured (set evaluation.clip_model in the run config or pass --clip)"
        try record(registry, run: run, system: "model", fid: 999, psnr: 1, ratio: 0.1, notes: [:])
        try record(registry, run: run, system: "model", fid: 123.456789, psnr: 21.5, ratio: 0.625,
                   notes: [.inceptionScore: noIS, .clipScore: noCLIP])
        try record(registry, run: run, system: "baseline", fid: 150.25, psnr: 12.0, ratio: 0.349,
                   notes: [.inceptionScore: noIS, .clipScore: noCLIP])
        try record(registry, run: run, system: "ground-truth", fid: nil, psnr: 34.4, ratio: 1, notes: [.fid: "reference set"])
        try record(registry, run: other, system: "model", fid: 1, psnr: 1, ratio: 1, notes: [:])

        let table = try ResultsTable.fromRegistry(registry, runNames: ["smoke_a"])
        XCTAssertEqual(table.rows.filter { !$0.published }.map(\.system).count, 3, "model, baseline, ground truth of smoke_a only")
        XCTAssertEqual(table.rows.count, 3 + ResultsTable.published.count)
        let model = table.rows[0]
        XCTAssertEqual(model.values[.fid], 123.456789, "the newest model evaluation is used")
        XCTAssertEqual(model.notes[.userScore], "no user study recorded")

        let md = table.render(.md)
        let lines = md.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines[0].contains("FID ↓") && lines[0].contains("IS ↑") && lines[0].contains("US ↑"), lines[0])
        let modelLine = try XCTUnwrap(lines.first { $0.hasPrefix("| CAA (this project)") })
        XCTAssertTrue(modelLine.contains("| 123.46 |"), modelLine)
        // IS is missing: "—[n]" where footnote n gives the reason.
        let isCell = modelLine.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }[3]
        XCTAssertTrue(isCell.hasPrefix("—["), isCell)
        let number = isCell.dropFirst(2).dropLast()
        XCTAssertTrue(lines.contains("[\(number)] \(noIS)  "), "footnote \(number) should give the IS reason")
        let seedLine = try XCTUnwrap(lines.first { $0.hasPrefix("| seed paper: model") })
        XCTAssertTrue(seedLine.contains("| 22.30 |") && seedLine.contains("| 6.57 |") && seedLine.contains("| 28.42 |") && seedLine.contains("| 8 |"),
                      seedLine)
        XCTAssertEqual(lines.filter { $0.hasPrefix("[") && $0.contains(noIS) }.count, 1, "a shared reason is one footnote")
        XCTAssertFalse(lines.contains { $0.contains("| — |") || $0.hasSuffix("| — |") }, "every missing value has a footnote")

        let csv = parseCSV(table.render(.csv))
        XCTAssertEqual(Set(csv.map(\.count)).count, 1, "every CSV line has the same number of fields")
        let header = csv[0]
        let row = try XCTUnwrap(csv.first { $0[0] == "CAA (this project)" })
        func field(_ name: String) throws -> String { row[try XCTUnwrap(header.firstIndex(of: name))] }
        XCTAssertEqual(Double(try field("FID")), 123.456789, "CSV keeps full precision")
        XCTAssertEqual(try field("IS"), "—")
        XCTAssertTrue(try field("notes").contains("CS: \(noCLIP)"))
        XCTAssertEqual(Double(try field("ratio")), 0.625)

        let latex = table.render(.latex)
        XCTAssertTrue(latex.contains("\\begin{tabular}") && latex.contains("FID $\\downarrow$"), latex)
        XCTAssertTrue(latex.contains("run smoke\\_a"), "underscores are escaped")
        XCTAssertTrue(latex.contains("---\\textsuperscript{"), "missing values carry a footnote mark")

        let files = try table.write(to: folder.appendingPathComponent("tables"))
        XCTAssertEqual(files.map(\.lastPathComponent), ["table1.md", "table1.csv", "table1.tex"])
        XCTAssertEqual(try String(contentsOf: files[0], encoding: .utf8), md)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("tables").path)
        XCTAssertEqual(leftovers.sorted(), ["table1.csv", "table1.md", "table1.tex"], "no temporary files are left")
    }

    func testUnknownRunNamesTheRegistry() throws {
        let (registry, _) = try makeRegistry()
        XCTAssertThrowsError(try ResultsTable.fromRegistry(registry, runNames: ["missing"])) {
            XCTAssertTrue("\($0)".contains("missing") && "\($0)".contains("runs.sqlite"), "\($0)")
        }
    }

    func testNotesRoundTrip() {
        let notes: [ResultsTable.Metric: String] = [.inceptionScore: "no classifier", .fid: "from 16 views\nsecond line"]
        let evaluation = RunRegistry.Evaluation(runId: nil, system: "model", checkpoint: nil, split: "test", count: 1,
                                                notes: RunRegistry.Evaluation.notes(notes))
        XCTAssertEqual(evaluation.metricNotes, [.inceptionScore: "no classifier", .fid: "from 16 views second line"])
        XCTAssertNil(RunRegistry.Evaluation.notes([:]))
    }

    /// Every published row carries the numbers of docs/metrics.md#published-numbers, and each metric it does not report
    /// is explained.
    func testPublishedRowsExplainEveryMissingValue() {
        for row in ResultsTable.published {
            XCTAssertTrue(row.published)
            for metric in ResultsTable.Metric.allCases where row.values[metric] == nil {
                XCTAssertNotNil(row.notes[metric], "\(row.system): \(metric) needs a reason")
            }
        }
        let mvdiffusion = ResultsTable.published.first { $0.system == "MVDiffusion" }
        XCTAssertEqual(mvdiffusion?.values[.consistencyPSNR], 25.4)
        XCTAssertEqual(mvdiffusion?.values[.fid], 21.44)
    }
}
