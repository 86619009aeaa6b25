import Datasets
import Evaluation
import Experiments
import Foundation
import Support
import Torch

/// How well a CLIP run's model matches views to their captions on a split: every view (yaw offset
/// 0) is scored against every distinct caption of the split, and a view counts as retrieved at k when
/// its own caption is among its k best (docs/metrics.md#in-domain-clip). Chance is 1 / captions.
public struct CLIPRetrievalEvaluator {
    public struct Report: Sendable {
        public let views: Int
        public let captions: Int
        public let top1: Double
        public let top5: Double
    }

    public let run: Run
    public let split: RunConfig.Split
    public var limit: Int?
    public var device: Device = .cpu
    public var batchSize = 64

    public init(run: Run, split: RunConfig.Split) {
        self.run = run
        self.split = split
    }

    /// The model the run wrote (`<run>/model`).
    public func evaluate() throws -> Report {
        let scorer = try CLIPScorer(modelDirectory: run.modelDirectory, device: device, batchSize: batchSize)
        let source = try run.dataset(split: split)
        let count = min(source.count, limit ?? source.count)
        guard count > 0 else { throw DatasetError(file: run.datasetRoot.path, "the \(split.rawValue) split is empty") }
        var images: [Tensor] = [], captions: [String] = []
        let progress = ProgressReporter(title: "views of \(run.config.name)", total: count)
        for index in 0..<count {
            let sample = try source.sample(at: index, yawOffset: 0)
            images += try (0..<sample.images.shape[0]).map { try sample.images.select(dim: 0, index: $0).signedToUInt8() }
            captions += sample.prompts
            progress.update(index + 1)
        }
        progress.finish()
        let distinct = Array(Set(captions)).sorted()
        let position = Dictionary(uniqueKeysWithValues: distinct.enumerated().map { ($0.element, $0.offset) })
        let similarity = try unitRows(scorer.imageEmbeddings(images)).matmul(unitRows(scorer.textEmbeddings(distinct)).transpose(0, 1))
        let k = min(5, distinct.count)
        let ranked = try similarity.topk(k, dim: 1).indices.to(dtype: .int64).toArray(Int64.self)
        var hits1 = 0, hits5 = 0
        for (row, caption) in captions.enumerated() {
            let own = Int64(position[caption]!)
            let best = ranked[(row * k)..<((row + 1) * k)]
            if best.first == own { hits1 += 1 }
            if best.contains(own) { hits5 += 1 }
        }
        let n = Double(captions.count)
        return Report(views: captions.count, captions: distinct.count, top1: Double(hits1) / n, top5: Double(hits5) / n)
    }
}
