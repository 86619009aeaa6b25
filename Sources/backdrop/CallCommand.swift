import ArgumentParser
import Foundation
import Geometry
import Support
import VirtualBackground

struct CallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "Put the person of a video in front of a 360° panorama that turns as their camera turns.",
        discussion: """
            Per frame: segment the person (--segmenter), smooth and stabilise the mask, track the \
            camera's rotation on the background outside the person (Shi–Tomasi + pyramidal \
            Lucas–Kanade + RANSAC rotation), render the panorama's viewport for that rotation with \
            the camera's field of view (--fov), and composite.

            --input: a video file (anything ffmpeg decodes), a .y4m file or a folder of PNG/JPEG \
            frames. --out (or --output): .y4m, a video file encoded by ffmpeg (.mp4 …) or a folder \
            (frames frame_000000.png …). --v4l2 /dev/videoN also sends the frames to a v4l2loopback \
            camera. Per-stage timings are printed at the end.

            Threads: the Swift stages (mask, tracking, viewport, composite) run on --threads; a \
            selfie/landscape model runs LibTorch on --segmenter-threads (default 1, MediaPipe's \
            desktop setting), deeplab on --threads.
            """
    )

    @Option(help: "The virtual room: an equirectangular panorama (PNG/JPEG, 2:1; a horizon crop is extended).")
    var background: String
    @Option(help: "The call's video: a video file, a .y4m file or a folder of frames.") var input: String
    @Option(name: [.customLong("out"), .customLong("output")],
            help: "Where the composited call goes: .y4m, .mp4 (or another ffmpeg container) or a folder.")
    var out: String
    @Option(help: "The real camera's horizontal field of view in degrees, in (0, 180).") var fov: Double = 60
    @Option(help: "Yaw in degrees where the virtual room is seen at the first frame.") var startYaw: Double = 0
    @Option(help: "Colour match of the person to the room, 0 (off) … 1.") var colorMatch: Float = 0
    @Flag(help: "Keep the room still (no camera tracking).") var noTracking = false
    @Option(help: "Also write the tracked rotations as CSV (frame,yaw_deg,pitch_deg,roll_deg).") var rotations: String?
    @Option(help: "Also send the frames to this v4l2loopback device.") var v4l2: String?
    @Option(help: "Stop after this many frames.") var limit: Int?
    @OptionGroup var threads: ThreadOptions
    @OptionGroup var segmentation: SegmentationOptions

    func validate() throws {
        try validateFOV(fov)
        try checkRange("--start-yaw", startYaw, in: -3600...3600, " degrees")
        guard (0...1).contains(colorMatch) else { throw ValidationError("--color-match must be in [0, 1], not \(colorMatch)") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, not \(limit)") }
        try refuseOverwriting([("--input", input), ("--background", background), ("--model", segmentation.model)], with: out)
        if let rotations {
            try refuseOverwriting([("--input", input), ("--background", background), ("--out", out)], with: rotations, flag: "--rotations")
        }
    }

    func run() throws {
        segmentation.applyThreads(threads)
        var settings = CallSettings()
        settings.fov = fov
        settings.start = Orientation(yaw: startYaw)
        settings.mask = segmentation.postProcessing
        settings.skipThreshold = segmentation.skipThreshold
        settings.colorMatch = colorMatch
        settings.trackCamera = !noTracking
        let call = VideoCall(background: URL(fileURLWithPath: background), input: URL(fileURLWithPath: input),
                             output: URL(fileURLWithPath: out), v4l2: v4l2.map { URL(fileURLWithPath: $0) },
                             rotations: rotations.map { URL(fileURLWithPath: $0) }, limit: limit, settings: settings)
        let progress = ProgressReporter(title: "call", total: limit)
        let report = try call.run(segmenter: segmentation.loadSegmenter()) { done, orientation in
            progress.update(done, status: String(format: "yaw %.1f°", orientation.yaw))
        }
        progress.finish()
        print("\(report.frames) frames → \(out) (\(report.skippedSegmentations) segmentations skipped as unchanged)")
        print(report.timings.report)
    }
}
