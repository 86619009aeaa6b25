import Torch

/// How a `ResnetBlock2D` is built (diffusers `ResnetBlock2D.__init__`, "default" time-embedding norm).
public struct ResnetBlock2DConfig: Sendable {
    /// `out_channels`; nil: the input channels.
    public var out_channels: Int? = nil
    /// `temb_channels` (512); nil: no time embedding (the VAE's blocks).
    public var temb_channels: Int? = 512
    /// `groups` of `norm1` (32).
    public var groups = 32
    /// `groups_out` of `norm2`; nil: `groups`.
    public var groups_out: Int? = nil
    /// `eps` of both norms (1e-6; the UNet passes its `norm_eps`, 1e-5 in SD).
    public var eps = 1e-6
    /// `dropout` before `conv2` (0).
    public var dropout = 0.0
    /// `non_linearity` ("swish", i.e. SiLU).
    public var non_linearity = "swish"
    /// `output_scale_factor`: the sum is divided by it (1).
    public var output_scale_factor = 1.0
    /// `use_in_shortcut`; nil: a 1×1 `conv_shortcut` exactly when the channel count changes.
    public var use_in_shortcut: Bool? = nil

    public init(out_channels: Int? = nil, temb_channels: Int? = 512, groups: Int = 32, groups_out: Int? = nil,
                eps: Double = 1e-6, dropout: Double = 0, non_linearity: String = "swish",
                output_scale_factor: Double = 1, use_in_shortcut: Bool? = nil) {
        self.out_channels = out_channels
        self.temb_channels = temb_channels
        self.groups = groups
        self.groups_out = groups_out
        self.eps = eps
        self.dropout = dropout
        self.non_linearity = non_linearity
        self.output_scale_factor = output_scale_factor
        self.use_in_shortcut = use_in_shortcut
    }
}

/// The residual block of the UNet and the VAE: `[B, Cin, H, W]` (+ time embedding `[B, T]`) → `[B, Cout, H, W]`.
public final class ResnetBlock2D: Module {
    public let norm1: GroupNorm
    public let conv1: Conv2d
    public let time_emb_proj: Linear?
    public let norm2: GroupNorm
    public let dropout: Dropout
    public let conv2: Conv2d
    public let conv_shortcut: Conv2d?
    let nonlinearity: Activation
    let output_scale_factor: Double

    public init(inChannels: Int, _ config: ResnetBlock2DConfig = .init()) throws {
        let outChannels = config.out_channels ?? inChannels
        norm1 = try GroupNorm(groups: config.groups, channels: inChannels, eps: config.eps)
        conv1 = try Conv2d(inChannels, outChannels, kernelSize: 3, padding: 1)
        time_emb_proj = try config.temb_channels.map { try Linear($0, outChannels) }
        norm2 = try GroupNorm(groups: config.groups_out ?? config.groups, channels: outChannels, eps: config.eps)
        dropout = try Dropout(config.dropout)
        conv2 = try Conv2d(outChannels, outChannels, kernelSize: 3, padding: 1)
        conv_shortcut = config.use_in_shortcut ?? (inChannels != outChannels)
            ? try Conv2d(inChannels, outChannels, kernelSize: 1) : nil
        nonlinearity = try activation(named: config.non_linearity)
        output_scale_factor = config.output_scale_factor
        super.init()
    }

    public func callAsFunction(_ x: Tensor, temb: Tensor?) throws -> Tensor {
        var h = try conv1(nonlinearity(norm1(x)))
        if let temb, let time_emb_proj {
            h = try h + time_emb_proj(nonlinearity(temb)).unsqueeze(-1).unsqueeze(-1)
        }
        h = try conv2(dropout(nonlinearity(norm2(h))))
        let shortcut = try conv_shortcut.map { try $0(x) } ?? x
        let sum = try shortcut + h
        // Dividing by 1 changes nothing but costs a pass over the activations.
        return output_scale_factor == 1 ? sum : try sum / output_scale_factor
    }
}
