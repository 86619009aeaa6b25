import Foundation
import StableDiffusion
import Torch

/// CLIP score as torchmetrics defines it (`torchmetrics.multimodal.CLIPScore`, docs/metrics.md#clip-score):
/// per image–prompt pair 100·cos(image embedding, text embedding), averaged, and the average
/// clamped at 0. Default model: openai/clip-vit-large-patch14 (a transformers `CLIPModel` folder
/// with its tokenizer and `preprocessor_config.json`).
///
/// The protocol, step by step as torchmetrics runs it:
/// - images: `CLIPImageProcessor` (Pillow bicubic resize of the shortest side, centre crop, CLIP
///   mean/std), then `get_image_features`;
/// - prompts: the tokenizer with padding to the longest prompt and no truncation, then the ids cut
///   at `max_position_embeddings` (77) — a longer prompt keeps its first 77 ids and loses its end
///   token — then `get_text_features` (pooling as `CLIPModel.textPoolingPositions`);
/// - the cosine of the two unnormalised projections (computed here in float64; torchmetrics in
///   float32, a difference far below 1e-4 of a score point).
///
/// Tokenisation uses Stable Diffusion's `CLIPTokenizer` (transformers' slow tokenizer without
/// ftfy); torchmetrics' `CLIPProcessor` loads the fast one, which gives the same ids for ordinary
/// prompts.
public final class CLIPScorer {
    public let model: CLIPModel
    public let tokenizer: CLIPTokenizer
    public let processor: CLIPImageProcessor
    public let device: Device
    /// Images or prompts per forward pass.
    public let batchSize: Int

    public init(model: CLIPModel, tokenizer: CLIPTokenizer, processor: CLIPImageProcessor = CLIPImageProcessor(),
                device: Device = .cpu, batchSize: Int = 32) {
        (self.model, self.tokenizer, self.processor, self.device) = (model, tokenizer, processor, device)
        self.batchSize = max(1, batchSize)
    }

    /// A transformers `CLIPModel` folder: `config.json`, `model.safetensors` (or another weights
    /// file), `vocab.json` + `merges.txt` (or a `tokenizer/` subfolder with them) and, optionally,
    /// `preprocessor_config.json`.
    public convenience init(modelDirectory: URL, device: Device = .cpu, batchSize: Int = 32) throws {
        let model = try CLIPModel.load(from: modelDirectory, device: device)
        let nested = modelDirectory.appendingPathComponent("tokenizer")
        let hasTopLevelVocabulary = FileManager.default.fileExists(atPath: modelDirectory.appendingPathComponent("vocab.json").path)
        let tokenizerFolder = !hasTopLevelVocabulary && FileManager.default.fileExists(atPath: nested.appendingPathComponent("vocab.json").path)
            ? nested : modelDirectory
        try self.init(model: model, tokenizer: CLIPTokenizer(directory: tokenizerFolder),
                      processor: CLIPImageProcessor.load(from: modelDirectory), device: device, batchSize: batchSize)
    }

    // MARK: Embeddings

    /// torchmetrics' text input for `prompts`: `[bos] + tokens + [eos]` per prompt, cut at the
    /// model's position count, padded with the pad token to the longest row — int64 `[N, L]`.
    public func inputIds(_ prompts: [String]) throws -> Tensor {
        guard !prompts.isEmpty else { throw TorchError("CLIP score: no prompts") }
        let limit = model.config.text_config.max_position_embeddings
        let rows = prompts.map { Array(([tokenizer.bosTokenId] + tokenizer.tokenIds($0) + [tokenizer.eosTokenId]).prefix(limit)) }
        let length = rows.map(\.count).max() ?? 0
        let padded = rows.flatMap { $0.map(Int64.init) + Array(repeating: Int64(tokenizer.padTokenId), count: length - $0.count) }
        return try Tensor(padded, shape: [prompts.count, length])
    }

    /// Projected, unnormalised text embeddings `[N, E]` (float32, on the CPU).
    public func textEmbeddings(_ prompts: [String]) throws -> Tensor {
        var parts: [Tensor] = []
        for start in stride(from: 0, to: prompts.count, by: batchSize) {
            let ids = try inputIds(Array(prompts[start..<min(start + batchSize, prompts.count)]))
            parts.append(try withInferenceMode { try model.textEmbeddings(ids.to(device: device)).to(dtype: .float32, device: .cpu) })
        }
        guard !parts.isEmpty else { throw TorchError("CLIP score: no prompts") }
        return try Tensor.cat(parts, dim: 0)
    }

    /// Projected, unnormalised image embeddings `[N, E]` (float32, on the CPU) of uint8 RGB images
    /// `[3, H, W]` of any sizes. `progress` is told the count done after every batch.
    public func imageEmbeddings(_ images: [Tensor], progress: ((Int) -> Void)? = nil) throws -> Tensor {
        var parts: [Tensor] = []
        for start in stride(from: 0, to: images.count, by: batchSize) {
            let batch = Array(images[start..<min(start + batchSize, images.count)])
            let pixels = try processor(batch).to(dtype: model.visual_projection.weight.dtype, device: device)
            parts.append(try withInferenceMode { try model.imageEmbeddings(pixels).to(dtype: .float32, device: .cpu) })
            progress?(start + batch.count)
        }
        guard !parts.isEmpty else { throw TorchError("CLIP score: no images") }
        return try Tensor.cat(parts, dim: 0)
    }

    // MARK: Scores

    /// 100·cos per row of two `[N, E]` embedding tensors, in float64.
    public static func pairScores(imageEmbeddings: Tensor, textEmbeddings: Tensor) throws -> [Double] {
        guard imageEmbeddings.rank == 2, imageEmbeddings.shape == textEmbeddings.shape else {
            throw TorchError("CLIP score: image embeddings \(imageEmbeddings.shape) and text embeddings \(textEmbeddings.shape) must both be [N, E]")
        }
        let a = try imageEmbeddings.to(dtype: .float64, device: .cpu), b = try textEmbeddings.to(dtype: .float64, device: .cpu)
        func unit(_ x: Tensor) throws -> Tensor { try x / (x * x).sum(dim: -1, keepDim: true).sqrt() }
        return try ((unit(a) * unit(b)).sum(dim: -1) * 100).toArray(Double.self)
    }

    /// torchmetrics' reduction: the mean of the pair scores, clamped at 0.
    public static func clampedMean(_ scores: [Double]) -> Double {
        guard !scores.isEmpty else { return .nan }
        return max(scores.reduce(0, +) / Double(scores.count), 0)
    }

    /// Each image against its own prompt: the pair scores (unclamped) and torchmetrics' clamped mean.
    public func score(images: [Tensor], prompts: [String], progress: ((Int) -> Void)? = nil) throws
        -> (perPair: [Double], mean: Double) {
        guard images.count == prompts.count else {
            throw TorchError("CLIP score: \(images.count) images but \(prompts.count) prompts (one prompt per image)")
        }
        guard !images.isEmpty else { throw TorchError("CLIP score: no images") }
        let perPair = try Self.pairScores(imageEmbeddings: imageEmbeddings(images, progress: progress),
                                          textEmbeddings: textEmbeddings(prompts))
        return (perPair, Self.clampedMean(perPair))
    }

    /// MVDiffusion's protocol for panoramas: every view of a scene against its own prompt, the
    /// scores averaged over the views of each scene, then over the scenes; the final mean is
    /// clamped at 0 as torchmetrics does. With equally many views per scene this equals
    /// torchmetrics' mean over all pairs. `views[s][v]` is uint8 `[3, H, W]`, `prompts[s][v]` its prompt.
    public func panoramaScore(views: [[Tensor]], prompts: [[String]], progress: ((Int) -> Void)? = nil) throws
        -> (perScene: [Double], mean: Double) {
        guard views.count == prompts.count, !views.isEmpty else {
            throw TorchError("CLIP score: \(views.count) scenes of views but \(prompts.count) scenes of prompts")
        }
        for (s, (sceneViews, scenePrompts)) in zip(views, prompts).enumerated() where sceneViews.count != scenePrompts.count || sceneViews.isEmpty {
            throw TorchError("CLIP score: scene \(s) has \(sceneViews.count) views but \(scenePrompts.count) prompts")
        }
        let pairs = try score(images: views.flatMap { $0 }, prompts: prompts.flatMap { $0 }, progress: progress).perPair
        let perScene = Self.sceneMeans(pairs, viewCounts: views.map(\.count))
        return (perScene, Self.clampedMean(perScene))
    }

    /// The mean of each scene's consecutive run of pair scores (`viewCounts[s]` views for scene s).
    public static func sceneMeans(_ scores: [Double], viewCounts: [Int]) -> [Double] {
        var means: [Double] = []
        var offset = 0
        for count in viewCounts where count > 0 && offset + count <= scores.count {
            means.append(scores[offset..<offset + count].reduce(0, +) / Double(count))
            offset += count
        }
        return means
    }
}
