import Datasets
import Experiments
import Foundation
import Media
import MultiView
import StableDiffusion
import Torch

/// A registered training run as evaluation sees it: its config, folder, latest checkpoint and the
/// panoramas of one split of its dataset (test views at yaw offset 0, as MVDiffusion evaluates).
public struct EvaluationRun {
    public let record: RunRegistry.Run
    public let config: RunConfig
    public let directory: URL
    public let checkpoint: CheckpointStore.Checkpoint
    public let dataset: Matterport3D
    /// Resolves the config's relative paths (dataset root, model), as training did.
    public let workingDirectory: URL

    /// The newest run named `name` in `registry`. Relative paths in its config are taken from
    /// `workingDirectory` (the folder training ran in).
    public init(named name: String, registry: RunRegistry, split: String,
                workingDirectory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)) throws {
        guard let record = try registry.latestRun(named: name) else {
            let known = Set(try registry.runs().map(\.name)).sorted()
            throw TorchError("no run named '\(name)' in \(registry.url.path)" +
                             (known.isEmpty ? " (it has no runs)" : "; runs: \(known.joined(separator: ", "))"))
        }
        let config: RunConfig
        do {
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            config = try decoder.decode(RunConfig.self, from: Data(record.config.utf8))
        } catch {
            throw TorchError("\(registry.url.path): run \(record.id) ('\(name)') has an unreadable config: \(error)")
        }
        self.record = record
        self.config = config
        self.workingDirectory = workingDirectory
        directory = URL(fileURLWithPath: record.outputDir)
        let store = CheckpointStore(runDirectory: directory)
        guard let checkpoint = try store.latest() else {
            throw TorchError("run '\(name)' has no checkpoint in \(store.directory.path) (train it first)")
        }
        self.checkpoint = checkpoint
        let d = config.dataset
        let views = ViewOptions(count: d.views, fov: d.fov, yawStep: 360 / Double(d.views), resolution: d.resolution,
                                promptPrefix: d.promptPrefix)
        dataset = try Matterport3D(root: Self.path(d.root, in: workingDirectory), split: split,
                                   layout: d.kind == "panfusion" ? .stitched : .skybox, views: views)
    }

    static func path(_ text: String, in base: URL) -> URL {
        let expanded = expandEnvironment(text)
        return expanded.hasPrefix("/") ? URL(fileURLWithPath: expanded) : base.appendingPathComponent(expanded)
    }

    public var baseModel: URL { Self.path(config.model.base, in: workingDirectory) }

    /// `<run>/eval/<split>/`: generated views and cached reference statistics.
    public var evaluationDirectory: URL {
        directory.appendingPathComponent("eval").appendingPathComponent(dataset.split)
    }

    /// The model's CAA weights (the latest checkpoint's).
    public func caaWeights() throws -> [String: Tensor] {
        try SafetensorsFile(url: checkpoint.weights).loadAll()
    }
}

/// One test panorama: ground-truth views and what generation needs.
public struct EvaluationScene {
    public let index: Int
    public let identifier: String
    /// `[V, 3, H, W]` uint8.
    public let groundTruth: Tensor
    public let prompts: [String]
    /// `[V, 3, 3]` each.
    public let intrinsics: Tensor
    public let rotations: Tensor

    public init(_ sample: MultiViewSample) throws {
        index = sample.index
        identifier = sample.panoramaID
        groundTruth = try toUInt8(sample.images)
        prompts = sample.prompts
        intrinsics = sample.intrinsics
        rotations = sample.rotations
    }

    /// A fingerprint of the ground-truth pixels (keys the cached FID reference statistics).
    func fingerprint(into hash: inout ContentHash) throws {
        let bytes: [UInt8] = try groundTruth.contiguous().toArray()
        hash.update(identifier)
        bytes.withUnsafeBytes { hash.update($0) }
    }

    /// A folder name: position in the split and the panorama id.
    var folderName: String { String(format: "%05d_", index) + identifier.replacingOccurrences(of: "/", with: "_") }
}

/// `[…, 3, H, W]` in [−1, 1] → uint8, rounded as a PNG of it would store it (`Image(tensor:range: .signed)`).
func toUInt8(_ signed: Tensor) throws -> Tensor {
    try (((signed.to(dtype: .float32) + 1) / 2).clamp(min: 0, max: 1) * 255).round().to(dtype: .uint8)
}

/// Generated views of the evaluated scenes, kept under `<folder>/<scene>/view_<i>.png` with the
/// settings that made them (`generation.json`): a later evaluation with the same settings reads
/// them instead of sampling again. Each scene's folder is written whole under a temporary name and
/// renamed, so an interrupted evaluation leaves no half-written scene.
public struct GeneratedViewStore {
    public let folder: URL

    /// Everything that changes the pixels; a stored scene is reused only under equal settings.
    public struct Settings: Codable, Equatable {
        public var system: String
        public var baseModel: String
        /// The checkpoint folder's name and a fingerprint of its weights (a retrained run reuses step names).
        public var checkpoint: String?
        public var checkpointHash: String?
        public var prompts: [String]
        public var steps: Int
        public var guidance: Double
        public var seed: UInt64
        public var resolution: Int
        public var views: Int
    }

    public init(folder: URL) { self.folder = folder }

    /// The stored views `[V, 3, H, W]` uint8 of `scene` when they were made with `settings`.
    public func load(_ scene: EvaluationScene, settings: Settings) throws -> Tensor? {
        let directory = folder.appendingPathComponent(scene.folderName)
        let settingsFile = directory.appendingPathComponent("generation.json")
        guard let data = try? Data(contentsOf: settingsFile),
              let stored = try? JSONDecoder().decode(Settings.self, from: data), stored == settings else { return nil }
        let views = try (0..<settings.views).map { i -> Tensor in
            let url = directory.appendingPathComponent("view_\(i).png")
            do { return try Image(contentsOf: url).rgb8().tensor(.uint8) } catch {
                throw TorchError("\(url.path): unreadable generated view (\(error)); delete \(directory.path) to regenerate")
            }
        }
        return try Tensor.stack(views)
    }

    /// Writes a scene's views `[V, 3, H, W]` uint8, its stitched panorama (for looking at) and settings.
    public func save(_ scene: EvaluationScene, views: Tensor, panorama: Tensor?, settings: Settings) throws {
        let final = folder.appendingPathComponent(scene.folderName)
        let staging = folder.appendingPathComponent(".\(scene.folderName).\(UUID().uuidString).tmp")
        do {
            try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
            for i in 0..<views.shape[0] {
                try Image(tensor: views.select(dim: 0, index: i), range: .uint8).write(to: staging.appendingPathComponent("view_\(i).png"))
            }
            if let panorama {
                try Image(tensor: panorama, range: .signed).write(to: staging.appendingPathComponent("panorama.png"))
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(settings).write(to: staging.appendingPathComponent("generation.json"))
            if FileManager.default.fileExists(atPath: final.path) { try FileManager.default.removeItem(at: final) }
            try FileManager.default.moveItem(at: staging, to: final)
        } catch {
            try? FileManager.default.removeItem(at: staging)
            throw TorchError("cannot write generated views to \(final.path): \(error)")
        }
    }
}

extension EvaluationRun {
    /// The CLIP model folder: `override` (`--clip`) or the config's `evaluation.clip_model`; nil when
    /// neither is set. A configured folder without `config.json` is an error naming where it came from.
    public func clipModel(override: String?) throws -> URL? {
        let (value, origin): (String?, String) = override != nil
            ? (override, "--clip")
            : (config.evaluation?.clipModel, "evaluation.clip_model of run '\(record.name)'")
        guard let value else { return nil }
        let url = Self.path(value, in: workingDirectory)
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("config.json").path) else {
            throw TorchError("\(origin): \(url.appendingPathComponent("config.json").path) not found (expected a transformers CLIPModel folder)")
        }
        return url
    }

    /// `override` (`--inception`), else the config's `evaluation.inception_weights`, else `fallback`.
    public func inceptionWeights(override: String?, fallback: () throws -> URL) throws -> URL {
        if let override { return Self.path(override, in: workingDirectory) }
        if let configured = config.evaluation?.inceptionWeights {
            let url = Self.path(configured, in: workingDirectory)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw TorchError("evaluation.inception_weights of run '\(record.name)': \(url.path) not found")
            }
            return url
        }
        return try fallback()
    }
}
