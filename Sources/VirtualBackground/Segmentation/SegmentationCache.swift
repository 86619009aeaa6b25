import Torch

/// Tells whether a frame differs visibly from a reference frame, cheaply: both are reduced to a small
/// grayscale thumbnail (box-averaged, longer side `thumbnailSize`) and compared by the mean absolute
/// difference in 8-bit gray levels. Averaging over the thumbnail's cells suppresses sensor noise, so a
/// still scene reads as unchanged while a moving person does not.
///
/// The OBS background-removal plugin skips inference when the PSNR between the frame and the last
/// processed frame exceeds 35 dB (whole-frame RMS difference below ≈ 4.5 levels). The default here,
/// 1 level on the thumbnail, is stricter, because a region that moves is diluted by the whole frame
/// in either measure: 5 % of the frame changing by 30 levels (a difference of 1.5) counts as changed.
public struct FrameChangeDetector: Sendable {
    /// Mean absolute difference (gray levels, 0…255) below which a frame counts as unchanged;
    /// 0 treats every frame as changed.
    public var threshold: Double
    /// The thumbnail's longer side in pixels.
    public var thumbnailSize: Int

    public static let defaultThreshold = 1.0

    public init(threshold: Double = FrameChangeDetector.defaultThreshold, thumbnailSize: Int = 64) {
        self.threshold = threshold
        self.thumbnailSize = thumbnailSize
    }

    /// The grayscale thumbnail `[h, w]` float32 in gray levels of an RGB frame `[3, H, W]`
    /// (uint8, or float in [0, 1]); BT.601 luma weights.
    public func thumbnail(_ frame: Tensor) throws -> Tensor {
        let x = frame.rank == 4 && frame.shape[0] == 1 ? try frame.squeeze(dim: 0) : frame
        guard x.rank == 3, x.shape[0] == 3, x.shape[1] > 0, x.shape[2] > 0 else {
            throw SegmentationError("frame comparison needs an RGB frame [3, H, W], got \(frame.shape)")
        }
        guard thumbnailSize > 0 else { throw SegmentationError("thumbnailSize must be positive, got \(thumbnailSize)") }
        var rgb = try x.to(dtype: .float32)
        if x.dtype.isFloatingPoint { rgb = try rgb * 255 }
        let weights = try Tensor([Float(0.299), 0.587, 0.114], shape: [3, 1, 1])
        let gray = try (rgb * weights).sum(dims: [0], keepDim: true).unsqueeze(0)
        let (h, w) = (x.shape[1], x.shape[2])
        let scale = Double(max(h, w)) / Double(thumbnailSize)
        guard scale > 1 else { return try gray.reshape([h, w]) }
        let size = IntPair(max(1, Int((Double(h) / scale).rounded())), max(1, Int((Double(w) / scale).rounded())))
        return try F.adaptiveAvgPool2d(gray, outputSize: size).reshape([size.height, size.width])
    }

    /// Mean absolute difference of two thumbnails, nil when their sizes differ.
    public func difference(_ a: Tensor, _ b: Tensor) throws -> Double? {
        guard a.shape == b.shape else { return nil }
        return try (a - b).abs().mean().item()
    }
}

/// Runs a segmenter only on frames that changed: when a frame barely differs from the last frame the
/// model ran on (`FrameChangeDetector`), the model output of that frame is returned again. Comparing
/// with the last *processed* frame, not the previous one, keeps slow drifts from accumulating unseen.
/// Temporal smoothing and the rest of `MaskPostProcessor` run on every frame either way.
public final class SegmentationCache: PersonSegmenter {
    public let segmenter: any PersonSegmenter
    public var detector: FrameChangeDetector
    /// Frames answered from the cache, and frames that ran the model.
    public private(set) var skippedFrames = 0
    public private(set) var modelRuns = 0

    private enum Output { case model, frame }
    private var last: (thumbnail: Tensor, kind: Output, result: Tensor)?

    public init(_ segmenter: any PersonSegmenter, detector: FrameChangeDetector = FrameChangeDetector()) {
        self.segmenter = segmenter
        self.detector = detector
    }

    /// Forgets the reference frame (a cut or a new stream); the counters stay.
    public func reset() { last = nil }

    public func modelProbabilities(_ image: Tensor) throws -> Tensor {
        try cached(image, .model) { try segmenter.modelProbabilities($0) }
    }

    public func probabilities(_ image: Tensor) throws -> Tensor {
        try cached(image, .frame) { try segmenter.probabilities($0) }
    }

    private func cached(_ image: Tensor, _ kind: Output, _ run: (Tensor) throws -> Tensor) throws -> Tensor {
        guard detector.threshold > 0 else {
            modelRuns += 1
            return try run(image)
        }
        let thumbnail = try detector.thumbnail(image)
        if let last, last.kind == kind, let difference = try detector.difference(thumbnail, last.thumbnail),
           difference < detector.threshold {
            skippedFrames += 1
            return last.result
        }
        let result = try run(image)
        modelRuns += 1
        last = (thumbnail, kind, result)
        return result
    }
}
