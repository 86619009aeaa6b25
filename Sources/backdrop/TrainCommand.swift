import ArgumentParser
import Experiments
import Foundation
import MultiView
import Torch

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model from a run config (experiments/*.yaml): CAA, the autoencoder or text-to-image.",
        discussion: """
            The config's task: key chooses what is trained: caa (the CAA blocks of a multi-view UNet on a \
            frozen SD, the default), autoencoder (the VAE of model.base) or text_to_image (the UNet and text \
            encoder of model.base on the frozen VAE's latents). autoencoder and text_to_image runs write \
            <output_dir>/model, a diffusers folder that the next stage's model.base can name. Each run is recorded in results/runs.sqlite (config, git commit, per-step loss and learning \
            rate, checkpoints). Checkpoints go to <output_dir>/checkpoints every training.checkpoint_every \
            steps; --resume continues from the latest one with the same data order and random numbers.
            """
    )

    @Argument(help: "Run config (YAML).") var config: String
    @Flag(help: "Continue from the run's latest checkpoint.") var resume = false
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        threads.apply()
        let run = Run(config: try RunConfig.load(URL(fileURLWithPath: config)))
        let trainer = try Trainer(run: run, registry: try RunRegistry(url: registry.url))
        let summary = try trainer.run(resume: resume)
        print("run \(summary.runID) \(summary.status) after \(summary.steps) steps; final loss " +
              (summary.finalLoss.map { String(format: "%.5f", $0) } ?? "n/a") +
              "; checkpoints in \(trainer.runDirectory.appendingPathComponent("checkpoints").path)" +
              (summary.model.map { "; model in \($0.path)" } ?? ""))
    }
}
