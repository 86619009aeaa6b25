import Torch

// The UNet's blocks (diffusers `unets/unet_2d_blocks.py`), SD1/SD2 kinds only. Every block takes
// an optional closure at the point where MVDiffusion inserts its correspondence-aware attention:
// after the resnet/attention pairs and before the down- or upsampler, after the mid block's first
// resnet. `UNet2DConditionModel` feeds them from `UNetHooks`.

/// A feature-map transformation run inside a block (a hook); see `UNetHooks`.
public typealias BlockHook = (Tensor) throws -> Tensor

/// The arguments the UNet passes to each block (diffusers' `get_down_block`, `get_mid_block`,
/// `get_up_block`), with the UNet config's names.
public struct UNetBlockConfig: Sendable {
    /// Resnets in the block (`layers_per_block`, + 1 in up blocks).
    public var num_layers: Int
    public var in_channels: Int
    public var out_channels: Int
    /// Up blocks: the channels coming from the block below.
    public var prev_output_channel: Int
    public var temb_channels: Int
    public var resnet_eps: Double
    public var resnet_act_fn: String
    public var resnet_groups: Int
    public var dropout: Double
    /// A downsampler (down blocks) or upsampler (up blocks) at the end: all blocks but the last.
    public var add_sampler: Bool
    public var downsample_padding: Int
    /// Cross-attention blocks only.
    public var cross_attention_dim: Int
    /// Heads of every transformer in the block (diffusers' `num_attention_heads`; the head width
    /// is `out_channels / num_attention_heads`).
    public var num_attention_heads: Int
    public var transformer_layers_per_block: Int
    public var use_linear_projection: Bool
    public var upcast_attention: Bool
    /// Mid block: `mid_block_scale_factor`.
    public var output_scale_factor: Double

    public init(num_layers: Int, in_channels: Int, out_channels: Int, prev_output_channel: Int = 0,
                temb_channels: Int, resnet_eps: Double = 1e-5, resnet_act_fn: String = "silu",
                resnet_groups: Int = 32, dropout: Double = 0, add_sampler: Bool = true, downsample_padding: Int = 1,
                cross_attention_dim: Int = 1280, num_attention_heads: Int = 8, transformer_layers_per_block: Int = 1,
                use_linear_projection: Bool = false, upcast_attention: Bool = false, output_scale_factor: Double = 1) {
        self.num_layers = num_layers
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.prev_output_channel = prev_output_channel
        self.temb_channels = temb_channels
        self.resnet_eps = resnet_eps
        self.resnet_act_fn = resnet_act_fn
        self.resnet_groups = resnet_groups
        self.dropout = dropout
        self.add_sampler = add_sampler
        self.downsample_padding = downsample_padding
        self.cross_attention_dim = cross_attention_dim
        self.num_attention_heads = num_attention_heads
        self.transformer_layers_per_block = transformer_layers_per_block
        self.use_linear_projection = use_linear_projection
        self.upcast_attention = upcast_attention
        self.output_scale_factor = output_scale_factor
    }

    func resnet(_ inChannels: Int, _ outChannels: Int) throws -> ResnetBlock2D {
        try ResnetBlock2D(inChannels: inChannels, .init(
            out_channels: outChannels, temb_channels: temb_channels, groups: resnet_groups, eps: resnet_eps,
            dropout: dropout, non_linearity: resnet_act_fn, output_scale_factor: output_scale_factor))
    }

    /// A down block's resnets: the first takes `in_channels`, the rest `out_channels`.
    func downResnets() throws -> [ResnetBlock2D] {
        try (0..<num_layers).map { try resnet($0 == 0 ? in_channels : out_channels, out_channels) }
    }

    /// An up block's resnets: each takes the path's channels plus a skip's (the last skip is the
    /// down block's input, `in_channels` wide).
    func upResnets() throws -> [ResnetBlock2D] {
        try (0..<num_layers).map { i in
            let skipChannels = i == num_layers - 1 ? in_channels : out_channels
            let inputChannels = i == 0 ? prev_output_channel : out_channels
            return try resnet(inputChannels + skipChannels, out_channels)
        }
    }

    /// One transformer per resnet (cross-attention blocks).
    func transformers() throws -> [Transformer2DModel] { try (0..<num_layers).map { _ in try transformer(out_channels) } }

    func downsamplers() throws -> [Downsample2D]? {
        add_sampler ? [try Downsample2D(channels: out_channels, padding: downsample_padding)] : nil
    }

    func upsamplers() throws -> [Upsample2D]? { add_sampler ? [try Upsample2D(channels: out_channels)] : nil }

    func transformer(_ channels: Int) throws -> Transformer2DModel {
        guard num_attention_heads > 0, channels % num_attention_heads == 0 else {
            throw TorchError("\(channels) channels cannot be split into \(num_attention_heads) attention heads")
        }
        return try Transformer2DModel(
            heads: num_attention_heads, dimHead: channels / num_attention_heads, inChannels: channels,
            numLayers: transformer_layers_per_block, crossAttentionDim: cross_attention_dim,
            normNumGroups: resnet_groups, useLinearProjection: use_linear_projection,
            upcastAttention: upcast_attention, dropout: dropout)
    }
}

/// A block of the UNet's contracting path.
public protocol UNetDownBlock: Module {
    var resnets: [ResnetBlock2D] { get }
    var downsamplers: [Downsample2D]? { get }
    /// Recompute each resnet and attention in the backward pass instead of keeping its activations.
    var gradientCheckpointing: Bool { get set }
    /// `[B, Cin, H, W]` → the output `[B, Cout, H/2, W/2]` (H, W without downsampler) and the skip
    /// tensors for the up path: one per resnet, then the downsampler's output. `beforeDownsample`
    /// runs after the skips are taken and before the downsampler.
    func callAsFunction(_ x: Tensor, temb: Tensor, context: Tensor,
                        beforeDownsample: BlockHook?) throws -> (Tensor, skips: [Tensor])
}

/// A block of the UNet's expanding path.
public protocol UNetUpBlock: Module {
    var resnets: [ResnetBlock2D] { get }
    var upsamplers: [Upsample2D]? { get }
    var gradientCheckpointing: Bool { get set }
    /// `[B, Cprev, H, W]` with the skips of the matching down block (the last one is used first)
    /// → `[B, Cout, 2H, 2W]` (or `upsampleSize`; H, W without upsampler). `beforeUpsample` runs
    /// after the resnets/attentions and before the upsampler.
    func callAsFunction(_ x: Tensor, skips: [Tensor], temb: Tensor, context: Tensor, upsampleSize: IntPair?,
                        beforeUpsample: BlockHook?) throws -> Tensor
}

/// Resnet + spatial transformer pairs, then a stride-2 downsampler.
public final class CrossAttnDownBlock2D: Module, UNetDownBlock {
    public let attentions: [Transformer2DModel]
    public let resnets: [ResnetBlock2D]
    public let downsamplers: [Downsample2D]?
    public var gradientCheckpointing = false

    public init(_ config: UNetBlockConfig) throws {
        resnets = try config.downResnets()
        attentions = try config.transformers()
        downsamplers = try config.downsamplers()
        super.init()
    }

    public func callAsFunction(_ x: Tensor, temb: Tensor, context: Tensor,
                               beforeDownsample: BlockHook?) throws -> (Tensor, skips: [Tensor]) {
        try forward(x, temb: temb, context: context, attentions: attentions, beforeDownsample: beforeDownsample)
    }
}

/// Resnets only, then a stride-2 downsampler (SD's lowest-resolution down block has none).
public final class DownBlock2D: Module, UNetDownBlock {
    public let resnets: [ResnetBlock2D]
    public let downsamplers: [Downsample2D]?
    public var gradientCheckpointing = false

    public init(_ config: UNetBlockConfig) throws {
        resnets = try config.downResnets()
        downsamplers = try config.downsamplers()
        super.init()
    }

    public func callAsFunction(_ x: Tensor, temb: Tensor, context: Tensor,
                               beforeDownsample: BlockHook?) throws -> (Tensor, skips: [Tensor]) {
        try forward(x, temb: temb, context: context, attentions: nil, beforeDownsample: beforeDownsample)
    }
}

/// resnet → (spatial transformer → resnet) × `num_layers` at the lowest resolution.
public final class UNetMidBlock2DCrossAttn: Module {
    public let attentions: [Transformer2DModel]
    public let resnets: [ResnetBlock2D]
    public var gradientCheckpointing = false

    /// Uses `in_channels` (= `out_channels`) and `num_layers` transformer/resnet pairs (1 in SD).
    public init(_ config: UNetBlockConfig) throws {
        let channels = config.in_channels
        resnets = try (0...config.num_layers).map { _ in try config.resnet(channels, channels) }
        attentions = try (0..<config.num_layers).map { _ in try config.transformer(channels) }
        super.init()
    }

    /// `[B, C, h, w]` → `[B, C, h, w]`; `afterFirstResnet` runs before the first attention.
    public func callAsFunction(_ x: Tensor, temb: Tensor, context: Tensor,
                               afterFirstResnet: BlockHook? = nil) throws -> Tensor {
        var h = try checkpointed(gradientCheckpointing, resnets[0], [x, temb]) { try self.resnets[0]($0[0], temb: $0[1]) }
        if let afterFirstResnet { h = try afterFirstResnet(h) }
        for (attention, resnet) in zip(attentions, resnets.dropFirst()) {
            h = try checkpointed(gradientCheckpointing, attention, [h, context]) { try attention($0[0], context: $0[1]) }
            h = try checkpointed(gradientCheckpointing, resnet, [h, temb]) { try resnet($0[0], temb: $0[1]) }
        }
        return h
    }
}

/// (concat skip → resnet → spatial transformer) × `num_layers`, then nearest ×2 + conv.
public final class CrossAttnUpBlock2D: Module, UNetUpBlock {
    public let attentions: [Transformer2DModel]
    public let resnets: [ResnetBlock2D]
    public let upsamplers: [Upsample2D]?
    public var gradientCheckpointing = false

    /// `in_channels` is the width of the down block's input whose skip arrives last.
    public init(_ config: UNetBlockConfig) throws {
        resnets = try config.upResnets()
        attentions = try config.transformers()
        upsamplers = try config.upsamplers()
        super.init()
    }

    public func callAsFunction(_ x: Tensor, skips: [Tensor], temb: Tensor, context: Tensor, upsampleSize: IntPair?,
                               beforeUpsample: BlockHook?) throws -> Tensor {
        try forward(x, skips: skips, temb: temb, context: context, attentions: attentions, upsampleSize: upsampleSize,
                    beforeUpsample: beforeUpsample)
    }
}

/// (concat skip → resnet) × `num_layers`, then nearest ×2 + conv.
public final class UpBlock2D: Module, UNetUpBlock {
    public let resnets: [ResnetBlock2D]
    public let upsamplers: [Upsample2D]?
    public var gradientCheckpointing = false

    public init(_ config: UNetBlockConfig) throws {
        resnets = try config.upResnets()
        upsamplers = try config.upsamplers()
        super.init()
    }

    public func callAsFunction(_ x: Tensor, skips: [Tensor], temb: Tensor, context: Tensor, upsampleSize: IntPair?,
                               beforeUpsample: BlockHook?) throws -> Tensor {
        try forward(x, skips: skips, temb: temb, context: context, attentions: nil, upsampleSize: upsampleSize,
                    beforeUpsample: beforeUpsample)
    }
}

extension UNetDownBlock {
    /// The body of both down blocks: resnet (→ transformer, when the block has them) per layer,
    /// each output kept as a skip; the hook; the downsampler, whose output is a skip too.
    func forward(_ x: Tensor, temb: Tensor, context: Tensor, attentions: [Transformer2DModel]?,
                 beforeDownsample: BlockHook?) throws -> (Tensor, skips: [Tensor]) {
        var h = x
        var skips: [Tensor] = []
        for (i, resnet) in resnets.enumerated() {
            h = try checkpointed(gradientCheckpointing, resnet, [h, temb]) { try resnet($0[0], temb: $0[1]) }
            if let attention = attentions?[i] {
                h = try checkpointed(gradientCheckpointing, attention, [h, context]) { try attention($0[0], context: $0[1]) }
            }
            skips.append(h)
        }
        if let beforeDownsample { h = try beforeDownsample(h) }
        for downsampler in downsamplers ?? [] {
            h = try downsampler(h)
            skips.append(h)
        }
        return (h, skips)
    }
}

extension UNetUpBlock {
    /// The body of both up blocks: per layer, the last remaining skip concatenated, resnet (→
    /// transformer, when the block has them); the hook; the upsampler.
    func forward(_ x: Tensor, skips: [Tensor], temb: Tensor, context: Tensor, attentions: [Transformer2DModel]?,
                 upsampleSize: IntPair?, beforeUpsample: BlockHook?) throws -> Tensor {
        var h = x
        var skips = skips
        for (i, resnet) in resnets.enumerated() {
            guard let skip = skips.popLast() else {
                throw TorchError("\(type(of: self)) with \(resnets.count) resnets was given fewer skip tensors")
            }
            h = try Tensor.cat([h, skip], dim: 1)
            h = try checkpointed(gradientCheckpointing, resnet, [h, temb]) { try resnet($0[0], temb: $0[1]) }
            if let attention = attentions?[i] {
                h = try checkpointed(gradientCheckpointing, attention, [h, context]) { try attention($0[0], context: $0[1]) }
            }
        }
        if let beforeUpsample { h = try beforeUpsample(h) }
        for upsampler in upsamplers ?? [] { h = try upsampler(h, outputSize: upsampleSize) }
        return h
    }
}

/// Runs `body(inputs)` under gradient checkpointing when `enabled` and gradients are being
/// recorded, naming `module`'s trainable parameters so that they get their gradients even when no
/// input needs one; otherwise runs it plainly. Independent of train/eval mode (diffusers checks
/// `training`), so a frozen UNet in eval mode under a trained adapter also saves its activations.
func checkpointed(_ enabled: Bool, _ module: Module, _ inputs: [Tensor],
                  _ body: @escaping ([Tensor]) throws -> Tensor) throws -> Tensor {
    guard enabled, Autograd.isGradEnabled else { return try body(inputs) }
    let parameters: [Tensor] = module.parameters(trainableOnly: true)
    return try Autograd.checkpoint(inputs, parameters: parameters, maxOutputs: 1) { [try body($0)] }[0]
}
