import Foundation
import Torch

/// The paper's Table I: FID ↓, IS ↑, CS ↑, consistency (overlap PSNR ↑ and its ratio to ground
/// truth ↑) and US ↑ (user score), for this project's evaluated systems from the run registry and
/// the published rows of the seed paper and MVDiffusion (docs/metrics.md#published-numbers) beside them. A value
/// that is missing prints as "—" with a footnote giving the reason; a value with a caveat (e.g. FID
/// from too few images) carries a footnote too.
public struct ResultsTable: Equatable, Sendable {
    public enum Metric: String, CaseIterable, Sendable {
        case fid = "FID", inceptionScore = "IS", clipScore = "CS", consistencyPSNR = "PSNR", consistencyRatio = "ratio",
             userScore = "US"

        /// Column heading with the direction of "better".
        public var heading: String {
            switch self {
            case .fid: "FID ↓"
            case .inceptionScore: "IS ↑"
            case .clipScore: "CS ↑"
            case .consistencyPSNR: "PSNR (dB) ↑"
            case .consistencyRatio: "PSNR ratio ↑"
            case .userScore: "US ↑"
            }
        }
    }

    public struct Row: Equatable, Sendable {
        public var system: String
        /// Where the numbers come from: a run and checkpoint, or a paper.
        public var source: String
        public var published: Bool
        /// The registered run the row's numbers come from (nil for published rows).
        public var runId: Int64?
        public var values: [Metric: Double]
        /// The IS standard deviation over splits, when measured.
        public var inceptionScoreStd: Double?
        /// Why a value is missing, or a caveat on one that is present.
        public var notes: [Metric: String]

        public init(system: String, source: String, published: Bool, runId: Int64? = nil, values: [Metric: Double],
                    inceptionScoreStd: Double? = nil, notes: [Metric: String] = [:]) {
            (self.system, self.source, self.published, self.runId, self.values) = (system, source, published, runId, values)
            (self.inceptionScoreStd, self.notes) = (inceptionScoreStd, notes)
        }
    }

    public var rows: [Row]

    public init(rows: [Row]) { self.rows = rows }

    // MARK: From the registry

    /// Display names of the evaluated systems (`RunRegistry.Evaluation.system`).
    static let systemNames = ["model": "CAA (this project)", "baseline": "SD, independent views (this project)",
                              "ground-truth": "ground-truth views", "ground-truth-vae": "ground-truth views through the VAE"]

    /// The newest evaluation of each system of each run on `split` (runs in registry order; only
    /// `runNames` when given), then the published rows.
    public static func fromRegistry(_ registry: RunRegistry, runNames: [String]? = nil, split: String = "test",
                                    includePublished: Bool = true) throws -> ResultsTable {
        let runs = try registry.runs()
        if let runNames {
            for name in runNames where !runs.contains(where: { $0.name == name }) {
                throw TorchError("no run named '\(name)' in \(registry.url.path)")
            }
        }
        var rows: [Row] = []
        var seen = Set<String>()
        let names = runNames ?? runs.map(\.name)
        // The newest study with answers for a system gives its US (docs/web.md#rating-study).
        var userScores: [String: (study: String, result: RunRegistry.StudyResult)] = [:]
        for study in try registry.studies() {
            for result in try registry.studyResults(study) where result.answers > 0 {
                guard let runID = result.runId, let run = runs.first(where: { $0.id == runID }) else { continue }
                userScores["\(run.name)/\(result.kind)"] = (study.name, result)
            }
        }
        for name in names where seen.insert(name).inserted {
            let ids = Set(runs.filter { $0.name == name }.map(\.id))
            let evaluations = try registry.evaluations().filter { $0.runId.map(ids.contains) ?? false && $0.split == split }
            // A run on the synthetic rooms is the miniature (docs/models.md#miniature-sd): its rows say so,
            // since their numbers are not comparable with the published Matterport3D rows beside them.
            let miniature = runs.last { $0.name == name }.map { isSyntheticRooms($0.config) } ?? false
            for system in ["model", "baseline", "ground-truth", "ground-truth-vae"] {
                let rated = userScores["\(name)/\(system)"]
                var row: Row
                if let latest = evaluations.last(where: { $0.system == system }) {
                    row = Self.row(latest, run: name, miniature: miniature)
                } else if let rated {
                    row = Row(system: systemNames[system] ?? system, source: (miniature ? "miniature (synthetic rooms), " : "") + "run \(name)",
                              published: false, runId: rated.result.runId, values: [:],
                              notes: Dictionary(uniqueKeysWithValues: Metric.allCases.map { ($0, "not evaluated (`backdrop eval`)") }))
                } else {
                    continue
                }
                if let (study, result) = rated {
                    row.values[.userScore] = result.mean
                    row.notes[.userScore] = "study \(study): \(result.answers) answers from \(result.raters) rater\(result.raters == 1 ? "" : "s")"
                        + (result.halfWidth95.map { String(format: ", 95 %% CI ± %.2f", $0) } ?? "")
                }
                rows.append(row)
            }
        }
        return ResultsTable(rows: rows + (includePublished ? published : []))
    }

    static func isSyntheticRooms(_ configJSON: String) -> Bool {
        guard let config = try? JSONSerialization.jsonObject(with: Data(configJSON.utf8)) as? [String: Any],
              let dataset = config["dataset"] as? [String: Any] else { return false }
        return dataset["kind"] as? String == RunConfig.DatasetKind.synthrooms.rawValue
    }

    static func row(_ e: RunRegistry.Evaluation, run: String, miniature: Bool = false) -> Row {
        var values: [Metric: Double] = [:]
        let pairs: [(Metric, Double?)] = [(.fid, e.fid), (.inceptionScore, e.isMean), (.clipScore, e.clipScore),
                                          (.consistencyPSNR, e.consistencyPsnr), (.consistencyRatio, e.consistencyRatio),
                                          (.userScore, e.userScore)]
        for case let (metric, value?) in pairs { values[metric] = value }
        var notes = e.metricNotes
        if values[.userScore] == nil, notes[.userScore] == nil { notes[.userScore] = "no user study recorded" }
        for metric in Metric.allCases where values[metric] == nil && notes[metric] == nil {
            notes[metric] = "not recorded by this evaluation"
        }
        let checkpoint = e.checkpoint.map { " @ " + URL(fileURLWithPath: $0).lastPathComponent } ?? ""
        return Row(system: systemNames[e.system] ?? e.system,
                   source: (miniature ? "miniature (synthetic rooms), " : "") + "run \(run)\(checkpoint), \(e.split) split, \(e.count) views",
                   published: false, runId: e.runId, values: values, inceptionScoreStd: e.isStd, notes: notes)
    }

    // MARK: Published numbers

    /// docs/metrics.md#published-numbers (the seed paper's Table I; MVDiffusion's Table 1, its consistency
    /// numbers, and a re-evaluation of its released checkpoint).
    public static let published: [Row] = {
        let notReported = "not reported in that paper"
        func row(_ system: String, _ source: String, _ values: [Metric: Double], _ extra: [Metric: String] = [:]) -> Row {
            var notes = extra
            for metric in Metric.allCases where values[metric] == nil && notes[metric] == nil { notes[metric] = notReported }
            return Row(system: system, source: source, published: true, values: values, notes: notes)
        }
        let seed = "published: seed paper, Table I (Matterport3D)"
        let mvd = "published: MVDiffusion, Table 1 (Matterport3D)"
        let sdConsistency = "MVDiffusion's consistency table calls this row \"SD\""
        return [
            row("seed paper: model", seed, [.fid: 22.3, .inceptionScore: 6.57, .clipScore: 28.42, .userScore: 8]),
            row("seed paper: baseline (independent SD views)", seed,
                [.fid: 25.59, .inceptionScore: 7.09, .clipScore: 28.63, .userScore: 3]),
            row("Inpainting", mvd, [.fid: 42.13, .inceptionScore: 7.08, .clipScore: 29.05]),
            row("Text2Light", mvd, [.fid: 48.71, .inceptionScore: 5.41, .clipScore: 25.98]),
            row("SD (Pano)", mvd, [.fid: 23.02, .inceptionScore: 6.58, .clipScore: 28.63]),
            row("SD (Perspective)", mvd, [.fid: 25.59, .inceptionScore: 7.29, .clipScore: 30.25,
                                          .consistencyPSNR: 10.6, .consistencyRatio: 0.28],
                [.consistencyPSNR: sdConsistency]),
            row("MVDiffusion", mvd, [.fid: 21.44, .inceptionScore: 7.32, .clipScore: 30.04,
                                     .consistencyPSNR: 25.4, .consistencyRatio: 0.67]),
            row("ground truth", mvd, [.consistencyPSNR: 37.7, .consistencyRatio: 1.0]),
            row("MVDiffusion, released checkpoint", "published: re-evaluation with torchmetrics defaults (docs/metrics.md#published-numbers)",
                [.fid: 19.47, .inceptionScore: 7.40, .clipScore: 24.70, .consistencyPSNR: 24.25]),
        ]
    }()

    // MARK: Rendering

    public enum Format: String, CaseIterable, Sendable {
        case md, csv, latex

        public var fileExtension: String { self == .latex ? "tex" : rawValue }
    }

    public static let columns: [Metric] = Metric.allCases

    public func cell(_ row: Row, _ metric: Metric) -> String? {
        guard let value = row.values[metric] else { return nil }
        switch metric {
        case .inceptionScore:
            return row.inceptionScoreStd.map { String(format: "%.2f ± %.2f", value, $0) } ?? String(format: "%.2f", value)
        case .userScore: return value == value.rounded() ? String(format: "%g", value) : String(format: "%.2f", value)
        case .consistencyRatio: return String(format: "%.2f", value)
        default: return String(format: "%.2f", value)
        }
    }

    /// Footnote texts in order of first use (one per distinct text), and each (row, metric)'s number.
    public func footnotes() -> (texts: [String], numbers: [[Metric: Int]]) {
        var texts: [String] = []
        let numbers = rows.map { row in
            var numbers: [Metric: Int] = [:]
            for metric in Self.columns {
                guard let text = row.notes[metric] else { continue }
                if let index = texts.firstIndex(of: text) { numbers[metric] = index + 1 } else {
                    texts.append(text)
                    numbers[metric] = texts.count
                }
            }
            return numbers
        }
        return (texts, numbers)
    }

    public func render(_ format: Format) -> String {
        let (texts, numbers) = footnotes()
        switch format {
        case .md: return markdown(texts, numbers)
        case .csv: return csv()
        case .latex: return latex(texts, numbers)
        }
    }

    private func markdown(_ texts: [String], _ numbers: [[Metric: Int]]) -> String {
        func escape(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }
        var lines = ["| system | source | " + Self.columns.map(\.heading).joined(separator: " | ") + " |",
                     "|---|---|" + String(repeating: "---:|", count: Self.columns.count)]
        for (row, marks) in zip(rows, numbers) {
            let cells = Self.columns.map { metric in
                (cell(row, metric) ?? "—") + (marks[metric].map { "[\($0)]" } ?? "")
            }
            lines.append("| \(escape(row.system)) | \(escape(row.source)) | " + cells.joined(separator: " | ") + " |")
        }
        lines.append("")
        lines += texts.enumerated().map { "[\($0.offset + 1)] \(escape($0.element))  " }
        return lines.joined(separator: "\n") + "\n"
    }

    /// One line per row; a missing value is "—"; every note of a row is in its last column.
    private func csv() -> String {
        func quote(_ s: String) -> String {
            s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        var lines = [(["system", "source", "published"] + Self.columns.map(\.rawValue) + ["IS std", "notes"]).joined(separator: ",")]
        for row in rows {
            let values = Self.columns.map { metric in row.values[metric].map { String($0) } ?? "—" }
            let notes = Self.columns.compactMap { metric in
                row.notes[metric].map { $0.hasPrefix(metric.rawValue + " ") ? $0 : "\(metric.rawValue): \($0)" }
            }
            lines.append(([row.system, row.source, row.published ? "yes" : "no"] + values
                          + [row.inceptionScoreStd.map { String($0) } ?? "—", notes.joined(separator: "; ")])
                .map(quote).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private func latex(_ texts: [String], _ numbers: [[Metric: Int]]) -> String {
        func escape(_ s: String) -> String {
            var out = ""
            for c in s {
                switch c {
                case "\\": out += "\\textbackslash{}"
                case "&", "%", "$", "#", "_", "{", "}": out += "\\\(c)"
                case "~": out += "\\textasciitilde{}"
                case "^": out += "\\textasciicircum{}"
                case "±": out += "$\\pm$"
                case "—": out += "---"
                case "↓": out += "$\\downarrow$"
                case "↑": out += "$\\uparrow$"
                case "@": out += "@"
                default: out.append(c)
                }
            }
            return out
        }
        var lines = ["\\begin{tabular}{ll" + String(repeating: "r", count: Self.columns.count) + "}", "\\toprule",
                     "System & Source & " + Self.columns.map { escape($0.heading) }.joined(separator: " & ") + " \\\\",
                     "\\midrule"]
        var printedPublishedRule = false
        for (row, marks) in zip(rows, numbers) {
            if row.published, !printedPublishedRule, rows.contains(where: { !$0.published }) {
                lines.append("\\midrule")
                printedPublishedRule = true
            }
            let cells = Self.columns.map { metric in
                escape(cell(row, metric) ?? "—") + (marks[metric].map { "\\textsuperscript{\($0)}" } ?? "")
            }
            lines.append("\(escape(row.system)) & \(escape(row.source)) & " + cells.joined(separator: " & ") + " \\\\")
        }
        lines += ["\\bottomrule", "\\end{tabular}", ""]
        lines += texts.enumerated().map { "\\textsuperscript{\($0.offset + 1)} \(escape($0.element))\\\\" }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Writes `table1.md`, `table1.csv` and `table1.tex` into `folder`, each atomically; returns them.
    @discardableResult
    public func write(to folder: URL, name: String = "table1") throws -> [URL] {
        try Format.allCases.map { format in
            let url = folder.appendingPathComponent("\(name).\(format.fileExtension)")
            try writeAtomically(to: url) { try Data(render(format).utf8).write(to: $0) }
            return url
        }
    }
}

extension RunRegistry.Evaluation {
    /// `notes` as one "<metric>: <text>" line per metric (`ResultsTable.Metric` raw values), the
    /// form `metricNotes` reads back.
    public static func notes(_ notes: [ResultsTable.Metric: String]) -> String? {
        let lines = ResultsTable.Metric.allCases.compactMap { metric in
            notes[metric].map { "\(metric.rawValue): " + $0.replacingOccurrences(of: "\n", with: " ") }
        }
        return lines.isEmpty ? nil : lines.joined(separator: "\n")
    }

    /// The per-metric notes of `notes` (lines without a known metric prefix are ignored).
    public var metricNotes: [ResultsTable.Metric: String] {
        var result: [ResultsTable.Metric: String] = [:]
        for line in (notes ?? "").split(separator: "\n") {
            for metric in ResultsTable.Metric.allCases where line.hasPrefix("\(metric.rawValue): ") {
                result[metric] = String(line.dropFirst(metric.rawValue.count + 2))
            }
        }
        return result
    }
}
