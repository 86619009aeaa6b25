import Foundation
import Torch

/// FID between two image sets, each given as a folder of PNG/JPEG images or as a statistics file
/// (`.h5`, as `FeatureStatistics.save` writes): what `backdrop fid` computes.
///
/// A statistics file is the cache of a folder's Inception statistics: it is read instead of running
/// Inception, and only when it was made with the same weights (content hash) and input path
/// (`FeatureStatistics.Provenance`). Inception is loaded on the first folder, never for files, and a
/// folder asked for twice is run once.
public final class FIDCalculator {
    public let weights: URL
    public let resize: InceptionResize
    public let device: Device
    public let batchSize: Int
    /// What cached statistics must have been made with.
    public let provenance: FeatureStatistics.Provenance

    private var extractor: InceptionFeatureExtractor?
    private var computed: [String: FeatureStatistics] = [:]

    /// `weights`: the FID Inception (`.pth` state dict or NVIDIA TorchScript archive); hashed now,
    /// loaded when a folder first needs it.
    public init(weights: URL, resize: InceptionResize = .tf1, device: Device = .cpu, batchSize: Int = 32) throws {
        (self.weights, self.resize, self.device, self.batchSize) = (weights, resize, device, max(1, batchSize))
        provenance = FeatureStatistics.Provenance(featureExtractor: try ContentHash.of(weights), resize: resize)
    }

    /// One side's statistics and where they came from.
    public struct SourceStatistics {
        public let source: URL
        public let statistics: FeatureStatistics
        /// Read from a statistics file rather than computed from images.
        public let fromFile: Bool
        /// Computed from fewer than 2048 images: FID from them is biased upward and not comparable
        /// with published numbers.
        public var isSmallSample: Bool { !fromFile && statistics.count < 2048 }
    }

    /// The distance and both sides.
    public struct Result {
        public let fid: Double
        public let first: SourceStatistics
        public let second: SourceStatistics
    }

    /// Whether `source` names a statistics file (`.h5`) rather than an image folder.
    public static func isStatisticsFile(_ source: URL) -> Bool { source.pathExtension == "h5" }

    /// The statistics of `source`: a statistics file read and checked against `provenance`, or the
    /// folder's images run through Inception (then written to `saveTo` when given, atomically).
    /// `progress` gets (images done, images in the folder) after every batch.
    public func statistics(of source: URL, saveTo: URL? = nil,
                           progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> SourceStatistics {
        if Self.isStatisticsFile(source) {
            if let saveTo {
                throw TorchError("\(source.path) is already a statistics file: there is nothing to save to \(saveTo.path)")
            }
            return SourceStatistics(source: source, statistics: try FeatureStatistics.load(source, expecting: provenance),
                                    fromFile: true)
        }
        let key = source.standardizedFileURL.path
        let statistics: FeatureStatistics
        if let known = computed[key] {
            statistics = known
        } else {
            let images = try InceptionFeatureExtractor.loadImages(in: source)
            let output = try loadedExtractor().run(images) { progress?($0, images.count) }
            statistics = try FeatureStatistics(features: output.features)
            computed[key] = statistics
        }
        if let saveTo { try statistics.save(to: saveTo, provenance: provenance) }
        return SourceStatistics(source: source, statistics: statistics, fromFile: false)
    }

    /// FID between `first` and `second` (each a folder or a statistics file); with `saveFirstTo`,
    /// the first folder's statistics are also written there for later runs. `progress` gets the
    /// folder, images done and images in it.
    public func distance(_ first: URL, _ second: URL, saveFirstTo: URL? = nil,
                         progress: ((_ folder: URL, _ done: Int, _ total: Int) -> Void)? = nil) throws -> Result {
        let a = try statistics(of: first, saveTo: saveFirstTo) { progress?(first, $0, $1) }
        let b = try statistics(of: second) { progress?(second, $0, $1) }
        return Result(fid: try frechetDistance(a.statistics, b.statistics), first: a, second: b)
    }

    private func loadedExtractor() throws -> InceptionFeatureExtractor {
        if let extractor { return extractor }
        let made = InceptionFeatureExtractor(model: try InceptionV3.load(weights, device: device), resize: resize,
                                             device: device, batchSize: batchSize)
        extractor = made
        return made
    }
}
