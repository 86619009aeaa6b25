import Datasets
import Evaluation
import Experiments
import Foundation
import StableDiffusion
import Torch

/// SD's second stage, from scratch: the UNet and the CLIP text encoder of `model.base` learn to
/// predict the noise added to the frozen VAE's latents of single views (each view its own image with
/// its own caption and timestep), with `caption_dropout` of the captions replaced by the empty
/// prompt so that classifier-free guidance has an unconditional model to subtract.
/// Latents and token ids come from the run's latent cache when it has one, else the VAE and the
/// tokenizer run in the loop. `text_encoder_init` starts the text encoder from a trained CLIP's text
/// tower, and `train_text_encoder: false` keeps it frozen, as SD trains its UNet on a frozen CLIP
/// (docs/models.md#a-pretrained-text-encoder).
final class TextToImageTask: TrainingTask {
    let context: TrainingContext
    let folder: ModelFolder
    let tokenizer: CLIPTokenizer
    let textEncoder: CLIPTextModel
    let unet: UNet2DConditionModel
    let vae: AutoencoderKL
    let noise: DDPMScheduler
    let trained: Module
    let checkpointFormat: String
    var settings: RunConfig.TextToImage { context.config.textToImage }
    /// The token ids of the empty prompt, `[77]`.
    let emptyPrompt: [Int64]

    init(_ context: TrainingContext) throws {
        self.context = context
        let dtype = context.config.model.dtype.dtype
        folder = try ModelFolder(url: context.run.baseModel)
        tokenizer = try CLIPTokenizer(directory: folder.tokenizer)
        let settings = context.config.textToImage
        if let source = settings.textEncoderInit {
            let directory = context.run.path(source)
            guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("config.json").path) else {
                throw TorchError("text_to_image.text_encoder_init: no model folder at \(directory.path)")
            }
            textEncoder = try CLIPModel.textEncoder(from: directory, dtype: dtype, device: context.device)
        } else {
            textEncoder = try CLIPTextModel.load(from: folder.textEncoder, dtype: dtype, device: context.device)
        }
        unet = try UNet2DConditionModel.load(from: folder.unet, dtype: dtype, device: context.device)
        vae = try AutoencoderKL.load(from: folder.vae, dtype: dtype, device: context.device)
        vae.freeze()
        noise = try DDPMScheduler(directory: folder.scheduler)
        unet.train()
        if settings.trainTextEncoder {
            textEncoder.train()
            trained = ModuleDict([("text_encoder", textEncoder), ("unet", unet)])
            checkpointFormat = "text-to-image-v1"
        } else {
            textEncoder.freeze()
            trained = ModuleDict([("unet", unet)])
            checkpointFormat = "text-to-image-unet-v1"
        }
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
            let context = settings.trainTextEncoder ? try textEncoder(ids) : try withNoGrad { try textEncoder(ids) }
            return try unet(noisy, timestep: timesteps.to(device: device), encoderHiddenStates: context)
        }
        let target = try noise.target(sample: latents, noise: eps, timesteps: timesteps)
        guard let gamma = context.config.textToImage.snrGamma else { return try noiseLoss(prediction, target) }
        let steps = try timesteps.toArray(Int64.self).map(Int.init)
        let weights = try Tensor(noise.minSNRWeights(timesteps: steps, gamma: gamma), shape: [n]).to(device: device)
        return try weightedNoiseLoss(prediction, target, weights: weights)
    }

    /// The base's folder with the trained UNet and the text encoder, whose config follows it when it
    /// came from another folder (a CLIP tower's activation and sizes may differ from the base's).
    func writeModel(to destination: URL) throws -> URL? {
        let c = textEncoder.config
        let textConfig: [String: Any] = settings.textEncoderInit == nil ? [:] : [
            "vocab_size": c.vocab_size, "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
            "num_hidden_layers": c.num_hidden_layers, "num_attention_heads": c.num_attention_heads,
            "max_position_embeddings": c.max_position_embeddings, "hidden_act": c.hidden_act,
            "layer_norm_eps": c.layer_norm_eps, "eos_token_id": c.eos_token_id,
        ]
        try folder.write(to: destination, replacingWeights: ["unet": unet.stateDict(), "text_encoder": textEncoder.stateDict()],
                         config: ["text_encoder": textConfig])
        return destination
    }
}
