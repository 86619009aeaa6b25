// The miniature SD's second-stage training step (`make bench-pretrain`, issue 13): Backdrop's UNet
// and CLIP text encoder against diffusers' and transformers' on the same LibTorch and thread count,
// both built from the configs of the untrained miniature folder (tools/make_tiny_sd.py --preset
// miniature): ε-MSE on a batch of 16² latents, backward through both networks, AdamW on both. Each
// side runs in a fresh process (`backdrop-bench --t2i-child DIR`, tools/bench_t2i_reference.py);
// time is the median step after one warm-up step.
import Foundation
import StableDiffusion
import Torch

enum TextToImageBench {
    static let batch = 32

    /// The miniature folder: `$BACKDROP_CACHE/models/miniature-init` (`make pretrain` writes it).
    static var modelFolder: URL {
        let cache = ProcessInfo.processInfo.environment["BACKDROP_CACHE"].flatMap { $0.isEmpty ? nil : $0 }
            ?? NSHomeDirectory() + "/.cache/backdrop"
        return URL(fileURLWithPath: cache).appendingPathComponent("models/miniature-init")
    }

    /// In a child process (`--t2i-child DIR --threads N --repeats N`): prints the step's JSON report.
    static func runChildIfRequested(_ arguments: [String] = CommandLine.arguments) -> Int32? {
        guard let request = ChildRequest(flag: "--t2i-child", arguments) else { return nil }
        Runtime.threads = request.integer("--threads", 2)
        do {
            let folder = try ModelFolder(url: URL(fileURLWithPath: request.workload))
            let before = UNetBench.resetPeakMemory()
            let unet = try UNet2DConditionModel(config: ConfigFile.decode(UNet2DConditionConfig.self, from: folder.configURL("unet")))
            let text = try CLIPTextModel(config: CLIPTextConfig.load(folder.configURL("text_encoder")))
            unet.train()
            text.train()
            let g = try Generator(seed: 0)
            let size = unet.config.sample_size ?? 16
            let latents = try Tensor.randn([batch, unet.config.in_channels, size, size], generator: g)
            let noise = try Tensor.randn(latents.shape, generator: g)
            let timesteps = try Tensor.randint(0, 1000, [batch], generator: g)
            let ids = try Tensor.randint(0, text.config.vocab_size, [batch, 77], generator: g)
            let optimizer = try AdamW(unet.parameters() + text.parameters(), lr: 1e-4, weightDecay: 0.01)
            let baseline = UNetBench.resetPeakMemory()
            let (seconds, cpu) = try UNetBench.medianTimes(repeats: max(request.integer("--repeats", 3), 3), warmup: 1) {
                let prediction = try unet(latents, timestep: timesteps, encoderHiddenStates: text(ids))
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
        guard FileManager.default.fileExists(atPath: folder.appendingPathComponent("model_index.json").path) else {
            throw TorchError("\(folder.path) is missing: `make pretrain` (or tools/make_tiny_sd.py --preset miniature) writes it")
        }
        print("\nText-to-image training step of the miniature SD (issue 13): Backdrop vs diffusers + transformers,")
        print("\(batch) latents of 16², UNet and text encoder trained, AdamW; fresh process per side, median after 1 warm-up")
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tools/bench_t2i_reference.py").path
        let common = ["--threads", "\(options.threads)", "--repeats", "\(max(options.repeats, 3))"]
        let swift = try CAABench.report(executable, ["--t2i-child", folder.path] + common)
        let torch = try CAABench.report("/usr/bin/env", [options.python, script, "--model", folder.path, "--batch", "\(batch)"] + common)
        let ratio = swift.seconds / torch.seconds
        print(String(format: "step: swift %.3f s, torch %.3f s, ratio %.2f× (cpu %.2f×), peak memory %.0f / %.0f MB  %@",
                     swift.seconds, torch.seconds, ratio, swift.cpu / torch.cpu, swift.peak / 1e6, torch.peak / 1e6,
                     ratio <= 1.0 ? "ok (≤ 1.0×)" : "MISSED ≤ 1.0×"))
    }
}
