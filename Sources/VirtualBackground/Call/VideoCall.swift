import Foundation
import Geometry
import Media
import Torch

/// A call over a video: every frame of `input` through a `CallPipeline` in front of the panorama
/// `background`, written to `output` (and to a v4l2loopback camera), with the tracked rotations.
/// What `backdrop call` runs.
public struct VideoCall {
    /// The virtual room: an equirectangular PNG/JPEG.
    public var background: URL
    /// A video file (anything ffmpeg decodes), a `.y4m` file or a folder of PNG/JPEG frames.
    public var input: URL
    /// `.y4m`, a video file encoded by ffmpeg (`.mp4` …) or a folder of `frame_000000.png` files.
    public var output: URL
    /// A v4l2loopback device (`/dev/videoN`) that also gets the frames.
    public var v4l2: URL?
    /// Where the tracked rotations go (`RotationsCSV`).
    public var rotations: URL?
    /// Stop after this many frames (nil: the whole video).
    public var limit: Int?
    public var settings: CallSettings

    public init(background: URL, input: URL, output: URL, v4l2: URL? = nil, rotations: URL? = nil, limit: Int? = nil,
                settings: CallSettings = CallSettings()) {
        (self.background, self.input, self.output, self.v4l2) = (background, input, output, v4l2)
        (self.rotations, self.limit, self.settings) = (rotations, limit, settings)
    }

    public struct Report {
        /// The tracked orientation per frame written.
        public let orientations: [Orientation]
        /// Frames answered from the segmentation cache (unchanged frames).
        public let skippedSegmentations: Int
        public let timings: CallTimings

        public var frames: Int { orientations.count }
    }

    /// Runs the call with `segmenter`; `progress` gets the frames done and the last orientation.
    /// The outputs are in place when it returns.
    public func run(segmenter: any PersonSegmenter, progress: ((Int, Orientation) -> Void)? = nil) throws -> Report {
        let panorama = try Image(contentsOf: background).rgb8().tensor(.uint8)
        let video = try openVideo(input)
        let pipeline = try CallPipeline(background: panorama, width: video.width, height: video.height,
                                        segmenter: segmenter, settings: settings)
        let writers = try ([output] + (v4l2.map { [$0] } ?? [])).map {
            try createVideoWriter($0, width: video.width, height: video.height, frameRate: video.frameRate)
        }
        var orientations: [Orientation] = []
        while limit.map({ orientations.count < $0 }) ?? true, let frame = try video.nextFrame() {
            let result = try pipeline.process(frame)
            for writer in writers { try writer.append(result.output) }
            orientations.append(result.orientation)
            progress?(orientations.count, result.orientation)
        }
        for writer in writers { try writer.finish() }
        if let rotations { try RotationsCSV.write(orientations, to: rotations) }
        return Report(orientations: orientations, skippedSegmentations: pipeline.skippedSegmentations, timings: pipeline.timings)
    }
}
