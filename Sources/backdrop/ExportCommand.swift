import ArgumentParser
import Experiments
import Foundation
import Support
import MultiView
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

    @OptionGroup var source: RunOptions
    @Option(help: "Panoramas per UNet call (2: classifier-free guidance).") var panoramas: Int = 2
    @Option(name: [.customLong("out"), .customLong("output")], help: "Output folder.") var out: String

    func validate() throws {
        guard (1...64).contains(panoramas) else { throw ValidationError("--panoramas must lie in 1…64, not \(panoramas)") }
    }

    func run() throws {
        var options = DeploymentExport.Options()
        options.panoramas = panoramas
        let target = try source.resolve()
        let (written, checkpoint) = try DeploymentExport.export(run: target, checkpoint: source.checkpoint,
                                                                to: URL(fileURLWithPath: out), options: options)
        print("exported step \(checkpoint.state.step) of \(target.config.name) to \(written.manifest.deletingLastPathComponent().path)")
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
    @Option(name: [.customLong("out"), .customLong("output")], help: "Output safetensors file.") var out: String

    func run() throws {
        let caa = try MVDiffusionCheckpoint.caaWeights(URL(fileURLWithPath: checkpoint))
        try Safetensors.save(caa, metadata: ["format": "pt", "source": "MVDiffusion pano.ckpt"], to: URL(fileURLWithPath: out))
        print("wrote \(caa.count) CAA tensors to \(out)")
    }
}
