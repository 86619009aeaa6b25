import Experiments
import Foundation
import Geometry
import StableDiffusion
import Torch

/// Writes a trained multi-view model for deployment: TorchScript graphs traced from the Swift
/// models with their parameters under their state-dict names (the multi-view UNet with the
/// correspondences of the exported view layout baked in, the VAE decoder, the text encoder), the CAA
/// weights as safetensors, and `manifest.json` describing inputs, outputs and provenance.
public enum DeploymentExport {
    public struct Options: Sendable {
        /// Panoramas per UNet call: 2 runs classifier-free guidance (unconditional + conditional).
        public var panoramas = 2
        public var backdropVersion = "0.1.0"
        public init() {}
    }

    /// Files written, by role.
    public struct Written: Sendable {
        public let unet: URL, vaeDecoder: URL, textEncoder: URL, caa: URL, manifest: URL
    }

    /// A run's checkpoint with its own view layout and base model.
    public static func export(run: Run, checkpoint selection: Run.CheckpointSelection = .latest, to folder: URL,
                              options: Options = Options()) throws -> (written: Written, checkpoint: CheckpointStore.Checkpoint) {
        let pipeline = try StableDiffusionPipeline.load(from: run.baseModel, scheduler: .ddim, device: .cpu)
        let (model, checkpoint) = try run.trainedModel(unet: pipeline.unet, vaeScale: pipeline.vaeScaleFactor, checkpoint: selection)
        let written = try export(model: model, vae: pipeline.vae, textEncoder: pipeline.textEncoder, layout: run.layout(),
                                 baseModel: run.baseModel, to: folder, options: options)
        return (written, checkpoint)
    }

    public static func export(model: MultiViewUNet, vae: AutoencoderKL, textEncoder: CLIPTextModel, layout: ViewLayout,
                              baseModel: URL, to folder: URL, options: Options = Options()) throws -> Written {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let device = model.unet.conv_in.weight.device
        let v = layout.count, b = options.panoramas
        let latent = model.correspondences.imageSize / 8
        let channels = model.unet.config.in_channels
        let contextWidth = try textEncoder.text_model.final_layer_norm.weight.map { try $0.size(0) } ?? 0
        let tokens = textEncoder.config.max_position_embeddings

        let latents = try Tensor.randn([b * v, channels, latent, latent], generator: Generator(seed: 0)).to(device: device)
        let timestep = try Tensor([Int64(500)], shape: [1]).to(device: device)
        let context = try Tensor.randn([b * v, tokens, contextWidth], generator: Generator(seed: 1)).to(device: device)
        let ids = try Tensor.randint(0, textEncoder.config.vocab_size, [v, tokens], generator: Generator(seed: 2)).to(device: device)

        model.eval()
        // One untraced call fills the geometry cache, so the trace holds the correspondences as
        // constants instead of recomputing them in every call of the graph.
        _ = try withNoGrad { try model(latents, timestep: timestep, encoderHiddenStates: context, layout: layout) }
        let written = Written(unet: folder.appendingPathComponent("unet_multiview.pt"),
                              vaeDecoder: folder.appendingPathComponent("vae_decoder.pt"),
                              textEncoder: folder.appendingPathComponent("text_encoder.pt"),
                              caa: folder.appendingPathComponent("caa.safetensors"),
                              manifest: folder.appendingPathComponent("manifest.json"))
        try withNoGrad {
            try model.traced(inputs: [latents, timestep, context]) {
                [try model($0[0], timestep: $0[1], encoderHiddenStates: $0[2], layout: layout)]
            }.save(to: written.unet)
            try vae.traced(inputs: [latents.narrow(dim: 0, start: 0, length: v)]) { [try vae.decode($0[0])] }
                .save(to: written.vaeDecoder)
            try textEncoder.traced(inputs: [ids]) { [try textEncoder($0[0])] }.save(to: written.textEncoder)
        }
        try Safetensors.save(model.caaStateDict(), metadata: ["format": "pt", "backdrop": "caa-v1"], to: written.caa)

        let manifest: [String: Any] = [
            "backdrop_version": options.backdropVersion,
            "base_model": baseModel.path,
            "base_model_hash": try ContentHash.of(baseModel),
            "views": v,
            "fov_degrees": layout.camera?.fov ?? NSNull(),
            "view_resolution": model.correspondences.imageSize,
            "neighbours": model.correspondences.neighbours.rawValue,
            "panoramas_per_call": b,
            "cameras": ["K": layout.intrinsics.flatMap(\.rowMajor), "R": layout.rotations.flatMap(\.rowMajor)],
            "graphs": [
                "unet_multiview.pt": ["inputs": [["latents", [b * v, channels, latent, latent], "float32"],
                                                 ["timestep", [1], "int64"],
                                                 ["encoder_hidden_states", [b * v, tokens, contextWidth], "float32"]],
                                      "outputs": [["noise_pred", [b * v, channels, latent, latent], "float32"]]],
                "vae_decoder.pt": ["inputs": [["latents (already divided by the scaling factor)", [v, channels, latent, latent], "float32"]],
                                   "outputs": [["image in [-1, 1]", [v, 3, latent * 8, latent * 8], "float32"]]],
                "text_encoder.pt": ["inputs": [["input_ids", [v, tokens], "int64"]],
                                    "outputs": [["last_hidden_state", [v, tokens, contextWidth], "float32"]]],
            ],
            "scaling_factor": vae.scalingFactor,
        ]
        let data = try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys])
        try writeAtomically(to: written.manifest) { try data.write(to: $0) }
        return written
    }
}
