import Datasets
import Experiments
import Foundation
import Geometry
import Support
import StableDiffusion
import Torch

/// Trains the CAA blocks of a multi-view UNet on panoramas, as MVDiffusion does: frozen SD (VAE
/// encodes under no-grad, text encoder frozen), one timestep per panorama, independent noise per
/// view, MSE between the predicted and the true noise over all views, AdamW on CAA only.
///
/// Every `checkpoint_every` steps the CAA weights, optimiser, schedule, random state and data
/// position are saved atomically; `resume` continues from the latest checkpoint so that the
/// losses of a killed-and-resumed run equal those of an uninterrupted one.
public final class Trainer {
    public let run: Run
    public var config: RunConfig { run.config }
    public var runDirectory: URL { run.directory }
    public let device: Device
    let registry: RunRegistry
    let store: CheckpointStore

    let encoders: FrozenEncoders
    var vae: AutoencoderKL { encoders.vae }
    let noise: DDPMScheduler
    public let model: MultiViewUNet
    let loader: PanoramaLoader
    /// The run's latent cache when `dataset.latent_cache` names an existing file: latents and prompt
    /// embeddings are read from it instead of running the VAE and the text encoder.
    let cache: LatentCache?
    let optimizer: any Optimizer
    let schedule: LRScheduler
    /// Draws timesteps, noise and VAE samples; its state is part of every checkpoint.
    let generator: Generator

    /// Called after every optimiser step (for tests and progress).
    public var onStep: ((TrainingState, Double) -> Void)?
    /// Stops after this many optimiser steps in this process (tests use it to stop mid-run).
    public var stopAfterSteps: Int?

    public init(run: Run, registry: RunRegistry) throws {
        self.run = run
        let config = run.config
        self.registry = registry
        store = run.checkpoints
        device = config.training.device.resolved
        Runtime.seed(UInt64(config.training.seed))
        generator = try Generator(seed: UInt64(config.training.seed), device: .cpu)

        encoders = try FrozenEncoders(run: run, device: device)
        noise = try DDPMScheduler(directory: encoders.folder.scheduler)
        let unet = try UNet2DConditionModel.load(from: encoders.folder.unet, dtype: config.model.dtype.dtype, device: device)

        let source = try run.dataset()
        loader = try PanoramaLoader(source: source, options: LoaderOptions(
            seed: UInt64(config.training.seed), shuffle: config.dataset.split == .train,
            yawPolicy: LatentCache.yawPolicy(for: config), skipBad: config.dataset.skipBad))
        guard loader.countPerEpoch >= config.training.batchSize else {
            throw DatasetError(file: run.datasetRoot.path,
                               "\(loader.countPerEpoch) panoramas, fewer than one batch of \(config.training.batchSize)")
        }
        if let url = run.latentCache, FileManager.default.fileExists(atPath: url.path) {
            cache = try LatentCache(url: url, run: run, panoramaCount: source.count)
        } else {
            if let url = run.latentCache {
                FileHandle.standardError.write(Data(("latent cache \(url.path) not found: encoding with the VAE in the loop " +
                                                     "(`backdrop cache build --config …` builds it)\n").utf8))
            }
            cache = nil
        }

        model = try run.multiViewModel(unet: unet, vaeScale: encoders.vaeScale)
        optimizer = try Self.optimizer(config.optimizer, parameters: model.trainableParameters)
        let s = config.schedule
        let horizon = s.interval == .epoch ? config.training.epochs
            : max(1, Self.totalSteps(config, perEpoch: loader.countPerEpoch))
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

    /// Optimiser steps of the whole run.
    public var totalSteps: Int { Self.totalSteps(config, perEpoch: loader.countPerEpoch) }

    static func totalSteps(_ config: RunConfig, perEpoch panoramas: Int) -> Int {
        let all = panoramas / (config.training.batchSize * config.training.gradientAccumulation) * config.training.epochs
        return min(all, config.training.maxSteps ?? all)
    }

    public struct Summary: Sendable {
        public let runID: Int64
        public let steps: Int
        public let finalLoss: Double?
        public let status: String
    }

    /// Trains from the start, or from the latest checkpoint when `resume` (and one exists).
    @discardableResult
    public func run(resume: Bool = false) throws -> Summary {
        var state = TrainingState(step: 0, epoch: 0, positionInEpoch: 0, schedulerSteps: 0)
        let runID: Int64
        if resume, let checkpoint = try store.latest() {
            state = try restore(checkpoint)
            guard let previous = try run.record ?? registry.latestRun(named: config.name) else {
                throw TorchError("no run named \(config.name) in \(registry.url.path) to resume")
            }
            runID = previous.id
            try registry.reopenRun(runID)
            FileHandle.standardError.write(Data("resuming \(config.name) from step \(state.step) (\(checkpoint.folder.path))\n".utf8))
        } else {
            runID = try registry.startRun(name: config.name, configJSON: config.json(), outputDir: runDirectory.path)
        }
        try run.writeDescription()

        let total = totalSteps
        let progress = ProgressReporter(title: "train \(config.name)", total: total)
        let batch = config.training.batchSize, accumulation = config.training.gradientAccumulation
        var stepsThisProcess = 0
        var lastLoss: Double?
        let started = Date()
        do {
            epochs: while state.epoch < config.training.epochs {
                let order = loader.indices(epoch: state.epoch)
                let usable = order.count / (batch * accumulation) * (batch * accumulation)
                while state.positionInEpoch < usable {
                    if state.step >= total { break epochs }
                    var stepLoss = 0.0
                    for _ in 0..<accumulation {
                        let indices = Array(order[state.positionInEpoch..<(state.positionInEpoch + batch)])
                        let loss: Tensor
                        if let cache {
                            let entries = try indices.map { try cache.entry(index: $0, yawOffset: loader.yawOffset(index: $0, epoch: state.epoch)) }
                            loss = try lossOf(cached: entries) / Double(accumulation)
                        } else {
                            let samples = try indices.map { try loader.sample(index: $0, epoch: state.epoch) }
                            loss = try lossOf(samples) / Double(accumulation)
                        }
                        try loss.backward()
                        stepLoss += try loss.item()
                        state.positionInEpoch += batch
                    }
                    guard stepLoss.isFinite else {
                        try registry.finishRun(runID, status: "failed")
                        throw TorchError("loss is \(stepLoss) at step \(state.step + 1) of \(config.name); stopped, the last good " +
                                         "checkpoint is kept in \(store.directory.path)")
                    }
                    try optimizer.step()
                    try optimizer.zeroGrad()
                    state.step += 1
                    if config.schedule.interval == .step { schedule.step() }
                    state.schedulerSteps = schedule.lastEpoch
                    state.lastLoss = stepLoss
                    lastLoss = stepLoss
                    stepsThisProcess += 1
                    let rate = Double(stepsThisProcess) / max(Date().timeIntervalSince(started), 1e-9)
                    if state.step % config.training.logEvery == 0 || state.step == total {
                        try registry.log(.init(runId: runID, step: state.step, loss: stepLoss,
                                               lr: optimizer.paramGroups[0].lr, stepsPerSecond: rate))
                    }
                    progress.update(state.step, status: String(format: "loss %.4f  lr %.2e", stepLoss, optimizer.paramGroups[0].lr))
                    onStep?(state, stepLoss)
                    if state.step % config.training.checkpointEvery == 0 { try checkpoint(state, runID: runID) }
                    if let stop = stopAfterSteps, stepsThisProcess >= stop {
                        progress.finish()
                        try registry.finishRun(runID, status: "interrupted")
                        return Summary(runID: runID, steps: state.step, finalLoss: lastLoss, status: "interrupted")
                    }
                }
                state.epoch += 1
                state.positionInEpoch = 0
                if config.schedule.interval == .epoch { schedule.step() }
                state.schedulerSteps = schedule.lastEpoch
            }
            try checkpoint(state, runID: runID)
            progress.finish()
            try registry.finishRun(runID, status: "finished")
            return Summary(runID: runID, steps: state.step, finalLoss: lastLoss, status: "finished")
        } catch {
            if (try? registry.run(runID))??.status == "running" { try? registry.finishRun(runID, status: "failed") }
            throw error
        }
    }

    /// MSE between the predicted and the true noise for a batch of panoramas.
    func lossOf(_ samples: [MultiViewSample]) throws -> Tensor {
        let (images, layouts, prompts) = try MultiViewSample.collate(samples)
        let flat = try images.flatten(start: 0, end: 1).to(dtype: vae.encoder.conv_in.weight.dtype, device: device)
        let (latents, context) = try withNoGrad {
            let latents = try vae.encode(flat).sample(generator: generator) * vae.scalingFactor
            let context = try encoders.textEncoder(encoders.tokenizer(prompts.flatMap { $0 }).to(device: device))
            return (latents, context)
        }
        return try lossOf(latents: latents, context: context, layouts: layouts)
    }

    /// The same loss from cached VAE posteriors and prompt embeddings: one draw of the generator for
    /// the latents of the whole batch, as `vae.encode(…).sample(generator:)` makes.
    func lossOf(cached entries: [LatentCache.Entry]) throws -> Tensor {
        let dtype = vae.encoder.conv_in.weight.dtype
        let moments = try Tensor.cat([Tensor.cat(entries.map(\.mean)), Tensor.cat(entries.map(\.logvar))], dim: 1)
            .to(dtype: dtype, device: device)
        let latents = try withNoGrad { try DiagonalGaussianDistribution(moments: moments).sample(generator: generator) * vae.scalingFactor }
        let context = try Tensor.cat(entries.map(\.textEmbeddings)).to(dtype: dtype, device: device)
        return try lossOf(latents: latents, context: context, layouts: entries.map(\.layout))
    }

    /// MSE between the predicted and the true noise given latents `[B·V, C, h, w]` (scaled), prompt
    /// embeddings `[B·V, T, D]` and each panorama's cameras.
    func lossOf(latents: Tensor, context: Tensor, layouts: [ViewLayout]) throws -> Tensor {
        let layout = layouts[0]
        // The model attends with one layout per batch: the panoramas may differ by a yaw offset only.
        let canonical = layout.canonical(precision: 1e-6)
        guard layouts.allSatisfy({ $0.canonical(precision: 1e-6) == canonical }) else {
            throw TorchError("a batch of \(config.name) mixes view layouts that differ by more than a yaw offset")
        }
        let (b, v) = (layouts.count, layout.count)
        let timesteps = try Tensor.randint(0, noise.schedule.trainTimesteps, [b], generator: generator)
        let perView = try timesteps.repeatInterleaveViews(v)
        let eps = try Tensor.randn(latents.shape, dtype: .float32, generator: generator).to(dtype: latents.dtype, device: device)
        let noisy = try noise.addNoise(latents, noise: eps, timesteps: perView)
        let predict = { try self.model(noisy, timestep: perView.to(device: self.device), encoderHiddenStates: context, layout: layout) }
        let prediction = config.training.precision == .bf16 ? try withAutocast(.bfloat16, device: device, predict) : try predict()
        let target = try noise.target(sample: latents, noise: eps, timesteps: perView)
        // Reduced in float64: a float32 mean can differ in its last bit between processes (the
        // vectorised sum's split depends on buffer alignment), and logged losses must repeat.
        return try F.mseLoss(prediction.to(dtype: .float64), target.to(dtype: .float64))
    }

    func checkpoint(_ state: TrainingState, runID: Int64) throws {
        let folder = try store.save(state: state, weights: model.caaStateDict(), optimizer: try optimizer.stateDict(),
                                    rng: ["generator": try generator.state()],
                                    metadata: ["run": config.name, "backdrop_format": "caa-v1"])
        try registry.recordCheckpoint(runID, step: state.step, path: folder.path)
    }

    func restore(_ checkpoint: CheckpointStore.Checkpoint) throws -> TrainingState {
        try model.loadCAA(contentsOf: checkpoint.weights)
        try optimizer.load(from: checkpoint.optimizer)
        schedule.restore(lastEpoch: checkpoint.state.schedulerSteps)
        try generator.setState(SafetensorsFile(url: checkpoint.rng).tensor("generator"))
        return checkpoint.state
    }
}
