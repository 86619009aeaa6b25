import Foundation
import Torch

/// A value given either once for every block or as one value per down block (diffusers accepts
/// `int` or `list` for `attention_head_dim`, `layers_per_block`, `cross_attention_dim`, …).
public enum PerBlock<Value: Decodable & Sendable & Equatable>: Decodable, Sendable, Equatable {
    case same(Value)
    case each([Value])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let list = try? container.decode([Value].self) {
            self = .each(list)
        } else {
            self = .same(try container.decode(Value.self))
        }
    }

    /// One value per block; a list of the wrong length is an error naming `key`.
    public func values(_ count: Int, key: String) throws -> [Value] {
        switch self {
        case .same(let value): return Array(repeating: value, count: count)
        case .each(let list):
            guard list.count == count else {
                throw TorchError("\(key) has \(list.count) values but the UNet has \(count) down blocks")
            }
            return list
        }
    }
}

extension PerBlock: ExpressibleByIntegerLiteral where Value == Int {
    public init(integerLiteral value: Int) { self = .same(value) }
}

extension PerBlock: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: Value...) { self = .each(elements) }
}

/// `unet/config.json` of a diffusers `UNet2DConditionModel`, SD1/SD2 feature set; field names and
/// defaults are diffusers 0.27's. Options outside that set (class or added embeddings, other block
/// kinds, `num_attention_heads`, …) are refused when decoding rather than silently ignored.
public struct UNet2DConditionConfig: Decodable, Sendable, Equatable {
    /// `sample_size`: the latent size the model was trained at (64 for SD 2-base); informative.
    public var sample_size: Int? = nil
    /// `in_channels` (4).
    public var in_channels = 4
    /// `out_channels` (4).
    public var out_channels = 4
    /// `center_input_sample` (false): the input is mapped by 2x − 1 first.
    public var center_input_sample = false
    /// `flip_sin_to_cos` (true): the timestep embedding is `[cos | sin]`.
    public var flip_sin_to_cos = true
    /// `freq_shift` (0): `downscale_freq_shift` of the timestep embedding.
    public var freq_shift = 0.0
    /// `down_block_types` (CrossAttnDownBlock2D ×3, DownBlock2D).
    public var down_block_types = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
    /// `mid_block_type` ("UNetMidBlock2DCrossAttn"); nil: no mid block.
    public var mid_block_type: String? = "UNetMidBlock2DCrossAttn"
    /// `up_block_types` (UpBlock2D, CrossAttnUpBlock2D ×3).
    public var up_block_types = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
    /// `block_out_channels` (320, 640, 1280, 1280).
    public var block_out_channels = [320, 640, 1280, 1280]
    /// `layers_per_block` (2): resnets per down block; up blocks have one more.
    public var layers_per_block: PerBlock<Int> = 2
    /// `downsample_padding` (1).
    public var downsample_padding = 1
    /// `mid_block_scale_factor` (1): output scale of the mid block's resnets.
    public var mid_block_scale_factor = 1.0
    /// `dropout` (0).
    public var dropout = 0.0
    /// `act_fn` ("silu").
    public var act_fn = "silu"
    /// `norm_num_groups` (32).
    public var norm_num_groups = 32
    /// `norm_eps` (1e-5): the resnets' and the output norm's epsilon.
    public var norm_eps = 1e-5
    /// `cross_attention_dim` (1280; 768 in SD1, 1024 in SD2): width of the text embeddings.
    public var cross_attention_dim: PerBlock<Int> = 1280
    /// `transformer_layers_per_block` (1).
    public var transformer_layers_per_block: PerBlock<Int> = 1
    /// `attention_head_dim` (8; SD2: [5, 10, 20, 20]). Despite its name diffusers 0.27 uses it as
    /// the NUMBER OF HEADS of each block's transformers (head width = channels / value), because
    /// `num_attention_heads` must be null; the up blocks take the list reversed.
    public var attention_head_dim: PerBlock<Int> = 8
    /// `use_linear_projection` (false; true in SD2): Linear instead of 1×1 conv `proj_in`/`proj_out`.
    public var use_linear_projection = false
    /// `upcast_attention` (false; true in SD 2.1): attention scores and softmax in float32.
    public var upcast_attention = false
    /// `time_embedding_dim`; nil: 4 × `block_out_channels[0]`.
    public var time_embedding_dim: Int? = nil
    /// `time_embedding_act_fn` (nil): an activation applied to the time embedding before the blocks.
    public var time_embedding_act_fn: String? = nil
    /// `timestep_post_act` (nil): an activation after `time_embedding.linear_2`.
    public var timestep_post_act: String? = nil
    /// `conv_in_kernel`, `conv_out_kernel` (3).
    public var conv_in_kernel = 3
    public var conv_out_kernel = 3

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: ConfigKey.self)
        let d = UNet2DConditionConfig()
        sample_size = try c.value("sample_size", default: d.sample_size)
        in_channels = try c.value("in_channels", default: d.in_channels)
        out_channels = try c.value("out_channels", default: d.out_channels)
        center_input_sample = try c.value("center_input_sample", default: d.center_input_sample)
        flip_sin_to_cos = try c.value("flip_sin_to_cos", default: d.flip_sin_to_cos)
        freq_shift = try c.value("freq_shift", default: d.freq_shift)
        down_block_types = try c.value("down_block_types", default: d.down_block_types)
        // An explicit null means no mid block; only a missing key takes the default.
        mid_block_type = c.contains("mid_block_type") ? try c.decodeIfPresent(String.self, forKey: "mid_block_type")
            : d.mid_block_type
        up_block_types = try c.value("up_block_types", default: d.up_block_types)
        block_out_channels = try c.value("block_out_channels", default: d.block_out_channels)
        layers_per_block = try c.value("layers_per_block", default: d.layers_per_block)
        downsample_padding = try c.value("downsample_padding", default: d.downsample_padding)
        mid_block_scale_factor = try c.value("mid_block_scale_factor", default: d.mid_block_scale_factor)
        dropout = try c.value("dropout", default: d.dropout)
        act_fn = try c.value("act_fn", default: d.act_fn)
        norm_num_groups = try c.value("norm_num_groups", default: d.norm_num_groups)
        norm_eps = try c.value("norm_eps", default: d.norm_eps)
        cross_attention_dim = try c.value("cross_attention_dim", default: d.cross_attention_dim)
        transformer_layers_per_block = try c.value("transformer_layers_per_block",
                                                   default: d.transformer_layers_per_block)
        attention_head_dim = try c.value("attention_head_dim", default: d.attention_head_dim)
        use_linear_projection = try c.value("use_linear_projection", default: d.use_linear_projection)
        upcast_attention = try c.value("upcast_attention", default: d.upcast_attention)
        time_embedding_dim = try c.value("time_embedding_dim", default: d.time_embedding_dim)
        time_embedding_act_fn = try c.value("time_embedding_act_fn", default: d.time_embedding_act_fn)
        timestep_post_act = try c.value("timestep_post_act", default: d.timestep_post_act)
        conv_in_kernel = try c.value("conv_in_kernel", default: d.conv_in_kernel)
        conv_out_kernel = try c.value("conv_out_kernel", default: d.conv_out_kernel)

        func refuse(_ key: ConfigKey, _ why: String) -> DecodingError {
            .dataCorruptedError(forKey: key, in: c, debugDescription: why)
        }
        if try c.decodeIfPresent(PerBlock<Int>.self, forKey: "num_attention_heads") != nil {
            throw refuse("num_attention_heads", "diffusers 0.27 refuses num_attention_heads; "
                         + "the head counts go in attention_head_dim")
        }
        // Options of other model families: supporting them silently wrong would be worse than refusing.
        for key in ["class_embed_type", "addition_embed_type", "encoder_hid_dim", "encoder_hid_dim_type",
                    "num_class_embeds", "time_cond_proj_dim", "projection_class_embeddings_input_dim",
                    "cross_attention_norm", "reverse_transformer_layers_per_block", "addition_time_embed_dim"] {
            if c.contains(ConfigKey(stringValue: key)), try !c.decodeNil(forKey: ConfigKey(stringValue: key)) {
                throw refuse(ConfigKey(stringValue: key), "not supported (Stable Diffusion 1/2 UNets leave it null)")
            }
        }
        let expected: [(String, String)] = [("resnet_time_scale_shift", "default"), ("time_embedding_type", "positional"),
                                            ("attention_type", "default")]
        for (key, value) in expected {
            if try c.value(ConfigKey(stringValue: key), default: value) != value {
                throw refuse(ConfigKey(stringValue: key), "only \"\(value)\" is supported")
            }
        }
        for key in ["dual_cross_attention", "class_embeddings_concat", "mid_block_only_cross_attention"] {
            if try c.value(ConfigKey(stringValue: key), default: false) {
                throw refuse(ConfigKey(stringValue: key), "only false is supported")
            }
        }
        if try c.value("only_cross_attention", default: PerBlock<Bool>.same(false)).values(
            down_block_types.count, key: "only_cross_attention").contains(true) {
            throw refuse("only_cross_attention", "only false is supported")
        }
        let kinds: [(ConfigKey, [String], Set<String>)] = [
            ("down_block_types", down_block_types, ["CrossAttnDownBlock2D", "DownBlock2D"]),
            ("up_block_types", up_block_types, ["CrossAttnUpBlock2D", "UpBlock2D"]),
            ("mid_block_type", mid_block_type.map { [$0] } ?? [], ["UNetMidBlock2DCrossAttn"]),
        ]
        for (key, types, supported) in kinds {
            if let other = types.first(where: { !supported.contains($0) }) {
                throw refuse(key, "block type '\(other)' is not supported (\(supported.sorted().joined(separator: ", ")))")
            }
        }
    }
}

/// A caller's modules run at MVDiffusion's nine insertion points (docs/models.md#unet-insertion-points), given the
/// feature map `[B, C, h, w]` there and returning its replacement (same shape):
/// - `afterDownBlock(i, h)`: after down block i's last resnet/attention, before its downsampler.
///   The skip tensors for the up path are taken before the hook; the downsampler's output (a skip
///   too) is computed from the hook's result. SD2 at 64×64 latents: 320@64, 640@32, 1280@16, 1280@8.
/// - `afterMidResnet(h)`: after the mid block's first resnet, before its attention (1280@8).
/// - `afterUpBlock(i, h)`: after up block i's resnets/attentions, before its upsampler
///   (1280@8, 1280@16, 640@32, 320@64).
/// Each method defaults to the identity, so a conformer implements only the points it uses.
public protocol UNetHooks {
    func afterDownBlock(_ index: Int, _ h: Tensor) throws -> Tensor
    func afterMidResnet(_ h: Tensor) throws -> Tensor
    func afterUpBlock(_ index: Int, _ h: Tensor) throws -> Tensor
}

extension UNetHooks {
    public func afterDownBlock(_ index: Int, _ h: Tensor) throws -> Tensor { h }
    public func afterMidResnet(_ h: Tensor) throws -> Tensor { h }
    public func afterUpBlock(_ index: Int, _ h: Tensor) throws -> Tensor { h }
}

/// The denoising UNet of Stable Diffusion: noisy latents `[B, 4, h, w]`, timesteps `[B]` and text
/// embeddings `[B, 77, cross_attention_dim]` → the prediction `[B, 4, h, w]` (noise or v).
public final class UNet2DConditionModel: Module {
    public let config: UNet2DConditionConfig
    public let conv_in: Conv2d
    public let time_embedding: TimestepEmbedding
    public let down_blocks: [any UNetDownBlock]
    public let mid_block: UNetMidBlock2DCrossAttn?
    public let up_blocks: [any UNetUpBlock]
    public let conv_norm_out: GroupNorm
    public let conv_out: Conv2d
    let conv_act: Activation
    let time_embed_act: Activation?

    /// Recompute each resnet and spatial transformer in the backward pass instead of keeping its
    /// activations (while gradients are recorded; hooks run outside the recomputed parts).
    public var gradientCheckpointing = false {
        didSet {
            for i in down_blocks.indices { down_blocks[i].gradientCheckpointing = gradientCheckpointing }
            mid_block?.gradientCheckpointing = gradientCheckpointing
            for i in up_blocks.indices { up_blocks[i].gradientCheckpointing = gradientCheckpointing }
        }
    }

    public init(config: UNet2DConditionConfig = .init()) throws {
        self.config = config
        let channels = config.block_out_channels
        let n = config.down_block_types.count
        guard n > 0, channels.count == n, config.up_block_types.count == n else {
            throw TorchError("the UNet needs as many block_out_channels (\(channels.count)) and up_block_types "
                             + "(\(config.up_block_types.count)) as down_block_types (\(n))")
        }
        let heads = try config.attention_head_dim.values(n, key: "attention_head_dim")
        let crossDims = try config.cross_attention_dim.values(n, key: "cross_attention_dim")
        let layers = try config.layers_per_block.values(n, key: "layers_per_block")
        let transformerLayers = try config.transformer_layers_per_block.values(n, key: "transformer_layers_per_block")
        let timeEmbedDim = config.time_embedding_dim ?? channels[0] * 4
        func blockConfig(layers: Int, input: Int, output: Int, previous: Int = 0, last: Bool, heads: Int,
                         crossDim: Int, transformerLayers: Int, scale: Double = 1) -> UNetBlockConfig {
            UNetBlockConfig(
                num_layers: layers, in_channels: input, out_channels: output, prev_output_channel: previous,
                temb_channels: timeEmbedDim, resnet_eps: config.norm_eps, resnet_act_fn: config.act_fn,
                resnet_groups: config.norm_num_groups, dropout: config.dropout, add_sampler: !last,
                downsample_padding: config.downsample_padding, cross_attention_dim: crossDim, num_attention_heads: heads,
                transformer_layers_per_block: transformerLayers, use_linear_projection: config.use_linear_projection,
                upcast_attention: config.upcast_attention, output_scale_factor: scale)
        }

        conv_in = try Conv2d(config.in_channels, channels[0], kernelSize: IntPair(config.conv_in_kernel),
                             padding: IntPair((config.conv_in_kernel - 1) / 2))
        time_embedding = try TimestepEmbedding(inChannels: channels[0], timeEmbedDim: timeEmbedDim,
                                               act: config.act_fn, postAct: config.timestep_post_act)
        time_embed_act = try config.time_embedding_act_fn.map(activation(named:))

        var output = channels[0]
        down_blocks = try config.down_block_types.enumerated().map { i, type in
            let input = output
            output = channels[i]
            let block = blockConfig(layers: layers[i], input: input, output: output, last: i == n - 1,
                                    heads: heads[i], crossDim: crossDims[i], transformerLayers: transformerLayers[i])
            switch type {
            case "CrossAttnDownBlock2D": return try CrossAttnDownBlock2D(block)
            case "DownBlock2D": return try DownBlock2D(block)
            default: throw TorchError("down block type '\(type)' is not supported (CrossAttnDownBlock2D, DownBlock2D)")
            }
        }

        switch config.mid_block_type {
        case nil: mid_block = nil
        case "UNetMidBlock2DCrossAttn":
            mid_block = try UNetMidBlock2DCrossAttn(blockConfig(
                layers: 1, input: channels[n - 1], output: channels[n - 1], last: true, heads: heads[n - 1],
                crossDim: crossDims[n - 1], transformerLayers: transformerLayers[n - 1],
                scale: config.mid_block_scale_factor))
        case let type?: throw TorchError("mid block type '\(type)' is not supported (UNetMidBlock2DCrossAttn)")
        }

        let reversedChannels = Array(channels.reversed())
        output = reversedChannels[0]
        up_blocks = try config.up_block_types.enumerated().map { i, type in
            let previous = output
            output = reversedChannels[i]
            let input = reversedChannels[min(i + 1, n - 1)]
            let r = n - 1 - i
            let block = blockConfig(layers: layers[r] + 1, input: input, output: output, previous: previous,
                                    last: i == n - 1, heads: heads[r], crossDim: crossDims[r],
                                    transformerLayers: transformerLayers[r])
            switch type {
            case "CrossAttnUpBlock2D": return try CrossAttnUpBlock2D(block)
            case "UpBlock2D": return try UpBlock2D(block)
            default: throw TorchError("up block type '\(type)' is not supported (CrossAttnUpBlock2D, UpBlock2D)")
            }
        }

        conv_norm_out = try GroupNorm(groups: config.norm_num_groups, channels: channels[0], eps: config.norm_eps)
        conv_act = try activation(named: config.act_fn)
        conv_out = try Conv2d(channels[0], config.out_channels, kernelSize: IntPair(config.conv_out_kernel),
                              padding: IntPair((config.conv_out_kernel - 1) / 2))
        super.init()
    }

    /// Builds the UNet from a diffusers folder (`unet/` with `config.json` and weights) and loads
    /// its weights strictly, in eval mode; `dtype` converts (fp16/bf16 on request).
    public static func load(from directory: URL, dtype: DType? = nil, device: Device = .cpu) throws
        -> UNet2DConditionModel {
        let config = try ConfigFile.decode(UNet2DConditionConfig.self, from: directory.appendingPathComponent("config.json"))
        let model = try UNet2DConditionModel(config: config)
        try loadWeights(into: model, from: directory, dtype: dtype, device: device)
        model.eval()
        return model
    }

    /// Predicts the noise (or v) for `sample` `[B, C, h, w]` at `timestep` (a scalar, `[1]` or `[B]`,
    /// any numeric dtype) given `encoderHiddenStates` `[B, S, cross_attention_dim]`. `hooks` run
    /// at MVDiffusion's insertion points; nil is plain Stable Diffusion.
    public func callAsFunction(_ sample: Tensor, timestep: Tensor, encoderHiddenStates context: Tensor,
                               hooks: (any UNetHooks)? = nil) throws -> Tensor {
        guard sample.rank == 4 else { throw TorchError("UNet: sample must be [B, C, h, w], got \(sample.shape)") }
        let batch = sample.shape[0]
        // Inputs that the upsamplers' doubling would not bring back to the skips' sizes get explicit sizes.
        let overallFactor = 1 << up_blocks.filter { $0.upsamplers != nil }.count
        let explicitUpsampleSizes = sample.shape.suffix(2).contains { $0 % overallFactor != 0 }

        let x = config.center_input_sample ? try sample * 2 - 1 : sample
        let timesteps = try (timestep.rank == 0 ? timestep.unsqueeze(0) : timestep)
            .to(device: sample.device).expand([batch])
        let sinusoid = try timestepEmbedding(timesteps, dim: config.block_out_channels[0],
                                             flipSinToCos: config.flip_sin_to_cos,
                                             downscaleFreqShift: config.freq_shift).to(dtype: sample.dtype)
        var emb = try time_embedding(sinusoid)
        if let time_embed_act { emb = try time_embed_act(emb) }

        var h = try conv_in(x)
        var skips = [h]
        for (i, block) in down_blocks.enumerated() {
            let hook: BlockHook? = hooks.map { hooks in { try hooks.afterDownBlock(i, $0) } }
            let (out, blockSkips) = try block(h, temb: emb, context: context, beforeDownsample: hook)
            h = out
            skips += blockSkips
        }
        if let mid_block {
            h = try mid_block(h, temb: emb, context: context,
                              afterFirstResnet: hooks.map { hooks in { try hooks.afterMidResnet($0) } })
        }
        for (i, block) in up_blocks.enumerated() {
            let count = block.resnets.count
            guard skips.count >= count else { throw TorchError("UNet: up block \(i) has no skip tensors left") }
            let blockSkips = Array(skips.suffix(count))
            skips.removeLast(count)
            let upsampleSize = explicitUpsampleSizes && i < up_blocks.count - 1
                ? skips.last.map { IntPair($0.shape[2], $0.shape[3]) } : nil
            let hook: BlockHook? = hooks.map { hooks in { try hooks.afterUpBlock(i, $0) } }
            h = try block(h, skips: blockSkips, temb: emb, context: context, upsampleSize: upsampleSize,
                          beforeUpsample: hook)
        }
        return try conv_out(conv_act(conv_norm_out(h)))
    }

    /// A timestep given as a number, as diffusers makes one from a Python float (float64).
    public func callAsFunction(_ sample: Tensor, timestep: Double, encoderHiddenStates context: Tensor,
                               hooks: (any UNetHooks)? = nil) throws -> Tensor {
        try callAsFunction(sample, timestep: Tensor([timestep]), encoderHiddenStates: context, hooks: hooks)
    }
}
