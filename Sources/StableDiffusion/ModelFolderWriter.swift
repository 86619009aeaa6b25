import Foundation
import Torch

extension ModelFolder {
    /// Writes a copy of this folder to `destination` in which each component named in `weights` holds
    /// the given state dict instead of its own weights: `diffusion_pytorch_model.safetensors` for
    /// diffusers components, `model.safetensors` for transformers ones (what `save_pretrained` writes,
    /// with the `format: pt` metadata transformers checks). Configs, tokenizer and scheduler files
    /// are copied unchanged. The folder is assembled under a temporary name and renamed into place,
    /// so a reader sees the old folder or the new one, never a mix.
    public func write(to destination: URL, replacingWeights weights: [String: [String: Tensor]]) throws {
        for name in weights.keys where components[name] == nil {
            throw LoadingError(file: url.appendingPathComponent("model_index.json").path, key: name,
                               "no such component to replace (the folder has: \(components.keys.sorted().joined(separator: ", ")))")
        }
        let fm = FileManager.default
        let parent = destination.deletingLastPathComponent()
        try fm.createDirectory(at: parent, withIntermediateDirectories: true)
        let staging = parent.appendingPathComponent(".\(destination.lastPathComponent).\(UUID().uuidString).tmp")
        do {
            try fm.copyItem(at: url, to: staging)
            for (name, state) in weights.sorted(by: { $0.key < $1.key }) {
                let folder = staging.appendingPathComponent(name)
                for file in try fm.contentsOfDirectory(atPath: folder.path) where Self.isWeightFile(file) {
                    try fm.removeItem(at: folder.appendingPathComponent(file))
                }
                let file = components[name]?.library == "transformers" ? "model.safetensors" : "diffusion_pytorch_model.safetensors"
                let cpu = try state.mapValues { try $0.to(device: .cpu).contiguous() }
                try Safetensors.save(cpu, metadata: ["format": "pt"], to: folder.appendingPathComponent(file))
            }
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
