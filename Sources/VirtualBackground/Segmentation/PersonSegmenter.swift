import Foundation
import Torch

/// A person segmentation model as the call pipeline and `backdrop segment` use it: MediaPipe's selfie
/// models (`Segmenter`), torchvision's DeepLabV3 (`DeepLabSegmenter`), or either behind a
/// `SegmentationCache`. Instances keep per-size state: one per stream and thread.
public protocol PersonSegmenter: AnyObject {
    /// Person probabilities at the model's own resolution, the input of `MaskPostProcessor`.
    /// - Parameter image: RGB `[3, H, W]` uint8 (0…255) or float (0…1).
    /// - Returns: `[1, h, w]` float in [0, 1]; h × w is the model's size for this frame size.
    func modelProbabilities(_ image: Tensor) throws -> Tensor

    /// Person probabilities resized to the frame, `[1, H, W]` in [0, 1] (no post-processing).
    func probabilities(_ image: Tensor) throws -> Tensor
}

extension Segmenter: PersonSegmenter {}

/// The segmentation models `--segmenter` names.
public enum SegmenterKind: String, CaseIterable, Sendable, CustomStringConvertible {
    /// MediaPipe's general selfie model (256×256).
    case selfie
    /// MediaPipe's landscape selfie model (144×256).
    case landscape
    /// torchvision's DeepLabV3 (ResNet-50/101 or MobileNetV3-Large) from a user's `.pth` state dict.
    case deeplab

    public var description: String { rawValue }

    /// Loads the model: `model` overrides the fetched `.tflite` of selfie/landscape and is required
    /// for deeplab (its weights are in no package), whose frames are resized to a shorter side of
    /// `deeplabResizeSize` (torchvision's 520; nil: the frame's own size).
    public func load(model: URL? = nil, deeplabResizeSize: Int? = 520) throws -> any PersonSegmenter {
        switch self {
        case .selfie, .landscape:
            if let model { return try Segmenter(contentsOf: model) }
            return try Segmenter(self == .selfie ? .selfie : .landscape)
        case .deeplab:
            guard let model else {
                throw SegmentationError("the deeplab segmenter needs a model file: a torchvision DeepLabV3 state dict saved with torch.save(model.state_dict()) (deeplabv3_resnet50, deeplabv3_resnet101 or deeplabv3_mobilenet_v3_large)")
            }
            return try DeepLabSegmenter(contentsOf: model, resizeSize: deeplabResizeSize)
        }
    }
}

/// `[3, H, W]` → `[1, 3, H, W]` (a batch passes through); checks the layout and dtype every
/// segmenter accepts.
func segmentationBatch(_ image: Tensor) throws -> Tensor {
    let x = image.rank == 3 ? try image.unsqueeze(0) : image
    guard x.rank == 4, x.shape[1] == 3, x.shape[2] > 0, x.shape[3] > 0 else {
        throw SegmentationError("segmentation needs an RGB image [3, H, W] or [B, 3, H, W], got \(image.shape)")
    }
    guard x.dtype == .uint8 || x.dtype.isFloatingPoint else {
        throw SegmentationError("segmentation needs a uint8 or float image, got \(x.dtype)")
    }
    return x
}
