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
    @Option(help: "Data-parallel workers to start on this machine (like torchrun --nproc-per-node); training.batch_size is the global batch, shared among all workers.")
    var nproc: Int = 1
    @Option(help: "Machines taking part (each runs this command with its own --node-rank).") var nnodes: Int = 1
    @Option(help: "This machine's index among --nnodes, 0 … nnodes−1.") var nodeRank: Int = 0
    @Option(help: "Address of the machine with node rank 0 (it serves the rendezvous).") var masterAddr: String = "127.0.0.1"
    @Option(help: "Rendezvous port on --master-addr (default: MASTER_PORT, else a free port when one machine, else 29500).")
    var masterPort: Int?

    func validate() throws {
        try checkRange("--nproc", nproc, in: 1...1024)
        try checkRange("--nnodes", nnodes, in: 1...100_000)
        try checkRange("--node-rank", nodeRank, in: 0...(nnodes - 1))
        if let masterPort { try checkRange("--master-port", masterPort, in: 1...65535) }
    }

    func run() throws {
        if nproc > 1 || nnodes > 1 { return try launch() }
        threads.apply()
        let run = Run(config: try RunConfig.load(URL(fileURLWithPath: config)))
        // A worker of a data-parallel launch (ours, torchrun's or srun's) joins its group first.
        var group: ProcessGroup?
        var localRank = 0
        if let environment = try DistributedEnvironment.current() {
            group = try environment.join(run.config.distributed, device: run.config.training.device)
            localRank = environment.localRank
        }
        // Rank 0 creates the registry (SQLite's switch to WAL needs it alone); the others open it after.
        if let group, group.rank != 0 { try group.barrier() }
        let runs = try RunRegistry(url: registry.url)
        if let group, group.rank == 0 { try group.barrier() }
        let trainer = try Trainer(run: run, registry: runs, group: group, localRank: localRank)
        let summary = try trainer.run(resume: resume)
        guard trainer.group?.rank ?? 0 == 0 else { return }
        print("run \(summary.runID) \(summary.status) after \(summary.steps) steps; final loss " +
              (summary.finalLoss.map { String(format: "%.5f", $0) } ?? "n/a") +
              "; checkpoints in \(trainer.runDirectory.appendingPathComponent("checkpoints").path)" +
              (summary.model.map { "; model in \($0.path)" } ?? ""))
    }

    /// Starts this machine's workers: the same command without the launch options, told their
    /// ranks through torchrun's variables.
    func launch() throws {
        // A batch the workers cannot share is the config's error: say so before starting any.
        _ = try RunConfig.load(URL(fileURLWithPath: config)).batchPerProcess(worldSize: nproc * nnodes, file: config)
        let port = try masterPort ?? ProcessInfo.processInfo.environment["MASTER_PORT"].flatMap(Int.init)
            ?? (nnodes == 1 ? ProcessGroup.freePort() : DistributedEnvironment.defaultPort)
        var arguments = ["train", config, "--registry", registry.registry]
        if resume { arguments.append("--resume") }
        if let count = threads.threads { arguments += ["--threads", "\(count)"] }
        let launcher = DistributedLauncher(processesPerNode: nproc, nodes: nnodes, nodeRank: nodeRank,
                                           masterAddress: masterAddr, masterPort: port)
        try launcher.run(executable: URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath(), arguments: arguments)
    }
}
