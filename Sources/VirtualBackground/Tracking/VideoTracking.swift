import Foundation
import Geometry
import Media
import Torch

/// The camera's rotation through a video, frame by frame: what `backdrop track` runs. Each frame's
/// person probabilities (from `segmenter`, when one is given) are masked out of the tracking
/// because the person moves with the camera.
public struct VideoTracking {
    /// A video file (anything ffmpeg decodes), a `.y4m` file or a folder of PNG/JPEG frames.
    public var input: URL
    public var settings: TrackerSettings
    /// Stop after this many frames (nil: the whole video).
    public var maxFrames: Int?
    /// Where the rotations CSV goes (`RotationsCSV`); nil writes nothing.
    public var rotations: URL?

    public init(input: URL, settings: TrackerSettings = TrackerSettings(), maxFrames: Int? = nil, rotations: URL? = nil) {
        (self.input, self.settings, self.maxFrames, self.rotations) = (input, settings, maxFrames, rotations)
    }

    public struct Report {
        /// Per frame, relative to frame 0.
        public let orientations: [Orientation]
        public let width: Int
        public let height: Int
        /// Frames without a reliable rotation (their orientation is the previous one).
        public let lostFrames: Int
        /// Time in the tracker, without segmentation.
        public let trackingSeconds: Double
        /// The tracker's orientation after the last frame.
        public let final: Orientation

        public var frames: Int { orientations.count }
        public var trackingMillisecondsPerFrame: Double { frames == 0 ? 0 : 1000 * trackingSeconds / Double(frames) }
    }

    /// Tracks every frame (up to `maxFrames`) and writes the CSV; `progress` gets the frames done
    /// and the last orientation. A video without frames is an error.
    public func run(segmenter: (any PersonSegmenter)?, progress: ((Int, Orientation) -> Void)? = nil) throws -> Report {
        let video = try openVideo(input)
        let tracker = CameraTracker(settings: settings)
        var orientations: [Orientation] = []
        var lost = 0, trackingSeconds = 0.0
        while maxFrames.map({ orientations.count < $0 }) ?? true, let frame = try video.nextFrame() {
            let mask = try segmenter?.modelProbabilities(frame)
            let start = Date()
            let step = try tracker.track(frame, personMask: mask)
            trackingSeconds += Date().timeIntervalSince(start)
            if step.lost { lost += 1 }
            orientations.append(step.orientation)
            progress?(orientations.count, step.orientation)
        }
        guard !orientations.isEmpty else { throw TrackingError("\(video.name) has no frames") }
        if let rotations { try RotationsCSV.write(orientations, to: rotations) }
        return Report(orientations: orientations, width: video.width, height: video.height, lostFrames: lost,
                      trackingSeconds: trackingSeconds, final: tracker.orientation)
    }
}
