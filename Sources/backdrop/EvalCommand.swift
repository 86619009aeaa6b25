import ArgumentParser
import Evaluation
import Experiments
import Workflows
import Foundation
import Support
import Torch

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a run on its test split: FID, IS, CLIP score and multi-view consistency (an autoencoder run: reconstruction PSNR).",
        discussion: """
            Generates the views of each test panorama (yaw offset 0, the dataset's per-view prompts, seed + \
            scene index) with the run's latest CAA checkpoint, or with --baseline the same SD without CAA \
            (independent views), and keeps them under <run>/eval/<split>/ so a second call reads them back. \
            FID is against the real test views (statistics cached in HDF5 beside them); IS needs Inception \
            weights with the 1008-way classifier (the default NVIDIA archive has none, so IS is recorded as \
            unavailable); the CLIP score needs --clip or evaluation.clip_model in the run config. \
            Consistency is the overlap PSNR of 45°-apart neighbours (0…255, MAX 255) and its ratio to the \
            ground truth's. Results go to the registry's evaluation table (see `backdrop table`).
            """
    )

    @Option(name: .customLong("run"), help: "A run: its name in the registry or its folder (its latest checkpoint).")
    var runName: String
    @Flag(help: "Evaluate plain SD with independent views instead of the trained CAA model.") var baseline = false
    @Option(help: "Dataset split.") var split: RunConfig.Split = .test
    @Option(help: "Evaluate at most this many panoramas (the first of the split).") var limit: Int?
    @Option(help: "DDIM steps.") var steps: Int = 50
    @Option(help: "Classifier-free guidance scale.") var guidance: Double = 9
    @Option(help: "Seed of scene 0's noise (scene i uses seed + i).") var seed: UInt64 = 0
    @Option(help: "CLIPModel folder for the CLIP score (default: evaluation.clip_model of the run config).") var clip: String?
    @Option(help: "FID Inception weights (default: evaluation.inception_weights, else the fetched NVIDIA archive).")
    var inception: String?
    @Option(help: "Images per Inception/CLIP forward pass.") var batchSize: Int = 16
    @Flag(help: "Also score the real views through the model's VAE: what a model that drew exactly the real views would score (consistency; for a text-to-image run FID, CLIP score and wall colour). docs/metrics.md#consistency-through-the-vae")
    var vaeRoundTrip = false
    @Option(help: "A text-to-image run: evaluate this diffusers folder instead of the run's model (e.g. its untrained start).")
    var model: String?
    @Option(help: "A text-to-image run: the name its generated views are kept under (default: model, or the --model folder's name).")
    var label: String?
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, not \(limit)") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, not \(steps)") }
        try checkRange("--guidance", guidance, in: guidanceRange)
        guard (1...1024).contains(batchSize) else { throw ValidationError("--batch-size must lie in 1…1024, not \(batchSize)") }
        if let clip, !FileManager.default.fileExists(atPath: URL(fileURLWithPath: expandEnvironment(clip)).appendingPathComponent("config.json").path) {
            throw ValidationError("--clip: \(clip)/config.json not found (expected a transformers CLIPModel folder)")
        }
        if let inception, !FileManager.default.fileExists(atPath: expandEnvironment(inception)) {
            throw ValidationError("--inception: \(inception) not found")
        }
    }

    func run() throws {
        threads.apply()
        let target = try registry.run(runName)
        switch target.config.task {
        case .autoencoder: return try evaluateAutoencoder(target)
        case .clip: return try evaluateCLIP(target)
        case .textToImage: return try evaluateTextToImage(target)
        case .caa: break
        }
        let registry = try self.registry.existing()
        var options = RunEvaluator.Options(
            inceptionWeights: try target.inceptionWeights(override: inception, fallback: defaultInceptionWeights))
        options.system = baseline ? .baseline : .model
        options.limit = limit
        options.steps = steps
        options.guidance = guidance
        options.seed = seed
        options.clipModel = try target.clipModel(override: clip)
        options.device = try device.resolved(default: target.config.training.device)
        options.batchSize = batchSize
        options.vaeRoundTrip = vaeRoundTrip
        let report = try RunEvaluator(run: target, split: split, options: options).evaluate(registry: registry)

        let e = report.evaluation
        print("\(e.system) of run '\(target.config.name)' on \(split.rawValue): \(e.count) views; views \(report.scenesReused) reused, " +
              "\(report.scenesGenerated) generated, in \(report.viewsFolder.path)")
        print("reference statistics \(report.referenceStatisticsReused ? "read from" : "written to") \(report.referenceStatistics.path)")
        func value(_ v: Double?, _ format: String = "%.4f") -> String { v.map { String(format: format, $0) } ?? "—" }
        print("FID          \(value(e.fid))")
        print("IS           \(e.isMean.map { String(format: "%.4f ± %.4f", $0, e.isStd ?? 0) } ?? "—")")
        print("CLIP score   \(value(e.clipScore))")
        print("consistency  \(value(e.consistencyPsnr, "%.2f")) dB (ground truth \(value(report.groundTruth.consistencyPsnr, "%.2f")) dB, " +
              "ratio \(value(e.consistencyRatio, "%.3f")))")
        if let vae = report.groundTruthThroughVAE {
            print("through VAE  \(value(vae.consistencyPsnr, "%.2f")) dB for the real views after the VAE (ratio \(value(vae.consistencyRatio, "%.3f")))")
        }
        for (metric, note) in e.metricNotes.sorted(by: { $0.key.rawValue < $1.key.rawValue }) where metric != .userScore {
            print("note: \(note)")
        }
        print("recorded in \(registry.url.path)")
    }

    /// An autoencoder run: reconstruction PSNR of its VAE on the split's views.
    func evaluateAutoencoder(_ target: Run) throws {
        var evaluator = AutoencoderEvaluator(run: target, split: split)
        evaluator.limit = limit
        evaluator.device = try device.resolved(default: target.config.training.device)
        let report = try evaluator.evaluate()
        print("autoencoder of run '\(target.config.name)' on \(split.rawValue): \(report.views) views, reconstruction PSNR " +
              String(format: "%.2f dB (worst view %.2f dB)", report.psnr, report.worstPSNR))
        print("originals above reconstructions: \(report.contactSheet.path)")
    }

    /// A CLIP run: image→text retrieval among the split's distinct captions.
    func evaluateCLIP(_ target: Run) throws {
        var evaluator = CLIPRetrievalEvaluator(run: target, split: split)
        evaluator.limit = limit
        evaluator.device = try device.resolved(default: target.config.training.device)
        evaluator.batchSize = batchSize
        let r = try evaluator.evaluate()
        print("CLIP of run '\(target.config.name)' on \(split.rawValue): \(r.views) views against \(r.captions) distinct captions; " +
              String(format: "image→text top-1 %.1f %%, top-5 %.1f %% (chance %.1f %%)", 100 * r.top1, 100 * r.top5,
                     100 / Double(r.captions)))
    }

    /// A text-to-image run: each test view drawn again from its caption; FID, CLIP score (generated
    /// and real) and wall-colour agreement.
    func evaluateTextToImage(_ target: Run) throws {
        var evaluator = TextToImageEvaluator(run: target, split: split,
                                             inceptionWeights: try target.inceptionWeights(override: inception, fallback: defaultInceptionWeights))
        if let model {
            evaluator.model = URL(fileURLWithPath: expandEnvironment(model))
            evaluator.label = label ?? evaluator.model.lastPathComponent
        } else if let label {
            evaluator.label = label
        }
        evaluator.limit = limit
        evaluator.steps = steps
        evaluator.guidance = guidance
        evaluator.seed = seed
        evaluator.batchSize = batchSize
        evaluator.clipModel = try target.clipModel(override: clip)
        evaluator.device = try device.resolved(default: target.config.training.device)
        evaluator.vaeRoundTrip = vaeRoundTrip
        let r = try evaluator.evaluate()
        func value(_ v: Double?, _ format: String = "%.3f") -> String { v.map { String(format: format, $0) } ?? "— (no --clip)" }
        print("text-to-image '\(evaluator.label)' of run '\(target.config.name)' on \(split.rawValue): \(r.views) views in \(r.generated.path)")
        print(String(format: "FID          %.2f", r.fid) + (r.views < 2048 ? " (small sample: compare only on the same views)" : ""))
        print("CLIP score   generated \(value(r.clipGenerated)), real views \(value(r.clipReal))")
        print("wall colour  \(value(r.colourAccuracy.map { 100 * $0 }, "%.1f %%")) of \(r.colourViews) views that name one " +
              "(real views: \(value(r.colourAccuracyReal.map { 100 * $0 }, "%.1f %%"))), CLIP zero-shot")
        print(String(format: "wall colour  %.1f %% (real views: %.1f %%), wall-band classifier", 100 * r.classifierAccuracy,
                     100 * r.classifierAccuracyReal))
        if let vae = r.throughVAE {
            print(String(format: "through VAE  the real views after the VAE: FID %.2f, ", vae.fid) + "CLIP score \(value(vae.clip)), " +
                  "wall colour \(value(vae.colourAccuracy.map { 100 * $0 }, "%.1f %%")) CLIP zero-shot, " +
                  String(format: "%.1f %% classifier", 100 * vae.classifierAccuracy))
        }
        print("per colour   right / views by the classifier: real" + (r.throughVAE == nil ? "" : ", through the VAE") +
              ", generated (\(r.colourTable.path))")
        for (i, real) in r.classifierTalliesReal.enumerated() where real.views > 0 {
            let columns = [real, r.throughVAE?.classifierTallies[i], r.classifierTallies[i]].compactMap { $0 }
            print("  " + real.colour.padding(toLength: 12, withPad: " ", startingAt: 0) +
                  columns.map { "\($0.hits)/\($0.views)".leftPadded(to: 8) }.joined())
        }
        print("real (top) and generated (bottom) views: \(r.contactSheet.path)")
    }
}

private extension String {
    func leftPadded(to width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
