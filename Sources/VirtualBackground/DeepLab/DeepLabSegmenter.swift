import Foundation
import Torch

/// Person segmentation with a torchvision DeepLabV3 (21 VOC classes; person is class 15).
///
/// Preprocessing is torchvision's weights transform (`SemanticSegmentation(resize_size=520)`) as it
/// runs on a uint8 tensor: the shorter side resized to `resizeSize` (the longer one to
/// ⌊resizeSize · long / short⌋) with bilinear interpolation, align_corners false and no antialiasing,
/// rounded back to 8 bits, scaled to [0, 1] and normalised with ImageNet's mean and std. The person
/// probability is the softmax over the classes of the logits at the resized size.
/// Far from real time on a CPU (≈ 10–260 GFLOPs a frame at 520); see `SegmentationCache`.
public final class DeepLabSegmenter: PersonSegmenter {
    public static let mean: [Float] = [0.485, 0.456, 0.406]
    public static let std: [Float] = [0.229, 0.224, 0.225]
    /// The VOC class index of "person".
    public static let vocPersonClass = 15

    public let model: DeepLabV3
    /// Target of the shorter side; nil feeds the frame at its own size.
    public let resizeSize: Int?
    public let personClass: Int
    private let meanTensor: Tensor, stdTensor: Tensor

    /// Loads a `.pth` state dict (see `DeepLabV3.init(contentsOf:)`).
    public convenience init(contentsOf url: URL, resizeSize: Int? = 520, personClass: Int = vocPersonClass) throws {
        try self.init(model: DeepLabV3(contentsOf: url), resizeSize: resizeSize, personClass: personClass)
    }

    public init(model: DeepLabV3, resizeSize: Int? = 520, personClass: Int = vocPersonClass) throws {
        guard (0..<model.architecture.numClasses).contains(personClass) else {
            throw SegmentationError("person class \(personClass) is outside the model's \(model.architecture.numClasses) classes")
        }
        if let resizeSize, resizeSize < 1 { throw SegmentationError("the resize size must be positive, got \(resizeSize)") }
        self.model = model
        self.resizeSize = resizeSize
        self.personClass = personClass
        meanTensor = try Tensor(Self.mean, shape: [1, 3, 1, 1])
        stdTensor = try Tensor(Self.std, shape: [1, 3, 1, 1])
        model.eval()
    }

    /// The network's input size for a frame of `height` × `width` (torchvision's
    /// `_compute_resized_output_size` for a single size).
    public func inputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        guard let size = resizeSize else { return (height, width) }
        let (short, long) = (min(height, width), max(height, width))
        // Python's int(size * long / short): an exact integer product, one float division, truncation.
        let newLong = Int(Double(size * long) / Double(short))
        return width <= height ? (newLong, size) : (size, newLong)
    }

    /// The normalised network input `[B, 3, h, w]` float32 for `[3, H, W]` or `[B, 3, H, W]`, uint8 or float in [0, 1].
    public func preprocess(_ image: Tensor) throws -> Tensor {
        let x = try segmentationBatch(image)
        let (h, w) = inputSize(height: x.shape[2], width: x.shape[3])
        var pixels = try x.to(dtype: .float32)
        if (h, w) != (x.shape[2], x.shape[3]) {
            pixels = try F.interpolate(pixels, size: IntPair(h, w), mode: .bilinear, alignCorners: false)
            // torchvision resizes a uint8 tensor in float and rounds back to uint8 before scaling.
            if x.dtype == .uint8 { pixels = try pixels.round() }
        }
        if x.dtype == .uint8 { pixels = try pixels / 255 }
        return try (pixels - meanTensor) / stdTensor
    }

    /// The class logits at the network input size `[B, classes, h, w]` (and the aux head's when asked for).
    public func logits(_ image: Tensor, aux: Bool = false) throws -> (out: Tensor, aux: Tensor?) {
        let input = try preprocess(image)
        return try withInferenceMode { try model(input, aux: aux) }
    }

    /// P(person) at the network input size: `[1, h, w]` for `[3, H, W]`, `[B, 1, h, w]` for a batch.
    public func modelProbabilities(_ image: Tensor) throws -> Tensor {
        let logits = try logits(image).out
        let person = try withInferenceMode {
            try logits.softmax(dim: 1).narrow(dim: 1, start: personClass, length: 1)
        }
        return image.rank == 3 ? try person.squeeze(dim: 0) : person
    }

    /// P(person) resized bilinearly (align_corners false) to the frame: `[1, H, W]` (or `[B, 1, H, W]`).
    public func probabilities(_ image: Tensor) throws -> Tensor {
        let p = try modelProbabilities(image)
        let (height, width) = (image.shape[image.rank - 2], image.shape[image.rank - 1])
        guard p.shape.suffix(2) != [height, width] else { return p }
        let resized = try withInferenceMode {
            try F.interpolate(p.rank == 3 ? p.unsqueeze(0) : p, size: IntPair(height, width), mode: .bilinear,
                              alignCorners: false)
        }
        return p.rank == 3 ? try resized.squeeze(dim: 0) : resized
    }
}
