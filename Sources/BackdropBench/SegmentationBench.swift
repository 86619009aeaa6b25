// The segmentation stage of `make bench`: MediaPipe's general selfie model run natively on LibTorch
// against MediaPipe's own runtime (TFLite + XNNPACK, tools/bench_segmentation_mediapipe.py in the
// MediaPipe venv) on the same model and thread count. Milliseconds per frame, median of many frames;
// the two sides alternate for a few rounds and each side's fastest median counts, so that other load
// on a shared machine does not decide the ratio.
import Foundation
import Torch
import VirtualBackground

enum SegmentationBench {
    static let repeats = 100
    static let rounds = 3

    static func run(_ options: Options) throws {
        // Timings on a shared machine say little without its load (other processes' runnable threads).
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first ?? "?"
        print("\nsegmentation: MediaPipe selfie (general, 256×256), \(Runtime.threads) threads, ms per frame (load average \(load))")
        let segmenter: Segmenter
        do {
            segmenter = try Segmenter(.selfie)
        } catch {
            print("  skipped: \(error)")
            return
        }
        let generator = try Generator(seed: 0)
        let small = try Tensor.randint(0, 256, [3, 256, 256], dtype: .uint8, generator: generator)
        let frame = try Tensor.randint(0, 256, [3, 720, 1280], dtype: .uint8, generator: generator)
        // model_256: the network on a frame of its own size. frame_1280x720: what MediaPipe's CPU graph
        // does with a 720p frame — resize to 256², the network, the probabilities resized back to 720p —
        // and nothing more (our threshold, smoothing and blob removal are not timed).
        let workloads: [(name: String, target: Double?, body: () throws -> Void)] = [
            ("model_256", 8, { _ = try segmenter.modelProbabilities(small) }),
            ("frame_1280x720", nil, { _ = try segmenter.probabilities(frame) }),
        ]
        var swift = [String: Double](), mediapipe = [String: Double]()
        let python = mediapipePython()
        for _ in 0..<rounds {
            for workload in workloads {
                let ms = try medianTime(repeats: repeats, warmup: 5, workload.body) * 1000
                swift[workload.name] = min(swift[workload.name] ?? .infinity, ms)
            }
            if let python, let reference = try? mediapipeTimings(python, threads: Runtime.threads) {
                for workload in workloads {
                    if let ms = reference[workload.name] as? Double {
                        mediapipe[workload.name] = min(mediapipe[workload.name] ?? .infinity, ms)
                    }
                }
            }
        }
        if python == nil {
            print("  MediaPipe side skipped: no MediaPipe venv (`make fixtures-segmentation` creates it)")
        }
        print("  " + "workload".padding(toLength: 20, withPad: " ", startingAt: 0) + "  swift (ms)  mediapipe (ms)  ratio   target")
        for workload in workloads {
            let ours = swift[workload.name] ?? .nan, theirs = mediapipe[workload.name] ?? .nan
            let target = workload.target.map { String(format: "≤ %.0f ms %@", $0, ours <= $0 ? "ok" : "MISSED") } ?? ""
            print("  " + workload.name.padding(toLength: 20, withPad: " ", startingAt: 0)
                  + String(format: "  %10.2f  %14.2f  %5.2f×  ", ours, theirs, ours / theirs) + target)
        }
    }

    /// `$BACKDROP_MEDIAPIPE_PYTHON` (exported by the Makefile) when that venv exists.
    static func mediapipePython() -> String? {
        guard let path = ProcessInfo.processInfo.environment["BACKDROP_MEDIAPIPE_PYTHON"],
              FileManager.default.isExecutableFile(atPath: path) else { return nil }
        return path
    }

    static func mediapipeTimings(_ python: String, threads: Int) throws -> [String: Any] {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tools/bench_segmentation_mediapipe.py")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script.path, "--threads", "\(threads)", "--repeats", "\(repeats)"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice  // TFLite's and absl's log lines
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TorchError("the MediaPipe segmentation benchmark failed (status \(process.terminationStatus))")
        }
        return json
    }
}
