import Foundation
import Geometry
import Torch

/// Settings of `CameraTracker`. Pixel quantities are at the tracking resolution (the frame
/// downscaled by an integer factor so that its longest side is near `trackingSize`).
public struct TrackerSettings: Sendable, Equatable, Codable {
    /// Horizontal field of view of the real camera in degrees (sets the focal length:
    /// f = 0.5·W / tan(FOV/2), as `PinholeCamera`).
    public var fov: Double = 60
    /// Longest side the frame is box-downscaled to (by the nearest integer factor) before tracking.
    public var trackingSize = 640
    /// Corners kept track of.
    public var maxCorners = 200
    /// Shi–Tomasi: corners keep at least this fraction of the strongest corner response.
    public var qualityLevel = 0.01
    /// Shi–Tomasi: minimum distance between corners, pixels.
    public var minDistance = 10.0
    /// New corners are detected when fewer than this fraction of `maxCorners` tracks survive.
    public var redetectFraction = 0.6
    /// Person-mask probabilities at or above this count as person.
    public var maskThreshold = 0.25
    /// The person mask is grown by this many pixels before corners and tracks are excluded from it;
    /// at least the Lucas–Kanade window radius, so that no window straddles the person's edge.
    public var maskDilation = 16
    /// Pyramid levels above full resolution (each halves the size).
    public var pyramidLevels = 3
    /// Lucas–Kanade window (2r + 1)².
    public var windowRadius = 7
    /// Tracks whose backward track misses their start by more than this (pixels) are dropped.
    public var forwardBackwardThreshold = 0.5
    /// RANSAC inlier threshold, pixels.
    public var ransacThreshold = 1.0
    /// Fewer inliers than this and the frame's rotation is not trusted (the orientation is held and
    /// tracking restarts).
    public var minInliers = 8
    /// Seeds RANSAC's sampling (same frames, same rotations).
    public var seed: UInt64 = 0

    public init(fov: Double = 60) { self.fov = fov }
}

/// What one frame's tracking found.
public struct TrackingStep: Sendable, Equatable {
    /// Index of the frame (0 for the first one after `init` or `reset()`).
    public let frame: Int
    /// The camera's orientation relative to frame 0 (camera-to-world, world = frame 0's camera axes).
    public let orientation: Orientation
    /// The same as a rotation matrix (exact, without the angle round trip).
    public let rotation: Matrix3
    /// Tracks that agreed with the rotation (RANSAC inliers), before any re-detection.
    public let inliers: Int
    /// Tracks alive after this frame (including newly detected corners).
    public let tracks: Int
    /// Whether new corners were detected on this frame.
    public let redetected: Bool
    /// Whether too few tracks agreed on a rotation, so the previous orientation was kept.
    public let lost: Bool
}

/// Camera rotation from video for the call pipeline: Shi–Tomasi corners outside the (dilated) person
/// mask → pyramidal Lucas–Kanade with a forward–backward check → RANSAC on the pure-rotation model
/// H = K R K⁻¹ (as bearings: a = R b) → least-squares rotation (SVD) → orientation relative to the
/// first frame, in `Orientation`'s convention (R = Ry(yaw)·Rx(pitch)·Rz(roll), camera-to-world, OpenCV
/// camera axes; positive yaw turns right, positive pitch looks up).
///
/// Each track remembers the world direction of its corner (fixed when it was detected), so every
/// frame's rotation is fitted to all live tracks against those directions rather than chained from
/// frame-to-frame increments; rotations only chain through re-detections. The person is masked
/// out because they move with the camera: their corners would vote for "no rotation".
public final class CameraTracker {
    public let settings: TrackerSettings
    /// Frames seen since `init` or `reset()`.
    public private(set) var frameCount = 0
    /// The current orientation (the last frame's).
    public var orientation: Orientation { Orientation(rotation: rotation) }

    private struct Track {
        var point: SIMD2<Float>
        /// World direction of the corner: the camera rotation times its bearing when detected.
        let world: SIMD3<Double>
    }

    private var rotation = Matrix3.identity
    private var previous: FramePyramid?
    private var tracks: [Track] = []
    private var frameSize: (width: Int, height: Int)?
    private var factor = 1
    private var intrinsics = Intrinsics(focal: 1, cx: 0, cy: 0)
    private var generator: SampleGenerator
    private let flow: LucasKanade
    private let detector: CornerDetector

    public init(settings: TrackerSettings = TrackerSettings()) {
        self.settings = settings
        generator = SampleGenerator(seed: settings.seed)
        flow = LucasKanade(windowRadius: settings.windowRadius)
        detector = CornerDetector(qualityLevel: Float(settings.qualityLevel), minDistance: Float(settings.minDistance),
                                  blockRadius: 1, border: settings.windowRadius + 1)
    }

    /// Forgets everything: the next frame becomes frame 0.
    public func reset() {
        rotation = .identity
        previous = nil
        tracks = []
        frameSize = nil
        frameCount = 0
        generator = SampleGenerator(seed: settings.seed)
    }

    /// Tracks one frame.
    /// - Parameters:
    ///   - frame: RGB `[3, H, W]` uint8 (every frame the same size).
    ///   - personMask: person probabilities in [0, 1], `[h, w]` or `[1, h, w]` at any resolution
    ///     covering the whole frame (e.g. `Segmenter.modelProbabilities`), or nil for no person.
    public func track(_ frame: Tensor, personMask: Tensor? = nil) throws -> TrackingStep {
        guard frame.rank == 3 else { throw TrackingError("camera tracking needs an RGB frame [3, H, W], got \(frame.shape)") }
        try configure(width: frame.shape[2], height: frame.shape[1])
        let base = try TrackingImage.luma(frame, factor: factor)
        let pyramid = FramePyramid(base, levels: settings.pyramidLevels)
        let excluded = try personMask.map {
            try ExclusionMask($0, width: base.width, height: base.height, threshold: Float(settings.maskThreshold),
                              radius: settings.maskDilation)
        }

        var inliers = 0, lost = false
        if let previous, !tracks.isEmpty {
            (inliers, lost) = try follow(from: previous, to: pyramid, excluded: excluded)
        }
        var redetected = false
        if Double(tracks.count) < settings.redetectFraction * Double(settings.maxCorners) {
            let (gradientX, gradientY) = TrackingImage.gradients(pyramid.base)
            let corners = detector.detect(gradientX: gradientX, gradientY: gradientY,
                                          excluded: excluded, existing: tracks.map(\.point),
                                          limit: settings.maxCorners - tracks.count)
            tracks += corners.map { Track(point: $0, world: rotation * intrinsics.bearing($0)) }
            redetected = !corners.isEmpty
        }
        previous = pyramid
        let index = frameCount
        frameCount += 1
        return TrackingStep(frame: index, orientation: orientation, rotation: rotation, inliers: inliers,
                            tracks: tracks.count, redetected: redetected, lost: lost)
    }

    /// Moves the tracks into the new frame and updates the rotation; returns the inlier count and
    /// whether the frame was lost.
    private func follow(from previous: FramePyramid, to current: FramePyramid,
                        excluded: ExclusionMask?) throws -> (inliers: Int, lost: Bool) {
        let starts = tracks.map(\.point)
        let forward = flow.track(starts, from: previous, to: current)
        let moved = forward.indices.filter { forward[$0] != nil }
        let ends = moved.map { forward[$0]! }
        // Backward from where each point landed, seeded with the reverse of its forward motion.
        let backward = flow.track(ends, from: current, to: previous,
                                  guesses: zip(moved, ends).map { starts[$0.0] - $0.1 })
        let fbLimit = Float(settings.forwardBackwardThreshold * settings.forwardBackwardThreshold)
        var survivors: [Track] = [], before: [SIMD3<Double>] = [], after: [SIMD3<Double>] = []
        for (k, i) in moved.enumerated() {
            guard let back = backward[k] else { continue }
            let miss = back - starts[i]
            guard (miss * miss).sum() <= fbLimit else { continue }
            // Background points that slid under the person are occluded now.
            if let excluded, excluded.contains(ends[k].x, ends[k].y) { continue }
            survivors.append(Track(point: ends[k], world: tracks[i].world))
            before.append(intrinsics.bearing(starts[i]))
            after.append(intrinsics.bearing(ends[k]))
        }
        let threshold = settings.ransacThreshold / intrinsics.focal
        let ransac = RotationRANSAC(threshold: threshold)
        guard survivors.count >= settings.minInliers,
              let (relative, mask) = try ransac.estimate(before, after, generator: &generator),
              mask.filter({ $0 }).count >= settings.minInliers else {
            tracks = []
            return (0, true)
        }
        let agreeing = survivors.indices.filter { mask[$0] }
        // Fit against the tracks' world directions; a track whose world direction no longer agrees
        // with the chained estimate (it slipped along an edge over several frames) is dropped.
        let predicted = rotation * relative
        let limit = 4 * threshold * threshold
        let consistent = agreeing.filter { RotationFit.residual(predicted, survivors[$0].world, after[$0]) < limit }
        if consistent.count >= settings.minInliers {
            rotation = try RotationFit.leastSquares(consistent.map { survivors[$0].world }, consistent.map { after[$0] })
            tracks = consistent.map { survivors[$0] }
        } else {
            rotation = predicted
            tracks = agreeing.map { Track(point: survivors[$0].point, world: predicted * after[$0]) }
        }
        return (agreeing.count, false)
    }

    /// Sets up the tracking resolution and intrinsics on the first frame; later frames must match.
    private func configure(width: Int, height: Int) throws {
        if let frameSize {
            guard frameSize == (width, height) else {
                throw TrackingError("frame size changed from \(frameSize.width)×\(frameSize.height) to \(width)×\(height); call reset() first")
            }
            return
        }
        guard width > 0, height > 0 else { throw TrackingError("empty frame \(width)×\(height)") }
        do { try PinholeCamera.validate(fov: settings.fov) } catch { throw TrackingError("\(error)") }
        factor = max(1, Int((Double(max(width, height)) / Double(max(1, settings.trackingSize))).rounded()))
        let camera = PinholeCamera(fov: settings.fov, width: width, height: height)
        // Tracking pixel x is the box average of frame pixels factor·x … factor·x + factor − 1,
        // centred on frame pixel factor·x + (factor − 1)/2.
        let shift = Double(factor - 1) / 2, scale = Double(factor)
        intrinsics = Intrinsics(focal: camera.focal / scale, cx: (camera.cx - shift) / scale, cy: (camera.cy - shift) / scale)
        guard width / factor >= 4 * (settings.windowRadius + 2), height / factor >= 4 * (settings.windowRadius + 2) else {
            throw TrackingError("frame \(width)×\(height) is too small to track")
        }
        frameSize = (width, height)
    }
}
