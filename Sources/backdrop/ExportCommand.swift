import ArgumentParser
import Datasets
import Experiments
import Foundation
import MultiView
import StableDiffusion
import Torch

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a trained run for deployment: TorchScript graphs, CAA safetensors, manifest.json.",
        discussion: """
            Writes unet_multiview.pt (the multi-view UNet with the run's view layout baked in; inputs latents \
            [B·V, 4, h, w], timestep [1], text embeddings [B·V, 77, D]), vae_decoder.pt, text_encoder.pt, \
            caa.safetensors and manifest.json. Parameters keep their state-dict names in the graphs.
            """
    )

    @Option(name: .customLong("run"), help: "Run name in the registry.") var runName: String
    @Option(help: "Run registry.") var registry: String = "results/runs.sqlite"
    @Option(help: "Panoramas per UNet call (2: classifier-free guidance).") var panoramas: Int = 2
    @Option(help: "Output folder.") var out: String

    func run() throws {
        let registry = try RunRegistry(url: URL(fileURLWithPath: self.registry))
        guard let record = try registry.latestRun(named: runName) else {
            throw ValidationError("no run named '\(runName)' in \(self.registry)")
        }
        let config = try JSONDecoder.snakeCase.decode(RunConfig.self, from: Data(record.config.utf8))
        guard let checkpoint = try CheckpointStore(runDirectory: URL(fileURLWithPath: record.outputDir)).latest() else {
            throw ValidationError("run '\(runName)' has no checkpoint yet")
        }
        let base = URL(fileURLWithPath: expandEnvironment(config.model.base))
        let pipeline = try StableDiffusionPipeline.load(from: base, scheduler: .ddim, device: .cpu)
        let scale = pipeline.vaeScaleFactor
        let model = try MultiViewUNet(unet: pipeline.unet, imageSizePerLatent: scale, latentSize: config.dataset.resolution / scale,
                                      neighbours: NeighbourSet(rawValue: config.caa.neighbours) ?? .ring)
        let weights = try SafetensorsFile(url: checkpoint.weights).loadAll()
        try withNoGrad { for (key, tensor) in model.caaStateDict() { try tensor.copy_(from: weights[key]!) } }
        let views = ViewOptions(count: config.dataset.views, fov: config.dataset.fov,
                                yawStep: 360 / Double(config.dataset.views), resolution: config.dataset.resolution)
        let (k, r, _) = try viewCameras(views, yawOffset: 0)
        var options = DeploymentExport.Options()
        options.panoramas = panoramas
        let written = try DeploymentExport.export(model: model, vae: pipeline.vae, textEncoder: pipeline.textEncoder,
                                                  cameras: try ViewCameras(K: k, R: r), baseModel: base,
                                                  to: URL(fileURLWithPath: out), options: options)
        print("exported step \(checkpoint.state.step) of \(runName) to \(written.manifest.deletingLastPathComponent().path)")
    }
}

struct ImportMVDiffusionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-mvdiffusion",
        abstract: "Extract the CAA weights of MVDiffusion's released pano.ckpt into Backdrop's safetensors.",
        discussion: """
            Reads the Lightning checkpoint with Backdrop's restricted unpickler (nothing in it is executed), \
            keeps mv_base_model.cp_blocks_{encoder,mid,decoder}.*, drops the prefix and writes them for \
            `backdrop panorama --weights`.
            """
    )

    @Argument(help: "MVDiffusion checkpoint (pano.ckpt).") var checkpoint: String
    @Option(help: "Output safetensors file.") var out: String

    func run() throws {
        let caa = try MVDiffusionCheckpoint.caaWeights(URL(fileURLWithPath: checkpoint))
        try Safetensors.save(caa, metadata: ["format": "pt", "source": "MVDiffusion pano.ckpt"], to: URL(fileURLWithPath: out))
        print("wrote \(caa.count) CAA tensors to \(out)")
    }
}
