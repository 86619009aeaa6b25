import Datasets
import Experiments
import Foundation
import Geometry
import StableDiffusion
import Torch

/// One of the things `backdrop train` trains (`task:` in the run config). The loop around it (data
/// order, gradient accumulation, clipping, EMA, schedule, logging, checkpoints, resume) is
/// `Trainer`'s and the same for every task; a task says what is trained and what its loss is.
protocol TrainingTask: AnyObject {
    /// The trained weights as one module: its trainable parameters are optimised, its state dict is
    /// what checkpoints hold.
    var trained: Module { get }
    /// Written into every checkpoint's metadata (`backdrop_format`).
    var checkpointFormat: String { get }
    /// The loss of one micro-batch, the panoramas `indices` of `epoch`.
    func loss(indices: [Int], epoch: Int) throws -> Tensor
    /// Writes the finished run's model folder (the trained weights as they are to be used: the EMA
    /// average when one is kept, already copied into `trained`); nil when the task has none.
    func writeModel(to folder: URL) throws -> URL?
}

/// What every task draws on: the run, its device, the seeded generator (whose state every
/// checkpoint saves), the data and the run's latent cache when it has one.
struct TrainingContext {
    let run: Run
    let device: Device
    let generator: Generator
    let loader: PanoramaLoader
    let cache: LatentCache?
    /// This process's share of each batch when several train together.
    var shard = BatchShard.whole
    /// The processes training together, for a loss that needs the other ranks' batch (CLIP's).
    var group: ProcessGroup?
    var config: RunConfig { run.config }

    // MARK: Random draws
    // Every task draws its noise, timesteps and dropout through these, so that N processes with
    // batch B/N draw exactly what one process with batch B draws (docs/distributed.md#equivalence).

    /// Gaussian noise of `shape`, whose rows come `rowsPerItem` per panorama.
    func randn(_ shape: [Int], dtype: DType = .float32, rowsPerItem: Int = 1) throws -> Tensor {
        try shard.take(shape, rowsPerItem: rowsPerItem) { try Tensor.randn($0, dtype: dtype, generator: generator) }
    }

    /// Uniform [0, 1) values, one per row.
    func rand(_ count: Int, rowsPerItem: Int = 1) throws -> Tensor {
        try shard.take([count], rowsPerItem: rowsPerItem) { try Tensor.rand($0, dtype: .float64, generator: generator) }
    }

    /// Integers in low..<high, one per row.
    func randint(_ low: Int, _ high: Int, _ count: Int, rowsPerItem: Int = 1) throws -> Tensor {
        try shard.take([count], rowsPerItem: rowsPerItem) { try Tensor.randint(low, high, $0, generator: generator) }
    }

    /// A sample of a VAE posterior, as `posterior.sample(generator:)` draws it.
    func sample(_ posterior: DiagonalGaussianDistribution, rowsPerItem: Int) throws -> Tensor {
        let noise = try shard.take(posterior.mean.shape, rowsPerItem: rowsPerItem) {
            try Tensor.randn($0, dtype: posterior.mean.dtype, device: generator.device, generator: generator)
        }
        return try posterior.mean + posterior.std * noise.to(device: posterior.mean.device)
    }

    /// Views per panorama: the rows each batch item contributes to a per-view tensor.
    var views: Int { config.dataset.views }

    /// Samples of panoramas `indices` at their yaw offsets of `epoch`.
    func samples(_ indices: [Int], epoch: Int) throws -> [MultiViewSample] {
        try indices.map { try loader.sample(index: $0, epoch: epoch) }
    }

    /// Cache entries of panoramas `indices` at their yaw offsets of `epoch`.
    func entries(_ cache: LatentCache, _ indices: [Int], epoch: Int) throws -> [LatentCache.Entry] {
        try indices.map { try cache.entry(index: $0, yawOffset: loader.yawOffset(index: $0, epoch: epoch)) }
    }

    /// Latents (scaled) drawn once for the whole batch from cached posteriors, as
    /// `vae.encode(…).sample(generator:)` draws them.
    func latents(cached entries: [LatentCache.Entry], vae: AutoencoderKL) throws -> Tensor {
        let dtype = vae.encoder.conv_in.weight.dtype
        let moments = try Tensor.cat([Tensor.cat(entries.map(\.mean)), Tensor.cat(entries.map(\.logvar))], dim: 1)
            .to(dtype: dtype, device: device)
        return try withNoGrad { try sample(DiagonalGaussianDistribution(moments: moments), rowsPerItem: views) * vae.scalingFactor }
    }

    /// Latents (scaled) of images `[N, 3, H, W]` in [−1, 1] through the frozen VAE.
    func latents(images: Tensor, vae: AutoencoderKL) throws -> Tensor {
        let x = try images.to(dtype: vae.encoder.conv_in.weight.dtype, device: device)
        return try withNoGrad { try sample(vae.encode(x), rowsPerItem: views) * vae.scalingFactor }
    }

    /// Runs `body` under bfloat16 autocast when the config asks for it.
    func autocast<T>(_ body: () throws -> T) throws -> T {
        config.training.precision == .bf16 ? try withAutocast(.bfloat16, device: device, body) : try body()
    }
}

/// SD's noise-prediction loss, reduced in float64: a float32 mean can differ in its last bit
/// between processes (the vectorised sum's split depends on buffer alignment), and logged losses
/// must repeat exactly on resume.
func noiseLoss(_ prediction: Tensor, _ target: Tensor) throws -> Tensor {
    try F.mseLoss(prediction.to(dtype: .float64), target.to(dtype: .float64))
}

/// The per-sample mean squared error times `weights` `[B]` (float64), averaged over the batch.
func weightedNoiseLoss(_ prediction: Tensor, _ target: Tensor, weights: Tensor) throws -> Tensor {
    let error = try (prediction.to(dtype: .float64) - target.to(dtype: .float64)).square()
    let perSample = try error.flatten(start: 1, end: -1).mean(dim: 1)
    return try (perSample * weights.to(dtype: .float64)).mean()
}

/// Which items of each global batch this process holds: with `worldSize` processes, rank r holds
/// items r, r + N, r + 2N, … (the strided shard `DistributedSampler` deals), so the union of the
/// ranks' batches is exactly one process's batch of N times the size.
struct BatchShard: Sendable, Equatable {
    let rank: Int
    let worldSize: Int
    static let whole = BatchShard(rank: 0, worldSize: 1)

    /// `draw` run for the whole global batch (so every rank's generator advances alike), and this
    /// rank's rows of it: `localShape` has `rowsPerItem` rows per item.
    func take(_ localShape: [Int], rowsPerItem: Int, _ draw: ([Int]) throws -> Tensor) throws -> Tensor {
        guard worldSize > 1 else { return try draw(localShape) }
        guard let rows = localShape.first, rowsPerItem > 0, rows % rowsPerItem == 0 else {
            throw TorchError("batch shard: \(localShape) does not hold whole items of \(rowsPerItem) rows")
        }
        let rest = Array(localShape.dropFirst())
        let global = try draw([rows * worldSize] + rest)
        return try global.reshape([rows / rowsPerItem, worldSize, rowsPerItem] + rest).select(dim: 1, index: rank)
            .reshape(localShape).contiguous()
    }

    /// How many of an epoch's `count` panoramas this rank trains on (after padding).
    func count(of count: Int) -> Int { (count + worldSize - 1) / worldSize }

    /// This rank's panoramas of an epoch's order: padded to a multiple of the world size with its
    /// first entries, as `DistributedSampler` pads, then every `worldSize`-th from `rank`.
    func indices(of order: [Int]) -> [Int] {
        guard worldSize > 1, !order.isEmpty else { return order }
        let padded = order + Array(order.prefix((worldSize - order.count % worldSize) % worldSize))
        return stride(from: rank, to: padded.count, by: worldSize).map { padded[$0] }
    }
}
