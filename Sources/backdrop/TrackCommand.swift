import ArgumentParser
import Foundation
import Support
import Geometry
import Media
import Torch
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
            """
    )

    @Option(help: "The video: any ffmpeg-readable file, a .y4m, or a folder of PNG/JPEG frames.") var input: String
    @Option(help: "Horizontal field of view of the camera in degrees.") var fov: Double = 60
    @Option(help: "The CSV to write.") var out: String
    @Option(help: "Person mask: selfie (256×256), landscape (144×256) or none.") var segmenter: String = "selfie"
    @Option(help: "Person probabilities at or above this are excluded from tracking (lower is more cautious).")
    var maskThreshold: Double = TrackerSettings().maskThreshold
    @Option(help: "Pixels (at the tracking resolution, longest side ≈ 640) by which the person mask is grown.")
    var maskDilation: Int = TrackerSettings().maskDilation
    @Option(help: "Stop after this many frames.") var maxFrames: Int?
    @Option(help: "Intra-op threads for the segmenter (default: LibTorch's choice).") var threads: Int?

    func validate() throws {
        guard fov > 0, fov < 180 else { throw ValidationError("--fov must be in (0, 180) degrees, not \(fov)") }
        guard segmenter == "none" || Segmenter.Model(rawValue: segmenter) != nil else {
            throw ValidationError("--segmenter must be selfie, landscape or none, not '\(segmenter)'")
        }
        guard (0...1).contains(maskThreshold) else { throw ValidationError("--mask-threshold must be in [0, 1], not \(maskThreshold)") }
        guard maskDilation >= 0 else { throw ValidationError("--mask-dilation must not be negative") }
        if let maxFrames, maxFrames < 1 { throw ValidationError("--max-frames must be at least 1") }
    }

    func run() throws {
        if let threads { Runtime.threads = threads }
        let video = try openVideo(URL(fileURLWithPath: input))
        let model = try Segmenter.Model(rawValue: segmenter).map { try Segmenter($0) }
        var settings = TrackerSettings(fov: fov)
        settings.maskThreshold = maskThreshold
        settings.maskDilation = maskDilation
        let tracker = CameraTracker(settings: settings)
        let progress = ProgressReporter(title: "tracking \(URL(fileURLWithPath: input).lastPathComponent)", total: maxFrames)

        var orientations: [Orientation] = []
        var lost = 0, trackingSeconds = 0.0
        while maxFrames.map({ orientations.count < $0 }) ?? true, let frame = try video.nextFrame() {
            let mask = try model?.modelProbabilities(frame)
            let start = Date()
            let step = try tracker.track(frame, personMask: mask)
            trackingSeconds += Date().timeIntervalSince(start)
            if step.lost { lost += 1 }
            orientations.append(step.orientation)
            progress.update(orientations.count, status: step.orientation.description)
        }
        progress.finish()
        let frames = orientations.count
        guard frames > 0 else { throw ValidationError("\(input) has no frames") }
        try writeRotationsCSV(orientations, to: URL(fileURLWithPath: out))
        print("\(frames) frames of \(video.width)×\(video.height) tracked (\(String(format: "%.1f", 1000 * trackingSeconds / Double(frames))) ms/frame"
              + " without segmentation), final orientation \(tracker.orientation)"
              + (lost > 0 ? ", \(lost) frame(s) without a reliable rotation (orientation held)" : ""))
        print("wrote \(out)")
    }

}

/// The rotations CSV of `track` and `call`: `frame,yaw_deg,pitch_deg,roll_deg`, one row per frame
/// (frame 0 first), degrees with 4 decimals (negative zero printed as 0), written atomically.
func writeRotationsCSV(_ orientations: [Orientation], to url: URL) throws {
    func format(_ degrees: Double) -> String { String(format: "%.4f", (degrees * 1e4).rounded() / 1e4 + 0) }
    var text = "frame,yaw_deg,pitch_deg,roll_deg\n"
    for (i, o) in orientations.enumerated() { text += "\(i),\(format(o.yaw)),\(format(o.pitch)),\(format(o.roll))\n" }
    try writeAtomically(to: url) { try Data(text.utf8).write(to: $0) }
}
