import Foundation
import Torch

/// Which sampler a pipeline runs; both read the folder's `scheduler/scheduler_config.json` the way
/// diffusers' `from_config` does (keys they lack take their own defaults).
public enum SchedulerKind: String, CaseIterable, Sendable {
    case ddim
    /// DPM-Solver++ 2M.
    case dpm

    /// DPM-Solver++ when the folder's scheduler is one, else DDIM.
    public static func matching(_ folder: ModelFolder) -> SchedulerKind {
        folder.components["scheduler"]?.className == "DPMSolverMultistepScheduler" ? .dpm : .ddim
    }

    public func make(from directory: URL) throws -> Scheduler {
        switch self {
        case .ddim: return try DDIMScheduler(directory: directory)
        case .dpm: return try DPMSolverMultistepScheduler(directory: directory)
        }
    }
}

/// diffusers' `StableDiffusionPipeline` (text to image): prompts and negative prompts → CLIP text
/// embeddings → seeded Gaussian latents → the scheduler's loop over the UNet with classifier-free
/// guidance → VAE decode. Numbers follow diffusers 0.27.2 for the same weights, seed and scheduler.
public final class StableDiffusionPipeline {
    public let tokenizer: CLIPTokenizer
    public let textEncoder: CLIPTextModel
    public let unet: UNet2DConditionModel
    public let vae: AutoencoderKL
    public var scheduler: Scheduler
    public let device: Device

    public init(tokenizer: CLIPTokenizer, textEncoder: CLIPTextModel, unet: UNet2DConditionModel, vae: AutoencoderKL,
                scheduler: Scheduler, device: Device = .cpu) {
        self.tokenizer = tokenizer
        self.textEncoder = textEncoder
        self.unet = unet
        self.vae = vae
        self.scheduler = scheduler
        self.device = device
    }

    /// Loads every component of a diffusers folder (`model_index.json`, `tokenizer/`,
    /// `text_encoder/`, `unet/`, `vae/`, `scheduler/`). `dtype` converts the three networks
    /// (fp16/bf16 on request); latents and scheduler arithmetic stay float32 as in diffusers.
    public static func load(from url: URL, scheduler kind: SchedulerKind? = nil, dtype: DType? = nil,
                            device: Device = .cpu) throws -> StableDiffusionPipeline {
        let folder = try ModelFolder(url: url)
        let kind = kind ?? SchedulerKind.matching(folder)
        return StableDiffusionPipeline(
            tokenizer: try CLIPTokenizer(directory: folder.tokenizer),
            textEncoder: try CLIPTextModel.load(from: folder.textEncoder, dtype: dtype, device: device),
            unet: try UNet2DConditionModel.load(from: folder.unet, dtype: dtype, device: device),
            vae: try AutoencoderKL.load(from: folder.vae, dtype: dtype, device: device),
            scheduler: try kind.make(from: folder.scheduler), device: device)
    }

    /// 2^(levels − 1): pixels per latent cell (8 for SD).
    public var vaeScaleFactor: Int { 1 << max(vae.config.block_out_channels.count - 1, 0) }

    /// The image size the UNet was trained for (`sample_size` × `vaeScaleFactor`; 512 for SD 2-base).
    public var defaultImageSize: Int { (unet.config.sample_size ?? 64) * vaeScaleFactor }

    /// Text embeddings `[N, 77, D]` for `prompts` (the text encoder's last hidden state).
    public func encode(_ prompts: [String]) throws -> Tensor {
        try textEncoder(tokenizer(prompts).to(device: device))
    }

    /// Final latents `[N, C, h, w]` (before decoding) for N prompts.
    ///
    /// - Parameters:
    ///   - negativePrompts: one per prompt, one for all, or nil for "" (diffusers' unconditional input).
    ///   - guidanceScale: classifier-free guidance weight; ≤ 1 runs the conditional branch only.
    ///   - latents: the initial noise `[N, C, h, w]`; nil draws it from `generator` as diffusers'
    ///     `randn_tensor` does on the CPU (float32, then moved to the device).
    ///   - eta: DDIM's η (ignored by DPM-Solver).
    ///   - progress: called after each step with (done, total).
    public func latents(prompts: [String], negativePrompts: [String]? = nil, steps: Int = 50, guidanceScale: Double = 7.5,
                        height: Int? = nil, width: Int? = nil, generator: Generator? = nil, latents initial: Tensor? = nil,
                        eta: Double = 0, progress: ((Int, Int) -> Void)? = nil) throws -> Tensor {
        guard !prompts.isEmpty else { throw TorchError("pipeline: no prompts") }
        let height = height ?? defaultImageSize, width = width ?? defaultImageSize
        guard height % vaeScaleFactor == 0, width % vaeScaleFactor == 0, height > 0, width > 0 else {
            throw TorchError("pipeline: height and width must be positive multiples of \(vaeScaleFactor), got \(height)×\(width)")
        }
        let guided = guidanceScale > 1
        return try withInferenceMode {
            var context = try encode(prompts)
            if guided {
                let negatives = negativePrompts ?? [""]
                guard negatives.count == 1 || negatives.count == prompts.count else {
                    throw TorchError("pipeline: \(negatives.count) negative prompts for \(prompts.count) prompts")
                }
                let unconditional = try encode(negatives.count == 1 ? Array(repeating: negatives[0], count: prompts.count) : negatives)
                context = try Tensor.cat([unconditional, context])
            }
            let shape = [prompts.count, unet.config.in_channels, height / vaeScaleFactor, width / vaeScaleFactor]
            var x: Tensor
            if let initial {
                guard initial.shape == shape else { throw TorchError("pipeline: latents \(initial.shape), expected \(shape)") }
                x = try initial.to(dtype: .float32, device: device)
            } else {
                x = try Tensor.randn(shape, dtype: .float32, generator: generator).to(device: device)
            }
            x = try x * scheduler.initNoiseSigma
            (scheduler as? DDIMScheduler)?.eta = eta
            try scheduler.setTimesteps(steps)
            let unetType = unet.conv_in.weight.dtype
            let timesteps = scheduler.timesteps
            for (i, t) in timesteps.enumerated() {
                let input = try (guided ? Tensor.cat([x, x]) : x).to(dtype: unetType)
                var prediction = try unet(input, timestep: Tensor(scalar: Int64(t)).to(device: device),
                                          encoderHiddenStates: context.to(dtype: unetType)).to(dtype: .float32)
                if guided {
                    let halves = try prediction.chunk(2)
                    prediction = try halves[0] + (halves[1] - halves[0]) * guidanceScale
                }
                x = try scheduler.step(prediction, timestep: t, sample: x, generator: generator)
                try requireFiniteLatents(x, step: i, of: timesteps.count, timestep: t)
                progress?(i + 1, timesteps.count)
            }
            return x
        }
    }

    /// Images `[N, 3, H, W]` in [−1, 1] (float32) from final latents.
    public func decode(_ latents: Tensor) throws -> Tensor {
        try withInferenceMode {
            let type = vae.post_quant_conv.weight.dtype
            return try vae.decode((latents / vae.scalingFactor).to(dtype: type)).to(dtype: .float32).clamp(min: -1, max: 1)
        }
    }

    /// Prompts → images `[N, 3, H, W]` in [−1, 1], seeded: the same seed gives diffusers' image for
    /// `generator=torch.Generator().manual_seed(seed)` on the CPU.
    public func callAsFunction(_ prompts: [String], negativePrompts: [String]? = nil, steps: Int = 50,
                               guidanceScale: Double = 7.5, height: Int? = nil, width: Int? = nil, seed: UInt64 = 0,
                               eta: Double = 0, progress: ((Int, Int) -> Void)? = nil) throws -> Tensor {
        let generator = try Generator(seed: seed)
        let final = try latents(prompts: prompts, negativePrompts: negativePrompts, steps: steps, guidanceScale: guidanceScale,
                                height: height, width: width, generator: generator, eta: eta, progress: progress)
        return try decode(final)
    }
}

/// Stops a denoising loop whose latents left the finite numbers (NaN weights that slipped through,
/// a guidance scale the model cannot follow): without it the run went on to the end and wrote a
/// black image with exit status 0. One reduction over the latents per step.
public func requireFiniteLatents(_ latents: Tensor, step: Int, of steps: Int, timestep: Int) throws {
    guard try latents.isAllFinite() else {
        throw TorchError("denoising step \(step + 1) of \(steps) (timestep \(timestep)): the latents are no longer finite; "
                         + "the model's weights or the guidance scale make the sampler diverge")
    }
}
