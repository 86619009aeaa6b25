import Datasets
import Experiments
import Evaluation
import Foundation
import Geometry
import Support
import MultiView
import StableDiffusion
import Torch

/// `backdrop eval`: a run's trained CAA model, or the same SD without CAA (the baseline, independent
/// views), on its dataset's test split, with the paper's Table I metrics:
/// - FID of all generated views against the ground-truth test views (statistics cached in HDF5
///   under the run's `eval/<split>/`, keyed by the scenes, the view layout and the Inception weights);
/// - IS of the generated views, when the Inception weights have the 1008-way classifier;
/// - CLIP score of each view against its own prompt, views then scenes averaged, when a CLIP model is
///   given;
/// - consistency: overlap PSNR of neighbouring views (`ViewConsistency`) for the generated views and
///   the ground truth, and their ratio; with `vaeRoundTrip`, also for the ground-truth views after the
///   VAE's encoder and decoder (docs/metrics.md#consistency-through-the-vae).
/// A metric that cannot be computed is recorded as missing with its reason, never as a number.
public final class RunEvaluator {
    public enum System: String, Sendable { case model, baseline }

    public struct Options {
        public var system: System = .model
        /// At most this many panoramas of the split (the first ones).
        public var limit: Int?
        public var steps = 50
        public var guidance = 9.0
        /// Scene i is sampled with seed + i.
        public var seed: UInt64 = 0
        public var inceptionWeights: URL
        public var clipModel: URL?
        public var device: Device = .cpu
        public var batchSize = 16
        /// CAA weights to evaluate instead of the run's latest checkpoint (a release's `caa.safetensors`).
        public var caaWeights: URL?
        /// Also record the consistency of the real views through the VAE (system `ground-truth-vae`).
        public var vaeRoundTrip = false
        /// How each panorama's views draw their initial latents (docs/models.md#initial-noise).
        public var noise: InitialNoise = .independent

        public init(inceptionWeights: URL) { self.inceptionWeights = inceptionWeights }
    }

    public struct Report {
        /// What was recorded for the system, and for the ground-truth views (consistency only).
        public var evaluation: RunRegistry.Evaluation
        public var groundTruth: RunRegistry.Evaluation
        /// The real views through the VAE (consistency only), when `vaeRoundTrip` asked for them.
        public var groundTruthThroughVAE: RunRegistry.Evaluation?
        public var scenesGenerated: Int
        public var scenesReused: Int
        public var viewsFolder: URL
        public var referenceStatistics: URL
        public var referenceStatisticsReused: Bool
    }

    public let run: Run
    public let split: RunConfig.Split
    public let options: Options
    /// The split's panoramas (test views at yaw offset 0, as MVDiffusion evaluates).
    let dataset: Matterport3D
    /// The CAA weights of the model (the run's latest checkpoint's, or `options.caaWeights`), resolved
    /// once so that every scene uses the same, and the name its views are kept under.
    let weights: (file: URL, name: String)?

    public init(run: Run, split: RunConfig.Split, options: Options) throws {
        guard run.record != nil else { throw TorchError("run '\(run.config.name)' is not registered: nothing to record evaluations under") }
        self.run = run
        self.split = split
        self.options = options
        dataset = try run.dataset(split: split)
        if options.system == .baseline {
            weights = nil
        } else if let file = options.caaWeights {
            weights = (file, file.deletingPathExtension().lastPathComponent)
        } else {
            let checkpoint = try run.checkpoint()
            weights = (checkpoint.weights, checkpoint.folder.lastPathComponent)
        }
    }

    var evaluationDirectory: URL { run.evaluationDirectory(split: split.rawValue) }

    /// Evaluates, records both rows in `registry` and returns them.
    public func evaluate(registry: RunRegistry) throws -> Report {
        // The weights first: a wrong path should fail before minutes of sampling.
        let inception = try InceptionV3.load(options.inceptionWeights, device: options.device)
        let scenes = try loadScenes()
        let store = GeneratedViewStore(folder: evaluationDirectory.appendingPathComponent(systemFolder))
        let (generated, made) = try generatedViews(scenes, store: store)

        let extractor = InceptionFeatureExtractor(model: inception, resize: .tf1, device: options.device,
                                                  batchSize: options.batchSize)
        let provenance = FeatureStatistics.Provenance(featureExtractor: try ContentHash.of(options.inceptionWeights), resize: .tf1)
        let (reference, referenceURL, reused) = try referenceStatistics(scenes, extractor: extractor, provenance: provenance)
        let perScene = try generated.map { try $0.chunk($0.shape[0]).map { try $0.squeeze(dim: 0) } }
        let images = perScene.flatMap { $0 }
        let progress = ProgressReporter(title: "Inception (\(options.system.rawValue))", total: images.count)
        let output = try extractor.run(images) { progress.update($0) }
        progress.finish()

        var notes: [ResultsTable.Metric: String] = [:]
        let fid = try frechetDistance(FeatureStatistics(features: output.features), reference)
        if images.count < 2048 {
            notes[.fid] = "FID from \(images.count) generated and \(reference.count) real views (fewer than 2048): biased " +
                "upward, a smoke number not comparable with published FID"
        }
        var inceptionScore: InceptionScore?
        if let logits = output.logitsUnbiased {
            if images.count >= 10 { inceptionScore = try InceptionScore(logits: logits) } else {
                notes[.inceptionScore] = "IS needs at least 10 images for 10 splits, have \(images.count)"
            }
        } else {
            notes[.inceptionScore] = "IS unavailable: the Inception weights (\(options.inceptionWeights.lastPathComponent)) " +
                "have no 1008-way classifier"
        }
        var clip: Double?
        if let clipModel = options.clipModel {
            let scorer = try CLIPScorer(modelDirectory: clipModel, device: options.device, batchSize: options.batchSize)
            let clipProgress = ProgressReporter(title: "CLIP score", total: images.count)
            clip = try scorer.panoramaScore(views: perScene,
                                            prompts: scenes.map(\.prompts)) { clipProgress.update($0) }.mean
            clipProgress.finish()
        } else {
            notes[.clipScore] = "CLIP model not configured (no CLIP model folder given and no evaluation.clip_model in the run config)"
        }
        let truth = try consistency(scenes.map(\.groundTruth), scenes)
        let ours = try consistency(generated, scenes)
        notes[.userScore] = "no user study recorded"

        let checkpoint = weights.map { options.caaWeights == nil ? $0.file.deletingLastPathComponent().path : $0.file.path }
        let split = split.rawValue
        let evaluation = RunRegistry.Evaluation(
            runId: run.record?.id, system: options.system.rawValue, checkpoint: checkpoint, split: split,
            count: images.count, fid: fid, isMean: inceptionScore?.mean, isStd: inceptionScore?.std, clipScore: clip,
            consistencyPsnr: ours.psnr, consistencyRatio: ours.ratio(to: truth), notes: RunRegistry.Evaluation.notes(notes))
        let notApplicable = "not computed for the ground-truth views (the reference set)"
        let groundTruth = RunRegistry.Evaluation(
            runId: run.record?.id, system: "ground-truth", checkpoint: nil, split: split, count: images.count,
            consistencyPsnr: truth.psnr, consistencyRatio: 1,
            notes: RunRegistry.Evaluation.notes([.fid: notApplicable, .inceptionScore: notApplicable,
                                                 .clipScore: notApplicable, .userScore: "no user study recorded"]))
        try registry.record(evaluation)
        try registry.record(groundTruth)
        var throughVAE: RunRegistry.Evaluation?
        if options.vaeRoundTrip {
            let roundTrip = try consistency(vaeRoundTrip(scenes), scenes)
            let reason = "not computed for the real views through the VAE (recorded for consistency only)"
            throughVAE = RunRegistry.Evaluation(
                runId: run.record?.id, system: "ground-truth-vae", checkpoint: nil, split: split, count: images.count,
                consistencyPsnr: roundTrip.psnr, consistencyRatio: roundTrip.ratio(to: truth),
                notes: RunRegistry.Evaluation.notes([.fid: reason, .inceptionScore: reason, .clipScore: reason,
                                                     .userScore: "no user study recorded"]))
            try registry.record(throughVAE!)
        }
        return Report(evaluation: evaluation, groundTruth: groundTruth, groundTruthThroughVAE: throughVAE, scenesGenerated: made,
                      scenesReused: scenes.count - made, viewsFolder: store.folder, referenceStatistics: referenceURL,
                      referenceStatisticsReused: reused)
    }

    /// `model-<checkpoint>` (views change with the checkpoint) or `baseline`.
    /// Views of the independent-noise protocol keep their folder names from before the choice existed.
    var systemFolder: String {
        let system = weights.map { "model-\($0.name)" } ?? "baseline"
        return options.noise == .independent ? system : "\(system)-\(options.noise.rawValue)"
    }

    /// The first `limit` panoramas of the split at yaw offset 0.
    func loadScenes() throws -> [EvaluationScene] {
        let count = min(options.limit ?? dataset.count, dataset.count)
        guard count > 0 else {
            throw TorchError("\(dataset.root.appendingPathComponent("\(dataset.split).npy").path): the " +
                             "\(dataset.split) split has no panoramas" + (options.limit == 0 ? " (a limit of 0)" : ""))
        }
        let progress = ProgressReporter(title: "ground truth (\(dataset.split))", total: count)
        defer { progress.finish() }
        return try (0..<count).map { index in
            let scene = try EvaluationScene(dataset.sample(at: index, yawOffset: 0))
            progress.update(index + 1)
            return scene
        }
    }

    /// Each scene's views `[V, 3, H, W]` uint8, read from `store` or generated; also how many were generated.
    func generatedViews(_ scenes: [EvaluationScene], store: GeneratedViewStore) throws -> ([Tensor], Int) {
        let views = dataset.views
        let checkpointHash = try weights.map { try ContentHash.of($0.file) }
        let modelHash = try ModelFolder(url: run.baseModel).contentHash()
        func settings(_ scene: EvaluationScene) -> GeneratedViewStore.Settings {
            .init(system: options.system.rawValue, baseModel: run.baseModel.path, baseModelHash: modelHash,
                  checkpoint: weights?.name, checkpointHash: checkpointHash,
                  prompts: scene.prompts, steps: options.steps, guidance: options.guidance,
                  seed: options.seed &+ UInt64(scene.index), resolution: views.resolution, views: views.count,
                  noise: options.noise == .independent ? nil : options.noise)
        }
        var stored = try scenes.map { try store.load($0, settings: settings($0)) }
        let missing = stored.indices.filter { stored[$0] == nil }
        guard !missing.isEmpty else { return (stored.map { $0! }, 0) }

        let pipeline = try StableDiffusionPipeline.load(from: run.baseModel, scheduler: .ddim, device: options.device)
        let model = try weights.map { try run.trainedModel(unet: pipeline.unet, vaeScale: pipeline.vaeScaleFactor, weights: $0.file) }
        let generator = try PanoramaGenerator(pipeline: pipeline, model: model, layout: run.layout())
        let progress = ProgressReporter(title: "generate (\(options.system.rawValue))", total: missing.count * options.steps)
        let steps = options.steps
        for (done, i) in missing.enumerated() {
            let scene = scenes[i], setting = settings(scene)
            let result = try generator.generate(prompts: scene.prompts, steps: options.steps, guidanceScale: options.guidance,
                                                seed: setting.seed, noise: options.noise) { step, _ in
                progress.update(done * steps + step, status: "scene \(done + 1)/\(missing.count)")
            }
            let pixels = try result.views.signedToUInt8()
            try store.save(scene, views: pixels, panorama: result.panorama, settings: setting)
            stored[i] = pixels
        }
        progress.finish()
        return (stored.map { $0! }, missing.count)
    }

    /// The real test views' Inception statistics, from the cache when it was made from the same
    /// pixels and Inception (the file name carries a fingerprint of the views and the weights; the
    /// file's provenance attributes are checked on load).
    func referenceStatistics(_ scenes: [EvaluationScene], extractor: InceptionFeatureExtractor,
                             provenance: FeatureStatistics.Provenance) throws -> (FeatureStatistics, URL, Bool) {
        var key = ContentHash()
        key.update("\(provenance.featureExtractor)|\(provenance.resize.rawValue)")
        for scene in scenes { try scene.fingerprint(into: &key) }
        let url = evaluationDirectory.appendingPathComponent("fid-reference-n\(scenes.count)-\(key.hex).h5")
        if FileManager.default.fileExists(atPath: url.path) {
            return (try FeatureStatistics.load(url, expecting: provenance), url, true)
        }
        let images = try scenes.flatMap { try $0.groundTruth.chunk($0.groundTruth.shape[0]).map { try $0.squeeze(dim: 0) } }
        let progress = ProgressReporter(title: "Inception (real \(dataset.split) views)", total: images.count)
        let statistics = try FeatureStatistics(features: extractor.run(images) { progress.update($0) }.features)
        progress.finish()
        try statistics.save(to: url, provenance: provenance)
        return (statistics, url, false)
    }

    /// Each scene's real views encoded (posterior mean) and decoded by the base model's VAE, as uint8:
    /// what a latent model that drew exactly the real views would show, so the consistency the VAE
    /// alone leaves possible.
    func vaeRoundTrip(_ scenes: [EvaluationScene]) throws -> [Tensor] {
        let vae = try AutoencoderKL.load(from: ModelFolder(url: run.baseModel).vae, device: options.device)
        let progress = ProgressReporter(title: "VAE round trip (real \(dataset.split) views)", total: scenes.count)
        defer { progress.finish() }
        return try scenes.enumerated().map { index, scene in
            let pixels = try vae.reconstruct(scene.groundTruth.to(dtype: .float32, device: options.device) / 127.5 - 1).signedToUInt8()
            progress.update(index + 1)
            return pixels
        }
    }

    func consistency(_ views: [Tensor], _ scenes: [EvaluationScene]) throws -> ConsistencyScore {
        ConsistencyScore(perScene: try zip(views, scenes).map { views, scene in
            try ViewConsistency.scenePSNR(views: views, intrinsics: scene.layout.intrinsicsTensor(),
                                          rotations: scene.layout.rotationsTensor())
        })
    }
}
