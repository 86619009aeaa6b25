import ArgumentParser
import Foundation
import Media
import Torch
import VirtualBackground

struct SegmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment",
        abstract: "Person masks of images with MediaPipe's selfie segmentation, run on LibTorch.",
        discussion: """
            Writes 8-bit grayscale PNG masks at the input's size (255 = person). The model output is \
            post-processed as the OBS background-removal plugin does: temporal smoothing, threshold, \
            small-blob removal, optional feathering. With a folder, its images (sorted by name) are \
            treated as consecutive video frames, so the smoothing carries over from frame to frame. \
            --raw writes the model's probabilities before any post-processing, scaled to 0–255. The \
            models come from `make setup` (the mediapipe 0.10.14 wheel) or --model.
            """
    )

    @Option(help: "An image (PNG/JPEG) or a folder of them.") var input: String
    @Option(help: "The mask PNG, or a folder (for a folder input) that receives <name>.png per image.") var out: String
    @Option(help: "selfie (general, 256×256) or landscape (144×256).") var segmenter: String = "selfie"
    @Option(help: "A .tflite file instead of the fetched model.") var model: String?
    @Flag(help: "Write the raw probabilities, without post-processing.") var raw = false
    @Option(help: "Person probability threshold; 'none' keeps soft masks.") var threshold: String = "0.5"
    @Option(help: "Weight of the new frame in the temporal moving average (1 = none).") var smoothing: Float = 0.85
    @Option(help: "Drop person blobs smaller than this fraction of the frame (0 = keep all).") var minBlob: Float = 0.05
    @Option(help: "Feather radius in pixels (0 = hard edge).") var feather: Int = 0
    @Option(help: "Intra-op threads (default: LibTorch's choice).") var threads: Int?

    func run() throws {
        if let threads { Runtime.threads = threads }
        guard let kind = Segmenter.Model(rawValue: segmenter) else {
            throw ValidationError("--segmenter must be selfie or landscape, not '\(segmenter)' (deeplab is not available yet)")
        }
        var settings = MaskPostProcessing(temporalSmoothing: smoothing, minBlobFraction: minBlob, featherRadius: feather)
        if threshold != "none" {
            guard let value = Float(threshold), (0...1).contains(value) else {
                throw ValidationError("--threshold must be a number in [0, 1] or 'none', not '\(threshold)'")
            }
            settings.threshold = value
        } else {
            settings.threshold = nil
        }
        let segmenter = try model.map { try Segmenter(contentsOf: URL(fileURLWithPath: $0)) } ?? Segmenter(kind)
        let processor = MaskPostProcessor(settings)

        let (sources, destinations) = try plan()
        for (source, destination) in zip(sources, destinations) {
            let image = try Image(contentsOf: source).rgb8().tensor(.uint8)
            let mask: Tensor
            if raw {
                mask = try segmenter.probabilities(image)
            } else {
                let (h, w) = (image.shape[1], image.shape[2])
                mask = try processor.process(segmenter.modelProbabilities(image), height: h, width: w)
            }
            try Image(tensor: mask, range: .unit).write(to: destination, format: .png)
            if sources.count > 1 { print(destination.path) }
        }
    }

    /// The input images and where each mask goes.
    private func plan() throws -> ([URL], [URL]) {
        let inputURL = URL(fileURLWithPath: input), outURL = URL(fileURLWithPath: out)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isFolder) else {
            throw ValidationError("--input \(input) does not exist")
        }
        guard isFolder.boolValue else {
            guard ImageFormat(pathExtension: inputURL.pathExtension) != nil else {
                throw ValidationError("--input \(input) is not a PNG or JPEG image (video input is not supported yet)")
            }
            return ([inputURL], [outURL])
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: input).sorted()
            .filter { ImageFormat(pathExtension: URL(fileURLWithPath: $0).pathExtension) != nil }
        guard !names.isEmpty else { throw ValidationError("--input \(input) holds no PNG or JPEG images") }
        try FileManager.default.createDirectory(at: outURL, withIntermediateDirectories: true)
        return (names.map { inputURL.appendingPathComponent($0) },
                names.map { outURL.appendingPathComponent(URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent + ".png") })
    }
}
