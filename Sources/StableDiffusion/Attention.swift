import Foundation
import Torch

// Attention as diffusers builds it (`attention_processor.py`, `attention.py`,
// `transformers/transformer_2d.py`): multi-head attention with `to_q/to_k/to_v/to_out.0`, the GEGLU
// feed-forward, the transformer block of the UNet and the spatial transformer around it.

/// diffusers `Attention` (the processor without LoRA, masks or added KV projections).
/// Tokens `[B, L, query_dim]` attend to a context `[B, S, cross_attention_dim]` (themselves when
/// nil). A map `[B, C, H, W]` is attended as its H·W pixels — the VAE's mid-block attention, with
/// `group_norm` first and the input added back (`residual_connection`).
public final class Attention: Module {
    public let group_norm: GroupNorm?
    public let to_q: Linear
    public let to_k: Linear
    public let to_v: Linear
    /// `[Linear, Dropout]`, so the projection's keys are `to_out.0.*` as in diffusers.
    public let to_out: Sequential
    public let heads: Int
    /// `dim_head ** -0.5`.
    public let scale: Double
    /// `upcast_attention` (SD 2.1's UNet) and `upcast_softmax` (the VAE): the scores and softmax are
    /// computed in float32 whatever the model's dtype, which keeps fp16 from overflowing.
    public let upcast: Bool
    let residual_connection: Bool
    let rescale_output_factor: Double

    /// Arguments as diffusers' `Attention.__init__`: `query_dim`, `cross_attention_dim` (nil:
    /// self-attention), `heads` (8), `dim_head` (64), `dropout` (0), `bias` of q/k/v (false),
    /// `upcast_attention`/`upcast_softmax` (false), `out_bias` (true), `norm_num_groups` (nil: no
    /// `group_norm`), `eps` of that norm (1e-5), `residual_connection` (false),
    /// `rescale_output_factor` (1).
    public init(queryDim: Int, crossAttentionDim: Int? = nil, heads: Int = 8, dimHead: Int = 64, dropout: Double = 0,
                bias: Bool = false, upcastAttention: Bool = false, upcastSoftmax: Bool = false, outBias: Bool = true,
                normNumGroups: Int? = nil, eps: Double = 1e-5, residualConnection: Bool = false,
                rescaleOutputFactor: Double = 1) throws {
        let inner = dimHead * heads
        group_norm = try normNumGroups.map { try GroupNorm(groups: $0, channels: queryDim, eps: eps) }
        to_q = try Linear(queryDim, inner, bias: bias)
        to_k = try Linear(crossAttentionDim ?? queryDim, inner, bias: bias)
        to_v = try Linear(crossAttentionDim ?? queryDim, inner, bias: bias)
        to_out = Sequential([try Linear(inner, queryDim, bias: outBias), try Dropout(dropout)])
        self.heads = heads
        scale = pow(Double(dimHead), -0.5)
        upcast = upcastAttention || upcastSoftmax
        residual_connection = residualConnection
        rescale_output_factor = rescaleOutputFactor
        super.init()
    }

    public func callAsFunction(_ x: Tensor, context: Tensor? = nil) throws -> Tensor {
        guard x.rank == 3 || x.rank == 4, context.map({ $0.rank == 3 }) ?? true else {
            throw TorchError("Attention: expected tokens [B, L, C] or a map [B, C, H, W] and a context [B, S, D], "
                             + "got \(x.shape) and \(context.map { "\($0.shape)" } ?? "none")")
        }
        var tokens = x
        if x.rank == 4 {
            let s = x.shape
            tokens = try x.reshape([s[0], s[1], s[2] * s[3]]).transpose(1, 2)
        }
        if let group_norm { tokens = try group_norm(tokens.transpose(1, 2)).transpose(1, 2) }
        let source = context ?? tokens
        var out = try attend(to_q(tokens), to_k(source), to_v(source))
        out = try to_out(out)
        if x.rank == 4 { out = try out.transpose(-1, -2).reshape(x.shape) }
        if residual_connection { out = try out + x }
        return rescale_output_factor == 1 ? out : try out / rescale_output_factor
    }

    /// softmax(q kᵀ · scale) v per head: `[B, L, h·d]`, `[B, S, h·d]` ×2 → `[B, L, h·d]`.
    func attend(_ q: Tensor, _ k: Tensor, _ v: Tensor) throws -> Tensor {
        let dtype = q.dtype
        func split(_ t: Tensor) throws -> Tensor {
            let s = t.shape
            let t = upcast && (dtype == .float16 || dtype == .bfloat16) ? try t.to(dtype: .float32) : t
            return try t.reshape([s[0], s[1], heads, s[2] / heads]).transpose(1, 2)
        }
        // Upcasting, diffusers keeps the VAE's scores in half (only its softmax is float32) and casts
        // the probabilities back to half before the product with v; taking q, k and v to float32
        // is at most a rounding away from that, and only in half precision.
        let attended = try F.scaledDotProductAttention(split(q), split(k), split(v), scale: scale)
        let s = q.shape
        return try attended.transpose(1, 2).reshape(s).to(dtype: dtype)
    }
}

/// GELU-gated linear unit: `proj` to twice the width, then value · gelu(gate) (exact GELU).
public final class GEGLU: Module, UnaryLayer {
    public let proj: Linear

    public init(_ dimIn: Int, _ dimOut: Int) throws {
        proj = try Linear(dimIn, dimOut * 2)
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let halves = try proj(x).chunk(2, dim: -1)
        return try halves[0] * halves[1].gelu()
    }
}

/// diffusers `FeedForward` with GEGLU: `net` = [GEGLU (`net.0.proj`), Dropout, Linear (`net.2`)].
public final class FeedForward: Module, UnaryLayer {
    public let net: Sequential

    public init(dim: Int, mult: Int = 4, dropout: Double = 0) throws {
        let inner = dim * mult
        net = Sequential([try GEGLU(dim, inner), try Dropout(dropout), try Linear(inner, dim)])
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try net(x) }
}

/// The UNet's transformer layer over tokens `[B, L, dim]`: self-attention, cross-attention to the
/// text `[B, S, cross_attention_dim]`, feed-forward; each pre-LayerNorm with a residual.
public final class BasicTransformerBlock: Module {
    public let norm1: LayerNorm
    public let attn1: Attention
    public let norm2: LayerNorm
    public let attn2: Attention
    public let norm3: LayerNorm
    public let ff: FeedForward

    public init(dim: Int, heads: Int, dimHead: Int, crossAttentionDim: Int, dropout: Double = 0,
                upcastAttention: Bool = false, normEps: Double = 1e-5) throws {
        norm1 = try LayerNorm(dim, eps: normEps)
        attn1 = try Attention(queryDim: dim, heads: heads, dimHead: dimHead, dropout: dropout,
                              upcastAttention: upcastAttention)
        norm2 = try LayerNorm(dim, eps: normEps)
        attn2 = try Attention(queryDim: dim, crossAttentionDim: crossAttentionDim, heads: heads, dimHead: dimHead,
                              dropout: dropout, upcastAttention: upcastAttention)
        norm3 = try LayerNorm(dim, eps: normEps)
        ff = try FeedForward(dim: dim, dropout: dropout)
        super.init()
    }

    public func callAsFunction(_ x: Tensor, context: Tensor) throws -> Tensor {
        var h = try attn1(norm1(x)) + x
        h = try attn2(norm2(h), context: context) + h
        return try ff(norm3(h)) + h
    }
}

/// The spatial transformer between resnets: `[B, C, H, W]` → GroupNorm (eps 1e-6) → `proj_in`
/// → H·W tokens through `transformer_blocks` → `proj_out` → + input. The projections are Linear
/// layers with `use_linear_projection` (SD2) and 1×1 convolutions otherwise (SD1).
public final class Transformer2DModel: Module {
    public let norm: GroupNorm
    public let proj_in: any UnaryLayer
    public let transformer_blocks: [BasicTransformerBlock]
    public let proj_out: any UnaryLayer
    let useLinearProjection: Bool

    public init(heads: Int, dimHead: Int, inChannels: Int, numLayers: Int = 1, crossAttentionDim: Int,
                normNumGroups: Int = 32, useLinearProjection: Bool = false, upcastAttention: Bool = false,
                dropout: Double = 0) throws {
        let inner = heads * dimHead
        norm = try GroupNorm(groups: normNumGroups, channels: inChannels, eps: 1e-6)
        proj_in = useLinearProjection ? try Linear(inChannels, inner)
            : try Conv2d(inChannels, inner, kernelSize: 1)
        transformer_blocks = try (0..<numLayers).map { _ in
            try BasicTransformerBlock(dim: inner, heads: heads, dimHead: dimHead, crossAttentionDim: crossAttentionDim,
                                      dropout: dropout, upcastAttention: upcastAttention)
        }
        proj_out = useLinearProjection ? try Linear(inner, inChannels)
            : try Conv2d(inner, inChannels, kernelSize: 1)
        self.useLinearProjection = useLinearProjection
        super.init()
    }

    public func callAsFunction(_ x: Tensor, context: Tensor) throws -> Tensor {
        guard x.rank == 4 else { throw TorchError("Transformer2DModel: expected [B, C, H, W], got \(x.shape)") }
        let (b, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        func toTokens(_ t: Tensor) throws -> Tensor { try t.permute(0, 2, 3, 1).reshape([b, h * w, t.shape[1]]) }
        func toMap(_ t: Tensor) throws -> Tensor {
            try t.reshape([b, h, w, t.shape[2]]).permute(0, 3, 1, 2).contiguous()
        }
        var tokens = try useLinearProjection ? proj_in(toTokens(norm(x))) : toTokens(proj_in(norm(x)))
        for block in transformer_blocks {
            tokens = try block(tokens, context: context)
        }
        let out = try useLinearProjection ? toMap(proj_out(tokens)) : proj_out(toMap(tokens))
        return try out + x
    }
}
