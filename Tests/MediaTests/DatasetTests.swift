import BackdropTestSupport
@testable import Datasets
import Foundation
import Geometry
import Media
import Torch
import XCTest

final class DatasetTests: XCTestCase {
    /// Small synthetic rooms shared by the tests of this class (generated once: about a second).
    private static let shared: URL = {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("backdrop-synthrooms-\(UUID().uuidString)")
        do {
            try SyntheticRooms.generate(into: root, options: .init(count: 4, seed: 3, faceSize: 64, stitched: true,
                                                                   captionResolution: 24))
        } catch {
            XCTFail("cannot generate synthetic rooms: \(error)")
        }
        return root
    }()

    private func copyOfRooms() throws -> URL {
        let copy = try TestSupport.temporaryDirectory().appendingPathComponent("rooms")
        try FileManager.default.copyItem(at: Self.shared, to: copy)
        return copy
    }

    // MARK: Layout

    func testSyntheticRoomsUseTheMatterportLayoutExactly() throws {
        let root = Self.shared
        let train = try NpyArray(contentsOf: root.appendingPathComponent("train.npy"))
        let test = try NpyArray(contentsOf: root.appendingPathComponent("test.npy"))
        XCTAssertEqual(train.shape, [3, 6])
        XCTAssertEqual(test.shape, [1, 6])
        let pattern = try NSRegularExpression(pattern: "^[0-9A-Za-z]{11}/matterport_skybox_images/[0-9a-f]{32}_skybox[0-5]_sami\\.jpg$")
        let paths = try train.strings() + test.strings()
        for (i, path) in paths.enumerated() {
            XCTAssertNotNil(pattern.firstMatch(in: path, range: NSRange(path.startIndex..., in: path)), path)
            XCTAssertTrue(path.hasSuffix("_skybox\(i % 6)_sami.jpg"), "row order is face order: \(path)")
            let face = try Image(contentsOf: root.appendingPathComponent(path))
            XCTAssertEqual([face.width, face.height, face.channels], [64, 64, 3])
            XCTAssertEqual(try Data(contentsOf: root.appendingPathComponent(path)).prefix(2), Data([0xFF, 0xD8]), "JPEG")
        }
        for record in try Matterport3D(root: root, split: "train").records {
            for degree in stride(from: 0, to: 360, by: 45) {
                let caption = root.appendingPathComponent("\(record.scan)/blip3/\(record.pano)_\(degree).txt")
                XCTAssertTrue(FileManager.default.fileExists(atPath: caption.path), caption.path)
            }
            XCTAssertTrue(FileManager.default.fileExists(
                atPath: root.appendingPathComponent("\(record.scan)/matterport_stitched_images/\(record.pano).png").path))
            XCTAssertTrue(FileManager.default.fileExists(
                atPath: root.appendingPathComponent("\(record.scan)/blip3_stitched/\(record.pano).txt").path))
        }
        // numpy reads the splits as the same unicode array.
        _ = try TestSupport.referencePython()
        let expectedURL = try TestSupport.temporaryDirectory().appendingPathComponent("train.json")
        try JSONSerialization.data(withJSONObject: ["shape": [3, 6], "dtype": train.descr, "values": try train.strings()])
            .write(to: expectedURL)
        let (status, output) = try TestSupport.runPythonTool(
            "make_media_fixtures.py", ["--check-npy", root.appendingPathComponent("train.npy").path, expectedURL.path])
        XCTAssertEqual(status, 0, output)
    }

    func testGenerationIsDeterministic() throws {
        let a = try SyntheticRooms.render(seed: 3, index: 1, faceSize: 64, captionResolution: 24)
        let b = try SyntheticRooms.render(seed: 3, index: 1, faceSize: 64, captionResolution: 24)
        let c = try SyntheticRooms.render(seed: 4, index: 1, faceSize: 64, captionResolution: 24)
        XCTAssertEqual(try a.faces.rawBytes(), try b.faces.rawBytes())
        XCTAssertEqual(a.captions, b.captions)
        XCTAssertEqual([a.scan, a.pano], [b.scan, b.pano])
        XCTAssertNotEqual(try a.faces.rawBytes(), try c.faces.rawBytes())
        // Files too: the shared set's second room equals a fresh render of (seed 3, index 1).
        let dataset = try Matterport3D(root: Self.shared, split: "train")
        XCTAssertEqual(dataset.records[1].pano, a.pano)
        XCTAssertEqual(try dataset.caption(at: 1, degree: 90), a.captions[2])
        let face = try Image(contentsOf: Self.shared.appendingPathComponent(dataset.records[1].faces[2])).tensor(.unit)
        XCTAssertGreaterThan(try MediaTestSupport.psnr(face, a.faces[2].to(dtype: .float32) / 255), 30, "JPEG of the same face")
    }

    // MARK: Reader

    func testReaderYieldsMVDiffusionsViewsCamerasAndPrompts() throws {
        let dataset = try Matterport3D(root: Self.shared, split: "train", views: ViewOptions(resolution: 48))
        XCTAssertEqual(dataset.count, 3)
        let sample = try dataset.sample(at: 0, yawOffset: 0)
        XCTAssertEqual(sample.images.shape, [8, 3, 48, 48])
        XCTAssertEqual(sample.images.dtype, .float32)
        XCTAssertGreaterThanOrEqual(try sample.images.amin().item(), -1)
        XCTAssertLessThanOrEqual(try sample.images.amax().item(), 1)
        XCTAssertEqual(sample.yaws, [0, 45, 90, 135, 180, 225, 270, 315])
        XCTAssertEqual(sample.layout.intrinsics[3].rowMajor, [24, 0, 23.5, 0, 24, 23.5, 0, 0, 1])
        XCTAssertLessThan(sample.layout.rotations[2].angle(to: Orientation(yaw: 90).rotation), 1e-4)
        XCTAssertEqual(sample.layout.resolution, 48)
        for (i, prompt) in sample.prompts.enumerated() {
            XCTAssertEqual(prompt, "This is one view of a scene. " + (try dataset.caption(at: 0, degree: 45 * i)))
        }
        // A yaw offset moves every view and picks the nearest 45° caption (half-to-even like NumPy).
        let shifted = try dataset.sample(at: 0, yawOffset: 30)
        XCTAssertEqual(shifted.yaws[0], 30)
        XCTAssertEqual(shifted.yaws[7], 345)
        XCTAssertEqual(shifted.prompts[0], sample.prompts[1], "30° uses the 45° caption")
        XCTAssertEqual(shifted.prompts[7], sample.prompts[0], "345° uses the 0° caption")
        XCTAssertEqual([captionDegree(forYaw: 22), captionDegree(forYaw: 23), captionDegree(forYaw: 22.5),
                        captionDegree(forYaw: 67.5), captionDegree(forYaw: 359)], [0, 45, 0, 90, 0])
        // A 45° offset is the same views shifted by one.
        let next = try dataset.sample(at: 0, yawOffset: 45)
        XCTAssertLessThan(try TestSupport.maxAbsDifference(next.images[0], sample.images[1]), 1e-4)
        // Configurable prefix and resolution.
        let plain = try Matterport3D(root: Self.shared, split: "test", views: ViewOptions(resolution: 32, promptPrefix: ""))
        let test = try plain.sample(at: 0, yawOffset: 0)
        XCTAssertEqual(test.images.shape, [8, 3, 32, 32])
        XCTAssertEqual(test.prompts[0], try plain.caption(at: 0, degree: 0))
    }

    func testStitchedLayoutGivesTheSameViews() throws {
        let skybox = try Matterport3D(root: Self.shared, split: "test", views: ViewOptions(resolution: 48))
        let stitched = try Matterport3D(root: Self.shared, split: "test", layout: .stitched, views: ViewOptions(resolution: 48))
        let a = try skybox.sample(at: 0, yawOffset: 10), b = try stitched.sample(at: 0, yawOffset: 10)
        XCTAssertEqual(a.prompts, b.prompts)
        // Both are resamplings of the same room (the stitched image has half the faces' angular
        // resolution), so they agree up to blur; a wrong orientation would agree far less than with
        // the neighbouring view.
        let psnr = try MediaTestSupport.psnr((a.images + 1) / 2, (b.images + 1) / 2)
        let shifted = try MediaTestSupport.psnr((a.images + 1) / 2, (b.images.roll(1, dim: 0) + 1) / 2)
        XCTAssertGreaterThan(psnr, 20, "skybox and stitched renders of the same room: \(psnr) dB")
        XCTAssertGreaterThan(psnr, shifted + 5, "aligned \(psnr) dB, one view off \(shifted) dB")
    }

    func testSkyboxFacesOfARealPanoramaFollowMVDiffusionsOrientation() throws {
        // Cut a real panorama into skybox faces with CubeMap (MVDiffusion's face orientations), write them
        // in the mp3d layout, and read views back: they must match views taken from the panorama directly.
        let panorama = try MediaTestSupport.panorama("interior")
        let sampler = try EquirectSampler(panorama)
        let faces = try CubeMap.faces(from: sampler, size: 256)[0]
        let root = try TestSupport.temporaryDirectory().appendingPathComponent("mp3d")
        defer { try? FileManager.default.removeItem(at: root.deletingLastPathComponent()) }
        var paths: [String] = []
        for face in 0..<6 {
            let path = "SCAN0000001/matterport_skybox_images/0123456789abcdef0123456789abcdef_skybox\(face)_sami.jpg"
            try Image(tensor: faces.select(dim: 0, index: face)).write(to: root.appendingPathComponent(path), format: .jpeg(quality: 95))
            paths.append(path)
        }
        for degree in stride(from: 0, to: 360, by: 45) {
            try SyntheticRooms.writeText("view \(degree)\n", to: root.appendingPathComponent(
                "SCAN0000001/blip3/0123456789abcdef0123456789abcdef_\(degree).txt"))
        }
        try NpyWriter.write(strings: paths, shape: [1, 6], to: root.appendingPathComponent("test.npy"))
        let dataset = try Matterport3D(root: root, split: "test", views: ViewOptions(resolution: 128))
        let sample = try dataset.sample(at: 0, yawOffset: 0)
        let direct = try sampler.perspective(camera: PinholeCamera(fov: 90, size: 128), rotations: sample.layout.rotationsTensor())[0]
        let psnr = try MediaTestSupport.psnr((sample.images + 1) / 2, direct)
        print("real panorama → skybox JPEGs → reader views vs direct views: PSNR \(String(format: "%.2f", psnr)) dB")
        XCTAssertGreaterThan(psnr, 30)
        XCTAssertEqual(sample.prompts[2], "This is one view of a scene. view 90")
    }

    // MARK: Captions

    func testCaptionsNameWhatTheViewShows() throws {
        // For rooms with exactly one window: the view facing the window mentions it, on the right side;
        // the view facing away from it does not.
        var checked = 0
        for index in 0..<40 where checked < 6 {
            let scene = RoomGenerator.make(seed: 11, index: index)
            let windows = scene.decals.filter { $0.kind == .window }
            guard windows.count == 1, let window = windows.first else { continue }
            // Direction of the window's centre from the camera.
            let u = (window.u.lowerBound + window.u.upperBound) / 2, height = (window.v.lowerBound + window.v.upperBound) / 2
            let y = scene.floorY - height
            let centre: [Double]
            switch window.surface {
            case 2: centre = [u, y, scene.zRange.upperBound]
            case 4: centre = [u, y, scene.zRange.lowerBound]
            case 3: centre = [scene.xRange.upperBound, y, u]
            default: centre = [scene.xRange.lowerBound, y, u]
            }
            let yaw = atan2(centre[0], centre[2]) * 180 / .pi
            let panorama = try SyntheticRooms.render(seed: 11, index: index, faceSize: 16, captionResolution: 48)
            let facing = captionDegree(forYaw: (yaw + 360).truncatingRemainder(dividingBy: 360))
            let away = (facing + 180) % 360
            // Occluded by furniture? Then the caption may rightly omit it; the test wants a clear view.
            let renderer = RoomRenderer(scene: scene)
            let ids: [Int64] = try renderer.render(Tensor(centre.map(Float.init), shape: [1, 3]), shade: false).object.toArray()
            guard ids == [Int64(window.object)] else { continue }
            XCTAssertTrue(panorama.captions[facing / 45].contains("window"), "seed 11 room \(index): \(panorama.captions[facing / 45])")
            XCTAssertFalse(panorama.captions[away / 45].contains("window"), "seed 11 room \(index): \(panorama.captions[away / 45])")
            // Clearly off-centre: never placed on the wrong side.
            let offset = yaw - Double(facing) - (yaw - Double(facing) > 180 ? 360 : 0)
            if offset > 15 { XCTAssertFalse(panorama.captions[facing / 45].contains("window on the left")) }
            if offset < -15 { XCTAssertFalse(panorama.captions[facing / 45].contains("window on the right")) }
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 3)
        let caption = try Matterport3D(root: Self.shared, split: "train").caption(at: 0, degree: 0)
        XCTAssertTrue(caption.hasPrefix("a ") || caption.hasPrefix("an "), caption)
    }

    // MARK: Loader

    /// A source that only counts; loads nothing.
    private final class CountingSource: PanoramaSource {
        let count: Int
        let views = ViewOptions(resolution: 2)
        var location: String { "<memory>" }
        var failing: Set<Int> = []
        init(count: Int) { self.count = count }
        func identifier(at index: Int) -> String { "scan/\(index)" }
        func sample(at index: Int, yawOffset: Double) throws -> MultiViewSample {
            if failing.contains(index) { throw DatasetError(panorama: identifier(at: index), "broken on purpose") }
            return MultiViewSample(panoramaID: identifier(at: index), index: index, yawOffset: yawOffset,
                                   yaws: views.yaws(offset: yawOffset), images: try Tensor.full([8, 3, 2, 2], Double(index)),
                                   layout: try views.layout(yawOffset: yawOffset), prompts: [])
        }
    }

    func testShufflingAndShardingAreDeterministicAndDisjoint() throws {
        let source = CountingSource(count: 23)
        var seen: [Int] = []
        for rank in 0..<4 {
            let loader = try PanoramaLoader(source: source, options: LoaderOptions(seed: 5, rank: rank, worldSize: 4))
            let indices = loader.indices(epoch: 2)
            XCTAssertEqual(indices.count, 5, "every rank gets ⌊23 / 4⌋")
            XCTAssertEqual(indices, try PanoramaLoader(source: source, options: LoaderOptions(seed: 5, rank: rank, worldSize: 4))
                .indices(epoch: 2), "same seed, same order")
            seen += indices
        }
        XCTAssertEqual(Set(seen).count, 20, "ranks see disjoint panoramas")
        let loader = try PanoramaLoader(source: source, options: LoaderOptions(seed: 5))
        XCTAssertNotEqual(loader.indices(epoch: 0), loader.indices(epoch: 1), "reshuffled every epoch")
        XCTAssertEqual(loader.indices(epoch: 0).sorted(), Array(0..<23))
        XCTAssertNotEqual(loader.indices(epoch: 0), try PanoramaLoader(source: source, options: LoaderOptions(seed: 6)).indices(epoch: 0))
        // Evaluation: in order, every panorama, uneven shards allowed.
        let all = try (0..<4).flatMap { try PanoramaLoader(source: source, options: .evaluation(rank: $0, worldSize: 4)).indices(epoch: 0) }
        XCTAssertEqual(all.sorted(), Array(0..<23))
        XCTAssertThrowsError(try PanoramaLoader(source: source, options: LoaderOptions(rank: 4, worldSize: 4)))
        // Yaw offsets: integer degrees in 0…359 (MVDiffusion's randint), fixed by (seed, epoch, index).
        let offsets = (0..<200).map { loader.yawOffset(index: $0, epoch: 0) }
        XCTAssertTrue(offsets.allSatisfy { $0 >= 0 && $0 < 360 && $0 == $0.rounded() })
        XCTAssertGreaterThan(Set(offsets).count, 100)
        XCTAssertEqual(offsets, (0..<200).map { loader.yawOffset(index: $0, epoch: 0) })
        XCTAssertNotEqual(offsets, (0..<200).map { loader.yawOffset(index: $0, epoch: 1) })
        let set = YawPolicy.randomSet(count: 3)
        let choices = set.offsets(seed: 5, index: 7)
        XCTAssertEqual(choices.count, 3)
        XCTAssertTrue((0..<20).allSatisfy { choices.contains(set.offset(seed: 5, epoch: $0, index: 7)) })
        XCTAssertEqual(YawPolicy.fixed(0).offset(seed: 5, epoch: 3, index: 1), 0)
    }

    func testPrefetchingDeliversTheSameSamplesInOrder() throws {
        let source = CountingSource(count: 9)
        var orders: [[String]] = []
        for prefetch in [0, 1, 3] {
            var ids: [String] = []
            let loader = try PanoramaLoader(source: source, options: LoaderOptions(seed: 1, prefetch: prefetch))
            try loader.forEach(epoch: 4) { sample in
                ids.append(sample.panoramaID)
                XCTAssertEqual(sample.yawOffset, loader.yawOffset(index: sample.index, epoch: 4))
            }
            orders.append(ids)
        }
        XCTAssertEqual(orders[0], orders[1])
        XCTAssertEqual(orders[0], orders[2])
        XCTAssertEqual(orders[0].count, 9)
    }

    func testBadPanoramasAreNamedAndCanBeSkipped() throws {
        let root = try copyOfRooms()
        defer { try? FileManager.default.removeItem(at: root.deletingLastPathComponent()) }
        let dataset = try Matterport3D(root: root, split: "train", views: ViewOptions(resolution: 16))
        let records = dataset.records
        // 0: a missing face; 1: a truncated JPEG; 2: a missing caption.
        try FileManager.default.removeItem(at: root.appendingPathComponent(records[0].faces[2]))
        let jpeg = root.appendingPathComponent(records[1].faces[4])
        try Data(contentsOf: jpeg).prefix(300).write(to: jpeg)
        try FileManager.default.removeItem(at: dataset.captionURL(records[2], degree: 135))
        let expectations = [(0, "skybox face 2 missing"), (1, "unreadable skybox face 4"), (2, "caption file missing")]
        for (index, words) in expectations {
            XCTAssertThrowsError(try dataset.sample(at: index, yawOffset: 0)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("panorama \(records[index].identifier)"), text)
                XCTAssertTrue(text.contains(words), text)
            }
        }
        let strict = try PanoramaLoader(source: dataset, options: LoaderOptions(seed: 0))
        XCTAssertThrowsError(try strict.forEach(epoch: 0) { _ in })
        var lines: [String] = []
        let lenient = try PanoramaLoader(source: dataset, options: LoaderOptions(seed: 0, skipBad: true))
        lenient.log = { lines.append($0) }
        XCTAssertEqual(try lenient.forEach(epoch: 0) { _ in }, 0)
        XCTAssertEqual(lenient.skipped.count, 3)
        XCTAssertEqual(lines.filter { $0.hasPrefix("skipping panorama ") }.count, 3)
        XCTAssertEqual(lines.last, "skipped 3 of 3 panoramas in epoch 0 (skip_bad)")
        // A missing split file or root names what is missing.
        XCTAssertThrowsError(try Matterport3D(root: root, split: "val")) { XCTAssertTrue("\($0)".contains("val.npy")) }
    }

    func testSkipBadLeavesGoodPanoramasAlone() throws {
        let source = CountingSource(count: 6)
        source.failing = [2, 4]
        var lines: [String] = []
        let loader = try PanoramaLoader(source: source, options: LoaderOptions(shuffle: false, skipBad: true, prefetch: 2))
        loader.log = { lines.append($0) }
        var delivered: [Int] = []
        try loader.forEach(epoch: 0) { delivered.append($0.index) }
        XCTAssertEqual(delivered, [0, 1, 3, 5])
        XCTAssertEqual(lines, ["skipping panorama scan/2: broken on purpose",
                               "skipping panorama scan/4: broken on purpose",
                               "skipped 2 of 6 panoramas in epoch 0 (skip_bad)"])
    }

    // MARK: Export (`backdrop dataset show`)

    func testShowWritesViewsCamerasAndPrompts() throws {
        let dataset = try Matterport3D(root: Self.shared, split: "test", views: ViewOptions(resolution: 40))
        let sample = try dataset.sample(at: 0, yawOffset: 90)
        let out = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: out) }
        let files = try SampleExport.write(sample, to: out)
        XCTAssertEqual(files.map(\.lastPathComponent), (0..<8).map { "view_\($0).png" } + ["cameras.json", "prompts.txt"])
        let view = try Image(contentsOf: out.appendingPathComponent("view_3.png"))
        XCTAssertEqual([view.width, view.height, view.channels], [40, 40, 3])
        XCTAssertGreaterThan(try MediaTestSupport.psnr(view.tensor(), (sample.images[3] + 1) / 2), 45)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("cameras.json"))) as? [String: Any]
        let views = try XCTUnwrap(json?["views"] as? [[String: Any]])
        XCTAssertEqual(views.count, 8)
        let r = try XCTUnwrap(views[1]["R"] as? [Double])
        let expected = Orientation(yaw: 135).rotation.rowMajor
        for (a, b) in zip(r, expected) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        XCTAssertEqual(views[1]["K"] as? [Double], [20, 0, 19.5, 0, 20, 19.5, 0, 0, 1])
        XCTAssertEqual(json?["panorama"] as? String, sample.panoramaID)
        // The one cameras.json schema, read back by its one reader.
        let file = try CamerasFile.read(out)
        XCTAssertEqual(try file.layout(), sample.layout)
        XCTAssertEqual(file.views.map(\.yawDeg), sample.yaws.map { $0 }, "yaw_deg per view")
        XCTAssertEqual(file.yawOffsetDeg, sample.yawOffset)
        let prompts = try String(contentsOf: out.appendingPathComponent("prompts.txt"), encoding: .utf8)
        XCTAssertEqual(prompts.split(separator: "\n").map(String.init), sample.prompts)
    }
}
