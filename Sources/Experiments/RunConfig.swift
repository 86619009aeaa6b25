import Foundation
import Torch

/// A training run as `experiments/<name>.yaml` describes it. Every default is MVDiffusion's setting
/// (REFERENCE.md §2) unless the smoke config overrides it.
public struct RunConfig: Codable, Equatable, Sendable {
    public struct Model: Codable, Equatable, Sendable {
        /// A diffusers model folder (SD 2-base for the paper setup).
        public var base: String
        /// float32 (the paper), float16 or bfloat16 for the frozen weights.
        public var dtype: String = "float32"
    }

    public struct Dataset: Codable, Equatable, Sendable {
        /// `synthrooms`, `matterport3d` (MVDiffusion's mp3d_skybox layout) or `panfusion`.
        public var kind: String = "matterport3d"
        public var root: String
        public var split: String = "train"
        /// Pixels per view side.
        public var resolution: Int = 512
        public var views: Int = 8
        public var fov: Double = 90
        /// `random` (training, [0, 360)) or `zero` (test).
        public var yawOffset: String = "random"
        public var promptPrefix: String = "This is one view of a scene. "
        /// HDF5 latent cache; encoded on the fly when absent.
        public var latentCache: String?
        /// Random yaw offsets stored per panorama in the cache.
        public var cacheOffsets: Int = 4
        public var skipBad: Bool = false
    }

    public struct CAA: Codable, Equatable, Sendable {
        /// `ring` (the released code: i−1, i+1) or `all` (the paper).
        public var neighbours: String = "ring"
        /// nil reproduces the released positional-encoding frequencies (checkpoint compatible).
        public var peMaxFrequency: Double?
    }

    public struct Optimizer: Codable, Equatable, Sendable {
        public var name: String = "adamw"
        public var lr: Double = 2e-4
        public var betas: [Double] = [0.9, 0.999]
        public var eps: Double = 1e-8
        public var weightDecay: Double = 0.01
    }

    public struct Schedule: Codable, Equatable, Sendable {
        /// `cosine`, `constant` or `warmup_cosine`.
        public var kind: String = "cosine"
        public var etaMin: Double = 1e-7
        /// `epoch` (MVDiffusion) or `step`.
        public var interval: String = "epoch"
        public var warmupSteps: Int = 0
        public var warmupStartFactor: Double = 0.1
    }

    public struct Training: Codable, Equatable, Sendable {
        public var epochs: Int = 10
        /// Stops early after this many optimiser steps when set.
        public var maxSteps: Int?
        /// Panoramas per step.
        public var batchSize: Int = 1
        public var gradientAccumulation: Int = 1
        public var gradientCheckpointing: Bool = false
        /// `fp32` or `bf16` (autocast where the device supports it).
        public var precision: String = "fp32"
        public var seed: Int = 0
        public var checkpointEvery: Int = 1000
        public var logEvery: Int = 10
        public var device: String = "best"
    }

    /// What `backdrop eval` needs beyond the run (section `evaluation`, optional).
    public struct Evaluation: Codable, Equatable, Sendable {
        /// A transformers `CLIPModel` folder for the CLIP score; without one CS is "not configured".
        public var clipModel: String?
        /// FID Inception weights; default: the NVIDIA archive `make setup` fetches.
        public var inceptionWeights: String?
    }

    public var name: String
    public var model: Model
    public var dataset: Dataset
    public var caa: CAA
    public var optimizer: Optimizer
    public var schedule: Schedule
    public var training: Training
    public var outputDir: String
    /// nil when the config has no `evaluation` section (so older configs' JSON is unchanged).
    public var evaluation: Evaluation? = nil

    /// Reads and validates a config file; errors name the file and the key.
    public static func load(_ url: URL) throws -> RunConfig {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw ConfigError(file: url.path, key: "", message: "cannot read: \(error.localizedDescription)")
        }
        return try parse(yaml: text, file: url.path, defaultName: url.deletingPathExtension().lastPathComponent)
    }

    public static func parse(yaml: String, file: String, defaultName: String = "run") throws -> RunConfig {
        let root = try ConfigSection.parse(yaml: yaml, file: file)
        let name = try root.string("name", default: defaultName)!

        let m = try root.section("model")
        let model = Model(base: try m.requiredString("base"),
                          dtype: try m.choice("dtype", ["float32", "float16", "bfloat16"], default: "float32"))
        try m.finish()

        let d = try root.section("dataset")
        var dataset = Dataset(root: "")
        dataset.kind = try d.choice("kind", ["synthrooms", "matterport3d", "panfusion"], default: dataset.kind)
        dataset.root = try d.requiredString("root")
        dataset.split = try d.choice("split", ["train", "test"], default: dataset.split)
        dataset.resolution = try positive(d, "resolution", dataset.resolution, multipleOf: 8)
        dataset.views = try positive(d, "views", dataset.views)
        dataset.fov = try d.double("fov", default: dataset.fov)
        dataset.yawOffset = try d.choice("yaw_offset", ["random", "zero"], default: dataset.yawOffset)
        dataset.promptPrefix = try d.string("prompt_prefix", default: dataset.promptPrefix)!
        dataset.latentCache = try d.string("latent_cache")
        dataset.cacheOffsets = try positive(d, "cache_offsets", dataset.cacheOffsets)
        dataset.skipBad = try d.bool("skip_bad", default: dataset.skipBad)
        try d.finish()
        guard dataset.fov > 0, dataset.fov < 180 else {
            throw ConfigError(file: file, key: "dataset.fov", message: "must lie in (0, 180) degrees, got \(dataset.fov)")
        }

        let c = try root.section("caa")
        var caa = CAA()
        caa.neighbours = try c.choice("neighbours", ["ring", "all"], default: caa.neighbours)
        caa.peMaxFrequency = try c.double("pe_max_frequency")
        try c.finish()

        let o = try root.section("optimizer")
        var optimizer = Optimizer()
        optimizer.name = try o.choice("name", ["adamw", "sgd"], default: optimizer.name)
        optimizer.lr = try o.double("lr", default: optimizer.lr)
        optimizer.betas = try o.doubles("betas", count: 2, default: optimizer.betas)
        optimizer.eps = try o.double("eps", default: optimizer.eps)
        optimizer.weightDecay = try o.double("weight_decay", default: optimizer.weightDecay)
        try o.finish()
        guard optimizer.lr > 0 else { throw ConfigError(file: file, key: "optimizer.lr", message: "must be positive") }

        let s = try root.section("schedule")
        var schedule = Schedule()
        schedule.kind = try s.choice("kind", ["cosine", "constant", "warmup_cosine"], default: schedule.kind)
        schedule.etaMin = try s.double("eta_min", default: schedule.etaMin)
        schedule.interval = try s.choice("interval", ["epoch", "step"], default: schedule.interval)
        schedule.warmupSteps = try s.int("warmup_steps", default: schedule.warmupSteps)
        schedule.warmupStartFactor = try s.double("warmup_start_factor", default: schedule.warmupStartFactor)
        try s.finish()

        let t = try root.section("training")
        var training = Training()
        training.epochs = try positive(t, "epochs", training.epochs)
        training.maxSteps = try t.int("max_steps")
        training.batchSize = try positive(t, "batch_size", training.batchSize)
        training.gradientAccumulation = try positive(t, "gradient_accumulation", training.gradientAccumulation)
        training.gradientCheckpointing = try t.bool("gradient_checkpointing", default: training.gradientCheckpointing)
        training.precision = try t.choice("precision", ["fp32", "bf16"], default: training.precision)
        training.seed = try t.int("seed", default: training.seed)
        training.checkpointEvery = try positive(t, "checkpoint_every", training.checkpointEvery)
        training.logEvery = try positive(t, "log_every", training.logEvery)
        training.device = try t.string("device", default: training.device)!
        try t.finish()
        do {
            _ = try Device(parsing: training.device)
        } catch {
            throw ConfigError(file: file, key: "training.device", message: "\(error)")
        }

        let e = try root.section("evaluation")
        let evaluation = Evaluation(clipModel: try e.string("clip_model"), inceptionWeights: try e.string("inception_weights"))
        try e.finish()

        let outputDir = try root.string("output_dir", default: "results/runs/\(name)")!
        try root.finish()
        return RunConfig(name: name, model: model, dataset: dataset, caa: caa, optimizer: optimizer,
                         schedule: schedule, training: training, outputDir: outputDir,
                         evaluation: evaluation == Evaluation() ? nil : evaluation)
    }

    private static func positive(_ section: ConfigSection, _ key: String, _ value: Int, multipleOf: Int = 1) throws -> Int {
        let v = try section.int(key, default: value)
        guard v > 0, v % multipleOf == 0 else {
            throw ConfigError(file: section.file, key: section.keyPath(key),
                              message: multipleOf > 1 ? "must be a positive multiple of \(multipleOf), got \(v)"
                                                      : "must be positive, got \(v)")
        }
        return v
    }

    /// The config with every default filled in, as canonical JSON (stored with the run).
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
