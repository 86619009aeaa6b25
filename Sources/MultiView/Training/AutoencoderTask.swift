import Datasets
import Experiments
import Foundation
import StableDiffusion
import Torch

/// SD's first stage on the run's views: the VAE of `model.base` encodes each view, a latent is drawn
/// from the posterior and decoded, and the loss is LDM's — the L1 reconstruction error summed over
/// each image's pixels plus `kl_weight` times the posterior's KL divergence from N(0, I) summed
/// over each image's latents, both averaged over the images (docs/models.md#miniature-sd).
/// With `autoencoder.trainable: decoder` only the decoder side trains, on latents of the frozen
/// encoder, and the KL term (constant then) is left out (docs/models.md#decoder-fine-tuning).
final class AutoencoderTask: TrainingTask {
    let context: TrainingContext
    let folder: ModelFolder
    let vae: AutoencoderKL
    let trained: Module
    let checkpointFormat: String
    var settings: RunConfig.Autoencoder { context.config.autoencoder }

    init(_ context: TrainingContext) throws {
        self.context = context
        folder = try ModelFolder(url: context.run.baseModel)
        vae = try AutoencoderKL.load(from: folder.vae, dtype: context.config.model.dtype.dtype, device: context.device)
        vae.train()
        switch context.config.autoencoder.trainable {
        case .all:
            trained = vae
            checkpointFormat = "autoencoder-v1"
        case .decoder:
            // Keys as in the VAE's own state dict, so checkpoints read like a VAE's.
            trained = ModuleDict([("post_quant_conv", vae.post_quant_conv), ("decoder", vae.decoder)])
            checkpointFormat = "autoencoder-decoder-v1"
        }
    }

    func loss(indices: [Int], epoch: Int) throws -> Tensor {
        let (images, _, _) = try MultiViewSample.collate(context.samples(indices, epoch: epoch))
        let x = try images.flatten(start: 0, end: 1).to(dtype: vae.encoder.conv_in.weight.dtype, device: context.device)
        return try context.autocast { try loss(images: x).total }
    }

    /// The loss of images `[N, 3, H, W]` in [−1, 1], with its two terms (per image).
    func loss(images x: Tensor) throws -> (total: Tensor, reconstruction: Tensor, kl: Tensor) {
        let n = Double(try x.size(0))
        let decoderOnly = settings.trainable == .decoder
        let posterior = decoderOnly ? try withNoGrad { try vae.encode(x) } : try vae.encode(x)
        let latents = settings.decode == .mean ? posterior.mean : try context.sample(posterior, rowsPerItem: context.views)
        let reconstruction = try vae.decode(latents)
        let error = try x.to(dtype: .float64) - reconstruction.to(dtype: .float64)
        let perImage = try (settings.reconstruction == .l1 ? error.abs() : error * error).sum() / n
        // KL(N(μ, σ²) ‖ N(0, 1)) = ½ Σ (μ² + σ² − 1 − log σ²)
        let mean = try posterior.mean.to(dtype: .float64), logvar = try posterior.logvar.to(dtype: .float64)
        let kl = try ((mean * mean + logvar.exp() - logvar - 1.0).sum() * 0.5) / n
        if decoderOnly { return (perImage, perImage, kl) }
        return (try perImage + kl * settings.klWeight, perImage, kl)
    }

    /// Writes the VAE with its `scaling_factor` set to 1 / σ of its latents on the training views, as
    /// LDM measured SD's 0.18215, so that the UNet's inputs have unit variance.
    /// A decoder-only run keeps its base's scaling factor: its latents are the base's.
    func writeModel(to destination: URL) throws -> URL? {
        if settings.trainable == .decoder {
            try folder.write(to: destination, replacingWeights: ["vae": vae.stateDict()])
            return destination
        }
        let scale = 1 / (try latentStandardDeviation())
        try folder.write(to: destination, replacingWeights: ["vae": vae.stateDict()], config: ["vae": ["scaling_factor": scale]])
        return destination
    }

    /// σ of posterior samples over the views of up to `panoramas` training panoramas (yaw offsets of
    /// epoch 0).
    func latentStandardDeviation(panoramas: Int = 32) throws -> Double {
        vae.eval()
        defer { vae.train() }
        let indices = Array(context.loader.indices(epoch: 0).prefix(panoramas))
        let latents = try withNoGrad {
            try stride(from: 0, to: indices.count, by: 4).map { start in
                let chunk = Array(indices[start..<min(start + 4, indices.count)])
                let (images, _, _) = try MultiViewSample.collate(context.samples(chunk, epoch: 0))
                let x = try images.flatten(start: 0, end: 1).to(dtype: vae.encoder.conv_in.weight.dtype, device: context.device)
                return try vae.encode(x).sample(generator: context.generator).to(dtype: .float64, device: .cpu).flatten()
            }
        }
        return try Tensor.cat(latents).std().item()
    }
}
