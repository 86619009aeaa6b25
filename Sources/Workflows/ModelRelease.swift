import Datasets
import Experiments
import Foundation
import MultiView
import StableDiffusion
import Torch

/// A finished run's model as Backdrop ships it (docs/models.md#shipped-weights): the folder the run
/// wrote (diffusers or transformers layout), or for a CAA run its blocks' averaged weights as
/// `caa.safetensors`, with floating-point tensors stored in `dtype`, and `manifest.json` saying what
/// trained it. Loaders convert the tensors back to the model's dtype, so an fp16 release runs in fp32.
public enum ModelRelease {
    /// What `manifest.json` holds besides `config`, the run config as the run recorded it (an object):
    /// the run's `Stage` keys at the top level, then the release's own.
    public struct Manifest: Codable, Equatable, Sendable {
        public var run: Stage
        public var dtype: String
        /// For CAA weights: the model folder they were trained on, as the caller names it.
        public var baseModel: String?
        /// Each file of the release (relative path) and its size in bytes.
        public var files: [String: Int]
        /// Earlier runs whose weights the folder also holds (the miniature SD's VAE, from stage 1).
        public var earlierStages: [Stage]

        enum CodingKeys: String, CodingKey { case dtype, baseModel, files, earlierStages }

        init(run: Stage, dtype: String, baseModel: String?, files: [String: Int], earlierStages: [Stage]) {
            (self.run, self.dtype, self.baseModel, self.files, self.earlierStages) = (run, dtype, baseModel, files, earlierStages)
        }

        public init(from decoder: any Decoder) throws {
            run = try Stage(from: decoder)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            dtype = try c.decode(String.self, forKey: .dtype)
            baseModel = try c.decodeIfPresent(String.self, forKey: .baseModel)
            files = try c.decode([String: Int].self, forKey: .files)
            earlierStages = try c.decodeIfPresent([Stage].self, forKey: .earlierStages) ?? []
        }

        public func encode(to encoder: any Encoder) throws {
            try run.encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(dtype, forKey: .dtype)
            try c.encodeIfPresent(baseModel, forKey: .baseModel)
            try c.encode(files, forKey: .files)
            try c.encode(earlierStages, forKey: .earlierStages)
        }
    }

    /// Where a run's weights came from.
    public struct Stage: Codable, Equatable, Sendable {
        public var name: String
        public var task: String
        /// The config file it came from, when given.
        public var configFile: String?
        /// The synthetic-rooms recipe of the training data (seed, count, face size), when the dataset has one.
        public var dataset: SyntheticRooms.Recipe?
        public var steps: Int
        /// From the run's start to its end in the registry (a resumed run counts its pause too).
        public var wallTimeSeconds: Double?
        /// The commit the run recorded ("-dirty": with uncommitted changes to tracked files).
        public var gitCommit: String?

        init(run: Run, configFile: String?) throws {
            let record = try finishedRecord(run)
            (name, task, self.configFile) = (run.config.name, run.config.task.rawValue, configFile)
            dataset = SyntheticRooms.recipe(at: run.datasetRoot)
            steps = try run.checkpoint(.latest).state.step
            wallTimeSeconds = record.endedAt.map { $0.timeIntervalSince(record.startedAt) }
            gitCommit = record.gitCommit
        }

        /// The same training run, whether or not each names its config file.
        func isSameRun(as other: Stage) -> Bool {
            var other = other
            other.configFile = configFile
            return self == other
        }
    }

    static func finishedRecord(_ run: Run) throws -> RunRegistry.Run {
        guard let record = run.record, record.status == "finished" else {
            throw TorchError("\(run.config.name) has not finished (status: \(run.record?.status ?? "not in the registry")); " +
                             "only a finished run is released")
        }
        return record
    }

    public static let manifestFile = ModelFolder.releaseManifest
    public static let caaFile = "caa.safetensors"

    /// Writes `run`'s release to `destination` (atomically) and returns its manifest.
    @discardableResult
    public static func write(run: Run, to destination: URL, dtype: DType = .float16, configFile: String? = nil,
                             baseModel: String? = nil, earlierStages: [(run: Run, configFile: String?)] = [],
                             registry: RunRegistry? = nil) throws -> Manifest {
        let stage = try Stage(run: run, configFile: configFile)
        // A run named by `--earlier` that is also inherited is listed once, with the config file named.
        var stages: [Stage] = []
        for earlier in try earlierStages.map({ try Stage(run: $0.run, configFile: $0.configFile) }) + inheritedStages(run, registry: registry)
        where !stages.contains(where: { $0.isSameRun(as: earlier) }) { stages.append(earlier) }
        let checkpoint = try run.checkpoint(.latest)
        var replacements: [ModelFolderWriter.Replacement] = []
        var source: URL?
        if run.config.task == .caa {
            let weights = try MultiViewUNet.inferenceWeights(contentsOf: checkpoint.weights)
            replacements.append(.init(subfolder: "", file: caaFile, weights: try converted(weights, to: dtype)))
        } else {
            source = run.modelDirectory
            for file in try weightFiles(in: run.modelDirectory) {
                let weights = try SafetensorsFile(url: run.modelDirectory.appendingPathComponent(file)).loadAll()
                let url = URL(fileURLWithPath: file)
                let folder = url.deletingLastPathComponent().relativePath
                replacements.append(.init(subfolder: folder == "." ? "" : folder, file: url.lastPathComponent,
                                          weights: try converted(weights, to: dtype)))
            }
        }
        var manifest = Manifest(run: stage, dtype: "\(dtype)", baseModel: run.config.task == .caa ? baseModel : nil,
                                files: [:], earlierStages: stages)
        // Sizes are known only once written: write, measure, then rewrite the manifest in place.
        let config = try run.config.json()
        try ModelFolderWriter.write(copying: source, to: destination, replacing: replacements,
                                    adding: [manifestFile: try encode(manifest, config: config)])
        manifest.files = try fileSizes(in: destination).filter { $0.key != manifestFile }
        try encode(manifest, config: config).write(to: destination.appendingPathComponent(manifestFile), options: .atomic)
        return manifest
    }

    /// The stages a run started from, read before `destination` may replace them. Where it started is
    /// its `model.base` (for a CAA run the folder of its `caa.init_weights`; its base model's stages
    /// stay in that model's own manifest). A release there gives its own stage and the ones it lists
    /// (a text-to-image run trained on from a shipped SD); another run's `model` folder gives that
    /// run, found through its `run.json` and `registry`, and what it in turn started from (a UNet
    /// trained on from a fine-tuned decoder's folder).
    static func inheritedStages(_ run: Run, registry: RunRegistry?) throws -> [Stage] {
        let start = run.config.task == .caa
            ? run.config.caa.initWeights.map { run.path($0).deletingLastPathComponent() }
            : run.path(run.config.model.base)
        guard let start else { return [] }
        let fm = FileManager.default
        if fm.fileExists(atPath: start.appendingPathComponent(manifestFile).path) {
            let release = try manifest(at: start)
            return [release.run] + release.earlierStages
        }
        let folder = start.deletingLastPathComponent()
        guard let registry, start.lastPathComponent == Run.modelFolderName,
              fm.fileExists(atPath: folder.appendingPathComponent(Run.descriptionFile).path) else { return [] }
        let earlier = try Run(folder: folder, registry: registry)
        return try [Stage(run: earlier, configFile: nil)] + inheritedStages(earlier, registry: registry)
    }

    public static func manifest(at folder: URL) throws -> Manifest {
        let file = folder.appendingPathComponent(manifestFile)
        do {
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            return try decoder.decode(Manifest.self, from: Data(contentsOf: file))
        } catch {
            throw TorchError("\(file.path): not a Backdrop release manifest (\(error))")
        }
    }

    static func converted(_ weights: [String: Tensor], to dtype: DType) throws -> [String: Tensor] {
        try weights.mapValues { try $0.dtype.isFloatingPoint ? $0.to(dtype: dtype) : $0 }
    }

    static func encode(_ manifest: Manifest, config: String) throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        var object = try JSONSerialization.jsonObject(with: encoder.encode(manifest)) as? [String: Any] ?? [:]
        object["config"] = try JSONSerialization.jsonObject(with: Data(config.utf8))
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }

    /// The `.safetensors` files under `folder`, as relative paths; other weight formats are refused
    /// (a run writes safetensors only).
    static func weightFiles(in folder: URL) throws -> [String] {
        let files = try fileSizes(in: folder).keys.sorted()
        if let other = files.first(where: { $0.hasSuffix(".bin") || $0.hasSuffix(".ckpt") || $0.hasSuffix(".pt") }) {
            throw TorchError("\(folder.appendingPathComponent(other).path): only safetensors weights are released")
        }
        return files.filter { $0.hasSuffix(".safetensors") }
    }

    static func fileSizes(in folder: URL) throws -> [String: Int] {
        let fm = FileManager.default
        var sizes: [String: Int] = [:]
        guard let walker = fm.enumerator(at: folder, includingPropertiesForKeys: [.isRegularFileKey, .fileSizeKey]) else {
            throw TorchError("\(folder.path): cannot list the folder")
        }
        let prefix = folder.standardizedFileURL.path + "/"
        for case let url as URL in walker {
            let values = try url.resourceValues(forKeys: [.isRegularFileKey, .fileSizeKey])
            guard values.isRegularFile == true else { continue }
            sizes[String(url.standardizedFileURL.path.dropFirst(prefix.count))] = values.fileSize ?? 0
        }
        return sizes
    }
}
