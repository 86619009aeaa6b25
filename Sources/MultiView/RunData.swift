import Datasets
import Experiments
import Foundation
import Geometry
import StableDiffusion
import Torch

extension Run {
    /// How the run renders the views of its panoramas.
    public var viewOptions: ViewOptions {
        let d = config.dataset
        return ViewOptions(count: d.views, fov: d.fov, yawStep: 360 / Double(d.views), resolution: d.resolution,
                           promptPrefix: d.promptPrefix)
    }

    /// The run's dataset, one split of it (the config's own split by default).
    public func dataset(split: RunConfig.Split? = nil) throws -> Matterport3D {
        let d = config.dataset
        return try Matterport3D(root: datasetRoot, split: (split ?? d.split).rawValue,
                                layout: d.kind == .panfusion ? .stitched : .skybox, views: viewOptions)
    }

    /// The multi-view model the run trains: `unet` (frozen) with CAA blocks as the config sets them,
    /// fresh (identity) until weights are loaded.
    public func multiViewModel(unet: UNet2DConditionModel, vaeScale: Int) throws -> MultiViewUNet {
        let model = try MultiViewUNet(unet: unet, imageSizePerLatent: vaeScale, latentSize: config.dataset.resolution / vaeScale,
                                      neighbours: config.caa.neighbours, peMaxFrequency: config.caa.peMaxFrequency)
        model.gradientCheckpointing = config.training.gradientCheckpointing
        return model
    }

    /// The run's multi-view model with a checkpoint's CAA weights (strictly loaded), for inference.
    public func trainedModel(unet: UNet2DConditionModel, vaeScale: Int,
                             checkpoint selection: CheckpointSelection = .latest) throws -> (MultiViewUNet, CheckpointStore.Checkpoint) {
        let checkpoint = try self.checkpoint(selection)
        return (try trainedModel(unet: unet, vaeScale: vaeScale, checkpoint: checkpoint), checkpoint)
    }

    /// The run's multi-view model with `checkpoint`'s CAA weights (strictly loaded), for inference.
    public func trainedModel(unet: UNet2DConditionModel, vaeScale: Int, checkpoint: CheckpointStore.Checkpoint) throws -> MultiViewUNet {
        try trainedModel(unet: unet, vaeScale: vaeScale, weights: checkpoint.weights)
    }

    /// The run's multi-view model with the CAA weights of `file` (a checkpoint's, or a release's
    /// `caa.safetensors`), strictly loaded, for inference.
    public func trainedModel(unet: UNet2DConditionModel, vaeScale: Int, weights file: URL) throws -> MultiViewUNet {
        guard config.task == .caa else {
            throw TorchError("run '\(config.name)' is a \(config.task.rawValue) run, not a caa run: it has no CAA weights " +
                             "(its model folder is \(modelDirectory.path))")
        }
        let model = try multiViewModel(unet: unet, vaeScale: vaeScale)
        try model.loadCAA(contentsOf: file)
        model.eval()
        return model
    }
}

/// The frozen text side and first stage of the run's base model: what turns views and prompts into
/// latents and embeddings (training in the loop, and building the latent cache).
public struct FrozenEncoders {
    public let tokenizer: CLIPTokenizer
    public let textEncoder: CLIPTextModel
    public let vae: AutoencoderKL
    public let folder: ModelFolder

    public init(run: Run, device: Device) throws {
        folder = try ModelFolder(url: run.baseModel)
        let dtype = run.config.model.dtype.dtype
        tokenizer = try CLIPTokenizer(directory: folder.tokenizer)
        textEncoder = try CLIPTextModel.load(from: folder.textEncoder, dtype: dtype, device: device)
        textEncoder.freeze()
        vae = try AutoencoderKL.load(from: folder.vae, dtype: dtype, device: device)
        vae.freeze()
    }

    /// Latent pixels per image pixel side (8 for SD).
    public var vaeScale: Int { 1 << max(vae.config.block_out_channels.count - 1, 0) }
}
