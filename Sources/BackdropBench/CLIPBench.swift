// The CLIP stage of `make bench`: image embeddings of CLIP ViT-L/14 (the CLIP score's default
// model, openai/clip-vit-large-patch14) against transformers 4.40's CLIPVisionModelWithProjection
// (= CLIPModel.get_image_features) on the same LibTorch and thread count. Both sides build the
// tower with random weights of the real shapes (no CLIP weights are reachable here) and embed the
// same-shaped batch of 224×224 pixel values; preprocessing is not timed. Each side runs in its own
// process, alternating, and each side's fastest median counts (as UNetBench does).
import Evaluation
import Foundation
import Torch

enum CLIPBench {
    struct Workload {
        let name: String
        let config: CLIPVisionConfig
        let projectionDim: Int
        let batch: Int
        let warmup: Int
        let maxRepeats: Int
        let rounds: Int
    }

    // Names and shapes shared with tools/bench_reference.py (CLIP_WORKLOADS).
    static let workloads = [
        Workload(name: "clip_vit_l14_image_embeds_b4",
                 config: CLIPVisionConfig(hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 24,
                                          num_attention_heads: 16, image_size: 224, patch_size: 14),
                 projectionDim: 768, batch: 4, warmup: 1, maxRepeats: 5, rounds: 2),
    ]

    /// In a child process (`--clip-workload NAME --threads N --repeats N`): runs one workload,
    /// prints `{"seconds": …, "peak_bytes": …}` and returns the exit status; nil otherwise.
    static func runChildIfRequested(_ arguments: [String] = CommandLine.arguments) -> Int32? {
        guard let request = ChildRequest(flag: "--clip-workload", arguments) else { return nil }
        let value = request.integer
        guard let workload = workloads.first(where: { $0.name == request.workload }) else {
            FileHandle.standardError.write(Data("unknown CLIP workload \(request.workload)\n".utf8))
            return 2
        }
        Runtime.threads = value("--threads", 2)
        do {
            let baseline = UNetBench.resetPeakMemory()
            let (seconds, cpu) = try measure(workload, repeats: value("--repeats", 5))
            print(#"{"seconds": \#(seconds), "cpu_seconds": \#(cpu), "peak_bytes": \#(UNetBench.memoryField("VmHWM") - baseline)}"#)
            return 0
        } catch {
            FileHandle.standardError.write(Data("\(workload.name): \(error)\n".utf8))
            return 1
        }
    }

    /// Median wall-clock and process CPU seconds of one batch.
    static func measure(_ workload: Workload, repeats: Int) throws -> (wall: Double, cpu: Double) {
        let tower = try CLIPVisionTransformer(workload.config)
        let projection = try Linear(workload.config.hidden_size, workload.projectionDim, bias: false)
        tower.eval()
        let size = workload.config.image_size
        let pixels = try Tensor.randn([workload.batch, 3, size, size], generator: Generator(seed: 0))
        return try withInferenceMode {
            try UNetBench.medianTimes(repeats: min(repeats, workload.maxRepeats), warmup: workload.warmup) {
                _ = try projection(tower(pixels).pooled)
            }
        }
    }

    static func run(_ options: Options) throws {
        print("\nCLIP image embeddings (transformers 4.40 CLIPVisionModelWithProjection as reference), random")
        print("ViT-L/14 weights, 224×224, each workload in a fresh process per side; each side's fastest")
        print("median over alternating child processes, from wall-clock and from process CPU time")
        print("workload".padding(toLength: 30, withPad: " ", startingAt: 0)
              + "  swift img/s  transformers img/s  speed-up  cpu speed-up   swift (MB)  transformers (MB)")
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tools/bench_reference.py").path
        let common = ["--threads", "\(options.threads)", "--repeats", "\(options.repeats)"]
        for workload in workloads {
            var swift = UNetBench.ChildReport(seconds: .infinity, cpu: .infinity, peak: 0), python = swift
            for _ in 0..<workload.rounds {
                swift = swift.best(try UNetBench.childReport(executable, ["--clip-workload", workload.name] + common))
                python = python.best(try UNetBench.childReport("/usr/bin/env",
                                                               [options.python, script, "--workload", workload.name] + common))
            }
            let (ours, theirs) = (Double(workload.batch) / swift.seconds, Double(workload.batch) / python.seconds)
            let cpuSpeedUp = python.cpu / swift.cpu
            print(workload.name.padding(toLength: 30, withPad: " ", startingAt: 0)
                  + String(format: "  %11.3f  %18.3f  %7.2f×  %11.2f×  %11.0f  %17.0f  %@", ours, theirs, ours / theirs,
                           cpuSpeedUp, swift.peak / 1e6, python.peak / 1e6,
                           max(ours / theirs, cpuSpeedUp) >= 1 ? "ok" : "MISSED ≥ 1.0×"))
        }
    }
}
