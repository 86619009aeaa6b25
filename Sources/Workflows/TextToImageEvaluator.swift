import Datasets
import Evaluation
import Experiments
import Foundation
import Media
import StableDiffusion
import Support
import Torch

/// How a text-to-image model does on a split (docs/models.md#miniature-sd): every view (yaw offset 0)
/// of the first `limit` panoramas is drawn again from its own caption (seed + view number), and
/// - FID of the generated views against the real ones (the FID Inception; a small-sample number
///   when fewer than 2,048 views, comparable only between models evaluated on the same views);
/// - the CLIP score of generated and of real views against their captions (an in-domain CLIP);
/// - for captions that name a wall colour, how often the named one is what the view shows: by the
///   CLIP's zero-shot choice among all wall colours ("a room with a … wall") and by
///   `WallColourClassifier` fitted on real training views, on generated views and, as each
///   measure's own ceiling, on the real views;
/// - with `vaeRoundTrip`, the same three for the real views through the model's VAE: what a latent
///   model that drew exactly the real views would score, so what the VAE alone leaves possible.
public struct TextToImageEvaluator {
    /// The real views after the VAE's round trip, scored as generated views are.
    public struct ThroughVAE: Sendable {
        public let fid: Double
        public let clip: Double?
        public let colourAccuracy: Double?
        /// Per wall colour, by `WallColourClassifier`.
        public let classifierTallies: [ColourTally]
        public var classifierAccuracy: Double { WallColourClassifier.accuracy(classifierTallies) }
    }

    public struct Report: Sendable {
        public let views: Int
        public let fid: Double
        public let clipGenerated: Double?
        public let clipReal: Double?
        /// Among the views whose caption names a wall colour, the share whose colour the CLIP picks.
        public let colourAccuracy: Double?
        public let colourAccuracyReal: Double?
        /// The same by `WallColourClassifier`, per wall colour.
        public let classifierTallies: [ColourTally]
        public let classifierTalliesReal: [ColourTally]
        public var classifierAccuracy: Double { WallColourClassifier.accuracy(classifierTallies) }
        public var classifierAccuracyReal: Double { WallColourClassifier.accuracy(classifierTalliesReal) }
        /// Views whose caption names a wall colour.
        public var colourViews: Int { classifierTalliesReal.reduce(0) { $0 + $1.views } }
        public let throughVAE: ThroughVAE?
        public let generated: URL
        /// Per wall colour: its views and the classifier's hits among the real views, the real views
        /// through the VAE (when measured) and the generated views.
        public let colourTable: URL
        /// Real views (top) above generated ones (bottom), the first 16.
        public let contactSheet: URL
    }

    public let run: Run
    public let split: RunConfig.Split
    /// The model folder to evaluate (default: the one the run wrote) and the name its views are kept under.
    public var model: URL
    public var label = "model"
    public var limit: Int?
    public var steps = 50
    public var guidance = 5.0
    public var seed: UInt64 = 0
    public var batchSize = 16
    public var clipModel: URL?
    public var inceptionWeights: URL
    public var device: Device = .cpu
    /// Training panoramas whose views fit the wall-colour classifier.
    public var classifierPanoramas = 200
    public var vaeRoundTrip = false

    public init(run: Run, split: RunConfig.Split, inceptionWeights: URL) {
        self.run = run
        self.split = split
        self.inceptionWeights = inceptionWeights
        model = run.modelDirectory
    }

    public func evaluate() throws -> Report {
        let source = try run.dataset(split: split)
        let count = min(source.count, limit ?? source.count)
        guard count > 0 else { throw DatasetError(file: run.datasetRoot.path, "the \(split.rawValue) split is empty") }
        let folder = run.evaluationDirectory(split: split.rawValue)
        let realFolder = folder.appendingPathComponent("real-\(count)")
        let generatedFolder = folder.appendingPathComponent("\(label)-\(count)")
        try FileManager.default.createDirectory(at: realFolder, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: generatedFolder, withIntermediateDirectories: true)

        var real: [Tensor] = [], captions: [String] = []
        for index in 0..<count {
            let sample = try source.sample(at: index, yawOffset: 0)
            real += try (0..<sample.images.shape[0]).map { try sample.images.select(dim: 0, index: $0).signedToUInt8() }
            captions += sample.prompts
        }
        func file(_ folder: URL, _ i: Int) -> URL { folder.appendingPathComponent(String(format: "view-%05d.png", i)) }
        for (i, image) in real.enumerated() where !FileManager.default.fileExists(atPath: file(realFolder, i).path) {
            try image.writeImage(to: file(realFolder, i), range: .uint8)
        }
        // Which caption each view-NNNNN.png (real and generated) belongs to, one per line.
        try Data((captions.joined(separator: "\n") + "\n").utf8).write(to: folder.appendingPathComponent("captions-\(count).txt"), options: .atomic)

        // Generated views are kept, so a second evaluation (another metric, another CLIP) reuses them.
        let pipeline = try StableDiffusionPipeline.load(from: model, device: device)
        let size = run.config.dataset.resolution
        let progress = ProgressReporter(title: "generate \(label)", total: captions.count)
        var generated: [Tensor] = []
        for start in stride(from: 0, to: captions.count, by: batchSize) {
            let range = start..<min(start + batchSize, captions.count)
            if range.allSatisfy({ FileManager.default.fileExists(atPath: file(generatedFolder, $0).path) }) {
                generated += try range.map { try Image(contentsOf: file(generatedFolder, $0)).tensor(.uint8) }
            } else {
                // One seed per batch start: the views of a batch draw their noise together, as diffusers does.
                let images = try pipeline(Array(captions[range]), steps: steps, guidanceScale: guidance, height: size, width: size,
                                          seed: seed + UInt64(start))
                for (offset, i) in range.enumerated() {
                    let image = try images.select(dim: 0, index: offset).signedToUInt8()
                    try image.writeImage(to: file(generatedFolder, i), range: .uint8)
                    generated.append(image)
                }
            }
            progress.update(range.upperBound)
        }
        progress.finish()

        let fidCalculator = try FIDCalculator(weights: inceptionWeights, device: device)
        let fid = try fidCalculator.distance(generatedFolder, realFolder).fid
        let named = captions.enumerated().compactMap { i, caption in
            WallColourClassifier.label(caption: caption).map { (view: i, colour: $0) }
        }
        let classifier = try wallColourClassifier()
        func classifierTallies(_ images: [Tensor]) throws -> [ColourTally] {
            try classifier.tally(named.map { images[$0.view] }, labels: named.map(\.colour))
        }
        // The CLIP score and its zero-shot wall colour of a set of views, when a CLIP was given.
        var clip: ((_ images: [Tensor]) throws -> (score: Double, colour: Double?))?
        if let clipModel {
            let scorer = try CLIPScorer(modelDirectory: clipModel, device: device, batchSize: 64)
            let choices = try unitRows(scorer.textEmbeddings(WallColourClassifier.colours.map { "a room with a \($0) wall" }))
            clip = { images in
                let score = try scorer.score(images: images, prompts: captions).mean
                guard !named.isEmpty else { return (score, nil) }
                let embeddings = try unitRows(scorer.imageEmbeddings(named.map { images[$0.view] }))
                let picked = try embeddings.matmul(choices.transpose(0, 1)).argmax(dim: 1).to(dtype: .int64).toArray(Int64.self)
                return (score, Double(zip(picked, named).filter { Int($0.0) == $0.1.colour }.count) / Double(named.count))
            }
        }
        let clipGenerated = try clip?(generated), clipReal = try clip?(real)

        var throughVAE: ThroughVAE?
        if vaeRoundTrip {
            let vaeFolder = folder.appendingPathComponent("vae-round-trip-\(label)-\(count)")
            try FileManager.default.createDirectory(at: vaeFolder, withIntermediateDirectories: true)
            let reconstructed = try stride(from: 0, to: real.count, by: batchSize).flatMap { start in
                let batch = try Tensor.stack(Array(real[start..<min(start + batchSize, real.count)]))
                let pixels = try pipeline.vae.reconstruct(batch.to(dtype: .float32, device: device) / 127.5 - 1).signedToUInt8()
                return try (0..<pixels.shape[0]).map { try pixels.select(dim: 0, index: $0) }
            }
            for (i, image) in reconstructed.enumerated() { try image.writeImage(to: file(vaeFolder, i), range: .uint8) }
            let clipVAE = try clip?(reconstructed)
            throughVAE = ThroughVAE(fid: try fidCalculator.distance(vaeFolder, realFolder).fid, clip: clipVAE?.score,
                                    colourAccuracy: clipVAE?.colour, classifierTallies: try classifierTallies(reconstructed))
        }
        let sheet = folder.appendingPathComponent("\(label)-\(count)-sheet.png")
        let shown = min(16, real.count)
        let rows = try [real, generated].map { images in try Tensor.cat(Array(images.prefix(shown)), dim: 2) }
        try Tensor.cat(rows, dim: 1).writeImage(to: sheet, range: .uint8)
        let tallies = try classifierTallies(generated), talliesReal = try classifierTallies(real)
        let table = folder.appendingPathComponent("\(label)-\(count)-wall-colour.csv")
        try Data(Self.colourTable(real: talliesReal, throughVAE: throughVAE?.classifierTallies, generated: tallies).utf8)
            .write(to: table, options: .atomic)
        return Report(views: captions.count, fid: fid, clipGenerated: clipGenerated?.score, clipReal: clipReal?.score,
                      colourAccuracy: clipGenerated?.colour, colourAccuracyReal: clipReal?.colour,
                      classifierTallies: tallies, classifierTalliesReal: talliesReal,
                      throughVAE: throughVAE, generated: generatedFolder, colourTable: table, contactSheet: sheet)
    }

    /// CSV, one row per wall colour: its views, and the classifier's hits among the real views, the
    /// real views through the VAE (empty when not measured) and the generated views.
    public static func colourTable(real: [ColourTally], throughVAE: [ColourTally]?, generated: [ColourTally]) -> String {
        var lines = ["colour,views,real,through_vae,generated"]
        for (i, row) in real.enumerated() {
            lines.append("\(row.colour),\(row.views),\(row.hits),\(throughVAE.map { String($0[i].hits) } ?? ""),\(generated[i].hits)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Fitted on the views (yaw offset 0) of the first `classifierPanoramas` training panoramas whose
    /// captions name a wall colour.
    func wallColourClassifier() throws -> WallColourClassifier {
        let train = try run.dataset(split: .train)
        var images: [Tensor] = [], labels: [Int] = []
        for index in 0..<min(train.count, classifierPanoramas) {
            let sample = try train.sample(at: index, yawOffset: 0)
            for (view, caption) in sample.prompts.enumerated() {
                guard let label = WallColourClassifier.label(caption: caption) else { continue }
                images.append(try sample.images.select(dim: 0, index: view).signedToUInt8())
                labels.append(label)
            }
        }
        return try WallColourClassifier(images: images, labels: labels)
    }
}
