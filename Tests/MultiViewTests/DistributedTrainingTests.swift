import BackdropTestSupport
import Datasets
import Experiments
import Foundation
import Torch
import XCTest

@testable import MultiView

/// Data-parallel training over c10d/Gloo (docs/distributed.md): two processes with batch B/2 each
/// train what one process with batch B trains, to float32 summation tolerance.
final class DistributedTrainingTests: XCTestCase {
    /// Rooms, and a CAA config whose per-process batch is `batch`.
    func workspace(batch: Int, output: String) throws -> (folder: URL, config: URL) {
        // 12 rooms: 10 to train on, an even count, so both launches see the same steps per epoch.
        try trainingWorkspace(self, rooms: 12, name: "ddp") { model in """
            name: ddp-test
            model: {base: \(model)}
            dataset: {kind: synthrooms, root: rooms, resolution: 64, views: 8}
            caa: {pe_max_frequency: 16}
            optimizer: {lr: 1.0e-3, weight_decay: 0}
            schedule: {kind: cosine, interval: step, eta_min: 1.0e-5}
            training: {epochs: 1, batch_size: \(batch), checkpoint_every: 100, log_every: 1, seed: 11, device: cpu, max_grad_norm: 1.0}
            distributed: {timeout: 60, bucket_mb: 0.05}
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

        let (pair, pairConfig) = try workspace(batch: 1, output: "run")
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
        var largest = 0.0
        for name in ours.names { largest = max(largest, try TestSupport.maxAbsDifference(ours.tensor(name), theirs.tensor(name))) }
        // Adam divides by √v: where a gradient is ~0, float32 summation-order noise becomes a step
        // of up to lr (1e-3) either way, so the weights agree to a fraction of one step.
        XCTAssertLessThan(largest, 1e-4)
        print("2 × batch 1 vs 1 × batch 2: \(a.count) steps, largest relative loss difference \(worst), largest weight difference \(largest)")
    }
}
