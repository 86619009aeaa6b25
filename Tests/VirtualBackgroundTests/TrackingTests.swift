import BackdropTestSupport
import Foundation
import Geometry
import Media
import Torch
@testable import VirtualBackground
import XCTest

/// Camera tracking: the pieces (Lucas–Kanade, RANSAC, corners) on controlled inputs, then the whole
/// tracker on a video rendered from a real CC0 panorama along a known rotation path with a real person
/// composited in front, and on a real static-camera video.
final class TrackingTests: XCTestCase {
    // MARK: Pieces

    /// The astronaut photo's luma (a real, textured image) at full resolution.
    private func astronautLuma() throws -> Plane {
        let image = try Image(contentsOf: TestSupport.asset("photos/astronaut.png")).rgb8().tensor(.uint8)
        return try TrackingImage.luma(image, factor: 1)
    }

    /// The photo (smoothed one pyramid level) as a continuous bilinear surface S, sampled on the pixel
    /// grid at (x − shift)/2: an exact translation of one signal for any sub-pixel shift, so the only
    /// error left is the tracker's (resampling a grid image by a fraction of a pixel would blur it and
    /// bias the reference instead).
    private func shiftedPhoto(_ surface: Plane, by shift: SIMD2<Float>) -> Plane {
        let (w, h) = (2 * surface.width, 2 * surface.height)
        var image = Plane(width: w, height: h)
        for y in 0..<h {
            for x in 0..<w { image.pixels[y * w + x] = surface.sample((Float(x) - shift.x) / 2, (Float(y) - shift.y) / 2) }
        }
        return image
    }

    /// Corners of a real photo are found at p + shift after a known sub-pixel shift, both for a shift
    /// within the window and for one that needs the pyramid; without the pyramid the large one fails.
    func testLucasKanadeRecoversKnownSubpixelShift() throws {
        let surface = TrackingImage.halve(try astronautLuma())
        let base = shiftedPhoto(surface, by: .zero)
        let from = FramePyramid(base, levels: 3)
        let (gx, gy) = TrackingImage.gradients(base)
        let points = CornerDetector(minDistance: 12, border: 24)
            .detect(gradientX: gx, gradientY: gy, excluded: nil, existing: [], limit: 150)
        XCTAssertGreaterThan(points.count, 100)
        let flow = LucasKanade()
        func errors(_ tracked: [SIMD2<Float>?], _ shift: SIMD2<Float>) -> [Float] {
            zip(points, tracked).compactMap { p, q in q.map { (($0 - p - shift) * ($0 - p - shift)).sum().squareRoot() } }
        }
        // The second shift is about three window radii: only the coarse levels can see that far.
        let far = SIMD2<Float>(21.3, -14.6)
        for shift in [SIMD2<Float>(0.37, -0.61), far] {
            let moved = shiftedPhoto(surface, by: shift)
            let found = errors(flow.track(points, from: from, to: FramePyramid(moved, levels: 3)), shift).sorted()
            XCTAssertGreaterThan(found.count, points.count * 9 / 10, "shift \(shift): most points are tracked")
            print("LK shift \(shift): median error \(found[found.count / 2]) px, 90th percentile \(found[found.count * 9 / 10]) px")
            // Bilinear resampling of the moved grid image is not exact for a real photo (the photo's own
            // interpolation knots no longer fall on the grid), which leaves a few hundredths of a pixel;
            // a tracker without sub-pixel refinement would be off by up to half a pixel.
            XCTAssertLessThan(found[found.count / 2], 0.05, "shift \(shift): median error (px)")
            XCTAssertLessThan(found[found.count * 9 / 10], 0.12, "shift \(shift): 90th percentile error (px)")
        }
        // A single level reaches only about a window radius: most points fail or land elsewhere.
        let moved = shiftedPhoto(surface, by: far)
        let flat = errors(flow.track(points, from: FramePyramid(base, levels: 0), to: FramePyramid(moved, levels: 0)), far)
        XCTAssertLessThan(flat.filter { $0 < 0.12 }.count, points.count / 4, "the pyramid is what makes large shifts work")
    }

    /// Bearings of 300 pixels of a 640×360, 60° camera, rotated by a known rotation with 0.1 px of
    /// noise, 35 % of them replaced by unrelated directions: RANSAC finds the rotation and the outliers.
    func testRansacRecoversRotationDespiteOutliers() throws {
        let camera = PinholeCamera(fov: 60, width: 640, height: 360)
        let intrinsics = Intrinsics(focal: camera.focal, cx: camera.cx, cy: camera.cy)
        let truth = Orientation(yaw: 2.5, pitch: -1.2, roll: 0.8).rotation
        var generator = SampleGenerator(seed: 7)
        func uniform() -> Float { Float(generator.next() >> 11) / Float(1 << 53) }
        var a: [SIMD3<Double>] = [], b: [SIMD3<Double>] = [], isOutlier: [Bool] = []
        for k in 0..<300 {
            let p = SIMD2<Float>(uniform() * 639, uniform() * 359)
            let bearing = intrinsics.bearing(p)
            b.append(bearing)
            if k % 20 < 7 {
                a.append(intrinsics.bearing(SIMD2(uniform() * 639, uniform() * 359)))
                isOutlier.append(true)
            } else {
                let noisy = intrinsics.project(truth * bearing) + SIMD2(uniform() - 0.5, uniform() - 0.5) * 0.2
                a.append(intrinsics.bearing(noisy))
                isOutlier.append(false)
            }
        }
        // The minimal solver is exact on noise-free pairs.
        let exact = try XCTUnwrap(RotationFit.minimal(truth * b[1], truth * b[2], b[1], b[2]))
        XCTAssertLessThan((exact.transposed * truth).rotationAngle, 1e-6)

        var sampler = SampleGenerator(seed: 1)
        let result = try XCTUnwrap(RotationRANSAC(threshold: 1 / camera.focal).estimate(a, b, generator: &sampler))
        let error = (result.rotation.transposed * truth).rotationAngle
        XCTAssertLessThan(error, 0.01, "rotation error (degrees)")
        let agreement = zip(result.inliers, isOutlier).filter { $0 != $1 }.count
        XCTAssertGreaterThanOrEqual(Double(agreement) / 300, 0.98, "inlier classification")
        // Least squares over everything, outliers included, is far off: the robust step matters.
        let naive = try RotationFit.leastSquares(a, b)
        XCTAssertGreaterThan((naive.transposed * truth).rotationAngle, 10 * error)
    }

    /// Corners stay out of the dilated person mask (here a rectangle over the astronaut's face and
    /// suit), where they would otherwise be plentiful.
    func testCornersAvoidDilatedMask() throws {
        let base = try astronautLuma()
        let (gx, gy) = TrackingImage.gradients(base)
        var values = [Float](repeating: 0, count: 512 * 512)
        for y in 60..<400 { for x in 150..<330 { values[y * 512 + x] = 0.9 } }
        let mask = try ExclusionMask(Tensor(values, shape: [1, 512, 512]), width: 512, height: 512, threshold: 0.5, radius: 12)
        let detector = CornerDetector(minDistance: 8)
        let unmasked = detector.detect(gradientX: gx, gradientY: gy, excluded: nil, existing: [], limit: 400)
        let masked = detector.detect(gradientX: gx, gradientY: gy, excluded: mask, existing: [], limit: 400)
        func insideGrown(_ p: SIMD2<Float>) -> Bool { p.x >= 138 && p.x < 342 && p.y >= 48 && p.y < 412 }
        XCTAssertGreaterThan(unmasked.filter(insideGrown).count, 50, "the masked region has texture")
        XCTAssertEqual(masked.filter(insideGrown).count, 0)
        XCTAssertGreaterThan(masked.count, 100)
        // Minimum distance holds among the corners, and against existing tracks.
        let existing = Array(masked.prefix(20))
        let added = detector.detect(gradientX: gx, gradientY: gy, excluded: mask, existing: existing, limit: 50)
        for p in added {
            for q in existing + added where q != p { XCTAssertGreaterThanOrEqual(((p - q) * (p - q)).sum(), 64) }
        }
    }

    // MARK: Real panorama sequence

    /// Frames rendered from blender-data's CC0 `interior` panorama along a known path, with the
    /// astronaut photo composited by its selfie-segmenter mask at a fixed place in the frame.
    struct Sequence {
        let frames: [Tensor]
        let masks: [Tensor]
        let truth: [Matrix3]
    }

    static let frameCount = 100
    static let size = (width: 640, height: 360)
    nonisolated(unsafe) static var cachedSequence: Sequence?
    nonisolated(unsafe) static var cachedResults: [Bool: [Matrix3]] = [:]

    /// yaw 1°/frame, pitch ±4° and roll ±2° on slower sines (so the per-frame motion mixes all three).
    static func path(_ k: Int) -> Orientation {
        let t = Double(k)
        return Orientation(yaw: 1.0 * t, pitch: 4 * sin(2 * .pi * t / 60), roll: 2 * sin(2 * .pi * t / 45))
    }

    static func sequence() throws -> Sequence {
        if let cachedSequence { return cachedSequence }
        let (w, h) = size
        let panorama = try Image(contentsOf: TestSupport.asset("panoramas/interior.png")).rgb8().tensor(.uint8)
        let sampler = try EquirectSampler(panorama)
        let camera = PinholeCamera(fov: 60, width: w, height: h)

        // The person: the photo and its real mask, scaled to the frame height, right of centre.
        let photo = try Image(contentsOf: TestSupport.asset("photos/astronaut.png")).rgb8().tensor(.uint8)
        let probabilities = try Segmenter(.selfie).probabilities(photo)  // [1, 512, 512]
        let side = h
        let person = try F.interpolate(photo.to(dtype: .float32).unsqueeze(0), size: [side, side], mode: .bilinear,
                                       antialias: true)
        let alpha = try F.interpolate(probabilities.unsqueeze(0), size: [side, side], mode: .bilinear, antialias: true)
        let left = (w - side) / 2 + 60
        // Padded to the frame: (left, right, top, bottom) in pixels.
        let pad = [left, w - side - left, 0, 0]
        let personFrame = try F.pad(person * alpha, pad)
        let alphaFrame = try F.pad(alpha, pad)

        var frames: [Tensor] = [], masks: [Tensor] = [], truth: [Matrix3] = []
        for k in 0..<frameCount {
            let orientation = path(k)
            let background = try sampler.viewport(camera: camera, rotation: orientation.matrix())
            let composite = try background * (alphaFrame.neg() + 1) + personFrame
            frames.append(try composite.round().clamp(min: 0, max: 255).to(dtype: .uint8).squeeze(dim: 0).contiguous())
            masks.append(try alphaFrame.squeeze(dim: 0))
            truth.append(orientation.rotation)
        }
        let result = Sequence(frames: frames, masks: masks, truth: truth)
        cachedSequence = result
        return result
    }

    /// The tracker's rotation per frame, with or without the person mask (cached across tests).
    static func tracked(masked: Bool) throws -> [Matrix3] {
        if let cached = cachedResults[masked] { return cached }
        let sequence = try sequence()
        let tracker = CameraTracker(settings: TrackerSettings(fov: 60))
        var rotations: [Matrix3] = []
        for (frame, mask) in zip(sequence.frames, sequence.masks) {
            rotations.append(try tracker.track(frame, personMask: masked ? mask : nil).rotation)
        }
        cachedResults[masked] = rotations
        return rotations
    }

    /// Per-frame errors (of the rotation between consecutive frames) and drift (of the orientation
    /// relative to frame 0).
    static func errors(_ estimate: [Matrix3], _ truth: [Matrix3]) -> (perFrame: [Double], drift: [Double]) {
        var perFrame: [Double] = [], drift: [Double] = []
        for k in 1..<truth.count {
            let estimated = estimate[k - 1].transposed * estimate[k]
            let actual = truth[k - 1].transposed * truth[k]
            perFrame.append(estimated.angle(to: actual))
            drift.append(estimate[k].angle(to: truth[k]))
        }
        return (perFrame, drift)
    }

    func testMaskedTrackingFollowsKnownRotationPath() throws {
        let sequence = try Self.sequence()
        let estimate = try Self.tracked(masked: true)
        XCTAssertEqual(estimate[0], Orientation().rotation, "frame 0 is the reference")
        let (perFrame, drift) = Self.errors(estimate, sequence.truth)
        let mean = perFrame.reduce(0, +) / Double(perFrame.count)
        print(String(format: "masked: mean per-frame error %.4f°, max %.4f°, drift %.3f° (max %.3f°)",
                     mean, perFrame.max()!, drift.last!, drift.max()!))
        XCTAssertLessThanOrEqual(mean, 0.05, "mean per-frame error (degrees)")
        XCTAssertLessThanOrEqual(drift.max()!, 1, "drift over \(Self.frameCount) frames (degrees)")
        // The reported angles follow the project's convention, not just the matrices.
        let last = Orientation(rotation: estimate.last!)
        let expected = Self.path(Self.frameCount - 1)
        XCTAssertEqual(last.yaw, expected.yaw, accuracy: 1)
        XCTAssertEqual(last.pitch, expected.pitch, accuracy: 1)
        XCTAssertEqual(last.roll, expected.roll, accuracy: 1)
    }

    /// The person moves with the camera: without the mask the tracker follows them (too little
    /// rotation), with it the error is at least ten times lower.
    func testPersonMaskIsWhatMakesTrackingWork() throws {
        let sequence = try Self.sequence()
        let masked = Self.errors(try Self.tracked(masked: true), sequence.truth)
        let unmasked = Self.errors(try Self.tracked(masked: false), sequence.truth)
        let maskedMean = masked.perFrame.reduce(0, +) / Double(masked.perFrame.count)
        let unmaskedMean = unmasked.perFrame.reduce(0, +) / Double(unmasked.perFrame.count)
        print(String(format: "unmasked: mean per-frame error %.4f°, drift %.3f°; masked %.4f°: ratio %.1f×",
                     unmaskedMean, unmasked.drift.last!, maskedMean, unmaskedMean / maskedMean))
        XCTAssertGreaterThanOrEqual(unmaskedMean, 10 * maskedMean)
    }

    // MARK: Real static video and the command line

    /// opencv-doc's vtest.avi (768×576, 10 fps, a fixed camera over a plaza with people walking),
    /// decoded by ffmpeg through the shared video reader; the first 100 frames (10 s, several walkers
    /// crossing) keep the debug-build test short (`backdrop track` on all 795 frames stays within
    /// 0.01°). No person mask: the walkers move independently of
    /// the camera, so RANSAC alone must reject them. Bound: the orientation stays within 0.1° of
    /// frame 0 on every frame — about one pixel of image motion at this size (f = 665 px for the
    /// assumed 60° FOV, 1 px ≈ 0.086°) — where a real one-degree turn would move the image 12 px.
    func testStaticRealVideoReportsNearZeroRotation() throws {
        let video = try openVideo(TestSupport.asset("videos/vtest.avi"))
        XCTAssertEqual([video.width, video.height], [768, 576])
        let tracker = CameraTracker(settings: TrackerSettings(fov: 60))
        var worst = 0.0, frames = 0
        while frames < 100, let frame = try video.nextFrame() {
            let step = try tracker.track(frame)
            XCTAssertFalse(step.lost, "frame \(frames)")
            worst = max(worst, step.rotation.rotationAngle)
            frames += 1
        }
        XCTAssertEqual(frames, 100)
        print(String(format: "vtest.avi: largest rotation from frame 0 over %d frames %.4f°, final %@", frames, worst,
                     tracker.orientation.description))
        XCTAssertLessThan(worst, 0.1, "rotation of a static camera (degrees)")
    }

    /// `backdrop track` on a folder of 12 frames of the panorama sequence, with the real selfie
    /// segmenter run on each composited frame: the CSV's header, one row per frame, frame 0 at zero,
    /// and the last row close to the known orientation.
    func testTrackCommandWritesRotationCSV() throws {
        let sequence = try Self.sequence()
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let frames = folder.appendingPathComponent("frames")
        try FileManager.default.createDirectory(at: frames, withIntermediateDirectories: true)
        for k in 0..<12 {
            try Image(tensor: sequence.frames[k], range: .uint8)
                .write(to: frames.appendingPathComponent(String(format: "%03d.png", k)), format: .png)
        }
        let csv = folder.appendingPathComponent("rotations.csv")
        let (status, output) = try TestSupport.runBackdrop(["track", "--input", frames.path, "--fov", "60", "--out", csv.path])
        XCTAssertEqual(status, 0, output)
        let lines = try String(contentsOf: csv, encoding: .utf8).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, "frame,yaw_deg,pitch_deg,roll_deg")
        XCTAssertEqual(lines.count, 13)
        XCTAssertEqual(lines[1], "0,0.0000,0.0000,0.0000")
        let last = lines[12].split(separator: ",").map { Double($0)! }
        let expected = Self.path(11)
        XCTAssertEqual(last[0], 11)
        XCTAssertEqual(last[1], expected.yaw, accuracy: 0.2)
        XCTAssertEqual(last[2], expected.pitch, accuracy: 0.2)
        XCTAssertEqual(last[3], expected.roll, accuracy: 0.2)
    }
}
