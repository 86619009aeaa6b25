import Torch

/// Halves the resolution with a stride-2 3×3 `conv`: `[B, C, H, W]` → `[B, Cout, ⌈H/2⌉, ⌈W/2⌉]`
/// (diffusers `Downsample2D(use_conv=True, name="op")`).
///
/// `padding` 1 is the UNet's; the VAE encoder uses `padding: 0`, for which diffusers pads only the
/// right and bottom edge by one pixel (0, 1, 0, 1) — the layout of the original LDM checkpoints.
public final class Downsample2D: Module, UnaryLayer {
    public let conv: Conv2d
    let asymmetricPad: Bool

    public init(channels: Int, outChannels: Int? = nil, padding: Int = 1) throws {
        conv = try Conv2d(channels, outChannels ?? channels, kernelSize: 3, stride: 2, padding: IntPair(padding))
        asymmetricPad = padding == 0
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try conv(asymmetricPad ? F.pad(x, [0, 1, 0, 1]) : x)
    }
}

/// Doubles the resolution by nearest-neighbour repetition, then a 3×3 `conv`:
/// `[B, C, H, W]` → `[B, Cout, 2H, 2W]` (diffusers `Upsample2D(use_conv=True)`).
public final class Upsample2D: Module, UnaryLayer {
    public let conv: Conv2d

    public init(channels: Int, outChannels: Int? = nil) throws {
        conv = try Conv2d(channels, outChannels ?? channels, kernelSize: 3, padding: 1)
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try callAsFunction(x, outputSize: nil) }

    /// `outputSize` replaces the doubling when the UNet's input was not a multiple of its total
    /// downsampling: the upsampled map must match the skip tensor it is concatenated with.
    public func callAsFunction(_ x: Tensor, outputSize: IntPair?) throws -> Tensor {
        // Nearest interpolation has no bfloat16 kernel in older LibTorch; diffusers goes through float32 too.
        let input = x.dtype == .bfloat16 ? try x.to(dtype: .float32) : x
        var h = try outputSize.map { try F.interpolate(input, size: $0, mode: .nearest) }
            ?? F.interpolate(input, scaleFactor: 2, mode: .nearest)
        if x.dtype == .bfloat16 { h = try h.to(dtype: .bfloat16) }
        return try conv(h)
    }
}
