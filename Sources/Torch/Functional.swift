import CTorch

/// Two integers for the height and width of a 2-D operation; a single literal sets both, so
/// `stride: 2` and `stride: [2, 1]` both read like PyTorch.
public struct IntPair: Equatable, Hashable, Sendable, ExpressibleByIntegerLiteral, ExpressibleByArrayLiteral,
    CustomStringConvertible
{
    public var height: Int
    public var width: Int

    public init(_ height: Int, _ width: Int) { self.height = height; self.width = width }
    public init(_ both: Int) { self.init(both, both) }
    public init(integerLiteral value: Int) { self.init(value) }

    /// One or two values; any other count is a programming error in a literal.
    public init(arrayLiteral elements: Int...) {
        precondition(elements.count == 1 || elements.count == 2, "IntPair takes one or two values, got \(elements)")
        self.init(elements[0], elements.count == 2 ? elements[1] : elements[0])
    }

    /// From a run-time list of one or two values.
    public init(_ values: [Int]) throws {
        guard values.count == 1 || values.count == 2 else { throw TorchError("expected one or two values, got \(values)") }
        self.init(values[0], values.count == 2 ? values[1] : values[0])
    }

    var int64: [Int64] { [Int64(height), Int64(width)] }
    public var description: String { "(\(height), \(width))" }
}

/// Functions on tensors without parameters of their own, like `torch.nn.functional`.
public enum F {
    public enum InterpolationMode: Int32, Sendable { case nearest = 0, bilinear = 1, bicubic = 2 }
    public enum GridSampleMode: Int32, Sendable { case bilinear = 0, nearest = 1, bicubic = 2 }
    public enum GridSamplePadding: Int32, Sendable { case zeros = 0, border = 1, reflection = 2 }
    public enum PadMode: Int32, Sendable { case constant = 0, reflect = 1, replicate = 2, circular = 3 }
    public enum Reduction: Int32, Sendable { case none = 0, mean = 1, sum = 2 }

    // MARK: Linear and convolution

    /// `x Wᵀ + b`: `[..., In]` × `[Out, In]` → `[..., Out]`.
    public static func linear(_ x: Tensor, _ weight: Tensor, _ bias: Tensor? = nil) throws -> Tensor {
        try .wrap(bd_linear(x.handle, weight.handle, bias?.handle), "linear \(x.shape) with weight \(weight.shape)")
    }

    /// `[B, Cin, H, W]` with weight `[Cout, Cin/groups, kH, kW]` → `[B, Cout, H', W']`.
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: IntPair = 1,
                              padding: IntPair = 0, dilation: IntPair = 1, groups: Int = 1) throws -> Tensor {
        try .wrap(bd_conv2d(x.handle, weight.handle, bias?.handle, stride.int64, padding.int64, dilation.int64,
                            Int64(groups)),
                  "conv2d \(x.shape) with weight \(weight.shape), stride \(stride), padding \(padding), groups \(groups)")
    }

    /// The gradient of `conv2d` as an op: `[B, Cin, H, W]` with weight `[Cin, Cout/groups, kH, kW]`
    /// → `[B, Cout, (H-1)·s - 2p + d·(k-1) + outputPadding + 1, …]`.
    public static func convTranspose2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: IntPair = 1,
                                       padding: IntPair = 0, outputPadding: IntPair = 0, groups: Int = 1,
                                       dilation: IntPair = 1) throws -> Tensor {
        try .wrap(bd_conv_transpose2d(x.handle, weight.handle, bias?.handle, stride.int64, padding.int64,
                                      outputPadding.int64, Int64(groups), dilation.int64),
                  "convTranspose2d \(x.shape) with weight \(weight.shape), stride \(stride), groups \(groups)")
    }

    // MARK: Pooling

    /// Averages `kernel` windows of `[B, C, H, W]`; `stride` defaults to the kernel.
    public static func avgPool2d(_ x: Tensor, kernel: IntPair, stride: IntPair? = nil, padding: IntPair = 0,
                                 ceilMode: Bool = false, countIncludePad: Bool = true) throws -> Tensor {
        try .wrap(bd_avg_pool2d(x.handle, kernel.int64, (stride ?? kernel).int64, padding.int64, ceilMode,
                                countIncludePad),
                  "avgPool2d \(x.shape) kernel \(kernel)")
    }

    /// Maxima of `kernel` windows of `[B, C, H, W]`; `stride` defaults to the kernel.
    public static func maxPool2d(_ x: Tensor, kernel: IntPair, stride: IntPair? = nil, padding: IntPair = 0,
                                 dilation: IntPair = 1, ceilMode: Bool = false) throws -> Tensor {
        try .wrap(bd_max_pool2d(x.handle, kernel.int64, (stride ?? kernel).int64, padding.int64, dilation.int64,
                                ceilMode),
                  "maxPool2d \(x.shape) kernel \(kernel)")
    }

    /// Averages over PyTorch's adaptive windows so that `[B, C, H, W]` → `[B, C, outH, outW]`.
    public static func adaptiveAvgPool2d(_ x: Tensor, outputSize: IntPair) throws -> Tensor {
        try .wrap(bd_adaptive_pool2d(x.handle, outputSize.int64, false), "adaptiveAvgPool2d \(x.shape) to \(outputSize)")
    }

    /// Maxima over adaptive windows (values only).
    public static func adaptiveMaxPool2d(_ x: Tensor, outputSize: IntPair) throws -> Tensor {
        try .wrap(bd_adaptive_pool2d(x.handle, outputSize.int64, true), "adaptiveMaxPool2d \(x.shape) to \(outputSize)")
    }

    // MARK: Normalisation

    /// Normalises `[B, C, ...]` over groups of `C / groups` channels; per-channel affine `[C]`.
    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor? = nil, bias: Tensor? = nil,
                                 eps: Double = 1e-5) throws -> Tensor {
        try .wrap(bd_group_norm(x.handle, Int64(groups), weight?.handle, bias?.handle, eps),
                  "groupNorm \(x.shape) in \(groups) groups")
    }

    /// Normalises over the trailing dimensions `shape`; affine parameters have that shape.
    public static func layerNorm(_ x: Tensor, shape: [Int], weight: Tensor? = nil, bias: Tensor? = nil,
                                 eps: Double = 1e-5) throws -> Tensor {
        let sizes = shape.map(Int64.init)
        return try .wrap(bd_layer_norm(x.handle, sizes, Int32(sizes.count), weight?.handle, bias?.handle, eps),
                         "layerNorm \(x.shape) over \(shape)")
    }

    /// Batch norm over `[B, C, ...]`. With `training` the batch statistics are used and the running
    /// buffers (when given) are updated in place with `momentum`; otherwise the running ones are used.
    public static func batchNorm(_ x: Tensor, runningMean: Tensor?, runningVar: Tensor?, weight: Tensor? = nil,
                                 bias: Tensor? = nil, training: Bool = false, momentum: Double = 0.1,
                                 eps: Double = 1e-5) throws -> Tensor {
        if !training, runningMean == nil || runningVar == nil {
            throw TorchError("batchNorm: running mean and variance are required when not training")
        }
        return try .wrap(bd_batch_norm(x.handle, weight?.handle, bias?.handle, runningMean?.handle,
                                       runningVar?.handle, training, momentum, eps),
                         "batchNorm \(x.shape)")
    }

    // MARK: Activations and probabilities

    /// Softmax along `dim`, computed in `dtype` when one is given.
    public static func softmax(_ x: Tensor, dim: Int, dtype: DType? = nil) throws -> Tensor {
        try .wrap(bd_softmax(x.handle, Int64(dim), false, dtype.map { Int32($0.rawValue) } ?? -1), "softmax \(x.shape)")
    }

    public static func logSoftmax(_ x: Tensor, dim: Int, dtype: DType? = nil) throws -> Tensor {
        try .wrap(bd_softmax(x.handle, Int64(dim), true, dtype.map { Int32($0.rawValue) } ?? -1), "logSoftmax \(x.shape)")
    }

    /// Zeroes elements with probability `p` and scales the rest by `1 / (1 - p)`; identity when not training.
    public static func dropout(_ x: Tensor, p: Double = 0.5, training: Bool = true) throws -> Tensor {
        guard (0...1).contains(p) else { throw TorchError("dropout probability has to be between 0 and 1, but got \(p)") }
        return try .wrap(bd_dropout(x.handle, p, training), "dropout")
    }

    /// Rows of `weight` `[V, D]` picked by integer `indices` `[...]` → `[..., D]`.
    public static func embedding(_ indices: Tensor, _ weight: Tensor) throws -> Tensor {
        try .wrap(bd_embedding(weight.handle, indices.handle), "embedding \(indices.shape) from \(weight.shape)")
    }

    // MARK: Resampling

    /// Resizes `[B, C, H, W]` to `size`. `alignCorners` is for bilinear and bicubic only (nil means
    /// PyTorch's default, false); `antialias` widens the filter when downscaling, like PIL.
    public static func interpolate(_ x: Tensor, size: IntPair, mode: InterpolationMode = .nearest,
                                   alignCorners: Bool? = nil, antialias: Bool = false) throws -> Tensor {
        try .wrap(bd_interpolate(x.handle, size.int64, nil, mode.rawValue, alignCornersCode(alignCorners), antialias),
                  "interpolate \(x.shape) to \(size) (\(mode))")
    }

    /// Resizes `[B, C, H, W]` by `scaleFactor` (height, width): the output is floor(size · scale)
    /// and, as in PyTorch without `recompute_scale_factor`, the kernel uses the given scale.
    public static func interpolate(_ x: Tensor, scaleFactor: (Double, Double), mode: InterpolationMode = .nearest,
                                   alignCorners: Bool? = nil, antialias: Bool = false) throws -> Tensor {
        let scales = [scaleFactor.0, scaleFactor.1]
        return try .wrap(bd_interpolate(x.handle, nil, scales, mode.rawValue, alignCornersCode(alignCorners), antialias),
                         "interpolate \(x.shape) by \(scaleFactor) (\(mode))")
    }

    public static func interpolate(_ x: Tensor, scaleFactor: Double, mode: InterpolationMode = .nearest,
                                   alignCorners: Bool? = nil, antialias: Bool = false) throws -> Tensor {
        try interpolate(x, scaleFactor: (scaleFactor, scaleFactor), mode: mode, alignCorners: alignCorners,
                        antialias: antialias)
    }

    private static func alignCornersCode(_ value: Bool?) -> Int32 { value.map { $0 ? 1 : 0 } ?? -1 }

    /// Samples `[B, C, H, W]` at `grid` `[B, Hout, Wout, 2]` of (x, y) in [-1, 1] → `[B, C, Hout, Wout]`.
    public static func gridSample(_ x: Tensor, _ grid: Tensor, mode: GridSampleMode = .bilinear,
                                  paddingMode: GridSamplePadding = .zeros, alignCorners: Bool = false) throws -> Tensor {
        try .wrap(bd_grid_sample(x.handle, grid.handle, mode.rawValue, paddingMode.rawValue, alignCorners),
                  "gridSample \(x.shape) at grid \(grid.shape)")
    }

    /// Pads the trailing dimensions: `pads` is (left, right) of the last dimension, then (top,
    /// bottom) of the one before, and so on, as in `torch.nn.functional.pad`.
    public static func pad(_ x: Tensor, _ pads: [Int], mode: PadMode = .constant, value: Double = 0) throws -> Tensor {
        guard pads.count % 2 == 0 else { throw TorchError("pad: expected an even number of paddings, got \(pads)") }
        let values = pads.map(Int64.init)
        return try .wrap(bd_pad(x.handle, values, Int32(values.count), mode.rawValue, value),
                         "pad \(x.shape) by \(pads) (\(mode))")
    }

    // MARK: Attention

    /// `softmax(q kᵀ · scale + mask) v` over `[..., L, E]` queries and `[..., S, E]` keys, values
    /// `[..., S, Ev]`. A bool mask keeps the true positions; a float mask is added to the scores.
    /// `causal` masks keys after the query position; `scale` defaults to 1/√E.
    public static func scaledDotProductAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, mask: Tensor? = nil,
                                                 causal: Bool = false, scale: Double? = nil) throws -> Tensor {
        if let scale, scale <= 0 { throw TorchError("scaledDotProductAttention: scale must be positive, got \(scale)") }
        return try .wrap(bd_sdpa(q.handle, k.handle, v.handle, mask?.handle, causal, scale ?? 0),
                         "scaledDotProductAttention q \(q.shape) k \(k.shape) v \(v.shape)")
    }

    // MARK: Losses

    public static func mseLoss(_ input: Tensor, _ target: Tensor, reduction: Reduction = .mean) throws -> Tensor {
        try .wrap(bd_mse_loss(input.handle, target.handle, reduction.rawValue), "mseLoss \(input.shape) vs \(target.shape)")
    }

    /// Logits `[B, C, ...]` against class indices `[B, ...]` (int64) or class probabilities `[B, C, ...]`.
    public static func crossEntropy(_ logits: Tensor, _ target: Tensor, reduction: Reduction = .mean) throws -> Tensor {
        try .wrap(bd_cross_entropy(logits.handle, target.handle, reduction.rawValue),
                  "crossEntropy \(logits.shape) vs \(target.shape)")
    }
}

extension Tensor {
    public func softmax(dim: Int) throws -> Tensor { try F.softmax(self, dim: dim) }
    public func logSoftmax(dim: Int) throws -> Tensor { try F.logSoftmax(self, dim: dim) }
}
