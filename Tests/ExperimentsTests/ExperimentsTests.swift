import BackdropTestSupport
import Foundation
import Geometry
import Torch
import XCTest

@testable import Experiments

/// Asserts that parsing `yaml` fails with a ConfigError naming experiments/x.yaml, `key` and `fragment`.
func assertConfigError(_ yaml: String, key: String, contains fragment: String, line: UInt = #line) {
    XCTAssertThrowsError(try RunConfig.parse(yaml: yaml, file: "experiments/x.yaml"), line: line) { error in
        guard let error = error as? ConfigError else { return XCTFail("\(error)", line: line) }
        XCTAssertEqual(error.file, "experiments/x.yaml", line: line)
        XCTAssertEqual(error.key, key, line: line)
        XCTAssertTrue(error.description.contains(fragment), error.description, line: line)
    }
}

final class RunConfigTests: XCTestCase {
    let minimal = """
        model: {base: models/sd2}
        dataset: {root: datasets/mp3d_skybox}
        """

    func testDefaultsAreMVDiffusionsSetup() throws {
        let config = try RunConfig.parse(yaml: minimal, file: "paper.yaml", defaultName: "paper")
        XCTAssertEqual(config.name, "paper")
        XCTAssertEqual(config.optimizer.lr, 2e-4)
        XCTAssertEqual(config.optimizer.name, .adamw)
        XCTAssertEqual(config.schedule.kind, .cosine)
        XCTAssertEqual(config.schedule.etaMin, 1e-7)
        XCTAssertEqual(config.schedule.interval, .epoch)
        XCTAssertEqual(config.training.epochs, 10)
        XCTAssertEqual(config.dataset.views, 8)
        XCTAssertEqual(config.dataset.fov, 90)
        XCTAssertEqual(config.dataset.resolution, 512)
        XCTAssertEqual(config.dataset.promptPrefix, "This is one view of a scene. ")
        XCTAssertEqual(config.caa.neighbours, .ring)
        XCTAssertNil(config.caa.peMaxFrequency)
        XCTAssertEqual(config.outputDir, "results/runs/paper")
        let json = try config.json()
        XCTAssertTrue(json.contains("\"prompt_prefix\""), json)
    }


    func testMistakesNameTheFileAndKeyAndSuggest() {
        assertConfigError(minimal + "\noptimiser: {lr: 1e-4}", key: "optimiser", contains: "did you mean 'optimizer'")
        assertConfigError(minimal + "\noptimizer: {learning_rte: 1e-4}", key: "optimizer.learning_rte", contains: "unknown key")
        assertConfigError(minimal + "\ntraining: {epocs: 3}", key: "training.epocs", contains: "did you mean 'epochs'")
        assertConfigError(minimal + "\ntraining: {epochs: ten}", key: "training.epochs", contains: "expected an integer")
        assertConfigError(minimal + "\ntraining: {epochs: 0}", key: "training.epochs", contains: "must be positive")
        assertConfigError(minimal + "\ndataset_: {}", key: "dataset_", contains: "did you mean 'dataset'")
        assertConfigError("dataset: {root: x}", key: "model.base", contains: "is required")
        assertConfigError(minimal + "\ncaa: {neighbours: left}", key: "caa.neighbours", contains: "ring, all")
        assertConfigError(minimal.replacingOccurrences(of: "root:", with: "resolution: 500, root:"),
                          key: "dataset.resolution", contains: "multiple of 8")
        assertConfigError(minimal + "\ntraining: {device: tpu}", key: "training.device", contains: "unknown device")
        assertConfigError("model: [1, 2]", key: "model", contains: "expected a mapping")
        assertConfigError("- just\n- a list", key: "", contains: "top level must be a mapping")
        assertConfigError("model: {base: x\n", key: "", contains: "not valid YAML")
    }

    /// Choices are types with their allowed values in the error: an unknown schedule kind no longer
    /// becomes cosine, and a value that is accepted is one that works.
    func testChoicesAreTypedAndListTheirValues() throws {
        assertConfigError(minimal + "\nschedule: {kind: linear}", key: "schedule.kind", contains: "cosine, constant, warmup_cosine")
        assertConfigError(minimal + "\nschedule: {interval: batch}", key: "schedule.interval", contains: "epoch, step")
        assertConfigError(minimal + "\noptimizer: {name: adam}", key: "optimizer.name", contains: "adamw, sgd")
        assertConfigError(minimal + "\ntraining: {precision: fp16}", key: "training.precision", contains: "fp32, bf16")
        assertConfigError(minimal.replacingOccurrences(of: "{base: models/sd2}", with: "{base: x, dtype: half}"), key: "model.dtype", contains: "float32, float16, bfloat16")
        assertConfigError(minimal + "\ntask: diffusion", key: "task", contains: "caa, autoencoder, text_to_image")
        // A section for another task is refused, as are task settings out of range.
        assertConfigError(minimal + "\ntask: autoencoder\ncaa: {neighbours: all}", key: "caa.neighbours", contains: "task caa only")
        assertConfigError(minimal + "\ntext_to_image: {caption_dropout: 0.1}", key: "text_to_image.caption_dropout",
                          contains: "task text_to_image only")
        assertConfigError(minimal + "\ntask: text_to_image\ntext_to_image: {caption_dropout: 1.5}",
                          key: "text_to_image.caption_dropout", contains: "[0, 1)")
        assertConfigError(minimal + "\ntask: text_to_image\ntext_to_image: {snr_gamma: 0}",
                          key: "text_to_image.snr_gamma", contains: "positive")
        assertConfigError(minimal + "\ntask: text_to_image\ntext_to_image: {train_text_encoder: maybe}",
                          key: "text_to_image.train_text_encoder", contains: "maybe")
        assertConfigError(minimal + "\ncaa: {tone_loss_weight: 0}", key: "caa.tone_loss_weight", contains: "positive")
        assertConfigError(minimal + "\ntask: text_to_image\ncaa: {tone_loss_weight: 4}", key: "caa.tone_loss_weight",
                          contains: "task caa only")
        assertConfigError(minimal + "\ntask: caa\ntext_to_image: {text_encoder_init: clip}",
                          key: "text_to_image.text_encoder_init", contains: "task text_to_image only")
        assertConfigError(minimal + "\ntask: autoencoder\nautoencoder: {kl_weight: -1}", key: "autoencoder.kl_weight",
                          contains: "negative")
        assertConfigError(minimal + "\ntask: autoencoder\nautoencoder: {decode: mode}", key: "autoencoder.decode", contains: "sample, mean")
        assertConfigError(minimal + "\ntask: autoencoder\nautoencoder: {decode: mean}", key: "autoencoder.decode",
                          contains: "trainable: decoder only")
        assertConfigError(minimal + "\ntraining: {ema_decay: 1}", key: "training.ema_decay", contains: "[0, 1)")
        assertConfigError(minimal + "\ntraining: {max_grad_norm: 0}", key: "training.max_grad_norm", contains: "positive")
        // Keys that the chosen value makes meaningless are refused, not ignored.
        assertConfigError(minimal + "\noptimizer: {name: sgd, betas: [0.9, 0.99]}", key: "optimizer.betas", contains: "adamw only")
        assertConfigError(minimal + "\noptimizer: {momentum: 0.9}", key: "optimizer.momentum", contains: "sgd only")
        assertConfigError(minimal + "\nschedule: {kind: cosine, warmup_steps: 10}", key: "schedule.warmup_steps",
                          contains: "warmup_cosine only")
        assertConfigError(minimal + "\noptimizer: {lr: .nan}", key: "optimizer.lr", contains: "finite")
        assertConfigError(minimal + "\ntraining: {log_every: 0}", key: "training.log_every", contains: "must be positive")
        assertConfigError(minimal.replacingOccurrences(of: "root:", with: "fov: 180, root:"), key: "dataset.fov", contains: "(0, 180)")

        let config = try RunConfig.parse(yaml: (minimal + """

            task: caa
            model: {base: m, dtype: bfloat16}
            optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
            schedule: {kind: warmup_cosine, interval: step, warmup_steps: 5}
            training: {precision: bf16, device: cpu, log_every: 3}
            caa: {neighbours: all}
            """).replacingOccurrences(of: "model: {base: models/sd2}\n", with: ""), file: "x.yaml")
        XCTAssertEqual(config.task, .caa)
        XCTAssertEqual(config.model.dtype.dtype, .bfloat16)
        XCTAssertEqual(config.optimizer.name, .sgd)
        XCTAssertEqual(config.optimizer.momentum, 0.9)
        XCTAssertEqual(config.schedule.kind, .warmupCosine)
        XCTAssertEqual(config.schedule.interval, .step)
        XCTAssertEqual(config.training.precision, .bf16)
        XCTAssertEqual(config.training.device, .device(.cpu))
        XCTAssertEqual(config.training.logEvery, 3)
        XCTAssertEqual(config.caa.neighbours, .all)
        // The stored JSON is read by the same decoder and gives the same config.
        XCTAssertEqual(try RunConfig.parse(yaml: config.json(), file: "registry"), config)
        XCTAssertEqual(try RunConfig.parse(yaml: minimal, file: "x.yaml").training.device, .best)
    }

    /// The training tasks beyond CAA: their sections, the EMA and clipping keys, and a stored JSON
    /// that holds only the chosen task's section and parses back to the same config.
    func testTrainingTasksParseAndRoundTrip() throws {
        let t2i = try RunConfig.parse(yaml: minimal + """

            task: text_to_image
            text_to_image: {caption_dropout: 0.2}
            training: {ema_decay: 0.999, max_grad_norm: 1.0}
            """, file: "t2i.yaml")
        XCTAssertEqual(t2i.task, .textToImage)
        XCTAssertEqual(t2i.textToImage.captionDropout, 0.2)
        XCTAssertEqual(t2i.training.emaDecay, 0.999)
        XCTAssertEqual(t2i.training.maxGradNorm, 1.0)
        let json = try t2i.json()
        XCTAssertTrue(json.contains("\"text_to_image\":{\"caption_dropout\":0.2,\"train_text_encoder\":true}"), json)
        XCTAssertFalse(json.contains("\"caa\""), json)
        XCTAssertEqual(try RunConfig.parse(yaml: json, file: "registry"), t2i)
        let frozen = try RunConfig.parse(yaml: minimal + """

            task: text_to_image
            text_to_image: {text_encoder_init: results/runs/clip/model, train_text_encoder: false}
            """, file: "t2i.yaml")
        XCTAssertEqual(frozen.textToImage.textEncoderInit, "results/runs/clip/model")
        XCTAssertFalse(frozen.textToImage.trainTextEncoder)
        XCTAssertEqual(try RunConfig.parse(yaml: frozen.json(), file: "registry"), frozen)

        let vae = try RunConfig.parse(yaml: minimal + "\ntask: autoencoder", file: "vae.yaml")
        XCTAssertEqual(vae.autoencoder.klWeight, 1e-6)
        XCTAssertNil(vae.training.emaDecay)
        XCTAssertNil(vae.training.maxGradNorm)
        XCTAssertEqual(try RunConfig.parse(yaml: vae.json(), file: "registry"), vae)
        XCTAssertEqual(try RunConfig.parse(yaml: minimal, file: "caa.yaml").textToImage.captionDropout, 0.1)
    }

    func testScientificNotationWithoutDotIsANumber() throws {
        let config = try RunConfig.parse(yaml: minimal + "\noptimizer: {lr: 2e-4, weight_decay: 0}", file: "x.yaml")
        XCTAssertEqual(config.optimizer.lr, 2e-4)
        XCTAssertEqual(config.optimizer.weightDecay, 0)
    }

    func testCommittedExperimentConfigsLoad() throws {
        let folder = TestSupport.repositoryRoot.appendingPathComponent("experiments")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yaml") }
        for file in files {
            XCTAssertNoThrow(try RunConfig.load(folder.appendingPathComponent(file)), file)
        }
    }
}

final class RunRegistryTests: XCTestCase {
    func testRunsMetricsCheckpointsAndEvaluations() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let registry = try RunRegistry(url: directory.appendingPathComponent("runs.sqlite"))
        let id = try registry.startRun(name: "smoke", configJSON: "{}", outputDir: "out", gitCommit: "abc")
        for step in 1...3 {
            try registry.log(.init(runId: id, step: step, loss: 1.0 / Double(step), lr: 1e-4, stepsPerSecond: 2))
        }
        // A resumed run logs step 3 again: the newer value wins, no duplicate.
        try registry.log(.init(runId: id, step: 3, loss: 0.25, lr: 1e-4, stepsPerSecond: 2))
        try registry.recordCheckpoint(id, step: 3, path: "out/checkpoints/step-00000003")
        try registry.finishRun(id, status: "finished")
        try registry.record(.init(runId: id, system: "model", checkpoint: "step-00000003", split: "test", count: 8,
                                  fid: 22.3, notes: "IS: no classifier"))

        let run = try XCTUnwrap(registry.run(id))
        XCTAssertEqual(run.status, "finished")
        XCTAssertEqual(run.gitCommit, "abc")
        XCTAssertNotNil(run.endedAt)
        XCTAssertEqual(try registry.metrics(id).map(\.loss), [1, 0.5, 0.25])
        XCTAssertEqual(try registry.checkpoints(id).map(\.step), [3])
        XCTAssertEqual(try registry.evaluations(runID: id).first?.fid, 22.3)
        XCTAssertEqual(try registry.latestRun(named: "smoke")?.id, id)
    }

    /// Two registries (as two training processes would) writing at once lose nothing.
    func testConcurrentWritersInWALMode() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("runs.sqlite")
        let a = try RunRegistry(url: url), b = try RunRegistry(url: url)
        let runA = try a.startRun(name: "a", configJSON: "{}", outputDir: "a")
        let runB = try b.startRun(name: "b", configJSON: "{}", outputDir: "b")
        DispatchQueue.concurrentPerform(iterations: 2) { worker in
            let (registry, run) = worker == 0 ? (a, runA) : (b, runB)
            for step in 0..<200 {
                try! registry.log(.init(runId: run, step: step, loss: Double(step), lr: 0, stepsPerSecond: 0))
            }
        }
        XCTAssertEqual(try a.metrics(runA).count, 200)
        XCTAssertEqual(try a.metrics(runB).count, 200)
        let mode = try a.pool.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }
        XCTAssertEqual(mode, "wal")
    }
}

final class CheckpointTests: XCTestCase {
    func testCheckpointRoundTripAndLatestPointer() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = CheckpointStore(runDirectory: directory)
        XCTAssertNil(try store.latest())
        let p = try Parameter(.randn([3, 2], generator: Generator(seed: 1)))
        let optimizer = try AdamW([p], lr: 1e-3)
        try (p * p).sum().backward()
        try optimizer.step()
        let generator = try Generator(seed: 5)
        for step in [10, 20] {
            try store.save(state: .init(step: step, epoch: 1, positionInEpoch: step / 10, schedulerSteps: step),
                           weights: ["caa.weight": p], optimizer: try optimizer.stateDict(),
                           rng: ["cpu": try generator.state()])
        }
        let latest = try XCTUnwrap(store.latest())
        XCTAssertEqual(latest.state.step, 20)
        XCTAssertEqual(latest.state.positionInEpoch, 2)
        XCTAssertEqual(try TestSupport.maxAbsDifference(SafetensorsFile(url: latest.weights).tensor("caa.weight"), p), 0)
        let restored = try Generator(seed: 0)
        try restored.setState(SafetensorsFile(url: latest.rng).tensor("cpu"))
        XCTAssertEqual(try Tensor.randn([4], generator: restored).toArray(Float.self),
                       try Tensor.randn([4], generator: generator).toArray(Float.self))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: store.directory.path).filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [])
    }
}
