import ArgumentParser
import Foundation
import Support
import VirtualBackground

struct DemoCallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-call",
        abstract: "Run the call pipeline on a built-in test call with a known camera path.",
        discussion: """
            Needs no files of yours: the real person photo (scikit-image's astronaut, masked by the \
            selfie segmenter) sits in front of a real room (blender-data's CC0 panorama --room) while \
            the camera pans along a known path. The whole pipeline replaces the room with --background \
            (default: the courtyard panorama; `make demo` passes the panorama its training stage \
            generated). Writes input and output videos (.mp4 with ffmpeg, else .y4m), strip.png \
            (input | mask | output at four moments) and rotations.csv (true and tracked), and prints \
            per-stage timings and the tracking error.

            Threads: the pipeline's Swift stages run on --threads; the selfie model runs LibTorch on \
            --segmenter-threads (default 1, MediaPipe's desktop setting).
            """
    )

    @Option(help: "The virtual room (equirectangular PNG/JPEG); default: the courtyard panorama from `make setup`.")
    var background: String?
    @Option(help: "The real room the camera sees: a panorama name under $BACKDROP_ASSETS/panoramas.") var room = "interior"
    @Option(help: "Frames of the test call (at least 2).") var frames = 100
    @Option(help: "Frame width (at least 16).") var width = 640
    @Option(help: "Frame height (at least 16).") var height = 360
    @Option(help: "Camera horizontal field of view, degrees, in (0, 180).") var fov: Double = 60
    @Option(name: [.customLong("out"), .customLong("output")], help: "Output folder.") var out = "results/demo/call"
    @OptionGroup var threads: ThreadOptions
    @OptionGroup var segmenterThreads: SegmenterThreadOptions

    func validate() throws {
        guard frames >= 2 else { throw ValidationError("--frames must be at least 2, not \(frames)") }
        guard width >= 16, height >= 16 else { throw ValidationError("--width and --height must be at least 16, not \(width)×\(height)") }
        try validateFOV(fov)
    }

    func run() throws {
        segmenterThreads.apply(after: threads)
        let remedy = "run `make setup` (it fetches the real panoramas and photos)"
        let backgroundURL = try background.map { URL(fileURLWithPath: $0) } ?? Assets.file("panoramas/courtyard.png", remedy: remedy)
        let demo = try DemoCall(roomFile: Assets.file("panoramas/\(room).png", remedy: remedy),
                                personFile: Assets.file("photos/astronaut.png", remedy: remedy), backgroundFile: backgroundURL,
                                frames: frames, width: width, height: height, fov: fov)
        let progress = ProgressReporter(title: "demo call", total: frames)
        let report = try demo.run(to: URL(fileURLWithPath: out), segmenter: Segmenter(.selfie)) { progress.update($0) }
        progress.finish()

        let files = report.files
        print("demo call: \(frames) frames of \(width)×\(height), \(room) room → \(backgroundURL.lastPathComponent)")
        print("wrote \(URL(fileURLWithPath: out).path)/{\(files.all.map(\.lastPathComponent).joined(separator: ", "))}")
        print(report.timings.report)
        print(String(format: "tracking: %.4f°/frame mean increment error, %.3f° mean orientation error, %.3f° drift at the last frame",
                     report.accuracy.meanIncrementError, report.accuracy.meanOrientationError, report.accuracy.drift))
    }
}
