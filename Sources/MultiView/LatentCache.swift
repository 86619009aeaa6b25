import Datasets
import Experiments
import Foundation
import Geometry
import Support
import StableDiffusion
import Torch

/// The HDF5 latent cache of issue 4: every view of every panorama of a run config's split, encoded
/// once by the frozen VAE, with its prompt encoded once by the frozen text encoder, so that training
/// runs neither.
///
/// One *entry* per (panorama, yaw offset): panorama `i`'s offsets are the run's yaw policy's
/// `offsets(seed:index:)` (1 for `.fixed`, `cache_offsets` for `.randomSet`), entry
/// `i · offsetsPerPanorama + k`. Datasets (float32 unless noted, chunked one entry per chunk, gzip):
///
/// - `latent_mean`, `latent_logvar` `[N, V, C, h, w]`: the VAE posterior (logvar already clamped to
///   [−30, 20]), *unscaled*; training samples `mean + exp(logvar / 2) · ε` with its own generator
///   and multiplies by the VAE's scaling factor, exactly as with the VAE in the loop.
/// - `text_embeddings` `[N, V, T, D]`: the text encoder's last hidden state for each view's prompt.
/// - `intrinsics`, `rotations` `[N, V, 3, 3]`; `panorama_index` `[N]` int64; `yaw_offset` `[N]`
///   float64; `valid` `[N]` int64 (0 for a panorama skipped with `skip_bad`).
///
/// Root attributes (all text) describe what the cache was built from; opening it for a run
/// compares each with the run's value and refuses the cache on the first difference.
public final class LatentCache {
    /// v2 added the captions' token ids (task text_to_image trains its text encoder on them).
    public static let codeVersion = "backdrop-cache-v2"

    public let file: HDF5File
    public let attributes: [String: String]
    /// Offsets per panorama (entries = panoramas × this).
    public let offsetsPerPanorama: Int
    public let panoramaCount: Int
    /// View size in pixels.
    public let resolution: Int
    let policy: YawPolicy
    let seed: UInt64

    // MARK: Config → loader and attributes

    /// The yaw policy of a run: `.fixed(0)` for `yaw_offset: zero`; for `random`, MVDiffusion's fresh
    /// offset per epoch, or — when the run configures a latent cache — `cache_offsets` offsets per
    /// panorama (`.randomSet`), for building the cache and for training (from it or not) alike.
    public static func yawPolicy(for config: RunConfig) -> YawPolicy {
        let d = config.dataset
        if d.yawOffset == .zero { return .fixed(0) }
        return d.latentCache != nil ? .randomSet(count: d.cacheOffsets) : .random
    }

    /// The parts of a model folder a cache's contents come from: a new UNet or scheduler leaves it valid.
    static let cachedComponents = ["vae", "text_encoder", "tokenizer"]

    /// `ContentHash` of the cached components' files.
    static func fingerprint(_ model: URL) throws -> String {
        try ModelFolder(url: model).contentHash(components: cachedComponents)
    }

    /// The attributes a cache for `run` must carry (the model folder's cached components are fingerprinted).
    public static func expectedAttributes(for run: Run, panoramaCount: Int) throws -> [String: String] {
        let config = run.config, d = config.dataset
        return [
            "code_version": codeVersion,
            "model_hash": try fingerprint(run.baseModel),
            "model_dtype": config.model.dtype.rawValue,
            "dataset_kind": d.kind.rawValue,
            "split": d.split.rawValue,
            "panoramas": "\(panoramaCount)",
            "resolution": "\(d.resolution)",
            "views": "\(d.views)",
            "fov": "\(d.fov)",
            "yaw_policy": yawPolicy(for: config).description,
            "seed": "\(config.training.seed)",
            "prompt_prefix": d.promptPrefix,
        ]
    }

    // MARK: Reading

    /// Opens a cache for training `run`, refusing it when any attribute differs from the run's.
    public convenience init(url: URL, run: Run, panoramaCount: Int) throws {
        try self.init(url: url)
        let expected = try Self.expectedAttributes(for: run, panoramaCount: panoramaCount)
        for key in expected.keys.sorted() where attributes[key] != expected[key] {
            let cached = attributes[key].map { "'\($0)'" } ?? "absent"
            throw TorchError("latent cache \(url.path) does not match run \(run.config.name): attribute '\(key)' is \(cached) " +
                             "in the cache but '\(expected[key]!)' is expected; rebuild it with `backdrop cache build --config …`")
        }
    }

    /// Opens a cache without checking it against a run.
    public init(url: URL) throws {
        file = try HDF5File(url: url)
        var attributes: [String: String] = [:]
        for key in ["code_version", "model_hash", "model_dtype", "dataset_kind", "split", "panoramas", "resolution", "views",
                    "fov", "yaw_policy", "seed", "prompt_prefix", "offsets_per_panorama"] {
            attributes[key] = try file.attribute(key)
        }
        self.attributes = attributes
        guard attributes["code_version"] == Self.codeVersion else {
            throw TorchError("\(url.path) is not a \(Self.codeVersion) latent cache (code_version " +
                             "\(attributes["code_version"].map { "'\($0)'" } ?? "absent"))")
        }
        offsetsPerPanorama = Int(attributes["offsets_per_panorama"] ?? "") ?? 1
        panoramaCount = Int(attributes["panoramas"] ?? "") ?? 0
        resolution = Int(attributes["resolution"] ?? "") ?? 0
        seed = UInt64(attributes["seed"] ?? "") ?? 0
        policy = Self.parsePolicy(attributes["yaw_policy"] ?? "")
    }

    static func parsePolicy(_ text: String) -> YawPolicy {
        if text.hasPrefix("fixed("), let value = Double(text.dropFirst(6).dropLast()) { return .fixed(value) }
        if text.hasPrefix("random-set("), let count = Int(text.dropFirst(11).dropLast()) { return .randomSet(count: count) }
        return .random
    }

    /// One entry: the VAE posterior of each view, the prompts' embeddings and the cameras.
    public struct Entry {
        public let index: Int
        public let yawOffset: Double
        /// `[V, C, h, w]` float32 each.
        public let mean: Tensor
        public let logvar: Tensor
        /// `[V, T, D]` float32.
        public let textEmbeddings: Tensor
        /// The captions' CLIP token ids, `[V, 77]` int64.
        public let tokenIds: Tensor
        /// The views' cameras as stored (float32).
        public let layout: ViewLayout
    }

    /// The entry of panorama `index` at `yawOffset` (which must be one of the offsets it was built with).
    public func entry(index: Int, yawOffset: Double) throws -> Entry {
        guard (0..<panoramaCount).contains(index) else {
            throw TorchError("latent cache \(file.url.path) holds \(panoramaCount) panoramas, not index \(index)")
        }
        guard let k = policy.offsets(seed: seed, index: index).firstIndex(of: yawOffset) else {
            throw TorchError("latent cache \(file.url.path) holds no entry for panorama \(index) at yaw offset \(yawOffset)° " +
                             "(its policy is \(policy))")
        }
        let row = index * offsetsPerPanorama + k
        guard try file.read("valid", rows: row, count: 1).itemInt() != 0 else {
            throw DatasetError(panorama: "\(index)", file: file.url.path, "skipped when the latent cache was built")
        }
        func rows(_ name: String) throws -> Tensor { try file.read(name, rows: row, count: 1).squeeze(dim: 0) }
        return Entry(index: index, yawOffset: yawOffset, mean: try rows("latent_mean"), logvar: try rows("latent_logvar"),
                     textEmbeddings: try rows("text_embeddings"), tokenIds: try rows("token_ids"),
                     layout: try ViewLayout(K: rows("intrinsics"), R: rows("rotations"), resolution: resolution))
    }

    // MARK: Building

    /// Encodes every view of every panorama of `run`'s split (each at each of its yaw offsets) and
    /// writes the cache to the config's `dataset.latent_cache` (or `output`): under a temporary name,
    /// renamed into place at the end. Returns the cache's URL.
    @discardableResult
    public static func build(run: Run, output: URL? = nil,
                             log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) throws -> URL {
        let config = run.config
        guard let url = output ?? run.latentCache else {
            throw TorchError("run \(config.name) configures no dataset.latent_cache and no output was given")
        }
        let device = try config.training.device.available()
        let encoders = try FrozenEncoders(run: run, device: device)
        let (tokenizer, textEncoder, vae) = (encoders.tokenizer, encoders.textEncoder, encoders.vae)

        let d = config.dataset
        let source = try run.dataset()
        let policy = yawPolicy(for: config)
        let seed = UInt64(config.training.seed)
        let perPanorama = policy.offsets(seed: seed, index: 0).count
        let count = source.count * perPanorama

        let writer = try HDF5File(creating: url)
        var attributes = try expectedAttributes(for: run, panoramaCount: source.count)
        attributes["offsets_per_panorama"] = "\(perPanorama)"
        for (key, value) in attributes.sorted(by: { $0.key < $1.key }) { try writer.setAttribute(key, value) }

        let progress = ProgressReporter(title: "cache \(config.name)", total: count)
        var created = false
        var skipped = 0
        for index in 0..<source.count {
            for (k, offset) in policy.offsets(seed: seed, index: index).enumerated() {
                let row = index * perPanorama + k
                let sample: MultiViewSample
                do {
                    sample = try source.sample(at: index, yawOffset: offset)
                } catch {
                    guard d.skipBad, created else { throw error }
                    log("skipping panorama \(source.identifier(at: index)): \(error)")
                    skipped += 1
                    try writer.write("panorama_index", rows: try Tensor([Int64(index)]), at: row)
                    try writer.write("yaw_offset", rows: try Tensor([offset]), at: row)
                    try writer.write("valid", rows: try Tensor([Int64(0)]), at: row)
                    continue
                }
                let ids = try tokenizer(sample.prompts)
                let (posterior, embeddings) = try withNoGrad { () -> (DiagonalGaussianDistribution, Tensor) in
                    let images = try sample.images.to(dtype: vae.encoder.conv_in.weight.dtype, device: device)
                    return (try vae.encode(images), try textEncoder(ids.to(device: device)))
                }
                let mean = try posterior.mean.to(dtype: .float32, device: .cpu).unsqueeze(0)
                let logvar = try posterior.logvar.to(dtype: .float32, device: .cpu).unsqueeze(0)
                let text = try embeddings.to(dtype: .float32, device: .cpu).unsqueeze(0)
                if !created {
                    func create(_ name: String, _ type: DType, _ shape: [Int]) throws {
                        try writer.createDataset(name, dtype: type, shape: [count] + shape, chunkRows: 1, compression: 4)
                    }
                    try create("latent_mean", .float32, Array(mean.shape.dropFirst()))
                    try create("latent_logvar", .float32, Array(logvar.shape.dropFirst()))
                    try create("text_embeddings", .float32, Array(text.shape.dropFirst()))
                    try create("token_ids", .int64, ids.shape)
                    try create("intrinsics", .float32, [d.views, 3, 3])
                    try create("rotations", .float32, [d.views, 3, 3])
                    try writer.createDataset("panorama_index", dtype: .int64, shape: [count], chunkRows: max(1, min(count, 4096)))
                    try writer.createDataset("yaw_offset", dtype: .float64, shape: [count], chunkRows: max(1, min(count, 4096)))
                    try writer.createDataset("valid", dtype: .int64, shape: [count], chunkRows: max(1, min(count, 4096)))
                    created = true
                }
                try writer.write("latent_mean", rows: mean, at: row)
                try writer.write("latent_logvar", rows: logvar, at: row)
                try writer.write("text_embeddings", rows: text, at: row)
                try writer.write("token_ids", rows: ids.to(dtype: .int64).unsqueeze(0), at: row)
                try writer.write("intrinsics", rows: sample.layout.intrinsicsTensor().unsqueeze(0), at: row)
                try writer.write("rotations", rows: sample.layout.rotationsTensor().unsqueeze(0), at: row)
                try writer.write("panorama_index", rows: try Tensor([Int64(index)]), at: row)
                try writer.write("yaw_offset", rows: try Tensor([offset]), at: row)
                try writer.write("valid", rows: try Tensor([Int64(1)]), at: row)
                progress.update(row + 1, status: source.identifier(at: index))
            }
        }
        guard created else { throw TorchError("no panorama of \(source.location) could be encoded") }
        try writer.commit()
        progress.finish(status: "\(count) entries" + (skipped > 0 ? ", \(skipped) skipped" : ""))
        if skipped > 0 { log("skipped \(skipped) of \(count) entries (skip_bad)") }
        return url
    }
}
