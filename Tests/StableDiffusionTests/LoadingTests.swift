import BackdropTestSupport
import Foundation
import StableDiffusion
import Torch
import XCTest

/// Config decoding, model folders and strict weight loading: defaults, and errors that name the
/// file, the key and the shapes.
final class LoadingTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws { directory = try TestSupport.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    private func write(_ text: String, _ name: String) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
        return url
    }

    func testConfigDefaultsUnknownKeysAndPythonInfinity() throws {
        let url = try write(#"{"hidden_size": 1024, "num_hidden_layers": 23, "hidden_act": "gelu", "projection_dim": 512, "x": NaN}"#,
                            "text_encoder/config.json")
        let config = try ConfigFile.decode(CLIPTextConfig.self, from: url)
        XCTAssertEqual(config.hidden_size, 1024)
        XCTAssertEqual(config.num_hidden_layers, 23)
        XCTAssertEqual(config.vocab_size, 49408)
        XCTAssertEqual(config.max_position_embeddings, 77)
        XCTAssertEqual(config.layer_norm_eps, 1e-5)
        let dpm = try ConfigFile.decode(DPMSolverMultistepSchedulerConfig.self,
                                        from: try write(#"{"lambda_min_clipped": -Infinity, "note": "-Infinity stays a string"}"#, "s.json"))
        XCTAssertEqual(dpm.lambda_min_clipped, -.infinity)
        XCTAssertEqual(dpm.timestep_spacing, .linspace)
        // Any scheduler's config read as DDIM's, like DDIMScheduler.from_config: missing keys take DDIM's defaults.
        let ddim = try ConfigFile.decode(DDIMSchedulerConfig.self, from: try write(#"""
            {"_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
             "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1,
             "trained_betas": null}
            """#, "scheduler/scheduler_config.json"))
        XCTAssertEqual(ddim.steps_offset, 1)
        XCTAssertTrue(ddim.clip_sample)
        XCTAssertEqual(ddim.prediction_type, .epsilon)
        XCTAssertNil(ddim.trained_betas)
    }

    func testConfigErrorsNameFileAndKey() throws {
        let bad = try write(#"{"hidden_size": 1024,"#, "broken/config.json")
        XCTAssertThrowsError(try ConfigFile.decode(CLIPTextConfig.self, from: bad)) { error in
            XCTAssertTrue("\(error)".contains("broken/config.json") && "\(error)".contains("not valid JSON"), "\(error)")
        }
        let wrongType = try write(#"{"hidden_size": "big"}"#, "wrong/config.json")
        XCTAssertThrowsError(try ConfigFile.decode(CLIPTextConfig.self, from: wrongType)) { error in
            let e = error as? LoadingError
            XCTAssertEqual(e?.file, wrongType.path)
            XCTAssertEqual(e?.key, "hidden_size")
            XCTAssertTrue("\(error)".contains("wrong/config.json: 'hidden_size': expected an integer"), "\(error)")
        }
        let spacing = try write(#"{"timestep_spacing": "sideways"}"#, "s/scheduler_config.json")
        XCTAssertThrowsError(try DDIMScheduler(directory: spacing.deletingLastPathComponent())) { error in
            XCTAssertEqual((error as? LoadingError)?.key, "timestep_spacing", "\(error)")
        }
        let heads = try write(#"{"hidden_size": 30, "num_attention_heads": 4}"#, "heads/config.json")
        XCTAssertThrowsError(try CLIPTextConfig.load(heads.deletingLastPathComponent())) { error in
            XCTAssertEqual((error as? LoadingError)?.key, "num_attention_heads", "\(error)")
        }
        XCTAssertThrowsError(try ConfigFile.decode(CLIPTextConfig.self, from: directory.appendingPathComponent("none.json"))) { error in
            XCTAssertTrue("\(error)".contains("none.json"), "\(error)")
        }
    }

    func testModelFolder() throws {
        _ = try write(#"""
            {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.27.2", "feature_extractor": [null, null],
             "requires_safety_checker": false, "safety_checker": [null, null], "scheduler": ["diffusers", "DDIMScheduler"],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
            """#, "model_index.json")
        _ = try write("{}", "unet/config.json")
        let folder = try ModelFolder(url: directory)
        XCTAssertEqual(folder.pipelineClass, "StableDiffusionPipeline")
        XCTAssertEqual(folder.components.keys.sorted(), ["scheduler", "text_encoder", "tokenizer", "unet", "vae"])
        XCTAssertEqual(folder.components["unet"], ModelFolder.Component(library: "diffusers", className: "UNet2DConditionModel"))
        XCTAssertEqual(try folder.unet.lastPathComponent, "unet")
        XCTAssertEqual(try folder.configURL("unet").lastPathComponent, "config.json")
        XCTAssertThrowsError(try folder.vae) { error in XCTAssertTrue("\(error)".contains("vae"), "\(error)") }
        XCTAssertThrowsError(try folder.directory("safety_checker")) { error in
            XCTAssertTrue("\(error)".contains("model_index.json") && "\(error)".contains("safety_checker"), "\(error)")
        }
        XCTAssertThrowsError(try ModelFolder(url: directory.appendingPathComponent("unet"))) { error in
            XCTAssertTrue("\(error)".contains("model_index.json"), "\(error)")
        }
    }

    // MARK: Weights

    final class Small: Module {
        let proj: Linear
        let norm: LayerNorm
        init(_ features: Int = 3) throws {
            proj = try Linear(features, 2)
            norm = try LayerNorm(2)
            super.init()
        }
    }

    private func weights(_ changes: (inout [String: Tensor]) throws -> Void = { _ in }) throws -> [String: Tensor] {
        var state: [String: Tensor] = [
            "proj.weight": try Tensor([Float](repeating: 0.5, count: 6), shape: [2, 3]),
            "proj.bias": try Tensor([Float(1), 2]),
            "norm.weight": try Tensor([Float(3), 4]),
            "norm.bias": try Tensor([Float(5), 6]),
        ]
        try changes(&state)
        return state
    }

    func testLoadsSafetensorsStrictlyWithDtypeAndPreference() throws {
        let folder = directory.appendingPathComponent("unet")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        // fp16 variant only: used, converted to the module's float32.
        try Safetensors.save(try weights().mapValues { try $0.to(dtype: .float16) },
                             to: folder.appendingPathComponent("diffusion_pytorch_model.fp16.safetensors"))
        let model = try Small()
        try loadWeights(into: model, from: folder)
        XCTAssertEqual(model.proj.bias?.dtype, .float32)
        XCTAssertEqual(try model.norm.bias!.toArray(Float.self), [5, 6])
        // The full-precision file is preferred when both exist; dtype on request.
        try Safetensors.save(try weights { $0["norm.bias"] = try Tensor([Float(7), 8]) },
                             to: folder.appendingPathComponent("diffusion_pytorch_model.safetensors"))
        try loadWeights(into: model, from: folder, dtype: .bfloat16)
        XCTAssertEqual(model.proj.weight.dtype, .bfloat16)
        XCTAssertEqual(try model.norm.bias!.toArray(Float.self), [7, 8])
    }

    func testWeightErrorsNameFileKeyAndShapes() throws {
        let file = directory.appendingPathComponent("model.safetensors")
        let model = try Small()
        let before = try model.proj.weight.toArray(Float.self)

        try Safetensors.save(try weights { $0["proj.weight"] = try Tensor.zeros([3, 2]) }, to: file)
        XCTAssertThrowsError(try loadWeights(into: model, from: directory)) { error in
            let e = error as? LoadingError
            XCTAssertEqual(e?.file, file.path)
            XCTAssertEqual(e?.key, "proj.weight")
            XCTAssertTrue("\(error)".contains("the model has [2, 3], the file has [3, 2]"), "\(error)")
        }
        XCTAssertEqual(try model.proj.weight.toArray(Float.self), before, "a failed load must change nothing")

        try Safetensors.save(try weights { $0["norm.bias"] = nil }, to: file)
        XCTAssertThrowsError(try loadWeights(into: model, from: directory)) { error in
            XCTAssertEqual((error as? LoadingError)?.key, "norm.bias")
            XCTAssertTrue("\(error)".contains("model.safetensors") && "\(error)".contains("missing from the file: norm.bias"), "\(error)")
        }

        try Safetensors.save(try weights { $0["extra.weight"] = try Tensor.zeros([1]) }, to: file)
        XCTAssertThrowsError(try loadWeights(into: model, from: directory)) { error in
            XCTAssertTrue("\(error)".contains("not in the model: extra.weight"), "\(error)")
        }
        // …which `ignoring` skips, and `rename` maps old names.
        try loadWeights(into: model, from: directory, ignoring: ["extra.weight"])
        try Safetensors.save(try weights { $0["old_proj.weight"] = $0.removeValue(forKey: "proj.weight") }, to: file)
        try loadWeights(into: model, from: directory) { $0.replacingOccurrences(of: "old_proj.", with: "proj.") }
        XCTAssertEqual(try model.proj.weight.toArray(Float.self), [Float](repeating: 0.5, count: 6))

        // Truncated file: the safetensors reader's message, with the path.
        try Safetensors.save(try weights(), to: file)
        let data = try Data(contentsOf: file)
        try data.prefix(data.count - 5).write(to: file)
        XCTAssertThrowsError(try loadWeights(into: model, from: directory)) { error in
            XCTAssertTrue("\(error)".contains(file.path) && "\(error)".contains("data section"), "\(error)")
        }
        try FileManager.default.removeItem(at: file)
        XCTAssertThrowsError(try loadWeights(into: model, from: directory)) { error in
            XCTAssertTrue("\(error)".contains("no weights found"), "\(error)")
        }
    }

    /// transformers' .bin (a torch.save zip of an OrderedDict) through the restricted unpickler,
    /// with the position_ids buffer older files carry skipped.
    func testLoadsTorchSaveFile() throws {
        let folder = TestSupport.fixture("parity/text_encoder_quick_gelu_bin/model")
        let model = try CLIPTextModel.load(from: folder)
        XCTAssertEqual(model.config.hidden_act, "quick_gelu")
        XCTAssertEqual(model.text_model.encoder.layers.count, 3)
        XCTAssertThrowsError(try loadWeights(into: CLIPTextModel(config: model.config), from: folder)) { error in
            XCTAssertTrue("\(error)".contains("pytorch_model.bin") && "\(error)".contains("position_ids"), "\(error)")
        }
        XCTAssertEqual(model.namedParameters().map(\.0).prefix(3),
                       ["text_model.embeddings.token_embedding.weight", "text_model.embeddings.position_embedding.weight",
                        "text_model.encoder.layers.0.self_attn.q_proj.weight"])
    }
}
