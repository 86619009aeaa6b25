import ArgumentParser
import Foundation
import Torch
import VirtualBackground

/// The segmentation model and mask post-processing options that `segment`, `track`, `call` and
/// `demo-call` share (same flags, same defaults, same validation).
struct SegmentationOptions: ParsableArguments {
    @Option(help: "selfie (MediaPipe general, 256×256), landscape (144×256) or deeplab.") var segmenter: String = "selfie"
    @Option(help: "A .tflite file (selfie/landscape) instead of the fetched model; a .pth state dict (deeplab, required).")
    var model: String?
    @Option(help: "deeplab: the shorter side the frame is resized to.") var deeplabSize: Int = 520
    @Option(help: "selfie/landscape: LibTorch's intra-op threads (MediaPipe's desktop default, 1; 0 = --threads).")
    var segmenterThreads: Int = 1
    @Option(help: "Person probability threshold; 'none' keeps soft masks.") var threshold: String = "0.5"
    @Option(help: "Weight of the new frame in the temporal moving average (1 = none).") var smoothing: Float = 0.85
    @Option(help: "Drop person blobs smaller than this fraction of the frame (0 = keep all).") var minBlob: Float = 0.05
    @Option(help: "Feather radius in pixels (0 = hard edge).") var feather: Int = 0
    @Option(help: "Reuse the last model output while frames differ by less than this many gray levels (0 = never).")
    var skipThreshold: Double = FrameChangeDetector.defaultThreshold

    var kind: SegmenterKind { SegmenterKind(rawValue: segmenter) ?? .selfie }

    func validate() throws {
        guard SegmenterKind(rawValue: segmenter) != nil else {
            throw ValidationError("--segmenter must be one of \(SegmenterKind.allCases.map(\.rawValue).joined(separator: ", ")), not '\(segmenter)'")
        }
        if kind == .deeplab, model == nil {
            throw ValidationError("--segmenter deeplab needs --model PATH.pth: a torchvision DeepLabV3 state dict (deeplabv3_resnet50, deeplabv3_resnet101 or deeplabv3_mobilenet_v3_large, saved with torch.save(model.state_dict())); DeepLabV3 weights come in no package")
        }
        guard skipThreshold >= 0 else { throw ValidationError("--skip-threshold must be ≥ 0, not \(skipThreshold)") }
        guard segmenterThreads >= 0 else { throw ValidationError("--segmenter-threads must be ≥ 0, not \(segmenterThreads)") }
        guard deeplabSize > 0 else { throw ValidationError("--deeplab-size must be positive, not \(deeplabSize)") }
        guard feather >= 0 else { throw ValidationError("--feather must be ≥ 0, not \(feather)") }
        _ = try postProcessing()
    }

    /// The chosen model, without the unchanged-frame cache.
    func loadSegmenter() throws -> any PersonSegmenter {
        try kind.load(model: model.map { URL(fileURLWithPath: $0) }, deeplabResizeSize: deeplabSize)
    }

    /// `threads` (nil: LibTorch's default, the cores) for the Swift stages and LibTorch; then, with a
    /// MediaPipe model, LibTorch drops to `--segmenter-threads`. Its ops are too short to gain from a
    /// second thread (4.7 ms at 256² on one thread and on two, 2 cores), while a second thread's
    /// wake-ups and barriers cost the other stages a core and stall every op when the host is busy
    /// (segmentation inside the call: 13–15 ms on one thread, 44–48 ms on two, same busy host).
    func configureThreads(_ threads: Int?) {
        configureCallThreads(threads, segmenterThreads: kind == .deeplab ? 0 : segmenterThreads)
    }

    func postProcessing() throws -> MaskPostProcessing {
        var settings = MaskPostProcessing(temporalSmoothing: smoothing, minBlobFraction: minBlob, featherRadius: feather)
        if threshold == "none" {
            settings.threshold = nil
        } else {
            guard let value = Float(threshold), (0...1).contains(value) else {
                throw ValidationError("--threshold must be a number in [0, 1] or 'none', not '\(threshold)'")
            }
            settings.threshold = value
        }
        return settings
    }
}

/// See `SegmentationOptions.configureThreads`; `segmenterThreads` 0 keeps LibTorch at `threads`.
func configureCallThreads(_ threads: Int?, segmenterThreads: Int) {
    if let threads { Runtime.threads = threads }
    Parallel.threads = Runtime.threads
    if segmenterThreads > 0 { Runtime.threads = segmenterThreads }
}
