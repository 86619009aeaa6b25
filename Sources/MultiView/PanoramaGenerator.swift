import Datasets
import Foundation
import Geometry
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
    public let views: ViewOptions

    public init(pipeline: StableDiffusionPipeline, caaWeights: [String: Tensor]?, views: ViewOptions,
                neighbours: NeighbourSet = .ring) throws {
        self.pipeline = pipeline
        self.views = views
        if let caaWeights {
            let scale = pipeline.vaeScaleFactor
            let model = try MultiViewUNet(unet: pipeline.unet, imageSizePerLatent: scale,
                                          latentSize: views.resolution / scale, neighbours: neighbours)
            let own = model.caaStateDict()
            let missing = own.keys.filter { caaWeights[$0] == nil }.sorted()
            let unexpected = caaWeights.keys.filter { own[$0] == nil }.sorted()
            guard missing.isEmpty, unexpected.isEmpty else {
                throw TorchError("CAA weights do not fit this UNet: missing \(missing.prefix(3)), unexpected \(unexpected.prefix(3))")
            }
            try withNoGrad { for (key, tensor) in own { try tensor.copy_(from: caaWeights[key]!) } }
            model.eval()
            self.model = model
        } else {
            model = nil
        }
    }

    public struct Result {
        /// `[V, 3, H, W]` in [−1, 1].
        public let views: Tensor
        /// `[3, rows, width]` in [−1, 1].
        public let panorama: Tensor
        public let intrinsics: Tensor
        public let rotations: Tensor
        public let yaws: [Double]
    }

    /// `prompts`: one for every view, or one per view.
    public func generate(prompts: [String], steps: Int = 50, guidanceScale: Double = 9, seed: UInt64 = 0,
                         canvas: StitchCanvas? = nil, progress: ((Int, Int) -> Void)? = nil) throws -> Result {
        let count = views.count
        guard prompts.count == 1 || prompts.count == count else {
            throw TorchError("panorama: \(prompts.count) prompts for \(count) views (give one, or one per view)")
        }
        let perView = prompts.count == 1 ? Array(repeating: prompts[0], count: count) : prompts
        let (k, r, yaws) = try viewCameras(views, yawOffset: 0)
        let cameras = try ViewCameras(K: k, R: r)
        let device = pipeline.device
        let generator = try Generator(seed: seed)
        let scale = pipeline.vaeScaleFactor
        let latents = try withInferenceMode { () -> Tensor in
            let guided = guidanceScale > 1
            var context = try pipeline.encode(perView)
            if guided { context = try Tensor.cat([pipeline.encode(Array(repeating: "", count: count)), context]) }
            var x = try Tensor.randn([count, pipeline.unet.config.in_channels, views.resolution / scale, views.resolution / scale],
                                     dtype: .float32, generator: generator).to(device: device)
            x = try x * pipeline.scheduler.initNoiseSigma
            try pipeline.scheduler.setTimesteps(steps)
            let unetType = pipeline.unet.conv_in.weight.dtype
            let timesteps = pipeline.scheduler.timesteps
            for (i, t) in timesteps.enumerated() {
                let input = try (guided ? Tensor.cat([x, x]) : x).to(dtype: unetType)
                let time = try Tensor(scalar: Int64(t)).to(device: device)
                var prediction: Tensor
                if let model {
                    prediction = try model(input, timestep: time, encoderHiddenStates: context.to(dtype: unetType), cameras: cameras)
                } else {
                    prediction = try pipeline.unet(input, timestep: time, encoderHiddenStates: context.to(dtype: unetType))
                }
                prediction = try prediction.to(dtype: .float32)
                if guided {
                    let halves = try prediction.chunk(2)
                    prediction = try halves[0] + (halves[1] - halves[0]) * guidanceScale
                }
                x = try pipeline.scheduler.step(prediction, timestep: t, sample: x, generator: generator)
                progress?(i + 1, timesteps.count)
            }
            return x
        }
        let images = try pipeline.decode(latents).clamp(min: -1, max: 1)
        let width = canvas?.width ?? max(views.resolution * 8, 256)
        let target = canvas ?? StitchCanvas(width: width, height: width / 2,
                                            rows: Self.coveredRows(height: width / 2, fov: views.fov, yawStep: views.yawStep))
        let panorama = try Equirect.stitch(views: images.to(device: .cpu), camera: views.camera,
                                           rotations: r, canvas: target, fill: 1).panorama
        return Result(views: try images.to(device: .cpu), panorama: try panorama.select(dim: 0, index: 0),
                      intrinsics: k, rotations: r, yaws: yaws)
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
