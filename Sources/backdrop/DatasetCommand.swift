import ArgumentParser
import Datasets
import Experiments
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

        @Option(name: [.customLong("out"), .customLong("output")], help: "Output folder (an mp3d_skybox-style root).")
        var out: String
        @Option(help: "Number of panoramas.") var count: Int
        @Option(help: "Seed of the room generator.") var seed: UInt64 = 0
        @Option(help: "Cube face size in pixels, 8…8192 (Matterport's are 1024; use at least the view size you train at).")
        var faceSize: Int = 256
        @Flag(help: "Also write PanFusion's stitched equirectangular images and captions.") var stitched = false
        @OptionGroup var threads: ThreadOptions

        func validate() throws {
            try checkRange("--count", count, in: 1...1_000_000)
            try checkRange("--face-size", faceSize, in: 8...8192, " pixels")
        }

        func run() throws {
            threads.apply()
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
        @Option(help: "Split.") var split: RunConfig.Split = .test
        @Option(help: "Panorama index in the split.") var index: Int = 0
        @Option(help: "Degrees added to every view's yaw (training draws 0…359; test uses 0).") var yawOffset: Double = 0
        @Option(help: "View size in pixels.") var size: Int = 512
        @Option(help: "skybox (MVDiffusion's cube faces) or stitched (PanFusion's equirectangular images).")
        var layout: MatterportLayout = .skybox
        @Option(help: "Prompt prefix.") var prefix: String = ViewOptions().promptPrefix
        @Option(name: [.customLong("out"), .customLong("output")], help: "Output folder.") var out: String

        func validate() throws {
            try checkRange("--yaw-offset", yawOffset, in: -3600...3600, " degrees")
            try checkRange("--index", index, in: 0...Int(Int32.max))
            try checkRange("--size", size, in: pixelSizeRange, " pixels")
        }

        func run() throws {
            let dataset = try Matterport3D(root: URL(fileURLWithPath: root), split: split.rawValue, layout: layout,
                                           views: ViewOptions(resolution: size, promptPrefix: prefix))
            let sample = try dataset.sample(at: index, yawOffset: yawOffset)
            let files = try SampleExport.write(sample, to: URL(fileURLWithPath: out))
            print("panorama \(sample.panoramaID): wrote \(files.count) files to \(out)")
            for (yaw, prompt) in zip(sample.yaws, sample.prompts) { print(String(format: "%5.1f°  ", yaw) + prompt) }
        }
    }

    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time the loader: views per second of decoding plus warping (no model).",
            discussion: """
                Reports decode + warp throughput and CPU seconds per view on --threads CPU threads \
                (default: the cores; the target machine has 2, so pass --threads 2 to compare with it).
                """
        )

        @Argument(help: "Dataset root.") var root: String
        @Option(help: "Split.") var split: RunConfig.Split = .train
        @Option(help: "View size in pixels.") var size: Int = 512
        @Option(help: "Panoramas to load (after one warm-up).") var count: Int = 8
        @OptionGroup var threads: ThreadOptions
        @Option(help: "Samples decoded ahead on a background thread.") var prefetch: Int = 1
        @Option(help: "skybox or stitched.") var layout: MatterportLayout = .skybox

        func validate() throws {
            try checkRange("--count", count, in: 1...1_000_000)
            try checkRange("--prefetch", prefetch, in: 0...64)
            try checkRange("--size", size, in: pixelSizeRange, " pixels")
        }

        func run() throws {
            threads.apply()
            let dataset = try Matterport3D(root: URL(fileURLWithPath: root), split: split.rawValue, layout: layout,
                                           views: ViewOptions(resolution: size))
            let loader = try PanoramaLoader(source: dataset, options: LoaderOptions(seed: 0, prefetch: prefetch))
            let result = try loader.measureThroughput(panoramas: count, progress: ProgressReporter(title: "loader", total: count))
            print(String(format: "%d panoramas, %d views of %d² in %.2f s: %.1f views/s (%d threads, %@ layout; "
                         + "%.3f CPU-s per view)", result.panoramas, result.views, size, result.seconds, result.viewsPerSecond,
                         Runtime.threads, layout.rawValue, result.cpuSecondsPerView))
        }
    }
}

extension MatterportLayout: ExpressibleByArgument {}
