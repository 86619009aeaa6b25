import Torch

/// How a segmentation probability map becomes the compositing mask. Defaults follow the OBS
/// background-removal plugin (threshold 0.5, temporal smoothing 0.85, contour filter 5 %, feather 0),
/// whose users ask for no flicker, no halo and little CPU.
public struct MaskPostProcessing: Equatable, Sendable {
    /// Probability at or above which a pixel is the person; nil keeps soft probabilities.
    public var threshold: Float? = 0.5
    /// Weight of the new frame in the temporal exponential moving average
    /// s_t = w·p_t + (1 − w)·s_{t−1} of the probabilities, as OBS's `temporal_smooth_factor` (default
    /// 0.85); w ≥ 1 or ≤ 0 disables smoothing. OBS averages its thresholded mask; averaging the
    /// probabilities before the threshold suppresses the same one-frame flicker without greying edges.
    public var temporalSmoothing: Float = 0.85
    /// Person blobs (8-connected) smaller than this fraction of the frame are dropped: OBS's contour
    /// filter (0.05). 0 keeps every blob.
    public var minBlobFraction: Float = 0.05
    /// Background holes (4-connected, not touching the border) smaller than this fraction of the frame
    /// are filled. 0 (default) keeps them: a gap between arm and body is real background.
    public var maxHoleFraction: Float = 0
    /// Radius in output pixels of the box blur that feathers the final mask edge (a ramp 2r + 1
    /// pixels wide); 0 (OBS's default) keeps a hard edge.
    public var featherRadius: Int = 0

    public init(threshold: Float? = 0.5, temporalSmoothing: Float = 0.85, minBlobFraction: Float = 0.05,
                maxHoleFraction: Float = 0, featherRadius: Int = 0) {
        self.threshold = threshold
        self.temporalSmoothing = temporalSmoothing
        self.minBlobFraction = minBlobFraction
        self.maxHoleFraction = maxHoleFraction
        self.featherRadius = featherRadius
    }

    /// No smoothing, no blob removal, no feathering: the thresholded model output only.
    public static let none = MaskPostProcessing(threshold: nil, temporalSmoothing: 1, minBlobFraction: 0)
}

/// Applies `MaskPostProcessing` frame after frame; keeps the smoothed probabilities of the previous
/// frame, so use one processor per video stream and `reset()` it at a cut.
public final class MaskPostProcessor {
    public var settings: MaskPostProcessing
    /// The smoothed probabilities of the last frame, `[h, w]` at the model resolution.
    private var previous: Tensor?
    /// The last upsampler, kept while the sizes stay the same.
    private var upsample: PlaneResampler?

    public init(_ settings: MaskPostProcessing = MaskPostProcessing()) {
        self.settings = settings
    }

    /// Forgets the previous frame (a new stream or a scene cut).
    public func reset() { previous = nil }

    /// - Parameters:
    ///   - probabilities: the model output `[1, h, w]` or `[h, w]` in [0, 1] (its own resolution:
    ///     smoothing and blob removal run there, where they are cheapest).
    ///   - height, width: the output size (the frame's); nil keeps the model resolution.
    /// - Returns: the mask `[1, H, W]` float in [0, 1] (binary unless `threshold` is nil or feathering).
    public func process(_ probabilities: Tensor, height: Int? = nil, width: Int? = nil) throws -> Tensor {
        guard probabilities.rank == 2 || (probabilities.rank == 3 && probabilities.shape[0] == 1) else {
            throw SegmentationError("post-processing takes probabilities [1, h, w] or [h, w], got \(probabilities.shape)")
        }
        let s = settings
        guard s.featherRadius >= 0 else { throw SegmentationError("featherRadius must be ≥ 0, got \(s.featherRadius)") }
        var p = try probabilities.reshape(Array(probabilities.shape.suffix(2))).to(dtype: .float32)
        let (h, w) = (p.shape[0], p.shape[1])

        if s.temporalSmoothing > 0, s.temporalSmoothing < 1, let last = previous, last.shape == p.shape {
            p = try last.lerp(p, weight: Double(s.temporalSmoothing))
        }
        previous = p

        var mask = try s.threshold.map { try (p .>= Double($0)).to(dtype: .float32) } ?? p
        if s.minBlobFraction > 0 || s.maxHoleFraction > 0 {
            mask = try removeBlobs(mask, decision: p, height: h, width: w)
        }

        var out = try mask.reshape([1, 1, h, w])
        let (outH, outW) = (height ?? h, width ?? w)
        if outH != h || outW != w {
            if upsample?.resizes(from: (h, w), to: (outH, outW)) != true {
                upsample = try PlaneResampler(from: (h, w), to: (outH, outW))
            }
            out = try upsample.map { try $0(out) } ?? out
            // Re-binarising the interpolated mask gives smooth contours at the frame resolution
            // instead of model-sized staircase blocks.
            if s.threshold != nil { out = try (out .>= 0.5).to(dtype: .float32) }
        }
        if s.featherRadius > 0 {
            let r = s.featherRadius
            out = try F.avgPool2d(out, kernel: IntPair(2 * r + 1), stride: 1, padding: IntPair(r), countIncludePad: false)
        }
        return try out.reshape([1, outH, outW])
    }

    /// Drops small person blobs and fills small enclosed holes, on the CPU at the model resolution.
    /// `decision` (the smoothed probabilities) decides what is person, at `threshold` or 0.5.
    private func removeBlobs(_ mask: Tensor, decision: Tensor, height h: Int, width w: Int) throws -> Tensor {
        let cut = Double(settings.threshold ?? 0.5)
        let person: [Bool] = try (decision .>= cut).contiguous().toArray()
        var values: [Float] = try mask.contiguous().toArray()
        let area = Float(h * w)
        if settings.minBlobFraction > 0 {
            let blobs = try ConnectedComponents(mask: person, width: w, height: h, eightConnected: true)
            let limit = settings.minBlobFraction * area
            for i in values.indices where blobs.labels[i] >= 0 && Float(blobs.sizes[Int(blobs.labels[i])]) < limit {
                values[i] = 0
            }
        }
        if settings.maxHoleFraction > 0 {
            let holes = try ConnectedComponents(mask: person.map { !$0 }, width: w, height: h, eightConnected: false)
            let limit = settings.maxHoleFraction * area
            for i in values.indices where holes.labels[i] >= 0 {
                let c = Int(holes.labels[i])
                if !holes.touchesBorder[c], Float(holes.sizes[c]) < limit { values[i] = 1 }
            }
        }
        return try Tensor(values, shape: [h, w])
    }
}
