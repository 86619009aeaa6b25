import Foundation
import Torch

/// transformers' `CLIPTextConfig`, decoded from `text_encoder/config.json`. Field names and
/// defaults are transformers 4.40's; other keys (projection_dim, dropout, initialiser settings,
/// bos/pad ids) do not change the forward pass and are ignored.
public struct CLIPTextConfig: Decodable, Sendable {
    /// Default 49408.
    public var vocab_size: Int
    /// Default 512 (SD 1.x: 768, SD 2.x: 1024).
    public var hidden_size: Int
    /// Default 2048.
    public var intermediate_size: Int
    /// Default 12 (SD 2.x: 23).
    public var num_hidden_layers: Int
    /// Default 8 (SD 2.x: 16).
    public var num_attention_heads: Int
    /// Default 77.
    public var max_position_embeddings: Int
    /// "quick_gelu" (default; OpenAI CLIP, SD 1.x) or "gelu" (OpenCLIP, SD 2.x); also "gelu_new"/"gelu_pytorch_tanh".
    public var hidden_act: String
    /// Default 1e-5.
    public var layer_norm_eps: Double
    /// Default 49407. Only the joint CLIP model's pooling reads it: configs saved before
    /// transformers 4.31 carry the wrong value 2, which transformers keeps as a signal to pool at
    /// the largest id instead of the first end token.
    public var eos_token_id: Int

    public init(vocab_size: Int = 49408, hidden_size: Int = 512, intermediate_size: Int = 2048,
                num_hidden_layers: Int = 12, num_attention_heads: Int = 8, max_position_embeddings: Int = 77,
                hidden_act: String = "quick_gelu", layer_norm_eps: Double = 1e-5, eos_token_id: Int = 49407) {
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.max_position_embeddings = max_position_embeddings
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.eos_token_id = eos_token_id
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: ConfigKey.self)
        let d = CLIPTextConfig()
        vocab_size = try c.value("vocab_size", default: d.vocab_size)
        hidden_size = try c.value("hidden_size", default: d.hidden_size)
        intermediate_size = try c.value("intermediate_size", default: d.intermediate_size)
        num_hidden_layers = try c.value("num_hidden_layers", default: d.num_hidden_layers)
        num_attention_heads = try c.value("num_attention_heads", default: d.num_attention_heads)
        max_position_embeddings = try c.value("max_position_embeddings", default: d.max_position_embeddings)
        hidden_act = try c.value("hidden_act", default: d.hidden_act)
        layer_norm_eps = try c.value("layer_norm_eps", default: d.layer_norm_eps)
        eos_token_id = try c.value("eos_token_id", default: d.eos_token_id)
    }

    /// The transformer stack's shape: causal, so each token sees only itself and earlier ones.
    public var encoder: CLIPEncoderConfig {
        CLIPEncoderConfig(hidden_size: hidden_size, intermediate_size: intermediate_size,
                          num_hidden_layers: num_hidden_layers, num_attention_heads: num_attention_heads,
                          hidden_act: hidden_act, layer_norm_eps: layer_norm_eps, causal: true)
    }

    /// Reads `config.json` in `directory` (or the file itself) and checks that the shapes agree.
    public static func load(_ url: URL) throws -> CLIPTextConfig {
        let file = url.hasDirectoryPath || !url.lastPathComponent.hasSuffix(".json")
            ? url.appendingPathComponent("config.json") : url
        let config = try ConfigFile.decode(CLIPTextConfig.self, from: file)
        try config.validate(file: file.path)
        return config
    }

    /// Checks the sizes; `keyPrefix` ("text_config.") names the key inside a joint CLIP config.
    public func validate(file: String, keyPrefix: String = "") throws {
        for (key, value) in [("vocab_size", vocab_size), ("max_position_embeddings", max_position_embeddings)] where value <= 0 {
            throw LoadingError(file: file, key: keyPrefix + key, "must be positive, found \(value)")
        }
        try encoder.validate(file: file, keyPrefix: keyPrefix)
    }
}

/// The shape of a CLIP transformer stack, shared by the text tower (causal) and the vision tower
/// (every patch sees every other).
public struct CLIPEncoderConfig: Sendable {
    public var hidden_size: Int
    public var intermediate_size: Int
    public var num_hidden_layers: Int
    public var num_attention_heads: Int
    public var hidden_act: String
    public var layer_norm_eps: Double
    public var causal: Bool

    public init(hidden_size: Int, intermediate_size: Int, num_hidden_layers: Int, num_attention_heads: Int,
                hidden_act: String, layer_norm_eps: Double, causal: Bool) {
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.causal = causal
    }

    /// Positive sizes, whole heads and a known activation; errors name `keyPrefix + key` in `file`.
    public func validate(file: String, keyPrefix: String = "") throws {
        for (key, value) in [("hidden_size", hidden_size), ("intermediate_size", intermediate_size),
                             ("num_attention_heads", num_attention_heads)] where value <= 0 {
            throw LoadingError(file: file, key: keyPrefix + key, "must be positive, found \(value)")
        }
        guard hidden_size % num_attention_heads == 0 else {
            throw LoadingError(file: file, key: keyPrefix + "num_attention_heads",
                               "hidden_size \(hidden_size) is not divisible by \(num_attention_heads) heads")
        }
        _ = try CLIPActivation(hidden_act, file: file, key: keyPrefix + "hidden_act")
    }
}

/// transformers' `ACT2FN` entries a CLIP config may name.
enum CLIPActivation {
    case gelu, quickGelu, geluTanh

    init(_ name: String, file: String = "config.json", key: String = "hidden_act") throws {
        switch name {
        case "gelu": self = .gelu
        case "quick_gelu": self = .quickGelu
        case "gelu_new", "gelu_pytorch_tanh": self = .geluTanh
        default: throw LoadingError(file: file, key: key, "unsupported activation '\(name)' (expected gelu, quick_gelu, gelu_new)")
        }
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        switch self {
        case .gelu: return try x.gelu()
        // OpenAI's sigmoid approximation of GELU.
        case .quickGelu: return try x * (x * 1.702).sigmoid()
        case .geluTanh: return try x.gelu(approximate: .tanh)
        }
    }
}

/// transformers' `CLIPTextModel`: token + position embeddings, pre-norm transformer layers with
/// causal self-attention, final layer norm. Keys `text_model.embeddings.token_embedding.weight`,
/// `text_model.encoder.layers.N.self_attn.q_proj.weight`, … `text_model.final_layer_norm.bias`.
public final class CLIPTextModel: Module {
    public let text_model: CLIPTextTransformer
    public let config: CLIPTextConfig

    public init(config: CLIPTextConfig) throws {
        self.config = config
        text_model = try CLIPTextTransformer(config)
        super.init()
        eval()
    }

    /// Builds the model from `directory/config.json` and loads its weights (strictly; a
    /// `position_ids` buffer that older transformers saved is skipped).
    public static func load(from directory: URL, dtype: DType? = nil, device: Device = .cpu) throws -> CLIPTextModel {
        let model = try CLIPTextModel(config: CLIPTextConfig.load(directory))
        try loadWeights(into: model, from: directory, dtype: dtype, device: device,
                        ignoring: ["text_model.embeddings.position_ids"])
        return model
    }

    /// The final layer's output after `final_layer_norm`: `[B, L]` int64 ids → `[B, L, D]`.
    public func callAsFunction(_ inputIds: Tensor) throws -> Tensor {
        try text_model(inputIds).lastHiddenState
    }

    /// The last hidden state and every layer's output: `hiddenStates[0]` is the embeddings,
    /// `hiddenStates[i]` layer i's output (before the final layer norm), as transformers'
    /// `output_hidden_states=True`. "Clip skip" users read `hiddenStates[count − 1 − skip]`.
    public func encode(_ inputIds: Tensor) throws -> (lastHiddenState: Tensor, hiddenStates: [Tensor]) {
        try text_model(inputIds, keepHiddenStates: true)
    }
}

public final class CLIPTextTransformer: Module {
    public let embeddings: CLIPTextEmbeddings
    public let encoder: CLIPEncoder
    public let final_layer_norm: LayerNorm

    public init(_ config: CLIPTextConfig) throws {
        embeddings = try CLIPTextEmbeddings(config)
        encoder = try CLIPEncoder(config.encoder)
        final_layer_norm = try LayerNorm(config.hidden_size, eps: config.layer_norm_eps)
        super.init()
    }

    /// `[B, L]` int64 ids → the final layer's output after `final_layer_norm` `[B, L, D]`, and
    /// (when `keepHiddenStates`) the embeddings and every layer's output before that norm.
    public func callAsFunction(_ inputIds: Tensor, keepHiddenStates: Bool = false) throws
        -> (lastHiddenState: Tensor, hiddenStates: [Tensor]) {
        guard inputIds.rank == 2 else { throw TorchError("CLIPTextModel: expected input ids [B, L], got \(inputIds.shape)") }
        let h = try embeddings(inputIds)
        let (out, states) = try encoder(h, keepHiddenStates: keepHiddenStates)
        return (try final_layer_norm(out), states)
    }
}

public final class CLIPTextEmbeddings: Module {
    public let token_embedding: Embedding
    public let position_embedding: Embedding

    init(_ config: CLIPTextConfig) throws {
        token_embedding = try Embedding(config.vocab_size, config.hidden_size)
        position_embedding = try Embedding(config.max_position_embeddings, config.hidden_size)
        super.init()
    }

    /// `[B, L]` → `[B, L, D]`.
    func callAsFunction(_ inputIds: Tensor) throws -> Tensor {
        let length = try inputIds.size(1)
        guard length <= position_embedding.weight.shape[0] else {
            throw TorchError("CLIPTextModel: \(length) tokens but only \(position_embedding.weight.shape[0]) positions")
        }
        let positions = try Tensor.arange(0, Double(length), device: inputIds.device)
        return try token_embedding(inputIds) + position_embedding(positions).unsqueeze(0)
    }
}

public final class CLIPEncoder: Module {
    public let layers: [CLIPEncoderLayer]

    public init(_ config: CLIPEncoderConfig) throws {
        layers = try (0..<config.num_hidden_layers).map { _ in try CLIPEncoderLayer(config) }
        super.init()
    }

    /// `[B, L, D]` → `[B, L, D]`; with `keepHiddenStates`, also the input and each layer's output.
    public func callAsFunction(_ x: Tensor, keepHiddenStates: Bool = false) throws -> (Tensor, [Tensor]) {
        var h = x
        var states = keepHiddenStates ? [x] : []
        for layer in layers {
            h = try layer(h)
            if keepHiddenStates { states.append(h) }
        }
        return (h, states)
    }
}

public final class CLIPEncoderLayer: Module {
    public let self_attn: CLIPAttention
    public let layer_norm1: LayerNorm
    public let mlp: CLIPMLP
    public let layer_norm2: LayerNorm

    init(_ config: CLIPEncoderConfig) throws {
        self_attn = try CLIPAttention(config)
        layer_norm1 = try LayerNorm(config.hidden_size, eps: config.layer_norm_eps)
        mlp = try CLIPMLP(config)
        layer_norm2 = try LayerNorm(config.hidden_size, eps: config.layer_norm_eps)
        super.init()
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let h = try x + self_attn(layer_norm1(x))
        return try h + mlp(layer_norm2(h))
    }
}

/// Multi-head self-attention; in the text tower (`causal`) each token sees itself and the tokens
/// before it.
public final class CLIPAttention: Module {
    public let q_proj: Linear, k_proj: Linear, v_proj: Linear, out_proj: Linear
    let heads: Int
    let causal: Bool

    init(_ config: CLIPEncoderConfig) throws {
        let d = config.hidden_size
        (q_proj, k_proj, v_proj, out_proj) = (try Linear(d, d), try Linear(d, d), try Linear(d, d), try Linear(d, d))
        heads = config.num_attention_heads
        causal = config.causal
        super.init()
    }

    /// `[B, L, D]` → `[B, L, D]`.
    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let (b, l, d) = (x.shape[0], x.shape[1], x.shape[2])
        func split(_ t: Tensor) throws -> Tensor { try t.view(b, l, heads, d / heads).transpose(1, 2) }
        let attended = try F.scaledDotProductAttention(split(q_proj(x)), split(k_proj(x)), split(v_proj(x)), causal: causal)
        return try out_proj(attended.transpose(1, 2).reshape(b, l, d))
    }
}

public final class CLIPMLP: Module {
    public let fc1: Linear, fc2: Linear
    let activation: CLIPActivation

    init(_ config: CLIPEncoderConfig) throws {
        fc1 = try Linear(config.hidden_size, config.intermediate_size)
        fc2 = try Linear(config.intermediate_size, config.hidden_size)
        activation = try CLIPActivation(config.hidden_act)
        super.init()
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor { try fc2(activation(fc1(x))) }
}
