import BackdropTestSupport
import Foundation
import Geometry
import Torch
import XCTest

final class GeometryTests: XCTestCase {
    // MARK: Cameras and rotations

    func testIntrinsicsFollowMVDiffusion() throws {
        let camera = PinholeCamera(fov: 90, size: 512)
        XCTAssertEqual(camera.focal, 256, accuracy: 1e-9)
        XCTAssertEqual(camera.intrinsicsValues, [256, 0, 255.5, 0, 256, 255.5, 0, 0, 1], accuracy: 1e-12)
        let wide = PinholeCamera(fov: 60, width: 640, height: 360)
        XCTAssertEqual(wide.focal, 320 / tan(Double.pi / 6), accuracy: 1e-9)
        XCTAssertEqual(wide.cy, 179.5)
        // Rays: K⁻¹ · (x, y, 1) of pixel centres.
        let rays = try camera.rays(dtype: .float64)
        XCTAssertEqual(rays.shape, [512, 512, 3])
        XCTAssertEqual(try rays[0, 0].toArray(Double.self), [-255.5 / 256, -255.5 / 256, 1], accuracy: 1e-12)
        XCTAssertTrue(try camera.rays(dtype: .float64).sharesStorage(with: rays), "ray grids are cached")
    }

    func testRotationConvention() throws {
        func apply(_ o: Orientation, _ v: [Double]) -> [Double] {
            let r = o.rotation * SIMD3(v[0], v[1], v[2])
            return [r.x, r.y, r.z]
        }
        func assertClose(_ a: [Double], _ b: [Double], _ message: String) {
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-12, message) }
        }
        // Positive yaw turns right (+x), positive pitch looks up (−y, y points down).
        assertClose(apply(Orientation(yaw: 90), [0, 0, 1]), [1, 0, 0], "yaw 90 looks right")
        assertClose(apply(Orientation(pitch: 90), [0, 0, 1]), [0, -1, 0], "pitch 90 looks up")
        // Positive roll dips the camera's x axis towards +y (clockwise seen from behind).
        assertClose(apply(Orientation(roll: 90), [1, 0, 0]), [0, 1, 0], "roll 90")
        // MVDiffusion's get_K_R: R = Rodrigues((R1·x)·φ) · R1 with R1 = Rodrigues(y·θ).
        func rodrigues(_ axis: [Double], _ angle: Double) -> [Double] {
            let (c, s) = (cos(angle), sin(angle))
            let (x, y, z) = (axis[0], axis[1], axis[2])
            return [c + x * x * (1 - c), x * y * (1 - c) - z * s, x * z * (1 - c) + y * s,
                    y * x * (1 - c) + z * s, c + y * y * (1 - c), y * z * (1 - c) - x * s,
                    z * x * (1 - c) - y * s, z * y * (1 - c) + x * s, c + z * z * (1 - c)]
        }
        for (theta, phi) in [(0.0, 0.0), (45.0, 0.0), (-90.0, 90.0), (270.0, -30.0), (123.0, 41.0)] {
            let r1 = rodrigues([0, 1, 0], theta * .pi / 180)
            let x = Matrix3(rowMajor: r1) * SIMD3(1, 0, 0)
            let r2 = rodrigues([x.x, x.y, x.z], phi * .pi / 180)
            assertClose((Matrix3(rowMajor: r2) * Matrix3(rowMajor: r1)).rowMajor, Orientation(yaw: theta, pitch: phi).rotation.rowMajor,
                        "get_K_R(\(theta), \(phi))")
        }
        // Back and forth, scalar and batched.
        var g = SystemRandomNumberGenerator()
        var yaws: [Double] = [], pitches: [Double] = [], rolls: [Double] = []
        for _ in 0..<50 {
            let o = Orientation(yaw: .random(in: -179...179, using: &g), pitch: .random(in: -89...89, using: &g),
                                roll: .random(in: -179...179, using: &g))
            let back = Orientation(rotation: o.rotation)
            XCTAssertEqual(back.yaw, o.yaw, accuracy: 1e-9)
            XCTAssertEqual(back.pitch, o.pitch, accuracy: 1e-9)
            XCTAssertEqual(back.roll, o.roll, accuracy: 1e-9)
            yaws.append(o.yaw * .pi / 180); pitches.append(o.pitch * .pi / 180); rolls.append(o.roll * .pi / 180)
        }
        let batched = try Rotations.fromYawPitchRoll(yaw: Tensor(yaws), pitch: Tensor(pitches), roll: Tensor(rolls))
        let scalar = try Orientation.matrices(zip(zip(yaws, pitches), rolls).map {
            Orientation(yaw: $0.0.0 * 180 / .pi, pitch: $0.0.1 * 180 / .pi, roll: $0.1 * 180 / .pi)
        }, dtype: .float64)
        XCTAssertLessThan(try TestSupport.maxAbsDifference(batched, scalar), 1e-12)
        let angles = try Rotations.yawPitchRoll(of: batched)
        XCTAssertLessThan(try TestSupport.maxAbsDifference(angles.yaw, Tensor(yaws)), 1e-9)
        XCTAssertLessThan(try TestSupport.maxAbsDifference(angles.pitch, Tensor(pitches)), 1e-9)
        XCTAssertLessThan(try TestSupport.maxAbsDifference(angles.roll, Tensor(rolls)), 1e-9)
        // Gimbal lock: roll reported as 0, the matrix still reproduced.
        let locked = Orientation(rotation: Orientation(yaw: 30, pitch: 90).rotation)
        XCTAssertEqual(locked.pitch, 90, accuracy: 1e-9)
        assertClose(locked.rotation.rowMajor, Orientation(yaw: 30, pitch: 90).rotation.rowMajor, "gimbal lock")
    }

    /// Matrix3: products and the tensor round trip agree with LibTorch; files with a wrong
    /// count or a non-finite entry are refused.
    func testMatrix3AgreesWithTensorsAndRefusesBadInput() throws {
        let a = Orientation(yaw: 20, pitch: -10, roll: 5).rotation
        let k = Matrix3(rowMajor: PinholeCamera(fov: 70, size: 64).intrinsicsValues)
        let product = try (a * k).tensor(dtype: .float64)
        XCTAssertLessThan(try TestSupport.maxAbsDifference(product, a.tensor(dtype: .float64).matmul(k.tensor(dtype: .float64))), 1e-12)
        XCTAssertEqual(try Matrix3.unstack(Matrix3.stack([a, k], dtype: .float64)), [a, k])
        XCTAssertEqual(a.angle(to: Orientation(yaw: 25, pitch: -10, roll: 5).rotation), 5, accuracy: 0.5)
        XCTAssertThrowsError(try JSONDecoder().decode(Matrix3.self, from: Data("[1, 2, 3]".utf8)))
        XCTAssertThrowsError(try Matrix3(Tensor([1, 0, 0, 0, .nan, 0, 0, 0, 1] as [Double], shape: [3, 3])))
        // A view layout is a value: equal cameras hash equal, and a yaw offset leaves the canonical form.
        let layout = try ViewLayout.horizon(count: 6, fov: 80, resolution: 32, yawOffset: 17)
        XCTAssertEqual(layout.count, 6)
        XCTAssertEqual(layout.yaws, [17, 77, 137, 197, 257, 317].map { Double($0) }, accuracy: 1e-9)
        XCTAssertEqual(layout.camera, PinholeCamera(fov: 80, size: 32))
        XCTAssertEqual(Set([layout, try ViewLayout.horizon(count: 6, fov: 80, resolution: 32, yawOffset: 17)]).count, 1)
        XCTAssertEqual(layout.canonical(), try ViewLayout.horizon(count: 6, fov: 80, resolution: 32).canonical())
        XCTAssertThrowsError(try ViewLayout.horizon(count: 6, fov: 180, resolution: 32))
    }

    func testNearestRotation() throws {
        let r = try Orientation(yaw: 20, pitch: -10, roll: 5).matrix(dtype: .float64)
        let noisy = try r + Tensor.randn([3, 3], dtype: .float64, generator: Generator(seed: 1)) * 0.01
        let cleaned = try Rotations.nearestRotation(noisy)
        XCTAssertLessThan(try TestSupport.maxAbsDifference(cleaned.matmul(cleaned.mT()), Tensor.eye(3, dtype: .float64)), 1e-12)
        XCTAssertEqual(try Linalg.det(cleaned).item(), 1, accuracy: 1e-12)
        XCTAssertLessThan(try TestSupport.maxAbsDifference(cleaned, r), 0.02)
    }

    // MARK: Equirectangular mapping

    func testViewCentreLandsAtItsYaw() throws {
        let (w, h) = (1024, 512)
        let camera = PinholeCamera(fov: 90, size: 512)
        for offset in [0.0, 17.0, 359.0] {
            for i in 0..<8 {
                let yaw = offset + 45 * Double(i)
                let r = try Orientation(yaw: yaw).matrix(dtype: .float64)
                let centreRay = try Tensor([0, 0, 1] as [Double], shape: [3]).matmul(r.mT())  // R · (0, 0, 1)
                let pixel = try Equirect.pixels(of: centreRay, width: w, height: h).toArray(Double.self)
                var expected = (yaw.truncatingRemainder(dividingBy: 360) / 360 + 0.5) * Double(w) - 0.5
                if expected >= Double(w) - 0.5 { expected -= Double(w) }
                var column = pixel[0]
                if column - expected > Double(w) / 2 { column -= Double(w) }
                XCTAssertEqual(column, expected, accuracy: 1e-9, "view \(i) at yaw \(yaw)")
                XCTAssertEqual(column, Equirect.column(ofYaw: yaw, width: w), accuracy: 1e-9)
                XCTAssertEqual(pixel[1], Double(h) / 2 - 0.5, accuracy: 1e-9)
            }
        }
        // Rendered: a panorama whose only bright column is at yaw 135 gives a view at yaw 135 whose
        // brightest column is the centre one.
        let panorama = try Tensor.zeros([1, h, w], dtype: .float64)
        let column = Int(Equirect.column(ofYaw: 135, width: w).rounded())
        try panorama.narrow(dim: 2, start: column, length: 1).fill_(1)
        let view = try EquirectSampler(panorama).viewport(camera: PinholeCamera(fov: 90, size: 65),
                                                          rotation: Orientation(yaw: 135).matrix(dtype: .float64))
        let profile: [Double] = try view[0, 0, 32].toArray()
        XCTAssertEqual(profile.indices.max { profile[$0] < profile[$1] }, 32)
        _ = camera
    }

    func testUpIsTheTopRow() throws {
        let (w, h) = (360, 180)
        // Straight up (−y) is row −0.5 (the top edge); looking 30° up lands above the horizon.
        let up = try Equirect.pixels(of: Tensor([0, -1, 1e-12] as [Double]), width: w, height: h).toArray(Double.self)
        XCTAssertEqual(up[1], -0.5, accuracy: 1e-6)
        let r = try Orientation(pitch: 30).matrix(dtype: .float64)
        let centre = try Equirect.pixels(of: Tensor([0, 0, 1] as [Double]).matmul(r.mT()), width: w, height: h)
            .toArray(Double.self)
        XCTAssertEqual(centre[1], Equirect.row(ofPitch: 30, height: h), accuracy: 1e-9)
        XCTAssertEqual(centre[1], 59.5, accuracy: 1e-9)
        // Pixels → directions → pixels.
        let pixels = try Tensor.rand([100, 2], dtype: .float64, generator: Generator(seed: 3)) * Tensor([Double(w) - 1, Double(h) - 1])
        let back = try Equirect.pixels(of: Equirect.directions(atPixels: pixels, width: w, height: h), width: w, height: h)
        XCTAssertLessThan(try TestSupport.maxAbsDifference(back, pixels), 1e-9)
    }

    /// A panorama holding a smooth function of the direction: every render can be checked against
    /// the function evaluated on its own rays, including across the seam and over the poles.
    private func analyticPanorama(width: Int, height: Int) throws -> Tensor {
        let d = try Equirect.directionGrid(width: width, height: height, dtype: .float64)
        return try (d * 0.5 + 0.5).permute(2, 0, 1).contiguous()  // channel k = 0.5 + 0.5 d_k
    }

    func testSeamAndPolesAreContinuous() throws {
        let sampler = try EquirectSampler(analyticPanorama(width: 1024, height: 512))
        let camera = PinholeCamera(fov: 90, size: 96)
        let orientations = [Orientation(yaw: 180), Orientation(yaw: -180), Orientation(yaw: 179.9), Orientation(yaw: 180, pitch: 89),
                            Orientation(pitch: 90), Orientation(pitch: -90), Orientation(yaw: 10, pitch: -75, roll: 30)]
        let rotations = try Orientation.matrices(orientations, dtype: .float64)
        let views = try sampler.perspective(camera: camera, rotations: rotations)  // [1, V, 3, h, w]
        let rays = try camera.rays(dtype: .float64).reshape([1, -1, 3]).matmul(rotations.mT())
        let unit = try rays / Linalg.vectorNorm(rays, dims: [-1], keepDim: true)
        let expected = try (unit * 0.5 + 0.5).reshape([orientations.count, 96, 96, 3]).permute(0, 3, 1, 2)
        let error = try (views[0] - expected).abs().amax(dims: [1, 2, 3]).toArray(Double.self)
        for (o, e) in zip(orientations, error) {
            // Bilinear interpolation of a smooth function: tiny errors, never a black seam column.
            XCTAssertLessThan(e, 0.01, "\(o)")
        }
        // The seam on the real panorama: the view looking backwards has no dark column.
        let real = try EquirectSampler(MediaTestSupport.panorama())
        let back = try real.viewport(camera: PinholeCamera(fov: 90, size: 256), rotation: Orientation(yaw: 180).matrix())
        let columnMeans = try back.mean(dims: [0, 1, 2]).toArray(Float.self)
        for x in 1..<(columnMeans.count - 1) {
            let neighbours = (columnMeans[x - 1] + columnMeans[x + 1]) / 2
            XCTAssertGreaterThan(columnMeans[x], neighbours * 0.85, "column \(x) is darker than its neighbours")
        }
    }

    // MARK: Homographies

    func testHomographyMapsTheOverlapPixelExactly() throws {
        let camera = PinholeCamera(fov: 90, size: 512)
        let k = try camera.intrinsics(dtype: .float64).unsqueeze(0).expand([8, 3, 3])
        let r = try Orientation.matrices((0..<8).map { Orientation(yaw: 45 * Double($0)) }, dtype: .float64)
        let h = try Homography.pairwise(k: k, r: r)
        XCTAssertEqual(h.shape, [8, 8, 3, 3])
        let (f, c) = (camera.focal, camera.cx)
        for i in 0..<8 {
            let j = (i + 1) % 8
            // The right half of view i is the left half of view j: x' = c + f·tan(atan((x − c)/f) − 45°).
            var points: [Double] = []
            for x in stride(from: 256, through: 511, by: 17) { for y in stride(from: 0, through: 511, by: 31) { points += [Double(x), Double(y)] } }
            let p = try Tensor(points, shape: [points.count / 2, 2])
            let (mapped, inFront) = try Homography.apply(h[.at(i), .at(j)], to: p)
            XCTAssertTrue(try inFront.all().item() == 1)
            let m: [Double] = try mapped.toArray()
            for n in 0..<(points.count / 2) {
                let (x, y) = (points[2 * n], points[2 * n + 1])
                // The ray (a, b, 1) of view i is Ry(−45°)·(a, b, 1) = ((a − 1)/√2, b, (a + 1)/√2) in view j.
                let a = (x - c) / f
                let expectedX = c + f * tan(atan(a) - .pi / 4)
                let expectedY = c + (y - c) * sqrt(2) / (a + 1)
                XCTAssertEqual(m[2 * n], expectedX, accuracy: 1e-9, "view \(i)→\(j) x at (\(x), \(y))")
                XCTAssertEqual(m[2 * n + 1], expectedY, accuracy: 1e-9, "view \(i)→\(j) y at (\(x), \(y))")
            }
            // Known points: view i's right edge → view j's centre; view i's centre → view j's left edge.
            let (edge, _) = try Homography.apply(h[.at(i), .at(j)], to: Tensor([511.5, 255.5, 255.5, 255.5] as [Double], shape: [2, 2]))
            XCTAssertEqual(try edge.toArray(Double.self), [255.5, 255.5, -0.5, 255.5], accuracy: 1e-9)
        }
    }

    func testWarpedNeighbourMatchesInTheOverlap() throws {
        // Render two neighbouring views of the real panorama, warp view 1 into view 0 with H_10 and
        // compare where both see the scene (the consistency measure of docs/metrics.md#consistency-psnr, on ground truth).
        let sampler = try EquirectSampler(MediaTestSupport.panorama("courtyard"))
        let camera = PinholeCamera(fov: 90, size: 256)
        let r = try Orientation.matrices([Orientation(yaw: 0), Orientation(yaw: 45)])
        let views = try sampler.perspective(camera: camera, rotations: r)[0]  // [2, 3, h, w]
        let k = try camera.intrinsics()
        let h10 = try Homography.between(ki: k, ri: r[1], kj: k, rj: r[0])
        let (warped, valid) = try Homography.warp(views[1].unsqueeze(0), homography: h10, size: IntPair(256, 256))
        // Keep a one-pixel margin off the overlap's edge, where bilinear reads outside view 1.
        let inner = try F.maxPool2d(valid.logicalNot().to(dtype: .float32), kernel: 3, stride: 1, padding: 1) .== 0
        let psnr = try MediaTestSupport.psnr(warped[0], views[0], mask: inner[0])
        XCTAssertGreaterThan(try valid.to(dtype: .float32).mean().item(), 0.45)
        XCTAssertGreaterThan(psnr, 33, "overlap PSNR \(psnr)")
    }

    // MARK: Round trips on a real panorama

    func testRoundTripEquirectViewsEquirectOnARealPanorama() throws {
        let panorama = try MediaTestSupport.panorama("interior")  // [3, 512, 1024]
        let (h, w) = (panorama.shape[1], panorama.shape[2])
        let sampler = try EquirectSampler(panorama)
        let camera = PinholeCamera(fov: 90, size: 512)
        let rotations = try Orientation.matrices((0..<8).map { Orientation(yaw: 45 * Double($0)) })
        let views = try sampler.perspective(camera: camera, rotations: rotations)  // [1, 8, 3, 512, 512]
        let (stitched, weight) = try Equirect.stitch(views: views, camera: camera, rotations: rotations,
                                                      canvas: StitchCanvas(width: w, height: h))
        // The covered band: ±40° of latitude (eight pitch-0 90° views cover at least ±42.7°).
        let top = Int(Equirect.row(ofPitch: 40, height: h).rounded(.up)), bottom = Int(Equirect.row(ofPitch: -40, height: h))
        let band = { (t: Tensor) throws -> Tensor in try t.narrow(dim: -2, start: top, length: bottom - top + 1) }
        XCTAssertGreaterThan(try band(weight).amin().item(), 0, "every pixel of the band is covered")
        let psnr = try MediaTestSupport.psnr(band(stitched[0]), band(panorama))
        print("round trip equirect → 8 views → equirect, interior.png ±40°: PSNR \(String(format: "%.2f", psnr)) dB")
        XCTAssertGreaterThanOrEqual(psnr, 35)
        // No black column at the seam: the first and last columns match the original.
        for column in [0, w - 1] {
            let a = try band(stitched[0]).narrow(dim: 2, start: column, length: 1)
            let b = try band(panorama).narrow(dim: 2, start: column, length: 1)
            XCTAssertGreaterThan(try MediaTestSupport.psnr(a, b), 30, "column \(column)")
        }
    }

    func testCubeMapRoundTripAndFaceOrientation() throws {
        let panorama = try MediaTestSupport.panorama("courtyard")
        let faces = try CubeMap.faces(from: EquirectSampler(panorama), size: 256)  // [1, 6, 3, S, S]
        XCTAssertEqual(faces.shape, [1, 6, 3, 256, 256])
        let cube = try CubeMapSampler(faces: faces)
        let back = try cube.equirect(width: 1024, height: 512)
        let psnr = try MediaTestSupport.psnr(back[0], panorama)
        print("round trip equirect → cube (256) → equirect, courtyard.png: PSNR \(String(format: "%.2f", psnr)) dB")
        XCTAssertGreaterThan(psnr, 30)
        // A 90° view along a face's orientation, at the face's size, is that face exactly.
        let orientations = CubeFace.allCases.map(\.orientation)
        let views = try cube.perspective(camera: CubeMap.faceCamera(size: 256), rotations: Orientation.matrices(orientations))
        XCTAssertLessThan(try TestSupport.maxAbsDifference(views, faces), 1e-4)
        // MVDiffusion's face layout: the front face looks along yaw 0, the right face along +90.
        let frontCentre = try Equirect.pixels(of: Tensor([0, 0, 1] as [Float]).matmul(orientations[2].matrix().mT()),
                                              width: 1024, height: 512).toArray(Float.self)
        XCTAssertEqual(frontCentre[0], 511.5, accuracy: 1e-3)
    }

    func testCubeMapSamplingIsContinuousAcrossFaceEdges() throws {
        // Faces of the analytic function (0.5 + 0.5·d): sampling anywhere, edges and corners included,
        // must give the function of the sampling direction.
        let s = 64
        let camera = CubeMap.faceCamera(size: s)
        let rays = try camera.rays(dtype: .float64).reshape([1, -1, 3]).matmul(CubeMap.faceRotations(dtype: .float64).mT())
        let unit = try rays / Linalg.vectorNorm(rays, dims: [-1], keepDim: true)
        let faces = try (unit * 0.5 + 0.5).reshape([6, s, s, 3]).permute(0, 3, 1, 2)
        let sampler = try CubeMapSampler(faces: faces)
        let directions = try Tensor.randn([1, 4000, 3], dtype: .float64, generator: Generator(seed: 9))
        let edges = try Tensor([1, 1, 0.3, -1, 1, 1, 1, -0.2, 1, 1, 1, 1, -1, -1, -1, 0, 1, 1] as [Double], shape: [1, 6, 3])
        let all = try Tensor.cat([directions, edges], dim: 1)
        let sampled = try sampler.sample(directions: all)  // [1, 3, 1, N]
        let expected = try (all / Linalg.vectorNorm(all, dims: [-1], keepDim: true) * 0.5 + 0.5).permute(0, 2, 1).unsqueeze(2)
        XCTAssertLessThan(try TestSupport.maxAbsDifference(sampled, expected), 0.02)
    }

    // MARK: Stitching

    func testStitchUsesMVDiffusionsTriangularWeights() throws {
        // Constant views (value = view index + 1): on the equator, a view's centre meridian takes its
        // value alone (its neighbours have weight 0 at their edges), and halfway between two views
        // both weigh the same.
        let camera = PinholeCamera(fov: 90, size: 64)
        let rotations = try Orientation.matrices((0..<8).map { Orientation(yaw: 45 * Double($0)) })
        let views = try Tensor.arange(1, 9, dtype: .float32).reshape([8, 1, 1, 1]).expand([8, 1, 64, 64]).contiguous()
        let canvas = StitchCanvas(width: 720, height: 360)
        let (pano, _) = try Equirect.stitch(views: views, camera: camera, rotations: rotations, canvas: canvas)
        let equator = try pano[0, 0].narrow(dim: 0, start: 179, length: 2).mean(dim: 0).toArray(Float.self)
        func value(atYaw yaw: Double) -> Float {
            let x = Equirect.column(ofYaw: yaw, width: 720)
            let i = Int(x.rounded(.down)), t = Float(x - Double(i))
            return equator[i] * (1 - t) + equator[(i + 1) % 720] * t
        }
        XCTAssertEqual(value(atYaw: 90), 3, accuracy: 0.02)  // view 2
        XCTAssertEqual(value(atYaw: 22.5), 1.5, accuracy: 0.01)  // views 0 and 1, equal weights
        XCTAssertEqual(value(atYaw: 180 + 22.5), 5.5, accuracy: 0.01)
        // MVDiffusion's canvas and crop; uncovered pixels get the fill value.
        let (mv, weight) = try Equirect.stitch(views: views, camera: camera, rotations: rotations, canvas: .mvdiffusion, fill: -1)
        XCTAssertEqual(mv.shape, [1, 1, 968, 4096])
        XCTAssertGreaterThan(try weight.amin().item(), 0, "the MVDiffusion crop is fully covered")
        let (full, fullWeight) = try Equirect.stitch(views: views, camera: camera, rotations: rotations,
                                                    canvas: .full(width: 256), fill: -1)
        XCTAssertEqual(try full[0, 0, 0, 0].item(), -1, "the pole is not covered by pitch-0 views")
        XCTAssertEqual(try fullWeight[0, 0, 0, 0].item(), 0)
    }

    func testFullSphereStitchWithPitchedViews() throws {
        // Eight horizontal views plus up and down: every direction is covered; with separable
        // weights the whole sphere comes back.
        let panorama = try MediaTestSupport.panorama("city")
        let sampler = try EquirectSampler(panorama)
        let camera = PinholeCamera(fov: 100, size: 320)
        var orientations = (0..<8).map { Orientation(yaw: 45 * Double($0)) }
        orientations += (0..<4).map { Orientation(yaw: 90 * Double($0), pitch: 60) }
        orientations += (0..<4).map { Orientation(yaw: 90 * Double($0), pitch: -60) }
        orientations += [Orientation(pitch: 90), Orientation(pitch: -90)]
        let rotations = try Orientation.matrices(orientations)
        let views = try sampler.perspective(camera: camera, rotations: rotations)
        let (stitched, weight) = try Equirect.stitch(views: views, camera: camera, rotations: rotations,
                                                      canvas: .full(width: 1024), weighting: .separable)
        XCTAssertGreaterThan(try weight.amin().item(), 0, "the full sphere is covered")
        let psnr = try MediaTestSupport.psnr(stitched[0], panorama)
        print("full-sphere stitch (18 views, separable weights), city.png: PSNR \(String(format: "%.2f", psnr)) dB")
        XCTAssertGreaterThan(psnr, 30)
    }

    func testBatchedPanoramasAndViews() throws {
        let a = try analyticPanorama(width: 256, height: 128).to(dtype: .float32)
        let b = try a.flip(2)
        let sampler = try EquirectSampler(Tensor.stack([a, b]))
        let camera = PinholeCamera(fov: 90, size: 32)
        let shared = try Orientation.matrices([Orientation(yaw: 10), Orientation(yaw: 100), Orientation(pitch: 40)])
        let views = try sampler.perspective(camera: camera, rotations: shared)
        XCTAssertEqual(views.shape, [2, 3, 3, 32, 32])
        // Per-batch rotations give the same as rendering each panorama on its own.
        let perBatch = try Tensor.stack([shared, shared.flip(0)])
        let separate = try sampler.perspective(camera: camera, rotations: perBatch)
        let alone = try EquirectSampler(b).perspective(camera: camera, rotations: shared.flip(0))
        XCTAssertLessThan(try TestSupport.maxAbsDifference(separate[1], alone[0]), 1e-6)
        // Stitching a batch.
        let (pano, _) = try Equirect.stitch(views: views, camera: camera, rotations: shared, canvas: .full(width: 64))
        XCTAssertEqual(pano.shape, [2, 3, 32, 64])
    }

    func testRunsOnCUDAWhenAvailable() throws {
        guard Runtime.cudaDeviceCount > 0 else { throw XCTSkip("no CUDA device") }
        let panorama = try analyticPanorama(width: 512, height: 256).to(dtype: .float32)
        let camera = PinholeCamera(fov: 90, size: 64)
        let rotations = try Orientation.matrices((0..<8).map { Orientation(yaw: 45 * Double($0)) })
        let cpu = try EquirectSampler(panorama).perspective(camera: camera, rotations: rotations)
        let gpu = try EquirectSampler(panorama.to(device: .cuda(0))).perspective(camera: camera, rotations: rotations.to(device: .cuda(0)))
        XCTAssertEqual(gpu.device, .cuda(0))
        XCTAssertLessThan(try TestSupport.maxAbsDifference(cpu, gpu), 1e-4)
        let cube = try CubeMap.faces(from: EquirectSampler(panorama.to(device: .cuda(0))), size: 32)
        let views = try CubeMapSampler(faces: cube).perspective(camera: camera, rotations: rotations.to(device: .cuda(0)))
        XCTAssertEqual(views.device, .cuda(0))
        let (pano, _) = try Equirect.stitch(views: gpu, camera: camera, rotations: rotations.to(device: .cuda(0)),
                                            canvas: .full(width: 128))
        XCTAssertEqual(pano.device, .cuda(0))
    }
}

private func XCTAssertEqual(_ a: [Double], _ b: [Double], accuracy: Double, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: accuracy, file: file, line: line) }
}
