import ArgumentParser
import Foundation
import Torch
import VirtualBackground

extension SegmenterKind: ExpressibleByArgument {}

/// `--threshold`: a person probability in [0, 1], or `none` for soft masks.
struct MaskThreshold: ExpressibleByArgument, CustomStringConvertible {
    /// nil: no threshold.
    let value: Float?

    init(_ value: Float?) { self.value = value }

    init?(argument: String) {
        if argument == "none" { value = nil } else if let number = Float(argument) { value = number } else { return nil }
    }

    var description: String { value.map { "\($0)" } ?? "none" }
    var defaultValueDescription: String { description }

    func validate() throws {
        if let value, !(0...1).contains(value) {
            throw ValidationError("--threshold must be a number in [0, 1] or 'none', not \(value)")
        }
    }
}

/// The segmentation model and mask post-processing options that `segment` and `call` share (same
/// flags, same defaults, same validation).
struct SegmentationOptions: ParsableArguments {
    @Option(help: "The person segmentation model.") var segmenter: SegmenterKind = .selfie
    @Option(help: "A .tflite file (selfie/landscape) instead of the fetched model; a .pth state dict (deeplab, required).")
    var model: String?
    @Option(help: "deeplab: the shorter side the frame is resized to.") var deeplabSize: Int = 520
    @OptionGroup var segmenterThreads: SegmenterThreadOptions
    @Option(help: "Person probability threshold in [0, 1]; 'none' keeps soft masks.") var threshold = MaskThreshold(0.5)
    @Option(help: "Weight of the new frame in the temporal moving average (1 = none).") var smoothing: Float = 0.85
    @Option(help: "Drop person blobs smaller than this fraction of the frame, 0…1 (0 = keep all).") var minBlob: Float = 0.05
    @Option(help: "Feather radius in pixels (0 = hard edge).") var feather: Int = 0
    @Option(help: "Reuse the last model output while frames differ by less than this many gray levels (0 = never).")
    var skipThreshold: Double = FrameChangeDetector.defaultThreshold

    func validate() throws {
        if segmenter == .deeplab, model == nil {
            throw ValidationError("--segmenter deeplab needs --model PATH.pth: a torchvision DeepLabV3 state dict (deeplabv3_resnet50, " +
                                  "deeplabv3_resnet101 or deeplabv3_mobilenet_v3_large, saved with torch.save(model.state_dict())); " +
                                  "DeepLabV3 weights come in no package")
        }
        try threshold.validate()
        // The new frame's weight: at 0 the average would never leave its empty start.
        guard smoothing > 0, smoothing <= 1 else {
            throw ValidationError("--smoothing is the new frame's weight and must lie in (0, 1] (1 = no smoothing), not \(smoothing)")
        }
        guard (0...1).contains(minBlob) else { throw ValidationError("--min-blob must lie in [0, 1], not \(minBlob)") }
        // Bounded so that a typo cannot ask for a blur kernel larger than any frame.
        guard (0...Self.maxFeather).contains(feather) else {
            throw ValidationError("--feather must lie in 0…\(Self.maxFeather) pixels, not \(feather)")
        }
        guard skipThreshold.isFinite, (0...255).contains(skipThreshold) else {
            throw ValidationError("--skip-threshold must lie in [0, 255] gray levels, not \(skipThreshold)")
        }
        guard (16...Self.maxDeeplabSize).contains(deeplabSize) else {
            throw ValidationError("--deeplab-size must lie in 16…\(Self.maxDeeplabSize), not \(deeplabSize)")
        }
    }

    static let maxFeather = 256
    static let maxDeeplabSize = 4096

    /// The chosen model, without the unchanged-frame cache.
    func loadSegmenter() throws -> any PersonSegmenter {
        try segmenter.load(model: model.map { URL(fileURLWithPath: $0) }, deeplabResizeSize: deeplabSize)
    }

    /// `threads` for LibTorch and the Swift stages, then `--segmenter-threads` for a MediaPipe model
    /// (DeepLab's large convolutions keep `--threads`).
    func applyThreads(_ threads: ThreadOptions) {
        segmenterThreads.apply(after: threads, mediaPipe: segmenter != .deeplab)
    }

    var postProcessing: MaskPostProcessing {
        MaskPostProcessing(threshold: threshold.value, temporalSmoothing: smoothing, minBlobFraction: minBlob, featherRadius: feather)
    }
}

/// `--segmenter-threads`: LibTorch's threads while a MediaPipe selfie model segments the frames of
/// `segment`, `track`, `call` and `demo-call`, whose own stages run on `--threads`.
///
/// The model's ops are too short to gain from a second thread (4.7 ms at 256² on one thread and on
/// two, 2 cores), while a second thread's wake-ups and barriers cost the other stages a core and
/// stall every op when the host is busy (segmentation inside the call: 13–15 ms on one thread,
/// 44–48 ms on two, same busy host). So the default is 1, MediaPipe's desktop default.
struct SegmenterThreadOptions: ParsableArguments {
    @Option(help: "selfie/landscape: LibTorch's threads (MediaPipe's desktop default, 1; 0 = --threads).")
    var segmenterThreads: Int = 1

    func validate() throws {
        guard (0...1024).contains(segmenterThreads) else {
            throw ValidationError("--segmenter-threads must lie in 0…1024, not \(segmenterThreads)")
        }
    }

    /// `threads.apply()` (LibTorch and Backdrop's loops), then, when a MediaPipe model runs,
    /// LibTorch alone drops to `--segmenter-threads` (0 keeps it at `--threads`).
    func apply(after threads: ThreadOptions, mediaPipe: Bool = true) {
        threads.apply()
        if mediaPipe, segmenterThreads > 0 { Runtime.threads = segmenterThreads }
    }
}
