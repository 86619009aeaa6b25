import Datasets
import Experiments
import Foundation
import Media
import MultiView
import Torch

/// `backdrop paper` (docs/models.md#paper): the paper's Table I on the miniature, from shipped weights.
/// The release's CAA (`<release>/caa`) on its SD (`<release>/sd`) against the same SD with independent
/// views, on the first `panoramas` test panoramas of the synthetic rooms, with FID (Inception), the CLIP
/// score of the in-domain CLIP (`<release>/clip`) and overlap-PSNR consistency. The release is
/// registered as a run (status "released", its manifest's config pointed at these folders) so that
/// `backdrop table`, `eval` and `panorama --run` treat it as any other run.
public struct MiniaturePaper {
    public struct Options {
        public var release: URL
        public var dataset: URL
        public var panoramas: Int
        public var steps = 50
        public var guidance = 5.0
        public var seed: UInt64 = 0
        /// How each panorama's views draw their initial latents, for both systems alike.
        public var noise: InitialNoise = .independent
        public var batchSize = 16
        public var inceptionWeights: URL
        public var device: Device = .cpu
        /// Where views, the table and the contact sheet go.
        public var out: URL
        /// The registry name of the release's run.
        public var runName = "miniature"
        /// Test prompts in the contact sheet (the first scenes).
        public var sheetScenes = 6

        public init(release: URL, dataset: URL, panoramas: Int, inceptionWeights: URL, out: URL) {
            (self.release, self.dataset, self.panoramas, self.inceptionWeights, self.out) =
                (release, dataset, panoramas, inceptionWeights, out)
        }
    }

    public struct Report {
        public var model: RunEvaluator.Report
        public var baseline: RunEvaluator.Report
        public var table: ResultsTable
        public var tableFiles: [URL]
        /// Each sheet scene's baseline panorama above its CAA panorama.
        public var contactSheet: URL
        /// The prompts of the sheet's rows (one line per scene: its views' prompts joined by " | ").
        public var contactSheetPrompts: URL
    }

    public let options: Options
    public init(options: Options) { self.options = options }

    public var sdFolder: URL { options.release.appendingPathComponent("sd") }
    public var clipFolder: URL { options.release.appendingPathComponent("clip") }
    public var caaFolder: URL { options.release.appendingPathComponent("caa") }

    public func run(registry: RunRegistry) throws -> Report {
        let run = try registerRelease(registry)
        func evaluate(_ system: RunEvaluator.System) throws -> RunEvaluator.Report {
            var o = RunEvaluator.Options(inceptionWeights: options.inceptionWeights)
            o.system = system
            o.limit = options.panoramas
            o.steps = options.steps
            o.guidance = options.guidance
            o.seed = options.seed
            o.noise = options.noise
            o.clipModel = clipFolder
            o.device = options.device
            o.batchSize = options.batchSize
            o.caaWeights = system == .model ? caaFolder.appendingPathComponent(ModelRelease.caaFile) : nil
            // Once: the VAE is the same for both systems.
            o.vaeRoundTrip = system == .model
            return try RunEvaluator(run: run, split: .test, options: o).evaluate(registry: registry)
        }
        let baseline = try evaluate(.baseline)
        let model = try evaluate(.model)
        let table = try ResultsTable.fromRegistry(registry, runNames: [options.runName], split: "test")
        let files = try table.write(to: options.out)
        let (sheet, prompts) = try contactSheet(baseline: baseline.viewsFolder, model: model.viewsFolder)
        return Report(model: model, baseline: baseline, table: table, tableFiles: files, contactSheet: sheet,
                      contactSheetPrompts: prompts)
    }

    /// The release as a registered run: its CAA manifest's config with the base model, dataset, CLIP
    /// and output folder of these options. An existing run of the name with the same config is reused
    /// (its evaluations' views too).
    func registerRelease(_ registry: RunRegistry) throws -> Run {
        let manifestURL = caaFolder.appendingPathComponent(ModelRelease.manifestFile)
        guard let object = try? JSONSerialization.jsonObject(with: Data(contentsOf: manifestURL)) as? [String: Any],
              let config = object["config"] as? [String: Any] else {
            throw TorchError("\(manifestURL.path): not a CAA release manifest with a 'config' (write it with `backdrop publish`)")
        }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)
        var parsed = try RunConfig.parse(yaml: json, file: manifestURL.path + " (config)")
        guard parsed.task == .caa else { throw TorchError("\(manifestURL.path): a \(parsed.task.rawValue) release, not caa") }
        parsed.name = options.runName
        parsed.model.base = sdFolder.standardizedFileURL.path
        parsed.dataset.root = options.dataset.standardizedFileURL.path
        parsed.dataset.latentCache = nil
        parsed.outputDir = options.out.appendingPathComponent("run").standardizedFileURL.path
        parsed.evaluation = RunConfig.Evaluation(clipModel: clipFolder.standardizedFileURL.path)
        let configJSON = try parsed.json()
        if let existing = try registry.latestRun(named: options.runName), existing.config == configJSON {
            return try Run.named(options.runName, registry: registry)
        }
        let id = try registry.startRun(name: options.runName, configJSON: configJSON, outputDir: parsed.outputDir,
                                       gitCommit: object["git_commit"] as? String)
        try registry.finishRun(id, status: "released")
        let run = try Run.named(options.runName, registry: registry)
        try FileManager.default.createDirectory(at: run.directory, withIntermediateDirectories: true)
        try run.writeDescription()
        return run
    }

    /// Rows of panoramas, per scene the baseline's above CAA's, and the scenes' prompts.
    func contactSheet(baseline: URL, model: URL) throws -> (URL, URL) {
        let scenes = try FileManager.default.contentsOfDirectory(atPath: model.path)
            .filter { !$0.hasPrefix(".") }.sorted().prefix(options.sheetScenes)
        var rows: [Tensor] = [], lines: [String] = []
        for scene in scenes {
            for folder in [baseline, model] {
                rows.append(try Image(contentsOf: folder.appendingPathComponent(scene).appendingPathComponent("panorama.png")).tensor(.uint8))
            }
            let settings = model.appendingPathComponent(scene).appendingPathComponent("generation.json")
            let prompts = (try? JSONDecoder().decode(GeneratedViewStore.Settings.self, from: Data(contentsOf: settings)))?.prompts
            lines.append("\(scene): \((prompts ?? []).joined(separator: " | "))")
        }
        guard !rows.isEmpty else { throw TorchError("\(model.path): no generated panoramas for the contact sheet") }
        let sheet = options.out.appendingPathComponent("contact-sheet.png")
        let text = options.out.appendingPathComponent("contact-sheet.txt")
        try Tensor.cat(rows, dim: 1).writeImage(to: sheet, range: .uint8)
        let header = "rows: per scene the baseline (independent views), then CAA; initial noise: \(options.noise.rawValue)\n"
        try Data((header + lines.joined(separator: "\n") + "\n").utf8)
            .write(to: text, options: .atomic)
        return (sheet, text)
    }
}
