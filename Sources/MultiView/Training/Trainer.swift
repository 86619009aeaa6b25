import Datasets
import Experiments
import Foundation
import Geometry
import Support
import StableDiffusion
import Torch

/// Runs a training task (`task:` in the run config: CAA, the autoencoder, text-to-image) from its
/// config: data order, gradient accumulation, gradient clipping, the EMA, the LR schedule, registry
/// rows and checkpoints are the same for every task.
///
/// Every `checkpoint_every` steps the trained weights (and their EMA), optimiser, schedule, random
/// state and data position are saved atomically; `resume` continues from the latest checkpoint so
/// that the losses of a killed-and-resumed run equal those of an uninterrupted one. A finished run
/// writes its model folder (`<run>/model`, diffusers layout) when its task makes one.
public final class Trainer {
    public let run: Run
    public var config: RunConfig { run.config }
    public var runDirectory: URL { run.directory }
    public let device: Device
    let registry: RunRegistry
    let store: CheckpointStore

    let task: any TrainingTask
    let loader: PanoramaLoader
    /// The run's latent cache when `dataset.latent_cache` names an existing file: latents (and prompt
    /// embeddings or token ids) are read from it instead of running the VAE and the text encoder.
    let cache: LatentCache?
    let optimizer: any Optimizer
    let schedule: LRScheduler
    let ema: ExponentialMovingAverage?
    /// Draws timesteps, noise and VAE samples; its state is part of every checkpoint.
    let generator: Generator

    /// The multi-view UNet of a CAA run.
    public var model: MultiViewUNet? { (task as? CAATask)?.model }

    /// Called after every optimiser step (for tests and progress).
    public var onStep: ((TrainingState, Double) -> Void)?
    /// Stops after this many optimiser steps in this process (tests use it to stop mid-run).
    public var stopAfterSteps: Int?
    /// The processes training this run together (docs/distributed.md); nil in a single process.
    public let group: ProcessGroup?
    let shard: BatchShard
    /// Panoramas this process takes per step: its share of the config's global `batch_size`.
    let batchPerProcess: Int
    /// Rank 0 (or the only process) writes the registry, checkpoints, the model and progress.
    var isLeader: Bool { shard.rank == 0 }

    /// `group`: the data-parallel process group this process is rank `group.rank` of, with
    /// `localRank` its index on this machine (its CUDA device when it trains on CUDA).
    public init(run: Run, registry: RunRegistry, group: ProcessGroup? = nil, localRank: Int = 0) throws {
        self.run = run
        let config = run.config
        self.registry = registry
        self.group = group
        shard = group.map { BatchShard(rank: $0.rank, worldSize: $0.worldSize) } ?? .whole
        batchPerProcess = try config.batchPerProcess(worldSize: shard.worldSize, file: "run config '\(config.name)'")
        store = run.checkpoints
        if group != nil, case .cuda = try config.training.device.available() {
            device = try DeviceChoice.device(.cuda(localRank)).available()
        } else {
            device = try config.training.device.available()
        }
        Runtime.seed(UInt64(config.training.seed))
        generator = try Generator(seed: UInt64(config.training.seed), device: .cpu)

        let source = try run.dataset()
        loader = try PanoramaLoader(source: source, options: LoaderOptions(
            seed: UInt64(config.training.seed), shuffle: config.dataset.split == .train,
            yawPolicy: LatentCache.yawPolicy(for: config), skipBad: config.dataset.skipBad))
        guard loader.countPerEpoch >= config.training.batchSize else {
            throw DatasetError(file: run.datasetRoot.path,
                               "\(loader.countPerEpoch) panoramas, fewer than one batch of \(config.training.batchSize)")
        }
        let readsLatents = [.caa, .textToImage].contains(config.task)
        if let url = run.latentCache, FileManager.default.fileExists(atPath: url.path), readsLatents {
            cache = try LatentCache(url: url, run: run, panoramaCount: source.count)
        } else {
            if let url = run.latentCache, readsLatents {
                FileHandle.standardError.write(Data(("latent cache \(url.path) not found: encoding with the VAE in the loop " +
                                                     "(`backdrop cache build --config …` builds it)\n").utf8))
            }
            cache = nil
        }

        var context = TrainingContext(run: run, device: device, generator: generator, loader: loader, cache: cache)
        context.shard = shard
        context.group = group
        switch config.task {
        case .caa: task = try CAATask(context)
        case .autoencoder: task = try AutoencoderTask(context)
        case .textToImage: task = try TextToImageTask(context)
        case .clip: task = try CLIPTask(context)
        }
        let trainable = task.trained.namedParameters().filter { $0.1.requiresGrad }
        optimizer = try Self.optimizer(config.optimizer, parameters: trainable.map(\.1))
        ema = try config.training.emaDecay.map { try ExponentialMovingAverage(trainable, decay: $0) }
        let s = config.schedule
        let horizon = s.interval == .epoch ? config.training.epochs
            : max(1, Self.totalSteps(config, perEpoch: shard.count(of: loader.countPerEpoch), batch: batchPerProcess))
        switch s.kind {
        case .constant: schedule = try LRScheduler(optimizer, .constant)
        case .warmupCosine:
            schedule = try LRScheduler(optimizer, .warmupCosine(warmupSteps: s.warmupSteps, startFactor: s.warmupStartFactor,
                                                                 tMax: max(1, horizon - s.warmupSteps), etaMin: s.etaMin))
        case .cosine: schedule = try LRScheduler(optimizer, .cosine(tMax: horizon, etaMin: s.etaMin))
        }
    }

    /// The optimizer the config names, over the trainable parameters.
    static func optimizer(_ o: RunConfig.Optimizer, parameters: [Parameter]) throws -> any Optimizer {
        let groups = [ParamGroup(parameters, lr: o.lr, weightDecay: o.weightDecay)]
        switch o.name {
        case .adamw: return try AdamW(groups, betas: (o.betas[0], o.betas[1]), eps: o.eps)
        case .sgd: return try SGD(groups, momentum: o.momentum)
        }
    }

    /// Optimiser steps of the whole run (each process counts its shard of every epoch).
    public var totalSteps: Int {
        Self.totalSteps(config, perEpoch: shard.count(of: loader.countPerEpoch), batch: batchPerProcess)
    }

    /// `panoramas`: this process's share of an epoch; `batch`: its share of a step.
    static func totalSteps(_ config: RunConfig, perEpoch panoramas: Int, batch: Int) -> Int {
        let all = panoramas / (batch * config.training.gradientAccumulation) * config.training.epochs
        return min(all, config.training.maxSteps ?? all)
    }

    public struct Summary: Sendable {
        public let runID: Int64
        public let steps: Int
        public let finalLoss: Double?
        public let status: String
        /// The model folder the finished run wrote, if its task makes one.
        public let model: URL?
    }

    /// Trains from the start, or from the latest checkpoint when `resume` (and one exists).
    @discardableResult
    public func run(resume: Bool = false) throws -> Summary {
        // One process per run folder, for the whole run; the kernel drops the lock if this one dies.
        // With several processes rank 0 holds it and alone writes the folder and the registry.
        let lock = isLeader ? try FolderLock(runDirectory) : nil
        defer { withExtendedLifetime(lock) {} }
        if isLeader {
            try registry.markInterruptedRuns()
            if !resume { try refuseOccupiedFolder() }
        }
        var state = TrainingState(step: 0, epoch: 0, positionInEpoch: 0, schedulerSteps: 0)
        var runID: Int64 = 0
        if resume, let checkpoint = try store.latest() {
            // Every rank restores the same checkpoint: weights, optimiser, schedule, random state.
            state = try restore(checkpoint)
            if isLeader {
                guard let previous = try run.record ?? registry.latestRun(named: config.name) else {
                    throw TorchError("no run named \(config.name) in \(registry.url.path) to resume")
                }
                runID = previous.id
                try registry.reopenRun(runID)
                FileHandle.standardError.write(Data("resuming \(config.name) from step \(state.step) (\(checkpoint.folder.path))\n".utf8))
            }
        } else if isLeader {
            runID = try registry.startRun(name: config.name, configJSON: config.json(), outputDir: runDirectory.path)
        }
        if isLeader { try run.writeDescription() }
        if let group {
            // Every rank starts from rank 0's weights (and their average), as DDP does.
            for parameter in optimizer.paramGroups.flatMap(\.parameters) { try group.broadcast(parameter) }
            for shadow in ema?.shadow ?? [] { try group.broadcast(shadow) }
        }

        let total = totalSteps
        let progress = ProgressReporter(title: "train \(config.name)\(group.map { " (\($0.worldSize) processes)" } ?? "")",
                                        total: total, initial: state.step, silent: !isLeader)
        let batch = batchPerProcess, accumulation = config.training.gradientAccumulation
        let trainable = optimizer.paramGroups.flatMap(\.parameters)
        var stepsThisProcess = 0
        var lastLoss: Double?
        let started = Date()
        var communicationSeconds = 0.0
        defer {
            // How much of a step the all-reduce takes, for `make bench-ddp` and whoever tunes bucket_mb.
            if let group, isLeader, stepsThisProcess > 0 {
                let step = Date().timeIntervalSince(started) / Double(stepsThisProcess)
                let share = communicationSeconds / Double(stepsThisProcess)
                FileHandle.standardError.write(Data(String(format: "%d processes: %.3f s per step, all-reduce %.1f ms per step (%.1f %%)\n",
                                                           group.worldSize, step, share * 1000, 100 * share / step).utf8))
            }
        }
        do {
            epochs: while state.epoch < config.training.epochs {
                // positionInEpoch counts panoramas of the whole (global) order, so that a checkpoint
                // resumes with another world size when the global batch is kept.
                let world = shard.worldSize
                let order = shard.indices(of: loader.indices(epoch: state.epoch))
                let usable = order.count / (batch * accumulation) * (batch * accumulation)
                guard state.positionInEpoch % world == 0 else {
                    throw TorchError("the checkpoint stopped at panorama \(state.positionInEpoch) of epoch \(state.epoch + 1), " +
                                     "which \(world) processes cannot share: resume with a world size dividing it")
                }
                while state.positionInEpoch / world < usable {
                    if state.step >= total { break epochs }
                    var stepLoss = 0.0
                    for _ in 0..<accumulation {
                        let local = state.positionInEpoch / world
                        let indices = Array(order[local..<(local + batch)])
                        let loss = try task.loss(indices: indices, epoch: state.epoch) / Double(accumulation)
                        try loss.backward()
                        stepLoss += try loss.item()
                        state.positionInEpoch += batch * world
                    }
                    if let group {
                        let communicating = Date()
                        defer { communicationSeconds += Date().timeIntervalSince(communicating) }
                        try allReduceGradients(trainable, group: group)
                        let reduced = try Tensor([stepLoss])
                        try group.allReduceMean(reduced)
                        stepLoss = try reduced.item()
                    }
                    guard stepLoss.isFinite else {
                        if isLeader { try registry.finishRun(runID, status: "failed") }
                        throw TorchError("loss is \(stepLoss) at step \(state.step + 1) of \(config.name); stopped, the last good " +
                                         "checkpoint is kept in \(store.directory.path)")
                    }
                    if let maxNorm = config.training.maxGradNorm { try clipGradNorm(trainable, maxNorm: maxNorm) }
                    try optimizer.step()
                    try optimizer.zeroGrad()
                    try ema?.update()
                    state.step += 1
                    if config.schedule.interval == .step { schedule.step() }
                    state.schedulerSteps = schedule.lastEpoch
                    state.lastLoss = stepLoss
                    lastLoss = stepLoss
                    stepsThisProcess += 1
                    let rate = Double(stepsThisProcess) / max(Date().timeIntervalSince(started), 1e-9)
                    if isLeader, state.step % config.training.logEvery == 0 || state.step == total {
                        try registry.log(.init(runId: runID, step: state.step, loss: stepLoss,
                                               lr: optimizer.paramGroups[0].lr, stepsPerSecond: rate))
                    }
                    progress.update(state.step, status: String(format: "loss %.4f  lr %.2e", stepLoss, optimizer.paramGroups[0].lr))
                    onStep?(state, stepLoss)
                    if isLeader, state.step % config.training.checkpointEvery == 0 { try checkpoint(state, runID: runID) }
                    if let stop = stopAfterSteps, stepsThisProcess >= stop {
                        progress.finish()
                        if isLeader { try registry.finishRun(runID, status: "interrupted") }
                        return Summary(runID: runID, steps: state.step, finalLoss: lastLoss, status: "interrupted", model: nil)
                    }
                }
                state.epoch += 1
                state.positionInEpoch = 0
                if config.schedule.interval == .epoch { schedule.step() }
                state.schedulerSteps = schedule.lastEpoch
            }
            progress.finish()
            guard isLeader else { return Summary(runID: runID, steps: state.step, finalLoss: lastLoss, status: "finished", model: nil) }
            try checkpoint(state, runID: runID)
            try ema?.copyToParameters()
            let model = try task.writeModel(to: run.modelDirectory)
            try registry.finishRun(runID, status: "finished")
            return Summary(runID: runID, steps: state.step, finalLoss: lastLoss, status: "finished", model: model)
        } catch {
            if isLeader, (try? registry.run(runID))??.status == "running" { try? registry.finishRun(runID, status: "failed") }
            throw error
        }
    }

    /// Averages the gradients of `parameters` over the ranks, in buckets of about
    /// `distributed.bucket_mb` MiB flattened into one tensor each (fewer, larger messages, as DDP
    /// buckets them). A parameter without a gradient takes part with zeros, so every rank sends the
    /// same layout.
    func allReduceGradients(_ parameters: [Parameter], group: ProcessGroup) throws {
        let capacity = max(1, Int(config.distributed.bucketMB * 1_048_576))
        var bucket: [Parameter] = [], bytes = 0
        func flush() throws {
            guard !bucket.isEmpty else { return }
            let grads = try bucket.map { p -> Tensor in
                if let grad = p.grad { return grad }
                let zeros = try p.zerosLike()
                try p.setGrad(zeros)
                return zeros
            }
            let flat = try Tensor.cat(grads.map { try $0.reshape([-1]) })
            try group.allReduceMean(flat)
            var offset = 0
            for grad in grads {
                let count = grad.count
                try grad.copy_(from: flat.narrow(dim: 0, start: offset, length: count).reshape(grad.shape))
                offset += count
            }
            bucket = []
            bytes = 0
        }
        for parameter in parameters {
            bucket.append(parameter)
            bytes += parameter.count * parameter.dtype.byteSize
            if bytes >= capacity { try flush() }
        }
        try flush()
    }

    /// A fresh run must not write over another run's checkpoints: the folder may hold nothing of a
    /// run (a run description or checkpoints) unless `--resume` continues it.
    func refuseOccupiedFolder() throws {
        let description = runDirectory.appendingPathComponent("run.json")
        let checkpoints = (try? store.steps().count) ?? 0
        guard !FileManager.default.fileExists(atPath: description.path), checkpoints == 0 else {
            throw TorchError("\(runDirectory.path) already holds a run (\(checkpoints) checkpoint\(checkpoints == 1 ? "" : "s")); " +
                             "pass --resume to continue it, or set another output_dir (or delete the folder) to start afresh")
        }
    }

    /// Checkpoint weights: the trained module's state dict, and its EMA under `ema.`.
    func checkpoint(_ state: TrainingState, runID: Int64) throws {
        var weights = task.trained.stateDict()
        if let ema { for (name, tensor) in ema.stateDict() { weights["ema." + name] = tensor } }
        let folder = try store.save(state: state, weights: weights, optimizer: try optimizer.stateDict(),
                                    rng: ["generator": try generator.state()],
                                    metadata: ["run": config.name, "backdrop_format": task.checkpointFormat])
        try registry.recordCheckpoint(runID, step: state.step, path: folder.path)
    }

    func restore(_ checkpoint: CheckpointStore.Checkpoint) throws -> TrainingState {
        let weights: [String: Tensor]
        do { weights = try SafetensorsFile(url: checkpoint.weights).loadAll() } catch {
            throw TorchError("\(checkpoint.weights.path): \(error)")
        }
        let own = weights.filter { !$0.key.hasPrefix("ema.") }
        do { try task.trained.loadStateDict(own) } catch {
            throw TorchError("\(checkpoint.weights.path) does not fit task \(config.task.rawValue): \(error)")
        }
        if let ema {
            let average = Dictionary(uniqueKeysWithValues: weights.filter { $0.key.hasPrefix("ema.") }
                .map { (String($0.key.dropFirst(4)), $0.value) })
            try ema.load(average, steps: checkpoint.state.step)
        }
        try optimizer.load(from: checkpoint.optimizer)
        schedule.restore(lastEpoch: checkpoint.state.schedulerSteps)
        try generator.setState(SafetensorsFile(url: checkpoint.rng).tensor("generator"))
        return checkpoint.state
    }
}
