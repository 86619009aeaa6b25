import Foundation
import StableDiffusion
import Torch

/// transformers' `CLIPVisionConfig` (4.40 names and defaults). Dropout and initialiser settings do
/// not change the forward pass and are ignored.
public struct CLIPVisionConfig: Decodable, Sendable {
    /// Default 768 (ViT-L/14: 1024).
    public var hidden_size: Int
    /// Default 3072 (ViT-L/14: 4096).
    public var intermediate_size: Int
    /// Default 12 (ViT-L/14: 24).
    public var num_hidden_layers: Int
    /// Default 12 (ViT-L/14: 16).
    public var num_attention_heads: Int
    /// Default 3.
    public var num_channels: Int
    /// Default 224: the only input size the position table covers.
    public var image_size: Int
    /// Default 32 (ViT-L/14: 14).
    public var patch_size: Int
    /// Default "quick_gelu".
    public var hidden_act: String
    /// Default 1e-5.
    public var layer_norm_eps: Double

    public init(hidden_size: Int = 768, intermediate_size: Int = 3072, num_hidden_layers: Int = 12,
                num_attention_heads: Int = 12, num_channels: Int = 3, image_size: Int = 224, patch_size: Int = 32,
                hidden_act: String = "quick_gelu", layer_norm_eps: Double = 1e-5) {
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_channels = num_channels
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: ConfigKey.self)
        let d = CLIPVisionConfig()
        hidden_size = try c.value("hidden_size", default: d.hidden_size)
        intermediate_size = try c.value("intermediate_size", default: d.intermediate_size)
        num_hidden_layers = try c.value("num_hidden_layers", default: d.num_hidden_layers)
        num_attention_heads = try c.value("num_attention_heads", default: d.num_attention_heads)
        num_channels = try c.value("num_channels", default: d.num_channels)
        image_size = try c.value("image_size", default: d.image_size)
        patch_size = try c.value("patch_size", default: d.patch_size)
        hidden_act = try c.value("hidden_act", default: d.hidden_act)
        layer_norm_eps = try c.value("layer_norm_eps", default: d.layer_norm_eps)
    }

    /// Patches along each side; the conv drops a remainder, as transformers' `image_size // patch_size`.
    public var grid: Int { image_size / patch_size }

    /// Every patch attends to every other and to the class token.
    public var encoder: CLIPEncoderConfig {
        CLIPEncoderConfig(hidden_size: hidden_size, intermediate_size: intermediate_size,
                          num_hidden_layers: num_hidden_layers, num_attention_heads: num_attention_heads,
                          hidden_act: hidden_act, layer_norm_eps: layer_norm_eps, causal: false)
    }

    public func validate(file: String, keyPrefix: String = "") throws {
        for (key, value) in [("num_channels", num_channels), ("image_size", image_size), ("patch_size", patch_size)] where value <= 0 {
            throw LoadingError(file: file, key: keyPrefix + key, "must be positive, found \(value)")
        }
        guard patch_size <= image_size else {
            throw LoadingError(file: file, key: keyPrefix + "patch_size", "patch \(patch_size) is larger than the image \(image_size)")
        }
        try encoder.validate(file: file, keyPrefix: keyPrefix)
    }
}

/// transformers' `CLIPConfig` as `CLIPModel.from_pretrained` resolves it from `config.json`.
///
/// Configs written before transformers 4.27 (openai/clip-vit-*) may also carry `text_config_dict` /
/// `vision_config_dict`; transformers then builds a full config from that dict alone, with the class
/// defaults for every key it lacks, and lets it replace `text_config` / `vision_config` entirely.
/// The same rule applies here, so e.g. `eos_token_id` falls back to 49407 in that case.
public struct CLIPConfig: Decodable, Sendable {
    public var text_config: CLIPTextConfig
    public var vision_config: CLIPVisionConfig
    /// Width of the joint embedding space. Default 512 (ViT-L/14: 768).
    public var projection_dim: Int

    public init(text_config: CLIPTextConfig = CLIPTextConfig(), vision_config: CLIPVisionConfig = CLIPVisionConfig(),
                projection_dim: Int = 512) {
        self.text_config = text_config
        self.vision_config = vision_config
        self.projection_dim = projection_dim
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: ConfigKey.self)
        text_config = try c.decodeIfPresent(CLIPTextConfig.self, forKey: "text_config_dict")
            ?? c.value("text_config", default: CLIPTextConfig())
        vision_config = try c.decodeIfPresent(CLIPVisionConfig.self, forKey: "vision_config_dict")
            ?? c.value("vision_config", default: CLIPVisionConfig())
        projection_dim = try c.value("projection_dim", default: 512)
    }

    /// Reads `config.json` in `directory` (or the file itself) and checks the sizes.
    public static func load(_ url: URL) throws -> CLIPConfig {
        let file = url.hasDirectoryPath || !url.lastPathComponent.hasSuffix(".json")
            ? url.appendingPathComponent("config.json") : url
        let config = try ConfigFile.decode(CLIPConfig.self, from: file)
        try config.validate(file: file.path)
        return config
    }

    public func validate(file: String) throws {
        guard projection_dim > 0 else {
            throw LoadingError(file: file, key: "projection_dim", "must be positive, found \(projection_dim)")
        }
        try text_config.validate(file: file, keyPrefix: "text_config.")
        try vision_config.validate(file: file, keyPrefix: "vision_config.")
    }
}

/// transformers' `CLIPModel`: the text tower of Stable Diffusion's encoder (causal), a ViT image
/// tower (pre-norm, non-causal), and bias-free projections of both into one embedding space.
/// Keys as transformers saves them: `text_model.…`, `vision_model.embeddings.class_embedding`,
/// `vision_model.pre_layrnorm.weight` (sic), `visual_projection.weight`, `text_projection.weight`,
/// `logit_scale`.
public final class CLIPModel: Module {
    public let text_model: CLIPTextTransformer
    public let vision_model: CLIPVisionTransformer
    public let visual_projection: Linear
    public let text_projection: Linear
    /// log of the contrastive temperature; kept so the weights load strictly, unused by embeddings.
    public let logit_scale: Parameter
    public let config: CLIPConfig

    public init(config: CLIPConfig) throws {
        self.config = config
        text_model = try CLIPTextTransformer(config.text_config)
        vision_model = try CLIPVisionTransformer(config.vision_config)
        visual_projection = try Linear(config.vision_config.hidden_size, config.projection_dim, bias: false)
        text_projection = try Linear(config.text_config.hidden_size, config.projection_dim, bias: false)
        logit_scale = try Parameter(Tensor.full([], 2.6592))
        super.init()
        eval()
    }

    /// Builds the model from `directory/config.json` and loads `model.safetensors` (or the folder's
    /// other weights file) strictly; the `position_ids` buffers older transformers saved are skipped.
    public static func load(from directory: URL, dtype: DType? = nil, device: Device = .cpu) throws -> CLIPModel {
        let model = try CLIPModel(config: CLIPConfig.load(directory))
        try loadWeights(into: model, from: directory, dtype: dtype, device: device,
                        ignoring: ["text_model.embeddings.position_ids", "vision_model.embeddings.position_ids"])
        return model
    }

    /// The text tower as a standalone `CLIPTextModel`, the form in which Stable Diffusion uses CLIP's
    /// text encoder: the same `text_model.…` tensors (copied), without the projection.
    public func textEncoder() throws -> CLIPTextModel {
        let encoder = try CLIPTextModel(config: config.text_config)
        let tower = stateDict().filter { $0.key.hasPrefix("text_model.") }
        try encoder.loadStateDict(tower)
        try encoder.to(device: text_projection.weight.device, dtype: text_projection.weight.dtype)
        return encoder
    }

    /// The text encoder held by `directory`: a joint `CLIPModel` folder's text tower, or a
    /// `CLIPTextModel` folder as it is (told apart by `model_type`, as transformers does).
    public static func textEncoder(from directory: URL, dtype: DType? = nil, device: Device = .cpu) throws -> CLIPTextModel {
        let file = directory.appendingPathComponent("config.json")
        let modelType = try ConfigFile.object(from: file)["model_type"] as? String
        switch modelType {
        case "clip": return try load(from: directory, dtype: dtype, device: device).textEncoder()
        case "clip_text_model": return try CLIPTextModel.load(from: directory, dtype: dtype, device: device)
        default:
            throw LoadingError(file: file.path, key: "model_type",
                               "expected \"clip\" or \"clip_text_model\", found \(modelType.map { "\"\($0)\"" } ?? "none")")
        }
    }

    /// `get_image_features`: `pixelValues` float `[B, 3, S, S]` (the processor's output) → `[B, E]`,
    /// the projected, unnormalised embedding of the class token.
    public func imageEmbeddings(_ pixelValues: Tensor) throws -> Tensor {
        try visual_projection(vision_model(pixelValues).pooled)
    }

    /// `get_text_features`: `inputIds` int64 `[B, L]` → `[B, E]`, the projected, unnormalised final
    /// hidden state at the pooling position (`textPoolingPositions`).
    public func textEmbeddings(_ inputIds: Tensor) throws -> Tensor {
        let hidden = try text_model(inputIds).lastHiddenState
        let rows = try Tensor.arange(0, Double(inputIds.shape[0]), device: hidden.device)
        let pooled = try hidden.index([rows, textPoolingPositions(inputIds).to(device: hidden.device)])
        return try text_projection(pooled)
    }

    /// Where transformers 4.40 reads the sentence embedding, per row of `[B, L]` ids: with the
    /// legacy `eos_token_id == 2` the position of the largest id (OpenAI's rule: the end token has
    /// the largest id), otherwise the first end token — position 0 when a row has none (a prompt cut
    /// at the position limit). Ties resolve to the first position, as LibTorch's argmax does.
    public func textPoolingPositions(_ inputIds: Tensor) throws -> Tensor {
        let eos = config.text_config.eos_token_id
        if eos == 2 { return try inputIds.to(dtype: .int32).argmax(dim: -1) }
        return try inputIds.eq(Double(eos)).to(dtype: .int32).argmax(dim: -1)
    }
}

/// The image tower: patch and class embeddings, `pre_layrnorm`, the encoder, `post_layernorm` of
/// the class token.
public final class CLIPVisionTransformer: Module {
    public let embeddings: CLIPVisionEmbeddings
    public let pre_layrnorm: LayerNorm
    public let encoder: CLIPEncoder
    public let post_layernorm: LayerNorm

    public init(_ config: CLIPVisionConfig) throws {
        embeddings = try CLIPVisionEmbeddings(config)
        pre_layrnorm = try LayerNorm(config.hidden_size, eps: config.layer_norm_eps)
        encoder = try CLIPEncoder(config.encoder)
        post_layernorm = try LayerNorm(config.hidden_size, eps: config.layer_norm_eps)
        super.init()
    }

    /// `[B, C, S, S]` → the last hidden state `[B, 1 + P, D]` (not normalised, as transformers
    /// returns it) and the pooled class token after `post_layernorm` `[B, D]`.
    public func callAsFunction(_ pixelValues: Tensor) throws -> (lastHiddenState: Tensor, pooled: Tensor) {
        let h = try pre_layrnorm(embeddings(pixelValues))
        let (last, _) = try encoder(h)
        return (last, try post_layernorm(last.select(dim: 1, index: 0)))
    }
}

public final class CLIPVisionEmbeddings: Module {
    public let class_embedding: Parameter
    public let patch_embedding: Conv2d
    public let position_embedding: Embedding
    let imageSize: Int, channels: Int

    init(_ config: CLIPVisionConfig) throws {
        let d = config.hidden_size
        class_embedding = try Parameter(Tensor.randn([d]))
        patch_embedding = try Conv2d(config.num_channels, d, kernelSize: IntPair(config.patch_size),
                                     stride: IntPair(config.patch_size), bias: false)
        position_embedding = try Embedding(config.grid * config.grid + 1, d)
        (imageSize, channels) = (config.image_size, config.num_channels)
        super.init()
    }

    /// `[B, C, S, S]` → `[B, 1 + P, D]`: the class token, then the patches in row-major order, plus
    /// the learned position of each.
    func callAsFunction(_ pixelValues: Tensor) throws -> Tensor {
        guard pixelValues.rank == 4, pixelValues.shape[1] == channels,
              pixelValues.shape[2] == imageSize, pixelValues.shape[3] == imageSize else {
            throw TorchError("CLIP vision model: expected pixel values [B, \(channels), \(imageSize), \(imageSize)], got \(pixelValues.shape)")
        }
        let batch = pixelValues.shape[0]
        let patches = try patch_embedding(pixelValues.to(dtype: patch_embedding.weight.dtype))
            .flatten(start: 2).transpose(1, 2)
        let classToken = try class_embedding.view([1, 1, -1]).expand([batch, 1, class_embedding.shape[0]])
        let tokens = try Tensor.cat([classToken, patches], dim: 1)
        return try tokens + position_embedding.weight.unsqueeze(0)
    }
}
