import BackdropTestSupport
import Datasets
import Experiments
import Foundation
import Torch
import XCTest

@testable import MultiView

/// Config-driven training on synthetic rooms with the tiny SD model: a run killed with SIGKILL and
/// resumed gives bitwise the same per-step losses and weights as an uninterrupted one.
/// A temporary folder with `rooms` synthetic rooms (64² faces) in `rooms/` and the config `yaml(model)`
/// (given the tiny SD's path) as `<name>.yaml`; removed when `test` ends.
func trainingWorkspace(_ test: XCTestCase, rooms: Int, name: String, yaml: (String) -> String) throws -> (folder: URL, config: URL) {
    let folder = try TestSupport.temporaryDirectory()
    test.addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
    let model = try TestSupport.tinyStableDiffusion()
    _ = try SyntheticRooms.generate(into: folder.appendingPathComponent("rooms"), options: .init(count: rooms, seed: 3, faceSize: 64))
    let config = folder.appendingPathComponent("\(name).yaml")
    try yaml(model.path).write(to: config, atomically: true, encoding: .utf8)
    return (folder, config)
}

final class TrainingTests: XCTestCase {
    func makeWorkspace() throws -> (folder: URL, config: URL) {
        try trainingWorkspace(self, rooms: 8, name: "resume-test") { model in """
            name: resume-test
            model: {base: \(model)}
            dataset: {kind: synthrooms, root: rooms, resolution: 64, views: 8}
            caa: {pe_max_frequency: 16}
            optimizer: {lr: 1.0e-3}
            schedule: {kind: cosine, interval: step, eta_min: 1.0e-5}
            training: {epochs: 2, batch_size: 1, checkpoint_every: 4, log_every: 1, seed: 11, device: cpu}
            output_dir: run
            """
        }
    }

    /// Per-step losses of the run in `registry` (empty before it has started).
    func losses(_ registry: URL) throws -> [Int: Double] {
        let r = try RunRegistry(url: registry)
        guard let run = try r.latestRun(named: "resume-test") else { return [:] }
        return Dictionary(uniqueKeysWithValues: try r.metrics(run.id).map { ($0.step, $0.loss) })
    }

    func log(_ workspace: URL) -> String {
        (try? String(contentsOf: workspace.appendingPathComponent("train.log"), encoding: .utf8)) ?? ""
    }

    func train(_ workspace: URL, config: URL, registry: String, resume: Bool = false) throws -> Process {
        let process = Process()
        process.executableURL = try TestSupport.backdropExecutable()
        process.arguments = ["train", config.path, "--registry", registry, "--threads", "1"] + (resume ? ["--resume"] : [])
        process.currentDirectoryURL = workspace
        let log = workspace.appendingPathComponent(resume ? "resume.log" : "train.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }

    func testKilledAndResumedRunRepeatsTheLossesExactly() throws {
        let (straight, straightConfig) = try makeWorkspace()
        let uninterrupted = try train(straight, config: straightConfig, registry: "runs.sqlite")
        uninterrupted.waitUntilExit()
        XCTAssertEqual(uninterrupted.terminationStatus, 0, log(straight))
        let reference = try losses(straight.appendingPathComponent("runs.sqlite"))
        XCTAssertEqual(reference.count, 14, "7 training panoramas × 2 epochs")

        let (killed, killedConfig) = try makeWorkspace()
        let registry = killed.appendingPathComponent("runs.sqlite")
        let victim = try train(killed, config: killedConfig, registry: "runs.sqlite")
        // Kill it after step 6 is logged: past the step-4 checkpoint, before the step-8 one.
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, victim.isRunning {
            if FileManager.default.fileExists(atPath: registry.path), (try? losses(registry))?.keys.contains(6) == true { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        kill(victim.processIdentifier, SIGKILL)
        victim.waitUntilExit()
        XCTAssertEqual(victim.terminationReason, .uncaughtSignal, "the run ended before it was killed:\n" + log(killed))
        let partial = try losses(registry)
        XCTAssertLessThan(partial.count, 14, "the run must have been killed before finishing")
        // Nobody holds the dead run's folder: the next look at the registry marks it interrupted.
        let victimID = try XCTUnwrap(try RunRegistry(url: registry).latestRun(named: "resume-test")).id
        XCTAssertEqual(try RunRegistry(url: registry).markInterruptedRuns(), [victimID])
        // Training again into its folder without --resume would overwrite its checkpoints.
        let refused = try train(killed, config: killedConfig, registry: "runs.sqlite")
        refused.waitUntilExit()
        XCTAssertEqual(refused.terminationStatus, 1)
        XCTAssertTrue(log(killed).contains("already holds a run (1 checkpoint); pass --resume"), log(killed))

        let resumed = try train(killed, config: killedConfig, registry: "runs.sqlite", resume: true)
        resumed.waitUntilExit()
        XCTAssertEqual(resumed.terminationStatus, 0)
        let final = try losses(registry)
        XCTAssertEqual(final.count, 14)
        // Bitwise equal: the resumed process repeats every step (same data, noise, timesteps,
        // learning rates, and correspondences computed from the layout's canonical key, not from
        // whichever panorama first filled the cache).
        for step in 1...14 {
            XCTAssertEqual(final[step], reference[step], "step \(step)")
        }
        let weights = { (folder: URL) in try SafetensorsFile(url: folder.appendingPathComponent("run/checkpoints/step-00000014/weights.safetensors")) }
        let (ours, theirs) = (try weights(killed), try weights(straight))
        XCTAssertEqual(ours.names, theirs.names)
        for name in ours.names {
            XCTAssertEqual(try TestSupport.maxAbsDifference(ours.tensor(name), theirs.tensor(name)), 0, name)
        }
        let run = try XCTUnwrap(try RunRegistry(url: registry).latestRun(named: "resume-test"))
        XCTAssertEqual(run.status, "finished")
    }

    /// Two processes training into one folder: the second stops at once with the holder's pid.
    func testABusyFolderIsRefused() throws {
        let (workspace, config) = try makeWorkspace()
        let run = Run(config: try RunConfig.load(config), workingDirectory: workspace)
        let holder = try FolderLock(run.directory)
        let trainer = try Trainer(run: run, registry: try RunRegistry(url: workspace.appendingPathComponent("runs.sqlite")))
        XCTAssertThrowsError(try trainer.run()) { XCTAssertTrue("\($0)".contains("in use by another training process"), "\($0)") }
        XCTAssertNil(try RunRegistry(url: workspace.appendingPathComponent("runs.sqlite")).latestRun(named: "resume-test"),
                     "nothing registered")
        withExtendedLifetime(holder) {}
    }

    func testNonFiniteLossStopsAndKeepsCheckpoint() throws {
        let (workspace, config) = try makeWorkspace()
        var runConfig = try RunConfig.load(config)
        runConfig.optimizer.lr = 1e30  // diverges within a few steps
        let trainer = try Trainer(run: Run(config: runConfig, workingDirectory: workspace),
                                  registry: try RunRegistry(url: workspace.appendingPathComponent("runs.sqlite")))
        XCTAssertThrowsError(try trainer.run()) { error in
            XCTAssertTrue("\(error)".contains("loss is"), "\(error)")
        }
        let run = try XCTUnwrap(try RunRegistry(url: workspace.appendingPathComponent("runs.sqlite")).latestRun(named: "resume-test"))
        XCTAssertEqual(run.status, "failed")
    }

    /// bf16 autocast trains too, with losses close to float32's.
    func testBFloat16AutocastTraining() throws {
        let (workspace, config) = try makeWorkspace()
        var fp32 = try RunConfig.load(config)
        fp32.training.maxSteps = 3
        fp32.outputDir = "fp32"
        var bf16 = fp32
        bf16.training.precision = .bf16
        bf16.outputDir = "bf16"
        var losses: [[Double]] = []
        for c in [fp32, bf16] {
            let trainer = try Trainer(run: Run(config: c, workingDirectory: workspace),
                                      registry: try RunRegistry(url: workspace.appendingPathComponent("\(c.outputDir).sqlite")))
            var seen: [Double] = []
            trainer.onStep = { seen.append($1) }
            try trainer.run()
            losses.append(seen)
        }
        XCTAssertEqual(losses[1].count, 3)
        for (a, b) in zip(losses[0], losses[1]) { XCTAssertEqual(a, b, accuracy: 0.05 * a, "fp32 \(a) vs bf16 \(b)") }
    }

    /// `training.log_every` is used: a metric row every N steps and at the last step.
    func testLogEveryWritesEveryNthStepAndTheLast() throws {
        let (workspace, config) = try makeWorkspace()
        var c = try RunConfig.load(config)
        c.training.maxSteps = 7
        c.training.logEvery = 3
        let registry = try RunRegistry(url: workspace.appendingPathComponent("runs.sqlite"))
        let summary = try Trainer(run: Run(config: c, workingDirectory: workspace), registry: registry).run()
        XCTAssertEqual(summary.steps, 7)
        XCTAssertEqual(try registry.metrics(summary.runID).map(\.step), [3, 6, 7])
    }

    /// `optimizer.name: sgd` trains with SGD (it was accepted and AdamW was built): one step moves
    /// every parameter by exactly −lr·grad when momentum and weight decay are 0.
    func testSGDIsTheOptimizerTheConfigNames() throws {
        let (workspace, config) = try makeWorkspace()
        var text = try String(contentsOf: config, encoding: .utf8)
        text = text.replacingOccurrences(of: "optimizer: {lr: 1.0e-3}", with: "optimizer: {name: sgd, lr: 0.5}")
        let c = try RunConfig.parse(yaml: text, file: config.path)
        XCTAssertEqual(c.optimizer.name, .sgd)
        XCTAssertEqual(c.optimizer.weightDecay, 0, "PyTorch's SGD default")
        let trainer = try Trainer(run: Run(config: c, workingDirectory: workspace),
                                  registry: try RunRegistry(url: workspace.appendingPathComponent("runs.sqlite")))
        XCTAssertTrue(trainer.optimizer is SGD, "\(type(of: trainer.optimizer))")
        XCTAssertEqual(try trainer.optimizer.stateDict().metadata["optimizer"], "SGD")
    }
}

