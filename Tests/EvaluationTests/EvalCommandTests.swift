import BackdropTestSupport
import Datasets
import Experiments
import Foundation
import Geometry
import Media
import MultiView
import Torch
import Workflows
import XCTest

@testable import Evaluation

/// `backdrop train` → `backdrop eval` (model and baseline) → `backdrop table` on the tiny SD model
/// and synthetic rooms, through the executable, with the real FID Inception weights.
final class EvalCommandTests: XCTestCase {
    var workspace: URL!

    override func setUpWithError() throws {
        _ = try TestSupport.asset("models/fid_inception_nvidia.pt")
        let model = try TestSupport.tinyStableDiffusion()
        workspace = try TestSupport.temporaryDirectory()
        addTeardownBlock { [workspace] in try? FileManager.default.removeItem(at: workspace!) }
        // 10 rooms: the last one is the test split.
        _ = try SyntheticRooms.generate(into: workspace.appendingPathComponent("rooms"), options: .init(count: 10, seed: 5, faceSize: 64))
        let yaml = """
            name: eval_e2e
            model: {base: \(model.path)}
            dataset: {kind: synthrooms, root: rooms, resolution: 64, views: 8}
            caa: {pe_max_frequency: 16}
            training: {epochs: 1, max_steps: 2, checkpoint_every: 2, seed: 1, device: cpu}
            output_dir: run
            """
        try yaml.write(to: workspace.appendingPathComponent("eval.yaml"), atomically: true, encoding: .utf8)
    }

    @discardableResult
    func backdrop(_ arguments: [String], expectSuccess: Bool = true) throws -> (status: Int32, output: String) {
        let (status, output) = try TestSupport.runBackdrop(arguments, in: workspace)
        if expectSuccess { XCTAssertEqual(status, 0, "backdrop \(arguments.joined(separator: " ")):\n\(output)") }
        return (status, output)
    }

    func testTrainEvaluateAndTabulate() throws {
        let common = ["--registry", "runs.sqlite", "--threads", "2"]
        try backdrop(["train", "eval.yaml"] + common)
        let eval = ["eval", "--run", "eval_e2e", "--limit", "1", "--steps", "3", "--device", "cpu"] + common
        let first = try backdrop(eval)
        XCTAssertTrue(first.output.contains("0 reused, 1 generated"), first.output)
        XCTAssertTrue(first.output.contains("reference statistics written to"), first.output)
        // Again, now with a CLIP model (random weights in transformers' CLIPModel layout, a parity fixture).
        let clipModel = TestSupport.fixture("parity/clip_gelu/model")
        let again = try backdrop(eval + ["--clip", clipModel.path])
        XCTAssertTrue(again.output.contains("1 reused, 0 generated"), "a second call reads the views back:\n\(again.output)")
        XCTAssertTrue(again.output.contains("reference statistics read from"), again.output)
        try backdrop(eval + ["--baseline"])

        let registry = try RunRegistry(url: workspace.appendingPathComponent("runs.sqlite"))
        let evaluations = try registry.evaluations()
        let model = try XCTUnwrap(evaluations.last { $0.system == "model" })
        let baseline = try XCTUnwrap(evaluations.last { $0.system == "baseline" })
        let truth = try XCTUnwrap(evaluations.last { $0.system == "ground-truth" })
        XCTAssertEqual(model.count, 8)
        XCTAssertTrue(model.checkpoint?.hasSuffix("step-00000002") ?? false, "tied to the checkpoint: \(model.checkpoint ?? "nil")")
        XCTAssertNil(baseline.checkpoint)
        XCTAssertNil(baseline.clipScore)
        XCTAssertTrue(baseline.metricNotes[.clipScore]?.contains("not configured") ?? false)
        XCTAssertNil(model.metricNotes[.clipScore])
        for e in [model, baseline] {
            XCTAssertTrue(e.fid.map { $0.isFinite && $0 > 0 } ?? false, "\(e.system) FID \(String(describing: e.fid))")
            XCTAssertNil(e.isMean, "the NVIDIA archive has no classifier: IS must not be invented")
            XCTAssertTrue(e.metricNotes[.inceptionScore]?.contains("no 1008-way classifier") ?? false)
            XCTAssertEqual(try XCTUnwrap(e.consistencyRatio), try XCTUnwrap(e.consistencyPsnr) / XCTUnwrap(truth.consistencyPsnr),
                           accuracy: 1e-12)
        }
        XCTAssertEqual(model.fid, evaluations.filter { $0.system == "model" }.first?.fid, "reused views give the same FID")

        // The recorded consistency is the reference protocol's number on the stored view PNGs.
        let views = workspace.appendingPathComponent("run/eval/test/model-step-00000002")
        let scene = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: views.path).first { !$0.hasPrefix(".") })
        let pngs = try (0..<8).map { try Image(contentsOf: views.appendingPathComponent("\(scene)/view_\($0).png")).rgb8().tensor(.uint8) }
        // The stored views carry their cameras in the one cameras.json schema.
        let cameras = try CamerasFile.read(views.appendingPathComponent(scene))
        XCTAssertEqual(cameras.views.count, 8)
        for (i, view) in cameras.views.enumerated() { XCTAssertEqual(view.yawDeg, Double(i) * 45, accuracy: 1e-4) }
        XCTAssertEqual(cameras.yawOffsetDeg, 0)
        let file = workspace.appendingPathComponent("views.safetensors")
        try Safetensors.save(["views": Tensor.stack(pngs).unsqueeze(0), "yaws": Tensor((0..<8).map { Double($0) * 45 }, shape: [8]),
                              "fov": Tensor([90.0], shape: [1])], to: file)
        let reference = try TestSupport.runPythonTool("consistency_reference.py", [file.path])
        XCTAssertEqual(reference.status, 0, reference.output)
        let json = try JSONSerialization.jsonObject(with: Data(reference.output.utf8)) as? [String: Any]
        XCTAssertEqual(try XCTUnwrap(json?["mean"] as? Double), try XCTUnwrap(model.consistencyPsnr), accuracy: 1e-6)

        // The CLIP score pairs each stored view with its own dataset prompt (per-view captions).
        let sample = try Matterport3D(root: workspace.appendingPathComponent("rooms"), split: "test",
                                      views: ViewOptions(resolution: 64)).sample(at: 0, yawOffset: 0)
        let expected = try CLIPScorer(modelDirectory: clipModel).panoramaScore(views: [pngs], prompts: [sample.prompts]).mean
        XCTAssertEqual(try XCTUnwrap(model.clipScore), expected, accuracy: 1e-6)

        let table = try backdrop(["table", "--registry", "runs.sqlite", "--format", "csv", "--out", "tables"])
        let csvURL = workspace.appendingPathComponent("tables/table1.csv")
        let csv = try String(contentsOf: csvURL, encoding: .utf8)
        XCTAssertTrue(table.output.hasPrefix(csv), "prints what it writes")
        let modelLine = try XCTUnwrap(csv.split(separator: "\n").first { $0.hasPrefix("CAA (this project)") })
        XCTAssertTrue(modelLine.contains(",\(model.fid!),—,\(model.clipScore!),"), "FID and CS as recorded, IS missing: \(modelLine)")
        XCTAssertTrue(csv.contains("seed paper: model"))
        for name in ["table1.md", "table1.tex"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: workspace.appendingPathComponent("tables/\(name)").path))
        }
    }

    /// `backdrop publish` (fp16 weights and a manifest) → `backdrop paper` on the release: a smoke-sized
    /// miniature Table I and contact sheet from a folder of shipped models, no run folder needed.
    func testPublishedReleaseGivesThePaperTable() throws {
        let common = ["--registry", "runs.sqlite", "--threads", "2"]
        try backdrop(["train", "eval.yaml"] + common)
        let release = workspace.appendingPathComponent("release")
        try FileManager.default.createDirectory(at: release, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: TestSupport.tinyStableDiffusion(), to: release.appendingPathComponent("sd"))
        try FileManager.default.copyItem(at: TestSupport.fixture("parity/clip_gelu/model"), to: release.appendingPathComponent("clip"))
        let published = try backdrop(["publish", "--run", "eval_e2e", "--config", "eval.yaml", "--base-model", "sd",
                                      "--out", "release/caa", "--registry", "runs.sqlite"])
        XCTAssertTrue(published.output.contains("step 2"), published.output)

        // The manifest names what trained the weights; the fp16 file holds the checkpoint's weights rounded.
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: release.appendingPathComponent("caa/manifest.json"))) as? [String: Any]
        XCTAssertEqual(manifest?["steps"] as? Int, 2)
        XCTAssertEqual(manifest?["dtype"] as? String, "float16")
        XCTAssertEqual(manifest?["config_file"] as? String, "eval.yaml")
        XCTAssertEqual((manifest?["dataset"] as? [String: Any])?["seed"] as? Int, 5)
        XCTAssertEqual((manifest?["dataset"] as? [String: Any])?["count"] as? Int, 10)
        XCTAssertEqual((manifest?["config"] as? [String: Any])?["name"] as? String, "eval_e2e")
        XCTAssertNotNil(manifest?["wall_time_seconds"] as? Double)
        let caaFile = release.appendingPathComponent("caa/caa.safetensors")
        let size = try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: caaFile.path)[.size] as? Int)
        XCTAssertEqual((manifest?["files"] as? [String: Int])?["caa.safetensors"], size)
        let shipped = try SafetensorsFile(url: caaFile).loadAll()
        let trained = try SafetensorsFile(url: workspace.appendingPathComponent("run/checkpoints/step-00000002/weights.safetensors")).loadAll()
        XCTAssertEqual(Set(shipped.keys), Set(trained.keys))
        for (key, value) in trained where value.dtype == .float32 && !key.hasSuffix("freq_bands") {
            XCTAssertEqual(shipped[key]?.dtype, .float16, key)
            let error = try (shipped[key]!.to(dtype: .float32) - value).abs().max().item()
            let scale = try value.abs().max().item()
            XCTAssertLessThanOrEqual(error, scale * 1e-3, "\(key): fp16 rounding only")
        }

        let paper = try backdrop(["paper", "--release", "release", "--dataset", "rooms", "--panoramas", "1", "--steps", "2",
                                  "--out", "paper", "--device", "cpu"] + common)
        let csv = try String(contentsOf: workspace.appendingPathComponent("paper/table1.csv"), encoding: .utf8)
        let rows = csv.split(separator: "\n")
        for system in ["CAA (this project)", "SD, independent views (this project)"] {
            let line = try XCTUnwrap(rows.first { $0.hasPrefix(system) || $0.hasPrefix("\"\(system)") }, csv)
            XCTAssertTrue(line.contains("miniature (synthetic rooms), run miniature"), "labelled as the miniature: \(line)")
            XCTAssertTrue(line.contains("8 views"), String(line))
        }
        XCTAssertTrue(csv.contains("seed paper: model"), "beside the published rows")
        XCTAssertTrue(paper.output.contains("contact-sheet.png"), paper.output)
        let registry = try RunRegistry(url: workspace.appendingPathComponent("runs.sqlite"))
        let run = try XCTUnwrap(try registry.latestRun(named: "miniature"))
        XCTAssertEqual(run.status, "released")
        let model = try XCTUnwrap(try registry.evaluations(runID: run.id).last { $0.system == "model" })
        XCTAssertEqual(model.checkpoint, release.appendingPathComponent("caa/caa.safetensors").standardizedFileURL.path)
        XCTAssertNotNil(model.clipScore, "the release's CLIP scores the views")
        // The real views through the release's VAE: recorded once, tabled, and the reference's number
        // (diffusers' AutoencoderKL, then the consistency reference) on the same views.
        let throughVAE = try registry.evaluations(runID: run.id).filter { $0.system == "ground-truth-vae" }
        XCTAssertEqual(throughVAE.count, 1)
        let truth = try XCTUnwrap(try registry.evaluations(runID: run.id).last { $0.system == "ground-truth" })
        let roundTrip = try XCTUnwrap(throughVAE.first?.consistencyPsnr)
        XCTAssertEqual(try XCTUnwrap(throughVAE.first?.consistencyRatio), roundTrip / (try XCTUnwrap(truth.consistencyPsnr)), accuracy: 1e-12)
        XCTAssertTrue(rows.contains { $0.hasPrefix("ground-truth views through the VAE") }, csv)
        let sample = try Matterport3D(root: workspace.appendingPathComponent("rooms"), split: "test",
                                      views: ViewOptions(resolution: 64)).sample(at: 0, yawOffset: 0)
        let realViews = workspace.appendingPathComponent("real.safetensors"), decoded = workspace.appendingPathComponent("decoded.safetensors")
        try Safetensors.save(["views": sample.images.signedToUInt8().unsqueeze(0), "yaws": Tensor(sample.yaws, shape: [8]),
                              "fov": Tensor([90.0], shape: [1])], to: realViews)
        let python = try TestSupport.runPythonTool("vae_round_trip_reference.py",
                                                   [realViews.path, release.appendingPathComponent("sd/vae").path, decoded.path])
        XCTAssertEqual(python.status, 0, python.output)
        let reference = try TestSupport.runPythonTool("consistency_reference.py", [decoded.path])
        XCTAssertEqual(reference.status, 0, reference.output)
        let json = try JSONSerialization.jsonObject(with: Data(reference.output.utf8)) as? [String: Any]
        // Float rounding can move a pixel by one level; a dB of difference would be a different protocol.
        print("consistency through the VAE: Backdrop \(roundTrip) dB, diffusers reference \(json?["mean"] ?? "-") dB")
        XCTAssertEqual(try XCTUnwrap(json?["mean"] as? Double), roundTrip, accuracy: 0.02)

        // The sheet: per scene the baseline's panorama above CAA's.
        let sheet = try Image(contentsOf: workspace.appendingPathComponent("paper/contact-sheet.png")).tensor(.uint8)
        let panorama = try Image(contentsOf: workspace.appendingPathComponent("paper/run/eval/test/baseline")
            .appendingPathComponent(FileManager.default.contentsOfDirectory(atPath: workspace.appendingPathComponent("paper/run/eval/test/baseline").path)
                .first { !$0.hasPrefix(".") }!).appendingPathComponent("panorama.png")).tensor(.uint8)
        XCTAssertEqual(sheet.shape, [3, 2 * panorama.shape[1], panorama.shape[2]])
        let prompts = try String(contentsOf: workspace.appendingPathComponent("paper/contact-sheet.txt"), encoding: .utf8)
        XCTAssertTrue(prompts.contains(" wall"), prompts)

        // Again: the registered release and its views are reused.
        let again = try backdrop(["paper", "--release", "release", "--dataset", "rooms", "--panoramas", "1", "--steps", "2",
                                  "--out", "paper", "--device", "cpu"] + common)
        XCTAssertEqual(try registry.runs().filter { $0.name == "miniature" }.count, 1, again.output)
        XCTAssertTrue(again.output.contains("baseline: scenes 1 reused, 0 generated"), again.output)
        XCTAssertTrue(again.output.contains("CAA: scenes 1 reused, 0 generated"), again.output)
        // New weights under the same path (a republished SD) make the views again.
        let vaeConfig = release.appendingPathComponent("sd/vae/config.json")
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: vaeConfig)) as? [String: Any])
        config["_republished"] = true
        try JSONSerialization.data(withJSONObject: config).write(to: vaeConfig)
        let republished = try backdrop(["paper", "--release", "release", "--dataset", "rooms", "--panoramas", "1", "--steps", "2",
                                        "--out", "paper", "--device", "cpu"] + common)
        XCTAssertTrue(republished.output.contains("baseline: scenes 0 reused, 1 generated"), republished.output)
        XCTAssertTrue(republished.output.contains("CAA: scenes 0 reused, 1 generated"), republished.output)

        // One noise mean per panorama: the same release under a run name of its own, views of its own.
        let evaluationsBefore = try registry.evaluations(runID: run.id).count
        let shared = try backdrop(["paper", "--release", "release", "--dataset", "rooms", "--panoramas", "1", "--steps", "2",
                                   "--noise", "shared-mean", "--out", "paper-shared", "--device", "cpu"] + common)
        let sharedRun = try XCTUnwrap(try registry.latestRun(named: "miniature-shared-mean"), shared.output)
        XCTAssertEqual(try registry.evaluations(runID: sharedRun.id).filter { $0.system == "model" }.count, 1)
        XCTAssertEqual(try registry.evaluations(runID: run.id).count, evaluationsBefore, "the independent protocol's rows are left alone")
        let sharedViews = workspace.appendingPathComponent("paper-shared/run/eval/test/model-caa-shared-mean")
        let scene = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: sharedViews.path).first { !$0.hasPrefix(".") })
        let settings = try JSONDecoder().decode(GeneratedViewStore.Settings.self,
                                                from: Data(contentsOf: sharedViews.appendingPathComponent(scene).appendingPathComponent("generation.json")))
        XCTAssertEqual(settings.noise, .sharedMean)
        let independentView = try Image(contentsOf: workspace.appendingPathComponent("paper/run/eval/test/model-caa")
            .appendingPathComponent(scene).appendingPathComponent("view_3.png")).tensor(.uint8)
        let sharedView = try Image(contentsOf: sharedViews.appendingPathComponent(scene).appendingPathComponent("view_3.png")).tensor(.uint8)
        let sameView = try independentView.eq(sharedView).all().to(dtype: .float64).item()
        XCTAssertEqual(sameView, 0, "view 3 drew its noise mean from view 0")
        let sharedPrompts = try String(contentsOf: workspace.appendingPathComponent("paper-shared/contact-sheet.txt"), encoding: .utf8)
        XCTAssertTrue(sharedPrompts.contains("initial noise: shared-mean"), sharedPrompts)
    }

    /// `backdrop eval` of a text-to-image run on the shipped miniature SD, with `--vae-round-trip`: the
    /// real views through the model's VAE are diffusers' round trip of them, and they score as the
    /// real views nearly do, far better than views drawn in two DDIM steps.
    func testTextToImageEvaluationScoresTheRealViewsThroughTheVAE() throws {
        let release = TestSupport.repositoryRoot.appendingPathComponent("models/miniature")
        let yaml = """
            name: t2i_eval
            task: text_to_image
            model: {base: \(release.appendingPathComponent("sd").path)}
            dataset: {kind: synthrooms, root: rooms, resolution: 64, views: 8}
            text_to_image: {train_text_encoder: false}
            training: {epochs: 1, max_steps: 1, batch_size: 1, checkpoint_every: 1, seed: 1, device: cpu}
            output_dir: t2i
            """
        try yaml.write(to: workspace.appendingPathComponent("t2i.yaml"), atomically: true, encoding: .utf8)
        let common = ["--registry", "runs.sqlite", "--threads", "2"]
        try backdrop(["train", "t2i.yaml"] + common)
        let eval = try backdrop(["eval", "--run", "t2i_eval", "--limit", "1", "--steps", "2", "--guidance", "5", "--vae-round-trip",
                                 "--clip", release.appendingPathComponent("clip").path, "--device", "cpu"] + common)
        func number(after prefix: String) throws -> Double {
            let line = try XCTUnwrap(eval.output.split(separator: "\n").first { $0.contains(prefix) }, eval.output)
            let tail = line[line.range(of: prefix)!.upperBound...].drop { $0 == " " }
            return try XCTUnwrap(Double(tail.prefix { !$0.isWhitespace && $0 != "," }), String(line))
        }
        let generatedFID = try number(after: "FID  "), throughVAEFID = try number(after: "after the VAE: FID")
        XCTAssertLessThan(throughVAEFID, generatedFID / 2, "reconstructions are far closer to the real views than 2-step drawings")

        // The stored reconstructions are diffusers' round trip of the stored real views (a level for rounding).
        let folder = workspace.appendingPathComponent("t2i/eval/test")
        let real = try (0..<8).map { try Image(contentsOf: folder.appendingPathComponent(String(format: "real-1/view-%05d.png", $0))).tensor(.uint8) }
        let ours = try (0..<8).map {
            try Image(contentsOf: folder.appendingPathComponent(String(format: "vae-round-trip-model-1/view-%05d.png", $0))).tensor(.uint8)
        }
        let input = workspace.appendingPathComponent("real.safetensors"), decoded = workspace.appendingPathComponent("decoded.safetensors")
        try Safetensors.save(["views": Tensor.stack(real).unsqueeze(0)], to: input)
        let python = try TestSupport.runPythonTool("vae_round_trip_reference.py",
                                                   [input.path, release.appendingPathComponent("sd/vae").path, decoded.path])
        XCTAssertEqual(python.status, 0, python.output)
        let reference = try XCTUnwrap(try SafetensorsFile(url: decoded).loadAll()["views"]).to(dtype: .int32)
        let difference = try (Tensor.stack(ours).unsqueeze(0).to(dtype: .int32) - reference).abs().max().item()
        XCTAssertLessThanOrEqual(difference, 1, "Backdrop's round trip against diffusers'")
        XCTAssertGreaterThan(try (Tensor.stack(ours).to(dtype: .int32) - Tensor.stack(real).to(dtype: .int32)).abs().max().item(), 1,
                             "the reconstructions are not the real views themselves")

        // Per wall colour: the CSV counts every view whose caption names one, and its columns add up
        // to the classifier's shares the report prints.
        let captions = try String(contentsOf: folder.appendingPathComponent("captions-1.txt"), encoding: .utf8)
        let named = captions.split(separator: "\n").filter { WallColourClassifier.label(caption: String($0)) != nil }.count
        XCTAssertGreaterThan(named, 0)
        let csv = try String(contentsOf: folder.appendingPathComponent("model-1-wall-colour.csv"), encoding: .utf8)
        let rows = csv.split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        XCTAssertEqual(rows.map { String($0[0]) }, WallColourClassifier.colours)
        func total(_ column: Int) throws -> Int { try rows.reduce(0) { $0 + (try XCTUnwrap(Int($1[column]), csv)) } }
        XCTAssertEqual(try total(1), named)
        let classifierLine = try XCTUnwrap(eval.output.split(separator: "\n").first { $0.hasSuffix("wall-band classifier") })
        XCTAssertTrue(classifierLine.contains(String(format: "(real views: %.1f %%)", 100 * Double(try total(2)) / Double(named))), String(classifierLine))
        XCTAssertTrue(classifierLine.contains(String(format: "%.1f %% (real", 100 * Double(try total(4)) / Double(named))), String(classifierLine))
        XCTAssertTrue(eval.output.contains(String(format: "%.1f %% classifier", 100 * Double(try total(3)) / Double(named))), eval.output)
    }

    /// A run trained on from a release (here CAA blocks from a shipped caa.safetensors) keeps that
    /// release's stages in its own manifest, even when it is published over the same folder.
    func testARunTrainedOnFromAReleaseKeepsItsStages() throws {
        let common = ["--registry", "runs.sqlite", "--threads", "2"]
        try backdrop(["train", "eval.yaml"] + common)
        try backdrop(["publish", "--run", "eval_e2e", "--config", "eval.yaml", "--out", "release/caa", "--registry", "runs.sqlite"])
        let yaml = try String(contentsOf: workspace.appendingPathComponent("eval.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "name: eval_e2e", with: "name: eval_more")
            .replacingOccurrences(of: "caa: {pe_max_frequency: 16}", with: "caa: {pe_max_frequency: 16, init_weights: release/caa/caa.safetensors}")
            .replacingOccurrences(of: "output_dir: run", with: "output_dir: run-more")
            .replacingOccurrences(of: "max_steps: 2, checkpoint_every: 2", with: "max_steps: 1, checkpoint_every: 1")
        try yaml.write(to: workspace.appendingPathComponent("more.yaml"), atomically: true, encoding: .utf8)
        try backdrop(["train", "more.yaml"] + common)
        // Named again by --earlier, the first run is still listed once.
        try backdrop(["publish", "--run", "eval_more", "--config", "more.yaml", "--out", "release/caa", "--registry", "runs.sqlite",
                      "--earlier", "eval_e2e=eval.yaml"])

        let manifest = try ModelRelease.manifest(at: workspace.appendingPathComponent("release/caa"))
        XCTAssertEqual(manifest.run.name, "eval_more")
        XCTAssertEqual(manifest.run.steps, 1)
        XCTAssertEqual(manifest.earlierStages.map(\.name), ["eval_e2e"], "the release it started from")
        XCTAssertEqual(manifest.earlierStages.first?.steps, 2)
        XCTAssertEqual(manifest.earlierStages.first?.configFile, "eval.yaml")
        // A run from scratch inherits nothing.
        try backdrop(["publish", "--run", "eval_e2e", "--config", "eval.yaml", "--out", "release/fresh", "--registry", "runs.sqlite"])
        XCTAssertEqual(try ModelRelease.manifest(at: workspace.appendingPathComponent("release/fresh")).earlierStages, [])
    }

    /// A run whose base is another run's `model` folder lists that run, and what that run started from,
    /// as earlier stages; a folder trained from a release does not carry the release's manifest.
    func testARunTrainedOnFromAnotherRunsFolderListsThatRun() throws {
        let common = ["--registry", "runs.sqlite", "--threads", "2"]
        func config(_ name: String, task: String, base: String, extra: String) throws {
            let yaml = """
                name: \(name)
                task: \(task)
                model: {base: \(base)}
                dataset: {kind: synthrooms, root: rooms, resolution: 64, views: 8}
                \(extra)
                training: {epochs: 1, max_steps: 1, batch_size: 1, checkpoint_every: 1, seed: 1, device: cpu}
                output_dir: \(name)
                """
            try yaml.write(to: workspace.appendingPathComponent("\(name).yaml"), atomically: true, encoding: .utf8)
            try backdrop(["train", "\(name).yaml"] + common)
        }
        let decoder = "autoencoder: {trainable: decoder, reconstruction: mse, decode: mean}"
        try config("decoder_a", task: "autoencoder", base: try TestSupport.tinyStableDiffusion().path, extra: decoder)
        try backdrop(["publish", "--run", "decoder_a", "--config", "decoder_a.yaml", "--out", "release/sd", "--registry", "runs.sqlite"])
        try config("decoder_b", task: "autoencoder", base: "release/sd", extra: decoder)
        XCTAssertFalse(FileManager.default.fileExists(atPath: workspace.appendingPathComponent("decoder_b/model/manifest.json").path),
                       "the release's manifest stays with the release")
        try config("unet_c", task: "text_to_image", base: "decoder_b/model", extra: "text_to_image: {train_text_encoder: false}")
        try backdrop(["publish", "--run", "unet_c", "--config", "unet_c.yaml", "--out", "release/sd", "--registry", "runs.sqlite",
                      "--earlier", "decoder_b=decoder_b.yaml"])

        let manifest = try ModelRelease.manifest(at: workspace.appendingPathComponent("release/sd"))
        XCTAssertEqual(manifest.run.name, "unet_c")
        XCTAssertEqual(manifest.earlierStages.map(\.name), ["decoder_b", "decoder_a"], "the run it started from, then that run's release")
        XCTAssertEqual(manifest.earlierStages.map(\.configFile), ["decoder_b.yaml", "decoder_a.yaml"])
        XCTAssertEqual(manifest.earlierStages.map(\.task), ["autoencoder", "autoencoder"])
    }

    func testBadInputNamesTheCulprit() throws {
        let unknown = try backdrop(["eval", "--run", "nope", "--registry", "runs.sqlite"], expectSuccess: false)
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.output.contains("no run named 'nope'") && unknown.output.contains("runs.sqlite"), unknown.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: workspace.appendingPathComponent("runs.sqlite").path),
                       "a read-only command creates no registry")
        try backdrop(["train", "eval.yaml", "--registry", "runs.sqlite", "--threads", "2"])
        // The split is a typed option: an unknown one is refused with the allowed values, before any work.
        let split = try backdrop(["eval", "--run", "eval_e2e", "--split", "val", "--registry", "runs.sqlite"], expectSuccess: false)
        XCTAssertNotEqual(split.status, 0)
        XCTAssertTrue(split.output.contains("'val'") && split.output.contains("'train'") && split.output.contains("'test'"),
                      split.output)
        let weights = try backdrop(["eval", "--run", "eval_e2e", "--inception", "missing.pt", "--registry", "runs.sqlite",
                                    "--limit", "1", "--steps", "1", "--device", "cpu"], expectSuccess: false)
        XCTAssertTrue(weights.output.contains("missing.pt"), weights.output)
        let clip = try backdrop(["eval", "--run", "eval_e2e", "--clip", "no-clip", "--registry", "runs.sqlite"], expectSuccess: false)
        XCTAssertTrue(clip.output.contains("--clip") && clip.output.contains("no-clip/config.json"), clip.output)
    }
}
