import Foundation
import Media
import Torch

/// A folder of images with a prompt each, as `backdrop clip-score` reads it: the PNG/JPEG files
/// sorted by name, and a text file whose line i is the prompt of image i. With `viewsPerScene` N,
/// consecutive groups of N images are the views of one panorama (MVDiffusion's protocol).
///
/// Everything is read and checked on `init`, before any model is loaded.
public struct PromptedImageFolder {
    public let folder: URL
    /// The images, sorted by name.
    public let files: [URL]
    /// `prompts[i]` is the prompt of `files[i]`.
    public let prompts: [String]
    public let viewsPerScene: Int?

    public init(folder: URL, prompts promptFile: URL, viewsPerScene: Int? = nil) throws {
        let files = try InceptionFeatureExtractor.imageFiles(in: folder)
        let prompts = try Self.readPrompts(promptFile)
        guard prompts.count == files.count else {
            throw TorchError("\(promptFile.path) has \(prompts.count) prompt lines but \(folder.path) has \(files.count) " +
                             "images (one prompt per image, in sorted name order)")
        }
        if let viewsPerScene, viewsPerScene <= 0 || files.count % viewsPerScene != 0 {
            throw TorchError("\(viewsPerScene) views per scene do not divide the \(files.count) images of \(folder.path) " +
                             "into whole scenes")
        }
        (self.folder, self.files, self.prompts, self.viewsPerScene) = (folder, files, prompts, viewsPerScene)
    }

    /// One prompt per line (CRLF or LF); a final newline does not add an empty prompt, an empty
    /// line elsewhere is an empty prompt.
    public static func readPrompts(_ url: URL) throws -> [String] {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw TorchError("cannot read the prompts \(url.path): \(failureReason(error))")
        }
        // "\r\n" is one Character in Swift: turn it into "\n" before splitting.
        var lines = text.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false)
            .map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    /// The CLIP score of every image against its prompt and their mean (with scenes: the mean of
    /// each scene's views, then of the scenes); `progress` gets the images embedded so far.
    public func score(with scorer: CLIPScorer, progress: ((Int) -> Void)? = nil) throws -> CLIPFolderScore {
        let images = try files.map { try Image(contentsOf: $0).rgb8().tensor(.uint8) }
        let (perImage, mean) = try scorer.score(images: images, prompts: prompts, progress: progress)
        guard let viewsPerScene else { return CLIPFolderScore(files: files, perImage: perImage, mean: mean, scenes: nil) }
        let scenes = CLIPScorer.sceneMeans(perImage, viewCounts: Array(repeating: viewsPerScene, count: files.count / viewsPerScene))
        return CLIPFolderScore(files: files, perImage: perImage, mean: CLIPScorer.clampedMean(scenes),
                               scenes: .init(viewsPerScene: viewsPerScene, means: scenes))
    }
}

/// The CLIP scores of a `PromptedImageFolder`.
public struct CLIPFolderScore {
    public struct Scenes {
        public let viewsPerScene: Int
        /// Each scene's mean over its views (unclamped).
        public let means: [Double]
    }

    public let files: [URL]
    /// 100·cos(image, prompt) per image, unclamped.
    public let perImage: [Double]
    /// torchmetrics' mean clamped at 0: over the images, or with scenes over the scene means.
    public let mean: Double
    public let scenes: Scenes?
}
