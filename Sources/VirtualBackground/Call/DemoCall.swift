import Foundation
import Geometry
import Media
import Torch

/// The built-in test call of `backdrop demo-call`: a `SyntheticCall` (a real person photo in front
/// of a real room while the camera pans along a known path) through the whole `CallPipeline`, which
/// replaces the room with a virtual one. Writes, into a folder:
///
/// - `input.mp4` and `call.mp4` (`.y4m` without ffmpeg): the synthetic call and its result;
/// - `strip.png`: input | mask | output side by side at four moments (`stripFrames`), one row each;
/// - `rotations.csv`: the true and the tracked orientation per frame and the angle between them
///   (`RotationsCSV.comparisonText`).
public struct DemoCall {
    /// The real room the camera sees: an equirectangular panorama `[3, H, W]` uint8.
    public let room: Tensor
    /// The person photo `[3, h, w]` uint8 (masked by the segmenter the call runs with).
    public let person: Tensor
    /// The virtual room that replaces `room`: an equirectangular panorama `[3, H, W]` uint8.
    public let background: Tensor
    public var frames: Int
    public var width: Int
    public var height: Int
    /// The camera's horizontal field of view, degrees (the synthetic camera's and the pipeline's).
    public var fov: Double

    public init(room: Tensor, person: Tensor, background: Tensor, frames: Int = 100, width: Int = 640, height: Int = 360,
                fov: Double = 60) {
        (self.room, self.person, self.background) = (room, person, background)
        (self.frames, self.width, self.height, self.fov) = (frames, width, height, fov)
    }

    /// The same from image files (PNG/JPEG).
    public init(roomFile: URL, personFile: URL, backgroundFile: URL, frames: Int = 100, width: Int = 640, height: Int = 360,
                fov: Double = 60) throws {
        func read(_ url: URL) throws -> Tensor { try Image(contentsOf: url).rgb8().tensor(.uint8) }
        self.init(room: try read(roomFile), person: try read(personFile), background: try read(backgroundFile),
                  frames: frames, width: width, height: height, fov: fov)
    }

    /// The frames shown in the strip: the first, those at one and two thirds, the last (each once).
    public static func stripFrames(_ frames: Int) -> [Int] {
        Array(Set([0, frames / 3, 2 * frames / 3, frames - 1].filter { $0 >= 0 })).sorted()
    }

    /// The files a run wrote.
    public struct Files {
        public let input: URL
        public let call: URL
        public let strip: URL
        public let rotations: URL
        public var all: [URL] { [input, call, strip, rotations] }
    }

    public struct Report {
        public let files: Files
        /// The camera path of the synthetic call and what the pipeline tracked.
        public let truth: [Orientation]
        public let tracked: [Orientation]
        public let accuracy: TrackingAccuracy
        public let timings: CallTimings
    }

    /// Runs the call into `folder` with `segmenter` (which also masks the photo); `progress` gets
    /// the frames done.
    public func run(to folder: URL, segmenter: any PersonSegmenter, progress: ((Int) -> Void)? = nil) throws -> Report {
        guard frames >= 1 else { throw CallError("a demo call needs at least one frame, not \(frames)") }
        let camera = PinholeCamera(fov: fov, width: width, height: height)
        let call = try SyntheticCall(room: room, person: person, personMask: segmenter.probabilities(person), camera: camera,
                                     path: SyntheticCall.panningPath(frames: frames))
        var settings = CallSettings()
        settings.fov = fov
        let pipeline = try CallPipeline(background: background, width: width, height: height, segmenter: segmenter,
                                        settings: settings)

        let ext = FFmpeg.isAvailable ? "mp4" : "y4m"
        let files = Files(input: folder.appendingPathComponent("input.\(ext)"), call: folder.appendingPathComponent("call.\(ext)"),
                          strip: folder.appendingPathComponent("strip.png"),
                          rotations: folder.appendingPathComponent("rotations.csv"))
        let inputWriter = try createVideoWriter(files.input, width: width, height: height)
        let outputWriter = try createVideoWriter(files.call, width: width, height: height)
        let stripFrames = Set(Self.stripFrames(frames))
        var stripRows: [Tensor] = []
        var tracked: [Orientation] = []
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
            progress?(index + 1)
        }
        try inputWriter.finish()
        try outputWriter.finish()
        try Image(tensor: Tensor.cat(stripRows, dim: 1), range: .uint8).write(to: files.strip)
        try RotationsCSV.writeComparison(truth: call.path, tracked: tracked, to: files.rotations)
        return Report(files: files, truth: call.path, tracked: tracked,
                      accuracy: TrackingAccuracy(truth: call.path, tracked: tracked), timings: pipeline.timings)
    }
}
