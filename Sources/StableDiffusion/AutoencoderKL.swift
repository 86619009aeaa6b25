import Foundation
import Torch

/// `vae/config.json` of a diffusers `AutoencoderKL`; field names and defaults are diffusers 0.27's
/// (SD's VAE: block_out_channels [128, 256, 512, 512], layers_per_block 2, sample_size 512 or 768).
public struct AutoencoderKLConfig: Decodable, Sendable, Equatable {
    /// `in_channels`, `out_channels` (3): image channels.
    public var in_channels = 3
    public var out_channels = 3
    /// `down_block_types` (["DownEncoderBlock2D"]), `up_block_types` (["UpDecoderBlock2D"]).
    public var down_block_types = ["DownEncoderBlock2D"]
    public var up_block_types = ["UpDecoderBlock2D"]
    /// `block_out_channels` ([64]).
    public var block_out_channels = [64]
    /// `layers_per_block` (1): resnets per encoder block; decoder blocks have one more.
    public var layers_per_block = 1
    /// `act_fn` ("silu").
    public var act_fn = "silu"
    /// `latent_channels` (4).
    public var latent_channels = 4
    /// `norm_num_groups` (32).
    public var norm_num_groups = 32
    /// `sample_size` (32): the image size the model was trained at; informative.
    public var sample_size = 32
    /// `scaling_factor` (0.18215): latents are multiplied by it after encoding and divided before decoding.
    public var scaling_factor = 0.18215
    /// `force_upcast` (true): pipelines run this VAE in float32 even when the rest is half precision.
    public var force_upcast = true

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: ConfigKey.self)
        let d = AutoencoderKLConfig()
        in_channels = try c.value("in_channels", default: d.in_channels)
        out_channels = try c.value("out_channels", default: d.out_channels)
        down_block_types = try c.value("down_block_types", default: d.down_block_types)
        up_block_types = try c.value("up_block_types", default: d.up_block_types)
        block_out_channels = try c.value("block_out_channels", default: d.block_out_channels)
        layers_per_block = try c.value("layers_per_block", default: d.layers_per_block)
        act_fn = try c.value("act_fn", default: d.act_fn)
        latent_channels = try c.value("latent_channels", default: d.latent_channels)
        norm_num_groups = try c.value("norm_num_groups", default: d.norm_num_groups)
        sample_size = try c.value("sample_size", default: d.sample_size)
        scaling_factor = try c.value("scaling_factor", default: d.scaling_factor)
        force_upcast = try c.value("force_upcast", default: d.force_upcast)
        for (key, types, supported) in [("down_block_types", down_block_types, "DownEncoderBlock2D"),
                                        ("up_block_types", up_block_types, "UpDecoderBlock2D")] {
            if let other = types.first(where: { $0 != supported }) {
                throw DecodingError.dataCorruptedError(forKey: ConfigKey(stringValue: key), in: c,
                                                       debugDescription: "block type '\(other)' is not supported (\(supported))")
            }
        }
    }
}

/// Resnets (no time embedding), then a stride-2 downsampler with the asymmetric (0, 1, 0, 1) pad.
public final class DownEncoderBlock2D: Module {
    public let resnets: [ResnetBlock2D]
    public let downsamplers: [Downsample2D]?

    public init(inChannels: Int, outChannels: Int, layers: Int, groups: Int, act: String, addDownsample: Bool) throws {
        resnets = try (0..<layers).map {
            try ResnetBlock2D(inChannels: $0 == 0 ? inChannels : outChannels,
                              .init(out_channels: outChannels, temb_channels: nil, groups: groups, eps: 1e-6,
                                    non_linearity: act))
        }
        downsamplers = addDownsample ? [try Downsample2D(channels: outChannels, padding: 0)] : nil
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var h = x
        for resnet in resnets { h = try resnet(h, temb: nil) }
        for downsampler in downsamplers ?? [] { h = try downsampler(h) }
        return h
    }
}

/// Resnets (no time embedding), then nearest ×2 + conv.
public final class UpDecoderBlock2D: Module {
    public let resnets: [ResnetBlock2D]
    public let upsamplers: [Upsample2D]?

    public init(inChannels: Int, outChannels: Int, layers: Int, groups: Int, act: String, addUpsample: Bool) throws {
        resnets = try (0..<layers).map {
            try ResnetBlock2D(inChannels: $0 == 0 ? inChannels : outChannels,
                              .init(out_channels: outChannels, temb_channels: nil, groups: groups, eps: 1e-6,
                                    non_linearity: act))
        }
        upsamplers = addUpsample ? [try Upsample2D(channels: outChannels)] : nil
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var h = x
        for resnet in resnets { h = try resnet(h, temb: nil) }
        for upsampler in upsamplers ?? [] { h = try upsampler(h) }
        return h
    }
}

/// The VAE's middle: resnet → single-head self-attention over all pixels (with its own
/// `group_norm`, residual, float32 softmax) → resnet, at constant width.
public final class UNetMidBlock2D: Module {
    public let attentions: [Attention]
    public let resnets: [ResnetBlock2D]

    public init(channels: Int, groups: Int, act: String) throws {
        let resnet = { try ResnetBlock2D(inChannels: channels, .init(temb_channels: nil, groups: groups, eps: 1e-6,
                                                                      non_linearity: act)) }
        resnets = [try resnet(), try resnet()]
        attentions = [try Attention(queryDim: channels, heads: 1, dimHead: channels, bias: true, upcastSoftmax: true,
                                    normNumGroups: groups, eps: 1e-6, residualConnection: true)]
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var h = try resnets[0](x, temb: nil)
        for (attention, resnet) in zip(attentions, resnets.dropFirst()) {
            h = try resnet(attention(h), temb: nil)
        }
        return h
    }
}

/// Image `[B, 3, H, W]` in [−1, 1] → `[B, 2·latent, H/f, W/f]` moments (f = 2^(blocks − 1)).
/// diffusers `Encoder` (named apart from Swift's `Encoder` protocol).
public final class VAEEncoder: Module {
    public let conv_in: Conv2d
    public let down_blocks: [DownEncoderBlock2D]
    public let mid_block: UNetMidBlock2D
    public let conv_norm_out: GroupNorm
    public let conv_out: Conv2d
    let conv_act: Activation

    public init(_ config: AutoencoderKLConfig) throws {
        let channels = config.block_out_channels
        conv_in = try Conv2d(config.in_channels, channels[0], kernelSize: 3, padding: 1)
        down_blocks = try channels.indices.map { i in
            try DownEncoderBlock2D(inChannels: i == 0 ? channels[0] : channels[i - 1], outChannels: channels[i],
                                   layers: config.layers_per_block, groups: config.norm_num_groups,
                                   act: config.act_fn, addDownsample: i < channels.count - 1)
        }
        mid_block = try UNetMidBlock2D(channels: channels[channels.count - 1], groups: config.norm_num_groups,
                                       act: config.act_fn)
        conv_norm_out = try GroupNorm(groups: config.norm_num_groups, channels: channels[channels.count - 1], eps: 1e-6)
        conv_act = try activation(named: config.act_fn)
        conv_out = try Conv2d(channels[channels.count - 1], 2 * config.latent_channels, kernelSize: 3, padding: 1)
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var h = try conv_in(x)
        for block in down_blocks { h = try block(h) }
        return try conv_out(conv_act(conv_norm_out(mid_block(h))))
    }
}

/// Latents `[B, latent, h, w]` → image `[B, 3, h·f, w·f]` (about [−1, 1]).
/// diffusers `Decoder` (named apart from Swift's `Decoder` protocol).
public final class VAEDecoder: Module {
    public let conv_in: Conv2d
    public let mid_block: UNetMidBlock2D
    public let up_blocks: [UpDecoderBlock2D]
    public let conv_norm_out: GroupNorm
    public let conv_out: Conv2d
    let conv_act: Activation

    public init(_ config: AutoencoderKLConfig) throws {
        let reversed = Array(config.block_out_channels.reversed())
        conv_in = try Conv2d(config.latent_channels, reversed[0], kernelSize: 3, padding: 1)
        mid_block = try UNetMidBlock2D(channels: reversed[0], groups: config.norm_num_groups, act: config.act_fn)
        up_blocks = try reversed.indices.map { i in
            try UpDecoderBlock2D(inChannels: i == 0 ? reversed[0] : reversed[i - 1], outChannels: reversed[i],
                                 layers: config.layers_per_block + 1, groups: config.norm_num_groups,
                                 act: config.act_fn, addUpsample: i < reversed.count - 1)
        }
        conv_norm_out = try GroupNorm(groups: config.norm_num_groups, channels: reversed[reversed.count - 1], eps: 1e-6)
        conv_act = try activation(named: config.act_fn)
        conv_out = try Conv2d(reversed[reversed.count - 1], config.out_channels, kernelSize: 3, padding: 1)
        super.init()
    }

    public func callAsFunction(_ z: Tensor) throws -> Tensor {
        var h = try mid_block(conv_in(z))
        for block in up_blocks { h = try block(h) }
        return try conv_out(conv_act(conv_norm_out(h)))
    }
}

/// The encoder's posterior: a Gaussian per latent element, `[B, latent, h, w]` each.
public struct DiagonalGaussianDistribution {
    public let mean: Tensor
    /// Clamped to [−30, 20] as diffusers does, so exp stays finite.
    public let logvar: Tensor
    public let std: Tensor

    /// Splits the encoder's moments `[B, 2·latent, h, w]` into mean and log-variance.
    public init(moments: Tensor) throws {
        let halves = try moments.chunk(2, dim: 1)
        mean = halves[0]
        logvar = try halves[1].clamp(min: -30, max: 20)
        std = try (logvar * 0.5).exp()
    }

    /// mean + std · ε with ε ~ N(0, 1) drawn from `generator` (LibTorch's global one when nil) on
    /// the generator's device, as diffusers' `randn_tensor`.
    public func sample(generator: Generator? = nil) throws -> Tensor {
        let noise = try Tensor.randn(mean.shape, dtype: mean.dtype, device: generator?.device ?? mean.device,
                                     generator: generator).to(device: mean.device)
        return try mean + std * noise
    }

    /// The most likely latents (the mean).
    public func mode() -> Tensor { mean }
}

/// Stable Diffusion's VAE: `encode` images to a latent Gaussian, `decode` latents to images.
/// Latents enter the UNet multiplied by `scalingFactor` and leave it divided by it.
public final class AutoencoderKL: Module {
    public let config: AutoencoderKLConfig
    public let encoder: VAEEncoder
    public let decoder: VAEDecoder
    public let quant_conv: Conv2d
    public let post_quant_conv: Conv2d

    public var scalingFactor: Double { config.scaling_factor }

    public init(config: AutoencoderKLConfig = .init()) throws {
        guard !config.block_out_channels.isEmpty else { throw TorchError("AutoencoderKL: block_out_channels is empty") }
        self.config = config
        encoder = try VAEEncoder(config)
        decoder = try VAEDecoder(config)
        quant_conv = try Conv2d(2 * config.latent_channels, 2 * config.latent_channels, kernelSize: 1)
        post_quant_conv = try Conv2d(config.latent_channels, config.latent_channels, kernelSize: 1)
        super.init()
    }

    /// Builds the VAE from a diffusers folder (`vae/`) and loads its weights strictly, in eval mode.
    /// Checkpoints that name the mid-block attention `query/key/value/proj_attn` (diffusers before
    /// 0.14) load as well.
    public static func load(from directory: URL, dtype: DType? = nil, device: Device = .cpu) throws -> AutoencoderKL {
        let config = try ConfigFile.decode(AutoencoderKLConfig.self, from: directory.appendingPathComponent("config.json"))
        let model = try AutoencoderKL(config: config)
        try loadWeights(into: model, from: directory, dtype: dtype, device: device,
                        rename: AutoencoderKL.renamingDeprecatedAttention)
        model.eval()
        return model
    }

    /// image `[B, 3, H, W]` in [−1, 1] → the latent distribution (before scaling).
    public func encode(_ image: Tensor) throws -> DiagonalGaussianDistribution {
        try DiagonalGaussianDistribution(moments: quant_conv(encoder(image)))
    }

    /// latents `[B, latent, h, w]` (already divided by `scalingFactor`) → image `[B, 3, H, W]`.
    public func decode(_ latents: Tensor) throws -> Tensor {
        try decoder(post_quant_conv(latents))
    }

    /// images `[B, 3, H, W]` in [−1, 1] → their reconstructions in [−1, 1] (unclamped), each
    /// encoded to its posterior mean and decoded without gradients: what a latent model that drew
    /// exactly these images would show.
    public func reconstruct(_ images: Tensor) throws -> Tensor {
        try withNoGrad { try decode(encode(images).mode()) }
    }

    /// The key diffusers ≥ 0.14 uses for a key of the old attention layout, the rename diffusers
    /// applies on load (`_convert_deprecated_attention_blocks`): under `{encoder,decoder}.mid_block.attentions.N.`,
    /// `query`/`key`/`value`/`proj_attn` become `to_q`/`to_k`/`to_v`/`to_out.0`. Other keys are unchanged.
    public static func renamingDeprecatedAttention(_ key: String) -> String {
        var parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 6, ["encoder", "decoder"].contains(parts[0]), parts[1] == "mid_block",
              parts[2] == "attentions" else { return key }
        let renamed = ["query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"]
        guard let new = renamed[parts[4]] else { return key }
        parts[4] = new
        return parts.joined(separator: ".")
    }
}
