import ArgumentParser
import Evaluation
import Foundation
import Support

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
    @OptionGroup var device: DeviceOptions
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        if let viewsPerScene, viewsPerScene < 1 { throw ValidationError("--views-per-scene must be at least 1, not \(viewsPerScene)") }
        guard (1...1024).contains(batchSize) else { throw ValidationError("--batch-size must lie in 1…1024, not \(batchSize)") }
    }

    func run() throws {
        threads.apply()
        let folder = try PromptedImageFolder(folder: URL(fileURLWithPath: images), prompts: URL(fileURLWithPath: prompts),
                                             viewsPerScene: viewsPerScene)
        let scorer = try CLIPScorer(modelDirectory: URL(fileURLWithPath: model), device: try device.resolved(), batchSize: batchSize)
        let progress = ProgressReporter(title: "CLIP \(images)", total: folder.files.count)
        let result = try folder.score(with: scorer) { progress.update($0) }
        progress.finish()
        for (file, score) in zip(result.files, result.perImage) {
            print(String(format: "%8.4f  %@", score, file.lastPathComponent))
        }
        if let scenes = result.scenes {
            for (index, score) in scenes.means.enumerated() {
                print(String(format: "%8.4f  scene %d (%@ …)", score, index, result.files[index * scenes.viewsPerScene].lastPathComponent))
            }
            print(String(format: "CLIP score: %.4f  (%d scenes × %d views, views averaged then scenes, clamped at 0)",
                         result.mean, scenes.means.count, scenes.viewsPerScene))
        } else {
            print(String(format: "CLIP score: %.4f  (N = %d, mean clamped at 0)", result.mean, result.perImage.count))
        }
    }
}
