import BackdropTestSupport
import Foundation
import Torch
import XCTest

@testable import Evaluation

/// Inception features, FID and IS against the reference implementations (tools/make_eval_fixtures.py).
final class InceptionTests: XCTestCase {
    lazy var metrics = try! SafetensorsFile(url: TestSupport.fixture("evaluation/metrics.safetensors"))
    lazy var expected: [String: Any] = {
        let data = try! Data(contentsOf: TestSupport.fixture("evaluation/expected.json"))
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()

    /// Runs tools/make_eval_fixtures.py with `flag` into a fresh folder.
    func referenceFolder(_ flag: String) throws -> URL {
        let directory = try TestSupport.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        let run = try TestSupport.runPythonTool("make_eval_fixtures.py", [flag, directory.path])
        guard run.status == 0 else {
            XCTFail("reference script failed:\n\(run.output)")
            throw XCTSkip("no reference")
        }
        return directory
    }

    func maxAbs(_ a: Tensor, _ b: Tensor) throws -> Double { try TestSupport.maxAbsDifference(a, b) }

    // MARK: Features

    /// The real weights: our network with NVIDIA's parameters mapped to torchvision's layout gives
    /// the archive's own TorchScript forward, on real photos and panorama crops.
    func testRealWeightsMatchTheArchiveOnRealImages() throws {
        let archive = try TestSupport.asset("models/fid_inception_nvidia.pt")
        let model = try InceptionV3.load(archive)
        XCTAssertNil(model.fc, "the NVIDIA archive has no classifier")
        let reference = try ScriptModule(contentsOf: archive)
        let images = try SafetensorsFile(url: referenceFolder("--real-images").appendingPathComponent("images.safetensors"))
        XCTAssertGreaterThanOrEqual(images.names.count, 4)
        for name in images.names {
            let input = try InceptionResize.tf1.prepare(images.tensor(name))
            let (ours, theirs) = try withInferenceMode {
                (try model.features(input).pool2048, try reference.forward(input)[0])
            }
            let error = try maxAbs(ours, theirs)
            print("real weights, \(name) \(try images.tensor(name).shape): pool3 max-abs error \(error)")
            XCTAssertLessThanOrEqual(error, 1e-4, "\(name): pool3 features max-abs error \(error)")
            XCTAssertGreaterThan(try theirs.abs().amax().item(), 0.1, "features should not be trivially small")
        }
        XCTAssertThrowsError(try model.logits(Tensor.zeros([1, 2048]), unbiased: true)) {
            XCTAssertTrue("\($0)".contains("no 1008-way classifier"))
        }
    }

    /// torchvision-layout `.pth` (pytorch-fid's format) with a classifier: every feature size and
    /// both logits against torch-fidelity, and the pytorch-fid input path against pytorch-fid.
    func testTorchvisionLayoutMatchesTorchFidelityAndPytorchFID() throws {
        let folder = try referenceFolder("--random-inception")
        let model = try InceptionV3.load(folder.appendingPathComponent("weights.pth"))
        let io = try SafetensorsFile(url: folder.appendingPathComponent("io.safetensors"))
        for i in 0..<3 {
            let image = try io.tensor("image\(i)")
            let (features, unbiased, biased) = try withInferenceMode {
                let f = try model.features(InceptionResize.tf1.prepare(image))
                return (f, try model.logits(f.pool2048, unbiased: true), try model.logits(f.pool2048, unbiased: false))
            }
            let pairs: [(String, Tensor)] = [("64", features.pool64), ("192", features.pool192), ("768", features.pool768),
                                             ("2048", features.pool2048), ("logits_unbiased", unbiased), ("logits", biased)]
            for (name, ours) in pairs {
                let reference = try io.tensor("tf1.image\(i).\(name)")
                let scale = max(1, try reference.abs().amax().item())
                let error = try maxAbs(ours, reference)
                print("random weights, image\(i) \(name): max-abs error \(error) (largest value \(scale))")
                XCTAssertLessThanOrEqual(error, 1e-4 * scale, "image\(i) \(name): max-abs \(error) (scale \(scale))")
            }
            let pytorchFID = try withInferenceMode { try model.features(InceptionResize.pytorchFID.prepare(image)).pool2048 }
            let reference = try io.tensor("pytorch-fid.image\(i).2048")
            // Random weights give features in the hundreds: the tolerance scales with them.
            let scale = max(1, try reference.abs().amax().item())
            let error = try maxAbs(pytorchFID, reference)
            XCTAssertLessThanOrEqual(error, 1e-4 * scale, "image\(i) pytorch-fid path: max-abs \(error) (scale \(scale))")
        }
    }

    func testTF1ResizeIsBitExact() throws {
        let input = try metrics.tensor("resize.input").to(dtype: .float32)
        for (h, w) in [(61, 45), (20, 31), (37, 53)] {
            let ours = try resizeBilinearTF1(input, height: h, width: w)
            XCTAssertEqual(try maxAbs(ours, metrics.tensor("resize.\(h)x\(w)")), 0, "\(h)×\(w)")
        }
        XCTAssertThrowsError(try InceptionResize.tf1.prepare(Tensor.zeros([1, 3, 8, 8])), "float input is refused")
    }

    // MARK: Metrics

    func testFIDMatchesScipySqrtmRoute() throws {
        for name in ["full_rank", "shifted", "singular"] {
            let a = try FeatureStatistics(features: metrics.tensor("fid.\(name).a"))
            let b = try FeatureStatistics(features: metrics.tensor("fid.\(name).b"))
            let reference = expected["fid.\(name)"] as! Double
            let ours = try frechetDistance(a, b)
            print("FID \(name): \(ours) vs SciPy route \(reference), relative difference \(abs(ours - reference) / reference)")
            XCTAssertEqual(ours, reference, accuracy: 1e-6 * abs(reference), "\(name): \(ours) vs scipy \(reference)")
            XCTAssertEqual(a.isRankDeficient, name == "singular")
        }
        let a = try FeatureStatistics(features: metrics.tensor("fid.full_rank.a"))
        XCTAssertEqual(try frechetDistance(a, a), 0, accuracy: 1e-8)
    }

    func testInceptionScoreMatchesTorchFidelity() throws {
        for name in ["n100", "n57"] {
            let reference = expected["is.\(name)"] as! [String: Any]
            let score = try InceptionScore(logits: metrics.tensor("is.\(name)"), splits: reference["splits"] as! Int)
            XCTAssertEqual(score.mean, reference["mean"] as! Double, accuracy: 1e-9)
            XCTAssertEqual(score.std, reference["std"] as! Double, accuracy: 1e-9)
        }
        XCTAssertThrowsError(try InceptionScore(logits: Tensor.zeros([5, 10]), splits: 10))
    }

    func testNumPyPermutationIsReproduced() throws {
        let permutations = expected["numpy_permutation"] as! [String: [Int]]
        for (seed, reference) in permutations {
            var random = NumPyRandomState(seed: UInt32(seed)!)
            XCTAssertEqual(random.permutation(reference.count), reference, "seed \(seed)")
        }
    }

    func testMissingAndForeignWeightFilesAreClearErrors() throws {
        XCTAssertThrowsError(try InceptionV3.load(URL(fileURLWithPath: "/nonexistent/inception.pth"))) {
            XCTAssertTrue("\($0)".contains("/nonexistent/inception.pth"))
        }
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let foreign = directory.appendingPathComponent("other.safetensors")
        try Safetensors.save(["w": try Tensor.zeros([2])], to: foreign)
        XCTAssertThrowsError(try InceptionV3.load(foreign)) { XCTAssertTrue("\($0)".contains("other.safetensors"), "\($0)") }
    }
}

final class StatisticsCacheTests: XCTestCase {
    func testStatisticsRoundTripAndProvenanceCheck() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let features = try Tensor.randn([40, 8], dtype: .float64, generator: Generator(seed: 9))
        let stats = try FeatureStatistics(features: features)
        let provenance = FeatureStatistics.Provenance(featureExtractor: "0123abcd", resize: .tf1)
        let url = directory.appendingPathComponent("stats.h5")
        try stats.save(to: url, provenance: provenance)
        let loaded = try FeatureStatistics.load(url, expecting: provenance)
        XCTAssertEqual(loaded.count, 40)
        XCTAssertEqual(try TestSupport.maxAbsDifference(loaded.mean, stats.mean), 0)
        XCTAssertEqual(try TestSupport.maxAbsDifference(loaded.covariance, stats.covariance), 0)
        XCTAssertEqual(try frechetDistance(loaded, stats), 0, accuracy: 1e-9)
        for other in [FeatureStatistics.Provenance(featureExtractor: "ffff", resize: .tf1),
                      FeatureStatistics.Provenance(featureExtractor: "0123abcd", resize: .pytorchFID)] {
            XCTAssertThrowsError(try FeatureStatistics.load(url, expecting: other)) {
                XCTAssertTrue("\($0)".contains("stats.h5"), "\($0)")
            }
        }
    }
}
