import ArgumentParser
import Evaluation
import Foundation
import Support
import Media
import Torch

struct CLIPScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clip-score",
        abstract: "CLIP score of images against their prompts (torchmetrics' CLIPScore).",
        discussion: """
            --model is a Hugging Face CLIPModel folder (config.json, model.safetensors, vocab.json, \
            merges.txt, preprocessor_config.json), e.g. openai/clip-vit-large-patch14, the paper's \
            model. Images are the PNG/JPEG files of --images sorted by name; line i of --prompts is \
            the prompt of image i. Prints 100·cos(image, prompt) per image and the mean clamped at 0. \
            With --views-per-scene N, consecutive groups of N images are the views of one panorama \
            (MVDiffusion's protocol): scores are averaged over each scene's views, then over scenes.
            """
    )

    @Option(help: "CLIPModel folder.") var model: String
    @Option(help: "Folder of PNG/JPEG images.") var images: String
    @Option(help: "Text file with one prompt per line, in the order of the sorted image names.") var prompts: String
    @Option(help: "Group consecutive images into scenes of this many views.") var viewsPerScene: Int?
    @Option(help: "Images per forward pass.") var batchSize: Int = 16
    @Option(help: "cpu, cuda, cuda:N or best.") var device: String = "best"
    @Option(help: "Intra-op threads (default: LibTorch's choice).") var threads: Int?

    func run() throws {
        if let threads { Runtime.threads = threads }
        let files = try InceptionFeatureExtractor.imageFiles(in: URL(fileURLWithPath: images))
        let lines = try readPrompts(count: files.count)
        if let viewsPerScene, viewsPerScene <= 0 || files.count % viewsPerScene != 0 {
            throw ValidationError("--views-per-scene \(viewsPerScene) does not divide the \(files.count) images into whole scenes")
        }
        let scorer = try CLIPScorer(modelDirectory: URL(fileURLWithPath: model), device: Device(parsing: device),
                                    batchSize: batchSize)
        let tensors = try files.map { try Image(contentsOf: $0).rgb8().tensor(.uint8) }
        let progress = ProgressReporter(title: "CLIP \(images)", total: files.count)
        let (perPair, mean) = try scorer.score(images: tensors, prompts: lines) { progress.update($0) }
        progress.finish()
        for (file, score) in zip(files, perPair) {
            print(String(format: "%8.4f  %@", score, file.lastPathComponent))
        }
        if let viewsPerScene {
            let scenes = CLIPScorer.sceneMeans(perPair, viewCounts: Array(repeating: viewsPerScene, count: files.count / viewsPerScene))
            for (index, score) in scenes.enumerated() {
                print(String(format: "%8.4f  scene %d (%@ …)", score, index, files[index * viewsPerScene].lastPathComponent))
            }
            print(String(format: "CLIP score: %.4f  (%d scenes × %d views, views averaged then scenes, clamped at 0)",
                         CLIPScorer.clampedMean(scenes), scenes.count, viewsPerScene))
        } else {
            print(String(format: "CLIP score: %.4f  (N = %d, mean clamped at 0)", mean, perPair.count))
        }
    }

    /// One prompt per line; a final newline does not add an empty prompt.
    func readPrompts(count: Int) throws -> [String] {
        let text: String
        do { text = try String(contentsOfFile: prompts, encoding: .utf8) } catch {
            throw ValidationError("cannot read --prompts \(prompts): \(error.localizedDescription)")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.hasSuffix("\r") ? String($0.dropLast()) : String($0)
        }
        if lines.last == "" { lines.removeLast() }
        guard lines.count == count else {
            throw ValidationError("\(prompts) has \(lines.count) prompt lines but \(images) has \(count) images (one prompt per image, in sorted name order)")
        }
        return lines
    }
}
