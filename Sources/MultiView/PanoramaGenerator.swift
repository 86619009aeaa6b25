import Experiments
import Foundation
import Geometry
import Media
import StableDiffusion
import Torch

/// Text → 8 consistent perspective views → equirectangular panorama: joint DDIM over all views of
/// a panorama with classifier-free guidance (the empty prompt as unconditional, MVDiffusion's
/// sampling), then stitching with MVDiffusion's triangular weights. Without CAA blocks it is the
/// paper's baseline: the same SD sampling every view independently.
public final class PanoramaGenerator {
    public let pipeline: StableDiffusionPipeline
    /// nil: the baseline (independent views).
    public let model: MultiViewUNet?
    /// The views' cameras: a horizon layout of one pinhole camera (the views are stitched by yaw).
    public let layout: ViewLayout
    let camera: PinholeCamera

    /// `model`: the multi-view UNet over `pipeline.unet` with its CAA weights loaded (`Run.trainedModel`,
    /// or `MultiViewUNet.loadCAA`), or nil for the baseline.
    public init(pipeline: StableDiffusionPipeline, model: MultiViewUNet?, layout: ViewLayout) throws {
        guard let camera = layout.camera else {
            throw TorchError("panorama: the views need one pinhole camera (MVDiffusion's intrinsics) to be stitched")
        }
        if let model {
            guard model.unet === pipeline.unet else { throw TorchError("panorama: the multi-view model must wrap the pipeline's UNet") }
            guard model.correspondences.imageSize == layout.resolution else {
                throw TorchError("panorama: the model was built for \(model.correspondences.imageSize)-pixel views, " +
                                 "the layout has \(layout.resolution)")
            }
            model.eval()
        }
        (self.pipeline, self.model, self.layout, self.camera) = (pipeline, model, layout, camera)
    }

    public struct Result {
        /// `[V, 3, H, W]` in [−1, 1].
        public let views: Tensor
        /// `[3, rows, width]` in [−1, 1].
        public let panorama: Tensor
        public let layout: ViewLayout

        /// `view_<i>.png`, `panorama.png` and `cameras.json` in `folder`.
        public func write(to folder: URL) throws {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            for i in 0..<views.shape[0] {
                try Image(tensor: views.select(dim: 0, index: i), range: .signed).write(to: folder.appendingPathComponent("view_\(i).png"))
            }
            try Image(tensor: panorama, range: .signed).write(to: folder.appendingPathComponent("panorama.png"))
            try CamerasFile(layout: layout).write(into: folder)
        }
    }

    /// `prompts`: one for every view, or one per view. `noise`: how the views draw their initial latents.
    public func generate(prompts: [String], steps: Int = 50, guidanceScale: Double = 9, seed: UInt64 = 0,
                         noise: InitialNoise = .independent, canvas: StitchCanvas? = nil,
                         progress: ((Int, Int) -> Void)? = nil) throws -> Result {
        let count = layout.count
        guard prompts.count == 1 || prompts.count == count else {
            throw TorchError("panorama: \(prompts.count) prompts for \(count) views (give one, or one per view)")
        }
        let perView = prompts.count == 1 ? Array(repeating: prompts[0], count: count) : prompts
        let device = pipeline.device
        let generator = try Generator(seed: seed)
        let scale = pipeline.vaeScaleFactor
        let latents = try withInferenceMode { () -> Tensor in
            let guided = guidanceScale > 1
            var context = try pipeline.encode(perView)
            if guided { context = try Tensor.cat([pipeline.encode(Array(repeating: "", count: count)), context]) }
            var x = try noise.draw(views: count, channels: pipeline.unet.config.in_channels, size: layout.resolution / scale,
                                   generator: generator).to(device: device)
            x = try x * pipeline.scheduler.initNoiseSigma
            try pipeline.scheduler.setTimesteps(steps)
            let unetType = pipeline.unet.conv_in.weight.dtype
            let timesteps = pipeline.scheduler.timesteps
            for (i, t) in timesteps.enumerated() {
                let input = try (guided ? Tensor.cat([x, x]) : x).to(dtype: unetType)
                let time = try Tensor(scalar: Int64(t)).to(device: device)
                var prediction: Tensor
                if let model {
                    prediction = try model(input, timestep: time, encoderHiddenStates: context.to(dtype: unetType), layout: layout)
                } else {
                    prediction = try pipeline.unet(input, timestep: time, encoderHiddenStates: context.to(dtype: unetType))
                }
                prediction = try prediction.to(dtype: .float32)
                if guided {
                    let halves = try prediction.chunk(2)
                    prediction = try halves[0] + (halves[1] - halves[0]) * guidanceScale
                }
                x = try pipeline.scheduler.step(prediction, timestep: t, sample: x, generator: generator)
                try requireFiniteLatents(x, step: i, of: timesteps.count, timestep: t)
                progress?(i + 1, timesteps.count)
            }
            return x
        }
        let images = try pipeline.decode(latents).clamp(min: -1, max: 1)
        let width = canvas?.width ?? max(layout.resolution * 8, 256)
        let yawStep = 360 / Double(count)
        let target = canvas ?? StitchCanvas(width: width, height: width / 2,
                                            rows: Self.coveredRows(height: width / 2, fov: camera.fov, yawStep: yawStep))
        let panorama = try Equirect.stitch(views: images.to(device: .cpu), camera: camera,
                                           rotations: layout.rotationsTensor(), canvas: target, fill: 1).panorama
        return Result(views: try images.to(device: .cpu), panorama: try panorama.select(dim: 0, index: 0), layout: layout)
    }

    /// The rows of a `height`-row equirect that pitch-0 views of `fov`, `yawStep` apart, cover in
    /// every column (MVDiffusion crops its 2048-row canvas to 540 ..< 1508, the same ±42.5° band).
    static func coveredRows(height: Int, fov: Double, yawStep: Double) -> Range<Int> {
        // Worst column: half a step from a view's centre, where tan(latitude) = tan(fov/2)·cos(step/2).
        let latitude = atan(tan(fov * .pi / 360) * cos(yawStep * .pi / 360))
        let band = Int((Double(height) * latitude / .pi).rounded())
        return max(0, height / 2 - band)..<min(height, height / 2 + band)
    }
}

/// Where a panorama's model comes from.
public enum PanoramaSource {
    /// A trained run: its base model, view geometry, CAA settings and a checkpoint's weights.
    case run(Run, Run.CheckpointSelection)
    /// A diffusers folder, CAA weights (nil: none, the baseline) and the geometry to generate with.
    case weights(model: URL, caa: URL?, layout: ViewLayout, neighbours: NeighbourSet)
}

extension PanoramaGenerator {
    /// Loads the pipeline and (unless `baseline`) the multi-view model of `source`.
    public static func load(_ source: PanoramaSource, baseline: Bool, device: Device) throws -> PanoramaGenerator {
        switch source {
        case let .run(run, selection):
            let pipeline = try StableDiffusionPipeline.load(from: run.baseModel, scheduler: .ddim, device: device)
            let model = baseline ? nil
                : try run.trainedModel(unet: pipeline.unet, vaeScale: pipeline.vaeScaleFactor, checkpoint: selection).0
            return try PanoramaGenerator(pipeline: pipeline, model: model, layout: run.layout())
        case let .weights(folder, caa, layout, neighbours):
            let pipeline = try StableDiffusionPipeline.load(from: folder, scheduler: .ddim, device: device)
            var model: MultiViewUNet?
            if let caa, !baseline {
                let scale = pipeline.vaeScaleFactor
                model = try MultiViewUNet(unet: pipeline.unet, imageSizePerLatent: scale, latentSize: layout.resolution / scale,
                                          neighbours: neighbours)
                try model?.loadCAA(contentsOf: caa)
            }
            return try PanoramaGenerator(pipeline: pipeline, model: model, layout: layout)
        }
    }
}
