import Datasets
import Experiments
import Foundation
import Geometry
import StableDiffusion
import Torch

/// The paper's method, as MVDiffusion trains it: the CAA blocks of a multi-view UNet on a frozen SD
/// (VAE and text encoder under no-grad), one timestep per panorama, independent noise per view, MSE
/// between the predicted and the true noise over all views.
final class CAATask: TrainingTask {
    let context: TrainingContext
    let encoders: FrozenEncoders
    let noise: DDPMScheduler
    let model: MultiViewUNet
    let trained: Module
    let checkpointFormat = "caa-v1"

    init(_ context: TrainingContext) throws {
        self.context = context
        let run = context.run
        encoders = try FrozenEncoders(run: run, device: context.device)
        noise = try DDPMScheduler(directory: encoders.folder.scheduler)
        let unet = try UNet2DConditionModel.load(from: encoders.folder.unet, dtype: run.config.model.dtype.dtype,
                                                 device: context.device)
        model = try run.multiViewModel(unet: unet, vaeScale: encoders.vaeScale)
        if let initial = run.config.caa.initWeights {
            // Loaded before the trainer restores a checkpoint, so a resumed run continues its own weights.
            let file = run.path(initial)
            guard FileManager.default.fileExists(atPath: file.path) else {
                throw TorchError("caa.init_weights: no file at \(file.path)")
            }
            try model.loadCAA(contentsOf: file)
        }
        trained = model.caaBlocks
    }

    func loss(indices: [Int], epoch: Int) throws -> Tensor {
        let vae = encoders.vae
        if let cache = context.cache {
            let entries = try context.entries(cache, indices, epoch: epoch)
            let latents = try context.latents(cached: entries, vae: vae)
            let embeddings = try Tensor.cat(entries.map(\.textEmbeddings))
                .to(dtype: vae.encoder.conv_in.weight.dtype, device: context.device)
            return try loss(latents: latents, context: embeddings, layouts: entries.map(\.layout))
        }
        let (images, layouts, prompts) = try MultiViewSample.collate(context.samples(indices, epoch: epoch))
        let latents = try context.latents(images: images.flatten(start: 0, end: 1), vae: vae)
        let embeddings = try withNoGrad {
            try encoders.textEncoder(encoders.tokenizer(prompts.flatMap { $0 }).to(device: context.device))
        }
        return try loss(latents: latents, context: embeddings, layouts: layouts)
    }

    /// The loss given latents `[B·V, C, h, w]` (scaled), prompt embeddings `[B·V, T, D]` and each
    /// panorama's cameras.
    func loss(latents: Tensor, context embeddings: Tensor, layouts: [ViewLayout]) throws -> Tensor {
        let layout = layouts[0]
        // The model attends with one layout per batch: the panoramas may differ by a yaw offset only.
        let canonical = layout.canonical(precision: 1e-6)
        guard layouts.allSatisfy({ $0.canonical(precision: 1e-6) == canonical }) else {
            throw TorchError("a batch of \(context.config.name) mixes view layouts that differ by more than a yaw offset")
        }
        let device = context.device
        let timesteps = try context.randint(0, noise.schedule.trainTimesteps, layouts.count)
        let perView = try timesteps.repeatInterleaveViews(layout.count)
        let eps = try context.randn(latents.shape, rowsPerItem: layout.count).to(dtype: latents.dtype, device: device)
        let noisy = try noise.addNoise(latents, noise: eps, timesteps: perView)
        let prediction = try context.autocast {
            try model(noisy, timestep: perView.to(device: device), encoderHiddenStates: embeddings, layout: layout)
        }
        let target = try noise.target(sample: latents, noise: eps, timesteps: perView)
        let mse = try noiseLoss(prediction, target)
        guard let weight = context.config.caa.toneLossWeight else { return mse }
        let steps = try perView.toArray(Int64.self).map(Int.init)
        return try mse + weight * toneLoss(prediction, target, timesteps: steps)
    }

    /// The mean over views and channels of the squared error of each view's spatial mean of x̂₀
    /// (docs/models.md#tone-loss). Of a 16² latent's 256 components per channel the mean is one, so
    /// the MSE hardly sees it, yet it sets the whole view's tone: an independent noise mean per view
    /// makes each view's tone its own unless the CAA blocks pool their neighbours' evidence.
    func toneLoss(_ prediction: Tensor, _ target: Tensor, timesteps: [Int]) throws -> Tensor {
        let error = try (prediction.to(dtype: .float64) - target.to(dtype: .float64)).mean(dims: [2, 3])
        let scales = try Tensor(noise.cleanImageErrorScales(timesteps: timesteps, cap: Self.toneScaleCap),
                                shape: [timesteps.count, 1]).to(device: error.device)
        return try (error * scales).square().mean()
    }

    /// √((1−ᾱ)/ᾱ) where ᾱ ≈ 0.004, the miniature's first DDIM step of 25 (t = 961): the noisier
    /// timesteps the sampler never starts from would otherwise weigh thousands of times more.
    static let toneScaleCap = 16.0

    /// A CAA run's product is its checkpoint (`backdrop export` and `panorama --run` read it).
    func writeModel(to folder: URL) throws -> URL? { nil }
}
