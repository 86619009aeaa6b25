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
    var config: RunConfig { run.config }

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
        return try withNoGrad { try DiagonalGaussianDistribution(moments: moments).sample(generator: generator) * vae.scalingFactor }
    }

    /// Latents (scaled) of images `[N, 3, H, W]` in [−1, 1] through the frozen VAE.
    func latents(images: Tensor, vae: AutoencoderKL) throws -> Tensor {
        let x = try images.to(dtype: vae.encoder.conv_in.weight.dtype, device: device)
        return try withNoGrad { try vae.encode(x).sample(generator: generator) * vae.scalingFactor }
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
