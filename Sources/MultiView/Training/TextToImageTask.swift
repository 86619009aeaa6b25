import Datasets
import Experiments
import Foundation
import StableDiffusion
import Torch

/// SD's second stage, from scratch: the UNet and the CLIP text encoder of `model.base` learn to
/// predict the noise added to the frozen VAE's latents of single views (each view its own image with
/// its own caption and timestep), with `caption_dropout` of the captions replaced by the empty
/// prompt so that classifier-free guidance has an unconditional model to subtract.
/// Latents and token ids come from the run's latent cache when it has one, else the VAE and the
/// tokenizer run in the loop.
final class TextToImageTask: TrainingTask {
    let context: TrainingContext
    let folder: ModelFolder
    let tokenizer: CLIPTokenizer
    let textEncoder: CLIPTextModel
    let unet: UNet2DConditionModel
    let vae: AutoencoderKL
    let noise: DDPMScheduler
    let trained: Module
    let checkpointFormat = "text-to-image-v1"
    /// The token ids of the empty prompt, `[77]`.
    let emptyPrompt: [Int64]

    init(_ context: TrainingContext) throws {
        self.context = context
        let dtype = context.config.model.dtype.dtype
        folder = try ModelFolder(url: context.run.baseModel)
        tokenizer = try CLIPTokenizer(directory: folder.tokenizer)
        textEncoder = try CLIPTextModel.load(from: folder.textEncoder, dtype: dtype, device: context.device)
        unet = try UNet2DConditionModel.load(from: folder.unet, dtype: dtype, device: context.device)
        vae = try AutoencoderKL.load(from: folder.vae, dtype: dtype, device: context.device)
        vae.freeze()
        noise = try DDPMScheduler(directory: folder.scheduler)
        for module in [textEncoder, unet] as [Module] { module.train() }
        trained = ModuleDict([("text_encoder", textEncoder), ("unet", unet)])
        emptyPrompt = tokenizer.encode("").map(Int64.init)
    }

    func loss(indices: [Int], epoch: Int) throws -> Tensor {
        let latents: Tensor, ids: Tensor
        if let cache = context.cache {
            let entries = try context.entries(cache, indices, epoch: epoch)
            latents = try context.latents(cached: entries, vae: vae)
            ids = try Tensor.cat(entries.map(\.tokenIds))
        } else {
            let (images, _, prompts) = try MultiViewSample.collate(context.samples(indices, epoch: epoch))
            latents = try context.latents(images: images.flatten(start: 0, end: 1), vae: vae)
            ids = try tokenizer(prompts.flatMap { $0 })
        }
        return try loss(latents: latents, tokenIds: ids)
    }

    /// The loss given latents `[N, C, h, w]` (scaled) and their captions' token ids `[N, 77]`.
    func loss(latents: Tensor, tokenIds: Tensor) throws -> Tensor {
        let n = try latents.size(0)
        let device = context.device, views = context.views
        let keep = try context.rand(n, rowsPerItem: views).toArray(Double.self)
            .map { $0 >= context.config.textToImage.captionDropout }
        var rows = try tokenIds.to(dtype: .int64, device: .cpu).contiguous().toArray(Int64.self)
        let length = rows.count / n
        for i in 0..<n where !keep[i] { rows.replaceSubrange(i * length..<(i + 1) * length, with: emptyPrompt) }
        let ids = try Tensor(rows, shape: [n, length]).to(device: device)

        let timesteps = try context.randint(0, noise.schedule.trainTimesteps, n, rowsPerItem: views)
        let eps = try context.randn(latents.shape, rowsPerItem: views).to(dtype: latents.dtype, device: device)
        let noisy = try noise.addNoise(latents, noise: eps, timesteps: timesteps)
        let prediction = try context.autocast {
            try unet(noisy, timestep: timesteps.to(device: device), encoderHiddenStates: textEncoder(ids))
        }
        let target = try noise.target(sample: latents, noise: eps, timesteps: timesteps)
        guard let gamma = context.config.textToImage.snrGamma else { return try noiseLoss(prediction, target) }
        let steps = try timesteps.toArray(Int64.self).map(Int.init)
        let weights = try Tensor(noise.minSNRWeights(timesteps: steps, gamma: gamma), shape: [n]).to(device: device)
        return try weightedNoiseLoss(prediction, target, weights: weights)
    }

    func writeModel(to destination: URL) throws -> URL? {
        try folder.write(to: destination, replacingWeights: ["unet": unet.stateDict(), "text_encoder": textEncoder.stateDict()])
        return destination
    }
}
