import ArgumentParser
import Experiments
import Foundation
import MultiView
import Torch

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the CAA blocks of a multi-view UNet from a run config (experiments/*.yaml).",
        discussion: """
            Each run is recorded in results/runs.sqlite (config, git commit, per-step loss and learning \
            rate, checkpoints). Checkpoints go to <output_dir>/checkpoints every training.checkpoint_every \
            steps; --resume continues from the latest one with the same data order and random numbers.
            """
    )

    @Argument(help: "Run config (YAML).") var config: String
    @Flag(help: "Continue from the run's latest checkpoint.") var resume = false
    @Option(help: "Run registry (SQLite).") var registry: String = "results/runs.sqlite"
    @Option(help: "Intra-op threads.") var threads: Int?

    func run() throws {
        if let threads { Runtime.threads = threads }
        let file = URL(fileURLWithPath: config)
        let runConfig = try RunConfig.load(file)
        let trainer = try Trainer(config: runConfig, registry: try RunRegistry(url: URL(fileURLWithPath: registry)))
        let summary = try trainer.run(resume: resume)
        print("run \(summary.runID) \(summary.status) after \(summary.steps) steps; final loss " +
              (summary.finalLoss.map { String(format: "%.5f", $0) } ?? "n/a") +
              "; checkpoints in \(trainer.runDirectory.appendingPathComponent("checkpoints").path)")
    }
}
