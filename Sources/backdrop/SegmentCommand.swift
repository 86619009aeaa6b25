import ArgumentParser
import Foundation
import VirtualBackground

struct SegmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment",
        abstract: "Person masks of an image or a video with MediaPipe's selfie segmentation or DeepLabV3, run on LibTorch.",
        discussion: """
            Writes 8-bit grayscale PNG masks at the input's size (255 = person). For an image, --out is \
            the mask file. For a video (.y4m, a folder of PNG/JPEG frames sorted by name, or anything \
            ffmpeg decodes), --out is a folder receiving one mask per frame: frame_000000.png, … \
            (for a folder of frames, <name>.png after each frame's file).

            The model output is post-processed as the OBS background-removal plugin does: temporal \
            smoothing, threshold, small-blob removal, optional feathering; the smoothing carries over \
            from frame to frame. --raw writes the model's probabilities before any post-processing, \
            scaled to 0–255.

            Frames that barely differ from the last frame the model ran on reuse its output \
            (--skip-threshold: the mean absolute difference, in 8-bit gray levels, between 64-pixel \
            grayscale thumbnails; default 1; 0 runs the model on every frame). The counts of model \
            runs and skipped frames are printed at the end.

            Segmenters: selfie (MediaPipe general, 256×256) and landscape (144×256) come from \
            `make setup` (the mediapipe 0.10.14 wheel), or --model FILE.tflite. deeplab is \
            torchvision's DeepLabV3 (ResNet-50, ResNet-101 or MobileNetV3-Large, told apart by the \
            file's keys; person = VOC class 15) and needs --model FILE.pth, a \
            torch.save(model.state_dict()) file; its input is resized to a shorter side of \
            --deeplab-size (torchvision's 520).

            Threads: resampling and post-processing run on --threads; a selfie/landscape model runs \
            LibTorch on --segmenter-threads (default 1, MediaPipe's desktop setting), deeplab on --threads.
            """
    )

    @Option(help: "An image (PNG/JPEG), a video (.y4m, anything ffmpeg reads) or a folder of frames.") var input: String
    @Option(name: [.customLong("out"), .customLong("output")],
            help: "The mask PNG for an image; for a video, a folder receiving one mask PNG per frame.")
    var out: String
    @OptionGroup var segmentation: SegmentationOptions
    @Flag(help: "Write the raw probabilities, without post-processing.") var raw = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        try refuseOverwriting([("--input", input), ("--model", segmentation.model)], with: out)
    }

    func run() throws {
        segmentation.applyThreads(threads)
        let export = MaskExport(input: URL(fileURLWithPath: input), output: URL(fileURLWithPath: out),
                                postProcessing: raw ? nil : segmentation.postProcessing,
                                skipThreshold: segmentation.skipThreshold)
        let progress = LazyProgress("segment")
        let report = try export.run(segmenter: segmentation.loadSegmenter()) { done, total, skipped in
            progress.update(done, of: total, status: "\(skipped) skipped")
        }
        progress.finish()
        guard !report.isImage else { return }
        print("\(report.frames) frames → \(export.output.path): \(report.modelRuns) model runs, \(report.skippedFrames) skipped " +
              "as unchanged (--skip-threshold \(segmentation.skipThreshold))")
    }
}
