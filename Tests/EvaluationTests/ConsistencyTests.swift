import BackdropTestSupport
import Foundation
import Geometry
import Media
import Torch
import XCTest

@testable import Evaluation

/// The overlap PSNR of 45°-apart views against tools/consistency_reference.py (NumPy, its own
/// cameras, homographies and bilinear sampling) on views rendered from the real CC0 panoramas.
final class ConsistencyTests: XCTestCase {
    static let yaws = (0..<8).map { Double($0) * 45 }
    static let camera = PinholeCamera(fov: 90, size: 128)

    /// 8 views of a real panorama, uint8 `[8, 3, 128, 128]` (the values a PNG view would hold).
    func views(of name: String) throws -> Tensor {
        let panorama = try Image(contentsOf: TestSupport.asset("panoramas/\(name).png")).rgb8().tensor(.uint8)
        let rotations = try Orientation.matrices(Self.yaws.map { Orientation(yaw: $0) })
        let rendered = try EquirectSampler(panorama).perspective(camera: Self.camera, rotations: rotations).squeeze(dim: 0)
        return try rendered.round().clamp(min: 0, max: 255).to(dtype: .uint8)
    }

    /// Runs the reference on scenes `[S, 8, 3, H, W]` → (pairs per scene, scene means, mean).
    func reference(_ scenes: Tensor) throws -> (pairs: [[Double]], scenes: [Double], mean: Double) {
        let folder = try TestSupport.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("views.safetensors")
        try Safetensors.save(["views": scenes, "yaws": Tensor(Self.yaws, shape: [8]),
                              "fov": Tensor([Self.camera.fov], shape: [1])], to: file)
        let run = try TestSupport.runPythonTool("consistency_reference.py", [file.path])
        guard run.status == 0, let json = try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any] else {
            XCTFail("reference failed:\n\(run.output)")
            throw XCTSkip("no reference")
        }
        return (json["pairs"] as! [[Double]], json["scenes"] as! [Double], json["mean"] as! Double)
    }

    func score(_ scenes: Tensor) throws -> (pairs: [[Double]], score: ConsistencyScore) {
        let rotations = try Orientation.matrices(Self.yaws.map { Orientation(yaw: $0) }, dtype: .float64)
        let k = try Self.camera.intrinsics(dtype: .float64)
        let pairs = try (0..<scenes.shape[0]).map {
            try ViewConsistency.pairPSNRs(views: scenes.select(dim: 0, index: $0), intrinsics: k, rotations: rotations)
        }
        return (pairs, ConsistencyScore(perScene: pairs.map { $0.reduce(0, +) / Double($0.count) }))
    }

    /// Ground-truth neighbours agree in their overlap; neighbours taken from two different
    /// panoramas do not. Both sets match the NumPy reference pair by pair.
    func testRealPanoramaViewsMatchTheReference() throws {
        let names = ["interior", "studio", "courtyard", "city"]
        let all = try names.map { try views(of: $0) }
        let truth = try Tensor.stack(all)
        // View i of mixed scene s comes from panorama s when i is even, from panorama s + 1 when odd.
        let mixed = try Tensor.stack(names.indices.map { s in
            try Tensor.stack((0..<8).map { i in try all[i % 2 == 0 ? s : (s + 1) % names.count].select(dim: 0, index: i) })
        })
        for (label, scenes) in [("ground truth", truth), ("mixed panoramas", mixed)] {
            let ours = try score(scenes), theirs = try reference(scenes)
            for s in names.indices {
                for (i, (a, b)) in zip(ours.pairs[s], theirs.pairs[s]).enumerated() {
                    // float64 on both sides; only the interpolation's rounding differs.
                    XCTAssertEqual(a, b, accuracy: 1e-6, "\(label) \(names[s]) pair \(i): \(a) vs reference \(b)")
                }
            }
            XCTAssertEqual(ours.score.psnr, theirs.mean, accuracy: 1e-6, label)
            print("\(label): overlap PSNR \(ours.score.psnr) dB (reference \(theirs.mean)); per scene \(ours.score.perScene)")
        }
        let truthScore = try score(truth).score, mixedScore = try score(mixed).score
        XCTAssertGreaterThan(truthScore.perScene.min()!, 25, "rendered neighbours of one panorama should agree closely")
        XCTAssertLessThan(mixedScore.perScene.max()!, 20, "neighbours from different panoramas should disagree")
        XCTAssertLessThan(mixedScore.ratio(to: truthScore), 0.7)
    }

    func testViewsWithoutOverlapAreAnError() throws {
        let views = try Tensor.zeros([2, 3, 16, 16])
        let rotations = try Orientation.matrices([Orientation(yaw: 0), Orientation(yaw: 180)])
        XCTAssertThrowsError(try ViewConsistency.pairPSNRs(views: views, intrinsics: PinholeCamera(fov: 90, size: 16).intrinsics(),
                                                           rotations: rotations)) {
            XCTAssertTrue("\($0)".contains("do not overlap"), "\($0)")
        }
    }

    func testIdenticalOverlapIsCappedNotInfinite() throws {
        let views = try Tensor.full([8, 3, 16, 16], 77)
        let rotations = try Orientation.matrices(Self.yaws.map { Orientation(yaw: $0) })
        let pairs = try ViewConsistency.pairPSNRs(views: views, intrinsics: PinholeCamera(fov: 90, size: 16).intrinsics(),
                                                  rotations: rotations)
        XCTAssertEqual(pairs, Array(repeating: ViewConsistency.maximumPSNR, count: 8))
    }

    /// tools/overlap_error_parts.py (docs/models.md#initial-noise) splits the overlap error into the
    /// views' mean-colour difference and the rest: real views leave almost no mean difference; the
    /// same views with view 0 darkened by a constant are mostly mean difference.
    func testOverlapErrorPartsFindAMeanColourShift() throws {
        let truth = try views(of: "interior")
        let darker = try Tensor.cat([(truth.slice(dim: 0, start: 0, end: 1).to(dtype: .float32) - 40).clamp(min: 0, max: 255)
                                        .to(dtype: .uint8), truth.slice(dim: 0, start: 1)])
        let folder = try TestSupport.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let layout = try ViewLayout.horizon(count: 8, fov: Self.camera.fov, resolution: Self.camera.width)
        var shares: [Double] = []
        for (name, scene) in [("truth", truth), ("darker", darker)] {
            let sceneFolder = folder.appendingPathComponent(name).appendingPathComponent("scene")
            try FileManager.default.createDirectory(at: sceneFolder, withIntermediateDirectories: true)
            for i in 0..<8 {
                try Image(tensor: scene.select(dim: 0, index: i), range: .uint8).write(to: sceneFolder.appendingPathComponent("view_\(i).png"))
            }
            try CamerasFile(layout: layout).write(into: sceneFolder)
            let run = try TestSupport.runPythonTool("overlap_error_parts.py", [sceneFolder.deletingLastPathComponent().path])
            let share = run.output.firstMatch(of: #/mean-colour offset (\d+) %/#).flatMap { Double($0.1) }
            shares.append(try XCTUnwrap(share, "tool output:\n\(run.output)"))
        }
        XCTAssertLessThan(shares[0], 20, "real neighbours hardly differ in mean colour")
        XCTAssertGreaterThan(shares[1], 80, "a darkened view differs mostly in mean colour")
    }
}
