import Foundation
import StableDiffusion
import Torch

/// MVDiffusion's correspondence-aware attention block (docs/models.md#caa), with its checkpoint's key
/// names (`transformer.attn1.to_q.weight`, …, `transformer.ff.net.2.bias`, `pe.freq_bands`): every
/// query cell of a view attends to 3×3 bilinear samples around its correspondences in the
/// neighbouring views, each carrying a sin/cos encoding of its displacement. Output layers start at
/// zero, so an untrained block is the identity.
public final class CAABlock: Module {
    public let transformer: CAATransformer
    public let pe: DisplacementEncoding
    public let channels: Int

    /// `peMaxFrequency` nil keeps the released frequencies (checkpoint compatible); a value gives a
    /// geometric ladder from 1 up to it, for new training (the released top frequencies, up to 2⁷⁹,
    /// are float32 noise).
    public init(channels: Int, peMaxFrequency: Double? = nil) throws {
        guard channels % 32 == 0 else { throw TorchError("CAA needs channels divisible by 32 (heads of width 32), got \(channels)") }
        self.channels = channels
        transformer = try CAATransformer(channels: channels)
        pe = try DisplacementEncoding(channels: channels, maxFrequency: peMaxFrequency)
        super.init()
    }

    /// `x`: `[B·V, C, h, w]` (views of a panorama consecutive) → same shape and dtype. The block
    /// computes in its weights' dtype: a half-precision UNet's features are converted for it,
    /// since the released top PE frequencies overflow float16.
    public func callAsFunction(_ x: Tensor, geometry g: LevelGeometry) throws -> Tensor {
        let own = transformer.norm1.weight?.dtype ?? x.dtype
        if x.dtype != own { return try self(x.to(dtype: own), geometry: g).to(dtype: x.dtype) }
        let (bv, c, h, w) = (try x.size(0), try x.size(1), try x.size(2), try x.size(3))
        let v = g.views, n = g.neighboursPerView, t = g.tokens
        guard c == channels, bv % v == 0, h == g.height, w == g.width else {
            throw TorchError("CAA block (C = \(channels)) got \(x.shape) for \(v) views of \(g.height)×\(g.width)")
        }
        let b = bv / v
        // Neighbour features sampled at the 3×3 neighbourhoods: [B·V·N, C, 9·h, w].
        let neighbours = try x.view([b, v, c, h, w]).indexSelect(dim: 1, index: g.neighbourIndex).reshape([b * v * n, c, h, w])
        let grid = try g.sampleGrid.unsqueeze(0).expand([b, v * n, 9 * h, w, 2]).reshape([b * v * n, 9 * h, w, 2])
        let sampled = try F.gridSample(neighbours, grid.to(dtype: x.dtype), mode: .bilinear, paddingMode: .zeros,
                                       alignCorners: true)
        // → tokens [B, V, h, w, N·9, C] in (neighbour, offset) order.
        let samples = try sampled.view([b, v, n, c, 9, h, w]).permute([0, 1, 5, 6, 2, 4, 3]).reshape([b, v, h, w, t, c])
        let encoding = try pe(g.peInput.to(dtype: x.dtype)).permute([0, 2, 3, 1, 4])  // [V, h, w, T, C]
        let mask = try g.mask.to(dtype: x.dtype).permute([0, 2, 3, 1]).unsqueeze(-1)   // [V, h, w, T, 1]
        let keys = try ((samples + encoding) * mask).reshape([b * v * h * w, t, c])
        let queries = try x.view([b, v, c, h, w]).permute([0, 1, 3, 4, 2]).reshape([b * v * h * w, 1, c])
        let out = try transformer(queries, context: keys, queryEncoding: pe.zeroDisplacement(dtype: x.dtype))
        return try out.view([b, v, h, w, c]).permute([0, 1, 4, 2, 3]).reshape([bv, c, h, w])
    }
}

/// Pre-LN cross-attention (one norm for query and context) with C/32 heads of width 32, then a
/// GEGLU feed-forward, each with a residual.
public final class CAATransformer: Module {
    public let attn1: CAAAttention
    public let ff: FeedForward
    public let norm1: LayerNorm
    public let norm2: LayerNorm

    init(channels: Int) throws {
        attn1 = try CAAAttention(channels: channels)
        ff = try FeedForward(dim: channels)
        norm1 = try LayerNorm(channels)
        norm2 = try LayerNorm(channels)
        super.init()
        try withNoGrad {
            guard let last = ff.net[2] as? Linear else { return }
            try last.weight.zero_()
            try last.bias?.zero_()
        }
    }

    /// `x` `[N, 1, C]` queries, `context` `[N, T, C]` → `[N, 1, C]`.
    func callAsFunction(_ x: Tensor, context: Tensor, queryEncoding: Tensor) throws -> Tensor {
        let y = try x + attn1(norm1(x + queryEncoding), context: norm1(context))
        return try y + ff(norm2(y))
    }
}

/// Multi-head attention of MVDiffusion's CAA: bias-free q/k/v, a plain `to_out` Linear (not
/// diffusers' `to_out.0`), zero-initialised.
public final class CAAAttention: Module {
    public let to_q: Linear, to_k: Linear, to_v: Linear, to_out: Linear
    let heads: Int

    init(channels: Int) throws {
        to_q = try Linear(channels, channels, bias: false)
        to_k = try Linear(channels, channels, bias: false)
        to_v = try Linear(channels, channels, bias: false)
        to_out = try Linear(channels, channels)
        heads = channels / 32
        super.init()
        try withNoGrad {
            try to_out.weight.zero_()
            try to_out.bias?.zero_()
        }
    }

    func callAsFunction(_ x: Tensor, context: Tensor) throws -> Tensor {
        let (n, c) = (try x.size(0), try x.size(2))
        func split(_ t: Tensor) throws -> Tensor { try t.view([n, -1, heads, 32]).transpose(1, 2) }
        let attended = try F.scaledDotProductAttention(split(to_q(x)), split(to_k(context)), split(to_v(context)))
        return try to_out(attended.transpose(1, 2).reshape([n, -1, c]))
    }
}

/// sin/cos encoding of 2-D displacements: [sin f u | sin f v | cos f u | cos f v] with C/4
/// frequencies `freq_bands`, stored as a buffer `[1, 1, C/4]` as in the checkpoint.
public final class DisplacementEncoding: Module {
    public let freq_bands: Buffer

    init(channels: Int, maxFrequency: Double?) throws {
        let n = channels / 4
        let exponents = try Tensor.linspace(0, Double(n - 1), count: n, dtype: .float32)
        let bands: Tensor
        if let maxFrequency {
            guard maxFrequency >= 1 else { throw TorchError("pe_max_frequency must be at least 1, got \(maxFrequency)") }
            bands = try Tensor.pow(n > 1 ? Foundation.pow(maxFrequency, 1 / Double(n - 1)) : 1, exponents)
        } else {
            // The released PosEmbedding: base 2 up to 80 frequencies, else 5000^(2.5/N), in float32.
            let base = n <= 80 ? 2.0 : Foundation.pow(5000.0, 1 / (Double(n) / 2.5))
            bands = try Tensor.pow(base, exponents)
        }
        freq_bands = try Buffer(bands.view([1, 1, n]))
        super.init()
    }

    /// `uv` `[..., 2]` → `[..., C]`.
    func callAsFunction(_ uv: Tensor) throws -> Tensor {
        let f = try freq_bands.view([-1]).to(dtype: uv.dtype)
        let u = try uv.narrow(dim: -1, start: 0, length: 1) * f
        let v = try uv.narrow(dim: -1, start: 1, length: 1) * f
        return try Tensor.cat([u.sin(), v.sin(), u.cos(), v.cos()], dim: -1)
    }

    /// The query's encoding, of zero displacement: zeros then ones, `[C]`.
    func zeroDisplacement(dtype: DType) throws -> Tensor {
        try self(Tensor.zeros([2], dtype: dtype, device: freq_bands.device))
    }
}
