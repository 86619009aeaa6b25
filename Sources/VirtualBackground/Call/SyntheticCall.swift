import Foundation
import Geometry
import Torch

/// A test call with a known answer: a real person (photo and mask) sits in front of a real room
/// (an equirectangular panorama) while the camera turns along a known path. The person moves with
/// the camera — they sit in front of it — so a tracker that does not mask them out sees a static
/// foreground and underestimates the turn; the room moves by exactly `path`.
public struct SyntheticCall {
    public let camera: PinholeCamera
    /// The camera's orientation per frame relative to the first frame's (frame 0 is the identity).
    public let path: [Orientation]
    private let room: ViewportRenderer
    private let person: Tensor
    private let personAlpha: Tensor
    private let start: Orientation
    private let compositor = Compositor()

    /// - Parameters:
    ///   - room: the real room as an equirectangular panorama `[3, H, W]` uint8.
    ///   - person: the person photo `[3, h, w]` uint8 and its mask `[1, h, w]` or `[h, w]` in [0, 1];
    ///     placed centred at the bottom of the frame, scaled to `personHeight` of the frame's height.
    ///   - start: where the camera looks in the room at frame 0.
    public init(room: Tensor, person: Tensor, personMask: Tensor, camera: PinholeCamera, path: [Orientation],
                start: Orientation = Orientation(), personHeight: Double = 0.8) throws {
        guard !path.isEmpty else { throw CallError("a synthetic call needs at least one frame") }
        guard person.rank == 3, person.shape[0] == 3, personMask.count == person.shape[1] * person.shape[2] else {
            throw CallError("synthetic call: person \(person.shape) and mask \(personMask.shape) do not match")
        }
        self.camera = camera
        self.path = path
        self.start = start
        self.room = try ViewportRenderer(panorama: room, camera: camera)
        // Scale the photo into the frame (antialiased), then pad it to the frame's size.
        let scale = personHeight * Double(camera.height) / Double(person.shape[1])
        let (h, w) = (min(Int((Double(person.shape[1]) * scale).rounded()), camera.height),
                      min(Int((Double(person.shape[2]) * scale).rounded()), camera.width))
        let resized = try F.interpolate(person.to(dtype: .float32).unsqueeze(0), size: IntPair(h, w), mode: .bilinear,
                                        antialias: true)[0]
        let mask = try F.interpolate(personMask.to(dtype: .float32).reshape([1, 1] + person.shape.suffix(2)),
                                     size: IntPair(h, w), mode: .bilinear, antialias: true)[0]
        let (top, left) = (camera.height - h, (camera.width - w) / 2)
        let padding = [left, camera.width - w - left, top, 0]
        self.person = try F.pad(resized, padding).round().clamp(min: 0, max: 255).to(dtype: .uint8)
        self.personAlpha = try F.pad(mask, padding).clamp(min: 0, max: 1)
    }

    public var frameCount: Int { path.count }

    /// The person's mask in frame coordinates `[1, H, W]`: where they are in every frame.
    public var personMask: Tensor { personAlpha }

    /// Frame `index`: the room seen from `start · path[index]`, with the person in front.
    public func frame(_ index: Int) throws -> Tensor {
        let orientation = Orientation(rotation: start.rotation * path[index].rotation)
        return try compositor.composite(person: person, room: room.render(orientation), alpha: personAlpha)
    }

    /// A smooth pan from rest: yaw swings right then left (at most ≈ 1.5°/frame at the defaults over
    /// 100 frames, the regime of docs/models.md#camera-tracking) while pitch and roll wobble slowly; frame 0 is the identity.
    public static func panningPath(frames: Int, yawAmplitude: Double = 20, pitchAmplitude: Double = 6,
                                   rollAmplitude: Double = 2) -> [Orientation] {
        (0..<frames).map { i in
            let t = Double(i) / Double(max(frames - 1, 1))
            return Orientation(yaw: yawAmplitude * sin(2 * .pi * t) * sin(.pi * t),
                               pitch: pitchAmplitude * (1 - cos(2 * .pi * t)) / 2,
                               roll: rollAmplitude * sin(2 * .pi * t) * sin(.pi * t) * sin(.pi * t))
        }
    }
}

/// Tracking accuracy along a known path, in degrees.
public struct TrackingAccuracy: Sendable {
    /// Mean angle between the true and the tracked frame-to-frame rotation.
    public let meanIncrementError: Double
    /// Mean angle between the true and the tracked orientation (relative to frame 0).
    public let meanOrientationError: Double
    /// The orientation error at the last frame.
    public let drift: Double

    public init(truth: [Orientation], tracked: [Orientation]) {
        let n = min(truth.count, tracked.count)
        var increment = 0.0, orientation = 0.0
        for i in 1..<max(n, 1) {
            let trueStep = truth[i - 1].rotation.transposed * truth[i].rotation
            let trackedStep = tracked[i - 1].rotation.transposed * tracked[i].rotation
            increment += trueStep.angle(to: trackedStep)
            orientation += truth[i].angle(to: tracked[i])
        }
        let steps = Double(max(n - 1, 1))
        meanIncrementError = increment / steps
        meanOrientationError = orientation / steps
        drift = n > 0 ? truth[n - 1].angle(to: tracked[n - 1]) : 0
    }
}
