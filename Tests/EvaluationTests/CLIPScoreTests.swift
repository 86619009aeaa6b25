import BackdropTestSupport
import Foundation
import Parity
import StableDiffusion
import Torch
import XCTest

@testable import Evaluation

/// The CLIP score against transformers' CLIPModel / CLIPImageProcessor and torchmetrics' formula
/// (cases from tools/parity/clip.py; the preprocessing reference generated at test time).
final class CLIPScoreTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        Runtime.threads = 2
    }

    static let cases = ["clip_quick_gelu_legacy_eos", "clip_gelu"]

    func caseFolder(_ name: String) -> URL { TestSupport.fixture("parity/\(name)") }

    // MARK: Parity with transformers and torchmetrics

    /// Embeddings, per-pair scores and the clamped mean of both committed cases within 1e-3.
    func testCommittedCasesMatchTransformersAndTorchmetrics() throws {
        for name in Self.cases {
            let report = Parity.run(caseFolder(name))
            XCTAssertNil(report.error, "\(name): \(report.error ?? "")")
            XCTAssertEqual(Set(report.tensors.map(\.name)), ["image_embeds", "text_embeds", "score", "mean"], name)
            XCTAssertLessThanOrEqual(report.atol + report.rtol, 1e-3, name)
            for t in report.tensors {
                print(String(format: "clip parity %@/%@ %@ max-abs %.3e", name, t.name, "\(t.expectedShape)", t.maxAbs))
                XCTAssertTrue(t.passed, "\(name)/\(t.name): max-abs \(t.maxAbs) \(t.message ?? "")")
            }
        }
    }

    /// The scorer's own reductions on a real case: per pair, torchmetrics' clamp (the gelu case's
    /// only score is negative, so its mean is 0), and the MVDiffusion per-scene average.
    func testScoreAndPanoramaScore() throws {
        let folder = caseFolder("clip_quick_gelu_legacy_eos")
        let parityCase = try ParityCase(directory: folder)
        let scorer = try CLIPScorer(modelDirectory: folder.appendingPathComponent("model"))
        let batch = try parityCase.input("images")
        let images = try (0..<2).map { try batch.select(dim: 0, index: $0) }
        let prompts = try parityCase.args.strings("prompts")
        let expected = try parityCase.expected["score"].map { try $0.toArray(Float.self).map(Double.init) } ?? []

        let (perPair, mean) = try scorer.score(images: images, prompts: prompts)
        XCTAssertEqual(perPair.count, 2)
        for (ours, theirs) in zip(perPair, expected) { XCTAssertEqual(ours, theirs, accuracy: 1e-3) }
        XCTAssertEqual(mean, max(0, (perPair[0] + perPair[1]) / 2), accuracy: 1e-12)

        // Scene 0 has both views, scene 1 only the second: views averaged first, then scenes.
        let panorama = try scorer.panoramaScore(views: [images, [images[1]]], prompts: [prompts, [prompts[1]]])
        XCTAssertEqual(panorama.perScene[0], (perPair[0] + perPair[1]) / 2, accuracy: 1e-4)
        XCTAssertEqual(panorama.perScene[1], perPair[1], accuracy: 1e-4)
        XCTAssertEqual(panorama.mean, max(0, (panorama.perScene[0] + panorama.perScene[1]) / 2), accuracy: 1e-12)

        XCTAssertEqual(CLIPScorer.clampedMean([-3, 1]), 0)
        XCTAssertEqual(CLIPScorer.clampedMean([3, 1]), 2)
        XCTAssertThrowsError(try scorer.score(images: images, prompts: [prompts[0]])) {
            XCTAssertTrue("\($0)".contains("2 images but 1 prompts"), "\($0)")
        }
        XCTAssertThrowsError(try scorer.panoramaScore(views: [images], prompts: [[prompts[0]]])) {
            XCTAssertTrue("\($0)".contains("scene 0 has 2 views but 1 prompts"), "\($0)")
        }
        XCTAssertThrowsError(try scorer.score(images: [try Tensor.zeros([3, 8, 8])], prompts: ["x"])) {
            XCTAssertTrue("\($0)".contains("uint8"), "\($0)")
        }
    }

    /// torchmetrics' text input: the full ids cut at 77 (a long prompt loses its end token), padded
    /// with the pad token to the longest row only.
    func testInputIdsFollowTorchmetrics() throws {
        let scorer = try CLIPScorer(modelDirectory: caseFolder("clip_gelu").appendingPathComponent("model"))
        let long = try ParityCase(directory: caseFolder("clip_gelu")).args.strings("prompts")[0]
        let tokenizer = scorer.tokenizer
        XCTAssertGreaterThan(tokenizer.tokenIds(long).count, 77)
        let ids = try scorer.inputIds(["a room", long])
        XCTAssertEqual(ids.shape, [2, 77])
        let rows = try ids.toArray(Int64.self).map(Int.init)
        let short = [tokenizer.bosTokenId] + tokenizer.tokenIds("a room") + [tokenizer.eosTokenId]
        XCTAssertEqual(Array(rows[0..<short.count]), short)
        XCTAssertTrue(rows[short.count..<77].allSatisfy { $0 == tokenizer.padTokenId })
        XCTAssertEqual(Array(rows[77...]), Array(([tokenizer.bosTokenId] + tokenizer.tokenIds(long)).prefix(77)))
        XCTAssertFalse(rows[77...].contains(tokenizer.eosTokenId), "the cut prompt keeps no end token")
        XCTAssertEqual(try scorer.inputIds(["a room"]).shape, [1, short.count], "padding only to the longest prompt")
    }

    /// transformers 4.40's pooling rule: `eos_token_id == 2` (configs saved before 4.31) pools at the
    /// largest id, any other value at the first end token (position 0 when there is none).
    func testTextPoolingPositions() throws {
        var config = CLIPConfig(text_config: CLIPTextConfig(vocab_size: 50, hidden_size: 8, intermediate_size: 16,
                                                            num_hidden_layers: 1, num_attention_heads: 2, eos_token_id: 2),
                                vision_config: CLIPVisionConfig(hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1,
                                                                num_attention_heads: 2, image_size: 28, patch_size: 14),
                                projection_dim: 4)
        let ids = try Tensor([49, 5, 48, 7, 48, 48, 3, 9, 40, 11, 2, 2] as [Int64], shape: [2, 6])
        XCTAssertEqual(try CLIPModel(config: config).textPoolingPositions(ids).toArray(Int64.self), [0, 2])
        config.text_config.eos_token_id = 48
        XCTAssertEqual(try CLIPModel(config: config).textPoolingPositions(ids).toArray(Int64.self), [2, 0])
        config.text_config.eos_token_id = 2
        let model = try CLIPModel(config: config)
        XCTAssertEqual(try model.textEmbeddings(ids).shape, [2, 4])
        XCTAssertEqual(try model.imageEmbeddings(Tensor.zeros([3, 3, 28, 28])).shape, [3, 4])
        XCTAssertThrowsError(try model.imageEmbeddings(Tensor.zeros([1, 3, 32, 32]))) {
            XCTAssertTrue("\($0)".contains("[B, 3, 28, 28]"), "\($0)")
        }
    }

    // MARK: Configs

    /// `text_config_dict` (pre-4.27 configs) replaces `text_config` wholesale, defaults included;
    /// errors name the nested key.
    func testConfigDecoding() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        func write(_ json: String) throws -> URL {
            let url = directory.appendingPathComponent("config.json")
            try Data(json.utf8).write(to: url)
            return url
        }
        let legacy = try CLIPConfig.load(write(#"""
            {"projection_dim": 768,
             "text_config": {"hidden_size": 768, "eos_token_id": 2, "hidden_act": "gelu"},
             "text_config_dict": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12},
             "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                               "num_hidden_layers": 24, "patch_size": 14}}
            """#))
        XCTAssertEqual(legacy.text_config.eos_token_id, 49407, "the dict's default replaces text_config's 2")
        XCTAssertEqual(legacy.text_config.hidden_act, "quick_gelu")
        XCTAssertEqual(legacy.text_config.intermediate_size, 3072)
        XCTAssertEqual(legacy.vision_config.grid, 16)
        XCTAssertEqual(legacy.projection_dim, 768)
        XCTAssertFalse(legacy.vision_config.encoder.causal)
        XCTAssertTrue(legacy.text_config.encoder.causal)

        let plain = try CLIPConfig.load(write(#"{"text_config": {"eos_token_id": 2}, "vision_config": null}"#))
        XCTAssertEqual(plain.text_config.eos_token_id, 2)
        XCTAssertEqual(plain.vision_config.patch_size, 32)
        XCTAssertEqual(plain.projection_dim, 512)

        XCTAssertThrowsError(try CLIPConfig.load(write(#"{"vision_config": {"hidden_size": 30, "num_attention_heads": 4}}"#))) {
            XCTAssertEqual(($0 as? LoadingError)?.key, "vision_config.num_attention_heads", "\($0)")
        }
        XCTAssertThrowsError(try CLIPConfig.load(write(#"{"text_config": {"hidden_act": "swish"}}"#))) {
            XCTAssertEqual(($0 as? LoadingError)?.key, "text_config.hidden_act", "\($0)")
        }
        XCTAssertThrowsError(try CLIPConfig.load(write(#"{"vision_config": {"patch_size": "14"}}"#))) {
            XCTAssertEqual(($0 as? LoadingError)?.key, "vision_config.patch_size", "\($0)")
        }
        // A folder without weights names the folder.
        XCTAssertThrowsError(try CLIPModel.load(from: directory)) { XCTAssertTrue("\($0)".contains(directory.path), "\($0)") }
    }

    func testPreprocessorConfig() throws {
        let old = try CLIPImageProcessor(config: ["size": 336, "crop_size": 336, "resample": 3, "do_center_crop": true,
                                                  "image_mean": [0.5, 0.5, 0.5], "image_std": 0.5], file: "p.json")
        XCTAssertEqual(old.size, .shortestEdge(336))
        XCTAssertEqual(old.cropSize?.height, 336)
        XCTAssertEqual(old.normalization?.std, [0.5, 0.5, 0.5])
        let new = try CLIPImageProcessor(config: ["size": ["shortest_edge": 224], "crop_size": ["height": 224, "width": 224],
                                                  "do_normalize": false, "resample": 2], file: "p.json")
        XCTAssertEqual(new.size, .shortestEdge(224))
        XCTAssertNil(new.normalization)
        XCTAssertEqual(new.resample, .bilinear)
        XCTAssertThrowsError(try CLIPImageProcessor(config: ["resample": 0], file: "p.json")) {
            XCTAssertEqual(($0 as? LoadingError)?.key, "resample", "\($0)")
        }
        XCTAssertThrowsError(try CLIPImageProcessor(config: ["crop_size": ["height": 224]], file: "p.json")) {
            XCTAssertEqual(($0 as? LoadingError)?.key, "crop_size", "\($0)")
        }
        let defaults = CLIPImageProcessor()
        XCTAssertTrue(defaults.resizedSize(height: 512, width: 1024) == (224, 448))
        XCTAssertTrue(defaults.resizedSize(height: 301, width: 200) == (337, 224))
    }

    // MARK: Preprocessing

    /// Pillow's resize and the whole `CLIPImageProcessor` on every real photo and panorama plus
    /// crops of other shapes (some upscaled): the resized bytes must be identical and the pixel
    /// values equal to float32 rounding. LibTorch's antialiased bicubic is measured for comparison.
    func testPreprocessingMatchesCLIPImageProcessorOnRealImages() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = try TestSupport.runPythonTool("parity/clip.py", ["--preprocess", directory.path])
        guard run.status == 0 else {
            XCTFail("reference script failed:\n\(run.output)")
            return
        }
        let reference = try SafetensorsFile(url: directory.appendingPathComponent("preprocess.safetensors"))
        let names = Set(reference.names.filter { !$0.hasPrefix("filter") }.map { String($0.prefix { $0 != "." }) }).sorted()
        XCTAssertGreaterThanOrEqual(names.count, 12)
        let processor = CLIPImageProcessor()
        var worstPixels = 0.0, worstLibTorch = 0.0
        for name in names {
            let image = try reference.tensor("\(name).image")
            let resized = try reference.tensor("\(name).resized")
            let (h, w) = processor.resizedSize(height: image.shape[1], width: image.shape[2])
            XCTAssertEqual([3, h, w], resized.shape, name)
            let ours = try PILResize.resize(image, height: h, width: w)
            let resizeError = try TestSupport.maxAbsDifference(ours, resized)
            let pixelError = try TestSupport.maxAbsDifference(processor([image]).squeeze(dim: 0), reference.tensor("\(name).pixel_values"))
            let libtorch = try F.interpolate(image.unsqueeze(0).to(dtype: .float32), size: IntPair(h, w), mode: .bicubic,
                                             alignCorners: false, antialias: true).round().clamp(min: 0, max: 255).squeeze(dim: 0)
            let libtorchError = try TestSupport.maxAbsDifference(libtorch, resized)
            let libtorchFraction = try libtorch.ne(resized.to(dtype: .float32)).to(dtype: .float64).mean().item()
            print(String(format: "clip preprocessing %@ %@ → %d×%d: Pillow resize max diff %.0f, pixel_values max-abs %.2e; LibTorch antialias max diff %.0f (%.1f%% of pixels differ)",
                         name, "\(image.shape)", h, w, resizeError, pixelError, libtorchError, libtorchFraction * 100))
            XCTAssertEqual(resizeError, 0, "\(name): resized pixels differ from Pillow's")
            XCTAssertLessThanOrEqual(pixelError, 1e-6, "\(name): pixel_values")
            worstPixels = max(worstPixels, pixelError)
            worstLibTorch = max(worstLibTorch, libtorchError)
        }
        print("clip preprocessing: worst pixel_values max-abs \(worstPixels); LibTorch antialias worst \(worstLibTorch) levels")

        // The other Pillow filters, down and up, byte for byte.
        let small = try reference.tensor("astronaut_small.image")
        let filtered = reference.names.filter { $0.hasPrefix("filter") }
        XCTAssertEqual(filtered.count, 8)
        for name in filtered {
            let expected = try reference.tensor(name)
            guard let code = Int(name.dropFirst(6).prefix { $0 != "_" }), let filter = PILFilter(rawValue: code) else {
                XCTFail("unexpected reference tensor \(name)")
                continue
            }
            let ours = try PILResize.resize(small, height: expected.shape[1], width: expected.shape[2], filter: filter)
            XCTAssertEqual(try TestSupport.maxAbsDifference(ours, expected), 0, "\(name) (\(filter))")
        }
    }

    /// Each Pillow filter on a tiny image against hand-checked properties: a constant image stays
    /// constant (weights sum to one in fixed point), sizes are honoured, same size is a copy.
    func testPILResizeFiltersAndEdgeCases() throws {
        let flat = try Tensor.full([3, 9, 13], 200, dtype: .uint8)
        for filter in PILFilter.allCases {
            for (h, w) in [(4, 5), (20, 31), (9, 6), (1, 1)] {
                let out = try PILResize.resize(flat, height: h, width: w, filter: filter)
                XCTAssertEqual(out.shape, [3, h, w])
                XCTAssertEqual(try out.to(dtype: .float64).amin().item(), 200, "\(filter) \(h)×\(w)")
                XCTAssertEqual(try out.to(dtype: .float64).amax().item(), 200, "\(filter) \(h)×\(w)")
            }
        }
        let image = try Tensor.randint(0, 256, [3, 7, 5], dtype: .uint8, generator: Generator(seed: 1))
        XCTAssertEqual(try TestSupport.maxAbsDifference(PILResize.resize(image, height: 7, width: 5), image), 0)
        XCTAssertThrowsError(try PILResize.resize(image.to(dtype: .float32), height: 2, width: 2))
        XCTAssertThrowsError(try PILResize.resize(image, height: 0, width: 2))
    }
}
