import ArgumentParser
import Foundation
import Support
import VirtualBackground

struct TrackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "track",
        abstract: "The camera's rotation through a video, frame by frame, as a CSV of yaw/pitch/roll.",
        discussion: """
            Writes a header `frame,yaw_deg,pitch_deg,roll_deg` and one row per frame: the camera's \
            orientation relative to the first frame (frame 0 is 0,0,0), R = Ry(yaw)·Rx(pitch)·Rz(roll) \
            in camera axes x right, y down, z forward — positive yaw turns right, positive pitch looks \
            up, positive roll turns the camera clockwise — the convention that drives the viewport. \
            The tracker assumes a camera that turns in place (the webcam case): Shi–Tomasi corners \
            outside the person mask, pyramidal Lucas–Kanade, RANSAC on the pure-rotation model. The \
            person is masked out with MediaPipe's selfie segmentation because they move with the \
            camera; --segmenter none skips that (for videos without people). --fov is the real \
            camera's horizontal field of view and sets the focal length. Input: a video ffmpeg can \
            decode, a .y4m file, or a folder of PNG/JPEG frames.

            Threads: the tracker runs on --threads; the selfie/landscape model runs LibTorch on \
            --segmenter-threads (default 1, MediaPipe's desktop setting).
            """
    )

    @Option(help: "The video: any ffmpeg-readable file, a .y4m, or a folder of PNG/JPEG frames.") var input: String
    @Option(help: "Horizontal field of view of the camera in degrees, in (0, 180).") var fov: Double = 60
    @Option(name: [.customLong("out"), .customLong("output")], help: "The CSV to write.") var out: String
    @Option(help: "Person mask: selfie (256×256), landscape (144×256) or none.") var segmenter: TrackSegmenter = .selfie
    @Option(help: "Person probabilities at or above this, in [0, 1], are excluded from tracking (lower is more cautious).")
    var maskThreshold: Double = TrackerSettings().maskThreshold
    @Option(help: "Pixels (at the tracking resolution, longest side ≈ 640) by which the person mask is grown.")
    var maskDilation: Int = TrackerSettings().maskDilation
    @Option(help: "Stop after this many frames.") var maxFrames: Int?
    @OptionGroup var threads: ThreadOptions
    @OptionGroup var segmenterThreads: SegmenterThreadOptions

    func validate() throws {
        try validateFOV(fov)
        guard (0...1).contains(maskThreshold) else { throw ValidationError("--mask-threshold must be in [0, 1], not \(maskThreshold)") }
        guard maskDilation >= 0 else { throw ValidationError("--mask-dilation must not be negative, not \(maskDilation)") }
        if let maxFrames, maxFrames < 1 { throw ValidationError("--max-frames must be at least 1, not \(maxFrames)") }
        try refuseOverwriting([("--input", input)], with: out)
    }

    func run() throws {
        segmenterThreads.apply(after: threads, mediaPipe: segmenter.model != nil)
        var settings = TrackerSettings(fov: fov)
        settings.maskThreshold = maskThreshold
        settings.maskDilation = maskDilation
        let tracking = VideoTracking(input: URL(fileURLWithPath: input), settings: settings, maxFrames: maxFrames,
                                     rotations: URL(fileURLWithPath: out))
        let progress = ProgressReporter(title: "tracking \(tracking.input.lastPathComponent)", total: maxFrames)
        let report = try tracking.run(segmenter: segmenter.model.map { try Segmenter($0) }) { done, orientation in
            progress.update(done, status: orientation.description)
        }
        progress.finish()
        print("\(report.frames) frames of \(report.width)×\(report.height) tracked (\(String(format: "%.1f", report.trackingMillisecondsPerFrame)) ms/frame"
              + " without segmentation), final orientation \(report.final)"
              + (report.lostFrames > 0 ? ", \(report.lostFrames) frame(s) without a reliable rotation (orientation held)" : ""))
        print("wrote \(out)")
    }
}

/// `track --segmenter`: a MediaPipe selfie model for the person mask, or none (videos without people).
enum TrackSegmenter: String, CaseIterable, ExpressibleByArgument {
    case selfie, landscape, none

    var model: Segmenter.Model? { Segmenter.Model(rawValue: rawValue) }
}
