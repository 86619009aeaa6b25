import BackdropTestSupport
import Datasets
import Experiments
import Foundation
import Torch
import XCTest

@testable import MultiView

/// Data-parallel training over c10d/Gloo (docs/distributed.md): the same config, whose
/// `batch_size` is the global batch, trains the same in two processes (B/2 each) as in one, to
/// float32 summation tolerance.
final class DistributedTrainingTests: XCTestCase {
    /// Rooms, and a CAA config whose global batch is `batch`.
    func workspace(batch: Int, output: String = "run", epochs: Int = 1, checkpointEvery: Int = 100, timeout: Int = 60,
                   task: String = "caa\ncaa: {pe_max_frequency: 16}", base: URL? = nil,
                   optimizer: String = "lr: 1.0e-3, weight_decay: 0") throws -> (folder: URL, config: URL) {
        // 12 rooms: 10 to train on, an even count, so both launches see the same steps per epoch.
        try trainingWorkspace(self, rooms: 12, name: "ddp") { model in """
            name: ddp-test
            task: \(task)
            model: {base: \(base?.path ?? model)}
            dataset: {kind: synthrooms, root: rooms, resolution: 64, views: 8}
            optimizer: {\(optimizer)}
            schedule: {kind: cosine, interval: step, eta_min: 1.0e-5}
            training: {epochs: \(epochs), batch_size: \(batch), checkpoint_every: \(checkpointEvery), log_every: 1, seed: 11, device: cpu,
                       max_grad_norm: 1.0}
            distributed: {timeout: \(timeout), bucket_mb: 0.05}
            output_dir: \(output)
            """
        }
    }

    func losses(_ folder: URL) throws -> [Int: Double] {
        let registry = try RunRegistry(url: folder.appendingPathComponent("runs.sqlite"))
        guard let run = try registry.latestRun(named: "ddp-test") else { return [:] }
        return Dictionary(uniqueKeysWithValues: try registry.metrics(run.id).map { ($0.step, $0.loss) })
    }

    func finalWeights(_ folder: URL, _ output: String) throws -> SafetensorsFile {
        let checkpoints = folder.appendingPathComponent("\(output)/checkpoints")
        let last = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: checkpoints.path).filter { $0.hasPrefix("step-") }.max())
        return try SafetensorsFile(url: checkpoints.appendingPathComponent("\(last)/weights.safetensors"))
    }

    func testTwoProcessesWithHalfTheBatchTrainLikeOne() throws {
        let (single, singleConfig) = try workspace(batch: 2, output: "run")
        let one = try TestSupport.runBackdrop(["train", singleConfig.path, "--registry", "runs.sqlite", "--threads", "1"], in: single)
        XCTAssertEqual(one.status, 0, one.output)

        let (pair, pairConfig) = try workspace(batch: 2, output: "run")
        let two = try TestSupport.runBackdrop(["train", pairConfig.path, "--registry", "runs.sqlite", "--threads", "1", "--nproc", "2"],
                                              in: pair)
        XCTAssertEqual(two.status, 0, two.output)

        let (a, b) = (try losses(single), try losses(pair))
        XCTAssertGreaterThanOrEqual(a.count, 3)
        XCTAssertEqual(Set(a.keys), Set(b.keys), "the same number of steps")
        var worst = 0.0
        for step in a.keys.sorted() {
            let (x, y) = (a[step]!, b[step]!)
            worst = max(worst, abs(x - y) / abs(x))
            XCTAssertEqual(x, y, accuracy: 1e-5 * abs(x), "step \(step)")
        }
        let (ours, theirs) = (try finalWeights(pair, "run"), try finalWeights(single, "run"))
        XCTAssertEqual(ours.names, theirs.names)
        var largest = 0.0, total = 0.0, count = 0
        for name in ours.names {
            let (x, y) = (try ours.tensor(name), try theirs.tensor(name))
            largest = max(largest, try TestSupport.maxAbsDifference(x, y))
            total += try (x.to(dtype: .float64) - y.to(dtype: .float64)).abs().sum().item()
            count += x.count
        }
        // Adam divides by √v: where a gradient is ~0, float32 summation-order noise can become a
        // step of up to lr (1e-3) either way, so single weights may differ by a few steps' worth
        // while the weights as a whole agree closely.
        XCTAssertLessThan(largest, 2 * 1e-3 * Double(a.count))
        XCTAssertLessThan(total / Double(count), 1e-6)
        print("a batch of 2 in 2 processes vs in 1: \(a.count) steps, largest relative loss difference \(worst), " +
              "weight difference largest \(largest), mean \(total / Double(count))")
    }

    /// A global batch the workers cannot share equally is refused before any worker starts,
    /// naming the config file and the key, and nothing is written.
    func testABatchTheWorkersCannotShareIsRefused() throws {
        let (folder, config) = try workspace(batch: 3)
        let launch = try TestSupport.runBackdrop(["train", config.path, "--registry", "runs.sqlite", "--threads", "1", "--nproc", "2"],
                                                 in: folder)
        XCTAssertNotEqual(launch.status, 0)
        XCTAssertTrue(launch.output.contains("\(config.path): training.batch_size: 3 panoramas per step cannot be shared equally by 2"),
                      launch.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("run").path), "no run folder")
        XCTAssertEqual(try losses(folder), [:])
    }

    /// A worker that hangs (SIGSTOP) makes its peer's all-reduce fail once distributed.timeout
    /// passes; the launch then stops, naming the rank that gave up, instead of waiting for ever.
    func testAHungWorkerStopsTheRunWithinTheTimeout() throws {
        let (folder, config) = try workspace(batch: 2, epochs: 2, timeout: 8)
        let (status, output, seconds) = try signalOneOfTwoWorkers(SIGSTOP, config, in: folder, atStep: 2)
        XCTAssertLessThan(seconds, 60, "stopped within the timeout, not hung")
        XCTAssertEqual(status, 1, output)
        XCTAssertTrue(output.contains("rank 0 of 2 exited with status 1"), output)
        XCTAssertTrue(output.contains("all-reduce"), output)
    }

    /// The other tasks: their noise, timesteps, dropped captions and VAE samples are drawn for the
    /// global batch too, their EMA stays one average, and CLIP's contrastive loss is over the
    /// gathered global batch.
    func testTheOtherTasksTrainAlikeInTwoProcesses() throws {
        // The autoencoder trains every weight of the VAE with Adam, which turns float32 summation-order
        // noise in near-zero gradients into lr-sized steps: its losses drift apart faster.
        let clip = TestSupport.fixture("parity/clip_gelu/model")
        // CLIP with plain SGD: Adam's per-weight normalisation would hide a gradient off by a constant
        // factor, and the gathered loss's gradients are exactly what could be off by the world size.
        let adam = "lr: 1.0e-3, weight_decay: 0", sgd = "name: sgd, lr: 2.0, weight_decay: 0"
        for (spec, base, optimizer, tolerance) in [("text_to_image\ntext_to_image: {caption_dropout: 0.5, snr_gamma: 5}", nil, adam, 1e-6),
                                                   ("autoencoder", nil, adam, 1e-4), ("clip", clip, sgd, 1e-5)] {
            var runs: [[Int: Double]] = []
            for processes in [1, 2] {
                let (folder, config) = try workspace(batch: 2, task: spec, base: base, optimizer: optimizer)
                var arguments = ["train", config.path, "--registry", "runs.sqlite", "--threads", "1"]
                if processes > 1 { arguments += ["--nproc", "\(processes)"] }
                let run = try TestSupport.runBackdrop(arguments, in: folder)
                XCTAssertEqual(run.status, 0, run.output)
                runs.append(try losses(folder))
            }
            XCTAssertGreaterThanOrEqual(runs[0].count, 5, spec)
            assertLossesAgree(runs[0], runs[1], relative: tolerance)
            let worst = runs[0].keys.map { abs(runs[0][$0]! - (runs[1][$0] ?? .nan)) / abs(runs[0][$0]!) }.max() ?? .nan
            print("\(spec.prefix { $0 != "\n" }): a batch of 2 in 2 processes vs in 1 over \(runs[0].count) steps: largest relative loss difference \(worst)")
        }
    }

    /// Starts `train --nproc 2`, sends `signal` to rank 1 once `step` is logged, and waits for the
    /// launch to end: its status, output, and the seconds it took after the signal.
    func signalOneOfTwoWorkers(_ signal: Int32, _ config: URL, in folder: URL, atStep step: Int) throws
        -> (status: Int32, output: String, seconds: Double) {
        let launcher = Process()
        launcher.executableURL = try TestSupport.backdropExecutable()
        launcher.arguments = ["train", config.path, "--registry", "runs.sqlite", "--threads", "1", "--nproc", "2"]
        launcher.currentDirectoryURL = folder
        let pipe = Pipe()
        launcher.standardOutput = pipe
        launcher.standardError = pipe
        try launcher.run()
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, (try? losses(folder))?.keys.contains(step) != true { Thread.sleep(forTimeInterval: 0.05) }
        let children = try String(contentsOfFile: "/proc/\(launcher.processIdentifier)/task/\(launcher.processIdentifier)/children",
                                  encoding: .utf8).split(separator: " ").compactMap { Int32($0) }
        XCTAssertEqual(children.count, 2)
        let sent = Date()
        kill(try XCTUnwrap(children.last), signal)
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        launcher.waitUntilExit()
        return (launcher.terminationStatus, output, Date().timeIntervalSince(sent))
    }

    func assertLossesAgree(_ a: [Int: Double], _ b: [Int: Double], relative: Double, line: UInt = #line) {
        XCTAssertEqual(Set(a.keys), Set(b.keys), "the same steps", line: line)
        for step in a.keys.sorted() {
            XCTAssertEqual(a[step]!, b[step] ?? .nan, accuracy: relative * abs(a[step]!), "step \(step)", line: line)
        }
    }

    /// Two "machines" on loopback (two launches with --nnodes 2) are the single launch with --nproc 2.
    func testTwoNodesOnLoopbackEqualOneNodeWithTwoProcesses() throws {
        let (pair, pairConfig) = try workspace(batch: 2)
        let one = try TestSupport.runBackdrop(["train", pairConfig.path, "--registry", "runs.sqlite", "--threads", "1", "--nproc", "2"],
                                              in: pair)
        XCTAssertEqual(one.status, 0, one.output)

        let (nodes, nodesConfig) = try workspace(batch: 2)
        let port = String(try ProcessGroup.freePort())
        let launches = try (0..<2).map { rank -> Process in
            let process = Process()
            process.executableURL = try TestSupport.backdropExecutable()
            process.arguments = ["train", nodesConfig.path, "--registry", "runs.sqlite", "--threads", "1", "--nnodes", "2",
                                 "--node-rank", "\(rank)", "--master-addr", "127.0.0.1", "--master-port", port]
            process.currentDirectoryURL = nodes
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return process
        }
        for launch in launches {
            launch.waitUntilExit()
            XCTAssertEqual(launch.terminationStatus, 0)
        }
        let (a, b) = (try losses(pair), try losses(nodes))
        XCTAssertEqual(a, b, "the same processes doing the same work")
    }

    /// kill -9 of one worker stops the run with an error naming it (no hang); a resume of the same
    /// config in one process finishes it, as one process would have trained.
    func testAKilledWorkerStopsTheRunAndResumeFinishesIt() throws {
        let (folder, config) = try workspace(batch: 2, epochs: 2, checkpointEvery: 3, timeout: 20)
        let (status, output, seconds) = try signalOneOfTwoWorkers(SIGKILL, config, in: folder, atStep: 4)
        XCTAssertLessThan(seconds, 30, "stopped within the timeout")
        XCTAssertEqual(status, 1, output)
        XCTAssertTrue(output.contains("rank 1 of 2 was killed by signal 9"), output)
        XCTAssertLessThan(try losses(folder).count, 10, "killed before the end")

        // Resumed in one process from the same config: the global batch of two panoramas is kept.
        let resumed = try TestSupport.runBackdrop(["train", config.path, "--registry", "runs.sqlite", "--threads", "1", "--resume"],
                                                  in: folder)
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertTrue(resumed.output.contains("resuming ddp-test from step 3"), resumed.output)

        let (single, singleConfig) = try workspace(batch: 2, epochs: 2, checkpointEvery: 3)
        let straight = try TestSupport.runBackdrop(["train", singleConfig.path, "--registry", "runs.sqlite", "--threads", "1"], in: single)
        XCTAssertEqual(straight.status, 0, straight.output)
        assertLossesAgree(try losses(single), try losses(folder), relative: 1e-6)
    }
}
