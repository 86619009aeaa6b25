import Experiments
import Foundation
import Geometry
import Media
import MultiView
import StableDiffusion
import Support
import Torch

/// The panoramas of a blind rating study (`backdrop study create`, docs/web.md#rating-study): each
/// system's panorama for each prompt, prompt i sampled with seed + i so that the systems are compared
/// on the same noise. A panorama is kept under `<results>/studies/.panoramas/<fingerprint>/` with the
/// settings that made it; a later study with the same system, prompt and settings reuses it. The
/// folder name is a hash, so nothing a rater can see names the system.
public struct StudyPanoramas {
    public struct System {
        /// As the user named it: the run name, with " --baseline" for its baseline.
        public var label: String
        public var run: Run
        public var baseline: Bool

        public init(label: String, run: Run, baseline: Bool) { (self.label, self.run, self.baseline) = (label, run, baseline) }
    }

    public var steps = 50
    public var guidance = 9.0
    public var seed: UInt64 = 0
    public var device: Device = .cpu

    public init() {}

    public struct Made {
        public var panoramas: [(system: String, runId: Int64?, kind: String, prompt: String, folder: URL)]
        public var generated: Int
        public var reused: Int
    }

    public func make(systems: [System], prompts: [String], registry: RunRegistry) throws -> Made {
        let store = registry.root.appendingPathComponent("studies/.panoramas")
        var made = Made(panoramas: [], generated: 0, reused: 0)
        for system in systems {
            let weights = system.baseline ? nil : try system.run.checkpoint().weights
            let layout = try system.run.layout()
            let hash = try weights.map { try ContentHash.of($0) }
            let modelHash = try ModelFolder(url: system.run.baseModel).contentHash()
            func settings(_ index: Int) -> GeneratedViewStore.Settings {
                .init(system: system.baseline ? "baseline" : "model", baseModel: system.run.baseModel.path,
                      baseModelHash: modelHash,
                      checkpoint: weights?.deletingLastPathComponent().lastPathComponent, checkpointHash: hash,
                      prompts: [prompts[index]], steps: steps, guidance: guidance, seed: seed &+ UInt64(index),
                      resolution: layout.resolution, views: layout.count)
            }
            var generator: PanoramaGenerator?
            let progress = ProgressReporter(title: "study panoramas (\(system.label))", total: prompts.count)
            for index in prompts.indices {
                let setting = settings(index)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                let settingsData = try encoder.encode(setting)
                var fingerprint = ContentHash()
                settingsData.withUnsafeBytes { fingerprint.update($0) }
                let folder = store.appendingPathComponent(fingerprint.hex)
                if let stored = try? Data(contentsOf: folder.appendingPathComponent("generation.json")), stored == settingsData,
                   FileManager.default.fileExists(atPath: folder.appendingPathComponent("panorama.png").path) {
                    made.reused += 1
                } else {
                    if generator == nil {
                        generator = try PanoramaGenerator.load(.run(system.run, .latest), baseline: system.baseline, device: device)
                    }
                    let result = try generator!.generate(prompts: [prompts[index]], steps: steps, guidanceScale: guidance, seed: setting.seed)
                    let staging = store.appendingPathComponent(".\(fingerprint.hex).\(UUID().uuidString).tmp")
                    do {
                        try result.write(to: staging)
                        try settingsData.write(to: staging.appendingPathComponent("generation.json"))
                        if FileManager.default.fileExists(atPath: folder.path) { try FileManager.default.removeItem(at: folder) }
                        try FileManager.default.moveItem(at: staging, to: folder)
                    } catch {
                        try? FileManager.default.removeItem(at: staging)
                        throw TorchError("cannot write the study panorama \(folder.path): \(error)")
                    }
                    made.generated += 1
                }
                made.panoramas.append((system.label, system.run.record?.id, system.baseline ? "baseline" : "model", prompts[index], folder))
                progress.update(index + 1)
            }
            progress.finish()
        }
        return made
    }
}
