import Foundation
import Media
import Torch

/// Person masks of an image or a video as 8-bit grayscale PNG files at the input's size (255 =
/// person): what `backdrop segment` writes.
///
/// For an image (PNG/JPEG), `output` is the mask file. For a video (a `.y4m`, a folder of frames or
/// anything ffmpeg decodes), `output` is a folder that receives one mask per frame:
/// `frame_000000.png` …, or for a folder of frames `<name>.png` after each frame's file. Frames that
/// barely differ from the last frame the model ran on reuse its output (`SegmentationCache` with
/// `skipThreshold`; 0 runs the model on every frame). `MaskPostProcessor` carries its temporal
/// smoothing from frame to frame.
public struct MaskExport {
    public var input: URL
    public var output: URL
    /// How the model's probabilities become the mask; nil writes them raw (scaled to 0…255).
    public var postProcessing: MaskPostProcessing?
    public var skipThreshold: Double

    public init(input: URL, output: URL, postProcessing: MaskPostProcessing? = MaskPostProcessing(),
                skipThreshold: Double = FrameChangeDetector.defaultThreshold) {
        (self.input, self.output, self.postProcessing, self.skipThreshold) = (input, output, postProcessing, skipThreshold)
    }

    public struct Report {
        /// Whether the input was one image (then `output` is its mask).
        public let isImage: Bool
        public let frames: Int
        /// Frames that ran the model and frames answered from the cache.
        public let modelRuns: Int
        public let skippedFrames: Int
    }

    /// Whether `input` is read as one image rather than as a video.
    public var inputIsImage: Bool {
        var isFolder: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: input.path, isDirectory: &isFolder)
        return !(exists && isFolder.boolValue) && ImageFormat(pathExtension: input.pathExtension) != nil
    }

    /// Writes the masks; for a video, `progress` gets the frames done, the frame count when it is
    /// known (a folder of frames) and the frames skipped so far.
    public func run(segmenter: any PersonSegmenter,
                    progress: ((_ done: Int, _ total: Int?, _ skipped: Int) -> Void)? = nil) throws -> Report {
        let cache = SegmentationCache(segmenter, detector: FrameChangeDetector(threshold: skipThreshold))
        let processor = postProcessing.map { MaskPostProcessor($0) }
        func mask(_ frame: Tensor) throws -> Image {
            let mask = try processor.map { try $0.process(cache.modelProbabilities(frame), height: frame.shape[1], width: frame.shape[2]) }
                ?? cache.probabilities(frame)
            return try Image(tensor: mask, range: .unit)
        }
        if inputIsImage {
            try mask(Image(contentsOf: input).rgb8().tensor(.uint8)).write(to: output, format: .png)
            return Report(isImage: true, frames: 1, modelRuns: cache.modelRuns, skippedFrames: cache.skippedFrames)
        }
        let video = try openVideo(input)
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        // Frames of a folder keep their names; frames of a video file are numbered.
        let names = (video as? ImageSequenceReader).map { reader in
            reader.files.map { $0.deletingPathExtension().lastPathComponent + ".png" }
        }
        var index = 0
        while let frame = try video.nextFrame() {
            let name = names.map { $0[index] } ?? String(format: "frame_%06d.png", index)
            try mask(frame).write(to: output.appendingPathComponent(name), format: .png)
            index += 1
            progress?(index, names?.count, cache.skippedFrames)
        }
        return Report(isImage: false, frames: index, modelRuns: cache.modelRuns, skippedFrames: cache.skippedFrames)
    }
}
