import Foundation
import Media
import Torch

/// Runs images through the FID Inception in batches: pool3 features for FID, unbiased logits for
/// IS when the weights have a classifier.
public final class InceptionFeatureExtractor {
    public let model: InceptionV3
    public let resize: InceptionResize
    public let device: Device
    public let batchSize: Int

    public init(model: InceptionV3, resize: InceptionResize = .tf1, device: Device = .cpu, batchSize: Int = 32) {
        (self.model, self.resize, self.device, self.batchSize) = (model, resize, device, max(1, batchSize))
    }

    /// Features of a set of images.
    public struct Output {
        /// `[N, 2048]`
        public var features: Tensor
        /// `[N, 1008]` logits without the fc bias; nil when the weights have no classifier.
        public var logitsUnbiased: Tensor?
    }

    /// `images`: each uint8 `[3, H, W]` (sizes may differ). `progress` is told after every batch.
    public func run(_ images: [Tensor], progress: ((Int) -> Void)? = nil) throws -> Output {
        var features: [Tensor] = [], logits: [Tensor] = []
        var start = 0
        while start < images.count {
            let batch = images[start..<min(start + batchSize, images.count)]
            // Each image is resized on its own (sizes may differ), then the batch goes through at once.
            let input = try Tensor.cat(batch.map { try resize.prepare($0.unsqueeze(0)) }, dim: 0).to(device: device)
            try withInferenceMode {
                let pool = try model.features(input).pool2048
                features.append(try pool.to(device: .cpu))
                if model.fc != nil { logits.append(try model.logits(pool, unbiased: true).to(device: .cpu)) }
            }
            start += batch.count
            progress?(start)
        }
        guard !features.isEmpty else { throw TorchError("no images to extract Inception features from") }
        return Output(features: try Tensor.cat(features, dim: 0),
                      logitsUnbiased: logits.isEmpty ? nil : try Tensor.cat(logits, dim: 0))
    }

    /// Every PNG/JPEG in `folder` (sorted by name), decoded as RGB uint8 `[3, H, W]`.
    public static func loadImages(in folder: URL) throws -> [Tensor] {
        try imageFiles(in: folder).map { try Image(contentsOf: $0).rgb8().tensor(.uint8) }
    }

    /// The PNG/JPEG files in `folder`, sorted by name; an error when there are none.
    public static func imageFiles(in folder: URL) throws -> [URL] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        } catch {
            throw TorchError("cannot list image folder \(folder.path): \(failureReason(error))")
        }
        let files = names.filter { ImageFormat(pathExtension: ($0 as NSString).pathExtension) != nil }
        guard !files.isEmpty else { throw TorchError("no PNG or JPEG images in \(folder.path)") }
        return files.map { folder.appendingPathComponent($0) }
    }
}
