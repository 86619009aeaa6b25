import Dispatch
import Foundation
import Geometry
import Torch

/// How a call is processed; the defaults are the documented behaviour of `backdrop call`.
public struct CallSettings: Sendable {
    /// The real camera's horizontal field of view, degrees: the tracker's focal length and the
    /// viewport's FOV, so the virtual room turns exactly as the real one would.
    public var fov: Double = 60
    /// Where the viewport looks in the panorama at frame 0.
    public var start = Orientation()
    /// Threshold, temporal smoothing, blob removal and feathering of the person mask.
    public var mask = MaskPostProcessing()
    /// Hold back one- or two-frame jumps of the person's area (nil: off).
    public var stabilizer: (maxRelativeChange: Double, holdFrames: Int)? = (0.5, 2)
    /// Colour match of the person to the room, 0…1.
    public var colorMatch: Float = 0
    /// Skip segmentation on frames that barely changed (mean gray-level difference of a thumbnail;
    /// 0 runs the model on every frame).
    public var skipThreshold = FrameChangeDetector.defaultThreshold
    /// Camera tracking; its `fov` is overridden by `fov` above.
    public var tracker = TrackerSettings()
    /// When false the background stays fixed at `start` (no tracking).
    public var trackCamera = true

    public init() {}
}

/// What the pipeline produced for one frame.
public struct CallFrame {
    /// The composited frame `[3, H, W]` uint8.
    public let output: Tensor
    /// The mask used for compositing, `[1, h, w]` in [0, 1]: at the segmenter's resolution (the
    /// frame's when feathering); `maskAtFrameSize()` gives it as composited.
    public let mask: Tensor
    let binaryMask: Bool
    /// The camera's orientation relative to frame 0 (identity when tracking is off).
    public let orientation: Orientation
    public let tracking: TrackingStep?

    /// The mask as the compositor applied it, `[1, H, W]` at the frame's size.
    public func maskAtFrameSize() throws -> Tensor {
        let (h, w) = (output.shape[1], output.shape[2])
        guard Array(mask.shape.suffix(2)) != [h, w] else { return mask }
        let upsampled = try F.interpolate(mask.reshape([1, 1] + mask.shape.suffix(2)), size: IntPair(h, w), mode: .bilinear,
                                          alignCorners: false)
        return try (binaryMask ? (upsampled .>= 0.5).to(dtype: .float32) : upsampled).reshape([1, h, w])
    }
}

/// Wall-clock time per stage and frame.
public struct CallTimings: Sendable {
    public static let stages = ["segmentation", "mask", "tracking", "viewport", "composite"]
    /// Seconds per frame, by stage.
    public private(set) var samples: [String: [Double]] = [:]
    /// Seconds per frame, end to end.
    public private(set) var frameSeconds: [Double] = []

    public var frames: Int { frameSeconds.count }
    public var total: Double { frameSeconds.reduce(0, +) }

    mutating func add(_ stage: String, _ elapsed: Double) { samples[stage, default: []].append(elapsed) }
    mutating func finishFrame(_ elapsed: Double) { frameSeconds.append(elapsed) }

    /// Mean milliseconds per frame of `stage`.
    public func milliseconds(_ stage: String) -> Double { frames == 0 ? 0 : 1000 * (samples[stage] ?? []).reduce(0, +) / Double(frames) }
    /// Median milliseconds per frame of `stage`, or end to end when `stage` is nil: the typical frame,
    /// which a few frames stalled by other processes on a shared machine do not move.
    public func medianMilliseconds(_ stage: String? = nil) -> Double {
        let values = (stage.map { samples[$0] ?? [] } ?? frameSeconds).sorted()
        guard !values.isEmpty else { return 0 }
        let middle = values.count / 2
        return 1000 * (values.count % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2)
    }
    public var framesPerSecond: Double { total == 0 ? 0 : Double(frames) / total }

    /// One line per stage (mean and median) plus the end-to-end rate.
    public var report: String {
        func label(_ name: String) -> String { "  " + name.padding(toLength: 13, withPad: " ", startingAt: 0) }
        let rows = Self.stages.map {
            label($0) + String(format: " %7.2f ms/frame (median %.2f)", milliseconds($0), medianMilliseconds($0))
        }
        let endToEnd = frames == 0 ? 0 : 1000 * total / Double(frames)
        #if DEBUG
        let note = ["  (a debug build, several times slower than release: `make bench-call` times the release build)"]
        #else
        let note: [String] = []
        #endif
        return (rows + [label("end to end") + String(format: " %7.2f ms/frame (median %.2f; %.1f fps over %d frames)", endToEnd,
                                                      medianMilliseconds(), framesPerSecond, frames)] + note).joined(separator: "\n")
    }
}

/// The call pipeline: segment the person → post-process and stabilise the mask → track the camera's
/// rotation on the background → render the panorama's viewport for that rotation → composite.
public final class CallPipeline {
    public let settings: CallSettings
    public let camera: PinholeCamera
    public private(set) var timings = CallTimings()
    public let segmenter: any PersonSegmenter
    private let renderer: ViewportRenderer
    private let processor: MaskPostProcessor
    private let stabilizer: MaskStabilizer?
    private let tracker: CameraTracker
    private let compositor: Compositor

    /// - Parameters:
    ///   - background: the virtual room, an equirectangular panorama `[3, H, W]` (uint8 or [0, 1]).
    ///   - width, height: the call's frame size.
    ///   - segmenter: the person segmentation model (wrapped in a `SegmentationCache` when
    ///     `settings.skipThreshold` > 0).
    public init(background: Tensor, width: Int, height: Int, segmenter: any PersonSegmenter,
                settings: CallSettings = CallSettings()) throws {
        do { try PinholeCamera.validate(fov: settings.fov) } catch { throw CallError("\(error)") }
        self.settings = settings
        camera = PinholeCamera(fov: settings.fov, width: width, height: height)
        self.segmenter = settings.skipThreshold > 0
            ? SegmentationCache(segmenter, detector: FrameChangeDetector(threshold: settings.skipThreshold)) : segmenter
        renderer = try ViewportRenderer(panorama: background, camera: camera)
        processor = MaskPostProcessor(settings.mask)
        stabilizer = settings.stabilizer.map { MaskStabilizer(maxRelativeChange: $0.maxRelativeChange, holdFrames: $0.holdFrames) }
        var trackerSettings = settings.tracker
        trackerSettings.fov = settings.fov
        tracker = CameraTracker(settings: trackerSettings)
        compositor = Compositor(colorMatch: settings.colorMatch)
    }

    /// Frames answered from the segmentation cache (unchanged frames).
    public var skippedSegmentations: Int { (segmenter as? SegmentationCache)?.skippedFrames ?? 0 }

    /// Processes the next frame of the call, `[3, H, W]` uint8 RGB.
    public func process(_ frame: Tensor) throws -> CallFrame {
        guard frame.shape == [3, camera.height, camera.width], frame.dtype == .uint8 else {
            throw CallError("call frames must be [3, \(camera.height), \(camera.width)] uint8, got \(frame.shape) \(frame.dtype)")
        }
        let frameStart = DispatchTime.now().uptimeNanoseconds
        var clock = frameStart
        func lap(_ stage: String) {
            let now = DispatchTime.now().uptimeNanoseconds
            timings.add(stage, Double(now - clock) / 1e9)
            clock = now
        }
        let probabilities = try segmenter.modelProbabilities(frame)
        lap("segmentation")
        // Without feathering the mask stays at the segmenter's resolution and the compositor upsamples
        // it on the fly (same interpolation and re-threshold as the post-processor's): a frame-sized
        // float mask would cost more than the blend itself.
        let atModelSize = settings.mask.featherRadius == 0
        var mask = try atModelSize ? processor.process(probabilities)
            : processor.process(probabilities, height: camera.height, width: camera.width)
        if let stabilizer { mask = try stabilizer.stabilize(mask) }
        lap("mask")
        let step = settings.trackCamera ? try tracker.track(frame, personMask: probabilities) : nil
        lap("tracking")
        let relative = step?.rotation ?? .identity
        let room = try renderer.render(rotation: settings.start.rotation * relative)
        lap("viewport")
        let output = try compositor.composite(person: frame, room: room, alpha: mask,
                                              binarize: atModelSize && settings.mask.threshold != nil)
        lap("composite")
        timings.finishFrame(Double(clock - frameStart) / 1e9)
        return CallFrame(output: output, mask: mask, binaryMask: atModelSize && settings.mask.threshold != nil,
                         orientation: step?.orientation ?? Orientation(), tracking: step)
    }
}
