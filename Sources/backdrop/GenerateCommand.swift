import ArgumentParser
import Foundation
import Media
import StableDiffusion
import Support
import Torch

extension SchedulerKind: ExpressibleByArgument {}

/// `--dtype`: the floating-point types the networks can run in.
enum NetworkDType: String, CaseIterable, ExpressibleByArgument {
    case float32, float16, bfloat16

    var dtype: DType {
        switch self {
        case .float32: .float32
        case .float16: .float16
        case .bfloat16: .bfloat16
        }
    }
}

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
    @Option(name: [.customLong("out"), .customLong("output")], help: "Output PNG (with several prompts: OUT-<i>.png).")
    var out = "out.png"
    @Option(help: "Image height in pixels, a multiple of 8 (default: the UNet's sample_size × 8).") var height: Int?
    @Option(help: "Image width in pixels, a multiple of 8 (default: the UNet's sample_size × 8).") var width: Int?
    @Option(help: "ddim or dpm (DPM-Solver++ 2M); default: the folder's scheduler (DDIM unless it is DPM-Solver).")
    var scheduler: SchedulerKind?
    @Option(help: "DDIM's η (0: deterministic).") var eta = 0.0
    @Option(help: "The networks' floating-point type.") var dtype: NetworkDType = .float32
    @OptionGroup var device: DeviceOptions
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        if prompts.isEmpty { throw ValidationError("give at least one prompt") }
        if steps < 1 { throw ValidationError("--steps must be at least 1, not \(steps)") }
        if !negativePrompts.isEmpty, negativePrompts.count != 1, negativePrompts.count != prompts.count {
            throw ValidationError("give one --negative-prompt for all prompts or one per prompt")
        }
        try checkRange("--guidance", guidance, in: guidanceRange)
        try checkRange("--eta", eta, in: 0...1)
        try validateLatentSize("--height", height)
        try validateLatentSize("--width", width)
    }

    func run() throws {
        threads.apply()
        let loading = Date()
        let pipeline = try StableDiffusionPipeline.load(from: URL(fileURLWithPath: model), scheduler: scheduler, dtype: dtype.dtype,
                                                        device: try device.resolved())
        FileHandle.standardError.write(Data(String(format: "loaded %@ in %.1fs\n", model, Date().timeIntervalSince(loading)).utf8))

        let progress = ProgressReporter(title: "denoising", total: steps)
        let latents = try pipeline.latents(prompts: prompts, negativePrompts: negativePrompts.isEmpty ? nil : negativePrompts,
                                           steps: steps, guidanceScale: guidance, height: height, width: width,
                                           generator: Generator(seed: seed), eta: eta) { done, _ in progress.update(done) }
        progress.finish()
        for file in try pipeline.decode(latents).writeImages(to: URL(fileURLWithPath: out), range: .signed) {
            print(file.path)
        }
    }
}
