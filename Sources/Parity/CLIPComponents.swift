import Evaluation
import Foundation
import Torch

/// `clip` (transformers' CLIPModel folder with its tokenizer, scored as torchmetrics' CLIPScore).
enum CLIPComponents {
    static let runners: [String: ParityRunner] = [
        "clip": clip,
    ]

    /// `images` uint8 [N, 3, H, W] and args `prompts` (N strings) → `image_embeds`, `text_embeds`
    /// [N, E] (projected, not normalised), `score` [N] (100·cos) and `mean` [] (clamped at 0).
    static func clip(_ c: ParityCase) throws -> [String: Tensor] {
        let scorer = try CLIPScorer(modelDirectory: c.model)
        let images = try c.input("images")
        guard images.dtype == .uint8, images.rank == 4 else {
            throw ParityError("\(c.directory.appendingPathComponent("inputs.safetensors").path): 'images' must be uint8 [N, 3, H, W], found \(images.dtype) \(images.shape)")
        }
        let imageEmbeds = try scorer.imageEmbeddings((0..<images.shape[0]).map { try images.select(dim: 0, index: $0) })
        let textEmbeds = try scorer.textEmbeddings(c.args.strings("prompts"))
        let scores = try CLIPScorer.pairScores(imageEmbeddings: imageEmbeds, textEmbeddings: textEmbeds)
        return ["image_embeds": imageEmbeds, "text_embeds": textEmbeds, "score": try Tensor(scores),
                "mean": try Tensor(scalar: CLIPScorer.clampedMean(scores))]
    }
}
