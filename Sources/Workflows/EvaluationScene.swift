import Datasets
import Experiments
import Foundation
import Geometry
import Support
import Media
import MultiView
import StableDiffusion
import Torch

/// One test panorama: ground-truth views and what generation needs.
public struct EvaluationScene {
    public let index: Int
    public let identifier: String
    /// `[V, 3, H, W]` uint8.
    public let groundTruth: Tensor
    public let prompts: [String]
    public let layout: ViewLayout

    public init(_ sample: MultiViewSample) throws {
        index = sample.index
        identifier = sample.panoramaID
        groundTruth = try sample.images.signedToUInt8()
        prompts = sample.prompts
        layout = sample.layout
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
        /// `ModelFolder.contentHash` of the base model: new weights under the same path (a republished
        /// release, a fine-tuned decoder) change the pixels too.
        public var baseModelHash: String?
        /// The checkpoint folder's name and a fingerprint of its weights (a retrained run reuses step names).
        public var checkpoint: String?
        public var checkpointHash: String?
        public var prompts: [String]
        public var steps: Int
        public var guidance: Double
        public var seed: UInt64
        public var resolution: Int
        public var views: Int
        /// How the views drew their initial latents; nil for independent draws, so views stored before
        /// the choice existed still match.
        public var noise: InitialNoise?
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

    /// Writes a scene's views `[V, 3, H, W]` uint8, its stitched panorama (for looking at), settings
    /// and cameras.json.
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
            try CamerasFile(layout: scene.layout, panorama: scene.identifier, yawOffset: 0).write(into: staging)
            if FileManager.default.fileExists(atPath: final.path) { try FileManager.default.removeItem(at: final) }
            try FileManager.default.moveItem(at: staging, to: final)
        } catch {
            try? FileManager.default.removeItem(at: staging)
            throw TorchError("cannot write generated views to \(final.path): \(error)")
        }
    }
}

extension Run {
    /// The CLIP model folder: `override` (`--clip`) or the config's `evaluation.clip_model`; nil when
    /// neither is set. A configured folder without `config.json` is an error naming where it came from.
    public func clipModel(override: String?) throws -> URL? {
        let (value, origin): (String?, String) = override != nil
            ? (override, "the CLIP model")
            : (config.evaluation?.clipModel, "evaluation.clip_model of run '\(config.name)'")
        guard let value else { return nil }
        let url = path(value)
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("config.json").path) else {
            throw TorchError("\(origin): \(url.appendingPathComponent("config.json").path) not found (expected a transformers CLIPModel folder)")
        }
        return url
    }

    /// `override`, else the config's `evaluation.inception_weights`, else `fallback`.
    public func inceptionWeights(override: String?, fallback: () throws -> URL) throws -> URL {
        if let override { return path(override) }
        if let configured = config.evaluation?.inceptionWeights {
            let url = path(configured)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw TorchError("evaluation.inception_weights of run '\(config.name)': \(url.path) not found")
            }
            return url
        }
        return try fallback()
    }
}
