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

    /// The case's `model` (`ParityCase` expands `$BACKDROP_ASSETS/…`: the selfie models are fetched
    /// by `make setup`, not committed), with a hint when it has not been fetched.
    static func modelURL(_ c: ParityCase) throws -> URL {
        guard FileManager.default.fileExists(atPath: c.model.path) else {
            throw ParityError("\(c.name): model \(c.model.path) is missing: run `make setup`")
        }
        return c.model
    }

    /// |A ∩ B| / |A ∪ B| of the two masks thresholded at `threshold` (1 when both are empty).
    static func intersectionOverUnion(_ a: Tensor, _ b: Tensor, threshold: Double) throws -> Double {
        let x = try a .>= threshold, y = try b .>= threshold
        let union = try x.logicalOr(y).to(dtype: .float64).sum().item()
        let intersection = try x.logicalAnd(y).to(dtype: .float64).sum().item()
        return union == 0 ? 1 : intersection / union
    }
}
