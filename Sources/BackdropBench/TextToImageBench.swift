// The miniature SD's text-to-image training step (`make bench-pretrain`, issue 13): Backdrop's UNet
// and CLIP text encoder against diffusers' and transformers' on the same LibTorch and thread count,
// both built from the configs of the shipped folder (models/miniature/sd): ε-MSE on a batch of 16²
// latents, AdamW. Two steps are timed, as the miniature's stages train: the text encoder trained with
// the UNet (stage 2), and frozen under no-grad with the UNet alone trained (stages 2c and 2d, the
// shipped model).
// Each side runs in a fresh process (`backdrop-bench --t2i-child DIR`, tools/bench_t2i_reference.py);
// time is the median step after one warm-up step.
import Foundation
import StableDiffusion
import Torch

enum TextToImageBench {
    static let batch = 32

    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The shipped miniature SD, whose configs both sides build their fresh networks from.
    static var modelFolder: URL { repositoryRoot.appendingPathComponent("models/miniature/sd") }

    /// In a child process (`--t2i-child DIR --threads N --repeats N --frozen-text 0|1`): prints the
    /// step's JSON report.
    static func runChildIfRequested(_ arguments: [String] = CommandLine.arguments) -> Int32? {
        guard let request = ChildRequest(flag: "--t2i-child", arguments) else { return nil }
        Runtime.threads = request.integer("--threads", 2)
        do {
            let folder = try ModelFolder(url: URL(fileURLWithPath: request.workload))
            let before = UNetBench.resetPeakMemory()
            let unet = try UNet2DConditionModel(config: ConfigFile.decode(UNet2DConditionConfig.self, from: folder.configURL("unet")))
            let text = try CLIPTextModel(config: CLIPTextConfig.load(folder.configURL("text_encoder")))
            let frozenText = request.integer("--frozen-text", 0) != 0
            unet.train()
            if frozenText { text.freeze() } else { text.train() }
            let g = try Generator(seed: 0)
            let size = unet.config.sample_size ?? 16
            let latents = try Tensor.randn([batch, unet.config.in_channels, size, size], generator: g)
            let noise = try Tensor.randn(latents.shape, generator: g)
            let timesteps = try Tensor.randint(0, 1000, [batch], generator: g)
            let ids = try Tensor.randint(0, text.config.vocab_size, [batch, 77], generator: g)
            let optimizer = try AdamW(unet.parameters() + (frozenText ? [] : text.parameters()), lr: 1e-4, weightDecay: 0.01)
            let baseline = UNetBench.resetPeakMemory()
            let (seconds, cpu) = try UNetBench.medianTimes(repeats: max(request.integer("--repeats", 3), 3), warmup: 1) {
                let context = frozenText ? try withNoGrad { try text(ids) } : try text(ids)
                let prediction = try unet(latents, timestep: timesteps, encoderHiddenStates: context)
                try F.mseLoss(prediction, noise).backward()
                try optimizer.step()
                try optimizer.zeroGrad()
            }
            let peak = UNetBench.memoryField("VmHWM") - baseline
            print(#"{"seconds": \#(seconds), "cpu_seconds": \#(cpu), "peak_bytes": \#(peak), "model_bytes": \#(baseline - before)}"#)
            return 0
        } catch {
            FileHandle.standardError.write(Data("text-to-image step: \(error)\n".utf8))
            return 1
        }
    }

    static func run(_ options: Options) throws {
        let folder = modelFolder
        print("\nText-to-image training step of the miniature SD (issue 13): Backdrop vs diffusers + transformers,")
        print("\(batch) latents of 16², AdamW; fresh process per side, median after 1 warm-up")
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let script = repositoryRoot.appendingPathComponent("tools/bench_t2i_reference.py").path
        let common = ["--threads", "\(options.threads)", "--repeats", "\(max(options.repeats, 3))"]
        for (frozen, what) in [(false, "UNet + text encoder trained (stage 2)"), (true, "UNet trained, text encoder frozen (stages 2c, 2d: shipped)")] {
            let mode = ["--frozen-text", frozen ? "1" : "0"]
            let swift = try CAABench.report(executable, ["--t2i-child", folder.path] + common + mode)
            let torch = try CAABench.report("/usr/bin/env", [options.python, script, "--model", folder.path, "--batch", "\(batch)"] + common + mode)
            let ratio = swift.seconds / torch.seconds
            print(String(format: "%@: swift %.3f s, torch %.3f s, ratio %.2f× (cpu %.2f×), peak memory %.0f / %.0f MB  %@",
                         what, swift.seconds, torch.seconds, ratio, swift.cpu / torch.cpu, swift.peak / 1e6, torch.peak / 1e6,
                         ratio <= 1.0 ? "ok (≤ 1.0×)" : "MISSED ≤ 1.0×"))
        }
    }
}
