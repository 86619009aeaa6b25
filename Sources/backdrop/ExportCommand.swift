import ArgumentParser
import Experiments
import Foundation
import Support
import MultiView
import Torch
import Workflows

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

struct PublishCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Write a finished run's model as shipped weights: fp16 safetensors and manifest.json.",
        discussion: """
            A text_to_image, autoencoder or clip run: the diffusers or transformers folder it wrote, with its \
            floating-point tensors stored in --dtype. A caa run: caa.safetensors (its averaged weights), which \
            `backdrop panorama --weights` reads with the model named by --base-model. manifest.json names the \
            config, the dataset's recipe (seed, count, face size), the steps, the wall time, the commit that \
            trained it and each file's size (docs/models.md#shipped-weights).
            """
    )

    @OptionGroup var source: RunOptions
    @Option(help: "Storage dtype of floating-point tensors: float16, bfloat16 or float32.") var dtype: String = "float16"
    @Option(help: "The config file the run was started from, recorded in the manifest.") var config: String?
    @Option(help: "A caa run: the model folder its weights belong with, recorded in the manifest.") var baseModel: String?
    @Option(name: .customLong("earlier"), parsing: .upToNextOption,
            help: "Earlier runs whose weights the folder also holds, as RUN or RUN=CONFIG (e.g. the autoencoder run of a text-to-image model).")
    var earlier: [String] = []
    @Option(name: [.customLong("out"), .customLong("output")], help: "Output folder (replaced whole).") var out: String

    func validate() throws {
        guard ["float16", "bfloat16", "float32"].contains(dtype) else {
            throw ValidationError("--dtype must be float16, bfloat16 or float32, not \(dtype)")
        }
        if source.step != nil { throw ValidationError("publish releases a finished run's final model: drop --step") }
    }

    func run() throws {
        let storage: DType = dtype == "float16" ? .float16 : dtype == "bfloat16" ? .bfloat16 : .float32
        let stages = try earlier.map { entry -> (run: Run, configFile: String?) in
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            return (try source.registry.run(parts[0]), parts.count > 1 ? parts[1] : nil)
        }
        let manifest = try ModelRelease.write(run: try source.resolve(), to: URL(fileURLWithPath: out), dtype: storage,
                                              configFile: config, baseModel: baseModel, earlierStages: stages,
                                              registry: try source.registry.existingIfAny())
        let bytes = manifest.files.values.reduce(0, +)
        print("published \(manifest.run.name) (\(manifest.run.task), step \(manifest.run.steps)) to \(out): " +
              "\(manifest.files.count) files, \(String(format: "%.1f", Double(bytes) / 1_048_576)) MiB")
    }
}
