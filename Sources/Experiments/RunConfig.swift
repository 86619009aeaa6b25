import Foundation
import Geometry
import Torch

/// A training run as `experiments/<name>.yaml` describes it, decoded once into types: every choice
/// is an enum, every accepted key is used, and an error names the file, the key and the allowed
/// values. Every default is MVDiffusion's setting (docs/models.md, MVDiffusion training) unless the
/// smoke config overrides it. Stored with the run as canonical JSON (`json()`), which `parse` reads
/// back (JSON is YAML), so a stored config and a config file go through the same checks.
public struct RunConfig: Encodable, Equatable, Sendable {
    /// What `backdrop train` trains.
    public enum Task: String, ConfigChoice {
        /// Correspondence-aware attention on a frozen text-to-image model (the paper's method).
        case caa
        /// SD's first stage: the VAE of `model.base` on single views (reconstruction + KL).
        case autoencoder
        /// The UNet and the text encoder of `model.base` with SD's noise loss on the frozen VAE's latents.
        case textToImage = "text_to_image"
        /// A transformers `CLIPModel` (`model.base`) trained contrastively on view–caption pairs.
        case clip
    }

    /// The dtype of the frozen weights.
    public enum WeightDType: String, ConfigChoice {
        case float32, float16, bfloat16

        public var dtype: DType {
            switch self {
            case .float32: .float32
            case .float16: .float16
            case .bfloat16: .bfloat16
            }
        }
    }

    public enum Precision: String, ConfigChoice {
        case fp32
        /// bfloat16 autocast of the UNet forward where the device supports it.
        case bf16
    }

    public enum DatasetKind: String, ConfigChoice {
        case synthrooms, matterport3d, panfusion
    }

    public enum Split: String, ConfigChoice {
        case train, test
    }

    public enum YawOffset: String, ConfigChoice {
        /// A fresh random offset in [0, 360) per panorama and epoch (training).
        case random
        /// Every panorama at offset 0 (testing).
        case zero
    }

    public enum OptimizerName: String, ConfigChoice {
        case adamw, sgd
    }

    public enum ScheduleKind: String, ConfigChoice {
        case cosine, constant
        case warmupCosine = "warmup_cosine"
    }

    public enum ScheduleInterval: String, ConfigChoice {
        /// Stepped once per epoch (MVDiffusion).
        case epoch
        case step
    }

    public struct Model: Encodable, Equatable, Sendable {
        /// A diffusers model folder (SD 2-base for the paper setup).
        public var base: String
        public var dtype: WeightDType = .float32
    }

    public struct Dataset: Encodable, Equatable, Sendable {
        public var kind: DatasetKind = .matterport3d
        public var root: String
        public var split: Split = .train
        /// Pixels per view side.
        public var resolution: Int = 512
        public var views: Int = 8
        /// Horizontal field of view of each view, degrees.
        public var fov: Double = 90
        public var yawOffset: YawOffset = .random
        public var promptPrefix: String = "This is one view of a scene. "
        /// HDF5 latent cache; encoded on the fly when absent.
        public var latentCache: String?
        /// Random yaw offsets stored per panorama in the cache.
        public var cacheOffsets: Int = 4
        public var skipBad: Bool = false
    }

    public struct CAA: Encodable, Equatable, Sendable {
        /// `ring` (the released code: i−1, i+1) or `all` (the paper).
        public var neighbours: NeighbourSet = .ring
        /// nil reproduces the released positional-encoding frequencies (checkpoint compatible).
        public var peMaxFrequency: Double?
        /// CAA weights a new run starts from instead of the blocks' zero-initialised outputs (a
        /// `caa.safetensors` or a checkpoint's `weights.safetensors`): a second stage that trains an
        /// earlier run's blocks further on a schedule of its own. A resumed run ignores it.
        public var initWeights: String?
        /// Weight of the tone loss (docs/models.md#tone-loss): the squared error of each view's per-channel
        /// mean of the clean-latent estimate, added to the MSE. nil: MVDiffusion's MSE alone.
        public var toneLossWeight: Double?
    }

    public struct Optimizer: Encodable, Equatable, Sendable {
        public var name: OptimizerName = .adamw
        public var lr: Double = 2e-4
        /// AdamW only.
        public var betas: [Double] = [0.9, 0.999]
        /// AdamW only.
        public var eps: Double = 1e-8
        /// Decoupled for AdamW, L2 for SGD (as in PyTorch).
        public var weightDecay: Double = 0.01
        /// SGD only.
        public var momentum: Double = 0

        enum CodingKeys: String, CodingKey { case name, lr, betas, eps, weightDecay, momentum }

        /// Only the keys of the chosen optimizer, so the stored JSON parses back.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(lr, forKey: .lr)
            try c.encode(weightDecay, forKey: .weightDecay)
            switch name {
            case .adamw:
                try c.encode(betas, forKey: .betas)
                try c.encode(eps, forKey: .eps)
            case .sgd:
                try c.encode(momentum, forKey: .momentum)
            }
        }
    }

    public struct Schedule: Encodable, Equatable, Sendable {
        public var kind: ScheduleKind = .cosine
        public var etaMin: Double = 1e-7
        public var interval: ScheduleInterval = .epoch
        /// `warmup_cosine` only.
        public var warmupSteps: Int = 0
        /// `warmup_cosine` only.
        public var warmupStartFactor: Double = 0.1

        enum CodingKeys: String, CodingKey { case kind, etaMin, interval, warmupSteps, warmupStartFactor }

        /// Only the keys of the chosen kind, so the stored JSON parses back.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(kind, forKey: .kind)
            try c.encode(etaMin, forKey: .etaMin)
            try c.encode(interval, forKey: .interval)
            if kind == .warmupCosine {
                try c.encode(warmupSteps, forKey: .warmupSteps)
                try c.encode(warmupStartFactor, forKey: .warmupStartFactor)
            }
        }
    }

    public struct Training: Encodable, Equatable, Sendable {
        public var epochs: Int = 10
        /// Stops early after this many optimiser steps when set.
        public var maxSteps: Int?
        /// Panoramas per optimiser step, over all data-parallel processes together: a config is one
        /// recipe however many processes train it (docs/distributed.md#what-each-rank-does).
        public var batchSize: Int = 1
        public var gradientAccumulation: Int = 1
        public var gradientCheckpointing: Bool = false
        public var precision: Precision = .fp32
        public var seed: Int = 0
        public var checkpointEvery: Int = 1000
        /// A metric row (loss, learning rate, speed) goes to the registry every this many steps, and
        /// at the last step (Lightning's `log_every_n_steps`).
        public var logEvery: Int = 10
        public var device: DeviceChoice = .best
        /// Gradients are rescaled to this global L2 norm when it is exceeded (`clip_grad_norm_`).
        public var maxGradNorm: Double?
        /// Keeps an exponential moving average of the trained weights with this decay (diffusers'
        /// `EMAModel`); the finished run's model is the average.
        public var emaDecay: Double?
    }

    /// Section `autoencoder` (task `autoencoder` only).
    public struct Autoencoder: Encodable, Equatable, Sendable {
        /// Weight of the KL term against the per-image summed L1 reconstruction error (SD's first
        /// stage uses 1e-6).
        public var klWeight: Double = 1e-6
        /// What trains: the whole VAE, or only its decoder (and `post_quant_conv`) on the frozen
        /// encoder's latents, as SD's improved VAEs were fine-tuned: the latent space, and with it
        /// every UNet and latent cache trained on it, stays valid.
        public var trainable: Trainable = .all
        /// The reconstruction term: LDM's L1, or the squared error (what PSNR measures).
        public var reconstruction: Reconstruction = .l1
        /// What the decoder is fed while it trains: a draw from the encoder's posterior (LDM), or the
        /// posterior's mean, the input every round trip and evaluation gives it. Fed draws, a decoder
        /// learns to shrink what the noisiest latent channels say towards the average view, and on
        /// the miniature those channels carry the wall's colour (docs/models.md#decoder-fine-tuning).
        public var decode: Decode = .sample

        public enum Trainable: String, ConfigChoice { case all, decoder }
        public enum Decode: String, ConfigChoice { case sample, mean }
        public enum Reconstruction: String, ConfigChoice { case l1, mse }
    }

    /// Section `text_to_image` (task `text_to_image` only).
    public struct TextToImage: Encodable, Equatable, Sendable {
        /// Share of training captions replaced by the empty prompt, so that the model also learns the
        /// unconditional prediction classifier-free guidance needs (SD: 0.1).
        public var captionDropout: Double = 0.1
        /// γ of Min-SNR-γ loss weighting (docs/models.md#min-snr); nil: SD's plain mean.
        public var snrGamma: Double?
        /// A transformers `CLIPModel` (or `CLIPTextModel`) folder whose text tower replaces the base's
        /// text encoder before training (docs/models.md#a-pretrained-text-encoder).
        public var textEncoderInit: String?
        /// Whether the text encoder trains with the UNet; false keeps it frozen, as SD keeps CLIP's.
        public var trainTextEncoder: Bool = true
    }

    /// Section `distributed` (optional): how the processes of a data-parallel run talk
    /// (docs/distributed.md). A run started in one process ignores it.
    public struct Distributed: Encodable, Equatable, Sendable {
        public enum Backend: String, ConfigChoice {
            /// Gloo on the CPU; NCCL when the run trains on CUDA.
            case auto, gloo, nccl
        }
        public var backend: Backend = .auto
        /// Seconds a collective (or the rendezvous) may wait for a peer before the run stops with
        /// an error naming the operation (PyTorch's default: 30 minutes).
        public var timeout: Double = 1800
        /// Gradients are all-reduced in buckets of about this many MiB (DDP's `bucket_cap_mb`).
        public var bucketMB: Double = 25

        public init() {}
    }

    /// What `backdrop eval` needs beyond the run (section `evaluation`, optional).
    public struct Evaluation: Encodable, Equatable, Sendable {
        /// A transformers `CLIPModel` folder for the CLIP score; without one CS is "not configured".
        public var clipModel: String?
        /// FID Inception weights; default: the NVIDIA archive `make setup` fetches.
        public var inceptionWeights: String?

        public init(clipModel: String? = nil, inceptionWeights: String? = nil) {
            (self.clipModel, self.inceptionWeights) = (clipModel, inceptionWeights)
        }
    }

    public var name: String
    public var task: Task = .caa
    public var model: Model
    public var dataset: Dataset
    public var caa: CAA
    public var autoencoder: Autoencoder = .init()
    public var textToImage: TextToImage = .init()
    public var optimizer: Optimizer
    public var schedule: Schedule
    public var training: Training
    public var outputDir: String
    /// nil when the config has no `evaluation` section.
    public var evaluation: Evaluation? = nil
    public var distributed: Distributed = .init()

    enum CodingKeys: String, CodingKey {
        case name, task, model, dataset, caa, autoencoder, textToImage, optimizer, schedule, training, outputDir, evaluation,
             distributed
    }

    /// Only the sections of the chosen task, so the stored JSON parses back.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(task, forKey: .task)
        try c.encode(model, forKey: .model)
        try c.encode(dataset, forKey: .dataset)
        switch task {
        case .caa: try c.encode(caa, forKey: .caa)
        case .autoencoder: try c.encode(autoencoder, forKey: .autoencoder)
        case .textToImage: try c.encode(textToImage, forKey: .textToImage)
        case .clip: break
        }
        try c.encode(optimizer, forKey: .optimizer)
        try c.encode(schedule, forKey: .schedule)
        try c.encode(training, forKey: .training)
        try c.encode(outputDir, forKey: .outputDir)
        try c.encodeIfPresent(evaluation, forKey: .evaluation)
        if distributed != Distributed() { try c.encode(distributed, forKey: .distributed) }
    }

    /// Panoramas each of `worldSize` data-parallel processes takes per step. `training.batch_size`
    /// is the global batch, so it must divide among them; `file` names the config in the error.
    public func batchPerProcess(worldSize: Int, file: String) throws -> Int {
        guard worldSize > 0, training.batchSize % worldSize == 0 else {
            throw ConfigError(file: file, key: "training.batch_size",
                              message: "\(training.batchSize) panoramas per step cannot be shared equally by \(worldSize) processes: " +
                                "make it a multiple of \(worldSize) (it counts the panoramas of all processes together)")
        }
        return training.batchSize / worldSize
    }

    /// Reads and validates a config file; errors name the file and the key.
    public static func load(_ url: URL) throws -> RunConfig {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw ConfigError(file: url.path, key: "", message: "cannot read: \(failureReason(error))")
        }
        return try parse(yaml: text, file: url.path, defaultName: url.deletingPathExtension().lastPathComponent)
    }

    public static func parse(yaml: String, file: String, defaultName: String = "run") throws -> RunConfig {
        let root = try ConfigSection.parse(yaml: yaml, file: file)
        let name = try root.string("name", default: defaultName)!
        let task = try root.choice("task", default: Task.caa)

        let m = try root.section("model")
        let model = Model(base: try m.requiredString("base"), dtype: try m.choice("dtype", default: WeightDType.float32))
        try m.finish()

        let d = try root.section("dataset")
        var dataset = Dataset(root: try d.requiredString("root"))
        dataset.kind = try d.choice("kind", default: dataset.kind)
        dataset.split = try d.choice("split", default: dataset.split)
        dataset.resolution = try d.positive("resolution", default: dataset.resolution, multipleOf: 8)
        dataset.views = try d.positive("views", default: dataset.views)
        dataset.fov = try d.double("fov", default: dataset.fov)
        do { try PinholeCamera.validate(fov: dataset.fov) } catch {
            throw ConfigError(file: file, key: "dataset.fov", message: "must lie in (0, 180) degrees, got \(dataset.fov)")
        }
        dataset.yawOffset = try d.choice("yaw_offset", default: dataset.yawOffset)
        dataset.promptPrefix = try d.string("prompt_prefix", default: dataset.promptPrefix)!
        dataset.latentCache = try d.string("latent_cache")
        dataset.cacheOffsets = try d.positive("cache_offsets", default: dataset.cacheOffsets)
        dataset.skipBad = try d.bool("skip_bad", default: dataset.skipBad)
        try d.finish()

        let c = try root.section("caa")
        if task != .caa { try c.rejectAll(because: "applies to task caa only") }
        var caa = CAA()
        caa.neighbours = try c.choice("neighbours", default: caa.neighbours)
        caa.peMaxFrequency = try c.double("pe_max_frequency")
        caa.initWeights = try c.string("init_weights")
        caa.toneLossWeight = try c.double("tone_loss_weight")
        if let w = caa.toneLossWeight, !(w.isFinite && w > 0) {
            throw ConfigError(file: file, key: "caa.tone_loss_weight", message: "must be a positive number, got \(w)")
        }
        if let f = caa.peMaxFrequency, !(f.isFinite && f > 0) {
            throw ConfigError(file: file, key: "caa.pe_max_frequency", message: "must be a positive number, got \(f)")
        }
        try c.finish()

        let a = try root.section("autoencoder")
        if task != .autoencoder { try a.rejectAll(because: "applies to task autoencoder only") }
        var autoencoder = Autoencoder()
        autoencoder.klWeight = try a.double("kl_weight", default: autoencoder.klWeight)
        guard autoencoder.klWeight >= 0 else {
            throw ConfigError(file: file, key: "autoencoder.kl_weight", message: "must not be negative, got \(autoencoder.klWeight)")
        }
        autoencoder.trainable = try a.choice("trainable", default: autoencoder.trainable)
        autoencoder.reconstruction = try a.choice("reconstruction", default: autoencoder.reconstruction)
        autoencoder.decode = try a.choice("decode", default: autoencoder.decode)
        if autoencoder.decode == .mean && autoencoder.trainable != .decoder {
            // Trained on its means alone, the encoder would have no posterior left for the KL term to shape.
            throw ConfigError(file: file, key: "autoencoder.decode", message: "mean applies with trainable: decoder only")
        }
        try a.finish()

        let x = try root.section("text_to_image")
        if task != .textToImage { try x.rejectAll(because: "applies to task text_to_image only") }
        var textToImage = TextToImage()
        textToImage.captionDropout = try x.double("caption_dropout", default: textToImage.captionDropout)
        guard (0..<1).contains(textToImage.captionDropout) else {
            throw ConfigError(file: file, key: "text_to_image.caption_dropout",
                              message: "must lie in [0, 1), got \(textToImage.captionDropout)")
        }
        textToImage.snrGamma = try x.double("snr_gamma")
        if let gamma = textToImage.snrGamma, !(gamma.isFinite && gamma > 0) {
            throw ConfigError(file: file, key: "text_to_image.snr_gamma", message: "must be a positive number, got \(gamma)")
        }
        textToImage.textEncoderInit = try x.string("text_encoder_init")
        textToImage.trainTextEncoder = try x.bool("train_text_encoder", default: textToImage.trainTextEncoder)
        try x.finish()

        let o = try root.section("optimizer")
        var optimizer = Optimizer()
        optimizer.name = try o.choice("name", default: optimizer.name)
        optimizer.lr = try o.positiveDouble("lr", default: optimizer.lr)
        // PyTorch's defaults: AdamW decays by 0.01, SGD not at all.
        optimizer.weightDecay = try o.double("weight_decay", default: optimizer.name == .sgd ? 0 : optimizer.weightDecay)
        switch optimizer.name {
        case .adamw:
            optimizer.betas = try o.doubles("betas", count: 2, default: optimizer.betas)
            optimizer.eps = try o.positiveDouble("eps", default: optimizer.eps)
            try o.reject(["momentum"], because: "applies to optimizer sgd only")
        case .sgd:
            optimizer.momentum = try o.double("momentum", default: optimizer.momentum)
            try o.reject(["betas", "eps"], because: "applies to optimizer adamw only")
        }
        try o.finish()

        let s = try root.section("schedule")
        var schedule = Schedule()
        schedule.kind = try s.choice("kind", default: schedule.kind)
        schedule.etaMin = try s.double("eta_min", default: schedule.etaMin)
        schedule.interval = try s.choice("interval", default: schedule.interval)
        if schedule.kind == .warmupCosine {
            schedule.warmupSteps = try s.int("warmup_steps", default: schedule.warmupSteps)
            schedule.warmupStartFactor = try s.double("warmup_start_factor", default: schedule.warmupStartFactor)
        } else {
            try s.reject(["warmup_steps", "warmup_start_factor"], because: "applies to schedule kind warmup_cosine only")
        }
        try s.finish()

        let t = try root.section("training")
        var training = Training()
        training.epochs = try t.positive("epochs", default: training.epochs)
        training.maxSteps = try t.int("max_steps")
        if let steps = training.maxSteps, steps < 1 {
            throw ConfigError(file: file, key: "training.max_steps", message: "must be positive, got \(steps)")
        }
        training.batchSize = try t.positive("batch_size", default: training.batchSize)
        training.gradientAccumulation = try t.positive("gradient_accumulation", default: training.gradientAccumulation)
        training.gradientCheckpointing = try t.bool("gradient_checkpointing", default: training.gradientCheckpointing)
        training.precision = try t.choice("precision", default: training.precision)
        training.seed = try t.int("seed", default: training.seed)
        training.checkpointEvery = try t.positive("checkpoint_every", default: training.checkpointEvery)
        training.logEvery = try t.positive("log_every", default: training.logEvery)
        if t.has("max_grad_norm") { training.maxGradNorm = try t.positiveDouble("max_grad_norm", default: 1) }
        training.emaDecay = try t.double("ema_decay")
        if let d = training.emaDecay, !(0..<1).contains(d) {
            throw ConfigError(file: file, key: "training.ema_decay", message: "must lie in [0, 1), got \(d)")
        }
        let device = try t.string("device", default: training.device.description)!
        do { training.device = try DeviceChoice(parsing: device) } catch {
            throw ConfigError(file: file, key: "training.device", message: "\(error)")
        }
        try t.finish()

        let e = try root.section("evaluation")
        let evaluation = Evaluation(clipModel: try e.string("clip_model"), inceptionWeights: try e.string("inception_weights"))
        try e.finish()

        let ddp = try root.section("distributed")
        var distributed = Distributed()
        distributed.backend = try ddp.choice("backend", default: distributed.backend)
        distributed.timeout = try ddp.positiveDouble("timeout", default: distributed.timeout)
        distributed.bucketMB = try ddp.positiveDouble("bucket_mb", default: distributed.bucketMB)
        try ddp.finish()

        let outputDir = try root.string("output_dir", default: "results/runs/\(name)")!
        try root.finish()
        return RunConfig(name: name, task: task, model: model, dataset: dataset, caa: caa, autoencoder: autoencoder,
                         textToImage: textToImage, optimizer: optimizer,
                         schedule: schedule, training: training, outputDir: outputDir,
                         evaluation: evaluation == Evaluation() ? nil : evaluation, distributed: distributed)
    }

    /// The config with every default filled in, as canonical JSON (stored with the run).
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

/// A closed set of values a config key accepts, spelled as its raw value in YAML and JSON.
public protocol ConfigChoice: RawRepresentable, CaseIterable, Encodable, Equatable, Sendable where RawValue == String {}

extension NeighbourSet: ConfigChoice {}
