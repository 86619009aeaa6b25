import BackdropTestSupport
import Foundation
import Media
import Parity
import Torch
import XCTest

@testable import Evaluation

/// The folder-level metrics of `backdrop fid` and `backdrop clip-score`: FID statistics files as a
/// cache of a folder's Inception statistics, and images with a prompt file.
final class FolderMetricsTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        Runtime.threads = 2
    }

    private func folder() throws -> URL {
        let url = try TestSupport.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    private func statistics(seed: UInt64, shift: Double = 0) throws -> FeatureStatistics {
        try FeatureStatistics(features: Tensor.randn([40, 8], dtype: .float64, generator: Generator(seed: seed)) + shift)
    }

    // MARK: FID statistics files

    /// Two statistics files give their FID without Inception: the weights file is not a model at
    /// all, so loading it would fail.
    func testStatisticsFilesStandInForFoldersWithoutLoadingInception() throws {
        let directory = try folder()
        let weights = directory.appendingPathComponent("weights.pth")
        try Data("not a model".utf8).write(to: weights)
        let fid = try FIDCalculator(weights: weights)
        XCTAssertEqual(fid.provenance, .init(featureExtractor: try ContentHash.of(weights), resize: .tf1))
        let (a, b) = (try statistics(seed: 1), try statistics(seed: 2, shift: 0.5))
        let (aURL, bURL) = (directory.appendingPathComponent("a.h5"), directory.appendingPathComponent("b.h5"))
        try a.save(to: aURL, provenance: fid.provenance)
        try b.save(to: bURL, provenance: fid.provenance)

        let result = try fid.distance(aURL, bURL) { _, _, _ in XCTFail("no images to run") }
        XCTAssertEqual(result.fid, try frechetDistance(a, b), accuracy: 1e-9)
        XCTAssertTrue(result.first.fromFile && result.second.fromFile)
        XCTAssertFalse(result.first.isSmallSample, "a file's count is not a warning: it was made elsewhere")
        XCTAssertEqual(result.second.statistics.count, 40)

        // Saving a statistics file's statistics again is refused before any work.
        XCTAssertThrowsError(try fid.statistics(of: aURL, saveTo: directory.appendingPathComponent("c.h5"))) {
            XCTAssertTrue("\($0)".contains("already a statistics file"), "\($0)")
        }
        // A file made with other weights or another input path is refused.
        let pytorchFID = try FIDCalculator(weights: weights, resize: .pytorchFID)
        XCTAssertThrowsError(try pytorchFID.distance(aURL, bURL)) { XCTAssertTrue("\($0)".contains("a.h5"), "\($0)") }
    }

    /// Crafted statistics files gave `nan`, a negative FID, or were used with `count = -5`: each is
    /// refused on load with the file and the reason.
    func testCraftedStatisticsAreRefused() throws {
        let directory = try folder()
        let provenance = FeatureStatistics.Provenance(featureExtractor: "x", resize: .tf1)
        let good = try statistics(seed: 3)
        let d = good.mean.count
        let asymmetric = try good.covariance + Tensor.eye(d, dtype: .float64).roll(shifts: [1], dims: [1])
        let indefinite = try good.covariance - Tensor.eye(d, dtype: .float64) * 100
        let cases: [(String, FeatureStatistics, String)] = [
            ("nan.h5", try FeatureStatistics(mean: good.mean * Double.nan, covariance: good.covariance, count: 40), "NaN"),
            ("count.h5", try FeatureStatistics(mean: good.mean, covariance: good.covariance, count: -5), "at least 2"),
            ("asymmetric.h5", try FeatureStatistics(mean: good.mean, covariance: asymmetric, count: 40), "not symmetric"),
            ("indefinite.h5", try FeatureStatistics(mean: good.mean, covariance: indefinite, count: 40), "positive semi-definite"),
        ]
        for (name, crafted, reason) in cases {
            let url = directory.appendingPathComponent(name)
            try crafted.save(to: url, provenance: provenance)
            XCTAssertThrowsError(try FeatureStatistics.load(url, expecting: provenance), name) {
                XCTAssertTrue("\($0)".contains(name) && "\($0)".contains(reason), "\($0)")
            }
        }
        let url = directory.appendingPathComponent("good.h5")
        try good.save(to: url, provenance: provenance)
        XCTAssertEqual(try FeatureStatistics.load(url, expecting: provenance).count, 40)
        // libhdf5 parses in a child process: one that does not answer in time is stopped, and the
        // file is refused (make fuzz found files that hang libhdf5 1.10 for ever).
        XCTAssertThrowsError(try FeatureStatistics.load(url, expecting: provenance, timeout: 1e-4)) {
            XCTAssertTrue("\($0)".contains("did not finish reading it within"), "\($0)")
        }
    }

    /// A folder's statistics through the real FID Inception: computed once per calculator (a
    /// second request runs nothing), saved, and the saved file read back by a fresh calculator
    /// gives the same statistics, so the folder against its own file has FID 0.
    func testFolderStatisticsAreComputedOnceSavedAndReused() throws {
        let weights = try TestSupport.asset("models/fid_inception_nvidia.pt")
        let directory = try folder()
        let images = directory.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        for i in 0..<3 {
            let image = try Tensor.randint(0, 256, [3, 48, 64], dtype: .uint8, generator: Generator(seed: UInt64(20 + i)))
            try Image(tensor: image, range: .uint8).write(to: images.appendingPathComponent("\(i).png"), format: .png)
        }
        let saved = directory.appendingPathComponent("images.h5")
        let fid = try FIDCalculator(weights: weights, batchSize: 2)
        var reports: [Int] = []
        let first = try fid.statistics(of: images, saveTo: saved) { done, total in
            XCTAssertEqual(total, 3)
            reports.append(done)
        }
        XCTAssertEqual(reports, [2, 3], "one report per batch of 2")
        XCTAssertFalse(first.fromFile)
        XCTAssertTrue(first.isSmallSample)
        XCTAssertEqual(first.statistics.count, 3)

        let again = try fid.statistics(of: images) { _, _ in XCTFail("the folder was already computed") }
        XCTAssertEqual(try TestSupport.maxAbsDifference(again.statistics.mean, first.statistics.mean), 0)

        let fresh = try FIDCalculator(weights: weights)
        let result = try fresh.distance(saved, images)
        XCTAssertTrue(result.first.fromFile)
        XCTAssertEqual(try TestSupport.maxAbsDifference(result.first.statistics.covariance, first.statistics.covariance), 0)
        XCTAssertEqual(result.fid, 0, accuracy: 1e-3)
    }

    // MARK: Images with prompts

    func testPromptFilesAreOneLinePerImage() throws {
        let directory = try folder()
        let url = directory.appendingPathComponent("prompts.txt")
        try Data("a room\r\n\nthe last one\n".utf8).write(to: url)
        XCTAssertEqual(try PromptedImageFolder.readPrompts(url), ["a room", "", "the last one"])
        try Data("no final newline".utf8).write(to: url)
        XCTAssertEqual(try PromptedImageFolder.readPrompts(url), ["no final newline"])
    }

    /// The committed tiny CLIP model: a folder of the case's two images scores as the scorer does on
    /// the tensors; one scene of both views averages them; counts that do not match are refused
    /// before any model is loaded.
    func testFolderScoresMatchTheScorerAndGroupScenes() throws {
        let model = TestSupport.fixture("parity/clip_quick_gelu_legacy_eos")
        let parityCase = try ParityCase(directory: model)
        let batch = try parityCase.input("images")
        let prompts = try parityCase.args.strings("prompts")
        let directory = try folder()
        let images = directory.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        for i in 0..<2 {
            try Image(tensor: batch.select(dim: 0, index: i), range: .uint8).write(to: images.appendingPathComponent("view\(i).png"))
        }
        let promptFile = directory.appendingPathComponent("prompts.txt")
        try Data((prompts.joined(separator: "\n") + "\n").utf8).write(to: promptFile)

        let scorer = try CLIPScorer(modelDirectory: model.appendingPathComponent("model"))
        let expected = try scorer.score(images: (0..<2).map { try batch.select(dim: 0, index: $0) }, prompts: prompts)
        let perImage = try PromptedImageFolder(folder: images, prompts: promptFile).score(with: scorer)
        XCTAssertEqual(perImage.files.map(\.lastPathComponent), ["view0.png", "view1.png"])
        for (ours, theirs) in zip(perImage.perImage, expected.perPair) { XCTAssertEqual(ours, theirs, accuracy: 1e-6) }
        XCTAssertEqual(perImage.mean, expected.mean, accuracy: 1e-6)
        XCTAssertNil(perImage.scenes)

        let scene = try PromptedImageFolder(folder: images, prompts: promptFile, viewsPerScene: 2).score(with: scorer)
        XCTAssertEqual(scene.scenes?.means.count, 1)
        XCTAssertEqual(scene.scenes?.means.first ?? .nan, (perImage.perImage[0] + perImage.perImage[1]) / 2, accuracy: 1e-9)

        XCTAssertThrowsError(try PromptedImageFolder(folder: images, prompts: promptFile, viewsPerScene: 3)) {
            XCTAssertTrue("\($0)".contains("whole scenes"), "\($0)")
        }
        try Data("only one prompt\n".utf8).write(to: promptFile)
        XCTAssertThrowsError(try PromptedImageFolder(folder: images, prompts: promptFile)) {
            XCTAssertTrue("\($0)".contains("1 prompt lines") && "\($0)".contains("2 images"), "\($0)")
        }
    }
}
