import ArgumentParser
import Datasets
import Foundation
import Support
import Torch

struct DatasetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dataset",
        abstract: "Make, inspect and time the panorama datasets (Matterport3D layout, synthetic rooms).",
        discussion: """
            Datasets use MVDiffusion's mp3d_skybox layout (train.npy/test.npy, six skybox JPEG faces per \
            panorama, blip3 captions per 45° view); see datasets/README.md for obtaining Matterport3D.
            """,
        subcommands: [Synth.self, Show.self, Bench.self]
    )

    struct Synth: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate procedural rooms in the Matterport3D skybox layout.",
            discussion: """
                Room i depends only on (seed, i). The last ⌈count/10⌉ panoramas form the test split. \
                Captions describe what each 45° view shows.
                """
        )

        @Option(help: "Output folder (an mp3d_skybox-style root).") var out: String
        @Option(help: "Number of panoramas.") var count: Int
        @Option(help: "Seed of the room generator.") var seed: UInt64 = 0
        @Option(help: "Cube face size in pixels (Matterport's are 1024; use at least the view size you train at).")
        var faceSize: Int = 256
        @Flag(help: "Also write PanFusion's stitched equirectangular images and captions.") var stitched = false
        @Option(help: "Intra-op threads (default: LibTorch's choice).") var threads: Int?

        func run() throws {
            if let threads { Runtime.threads = threads }
            let root = URL(fileURLWithPath: out)
            let progress = ProgressReporter(title: "synthetic rooms", total: count)
            let start = Date(), cpuStart = processCPUSeconds()
            let records = try SyntheticRooms.generate(
                into: root, options: .init(count: count, seed: seed, faceSize: faceSize, stitched: stitched),
                progress: progress)
            let seconds = Date().timeIntervalSince(start), cpu = processCPUSeconds() - cpuStart
            print("wrote \(records.count) panoramas (\(faceSize)² faces) to \(root.path) in "
                  + String(format: "%.1f s (%.2f panoramas/s; %.2f CPU-s per panorama on %d threads)", seconds,
                           Double(records.count) / seconds, cpu / Double(records.count), Runtime.threads))
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write one panorama's views, cameras and prompts as training sees them.",
            discussion: """
                Writes view_0.png … view_7.png, cameras.json (per view: yaw, K and R row-major; R maps camera \
                to world, OpenCV axes) and prompts.txt into --out.
                """
        )

        @Argument(help: "Dataset root (the folder holding train.npy and test.npy).") var root: String
        @Option(help: "Split: train or test.") var split: String = "test"
        @Option(help: "Panorama index in the split.") var index: Int = 0
        @Option(help: "Degrees added to every view's yaw (training draws 0…359; test uses 0).") var yawOffset: Double = 0
        @Option(help: "View size in pixels.") var size: Int = 512
        @Option(help: "skybox (MVDiffusion's cube faces) or stitched (PanFusion's equirectangular images).")
        var layout: String = "skybox"
        @Option(help: "Prompt prefix.") var prefix: String = ViewOptions().promptPrefix
        @Option(help: "Output folder.") var out: String

        func run() throws {
            guard let layout = MatterportLayout(rawValue: layout) else {
                throw ValidationError("--layout must be skybox or stitched, not '\(self.layout)'")
            }
            let dataset = try Matterport3D(root: URL(fileURLWithPath: root), split: split, layout: layout,
                                           views: ViewOptions(resolution: size, promptPrefix: prefix))
            guard (0..<dataset.count).contains(index) else {
                throw ValidationError("--index \(index) is outside the \(split) split of \(dataset.count) panoramas")
            }
            let sample = try dataset.sample(at: index, yawOffset: yawOffset)
            let files = try SampleExport.write(sample, to: URL(fileURLWithPath: out))
            print("panorama \(sample.panoramaID): wrote \(files.count) files to \(out)")
            for (yaw, prompt) in zip(sample.yaws, sample.prompts) { print(String(format: "%5.1f°  ", yaw) + prompt) }
        }
    }

    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time the loader: views per second of decoding plus warping (no model).",
            discussion: "Reports decode + warp throughput on the current thread count (default 2, the target machine)."
        )

        @Argument(help: "Dataset root.") var root: String
        @Option(help: "Split.") var split: String = "train"
        @Option(help: "View size in pixels.") var size: Int = 512
        @Option(help: "Panoramas to load (after one warm-up).") var count: Int = 8
        @Option(help: "Intra-op threads.") var threads: Int = 2
        @Option(help: "Samples decoded ahead on a background thread.") var prefetch: Int = 1
        @Option(help: "skybox or stitched.") var layout: String = "skybox"

        func validate() throws {
            guard count > 0 else { throw ValidationError("--count must be positive") }
        }

        func run() throws {
            Runtime.threads = threads
            guard let layout = MatterportLayout(rawValue: layout) else {
                throw ValidationError("--layout must be skybox or stitched, not '\(self.layout)'")
            }
            let dataset = try Matterport3D(root: URL(fileURLWithPath: root), split: split, layout: layout,
                                           views: ViewOptions(resolution: size))
            let loader = try PanoramaLoader(source: dataset, options: LoaderOptions(seed: 0, prefetch: prefetch))
            _ = try loader.sample(index: 0, epoch: 0)  // warm-up: grids, allocator
            let progress = ProgressReporter(title: "loader", total: count)
            var views = 0, done = 0
            let start = Date(), cpuStart = processCPUSeconds()
            do {
                for epoch in 0... {
                    try loader.forEach(epoch: epoch) { sample in
                        views += sample.images.shape[0]
                        done += 1
                        progress.update(done)
                        if done >= count { throw StopIteration() }
                    }
                }
            } catch is StopIteration {}
            progress.finish()
            let seconds = Date().timeIntervalSince(start), cpu = processCPUSeconds() - cpuStart
            // CPU time too: on a shared machine wall time also measures the neighbours.
            print(String(format: "%d panoramas, %d views of %d² in %.2f s: %.1f views/s (%d threads, %@ layout; "
                         + "%.3f CPU-s per view)", done, views, size, seconds, Double(views) / seconds, threads,
                         layout.rawValue, cpu / Double(max(views, 1))))
        }
    }
}

/// CPU seconds (user + system) this process has used so far.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let user = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
    let system = Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    return user + system
}

/// Ends a loader pass early (caught by the caller).
private struct StopIteration: Error {}
