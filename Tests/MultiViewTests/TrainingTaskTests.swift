import BackdropTestSupport
import Datasets
import Experiments
import Foundation
import StableDiffusion
import Torch
import XCTest

@testable import MultiView

/// The training tasks beyond CAA on the tiny SD and synthetic rooms: each lowers its loss on a fixed
/// batch, writes a diffusers folder the loader reads back, and resumes with its EMA exactly.
final class TrainingTaskTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        Runtime.threads = 2
    }

    func workspace(task: String, extra: String = "", steps: Int, name: String = "task-test") throws -> (Run, RunRegistry) {
        let folder = try TestSupport.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        _ = try SyntheticRooms.generate(into: folder.appendingPathComponent("rooms"), options: .init(count: 4, seed: 5, faceSize: 64))
        let yaml = """
            name: \(name)
            task: \(task)
            model: {base: \(try TestSupport.tinyStableDiffusion().path)}
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

    func assertTrainingLowersTheFixedBatchLoss(task: String, extra: String = "", factor: Double) throws -> (Trainer, Run) {
        let (run, registry) = try workspace(task: task, extra: extra, steps: 12)
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
        // The rest of the base folder is copied unchanged.
        let base = try TestSupport.tinyStableDiffusion()
        for file in ["unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors", "tokenizer/vocab.json"] {
            XCTAssertEqual(FileManager.default.contents(atPath: folder.appendingPathComponent(file).path),
                           FileManager.default.contents(atPath: base.appendingPathComponent(file).path), file)
        }
    }

    func testTextToImageLearnsAndWritesItsEMAModel() throws {
        let (trainer, run) = try assertTrainingLowersTheFixedBatchLoss(
            task: "text_to_image", extra: "text_to_image: {caption_dropout: 0.1}", factor: 0.9)
        // The written model holds the EMA of the UNet and the text encoder, which the pipeline loads.
        let pipeline = try StableDiffusionPipeline.load(from: run.modelDirectory)
        let task = try XCTUnwrap(trainer.task as? TextToImageTask)
        for (name, tensor) in task.unet.stateDict() {
            XCTAssertEqual(try TestSupport.maxAbsDifference(pipeline.unet.stateDict()[name]!, tensor), 0, name)
        }
        for (name, tensor) in task.textEncoder.stateDict() {
            XCTAssertEqual(try TestSupport.maxAbsDifference(pipeline.textEncoder.stateDict()[name]!, tensor), 0, name)
        }
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
        for (a, b) in zip(resumedLosses, straightLosses) { XCTAssertEqual(a, b, accuracy: 1e-6 * abs(b)) }
        let (x, y) = (try XCTUnwrap(straight.ema), try XCTUnwrap(second.ema))
        XCTAssertEqual(x.steps, 6)
        XCTAssertEqual(y.steps, 6)
        for (name, (a, b)) in zip(x.names, zip(x.shadow, y.shadow)) {
            XCTAssertLessThan(try TestSupport.maxAbsDifference(a, b), 1e-5, name)
        }
    }
}
