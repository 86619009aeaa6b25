import ArgumentParser
import Foundation
import Support
import Geometry
import Media
import Torch
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
            frames. --output: .y4m, a video file encoded by ffmpeg (.mp4 …) or a folder (frames \
            frame_000000.png …). --v4l2 /dev/videoN also sends the frames to a v4l2loopback camera. \
            Per-stage timings are printed at the end.
            """
    )

    @Option(help: "The virtual room: an equirectangular panorama (PNG/JPEG, 2:1; a horizon crop is extended).")
    var background: String
    @Option(help: "The call's video: a video file, a .y4m file or a folder of frames.") var input: String
    @Option(help: "Where the composited call goes: .y4m, .mp4 (or another ffmpeg container) or a folder.")
    var output: String
    @Option(help: "The real camera's horizontal field of view in degrees.") var fov: Double = 60
    @Option(help: "Yaw in degrees where the virtual room is seen at the first frame.") var startYaw: Double = 0
    @Option(help: "Colour match of the person to the room, 0 (off) … 1.") var colorMatch: Float = 0
    @Flag(help: "Keep the room still (no camera tracking).") var noTracking = false
    @Option(help: "Also write the tracked rotations as CSV (frame,yaw_deg,pitch_deg,roll_deg).") var rotations: String?
    @Option(help: "Also send the frames to this v4l2loopback device.") var v4l2: String?
    @Option(help: "Stop after this many frames.") var limit: Int?
    @Option(help: "Threads of the pipeline's stages (default: the cores).") var threads: Int?
    @OptionGroup var segmentation: SegmentationOptions

    func validate() throws {
        guard fov > 0, fov < 180 else { throw ValidationError("--fov must be in (0, 180) degrees, not \(fov)") }
        guard (0...1).contains(colorMatch) else { throw ValidationError("--color-match must be in [0, 1], not \(colorMatch)") }
    }

    func run() throws {
        segmentation.configureThreads(threads)
        let panorama = try Image(contentsOf: URL(fileURLWithPath: background)).rgb8().tensor(.uint8)
        let video = try openVideo(URL(fileURLWithPath: input))
        var settings = CallSettings()
        settings.fov = fov
        settings.start = Orientation(yaw: startYaw)
        settings.mask = try segmentation.postProcessing()
        settings.skipThreshold = segmentation.skipThreshold
        settings.colorMatch = colorMatch
        settings.trackCamera = !noTracking
        let pipeline = try CallPipeline(background: panorama, width: video.width, height: video.height,
                                        segmenter: segmentation.loadSegmenter(), settings: settings)
        var writers = [try createVideoWriter(URL(fileURLWithPath: output), width: video.width, height: video.height,
                                             frameRate: video.frameRate)]
        if let v4l2 {
            writers.append(try createVideoWriter(URL(fileURLWithPath: v4l2), width: video.width, height: video.height,
                                                 frameRate: video.frameRate))
        }
        var orientations: [Orientation] = []
        let progress = ProgressReporter(title: "call", total: limit)
        while limit.map({ orientations.count < $0 }) ?? true, let frame = try video.nextFrame() {
            let result = try pipeline.process(frame)
            for writer in writers { try writer.append(result.output) }
            orientations.append(result.orientation)
            progress.update(orientations.count, status: String(format: "yaw %.1f°", result.orientation.yaw))
        }
        progress.finish()
        for writer in writers { try writer.finish() }
        if let rotations { try writeRotationsCSV(orientations, to: URL(fileURLWithPath: rotations)) }
        print("\(orientations.count) frames → \(output) (\(pipeline.skippedSegmentations) segmentations skipped as unchanged)")
        print(pipeline.timings.report)
    }
}
