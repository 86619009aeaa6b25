import Foundation
import Geometry
import Support
import Torch

/// A training run, resolved once: its typed config, its folder, its checkpoints and the model and
/// view geometry it was trained with. Training, generation, export and evaluation ask a `Run`; nobody
/// else opens the registry for a run or parses a run folder.
///
/// A run folder holds `run.json` (the config with every default filled in, and the folder its
/// relative paths are resolved from) and `checkpoints/`; the registry holds the run's rows.
public struct Run: Sendable {
    public let config: RunConfig
    /// The run's output folder.
    public let directory: URL
    /// Where the config's relative paths (model, dataset, caches) are resolved.
    public let workingDirectory: URL
    /// The registry row, when the run has one.
    public let record: RunRegistry.Run?

    /// A run about to be trained from a config: nothing is read or written yet.
    public init(config: RunConfig, workingDirectory: URL = Run.currentDirectory) {
        self.config = config
        self.workingDirectory = workingDirectory
        directory = Self.resolve(config.outputDir, in: workingDirectory)
        record = nil
    }

    init(config: RunConfig, directory: URL, workingDirectory: URL, record: RunRegistry.Run?) {
        (self.config, self.directory, self.workingDirectory, self.record) = (config, directory, workingDirectory, record)
    }

    public static var currentDirectory: URL { URL(fileURLWithPath: FileManager.default.currentDirectoryPath) }

    // MARK: Resolving

    /// A run by name (the newest registered run of that name) or by folder (a path holding `run.json`).
    /// `registry` nil: there is none (yet), so only a folder resolves.
    public static func resolve(_ nameOrFolder: String, registry: RunRegistry?,
                               workingDirectory: URL = Run.currentDirectory) throws -> Run {
        let folder = resolve(nameOrFolder, in: workingDirectory)
        if FileManager.default.fileExists(atPath: folder.appendingPathComponent(descriptionFile).path) {
            return try Run(folder: folder, registry: registry)
        }
        guard let registry else {
            throw TorchError("no run named '\(nameOrFolder)': there is no run registry, and no run folder (with \(descriptionFile)) " +
                             "at \(folder.path)")
        }
        return try named(nameOrFolder, registry: registry, workingDirectory: workingDirectory)
    }

    /// The newest run named `name` in `registry`. Its relative paths resolve from `workingDirectory`
    /// (the folder commands run in), unless its folder records where it was trained.
    public static func named(_ name: String, registry: RunRegistry, workingDirectory: URL = Run.currentDirectory) throws -> Run {
        guard let record = try registry.latestRun(named: name) else {
            let known = Set(try registry.runs().map(\.name)).sorted()
            throw TorchError("no run named '\(name)' in \(registry.url.path)" +
                             (known.isEmpty ? " (it has no runs)" : "; runs: \(known.joined(separator: ", "))"))
        }
        let config = try RunConfig.parse(yaml: record.config, file: "\(registry.url.path) (run \(record.id), '\(name)')")
        let directory = registry.directory(of: record)
        let stored = try? Description.read(from: directory)
        return Run(config: config, directory: directory, workingDirectory: stored?.workingDirectory ?? workingDirectory,
                   record: record)
    }

    /// The run in `folder` (its `run.json`), with its registry row when the registry knows the folder.
    public init(folder: URL, registry: RunRegistry?) throws {
        let description = try Description.read(from: folder)
        let config = try RunConfig.parse(yaml: description.config,
                                         file: folder.appendingPathComponent(Self.descriptionFile).path)
        let record = try registry.flatMap { registry in
            try registry.runs().last { registry.directory(of: $0).standardizedFileURL.path == folder.standardizedFileURL.path }
        }
        self.init(config: config, directory: folder, workingDirectory: description.workingDirectory, record: record)
    }

    // MARK: The run folder

    public static let descriptionFile = "run.json"

    /// `run.json`: what `Run(folder:)` needs to resolve the run without the registry —
    /// `{"config": {…the config with its defaults…}, "working_directory": "/path"}`.
    struct Description {
        var config: String
        var workingDirectory: URL

        static func read(from folder: URL) throws -> Description {
            let url = folder.appendingPathComponent(Run.descriptionFile)
            let object: Any
            do {
                object = try JSONSerialization.jsonObject(with: Data(contentsOf: url))
            } catch {
                throw TorchError("\(url.path): not a readable run description (\(failureReason(error)))")
            }
            guard let fields = object as? [String: Any], let config = fields["config"] as? [String: Any],
                  let directory = fields["working_directory"] as? String else {
                throw TorchError("\(url.path): a run description needs 'config' (a mapping) and 'working_directory' (a path)")
            }
            let text = String(decoding: try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]), as: UTF8.self)
            return Description(config: text, workingDirectory: URL(fileURLWithPath: directory, isDirectory: true))
        }
    }

    /// Writes `run.json` into the run folder (training does, before its first step).
    public func writeDescription() throws {
        let config = try JSONSerialization.jsonObject(with: Data(config.json().utf8))
        let data = try JSONSerialization.data(withJSONObject: ["config": config, "working_directory": workingDirectory.path],
                                              options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try writeAtomically(to: directory.appendingPathComponent(Self.descriptionFile)) { try data.write(to: $0) }
    }

    // MARK: Paths

    /// A path of the config: `$VAR`s expanded, relative paths under the working directory.
    public func path(_ text: String) -> URL { Self.resolve(text, in: workingDirectory) }

    static func resolve(_ text: String, in base: URL) -> URL {
        let expanded = expandEnvironment(text)
        return expanded.hasPrefix("/") ? URL(fileURLWithPath: expanded) : base.appendingPathComponent(expanded)
    }

    /// `<run>/model/`: the diffusers folder a finished autoencoder or text-to-image run writes (its
    /// base model with the trained components' weights).
    public static let modelFolderName = "model"
    public var modelDirectory: URL { directory.appendingPathComponent(Self.modelFolderName) }

    /// The diffusers model folder the run was trained on.
    public var baseModel: URL { path(config.model.base) }
    public var datasetRoot: URL { path(config.dataset.root) }
    /// The HDF5 latent cache the config names, or nil.
    public var latentCache: URL? { config.dataset.latentCache.map(path) }
    /// `<run>/eval/<split>/`: generated views and cached reference statistics.
    public func evaluationDirectory(split: String) -> URL {
        directory.appendingPathComponent("eval").appendingPathComponent(split)
    }

    // MARK: Geometry

    /// The cameras of the run's views: `views` views of `fov` at `resolution` pixels, 360°/views apart,
    /// the first at `yawOffset`.
    public func layout(yawOffset: Double = 0) throws -> ViewLayout {
        let d = config.dataset
        return try ViewLayout.horizon(count: d.views, fov: d.fov, resolution: d.resolution, yawOffset: yawOffset)
    }

    // MARK: Checkpoints

    public var checkpoints: CheckpointStore { CheckpointStore(runDirectory: directory) }

    /// Which checkpoint of a run.
    public enum CheckpointSelection: Hashable, Sendable {
        case latest
        case step(Int)
    }

    /// A checkpoint of the run; errors say what exists.
    public func checkpoint(_ selection: CheckpointSelection = .latest) throws -> CheckpointStore.Checkpoint {
        let store = checkpoints
        switch selection {
        case .latest:
            guard let latest = try store.latest() else {
                throw TorchError("run '\(config.name)' has no checkpoint in \(store.directory.path) (train it first)")
            }
            return latest
        case .step(let step):
            let steps = try store.steps()
            guard steps.contains(step) else {
                throw TorchError("run '\(config.name)' has no checkpoint at step \(step)" +
                                 (steps.isEmpty ? " (it has none)" : "; steps: \(steps.map(String.init).joined(separator: ", "))"))
            }
            return try store.load(store.folder(step: step))
        }
    }
}
