import Foundation
import Support
import Torch

/// A segmentation input or setting that cannot be used; the message says which and why.
public struct SegmentationError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Person segmentation with MediaPipe's selfie segmentation models, run natively on LibTorch from
/// the `.tflite` files (`make setup` extracts them from the mediapipe 0.10.14 wheel).
///
/// The pipeline reproduces MediaPipe's `SelfieSegmentationCpu` graph: the frame is stretched to the
/// model size (no aspect preservation) with OpenCV-style bilinear sampling, fed as RGB in [0, 1],
/// and the model's sigmoid output is resized back to the frame with half-pixel bilinear interpolation.
/// Post-processing (threshold, temporal smoothing, blob removal, feathering) is `MaskPostProcessor`'s.
/// One instance per thread: it caches per-frame-size resampling tables.
public final class Segmenter {
    /// The two MediaPipe selfie segmentation models.
    public enum Model: String, CaseIterable, Sendable, CustomStringConvertible {
        /// General model: 256×256 input, for any aspect.
        case selfie
        /// Landscape model: 144×256 input, lighter, for 16:9 video calls.
        case landscape

        public var fileName: String {
            switch self {
            case .selfie: "selfie_segmentation.tflite"
            case .landscape: "selfie_segmentation_landscape.tflite"
            }
        }

        public var description: String { rawValue }

        /// The model in `directory` (default `Segmenter.defaultModelsDirectory`).
        public func url(in directory: URL? = nil) -> URL {
            (directory ?? Segmenter.defaultModelsDirectory).appendingPathComponent(fileName)
        }
    }

    /// `$BACKDROP_ASSETS/models`, or `~/.cache/backdrop/assets/models` (where `make setup` puts them).
    public static var defaultModelsDirectory: URL { Assets.root.appendingPathComponent("models") }

    public let graph: TFLiteGraph
    /// The model's input size.
    public let inputHeight: Int
    public let inputWidth: Int

    /// The resizers to the model (MediaPipe's warp) and back (its mask resize) for the last frame size;
    /// a call sees the same size every frame.
    private var toModel: ModelInputSampler?
    private var toFrame: PlaneResampler?

    /// Loads one of the MediaPipe models from `directory` (default: `defaultModelsDirectory`).
    public convenience init(_ model: Model, modelsDirectory: URL? = nil) throws {
        let url = model.url(in: modelsDirectory)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw SegmentationError("\(url.path) is missing: run `make setup` (it extracts the \(model) model from the mediapipe 0.10.14 wheel)")
        }
        try self.init(contentsOf: url)
    }

    /// Loads a selfie-segmentation-like `.tflite`: one input [1, H, W, 3], one output [1, H, W, 1].
    public init(contentsOf url: URL) throws {
        graph = try TFLiteGraph(model: try TFLiteModel(contentsOf: url))
        guard graph.inputShapes.count == 1, graph.outputShapes.count == 1,
              let input = graph.inputShapes.first, input.count == 4, input[0] == 1, input[3] == 3,
              let output = graph.outputShapes.first, output == [1, input[1], input[2], 1] else {
            throw TFLiteError("\(url.lastPathComponent): not a segmentation model with one [1, H, W, 3] input and one [1, H, W, 1] output (inputs \(graph.inputShapes), outputs \(graph.outputShapes))")
        }
        inputHeight = input[1]
        inputWidth = input[2]
    }

    /// The model's sigmoid output at its own resolution.
    /// - Parameter image: RGB `[3, H, W]` or `[B, 3, H, W]`, uint8 (0…255) or float (0…1), any size.
    /// - Returns: probabilities `[1, h, w]` (or `[B, 1, h, w]`) for the model size h × w.
    public func modelProbabilities(_ image: Tensor) throws -> Tensor {
        let batched = try segmentationBatch(image)
        let output = try graph([try modelInput(batched)])[0]
        return image.rank == 3 ? try output.squeeze(dim: 0) : output
    }

    /// Probabilities at the frame's own size: the model output resized with half-pixel bilinear
    /// interpolation (MediaPipe's `TensorsToSegmentationCalculator`, cv::resize INTER_LINEAR).
    /// - Returns: `[1, H, W]` (or `[B, 1, H, W]`) in [0, 1].
    public func probabilities(_ image: Tensor) throws -> Tensor {
        let batched = try segmentationBatch(image)
        let (h, w) = (batched.shape[2], batched.shape[3])
        var mask = try graph([try modelInput(batched)])[0]
        if h != inputHeight || w != inputWidth {
            if toFrame?.resizes(from: (inputHeight, inputWidth), to: (h, w)) != true {
                toFrame = try PlaneResampler(from: (inputHeight, inputWidth), to: (h, w))
            }
            mask = try toFrame.map { try $0(mask) } ?? mask
        }
        return image.rank == 3 ? try mask.squeeze(dim: 0) : mask
    }

    /// `[B, 3, h, w]` float in [0, 1] at the model size, as MediaPipe's `ImageToTensorCalculator`
    /// makes it on the CPU (`ModelInputSampler`). A frame of the model size passes unchanged.
    public func modelInput(_ image: Tensor) throws -> Tensor {
        let x = try segmentationBatch(image)
        let (h, w) = (x.shape[2], x.shape[3])
        guard h != inputHeight || w != inputWidth else {
            let pixels = try x.to(dtype: .float32)
            return x.dtype == .uint8 ? try pixels / 255 : pixels
        }
        if toModel?.sourceHeight != h || toModel?.sourceWidth != w {
            toModel = try ModelInputSampler(from: (h, w), to: (inputHeight, inputWidth))
        }
        return try toModel.map { try $0(x) } ?? x
    }
}
