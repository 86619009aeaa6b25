import Foundation
import Torch

/// Writes trained weights as `save_pretrained` lays them out, by copying the folder they were loaded
/// from and replacing weights (and config values) in it: configs, tokenizer and scheduler files stay
/// as they were. The copy is assembled under a temporary name and renamed into place, so a reader
/// sees the old folder or the new one, never a mix.
public enum ModelFolderWriter {
    /// New weights for one model folder inside the copy ("" for the copy itself).
    public struct Replacement {
        public var subfolder: String
        /// `diffusion_pytorch_model.safetensors` (diffusers) or `model.safetensors` (transformers).
        public var file: String
        public var weights: [String: Tensor]
        /// Values set in the subfolder's `config.json` (a VAE's measured `scaling_factor`).
        public var config: [String: Any]

        public init(subfolder: String, file: String, weights: [String: Tensor], config: [String: Any] = [:]) {
            (self.subfolder, self.file, self.weights, self.config) = (subfolder, file, weights, config)
        }
    }

    /// Writes `destination` whole or not at all: a copy of `source` (an empty folder when nil)
    /// without its top-level files named in `leavingOut`, with `replacements` and the extra `files`
    /// (relative path → contents) in it, replacing what was there.
    public static func write(copying source: URL?, to destination: URL, replacing replacements: [Replacement],
                             adding files: [String: Data] = [:], leavingOut: Set<String> = []) throws {
        let fm = FileManager.default
        let parent = destination.deletingLastPathComponent()
        try fm.createDirectory(at: parent, withIntermediateDirectories: true)
        let staging = parent.appendingPathComponent(".\(destination.lastPathComponent).\(UUID().uuidString).tmp")
        do {
            if let source { try fm.copyItem(at: source, to: staging) } else { try fm.createDirectory(at: staging, withIntermediateDirectories: false) }
            for name in leavingOut where fm.fileExists(atPath: staging.appendingPathComponent(name).path) {
                try fm.removeItem(at: staging.appendingPathComponent(name))
            }
            for r in replacements {
                let folder = r.subfolder.isEmpty ? staging : staging.appendingPathComponent(r.subfolder)
                try fm.createDirectory(at: folder, withIntermediateDirectories: true)
                for file in try fm.contentsOfDirectory(atPath: folder.path) where isWeightFile(file) {
                    try fm.removeItem(at: folder.appendingPathComponent(file))
                }
                let cpu = try r.weights.mapValues { try $0.to(device: .cpu).contiguous() }
                // transformers refuses safetensors without `format: pt`.
                try Safetensors.save(cpu, metadata: ["format": "pt"], to: folder.appendingPathComponent(r.file))
                if !r.config.isEmpty {
                    let file = folder.appendingPathComponent("config.json")
                    var object = try ConfigFile.object(from: file)
                    for (key, value) in r.config { object[key] = value }
                    try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
                        .write(to: file)
                }
            }
            for (path, contents) in files { try contents.write(to: staging.appendingPathComponent(path)) }
            let old = parent.appendingPathComponent(".\(destination.lastPathComponent).\(UUID().uuidString).old")
            let replacing = fm.fileExists(atPath: destination.path)
            if replacing { try fm.moveItem(at: destination, to: old) }
            try fm.moveItem(at: staging, to: destination)
            if replacing { try? fm.removeItem(at: old) }
        } catch {
            try? fm.removeItem(at: staging)
            throw LoadingError(file: destination.path, "cannot write the model folder: \(error)")
        }
    }

    /// Weight files of any layout `WeightFiles` reads, shards included.
    static func isWeightFile(_ name: String) -> Bool {
        WeightFiles.preferred.contains(name) || name.hasSuffix(".safetensors") || name.hasSuffix(".bin")
            || name.hasSuffix(".safetensors.index.json") || name.hasSuffix(".bin.index.json")
    }
}

extension ModelFolder {
    /// A release's record of what trained it (docs/models.md#shipped-weights). It describes the
    /// release as a whole, so a folder trained from a release does not carry it on: it would claim
    /// to be the release it started from.
    public static let releaseManifest = "manifest.json"

    /// A copy of this pipeline folder (without a release manifest) at `destination` in which each component named in `weights`
    /// holds the given state dict instead of its own, under the file name its library uses, and the
    /// `config` values given per component.
    public func write(to destination: URL, replacingWeights weights: [String: [String: Tensor]],
                      config: [String: [String: Any]] = [:]) throws {
        for name in Set(weights.keys).union(config.keys) where components[name] == nil {
            throw LoadingError(file: url.appendingPathComponent("model_index.json").path, key: name,
                               "no such component to replace (the folder has: \(components.keys.sorted().joined(separator: ", ")))")
        }
        let replacements = weights.keys.sorted().map { name in
            ModelFolderWriter.Replacement(
                subfolder: name,
                file: components[name]?.library == "transformers" ? "model.safetensors" : "diffusion_pytorch_model.safetensors",
                weights: weights[name]!, config: config[name] ?? [:])
        }
        try ModelFolderWriter.write(copying: url, to: destination, replacing: replacements, leavingOut: [Self.releaseManifest])
    }
}
