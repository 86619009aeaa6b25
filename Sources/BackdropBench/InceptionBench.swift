// The Inception stage of `make bench`: FID feature extraction (2048-d pool3) with the real FID
// Inception weights (the NVIDIA archive `make setup` fetches) against pytorch-fid 0.3.0's InceptionV3
// on the same LibTorch and thread count. The parent maps the archive into torchvision's layout once
// and writes that state dict; pytorch-fid's network loads it (strictly) and, in a separate check run,
// its features are compared with the archive's own TorchScript forward, so both sides compute the same
// network on the same weights. Both time one batch of 299×299 inputs already in Inception's range (resizing is not timed),
// each in fresh child processes, alternating; each side's fastest median counts (as CLIPBench does).
import Evaluation
import Foundation
import Support
import Torch

enum InceptionBench {
    struct Workload {
        let name: String
        let batch: Int
        let warmup: Int
        let maxRepeats: Int
        let rounds: Int
    }

    // Names and shapes shared with tools/bench_inception_reference.py (WORKLOADS).
    static let workloads = [Workload(name: "fid_inception_pool3_b8", batch: 8, warmup: 1, maxRepeats: 5, rounds: 2)]

    static var archive: URL { Assets.root.appendingPathComponent("models/fid_inception_nvidia.pt") }

    /// The same inputs on both sides: a seeded normal batch clamped to Inception's [−1, 1] range.
    static func inputs(_ batch: Int) throws -> Tensor {
        try Tensor.randn([batch, 3, 299, 299], generator: Generator(seed: 0)).clamp(min: -1, max: 1)
    }

    /// In a child process (`--inception-workload NAME --threads N --repeats N`): runs one workload,
    /// prints `{"seconds": …, "cpu_seconds": …, "peak_bytes": …}` and returns the exit status; nil otherwise.
    static func runChildIfRequested(_ arguments: [String] = CommandLine.arguments) -> Int32? {
        guard let request = ChildRequest(flag: "--inception-workload", arguments) else { return nil }
        let value = request.integer
        guard let workload = workloads.first(where: { $0.name == request.workload }) else {
            FileHandle.standardError.write(Data("unknown Inception workload \(request.workload)\n".utf8))
            return 2
        }
        Runtime.threads = value("--threads", 2)
        do {
            let baseline = UNetBench.resetPeakMemory()
            let model = try InceptionV3.load(archive)
            let x = try inputs(workload.batch)
            let (seconds, cpu) = try withInferenceMode {
                try UNetBench.medianTimes(repeats: min(value("--repeats", 5), workload.maxRepeats), warmup: workload.warmup) {
                    _ = try model.features(x).pool2048
                }
            }
            print(#"{"seconds": \#(seconds), "cpu_seconds": \#(cpu), "peak_bytes": \#(UNetBench.memoryField("VmHWM") - baseline)}"#)
            return 0
        } catch {
            FileHandle.standardError.write(Data("\(workload.name): \(error)\n".utf8))
            return 1
        }
    }

    static func run(_ options: Options) throws {
        guard FileManager.default.fileExists(atPath: archive.path) else {
            print("\nInception: skipped, no FID Inception weights at \(archive.path) (run `make setup`)")
            return
        }
        print("\nFID Inception pool3 features (pytorch-fid 0.3.0 InceptionV3 as reference), the real NVIDIA-archive")
        print("weights on both sides, batch of 299×299 inputs, each workload in fresh processes per side; each side's")
        print("fastest median over alternating child processes, from wall-clock and from process CPU time")
        // torchvision-layout state dict of the archive for pytorch-fid's network.
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("backdrop-bench-inception-\(getpid()).safetensors")
        defer { try? FileManager.default.removeItem(at: state) }
        try Safetensors.save(try InceptionV3.load(archive).stateDict(), to: state)

        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tools/bench_inception_reference.py").path
        let check = try pythonCheck(options.python, script, state: state)
        print(String(format: "pytorch-fid's network with these weights vs the archive's forward: max-abs %.2e", check))
        print("workload".padding(toLength: 26, withPad: " ", startingAt: 0)
              + "  swift img/s  pytorch-fid img/s  speed-up  cpu speed-up   swift (MB)  pytorch-fid (MB)")
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let common = ["--threads", "\(options.threads)", "--repeats", "\(options.repeats)"]
        for workload in workloads {
            var swift = UNetBench.ChildReport(seconds: .infinity, cpu: .infinity, peak: 0), python = swift
            for _ in 0..<workload.rounds {
                swift = swift.best(try UNetBench.childReport(executable, ["--inception-workload", workload.name] + common))
                python = python.best(try UNetBench.childReport("/usr/bin/env", [options.python, script, "--workload", workload.name,
                                                                                "--state", state.path] + common))
            }
            let (ours, theirs) = (Double(workload.batch) / swift.seconds, Double(workload.batch) / python.seconds)
            let cpuSpeedUp = python.cpu / swift.cpu
            print(workload.name.padding(toLength: 26, withPad: " ", startingAt: 0)
                  + String(format: "  %11.3f  %17.3f  %7.2f×  %11.2f×  %11.0f  %16.0f  %@", ours, theirs, ours / theirs,
                           cpuSpeedUp, swift.peak / 1e6, python.peak / 1e6,
                           max(ours / theirs, cpuSpeedUp) >= 1 ? "ok" : "MISSED ≥ 1.0×"))
        }
    }

    /// The reference script's `--check`: max-abs difference of its features from the archive's forward.
    static func pythonCheck(_ python: String, _ script: String, state: URL) throws -> Double {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, script, "--check", "--state", state.path, "--archive", archive.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let error = json["max_abs_vs_archive"] as? Double else {
            throw TorchError("\(script) --check failed (status \(process.terminationStatus))")
        }
        guard process.terminationStatus == 0 else {
            throw TorchError("pytorch-fid's network with the mapped weights differs from the archive (max-abs \(error)): not comparable")
        }
        return error
    }
}
