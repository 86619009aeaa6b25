import ArgumentParser
import Foundation
import Support
import Media
import StableDiffusion
import Torch

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Text to image with a diffusers-format Stable Diffusion folder (SD 2-base, 2.1, 1.5).",
        discussion: """
            Runs diffusers' StableDiffusionPipeline: the prompt (and negative prompt) through CLIP, Gaussian \
            latents from --seed, --steps of DDIM or DPM-Solver++ 2M with classifier-free guidance, VAE decode. \
            With the same folder, seed, scheduler and steps the latents match diffusers' \
            `pipe(prompt, generator=torch.Generator().manual_seed(seed))` on the CPU.

            Several prompts make a batch: the images are written as OUT-0.png, OUT-1.png, ….

            Example:
              backdrop generate "a cozy living room" --model ~/models/stable-diffusion-2-base \\
                --steps 50 --guidance 9 --seed 0 --out out.png
            """
    )

    @Argument(help: "Prompts (one image each).") var prompts: [String]
    @Option(help: "A diffusers model folder (model_index.json, tokenizer/, text_encoder/, unet/, vae/, scheduler/).")
    var model: String
    @Option(name: .customLong("negative-prompt"), help: "Negative prompt(s): one for all prompts or one each (default: \"\").")
    var negativePrompts: [String] = []
    @Option(help: "Denoising steps.") var steps = 50
    @Option(help: "Classifier-free guidance scale (≤ 1 disables guidance).") var guidance = 7.5
    @Option(help: "Seed of the initial noise (and of DDIM's η-noise).") var seed: UInt64 = 0
    @Option(help: "Output PNG (with several prompts: OUT-<i>.png).") var out = "out.png"
    @Option(help: "Image height in pixels (default: the UNet's sample_size × 8).") var height: Int?
    @Option(help: "Image width in pixels (default: the UNet's sample_size × 8).") var width: Int?
    @Option(help: "ddim or dpm (DPM-Solver++ 2M); default: the folder's scheduler (DDIM unless it is DPM-Solver).")
    var scheduler: String?
    @Option(help: "DDIM's η (0: deterministic).") var eta = 0.0
    @Option(help: "float32, float16 or bfloat16 for the networks.") var dtype = "float32"
    @Option(help: "cpu, cuda, cuda:N or best.") var device = "best"
    @Option(help: "Intra-op threads (default: LibTorch's own choice).") var threads: Int?

    func validate() throws {
        if prompts.isEmpty { throw ValidationError("give at least one prompt") }
        if steps < 1 { throw ValidationError("--steps must be at least 1") }
        if !negativePrompts.isEmpty, negativePrompts.count != 1, negativePrompts.count != prompts.count {
            throw ValidationError("give one --negative-prompt for all prompts or one per prompt")
        }
        if let scheduler, SchedulerKind(rawValue: scheduler) == nil {
            throw ValidationError("--scheduler must be ddim or dpm, not '\(scheduler)'")
        }
        if !["float32", "float16", "bfloat16"].contains(dtype) {
            throw ValidationError("--dtype must be float32, float16 or bfloat16")
        }
    }

    func run() throws {
        if let threads { Runtime.threads = threads }
        let target = try Device(parsing: device)
        let type: DType = dtype == "float16" ? .float16 : dtype == "bfloat16" ? .bfloat16 : .float32
        let loading = Date()
        let pipeline = try StableDiffusionPipeline.load(from: URL(fileURLWithPath: model),
                                                        scheduler: scheduler.flatMap(SchedulerKind.init(rawValue:)),
                                                        dtype: type, device: target)
        FileHandle.standardError.write(Data(String(format: "loaded %@ in %.1fs\n", model, Date().timeIntervalSince(loading)).utf8))

        let progress = ProgressReporter(title: "denoising", total: steps)
        let generator = try Generator(seed: seed)
        let latents = try pipeline.latents(prompts: prompts, negativePrompts: negativePrompts.isEmpty ? nil : negativePrompts,
                                           steps: steps, guidanceScale: guidance, height: height, width: width,
                                           generator: generator, eta: eta) { done, _ in progress.update(done) }
        progress.finish()
        let images = try pipeline.decode(latents)
        let output = URL(fileURLWithPath: out)
        for index in 0..<prompts.count {
            let stem = output.deletingPathExtension().lastPathComponent
            let url = prompts.count == 1 ? output : output.deletingLastPathComponent()
                .appendingPathComponent("\(stem)-\(index).\(output.pathExtension.isEmpty ? "png" : output.pathExtension)")
            try images.select(dim: 0, index: index).writeImage(to: url, range: .signed)
            print(url.path)
        }
    }
}
