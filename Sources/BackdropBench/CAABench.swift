// The CAA training-step workloads of `make bench-caa` (issue 7): Backdrop's MultiViewUNet (frozen
// UNet, CAA gradients only, geometry cached per layout and resolution) against
// tools/bench_caa_reference.py, an MVDiffusion-style PyTorch model of the same architecture that
// recomputes the correspondences in every forward and keeps gradients on the UNet.
//
// One step: forward over the 8 views of one panorama, MSE against the noise, backward, AdamW on the
// CAA parameters. Each side runs in a fresh process (`backdrop-bench --caa-workload NAME`,
// `bench_caa_reference.py --workload NAME`) with the same thread count. Time: median of the timed
// steps after the warm-up step (wall-clock and process CPU time). Memory: once the model, inputs
// and optimiser exist, the kernel's high-water mark is reset (`/proc/self/clear_refs` ← 5) and the
// resident size noted; after the steps VmHWM minus that baseline is the step's peak memory
// (activations, gradients, optimiser state, allocator caches). Model size is reported separately.
import Foundation
import Geometry
import MultiView
import StableDiffusion
import Torch

enum CAABench {
    struct Workload {
        let name: String
        let config: UNet2DConditionConfig
        let views: Int
        let imageSize: Int
        let warmup: Int
    }

    /// tools/make_tiny_sd.py's UNet: widths 32, 64.
    static var smoke: UNet2DConditionConfig {
        var config = UNet2DConditionConfig()
        config.block_out_channels = [32, 64]
        config.down_block_types = ["CrossAttnDownBlock2D", "DownBlock2D"]
        config.up_block_types = ["UpBlock2D", "CrossAttnUpBlock2D"]
        config.layers_per_block = 1
        config.attention_head_dim = [2, 2]
        config.cross_attention_dim = 32
        config.use_linear_projection = true
        config.norm_num_groups = 8
        return config
    }

    /// SD2's widths and heads with one resnet per down block.
    static var sd2Width: UNet2DConditionConfig {
        var config = UNetBench.sd2Base
        config.layers_per_block = 1
        return config
    }

    // Names and shapes shared with tools/bench_caa_reference.py (WORKLOADS).
    static let workloads = [
        Workload(name: "caa_smoke_8x64", config: smoke, views: 8, imageSize: 64, warmup: 1),
        Workload(name: "caa_sd2w_lpb1_8x128", config: sd2Width, views: 8, imageSize: 128, warmup: 1),
    ]

    /// In a child process (`--caa-workload NAME --threads N --repeats N`): runs one workload and
    /// prints `{"seconds", "cpu_seconds", "peak_bytes", "model_bytes"}`; nil when not asked.
    static func runChildIfRequested(_ arguments: [String] = CommandLine.arguments) -> Int32? {
        guard let request = ChildRequest(flag: "--caa-workload", arguments) else { return nil }
        let value = request.integer
        guard let workload = workloads.first(where: { $0.name == request.workload }) else {
            FileHandle.standardError.write(Data("unknown CAA workload \(request.workload)\n".utf8))
            return 2
        }
        Runtime.threads = value("--threads", 2)
        do {
            let before = UNetBench.resetPeakMemory()
            let step = try makeStep(workload)
            let baseline = UNetBench.resetPeakMemory()
            let (seconds, cpu) = try UNetBench.medianTimes(repeats: max(value("--repeats", 3), 3), warmup: workload.warmup, step)
            let peak = UNetBench.memoryField("VmHWM") - baseline
            print(#"{"seconds": \#(seconds), "cpu_seconds": \#(cpu), "peak_bytes": \#(peak), "model_bytes": \#(baseline - before)}"#)
            return 0
        } catch {
            FileHandle.standardError.write(Data("\(workload.name): \(error)\n".utf8))
            return 1
        }
    }

    /// Builds the model, inputs and optimiser and returns one training step.
    static func makeStep(_ w: Workload) throws -> () throws -> Void {
        let g = try Generator(seed: 0)
        let latent = w.imageSize / 8
        let model = try MultiViewUNet(unet: UNet2DConditionModel(config: w.config), latentSize: latent)
        model.train()
        let cross = w.config.block_out_channels.count == 2 ? 32 : 1024
        let sample = try Tensor.randn([w.views, 4, latent, latent], generator: g)
        let timestep = try Tensor.full([1], 500)  // one per panorama, repeated for its views
        let context = try Tensor.randn([w.views, 77, cross], generator: g)
        let noise = try Tensor.randn(sample.shape, generator: g)
        // MVDiffusion's cameras: FOV 90°, yaw 360°/V apart.
        let layout = try ViewLayout.horizon(count: w.views, fov: 90, resolution: w.imageSize)
        let optimizer = try AdamW(model.trainableParameters, lr: 2e-4, weightDecay: 0.01)
        return {
            let prediction = try model(sample, timestep: timestep, encoderHiddenStates: context, layout: layout)
            try F.mseLoss(prediction, noise).backward()
            try optimizer.step()
            try optimizer.zeroGrad()
        }
    }

    /// Runs every workload on both sides, each in its own process, and prints time and memory ratios.
    static func run(_ options: Options) throws {
        print("\nCAA training step (issue 7): Backdrop's MultiViewUNet vs an MVDiffusion-style PyTorch model")
        print("(correspondences recomputed every forward, UNet gradients kept); fresh process per side;")
        print("time: median step after 1 warm-up (wall, and process CPU); memory: peak resident size during the")
        print("steps above the resident size after the model/inputs/optimiser were built (model size beside it)")
        print("workload".padding(toLength: 22, withPad: " ", startingAt: 0)
              + "  swift (s)  torch (s)  ratio  cpu ratio  swift (MB)  torch (MB)  ratio  model MB (swift/torch)")
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tools/bench_caa_reference.py").path
        let common = ["--threads", "\(options.threads)", "--repeats", "\(max(options.repeats, 3))"]
        for w in workloads {
            let swift = try report(executable, ["--caa-workload", w.name] + common)
            let torch = try report("/usr/bin/env", [options.python, script, "--workload", w.name] + common)
            let time = swift.seconds / torch.seconds, cpu = swift.cpu / torch.cpu, memory = swift.peak / torch.peak
            let ok = time <= 1 / 1.5 && memory <= 0.7
            print(w.name.padding(toLength: 22, withPad: " ", startingAt: 0)
                  + String(format: " %9.3f  %9.3f  %5.2f×  %8.2f×  %10.0f  %10.0f  %5.2f×  %6.0f / %-6.0f %@", swift.seconds,
                           torch.seconds, time, cpu, swift.peak / 1e6, torch.peak / 1e6, memory, swift.model / 1e6,
                           torch.model / 1e6, ok ? "ok (time ≤ 0.67×, memory ≤ 0.7×)" : "MISSED time ≤ 0.67×, memory ≤ 0.7×"))
        }
    }

    struct Report { var seconds: Double, cpu: Double, peak: Double, model: Double }

    static func report(_ executable: String, _ arguments: [String]) throws -> Report {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let seconds = json["seconds"] as? Double, let cpu = json["cpu_seconds"] as? Double,
              let peak = json["peak_bytes"] as? Double, let model = json["model_bytes"] as? Double else {
            throw TorchError("\(arguments.joined(separator: " ")) failed (status \(process.terminationStatus))")
        }
        return Report(seconds: seconds, cpu: cpu, peak: peak, model: model)
    }
}
