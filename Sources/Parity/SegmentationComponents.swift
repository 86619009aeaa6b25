import Foundation
import Torch
import VirtualBackground

/// `selfie_segmentation`: MediaPipe's selfie segmentation `.tflite` run natively (VirtualBackground).
enum SegmentationComponents {
    static let runners: [String: ParityRunner] = [
        "selfie_segmentation": selfieSegmentation,
    ]

    /// `image` uint8 [1, H, W, 3] RGB → `mask` float32 [1, h, w], the model's sigmoid output at its own
    /// resolution (a frame of another size is first resized as MediaPipe does). With args `min_iou`
    /// (and `threshold`, default 0.5) the case also fails when the masks' IoU at the threshold is lower.
    static func selfieSegmentation(_ c: ParityCase) throws -> [String: Tensor] {
        let image = try c.input("image")
        guard image.rank == 4, image.shape[3] == 3 else {
            throw ParityError("\(c.name): image must be uint8 [B, H, W, 3], got \(image.shape)")
        }
        let segmenter = try Segmenter(contentsOf: try modelURL(c))
        let mask = try segmenter.modelProbabilities(image.permute(0, 3, 1, 2).contiguous()).squeeze(dim: 1)
        if c.args.has("min_iou"), let expected = c.expected["mask"], expected.shape == mask.shape {
            let threshold = try c.args.double("threshold", default: 0.5)
            let iou = try intersectionOverUnion(mask, expected, threshold: threshold)
            let minimum = try c.args.double("min_iou")
            if iou < minimum {
                throw ParityError("\(c.name): IoU at \(threshold) is \(String(format: "%.5f", iou)), below min_iou \(minimum)")
            }
        }
        return ["mask": mask]
    }

    /// The case's `model`. The selfie models live outside the repository (`make setup` fetches them),
    /// so committed cases name them as `$BACKDROP_ASSETS/models/<file>.tflite`: a leading `$NAME/`
    /// is taken from the environment (BACKDROP_ASSETS defaults to ~/.cache/backdrop/assets, where
    /// `make setup` puts it); anything else is what `ParityCase` resolved (relative to the case folder).
    static func modelURL(_ c: ParityCase) throws -> URL {
        let prefix = c.directory.standardizedFileURL.path + "/"
        let resolved = c.model.standardizedFileURL.path
        guard resolved.hasPrefix(prefix) else { return c.model }
        let raw = String(resolved.dropFirst(prefix.count))
        guard raw.hasPrefix("$") else { return c.model }
        let name = String(raw.dropFirst().prefix { $0 != "/" })
        var value = ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
        if value == nil, name == "BACKDROP_ASSETS" {
            // Where `make setup` puts the assets, as the Segmenter's default.
            value = Segmenter.defaultModelsDirectory.deletingLastPathComponent().path
        }
        guard let value else {
            throw ParityError("\(c.name): model '\(raw)' needs $\(name), which is not set")
        }
        let url = URL(fileURLWithPath: value).appendingPathComponent(String(raw.dropFirst(1 + name.count)))
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ParityError("\(c.name): model \(url.path) is missing: run `make setup`")
        }
        return url
    }

    /// |A ∩ B| / |A ∪ B| of the two masks thresholded at `threshold` (1 when both are empty).
    static func intersectionOverUnion(_ a: Tensor, _ b: Tensor, threshold: Double) throws -> Double {
        let x = try a .>= threshold, y = try b .>= threshold
        let union = try x.logicalOr(y).to(dtype: .float64).sum().item()
        let intersection = try x.logicalAnd(y).to(dtype: .float64).sum().item()
        return union == 0 ? 1 : intersection / union
    }
}
