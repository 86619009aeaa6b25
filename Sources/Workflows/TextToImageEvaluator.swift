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
///   measure's own ceiling, on the real views.
public struct TextToImageEvaluator {
    public struct Report: Sendable {
        public let views: Int
        public let fid: Double
        public let clipGenerated: Double?
        public let clipReal: Double?
        /// Views whose caption names a wall colour, and the share whose colour the CLIP picks.
        public let colourViews: Int
        public let colourAccuracy: Double?
        public let colourAccuracyReal: Double?
        /// The same by `WallColourClassifier`.
        public let classifierAccuracy: Double
        public let classifierAccuracyReal: Double
        public let generated: URL
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

        let fid = try FIDCalculator(weights: inceptionWeights, device: device).distance(generatedFolder, realFolder).fid
        var clipGenerated: Double?, clipReal: Double?, accuracy: Double?, accuracyReal: Double?
        let colours = WallColourClassifier.colours
        let named = captions.enumerated().compactMap { i, caption in
            WallColourClassifier.label(caption: caption).map { (view: i, colour: $0) }
        }
        let classifier = try wallColourClassifier()
        let classifierAccuracy = try classifier.accuracy(named.map { generated[$0.view] }, labels: named.map(\.colour))
        let classifierAccuracyReal = try classifier.accuracy(named.map { real[$0.view] }, labels: named.map(\.colour))
        if let clipModel {
            let scorer = try CLIPScorer(modelDirectory: clipModel, device: device, batchSize: 64)
            clipGenerated = try scorer.score(images: generated, prompts: captions).mean
            clipReal = try scorer.score(images: real, prompts: captions).mean
            if !named.isEmpty {
                let choices = try unitRows(scorer.textEmbeddings(colours.map { "a room with a \($0) wall" }))
                func share(_ images: [Tensor]) throws -> Double {
                    let embeddings = try unitRows(scorer.imageEmbeddings(named.map { images[$0.view] }))
                    let picked = try embeddings.matmul(choices.transpose(0, 1)).argmax(dim: 1).to(dtype: .int64).toArray(Int64.self)
                    return Double(zip(picked, named).filter { Int($0.0) == $0.1.colour }.count) / Double(named.count)
                }
                accuracy = try share(generated)
                accuracyReal = try share(real)
            }
        }
        let sheet = folder.appendingPathComponent("\(label)-\(count)-sheet.png")
        let shown = min(16, real.count)
        let rows = try [real, generated].map { images in try Tensor.cat(Array(images.prefix(shown)), dim: 2) }
        try Tensor.cat(rows, dim: 1).writeImage(to: sheet, range: .uint8)
        return Report(views: captions.count, fid: fid, clipGenerated: clipGenerated, clipReal: clipReal, colourViews: named.count,
                      colourAccuracy: accuracy, colourAccuracyReal: accuracyReal, classifierAccuracy: classifierAccuracy,
                      classifierAccuracyReal: classifierAccuracyReal, generated: generatedFolder, contactSheet: sheet)
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
