import BackdropTestSupport
import Foundation
import Geometry
import Media
import Torch
import VirtualBackground
import XCTest

/// The viewport renderer against the tensor-op reference, the compositor against its formula, and the
/// mask stabiliser's hold-back.
final class CompositingTests: XCTestCase {
    private func panorama(_ name: String = "interior") throws -> Tensor {
        try Image(contentsOf: TestSupport.asset("panoramas/\(name).png")).rgb8().tensor(.uint8)
    }

    /// On a real panorama the grid-interpolated renderer matches `EquirectSampler.viewport` (exact
    /// map, grid_sample) to rounding almost everywhere, including across the ±180° seam; near the
    /// pole (pitch 80°) it falls back to the exact map and still agrees away from the pole rows,
    /// where the two handle the pole differently (clamped rows vs the pole-crossing padding).
    func testViewportMatchesTheExactSampler() throws {
        let pano = try panorama()
        let sampler = try EquirectSampler(pano)
        let camera = PinholeCamera(fov: 60, width: 320, height: 180)
        let renderer = try ViewportRenderer(panorama: pano, camera: camera)
        for orientation in [Orientation(yaw: 30, pitch: 10, roll: 5), Orientation(yaw: 180, pitch: -5),
                            Orientation(yaw: -97.3, pitch: 80, roll: -20)] {
            let fast = try renderer.render(orientation).to(dtype: .float32)
            let exact = try sampler.viewport(camera: camera, rotation: orientation.matrix())[0].round()
            let difference = try (fast - exact).abs()
            let mean = try difference.mean().item()
            let largeFraction = try (difference.gt(8)).to(dtype: .float32).mean().item()
            XCTAssertLessThan(mean, 0.5, "\(orientation): mean |Δ| \(mean) gray levels")
            XCTAssertLessThan(largeFraction, 0.002, "\(orientation): \(largeFraction) of samples differ by > 8 levels")
        }
    }

    /// The AVX2 kernel renders the same bytes as the portable C kernel, on a real panorama, for
    /// interpolated cells, cells across the seam, the exact fallback near a pole and partial cells at
    /// the right and bottom edges (a size that is not a multiple of the cell).
    func testSIMDAndPortableKernelsRenderIdenticalFrames() throws {
        ViewportRenderer.usesSIMD = true
        defer { ViewportRenderer.usesSIMD = true }
        guard ViewportRenderer.usesSIMD else { throw XCTSkip("this CPU has no AVX2: only the portable kernel runs") }
        let renderer = try ViewportRenderer(panorama: panorama("courtyard"), camera: PinholeCamera(fov: 75, width: 203, height: 117))
        for orientation in [Orientation(yaw: 12, pitch: 3, roll: 1), Orientation(yaw: 179, pitch: -20, roll: 8),
                            Orientation(yaw: -60, pitch: 84, roll: 0)] {
            ViewportRenderer.usesSIMD = true
            let simd = try renderer.render(orientation)
            ViewportRenderer.usesSIMD = false
            let portable = try renderer.render(orientation)
            XCTAssertEqual(try simd.toArray(UInt8.self), try portable.toArray(UInt8.self), "\(orientation)")
            XCTAssertGreaterThan(try simd.to(dtype: .float32).std().item(), 5, "\(orientation): the view has content")
        }
    }

    /// A uniform panorama must come out uniform from every direction: a black column at the seam or
    /// a hole at a pole would show.
    func testNoSeamOrPoleArtifacts() throws {
        let grey = try Tensor.full([3, 64, 128], 200, dtype: .uint8)
        let renderer = try ViewportRenderer(panorama: grey, camera: PinholeCamera(fov: 90, width: 97, height: 61), cellSize: 8)
        for orientation in [Orientation(yaw: 180), Orientation(yaw: 179.7, pitch: 30, roll: 10),
                            Orientation(yaw: 0, pitch: 90), Orientation(yaw: 45, pitch: -89)] {
            let view = try renderer.render(orientation)
            XCTAssertEqual(try view.amin().item(), 200, "\(orientation)")
            XCTAssertEqual(try view.amax().item(), 200, "\(orientation)")
        }
    }

    func testCompositeFollowsTheAlphaBlendFormula() throws {
        let g = try Generator(seed: 1)
        let person = try Tensor.randint(0, 256, [3, 17, 23], dtype: .uint8, generator: g)
        let room = try Tensor.randint(0, 256, [3, 17, 23], dtype: .uint8, generator: g)
        let alpha = try Tensor.rand([1, 17, 23], generator: g)
        let output = try Compositor().composite(person: person, room: room, alpha: alpha)
        let a = try (alpha * 255).round() / 255
        let expected = try (room.to(dtype: .float32) + a * (person.to(dtype: .float32) - room.to(dtype: .float32))).round()
        XCTAssertLessThanOrEqual(try TestSupport.maxAbsDifference(output.to(dtype: .float32), expected), 1)
        XCTAssertThrowsError(try Compositor().composite(person: person, room: room, alpha: Tensor.zeros([40])))
    }

    /// A mask at the segmenter's resolution, upsampled inside the compositor, gives the frame that
    /// `MaskPostProcessor`'s own upsampling (and re-threshold) followed by a full-size blend gives.
    func testLowResolutionMaskMatchesThePostProcessorsUpsampling() throws {
        let g = try Generator(seed: 3)
        let smooth = try F.avgPool2d(Tensor.rand([1, 1, 36, 64], generator: g), kernel: IntPair(5), stride: 1,
                                     padding: IntPair(2), countIncludePad: false)[0]
        // Larger frames (the usual case) and a frame smaller than the mask.
        for (h, w) in [(90, 160), (20, 30)] {
            let person = try Tensor.randint(0, 256, [3, h, w], dtype: .uint8, generator: g)
            let room = try Tensor.randint(0, 256, [3, h, w], dtype: .uint8, generator: g)
            for threshold in [Float(0.5), nil] {
                let settings = MaskPostProcessing(threshold: threshold, temporalSmoothing: 1, minBlobFraction: 0)
                let full = try MaskPostProcessor(settings).process(smooth, height: h, width: w)
                let low = try MaskPostProcessor(settings).process(smooth)
                XCTAssertEqual(low.shape, [1, 36, 64])
                let expected = try Compositor().composite(person: person, room: room, alpha: full).to(dtype: .float32)
                let fused = try Compositor().composite(person: person, room: room, alpha: low, binarize: threshold != nil)
                    .to(dtype: .float32)
                let differing = try (expected - fused).abs().gt(1).to(dtype: .float32).mean().item()
                XCTAssertLessThan(differing, 0.002, "\(w)×\(h), threshold \(String(describing: threshold)): \(differing) of samples differ")
            }
        }
    }

    /// Colour matching moves a grey person towards a reddish room's balance and keeps brightness.
    func testColorMatchMovesThePersonTowardsTheRoom() throws {
        let person = try Tensor.full([3, 8, 8], 120, dtype: .uint8)
        let room = try Tensor.stack([Tensor.full([8, 8], 180), Tensor.full([8, 8], 90), Tensor.full([8, 8], 90)], dim: 0)
            .to(dtype: .uint8)
        let output = try Compositor(colorMatch: 1).composite(person: person, room: room, alpha: Tensor.ones([8, 8]))
        let mean = try output.to(dtype: .float32).mean(dims: [1, 2]).toArray(Float.self)
        XCTAssertGreaterThan(mean[0], mean[1] * 1.5, "red gains over green: \(mean)")
        XCTAssertEqual(Double(mean.reduce(0, +) / 3), 120, accuracy: 4, "brightness kept: \(mean)")
    }

    func testStabilizerHoldsOneFramePopsButFollowsLastingChanges() throws {
        let person = try Tensor.ones([1, 4, 4]), nobody = try Tensor.zeros([1, 4, 4])
        let stabilizer = MaskStabilizer(maxRelativeChange: 0.5, holdFrames: 2)
        XCTAssertEqual(try stabilizer.stabilize(person).mean().item(), 1)
        XCTAssertEqual(try stabilizer.stabilize(nobody).mean().item(), 1, "a one-frame dropout is held")
        XCTAssertEqual(try stabilizer.stabilize(person).mean().item(), 1)
        XCTAssertEqual(try stabilizer.stabilize(nobody).mean().item(), 1)
        XCTAssertEqual(try stabilizer.stabilize(nobody).mean().item(), 1)
        XCTAssertEqual(try stabilizer.stabilize(nobody).mean().item(), 0, "a lasting change is accepted after 2 frames")
        XCTAssertEqual(stabilizer.framesHeld, 3)
    }
}
