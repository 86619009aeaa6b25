import Foundation
import Torch

/// Where a training run stands, saved with every checkpoint so a resumed run continues exactly:
/// same data order, same random numbers, same learning rate.
public struct TrainingState: Codable, Equatable, Sendable {
    public var step: Int
    public var epoch: Int
    /// Panoramas of the current epoch already consumed.
    public var positionInEpoch: Int
    /// The LR schedule's call count (`LRScheduler.lastEpoch`).
    public var schedulerSteps: Int
    public var lastLoss: Double?

    public init(step: Int, epoch: Int, positionInEpoch: Int, schedulerSteps: Int, lastLoss: Double? = nil) {
        (self.step, self.epoch, self.positionInEpoch, self.schedulerSteps, self.lastLoss) =
            (step, epoch, positionInEpoch, schedulerSteps, lastLoss)
    }
}

/// A run's checkpoints: `checkpoints/step-00000123/` holding `weights.safetensors` (the trained
/// parameters), `optimizer.safetensors`, `rng.safetensors` (generator states) and `state.json`.
/// Each folder is written under a temporary name and renamed whole, then `latest` is replaced
/// atomically, so a run killed at any moment resumes from a complete checkpoint.
public struct CheckpointStore: Sendable {
    public let directory: URL

    public init(runDirectory: URL) {
        directory = runDirectory.appendingPathComponent("checkpoints")
    }

    public struct Checkpoint: Sendable {
        public let folder: URL
        public let state: TrainingState
        public var weights: URL { folder.appendingPathComponent("weights.safetensors") }
        public var optimizer: URL { folder.appendingPathComponent("optimizer.safetensors") }
        public var rng: URL { folder.appendingPathComponent("rng.safetensors") }
    }

    /// Writes a checkpoint and points `latest` at it; returns its folder.
    @discardableResult
    public func save(state: TrainingState, weights: [String: Tensor], optimizer: OptimizerState,
                     rng: [String: Tensor], metadata: [String: String] = [:]) throws -> URL {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let name = Self.folderName(step: state.step)
        let final = directory.appendingPathComponent(name)
        let staging = directory.appendingPathComponent(".\(name).\(UUID().uuidString).tmp")
        do {
            try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
            try Safetensors.save(weights, metadata: metadata, to: staging.appendingPathComponent("weights.safetensors"))
            try Safetensors.save(optimizer.tensors, metadata: optimizer.metadata,
                                 to: staging.appendingPathComponent("optimizer.safetensors"))
            try Safetensors.save(rng, to: staging.appendingPathComponent("rng.safetensors"))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(state).write(to: staging.appendingPathComponent("state.json"))
            if FileManager.default.fileExists(atPath: final.path) { try FileManager.default.removeItem(at: final) }
            try FileManager.default.moveItem(at: staging, to: final)
        } catch {
            try? FileManager.default.removeItem(at: staging)
            throw TorchError("cannot write checkpoint \(final.path): \(error)")
        }
        try writeAtomically(to: directory.appendingPathComponent("latest")) { try Data(name.utf8).write(to: $0) }
        return final
    }

    static func folderName(step: Int) -> String { String(format: "step-%08d", step) }

    /// The folder of the checkpoint at `step` (which may not exist).
    public func folder(step: Int) -> URL { directory.appendingPathComponent(Self.folderName(step: step)) }

    /// The steps of every complete checkpoint, ascending.
    public func steps() throws -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.compactMap { name -> Int? in
            guard name.hasPrefix("step-"), let step = Int(name.dropFirst(5)),
                  FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).appendingPathComponent("state.json").path)
            else { return nil }
            return step
        }.sorted()
    }

    /// The checkpoint `latest` names, or nil when the run has none yet.
    public func latest() throws -> Checkpoint? {
        let pointer = directory.appendingPathComponent("latest")
        guard let name = try? String(contentsOf: pointer, encoding: .utf8) else { return nil }
        return try load(directory.appendingPathComponent(name.trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    public func load(_ folder: URL) throws -> Checkpoint {
        let stateFile = folder.appendingPathComponent("state.json")
        do {
            let state = try JSONDecoder().decode(TrainingState.self, from: Data(contentsOf: stateFile))
            return Checkpoint(folder: folder, state: state)
        } catch {
            throw TorchError("checkpoint \(folder.path) is unreadable (\(stateFile.lastPathComponent)): \(error)")
        }
    }
}
