import Foundation
import StableDiffusion
import Torch

/// `tokenizer` and `text_encoder` (transformers' CLIPTokenizer and CLIPTextModel).
enum TextComponents {
    static let runners: [String: ParityRunner] = [
        "tokenizer": tokenizer,
        "text_encoder": textEncoder,
    ]

    /// args `prompts` → `input_ids` int64 [N, 77] (padded and truncated as the pipelines do).
    static func tokenizer(_ c: ParityCase) throws -> [String: Tensor] {
        let tokenizer = try CLIPTokenizer(directory: c.model)
        return ["input_ids": try tokenizer(try c.args.strings("prompts"))]
    }

    /// `input_ids` → `last_hidden_state` [N, 77, D] and `hidden_states.<i>` (0: embeddings, i: layer i).
    static func textEncoder(_ c: ParityCase) throws -> [String: Tensor] {
        let model = try CLIPTextModel.load(from: c.model)
        let (last, states) = try model.encode(c.input("input_ids"))
        var outputs = ["last_hidden_state": last]
        for (i, state) in states.enumerated() { outputs["hidden_states.\(i)"] = state }
        return outputs
    }
}
