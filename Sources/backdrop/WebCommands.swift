import ArgumentParser
import Experiments
import Foundation
import Torch
import WebView
import Workflows

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "A web view of the runs: curves, panoramas in a 360° viewer, Table I, and rating studies.",
        discussion: """
            Reads the run registry and the run folders beside it (docs/web.md). Bound to 127.0.0.1 unless \
            --host says otherwise; files are served only from inside the results folder. Raters of a study \
            open /study/NAME/.
            """
    )

    @OptionGroup var registry: RegistryOptions
    @Option(help: "Address to listen on (0.0.0.0 exposes the server to the network).") var host: String = "127.0.0.1"
    @Option(help: "Port.") var port: Int = 8080

    func validate() throws { try checkRange("--port", port, in: 1...65535) }

    func run() throws {
        let site = ResultsSite(registry: try registry.existing())
        let (host, port) = (self.host, self.port)
        print("serving \(site.root.path) on http://\(host):\(port)/ (Ctrl-C stops)")
        // The command line is synchronous; the server runs in a task until SIGINT/SIGTERM stops it.
        let finished = DispatchSemaphore(value: 0)
        let outcome = LockedResult()
        Task {
            do { try await WebServer.application(site: site, host: host, port: port).runService() } catch { outcome.set(error) }
            finished.signal()
        }
        finished.wait()
        if let error = outcome.error { throw error }
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "The web view as static files (runs, panoramas with the 360° viewer, Table I) that open without a server."
    )

    @OptionGroup var registry: RegistryOptions
    @Option(name: [.customLong("out"), .customLong("output")], help: "Output folder (replaced whole).") var out: String

    func run() throws {
        let destination = URL(fileURLWithPath: out).standardizedFileURL
        let site = ResultsSite(registry: try registry.existing())
        guard destination.path != site.root.path, !site.root.path.hasPrefix(destination.path + "/") else {
            throw ValidationError("--out \(out) would replace the results folder")
        }
        let summary = try StaticReport(site: site).write(to: destination)
        print("wrote \(summary.pages) pages and \(summary.files) files to \(destination.path); open \(destination.path)/index.html")
    }
}

struct StudyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "study",
        abstract: "Blind rating studies: the paper's user score (US), 1–10 photorealism per panorama.",
        subcommands: [Create.self, Results.self]
    )

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate (or reuse) each system's panoramas for the prompts and open a study.",
            discussion: """
                --systems lists runs by name, comma-separated; "RUN --baseline" (or a lone --baseline, meaning \
                the first run's) adds that run's base model without CAA, the paper's baseline. Prompt i is \
                sampled with --seed + i for every system. Raters then use `backdrop serve` (docs/web.md).
                """
        )

        @Argument(help: "Study name (letters, digits, '-', '_', '.').") var name: String
        @Option(help: "Systems, comma-separated: RUN, RUN --baseline, or --baseline.") var systems: String
        @Option(help: "A text file with one prompt per line.") var prompts: String
        @Option(help: "Panoramas each rater is shown (default: all).") var perRater: Int?
        @Option(help: "DDIM steps.") var steps: Int = 50
        @Option(help: "Classifier-free guidance scale.") var guidance: Double = 9
        @Option(help: "Seed of prompt 0's noise.") var seed: UInt64 = 0
        @OptionGroup var registry: RegistryOptions
        @OptionGroup var device: DeviceOptions
        @OptionGroup var threads: ThreadOptions

        func validate() throws {
            try RunRegistry.validateStudyName(name)
            if let perRater { try checkRange("--per-rater", perRater, in: 1...100_000) }
            try checkRange("--steps", steps, in: 1...1000)
            try checkRange("--guidance", guidance, in: guidanceRange)
        }

        func run() throws {
            threads.apply()
            let runs = try registry.existing()
            let lines = try String(contentsOfFile: prompts, encoding: .utf8).split(separator: "\n")
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !lines.isEmpty else { throw ValidationError("\(prompts): no prompts") }
            var parsed: [StudyPanoramas.System] = []
            var firstRun: String?
            for item in systems.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
                let baseline = item.hasSuffix("--baseline")
                var runName = baseline ? String(item.dropLast("--baseline".count)).trimmingCharacters(in: .whitespaces) : item
                if runName.isEmpty {
                    guard let firstRun else { throw ValidationError("--systems: a lone --baseline needs a run before it") }
                    runName = firstRun
                }
                firstRun = firstRun ?? runName
                let run = try registry.run(runName)
                let label = baseline ? "\(runName) --baseline" : runName
                guard !parsed.contains(where: { $0.label == label }) else { throw ValidationError("--systems names \(label) twice") }
                parsed.append(.init(label: label, run: run, baseline: baseline))
            }
            guard parsed.count >= 1 else { throw ValidationError("--systems names no system") }
            guard try runs.study(named: name) == nil else { throw ValidationError("a study named \(name) exists") }
            var maker = StudyPanoramas()
            (maker.steps, maker.guidance, maker.seed) = (steps, guidance, seed)
            maker.device = try device.resolved(default: parsed[0].run.config.training.device)
            let made = try maker.make(systems: parsed, prompts: lines, registry: runs)
            try runs.createStudy(name: name, perRater: perRater, panoramas: made.panoramas)
            print("study \(name): \(made.panoramas.count) panoramas (\(made.generated) generated, \(made.reused) reused) of " +
                  "\(parsed.count) systems; raters open /study/\(name)/ of `backdrop serve`")
        }
    }

    struct Results: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Each system's mean US with its 95 % confidence interval.")

        @Argument(help: "Study name.") var name: String
        @OptionGroup var registry: RegistryOptions

        func run() throws {
            let runs = try registry.existing()
            guard let study = try runs.study(named: name) else { throw ValidationError("no study named \(name) in \(registry.registry)") }
            let results = try runs.studyResults(study)
            print("| system | mean US | 95 % CI | answers | raters |")
            print("|---|---:|---:|---:|---:|")
            for r in results {
                let mean = r.answers == 0 ? "—" : String(format: "%.2f", r.mean)
                let interval = r.halfWidth95.map { String(format: "%.2f … %.2f", r.mean - $0, r.mean + $0) } ?? "—"
                print("| \(r.system) | \(mean) | \(interval) | \(r.answers) | \(r.raters) |")
            }
        }
    }
}

/// The error a background task ended with, handed to the waiting thread.
final class LockedResult: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Error?
    func set(_ error: Error) { lock.withLock { stored = error } }
    var error: Error? { lock.withLock { stored } }
}
