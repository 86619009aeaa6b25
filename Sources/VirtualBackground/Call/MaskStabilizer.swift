import Torch

/// Holds back a mask whose person coverage jumps from one frame to the next (the segmenter missing
/// the person for one frame, or seeing one in a flash of background), so the output never shows a
/// one-frame "pop". A jump is accepted once it persists for `holdFrames + 1` frames, so a person who
/// really leaves or enters the frame is followed with at most that delay.
public final class MaskStabilizer {
    /// Relative change of the covered area that counts as a jump (0.5 = half the person appears or
    /// disappears at once).
    public var maxRelativeChange: Double
    /// Frames a jump is held back before it is believed.
    public var holdFrames: Int
    /// Coverage below this fraction of the frame counts as "no person" (no relative test).
    public var minCoverage: Double = 0.005
    private var accepted: (mask: Tensor, coverage: Double)?
    private var held = 0
    public private(set) var framesHeld = 0

    public init(maxRelativeChange: Double = 0.5, holdFrames: Int = 2) {
        self.maxRelativeChange = maxRelativeChange
        self.holdFrames = holdFrames
    }

    public func reset() {
        accepted = nil
        held = 0
    }

    /// The mask to composite for this frame: `mask` itself, or the last accepted one while a jump is
    /// held back.
    public func stabilize(_ mask: Tensor) throws -> Tensor {
        let coverage = try mask.to(dtype: .float32).mean().item()
        guard let previous = accepted, holdFrames > 0 else {
            accepted = (mask, coverage)
            return mask
        }
        let reference = max(previous.coverage, coverage)
        let jump = reference > minCoverage && abs(coverage - previous.coverage) / reference > maxRelativeChange
        if jump && held < holdFrames {
            held += 1
            framesHeld += 1
            return previous.mask
        }
        held = 0
        accepted = (mask, coverage)
        return mask
    }
}
