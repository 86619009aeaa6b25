import Datasets
import Evaluation
import Experiments
import Foundation
import Media
import StableDiffusion
import Torch

/// An in-domain CLIP: the transformers `CLIPModel` folder of `model.base` trained contrastively on
/// view–caption pairs, CLIP's symmetric cross-entropy over the batch's image–text similarities
/// scaled by exp(logit_scale) (capped at 100, as CLIP clips it). Views of one room often share a
/// caption ("a kitchen with a white wall"), so a caption's targets are all the images it describes,
/// equally, rather than a false negative per duplicate (docs/metrics.md#in-domain-clip). In a
/// data-parallel run the batch is the global one, every rank's embeddings gathered.
final class CLIPTask: TrainingTask {
    let context: TrainingContext
    let model: CLIPModel
    let tokenizer: CLIPTokenizer
    /// The folder's own preprocessing, which the CLIP score applies to generated views too.
    let processor: CLIPImageProcessor
    var trained: Module { model }
    let checkpointFormat = "clip-v1"

    init(_ context: TrainingContext) throws {
        self.context = context
        let base = context.run.baseModel
        model = try CLIPModel.load(from: base, dtype: context.config.model.dtype.dtype, device: context.device)
        model.train()
        tokenizer = try CLIPTokenizer(directory: base)
        processor = try CLIPImageProcessor.load(from: base)
    }

    func loss(indices: [Int], epoch: Int) throws -> Tensor {
        let (images, _, prompts) = try MultiViewSample.collate(context.samples(indices, epoch: epoch))
        return try loss(images: images.flatten(start: 0, end: 1), captions: prompts.flatMap { $0 })
    }

    /// Images `[N, 3, S, S]` in [−1, 1] and their captions.
    func loss(images: Tensor, captions: [String]) throws -> Tensor {
        let device = context.device
        // As 8-bit images, the form generated views are scored in.
        let bytes = try images.signedToUInt8()
        let pixels = try processor((0..<bytes.shape[0]).map { try bytes.select(dim: 0, index: $0) }).to(device: device)
        let ids = try tokenizer(captions).to(device: device)
        let (imageEmbeddings, textEmbeddings) = try context.autocast {
            (try model.imageEmbeddings(pixels), try model.textEmbeddings(ids))
        }
        var i = try imageEmbeddings.to(dtype: .float32), t = try textEmbeddings.to(dtype: .float32), allIDs = ids
        if let group = context.group, group.worldSize > 1 {
            // The loss is over the global batch, as one process with every rank's views computes it.
            (i, t, allIDs) = (try Self.gathered(i, group), try Self.gathered(t, group), try group.allGather(ids))
        }
        let similarity = try (i / Linalg.vectorNorm(i, ord: 2, dims: [-1], keepDim: true))
            .matmul((t / Linalg.vectorNorm(t, ord: 2, dims: [-1], keepDim: true)).transpose(0, 1))
        let logits = try similarity * model.logit_scale.exp().clamp(max: 100)
        let targets = try Self.sameCaptionTargets(allIDs)
        let imageToText = try -(targets * logits.logSoftmax(dim: 1)).sum(dims: [1]).mean()
        let textToImage = try -(targets * logits.transpose(0, 1).logSoftmax(dim: 1)).sum(dims: [1]).mean()
        return try (imageToText + textToImage) / 2
    }

    /// Every rank's rows of `local`, in rank order, for a loss over the global batch
    /// (docs/distributed.md#clip). Each rank computes the same global loss L, but gradients reach
    /// only its own rows: it gets ∂L/∂(own rows) where one process would sum ∂L/∂(every row).
    /// Scaling the gradient of its own rows by the world size makes the trainer's mean over ranks
    /// that sum, while weights every rank reaches alike (logit_scale) keep their single ∂L.
    static func gathered(_ local: Tensor, _ group: ProcessGroup) throws -> Tensor {
        let constant = try local.detach()
        var parts = try group.allGather(constant).chunk(group.worldSize)
        // The value is exactly `local` (x − x is 0); the gradient is worldSize times local's.
        parts[group.rank] = try constant + (local - constant) * Double(group.worldSize)
        return try Tensor.cat(parts)
    }

    /// `[N, N]` for token ids `[N, 77]`: row k spreads 1 evenly over the items whose caption
    /// tokenizes as caption k's does.
    static func sameCaptionTargets(_ ids: Tensor) throws -> Tensor {
        let same = try ids.unsqueeze(1).eq(ids.unsqueeze(0)).all(dims: [2]).to(dtype: .float32)
        return try same / same.sum(dims: [1], keepDim: true)
    }

    func writeModel(to destination: URL) throws -> URL? {
        try ModelFolderWriter.write(copying: context.run.baseModel, to: destination, replacing: [
            .init(subfolder: "", file: "model.safetensors", weights: model.stateDict()),
        ])
        return destination
    }
}
