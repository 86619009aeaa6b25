import ArgumentParser
import Foundation
import Support
import Geometry
import Media
import Torch
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
            """
    )

    @Option(help: "The virtual room (equirectangular PNG/JPEG); default: the courtyard panorama from `make setup`.")
    var background: String?
    @Option(help: "The real room the camera sees: a panorama name under $BACKDROP_ASSETS/panoramas.") var room = "interior"
    @Option(help: "Frames of the test call.") var frames = 100
    @Option(help: "Frame width.") var width = 640
    @Option(help: "Frame height.") var height = 360
    @Option(help: "Camera horizontal field of view, degrees.") var fov: Double = 60
    @Option(help: "Output folder.") var out = "results/demo/call"
    @Option(help: "Threads of the pipeline's stages (default: the cores; the selfie model runs on one).") var threads: Int?

    func validate() throws {
        guard frames >= 2 else { throw ValidationError("--frames must be at least 2, not \(frames)") }
        guard width >= 16, height >= 16 else { throw ValidationError("--width and --height must be at least 16") }
        guard fov > 0, fov < 180 else { throw ValidationError("--fov must be in (0, 180) degrees, not \(fov)") }
    }

    func run() throws {
        configureCallThreads(threads, segmenterThreads: 1)
        let assets = URL(fileURLWithPath: expandEnvironment("$BACKDROP_ASSETS"))
        func asset(_ path: String) throws -> URL {
            let url = assets.appendingPathComponent(path)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw ValidationError("\(url.path) is missing: run `make setup` (it fetches the real panoramas and photos)")
            }
            return url
        }
        let roomPanorama = try Image(contentsOf: asset("panoramas/\(room).png")).rgb8().tensor(.uint8)
        let backgroundURL = try background.map { URL(fileURLWithPath: $0) } ?? asset("panoramas/courtyard.png")
        let virtualRoom = try Image(contentsOf: backgroundURL).rgb8().tensor(.uint8)
        let photo = try Image(contentsOf: asset("photos/astronaut.png")).rgb8().tensor(.uint8)
        let segmenter = try Segmenter(.selfie)
        let personMask = try segmenter.probabilities(photo)

        let camera = PinholeCamera(fov: fov, width: width, height: height)
        let call = try SyntheticCall(room: roomPanorama, person: photo, personMask: personMask, camera: camera,
                                     path: SyntheticCall.panningPath(frames: frames))
        var settings = CallSettings()
        settings.fov = fov
        let pipeline = try CallPipeline(background: virtualRoom, width: width, height: height, segmenter: segmenter,
                                        settings: settings)

        let folder = URL(fileURLWithPath: out)
        let ext = FFmpeg.isAvailable ? "mp4" : "y4m"
        let inputWriter = try createVideoWriter(folder.appendingPathComponent("input.\(ext)"), width: width, height: height)
        let outputWriter = try createVideoWriter(folder.appendingPathComponent("call.\(ext)"), width: width, height: height)
        let stripFrames = Set([0, frames / 3, 2 * frames / 3, frames - 1])
        var stripRows: [Tensor] = []
        var tracked: [Orientation] = []
        let progress = ProgressReporter(title: "demo call", total: frames)
        for index in 0..<frames {
            let frame = try call.frame(index)
            let result = try pipeline.process(frame)
            try inputWriter.append(frame)
            try outputWriter.append(result.output)
            tracked.append(result.orientation)
            if stripFrames.contains(index) {
                let mask = try (result.maskAtFrameSize() * 255).round().to(dtype: .uint8).expand([3, height, width])
                stripRows.append(try Tensor.cat([frame, mask, result.output], dim: 2))
            }
            progress.update(index + 1)
        }
        progress.finish()
        try inputWriter.finish()
        try outputWriter.finish()
        try Image(tensor: Tensor.cat(stripRows, dim: 1), range: .uint8).write(to: folder.appendingPathComponent("strip.png"))

        let accuracy = TrackingAccuracy(truth: call.path, tracked: tracked)
        var csv = "frame,true_yaw_deg,true_pitch_deg,true_roll_deg,yaw_deg,pitch_deg,roll_deg,error_deg\n"
        for (i, (t, e)) in zip(call.path, tracked).enumerated() {
            csv += String(format: "%d,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f\n", i, t.yaw, t.pitch, t.roll, e.yaw, e.pitch, e.roll,
                          t.angle(to: e))
        }
        try writeAtomically(to: folder.appendingPathComponent("rotations.csv")) { try Data(csv.utf8).write(to: $0) }

        print("demo call: \(frames) frames of \(width)×\(height), \(room) room → \(backgroundURL.lastPathComponent)")
        print("wrote \(folder.path)/{input.\(ext), call.\(ext), strip.png, rotations.csv}")
        print(pipeline.timings.report)
        print(String(format: "tracking: %.4f°/frame mean increment error, %.3f° mean orientation error, %.3f° drift at the last frame",
                     accuracy.meanIncrementError, accuracy.meanOrientationError, accuracy.drift))
    }
}
