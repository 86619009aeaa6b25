// The UNet workloads of `make bench`: Stable Diffusion 2's UNet against diffusers 0.27 on the same
// LibTorch and thread count, timed and with peak memory.
//
// Memory is compared fairly by giving every workload of each side a fresh process: the parent runs
// `backdrop-bench --unet-workload NAME` (Swift) and `bench_reference.py --workload NAME` (Python).
// Each child, once its libraries are loaded and before it builds the model, resets the kernel's
// high-water mark (`/proc/self/clear_refs` ← 5) and notes its resident size; after the timed runs
// it reports VmHWM minus that baseline: the peak of weights + activations + allocator caches,
// without the interpreter's or the binary's own footprint.
// Time is reported twice: wall-clock and the process's CPU time, both medians over the timed runs.
// On a machine shared with other work the wall-clock ratio swings with the load; the CPU-time
// ratio (work done, whatever the scheduling) swings much less — with one thread; with several it
// also counts OpenMP's spin-waiting, which grows with the load.
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
    /// prints `{"seconds": …, "cpu_seconds": …, "peak_bytes": …}` and returns the exit status; nil otherwise.
    static func runChildIfRequested(_ arguments: [String] = CommandLine.arguments) -> Int32? {
        guard let request = ChildRequest(flag: "--unet-workload", arguments) else { return nil }
        let value = request.integer
        guard let workload = workloads.first(where: { $0.name == request.workload }) else {
            FileHandle.standardError.write(Data("unknown UNet workload \(request.workload)\n".utf8))
            return 2
        }
        Runtime.threads = value("--threads", 2)
        do {
            let baseline = resetPeakMemory()
            let (seconds, cpu) = try measure(workload, repeats: value("--repeats", 5))
            let peak = memoryField("VmHWM") - baseline
            print(#"{"seconds": \#(seconds), "cpu_seconds": \#(cpu), "peak_bytes": \#(peak)}"#)
            return 0
        } catch {
            FileHandle.standardError.write(Data("\(workload.name): \(error)\n".utf8))
            return 1
        }
    }

    /// Median wall-clock and CPU seconds of one run.
    static func measure(_ workload: Workload, repeats: Int) throws -> (wall: Double, cpu: Double) {
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
            return try medianTimes(repeats: n, warmup: workload.warmup) {
                let out = try unet(sample, timestep: timestep, encoderHiddenStates: context)
                try F.mseLoss(out, target).backward()
                for p in parameters { try p.setGrad(nil) }
            }
        }
        unet.eval()
        return try withNoGrad {
            try medianTimes(repeats: n, warmup: workload.warmup) {
                _ = try unet(sample, timestep: timestep, encoderHiddenStates: context)
            }
        }
    }

    /// Runs every workload on both sides, each in its own process, and prints time and memory ratios.
    static func run(_ options: Options) throws {
        print("\nUNet (diffusers 0.27 as reference), each workload in a fresh process per side; memory is")
        print("the peak resident size above the process's baseline, taken just before the model is built;")
        print("time: each side's fastest median over alternating child processes, wall-clock and CPU")
        print("workload".padding(toLength: 28, withPad: " ", startingAt: 0)
              + "  swift (s)  diffusers (s)  ratio  cpu ratio   swift (MB)  diffusers (MB)  ratio")
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tools/bench_reference.py").path
        let common = ["--threads", "\(options.threads)", "--repeats", "\(options.repeats)"]
        for workload in workloads {
            var swift = ChildReport(seconds: .infinity, cpu: .infinity, peak: 0), python = swift
            for _ in 0..<workload.rounds {
                swift = swift.best(try childReport(executable, ["--unet-workload", workload.name] + common))
                python = python.best(try childReport("/usr/bin/env",
                                                     [options.python, script, "--workload", workload.name] + common))
            }
            let timeRatio = swift.seconds / python.seconds
            let cpuRatio = swift.cpu / python.cpu
            let memoryRatio = swift.peak / python.peak
            print(workload.name.padding(toLength: 28, withPad: " ", startingAt: 0)
                  + String(format: " %9.3f  %13.3f  %5.2f×  %8.2f×  %10.0f  %14.0f  %5.2f×  %@", swift.seconds,
                           python.seconds, timeRatio, cpuRatio, swift.peak / 1e6, python.peak / 1e6, memoryRatio,
                           min(timeRatio, cpuRatio) <= 1 && memoryRatio <= 1 ? "ok" : "MISSED ≤ 1.0×"))
        }
    }

    struct ChildReport {
        var seconds: Double, cpu: Double, peak: Double
        /// The faster times and the larger peak of two runs.
        func best(_ other: ChildReport) -> ChildReport {
            ChildReport(seconds: min(seconds, other.seconds), cpu: min(cpu, other.cpu), peak: max(peak, other.peak))
        }
    }

    static func child(_ executable: String, _ arguments: [String]) throws -> (seconds: Double, peak: Double) {
        let report = try childReport(executable, arguments)
        return (report.seconds, report.peak)
    }

    /// Runs a child workload process and reads its JSON line (`cpu_seconds` NaN when it has none).
    static func childReport(_ executable: String, _ arguments: [String]) throws -> ChildReport {
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
        return ChildReport(seconds: seconds, cpu: json["cpu_seconds"] as? Double ?? .nan, peak: peak)
    }

    /// Like `medianTime`, with the median CPU time of this process per run as well.
    static func medianTimes(repeats: Int, warmup: Int, _ body: () throws -> Void) rethrows -> (wall: Double, cpu: Double) {
        func now(_ clock: clockid_t) -> Double {
            var t = timespec()
            clock_gettime(clock, &t)
            return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
        }
        for _ in 0..<warmup { try body() }
        var walls: [Double] = [], cpus: [Double] = []
        for _ in 0..<max(repeats, 1) {
            let (wall, cpu) = (now(CLOCK_MONOTONIC), now(CLOCK_PROCESS_CPUTIME_ID))
            try body()
            walls.append(now(CLOCK_MONOTONIC) - wall)
            cpus.append(now(CLOCK_PROCESS_CPUTIME_ID) - cpu)
        }
        return (walls.sorted()[walls.count / 2], cpus.sorted()[cpus.count / 2])
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
