import BackdropTestSupport
import Evaluation
import Foundation
import Geometry
import Parity
import StableDiffusion
import Torch
import Workflows
import XCTest

@testable import MultiView

/// The miniature Backdrop ships under models/miniature (docs/models.md#shipped-weights): within its
/// size budget, each part with a manifest, a diffusers-compatible SD that diffusers runs to the same
/// image, CAA weights that fit it, and a CLIP that scores.
final class ShippedModelTests: XCTestCase {
    let release = TestSupport.repositoryRoot.appendingPathComponent("models/miniature")

    func manifest(_ part: String) throws -> [String: Any] {
        let url = release.appendingPathComponent(part).appendingPathComponent("manifest.json")
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any], url.path)
    }

    func testManifestsNameWhatTrainedEachPartWithinTheBudget() throws {
        var bytes = 0
        for part in ["sd", "clip", "caa"] {
            let m = try manifest(part)
            for key in ["config", "config_file", "dataset", "steps", "wall_time_seconds", "git_commit", "files"] {
                XCTAssertNotNil(m[key], "\(part)/manifest.json lacks \(key)")
            }
            XCTAssertEqual(m["dtype"] as? String, "float16", part)
            XCTAssertGreaterThan(m["steps"] as? Int ?? 0, 0, part)
            let files = try XCTUnwrap(m["files"] as? [String: Int])
            for (file, size) in files {
                let url = release.appendingPathComponent(part).appendingPathComponent(file)
                let actual = try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int
                XCTAssertEqual(actual, size, "\(part)/\(file) is not the file the manifest lists")
                bytes += size
            }
        }
        XCTAssertLessThanOrEqual(bytes, 60 * 1_048_576, "models/miniature holds \(bytes) bytes")
        // The SD folder names a run for each of its trained parts: the VAE it was trained on top of (stage
        // 1b, a run folder), the UNet's earlier stages (releases themselves), its text encoder (the
        // in-domain CLIP's tower), the VAE's decoder fine-tuning, the UNet's first stage and the VAE's first.
        let sd = try manifest("sd")
        let stages = try XCTUnwrap(sd["earlier_stages"] as? [[String: Any]])
        XCTAssertEqual(sd["task"] as? String, "text_to_image")
        let t2i = try XCTUnwrap((sd["config"] as? [String: Any])?["text_to_image"] as? [String: Any])
        XCTAssertEqual(t2i["train_text_encoder"] as? Bool, false)
        XCTAssertEqual(stages.map { $0["task"] as? String },
                       ["autoencoder", "text_to_image", "text_to_image", "text_to_image", "clip", "autoencoder", "text_to_image",
                        "autoencoder"],
                       "the SD folder's parts name their runs")
        let caa = try manifest("caa")
        let caaStages = try XCTUnwrap(caa["earlier_stages"] as? [[String: Any]])
        XCTAssertEqual(caaStages.map { $0["task"] as? String }, Array(repeating: "caa", count: 6), "the blocks name the runs they started from")
        // The last stage trained with the tone loss (docs/models.md#tone-loss), its five before without.
        XCTAssertEqual(((caa["config"] as? [String: Any])?["caa"] as? [String: Any])?["tone_loss_weight"] as? Double, 64)
    }

    /// The shipped SD's text encoder is the shipped CLIP's text tower, tensor for tensor (both stored
    /// in fp16 from the same fp32 weights), so the CLIP score reads captions as the generator does.
    func testTheSDTextEncoderIsTheShippedCLIPsTextTower() throws {
        let encoder = try CLIPTextModel.load(from: release.appendingPathComponent("sd/text_encoder"))
        let clip = try CLIPModel.load(from: release.appendingPathComponent("clip"))
        let tower = clip.stateDict().filter { $0.key.hasPrefix("text_model.") }
        XCTAssertEqual(Set(encoder.stateDict().keys), Set(tower.keys))
        for (name, tensor) in encoder.stateDict() {
            XCTAssertEqual(try TestSupport.maxAbsDifference(tensor, XCTUnwrap(tower[name])), 0, name)
        }
        XCTAssertEqual(encoder.config.hidden_act, clip.config.text_config.hidden_act)
    }

    /// diffusers' StableDiffusionPipeline loads the shipped folder and, from the same initial latents,
    /// draws the same image as Backdrop (tools/make_pipeline_case.py + `backdrop parity`).
    func testDiffusersDrawsTheSameImageFromTheShippedSD() throws {
        let caseFolder = try TestSupport.temporaryDirectory().appendingPathComponent("shipped-case")
        addTeardownBlock { try? FileManager.default.removeItem(at: caseFolder.deletingLastPathComponent()) }
        let (status, output) = try TestSupport.runPythonTool("make_pipeline_case.py", [
            "--model", release.appendingPathComponent("sd").path, "--out", caseFolder.path, "--steps", "10", "--guidance", "5",
            "--prompt", "a bedroom with a pale blue wall and a window on the left"])
        XCTAssertEqual(status, 0, output)
        let report = Parity.run(caseFolder)
        XCTAssertNil(report.error)
        XCTAssertEqual(report.tensors.map(\.name).sorted(), ["final_latents", "image"])
        for t in report.tensors { XCTAssertTrue(t.passed, "\(t.name): max-abs \(t.maxAbs)") }
    }

    /// The shipped CAA blocks load strictly into the shipped SD and draw 8 finite views.
    func testShippedCAAGeneratesAPanorama() throws {
        let source = PanoramaSource.weights(model: release.appendingPathComponent("sd"),
                                            caa: release.appendingPathComponent("caa/caa.safetensors"),
                                            layout: try ViewLayout.horizon(count: 8, fov: 90, resolution: 64), neighbours: .ring)
        let generator = try PanoramaGenerator.load(source, baseline: false, device: .cpu)
        let result = try generator.generate(prompts: ["a kitchen with a white wall"], steps: 3, guidanceScale: 5, seed: 0)
        XCTAssertEqual(result.views.shape, [8, 3, 64, 64])
        XCTAssertEqual(try result.views.isfinite().all().to(dtype: .float64).item(), 1, "finite views")
        let clip = try CLIPScorer(modelDirectory: release.appendingPathComponent("clip"))
        let score = try clip.score(images: [result.views.select(dim: 0, index: 0).signedToUInt8()], prompts: ["a kitchen with a white wall"])
        XCTAssertTrue(score.mean.isFinite)
    }

    /// What the shipped blocks are for, on two prompts: the shipped CAA's neighbouring views agree
    /// far more than the same SD's independent views (Table I: +11 dB). And on 16² latents a view's
    /// noise mean sets its tone (docs/models.md#initial-noise): drawing the views' means once per
    /// panorama makes the independent views' mean colours far less spread.
    func testTheShippedCAAsViewsAgreeAndASharedNoiseMeanEvensIndependentViewsTones() throws {
        let layout = try ViewLayout.horizon(count: 8, fov: 90, resolution: 64)
        let source = PanoramaSource.weights(model: release.appendingPathComponent("sd"),
                                            caa: release.appendingPathComponent("caa/caa.safetensors"), layout: layout, neighbours: .ring)
        let prompts = ["a bedroom with a cream wall and a window on the left", "a kitchen with a pale blue wall and a white door"]
        /// Per prompt: the views' overlap PSNR, and the spread over views of each view's mean colour.
        func measure(_ generator: PanoramaGenerator, _ noise: InitialNoise) throws -> (psnr: Double, toneSpread: Double) {
            let scenes = try prompts.enumerated().map { seed, prompt in
                let views = try generator.generate(prompts: [prompt], steps: 12, guidanceScale: 5, seed: UInt64(seed), noise: noise).views
                let psnr = try ViewConsistency.scenePSNR(views: views.signedToUInt8(), intrinsics: layout.intrinsicsTensor(),
                                                         rotations: layout.rotationsTensor())
                let spread = try views.to(dtype: .float64).mean(dims: [2, 3]).std(dims: [0]).mean().item()
                return (psnr, spread)
            }
            return (scenes.map(\.0).reduce(0, +) / 2, scenes.map(\.1).reduce(0, +) / 2)
        }
        let caa = try measure(PanoramaGenerator.load(source, baseline: false, device: .cpu), .independent)
        let baseline = try PanoramaGenerator.load(source, baseline: true, device: .cpu)
        let (independent, shared) = (try measure(baseline, .independent), try measure(baseline, .sharedMean))
        print("CAA \(caa), independent views \(independent), independent views with a shared noise mean \(shared)")
        XCTAssertGreaterThan(caa.psnr, independent.psnr + 5, "overlap PSNR: CAA \(caa.psnr) dB, independent views \(independent.psnr) dB")
        XCTAssertLessThan(shared.toneSpread, 0.6 * independent.toneSpread,
                          "spread of the views' mean colours: \(shared.toneSpread) with a shared noise mean, \(independent.toneSpread) without")
    }
}
