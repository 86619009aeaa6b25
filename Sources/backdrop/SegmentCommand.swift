import ArgumentParser
import Foundation
import Support
import Media
import Torch
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
            """
    )

    @Option(help: "An image (PNG/JPEG), a video (.y4m, anything ffmpeg reads) or a folder of frames.") var input: String
    @Option(help: "The mask PNG for an image; for a video, a folder receiving one mask PNG per frame.") var out: String
    @OptionGroup var segmentation: SegmentationOptions
    @Flag(help: "Write the raw probabilities, without post-processing.") var raw = false
    @Option(help: "Threads (default: the cores; see --segmenter-threads).") var threads: Int?

    func run() throws {
        segmentation.configureThreads(threads)
        let settings = try segmentation.postProcessing()
        let base = try segmentation.loadSegmenter()
        let segmenter = SegmentationCache(base, detector: FrameChangeDetector(threshold: segmentation.skipThreshold))
        let processor = MaskPostProcessor(settings)

        let inputURL = URL(fileURLWithPath: input), outURL = URL(fileURLWithPath: out)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isFolder) else {
            throw ValidationError("--input \(input) does not exist")
        }
        if !isFolder.boolValue, ImageFormat(pathExtension: inputURL.pathExtension) != nil {
            let image = try Image(contentsOf: inputURL).rgb8().tensor(.uint8)
            try mask(image, segmenter, processor).write(to: outURL, format: .png)
            return
        }

        let video = try openVideo(inputURL)
        try FileManager.default.createDirectory(at: outURL, withIntermediateDirectories: true)
        // Frames of a folder keep their names; frames of a video file are numbered.
        let names = (video as? ImageSequenceReader).map { reader in
            reader.files.map { $0.deletingPathExtension().lastPathComponent + ".png" }
        }
        let progress = ProgressReporter(title: "segment", total: names?.count)
        var index = 0
        while let frame = try video.nextFrame() {
            let name = names.map { $0[index] } ?? String(format: "frame_%06d.png", index)
            try mask(frame, segmenter, processor).write(to: outURL.appendingPathComponent(name), format: .png)
            index += 1
            progress.update(index, status: "\(segmenter.skippedFrames) skipped")
        }
        progress.finish()
        print("\(index) frames → \(outURL.path): \(segmenter.modelRuns) model runs, \(segmenter.skippedFrames) skipped as unchanged (--skip-threshold \(segmentation.skipThreshold))")
    }

    /// The 8-bit mask image of one frame.
    private func mask(_ frame: Tensor, _ segmenter: SegmentationCache, _ processor: MaskPostProcessor) throws -> Image {
        let mask: Tensor
        if raw {
            mask = try segmenter.probabilities(frame)
        } else {
            mask = try processor.process(segmenter.modelProbabilities(frame), height: frame.shape[1], width: frame.shape[2])
        }
        return try Image(tensor: mask, range: .unit)
    }
}
