import BackdropTestSupport
import Datasets
import Evaluation
import Experiments
import Foundation
import Media
import Parity
import StableDiffusion
import Torch
import Workflows
import XCTest

@testable import MultiView

/// The training tasks beyond CAA on the tiny SD and synthetic rooms: each lowers its loss on a fixed
/// batch, writes a diffusers folder the loader reads back, and resumes with its EMA exactly.
final class TrainingTaskTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        Runtime.threads = 2
    }

    func workspace(task: String, extra: String = "", steps: Int, name: String = "task-test",
                   base: URL? = nil) throws -> (Run, RunRegistry) {
        let folder = try TestSupport.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        _ = try SyntheticRooms.generate(into: folder.appendingPathComponent("rooms"), options: .init(count: 4, seed: 5, faceSize: 64))
        let yaml = """
            name: \(name)
            task: \(task)
            model: {base: \(try (base ?? TestSupport.tinyStableDiffusion()).path)}
            dataset: {kind: synthrooms, root: rooms, resolution: 64, views: 8, yaw_offset: zero}
            optimizer: {lr: 1.0e-3}
            schedule: {kind: constant}
            training: {epochs: 100, max_steps: \(steps), batch_size: 1, checkpoint_every: 3, log_every: 1, seed: 2, device: cpu}
            output_dir: run
            \(extra)
            """
        let config = try RunConfig.parse(yaml: yaml, file: "\(name).yaml")
        return (Run(config: config, workingDirectory: folder), try RunRegistry(url: folder.appendingPathComponent("runs.sqlite")))
    }

    /// The task's loss on panorama 0 with the generator at a fixed state, so that the same latent
    /// samples, timesteps, noise and dropped captions are drawn each time.
    func fixedBatchLoss(_ trainer: Trainer, state: Tensor) throws -> Double {
        let saved = try trainer.generator.state()
        defer { try? trainer.generator.setState(saved) }
        try trainer.generator.setState(state)
        return try withNoGrad { try trainer.task.loss(indices: [0], epoch: 0).item() }
    }

    func assertTrainingLowersTheFixedBatchLoss(task: String, extra: String = "", base: URL? = nil,
                                               factor: Double) throws -> (Trainer, Run) {
        let (run, registry) = try workspace(task: task, extra: extra, steps: 12, base: base)
        let trainer = try Trainer(run: run, registry: registry)
        let state = try trainer.generator.state()
        let before = try fixedBatchLoss(trainer, state: state)
        let summary = try trainer.run()
        let after = try fixedBatchLoss(trainer, state: state)
        print("\(task): fixed-batch loss \(before) → \(after) after \(summary.steps) steps")
        XCTAssertEqual(summary.status, "finished")
        XCTAssertLessThan(after, factor * before, "\(task) did not learn")
        return (trainer, run)
    }

    func testAutoencoderLearnsAndWritesItsVAE() throws {
        let (trainer, run) = try assertTrainingLowersTheFixedBatchLoss(task: "autoencoder", factor: 0.7)
        let task = try XCTUnwrap(trainer.task as? AutoencoderTask)
        let folder = run.modelDirectory
        let written = try AutoencoderKL.load(from: ModelFolder(url: folder).vae)
        for (name, tensor) in task.vae.stateDict() {
            XCTAssertEqual(try TestSupport.maxAbsDifference(written.stateDict()[name]!, tensor), 0, name)
        }
        // Its scaling factor is measured on the training views (1 / σ of the latents), not copied.
        let baseScale = try AutoencoderKL.load(from: ModelFolder(url: TestSupport.tinyStableDiffusion()).vae).scalingFactor
        let sigma = try task.latentStandardDeviation()
        XCTAssertNotEqual(written.scalingFactor, baseScale)
        XCTAssertEqual(written.scalingFactor, 1 / sigma, accuracy: 0.05 / sigma, "σ of another draw of the same latents")
        // Reconstruction PSNR on the test views: the trained VAE beats the untrained one it started from.
        var evaluator = AutoencoderEvaluator(run: run, split: .test)
        evaluator.limit = 1
        let trained = try evaluator.evaluate()
        let untrainedRun = Run(config: run.config, workingDirectory: run.workingDirectory.appendingPathComponent("untrained"))
        try FileManager.default.createDirectory(at: untrainedRun.directory, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: untrainedRun.modelDirectory, withDestinationURL: TestSupport.tinyStableDiffusion())
        try FileManager.default.createSymbolicLink(at: untrainedRun.datasetRoot, withDestinationURL: run.datasetRoot)
        let untrained = try AutoencoderEvaluator(run: untrainedRun, split: .test).evaluate()
        print("reconstruction PSNR: untrained \(untrained.psnr) dB, trained \(trained.psnr) dB")
        XCTAssertEqual(trained.views, 8)
        XCTAssertGreaterThan(trained.psnr, untrained.psnr + 1)
        XCTAssertLessThanOrEqual(trained.worstPSNR, trained.psnr)
        let sheet = try Image(contentsOf: trained.contactSheet)
        XCTAssertEqual([sheet.height, sheet.width], [2 * 64, 8 * 64], "originals above reconstructions, 8 views wide")
        // The rest of the base folder is copied unchanged.
        let base = try TestSupport.tinyStableDiffusion()
        for file in ["unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors", "tokenizer/vocab.json"] {
            XCTAssertEqual(FileManager.default.contents(atPath: folder.appendingPathComponent(file).path),
                           FileManager.default.contents(atPath: base.appendingPathComponent(file).path), file)
        }
    }

    /// `autoencoder.trainable: decoder` (with the squared-error loss): the decoder learns, the encoder
    /// and its latents, and so the scaling factor, stay the base's bit for bit.
    func testDecoderFineTuningKeepsTheLatentSpace() throws {
        let (trainer, run) = try assertTrainingLowersTheFixedBatchLoss(
            task: "autoencoder", extra: "autoencoder: {trainable: decoder, reconstruction: mse}", factor: 0.8)
        let task = try XCTUnwrap(trainer.task as? AutoencoderTask)
        XCTAssertEqual(task.checkpointFormat, "autoencoder-decoder-v1")
        let baseVAE = try AutoencoderKL.load(from: ModelFolder(url: TestSupport.tinyStableDiffusion()).vae)
        let written = try AutoencoderKL.load(from: ModelFolder(url: run.modelDirectory).vae)
        XCTAssertEqual(written.scalingFactor, baseVAE.scalingFactor)
        let before = baseVAE.stateDict(), after = written.stateDict()
        var decoderMoved = 0.0
        for (name, tensor) in before {
            let difference = try TestSupport.maxAbsDifference(XCTUnwrap(after[name]), tensor)
            if name.hasPrefix("encoder.") || name.hasPrefix("quant_conv.") {
                XCTAssertEqual(difference, 0, "\(name) changed in a decoder-only run")
            } else {
                decoderMoved = max(decoderMoved, difference)
            }
        }
        XCTAssertGreaterThan(decoderMoved, 0)
        // Checkpoints hold the decoder side only, under the VAE's own keys.
        let saved = try SafetensorsFile(url: run.checkpoint(.latest).weights).loadAll()
        XCTAssertFalse(saved.isEmpty)
        XCTAssertTrue(saved.keys.allSatisfy { $0.hasPrefix("decoder.") || $0.hasPrefix("post_quant_conv.") }, "\(saved.keys.sorted())")
        XCTAssertEqual(saved.count, before.keys.filter { $0.hasPrefix("decoder.") || $0.hasPrefix("post_quant_conv.") }.count)
    }

    /// `autoencoder.decode: mean`: the decoder trains on the posterior's mean, the input a round trip
    /// gives it, so its loss takes no draw (the same under any generator state) and is the squared
    /// error of decoding the mean; fed draws (the default) the loss moves with the generator.
    func testDecoderFedThePosteriorMeanTakesNoDraw() throws {
        func losses(_ extra: String) throws -> (Double, Double, AutoencoderTask) {
            let (run, registry) = try workspace(task: "autoencoder", extra: extra, steps: 1)
            let trainer = try Trainer(run: run, registry: registry)
            let first = try trainer.generator.state()
            _ = try withNoGrad { try Tensor.randn([64], generator: trainer.generator) }
            return (try fixedBatchLoss(trainer, state: first), try fixedBatchLoss(trainer, state: trainer.generator.state()),
                    try XCTUnwrap(trainer.task as? AutoencoderTask))
        }
        let (meanA, meanB, task) = try losses("autoencoder: {trainable: decoder, reconstruction: mse, decode: mean}")
        XCTAssertEqual(meanA, meanB, "no draw")
        let views = try MultiViewSample.collate([task.context.samples([0], epoch: 0)[0]]).images.flatten(start: 0, end: 1)
        let expected = try withNoGrad {
            let error = try views.to(dtype: .float64) - task.vae.decode(task.vae.encode(views).mean).to(dtype: .float64)
            return try ((error * error).sum() / Double(views.size(0))).item()
        }
        XCTAssertEqual(meanA, expected, accuracy: 1e-9 * expected)
        let (sampleA, sampleB, _) = try losses("autoencoder: {trainable: decoder, reconstruction: mse}")
        XCTAssertNotEqual(sampleA, sampleB, "a draw of the posterior moves with the generator")
    }

    func testTextToImageLearnsAndWritesItsEMAModel() throws {
        let (trainer, run) = try assertTrainingLowersTheFixedBatchLoss(
            task: "text_to_image", extra: "text_to_image: {caption_dropout: 0.1, snr_gamma: 5}", factor: 0.9)
        // The written model holds the EMA of the UNet and the text encoder, which the pipeline loads.
        let pipeline = try StableDiffusionPipeline.load(from: run.modelDirectory)
        let task = try XCTUnwrap(trainer.task as? TextToImageTask)
        for (name, tensor) in task.unet.stateDict() {
            XCTAssertEqual(try TestSupport.maxAbsDifference(pipeline.unet.stateDict()[name]!, tensor), 0, name)
        }
        for (name, tensor) in task.textEncoder.stateDict() {
            XCTAssertEqual(try TestSupport.maxAbsDifference(pipeline.textEncoder.stateDict()[name]!, tensor), 0, name)
        }

        // Published (docs/models.md#shipped-weights): fp16 storage that loads back into fp32 modules
        // holding the same weights up to fp16 rounding, and a manifest naming the run.
        let release = run.directory.appendingPathComponent("release")
        let manifest = try ModelRelease.write(run: Run.named("task-test", registry: RunRegistry(url: run.workingDirectory
            .appendingPathComponent("runs.sqlite")), workingDirectory: run.workingDirectory), to: release, configFile: "t2i.yaml")
        XCTAssertEqual(manifest.run.steps, 12)
        XCTAssertEqual(manifest.run.task, "text_to_image")
        XCTAssertEqual(manifest.run.dataset?.seed, 5)
        XCTAssertNotNil(manifest.run.gitCommit)
        XCTAssertEqual(try ModelRelease.manifest(at: release), manifest)
        XCTAssertEqual(try SafetensorsFile(url: release.appendingPathComponent("unet/diffusion_pytorch_model.safetensors"))
            .loadAll()["conv_in.weight"]?.dtype, .float16)
        let shipped = try StableDiffusionPipeline.load(from: release)
        for (name, tensor) in task.unet.stateDict() where tensor.dtype == .float32 {
            let loaded = try XCTUnwrap(shipped.unet.stateDict()[name])
            XCTAssertEqual(loaded.dtype, .float32, name)
            XCTAssertLessThanOrEqual(try TestSupport.maxAbsDifference(loaded, tensor), try tensor.abs().max().item() * 1e-3, name)
        }
        XCTAssertThrowsError(try ModelRelease.write(run: run, to: release)) { error in
            XCTAssertTrue("\(error)".contains("has not finished"), "a run without its registry row is refused: \(error)")
        }
    }

    /// A random transformers `CLIPModel` folder whose text tower fits the tiny SD's UNet (width 32,
    /// the real vocabulary) but uses another activation than the tiny SD's text encoder (quick GELU).
    func writeTinyCLIP() throws -> URL {
        let folder = try TestSupport.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let config = """
            {"model_type": "clip", "projection_dim": 16,
             "text_config": {"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 2},
             "vision_config": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                               "image_size": 32, "patch_size": 16}}
            """
        try Data(config.utf8).write(to: folder.appendingPathComponent("config.json"))
        let clip = try CLIPModel(config: CLIPConfig.load(folder))
        try Safetensors.save(clip.stateDict(), to: folder.appendingPathComponent("model.safetensors"))
        return folder
    }

    /// `text_encoder_init` + `train_text_encoder: false` (SD's frozen CLIP): the UNet learns under the
    /// CLIP's text tower, which stays exactly as it was; the written folder's text encoder is that
    /// tower, with the CLIP's activation in its config, and checkpoints hold the UNet only.
    func testTextToImageUnderAFrozenCLIPTextTower() throws {
        let clipFolder = try writeTinyCLIP()
        let (trainer, run) = try assertTrainingLowersTheFixedBatchLoss(
            task: "text_to_image", extra: "text_to_image: {text_encoder_init: \(clipFolder.path), train_text_encoder: false}",
            factor: 0.9)
        let task = try XCTUnwrap(trainer.task as? TextToImageTask)
        XCTAssertEqual(task.checkpointFormat, "text-to-image-unet-v1")
        let clip = try CLIPModel.load(from: clipFolder)
        let tower = clip.stateDict().filter { $0.key.hasPrefix("text_model.") }
        XCTAssertEqual(Set(task.textEncoder.stateDict().keys), Set(tower.keys))
        for (name, tensor) in task.textEncoder.stateDict() {
            XCTAssertEqual(try TestSupport.maxAbsDifference(tensor, XCTUnwrap(tower[name])), 0, "\(name) moved while frozen")
        }
        let saved = try SafetensorsFile(url: run.checkpoint(.latest).weights).loadAll()
        XCTAssertTrue(saved.keys.allSatisfy { $0.hasPrefix("unet.") }, "\(saved.keys.filter { !$0.hasPrefix("unet.") })")
        XCTAssertEqual(saved.count, task.unet.stateDict().count)

        // The folder's text encoder computes what the CLIP's text tower computes (the base's text
        // encoder config says gelu; the tower is quick GELU).
        let written = try StableDiffusionPipeline.load(from: run.modelDirectory)
        XCTAssertEqual(written.textEncoder.config.hidden_act, "quick_gelu")
        XCTAssertEqual(try CLIPTextConfig.load(ModelFolder(url: TestSupport.tinyStableDiffusion()).textEncoder).hidden_act, "gelu")
        let ids = try written.tokenizer(["a bedroom with a pale blue wall", ""])
        let reference = try clip.text_model(ids).lastHiddenState
        XCTAssertLessThanOrEqual(try TestSupport.maxAbsDifference(written.textEncoder(ids), reference), 1e-6)
        for (name, tensor) in task.unet.stateDict() {
            XCTAssertEqual(try TestSupport.maxAbsDifference(written.unet.stateDict()[name]!, tensor), 0, name)
        }
    }

    func testTextEncoderInitNamesItsKey() throws {
        let (run, registry) = try workspace(task: "text_to_image", extra: "text_to_image: {text_encoder_init: no-such-clip}", steps: 1)
        XCTAssertThrowsError(try Trainer(run: run, registry: registry)) { error in
            XCTAssertTrue("\(error)".contains("text_to_image.text_encoder_init"), "\(error)")
            XCTAssertTrue("\(error)".contains("no-such-clip"), "\(error)")
        }
        // A folder of another kind of model is refused by its model_type.
        let vaeFolder = try ModelFolder(url: TestSupport.tinyStableDiffusion()).vae
        XCTAssertThrowsError(try CLIPModel.textEncoder(from: vaeFolder)) { error in
            XCTAssertTrue("\(error)".contains("model_type"), "\(error)")
        }
    }

    /// Min-SNR weighting scales each sample's mean squared error; unit weights give SD's plain loss.
    func testWeightedNoiseLoss() throws {
        let prediction = try Tensor.randn([2, 4, 3, 3], generator: Generator(seed: 1))
        let target = try Tensor.randn([2, 4, 3, 3], generator: Generator(seed: 2))
        let plain = try noiseLoss(prediction, target).item()
        XCTAssertEqual(try weightedNoiseLoss(prediction, target, weights: Tensor([1.0, 1.0])).item(), plain, accuracy: 1e-12)
        let first = try noiseLoss(prediction.narrow(dim: 0, start: 0, length: 1), target.narrow(dim: 0, start: 0, length: 1)).item()
        XCTAssertEqual(try weightedNoiseLoss(prediction, target, weights: Tensor([0.5, 0.0])).item(), 0.25 * first, accuracy: 1e-12)
    }

    /// What the reference libraries find in a folder Backdrop wrote (tools/load_reference.py): per
    /// component, missing and unexpected keys and each parameter's sum and sum of squares.
    func referenceSummary(_ flag: String, _ folder: URL) throws -> [String: Any] {
        let (status, output) = try TestSupport.runPythonTool("load_reference.py", [flag, folder.path])
        XCTAssertEqual(status, 0, output)
        let line = try XCTUnwrap(output.split(separator: "\n").last { $0.hasPrefix("{") }, output)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    /// The library loads `component` strictly, and every tensor it holds has the sums of ours.
    func assertReferenceHolds(_ summary: [String: Any], _ component: String, _ ours: [String: Tensor]) throws {
        let entry = try XCTUnwrap(summary[component] as? [String: Any], component)
        XCTAssertEqual(entry["missing"] as? [String], [], component)
        XCTAssertEqual(entry["unexpected"] as? [String], [], component)
        let sums = try XCTUnwrap(entry["sums"] as? [String: [Double]])
        XCTAssertEqual(Set(sums.keys), Set(ours.keys), component)
        for (name, tensor) in ours {
            let t = try tensor.to(dtype: .float64)
            let (sum, squares) = (try t.sum().item(), try (t * t).sum().item())
            let reference = try XCTUnwrap(sums[name])
            XCTAssertEqual(reference[0], sum, accuracy: 1e-9 * max(1, squares), "\(component).\(name)")
            XCTAssertEqual(reference[1], squares, accuracy: 1e-9 * max(1, squares), "\(component).\(name)")
        }
    }

    /// diffusers and transformers load the folder a text-to-image run writes, without a missing or
    /// unexpected key, and hold its weights.
    func testDiffusersLoadsTheWrittenModel() throws {
        let (run, registry) = try workspace(task: "text_to_image", steps: 2)
        let trainer = try Trainer(run: run, registry: registry)
        try trainer.run()
        let task = try XCTUnwrap(trainer.task as? TextToImageTask)
        let summary = try referenceSummary("--diffusers", run.modelDirectory)
        XCTAssertEqual(summary["pipeline"] as? String, "StableDiffusionPipeline")
        try assertReferenceHolds(summary, "unet", task.unet.stateDict())
        try assertReferenceHolds(summary, "text_encoder", task.textEncoder.stateDict())
        try assertReferenceHolds(summary, "vae", task.vae.stateDict())
        // It has no CAA weights, and CAA inference says so.
        XCTAssertThrowsError(try run.trainedModel(unet: task.unet, vaeScale: 8)) { error in
            XCTAssertTrue("\(error)".contains("is a text_to_image run, not a caa run"), "\(error)")
        }
        // From the same initial latents diffusers' pipeline and Backdrop's give the same image.
        let caseFolder = run.workingDirectory.appendingPathComponent("pipeline-case")
        let (status, output) = try TestSupport.runPythonTool("make_pipeline_case.py", [
            "--model", run.modelDirectory.path, "--out", caseFolder.path, "--steps", "5", "--guidance", "5"])
        XCTAssertEqual(status, 0, output)
        let report = Parity.run(caseFolder)
        XCTAssertNil(report.error)
        XCTAssertEqual(report.tensors.map(\.name).sorted(), ["final_latents", "image"])
        for t in report.tensors { XCTAssertTrue(t.passed, "\(t.name): max-abs \(t.maxAbs)") }
    }

    /// The in-domain CLIP task learns on a fixed batch and writes a folder transformers loads.
    func testCLIPLearnsAndWritesATransformersFolder() throws {
        let base = TestSupport.fixture("parity/clip_gelu/model")
        let (trainer, run) = try assertTrainingLowersTheFixedBatchLoss(
            task: "clip", extra: "", base: base, factor: 0.9)
        let task = try XCTUnwrap(trainer.task as? CLIPTask)
        try assertReferenceHolds(try referenceSummary("--clip", run.modelDirectory), "clip", task.model.stateDict())
        // Retrieval on the test split: every view against the split's distinct captions.
        var retrieval = CLIPRetrievalEvaluator(run: run, split: .test)
        retrieval.limit = 1
        let r = try retrieval.evaluate()
        XCTAssertEqual(r.views, 8)
        XCTAssertLessThanOrEqual(r.captions, 8)
        XCTAssertTrue((0...1).contains(r.top1) && r.top1 <= r.top5, "\(r)")
        // Duplicate captions share their targets: each row is a distribution over the equal captions.
        let targets = try CLIPTask.sameCaptionTargets(task.tokenizer(["a room", "a kitchen", "a room"])).toArray(Float.self)
        XCTAssertEqual(targets, [0.5, 0, 0.5, 0, 1, 0, 0.5, 0, 0.5])
    }

    /// A CAA run that keeps an EMA: inference (panorama, export, evaluation) loads the average.
    func testCAAWithEMALoadsTheAverageForInference() throws {
        let (base, registry) = try workspace(task: "caa", extra: "caa: {pe_max_frequency: 16}", steps: 3)
        var config = base.config
        config.training.emaDecay = 0.9
        let run = Run(config: config, workingDirectory: base.workingDirectory)
        let trainer = try Trainer(run: run, registry: registry)
        try trainer.run()
        let ema = try XCTUnwrap(trainer.ema)
        let unet = try UNet2DConditionModel.load(from: ModelFolder(url: TestSupport.tinyStableDiffusion()).unet)
        let (model, _) = try run.trainedModel(unet: unet, vaeScale: 8)
        let loaded = model.caaStateDict()
        for (name, average) in ema.stateDict() {
            XCTAssertEqual(try TestSupport.maxAbsDifference(XCTUnwrap(loaded[name]), average), 0, name)
        }
        // The checkpoint's raw weights differ from the average, so the check above can tell them apart.
        let saved = try SafetensorsFile(url: run.checkpoint(.latest).weights).loadAll()
        let moved = try ema.stateDict().map { try TestSupport.maxAbsDifference(XCTUnwrap(saved[$0.key]), $0.value) }.max() ?? 0
        XCTAssertGreaterThan(moved, 0)
    }

    /// `caa.init_weights`: a second-stage run starts from an earlier run's blocks, not from zero-
    /// initialised outputs; a file that is not there is refused under the key's name.
    func testCAAStartsFromInitWeights() throws {
        let (first, registry) = try workspace(task: "caa", extra: "caa: {pe_max_frequency: 16}", steps: 3)
        try Trainer(run: first, registry: registry).run()
        let file = try first.checkpoint(.latest).weights
        let earlier = try SafetensorsFile(url: file).loadAll()

        let (second, secondRegistry) = try workspace(
            task: "caa", extra: "caa: {pe_max_frequency: 16, init_weights: \(file.path)}", steps: 3, name: "second")
        let task = try XCTUnwrap(Trainer(run: second, registry: secondRegistry).task as? CAATask)
        let started = task.model.caaStateDict()
        XCTAssertEqual(Set(started.keys), Set(earlier.keys))
        for (name, value) in earlier {
            XCTAssertEqual(try TestSupport.maxAbsDifference(XCTUnwrap(started[name]), value), 0, name)
        }
        // A fresh run's blocks differ from the trained ones, so the check above can tell them apart.
        let (fresh, freshRegistry) = try workspace(task: "caa", extra: "caa: {pe_max_frequency: 16}", steps: 3, name: "fresh")
        let zero = try XCTUnwrap(Trainer(run: fresh, registry: freshRegistry).task as? CAATask).model.caaStateDict()
        let moved = try earlier.map { try TestSupport.maxAbsDifference(XCTUnwrap(zero[$0.key]), $0.value) }.max() ?? 0
        XCTAssertGreaterThan(moved, 0)

        let (missing, missingRegistry) = try workspace(
            task: "caa", extra: "caa: {init_weights: nowhere/caa.safetensors}", steps: 3, name: "missing")
        XCTAssertThrowsError(try Trainer(run: missing, registry: missingRegistry)) { error in
            XCTAssertTrue("\(error)".contains("caa.init_weights"), "\(error)")
            XCTAssertTrue("\(error)".contains("nowhere/caa.safetensors"), "\(error)")
        }
    }

    /// `caa.tone_loss_weight`: the tone loss is the squared error of each view's per-channel mean,
    /// carried to x̂₀ (scaled by √((1−ᾱ)/ᾱ), capped); an error of zero spatial mean adds nothing. A
    /// run with it adds that term to the MSE and still lowers its loss on a fixed batch.
    func testToneLossSeesEachViewsMeanError() throws {
        let (trainer, _) = try assertTrainingLowersTheFixedBatchLoss(
            task: "caa", extra: "caa: {pe_max_frequency: 16, tone_loss_weight: 4}", factor: 0.95)
        let task = try XCTUnwrap(trainer.task as? CAATask)
        let target = try Tensor.randn([3, 4, 4, 4], generator: Generator(seed: 7))
        let offsets: [[Double]] = [[0.1, -0.2, 0, 0.3], [0, 0, 0.05, 0], [-0.4, 0.1, 0.1, 0.1]]
        let offset = try Tensor(offsets.flatMap { $0 }, shape: [3, 4, 1, 1]).to(dtype: .float32)
        // ±1 in a checkerboard: a large error whose spatial mean is zero in every channel.
        let checker = try Tensor((0..<16).map { Double(($0 / 4 + $0 % 4) % 2 == 0 ? 1 : -1) }, shape: [1, 1, 4, 4]).to(dtype: .float32)
        let timesteps = [10, 600, 999]
        let alphaBars = timesteps.map { Double(task.noise.schedule.alphasCumprod[$0]) }
        let scales = alphaBars.map { min(((1 - $0) / $0).squareRoot(), CAATask.toneScaleCap) }
        // The tiny SD's scaled-linear schedule ends at ᾱ ≈ 0.0047, just under the cap: the noisiest
        // timestep's tone error weighs about 200 times a clean one's.
        XCTAssertGreaterThan(scales[2], 10)
        XCTAssertLessThan(scales[0], 1)
        var expected = 0.0
        for (row, values) in offsets.enumerated() { for v in values { expected += pow(v * scales[row], 2) } }
        expected /= 12
        let tone = try task.toneLoss(target + offset + checker, target, timesteps: timesteps).item()
        XCTAssertEqual(tone, expected, accuracy: 1e-6 * expected)
        XCTAssertEqual(try task.toneLoss(target + checker, target, timesteps: timesteps).item(), 0, accuracy: 1e-12)

        // The task's loss is the MSE plus 4 × the tone loss: the same draws without the key give less.
        let (plainRun, plainRegistry) = try workspace(task: "caa", extra: "caa: {pe_max_frequency: 16}", steps: 1, name: "plain")
        let (toneRun, toneRegistry) = try workspace(task: "caa", extra: "caa: {pe_max_frequency: 16, tone_loss_weight: 4}",
                                                    steps: 1, name: "tone")
        let plain = try Trainer(run: plainRun, registry: plainRegistry), toned = try Trainer(run: toneRun, registry: toneRegistry)
        let state = try plain.generator.state()
        XCTAssertGreaterThan(try fixedBatchLoss(toned, state: state), try fixedBatchLoss(plain, state: state))
    }

    /// A text-to-image run stopped after a checkpoint and resumed ends with the same losses, weights
    /// and EMA as one that ran straight through.
    func testResumeRestoresWeightsEMAAndRandomState() throws {
        var straightLosses: [Double] = [], resumedLosses: [Double] = []
        let (straightRun, straightRegistry) = try workspace(task: "text_to_image", steps: 6)
        var c = straightRun.config
        c.training.emaDecay = 0.9
        c.training.maxGradNorm = 1.0
        let straight = try Trainer(run: Run(config: c, workingDirectory: straightRun.workingDirectory), registry: straightRegistry)
        straight.onStep = { straightLosses.append($1) }
        try straight.run()

        let (resumedRun, resumedRegistry) = try workspace(task: "text_to_image", steps: 6)
        let resumedConfig = Run(config: c, workingDirectory: resumedRun.workingDirectory)
        let first = try Trainer(run: resumedConfig, registry: resumedRegistry)
        first.onStep = { resumedLosses.append($1) }
        first.stopAfterSteps = 4
        try first.run()
        resumedLosses = Array(resumedLosses.prefix(3))  // step 4 is repeated from the step-3 checkpoint
        let second = try Trainer(run: resumedConfig, registry: resumedRegistry)
        second.onStep = { resumedLosses.append($1) }
        try second.run(resume: true)

        XCTAssertEqual(resumedLosses.count, 6)
        XCTAssertEqual(resumedLosses, straightLosses, "bitwise")
        let (x, y) = (try XCTUnwrap(straight.ema), try XCTUnwrap(second.ema))
        XCTAssertEqual(x.steps, 6)
        XCTAssertEqual(y.steps, 6)
        for (name, (a, b)) in zip(x.names, zip(x.shadow, y.shadow)) {
            XCTAssertEqual(try TestSupport.maxAbsDifference(a, b), 0, name)
        }
    }
}

extension TrainingTaskTests {
    /// `backdrop study create`'s panoramas: each system's for each prompt, kept under a fingerprint
    /// that names no system, and reused by a later study with the same settings.
    func testStudyPanoramasAreGeneratedOnceAndNameNoSystem() throws {
        let (run, registry) = try workspace(task: "caa", extra: "caa: {pe_max_frequency: 16}", steps: 3, name: "study-test")
        try Trainer(run: run, registry: registry).run()
        let registered = try Run.resolve("study-test", registry: registry)
        let systems = [StudyPanoramas.System(label: "study-test", run: registered, baseline: false),
                       StudyPanoramas.System(label: "study-test --baseline", run: registered, baseline: true)]
        var maker = StudyPanoramas()
        maker.steps = 2
        let prompts = ["a kitchen with a white wall", "a bedroom with a blue wall"]
        let first = try maker.make(systems: systems, prompts: prompts, registry: registry)
        XCTAssertEqual([first.generated, first.reused], [4, 0])
        XCTAssertEqual(first.panoramas.map(\.kind), ["model", "model", "baseline", "baseline"])
        XCTAssertEqual(Set(first.panoramas.map(\.folder.path)).count, 4, "a folder per system and prompt")
        for p in first.panoramas {
            XCTAssertEqual(p.runId, registered.record?.id)
            XCTAssertFalse(p.folder.path.contains("baseline") || p.folder.path.contains("study-test"), p.folder.path)
            let image = try Image(contentsOf: p.folder.appendingPathComponent("panorama.png"))
            XCTAssertGreaterThan(image.width, image.height, "an equirectangular band")
        }
        // CAA changes the pixels: the model's and the baseline's panoramas of a prompt differ.
        let model = try Data(contentsOf: first.panoramas[0].folder.appendingPathComponent("panorama.png"))
        let baseline = try Data(contentsOf: first.panoramas[2].folder.appendingPathComponent("panorama.png"))
        XCTAssertNotEqual(model, baseline)
        let again = try maker.make(systems: systems, prompts: prompts, registry: registry)
        XCTAssertEqual([again.generated, again.reused], [0, 4])
        XCTAssertEqual(again.panoramas.map(\.folder.path), first.panoramas.map(\.folder.path))
        maker.steps = 3
        XCTAssertEqual(try maker.make(systems: Array(systems.prefix(1)), prompts: Array(prompts.prefix(1)), registry: registry).generated, 1,
                       "other settings, another panorama")
        let study = try registry.createStudy(name: "s1", perRater: nil, panoramas: first.panoramas)
        XCTAssertEqual(try registry.panoramas(ofStudy: study.id).count, 4)
        XCTAssertThrowsError(try registry.createStudy(name: "s1", perRater: nil, panoramas: first.panoramas)) {
            XCTAssertTrue("\($0)".contains("exists"))
        }
        XCTAssertThrowsError(try registry.createStudy(name: "../x", perRater: nil, panoramas: []))
    }
}
