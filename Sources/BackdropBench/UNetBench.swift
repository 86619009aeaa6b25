// The UNet workloads of `make bench`: Stable Diffusion 2's UNet against diffusers 0.27 on the same
// LibTorch and thread count, timed and with peak memory.
//
// Memory is compared fairly by giving every workload of each side a fresh process: the parent runs
// `backdrop-bench --unet-workload NAME` (Swift) and `bench_reference.py --workload NAME` (Python).
// Each child, once its libraries are loaded and before it builds the model, resets the kernel's
// high-water mark (`/proc/self/clear_refs` ← 5) and notes its resident size; after the timed runs
// it reports VmHWM minus that baseline: the peak of weights + activations + allocator caches,
// without the interpreter's or the binary's own footprint.
import Foundation
import StableDiffusion
import Torch

enum UNetBench {
    struct Workload {
        let name: String
        let config: UNet2DConditionConfig
        let batch: Int
        let latent: Int
        let backward: Bool
        /// Warm-up runs and the most timed runs (the full-size UNet takes tens of seconds a step).
        let warmup: Int
        let maxRepeats: Int
        /// Child processes per side, alternating Swift and Python; each side's fastest median counts,
        /// which keeps other load on a shared machine from deciding the ratio.
        let rounds: Int
    }

    /// SD 2-base's UNet (block_out_channels 320/640/1280/1280, 5/10/20/20 heads of width 64).
    static var sd2Base: UNet2DConditionConfig {
        var config = UNet2DConditionConfig()
        config.block_out_channels = [320, 640, 1280, 1280]
        config.attention_head_dim = [5, 10, 20, 20]
        config.cross_attention_dim = 1024
        config.use_linear_projection = true
        return config
    }

    /// The same architecture at 1/5 of the width; heads scaled so that they stay 64 wide.
    static var sd2Small: UNet2DConditionConfig {
        var config = sd2Base
        config.block_out_channels = [64, 128, 256, 256]
        config.attention_head_dim = [1, 2, 4, 4]
        return config
    }

    // Names and shapes shared with tools/bench_reference.py (UNET_WORKLOADS).
    static let workloads = [
        Workload(name: "unet_sd2_small_32_fwd", config: sd2Small, batch: 2, latent: 32, backward: false,
                 warmup: 2, maxRepeats: 100, rounds: 3),
        Workload(name: "unet_sd2_small_32_fwd_bwd", config: sd2Small, batch: 2, latent: 32, backward: true,
                 warmup: 2, maxRepeats: 100, rounds: 3),
        Workload(name: "unet_sd2_base_64_fwd", config: sd2Base, batch: 1, latent: 64, backward: false,
                 warmup: 1, maxRepeats: 3, rounds: 1),
    ]

    /// In a child process (`--unet-workload NAME --threads N --repeats N`): runs one workload,
    /// prints `{"seconds": …, "peak_bytes": …}` and returns the exit status; nil otherwise.
    static func runChildIfRequested(_ arguments: [String] = CommandLine.arguments) -> Int32? {
        guard let flag = arguments.firstIndex(of: "--unet-workload"), flag + 1 < arguments.count else { return nil }
        func value(_ name: String, _ fallback: Int) -> Int {
            arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? Int(arguments[$0 + 1]) : nil } ?? fallback
        }
        guard let workload = workloads.first(where: { $0.name == arguments[flag + 1] }) else {
            FileHandle.standardError.write(Data("unknown UNet workload \(arguments[flag + 1])\n".utf8))
            return 2
        }
        Runtime.threads = value("--threads", 2)
        do {
            let baseline = resetPeakMemory()
            let seconds = try measure(workload, repeats: value("--repeats", 5))
            let peak = memoryField("VmHWM") - baseline
            print(#"{"seconds": \#(seconds), "peak_bytes": \#(peak)}"#)
            return 0
        } catch {
            FileHandle.standardError.write(Data("\(workload.name): \(error)\n".utf8))
            return 1
        }
    }

    static func measure(_ workload: Workload, repeats: Int) throws -> Double {
        let g = try Generator(seed: 0)
        let unet = try UNet2DConditionModel(config: workload.config)
        let sample = try Tensor.randn([workload.batch, 4, workload.latent, workload.latent], generator: g)
        let timestep = try Tensor.full([workload.batch], 500)
        let context = try Tensor.randn([workload.batch, 77, 1024], generator: g)
        let n = min(repeats, workload.maxRepeats)
        if workload.backward {
            unet.train()
            let parameters = unet.parameters()
            let target = try Tensor.randn(sample.shape, generator: g)
            return try medianTime(repeats: n, warmup: workload.warmup) {
                let out = try unet(sample, timestep: timestep, encoderHiddenStates: context)
                try F.mseLoss(out, target).backward()
                for p in parameters { try p.setGrad(nil) }
            }
        }
        unet.eval()
        return try withNoGrad {
            try medianTime(repeats: n, warmup: workload.warmup) {
                _ = try unet(sample, timestep: timestep, encoderHiddenStates: context)
            }
        }
    }

    /// Runs every workload on both sides, each in its own process, and prints time and memory ratios.
    static func run(_ options: Options) throws {
        print("\nUNet (diffusers 0.27 as reference), each workload in a fresh process per side; memory is")
        print("the peak resident size above the process's baseline, taken just before the model is built;")
        print("time: each side's fastest median over alternating child processes")
        print("workload".padding(toLength: 28, withPad: " ", startingAt: 0)
              + "  swift (s)  diffusers (s)  ratio   swift (MB)  diffusers (MB)  ratio")
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tools/bench_reference.py").path
        let common = ["--threads", "\(options.threads)", "--repeats", "\(options.repeats)"]
        for workload in workloads {
            var swift = (seconds: Double.infinity, peak: 0.0), python = swift
            for _ in 0..<workload.rounds {
                let s = try child(executable, ["--unet-workload", workload.name] + common)
                let p = try child("/usr/bin/env", [options.python, script, "--workload", workload.name] + common)
                swift = (min(swift.seconds, s.seconds), max(swift.peak, s.peak))
                python = (min(python.seconds, p.seconds), max(python.peak, p.peak))
            }
            let timeRatio = swift.seconds / python.seconds
            let memoryRatio = swift.peak / python.peak
            print(workload.name.padding(toLength: 28, withPad: " ", startingAt: 0)
                  + String(format: " %9.3f  %13.3f  %5.2f×  %10.0f  %14.0f  %5.2f×  %@", swift.seconds, python.seconds,
                           timeRatio, swift.peak / 1e6, python.peak / 1e6, memoryRatio,
                           timeRatio <= 1 && memoryRatio <= 1 ? "ok" : "MISSED ≤ 1.0×"))
        }
    }

    private static func child(_ executable: String, _ arguments: [String]) throws -> (seconds: Double, peak: Double) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let seconds = json["seconds"] as? Double, let peak = json["peak_bytes"] as? Double else {
            throw TorchError("\(arguments.joined(separator: " ")) failed (status \(process.terminationStatus))")
        }
        return (seconds, peak)
    }

    /// Resets VmHWM to the current resident size (Linux ≥ 4.0) and returns that size in bytes.
    static func resetPeakMemory() -> Int {
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
        return memoryField("VmRSS")
    }

    /// A `kB` field of /proc/self/status, in bytes.
    static func memoryField(_ name: String) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }),
              let kB = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap({ Int($0) }) else { return 0 }
        return kB * 1024
    }
}
