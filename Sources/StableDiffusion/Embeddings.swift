import Foundation
import Torch

// Timestep embeddings of the UNet (diffusers `embeddings.py`): the sinusoidal projection of the
// diffusion step and the two-layer MLP that turns it into the vector every resnet block adds.

/// Sinusoidal embeddings of (possibly fractional) timesteps `[N]` → `[N, dim]` float32, as
/// diffusers' `get_timestep_embedding`: frequencies exp(−ln(max_period)·i / (dim/2 − shift)),
/// `[sin | cos]`, swapped to `[cos | sin]` with `flipSinToCos`, zero-padded when `dim` is odd.
/// SD1/SD2 use `flipSinToCos: true, downscaleFreqShift: 0`.
public func timestepEmbedding(_ timesteps: Tensor, dim: Int, flipSinToCos: Bool = false,
                              downscaleFreqShift: Double = 1, scale: Double = 1,
                              maxPeriod: Double = 10000) throws -> Tensor {
    guard timesteps.rank == 1 else {
        throw TorchError("timestepEmbedding: timesteps must be 1-D, got shape \(timesteps.shape)")
    }
    let half = dim / 2
    // The same operation order as diffusers, so the float32 roundings agree.
    var exponent = try Tensor.arange(0, Double(half), dtype: .float32, device: timesteps.device)
        * -Foundation.log(maxPeriod)
    exponent = try exponent / (Double(half) - downscaleFreqShift)
    var emb = try timesteps.unsqueeze(1).to(dtype: .float32) * exponent.exp().unsqueeze(0)
    if scale != 1 { emb = try emb * scale }
    emb = try Tensor.cat([emb.sin(), emb.cos()], dim: -1)
    if flipSinToCos {
        emb = try Tensor.cat([emb.slice(dim: 1, start: half), emb.slice(dim: 1, end: half)], dim: -1)
    }
    if dim % 2 == 1 { emb = try F.pad(emb, [0, 1, 0, 0]) }
    return emb
}

/// `TimestepEmbedding`: `linear_1` → act → `linear_2` (→ optional post-act); `[N, in]` → `[N, out]`.
public final class TimestepEmbedding: Module, UnaryLayer {
    public let linear_1: Linear
    public let linear_2: Linear
    let act: Activation
    let post_act: Activation?

    /// - Parameters: `inChannels` (the sinusoidal width, `block_out_channels[0]`), `timeEmbedDim`
    ///   (4× that by default in the UNet), `act` (`act_fn`, "silu"), `outDim` (nil: `timeEmbedDim`),
    ///   `postAct` (`timestep_post_act`, nil).
    public init(inChannels: Int, timeEmbedDim: Int, act: String = "silu", outDim: Int? = nil,
                postAct: String? = nil) throws {
        linear_1 = try Linear(inChannels, timeEmbedDim)
        self.act = try activation(named: act)
        linear_2 = try Linear(timeEmbedDim, outDim ?? timeEmbedDim)
        post_act = try postAct.map(activation(named:))
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let y = try linear_2(act(linear_1(x)))
        return try post_act.map { try $0(y) } ?? y
    }
}

/// diffusers' `get_activation`: the activation functions a diffusers config may name.
func activation(named name: String) throws -> Activation {
    switch name {
    case "silu", "swish": return .silu
    case "gelu": return .gelu
    case "relu": return .relu
    default: throw TorchError("unsupported activation function '\(name)' (expected silu, swish, gelu or relu)")
    }
}
