/// The standard layers, with PyTorch's parameter names and default initialisation
/// (`kaiming_uniform_(a=√5)` for weights, U(±1/√fan_in) for biases), so a PyTorch state dict
/// loads into them unchanged.

/// Uniform samples in [-bound, bound): the distribution `nn.Linear`/`nn.Conv2d` start from.
func uniformInit(_ shape: [Int], bound: Double, device: Device, dtype: DType?) throws -> Tensor {
    let t = try Tensor.empty(shape, dtype: dtype, device: device)
    try t.uniform_(from: -bound, to: bound)
    return t
}

/// `y = x Wᵀ + b`; x `[…, inFeatures]` → `[…, outFeatures]`.
public final class Linear: Module, UnaryLayer {
    public let weight: Parameter
    public let bias: Parameter?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, device: Device = .cpu,
                dtype: DType? = nil) throws {
        let bound = 1 / Double(inFeatures).squareRoot()
        weight = try Parameter(uniformInit([outFeatures, inFeatures], bound: bound, device: device, dtype: dtype))
        self.bias = bias ? try Parameter(uniformInit([outFeatures], bound: bound, device: device, dtype: dtype)) : nil
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try F.linear(x, weight, bias) }
}

/// 2-D convolution over `[B, C, H, W]`.
public final class Conv2d: Module, UnaryLayer {
    public let weight: Parameter
    public let bias: Parameter?
    public let stride: IntPair, padding: IntPair, dilation: IntPair, groups: Int

    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: IntPair, stride: IntPair = 1, padding: IntPair = 0,
                dilation: IntPair = 1, groups: Int = 1, bias: Bool = true, device: Device = .cpu,
                dtype: DType? = nil) throws {
        guard groups > 0, inChannels % groups == 0, outChannels % groups == 0 else {
            throw TorchError("Conv2d: channels \(inChannels)→\(outChannels) are not divisible by groups \(groups)")
        }
        let fanIn = inChannels / groups * kernelSize.height * kernelSize.width
        let bound = 1 / Double(fanIn).squareRoot()
        weight = try Parameter(uniformInit([outChannels, inChannels / groups, kernelSize.height, kernelSize.width],
                                           bound: bound, device: device, dtype: dtype))
        self.bias = bias ? try Parameter(uniformInit([outChannels], bound: bound, device: device, dtype: dtype)) : nil
        (self.stride, self.padding, self.dilation, self.groups) = (stride, padding, dilation, groups)
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try F.conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
    }
}

/// Transposed 2-D convolution; weight `[inChannels, outChannels / groups, kh, kw]` as in PyTorch.
public final class ConvTranspose2d: Module, UnaryLayer {
    public let weight: Parameter
    public let bias: Parameter?
    public let stride: IntPair, padding: IntPair, outputPadding: IntPair, dilation: IntPair, groups: Int

    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: IntPair, stride: IntPair = 1, padding: IntPair = 0,
                outputPadding: IntPair = 0, groups: Int = 1, dilation: IntPair = 1, bias: Bool = true,
                device: Device = .cpu, dtype: DType? = nil) throws {
        guard groups > 0, inChannels % groups == 0, outChannels % groups == 0 else {
            throw TorchError("ConvTranspose2d: channels \(inChannels)→\(outChannels) are not divisible by groups \(groups)")
        }
        // PyTorch computes fan-in from weight dim 1, i.e. outChannels / groups.
        let fanIn = outChannels / groups * kernelSize.height * kernelSize.width
        let bound = 1 / Double(fanIn).squareRoot()
        weight = try Parameter(uniformInit([inChannels, outChannels / groups, kernelSize.height, kernelSize.width],
                                           bound: bound, device: device, dtype: dtype))
        self.bias = bias ? try Parameter(uniformInit([outChannels], bound: bound, device: device, dtype: dtype)) : nil
        (self.stride, self.padding, self.outputPadding, self.dilation, self.groups) =
            (stride, padding, outputPadding, dilation, groups)
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try F.convTranspose2d(x, weight: weight, bias: bias, stride: stride, padding: padding,
                              outputPadding: outputPadding, groups: groups, dilation: dilation)
    }
}

/// Group normalisation over `[B, C, …]` with per-channel affine parameters.
public final class GroupNorm: Module, UnaryLayer {
    public let weight: Parameter?
    public let bias: Parameter?
    public let groups: Int, eps: Double

    public init(groups: Int, channels: Int, eps: Double = 1e-5, affine: Bool = true, device: Device = .cpu,
                dtype: DType? = nil) throws {
        guard groups > 0, channels % groups == 0 else {
            throw TorchError("GroupNorm: \(channels) channels are not divisible into \(groups) groups")
        }
        weight = affine ? try Parameter(.ones([channels], dtype: dtype, device: device)) : nil
        bias = affine ? try Parameter(.zeros([channels], dtype: dtype, device: device)) : nil
        (self.groups, self.eps) = (groups, eps)
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try F.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps)
    }
}

/// Layer normalisation over the trailing `shape` dimensions.
public final class LayerNorm: Module, UnaryLayer {
    public let weight: Parameter?
    public let bias: Parameter?
    public let normalizedShape: [Int], eps: Double

    public init(_ shape: [Int], eps: Double = 1e-5, elementwiseAffine: Bool = true, device: Device = .cpu,
                dtype: DType? = nil) throws {
        weight = elementwiseAffine ? try Parameter(.ones(shape, dtype: dtype, device: device)) : nil
        bias = elementwiseAffine ? try Parameter(.zeros(shape, dtype: dtype, device: device)) : nil
        (normalizedShape, self.eps) = (shape, eps)
        super.init()
    }

    public convenience init(_ features: Int, eps: Double = 1e-5, elementwiseAffine: Bool = true,
                            device: Device = .cpu, dtype: DType? = nil) throws {
        try self.init([features], eps: eps, elementwiseAffine: elementwiseAffine, device: device, dtype: dtype)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try F.layerNorm(x, shape: normalizedShape, weight: weight, bias: bias, eps: eps)
    }
}

/// Batch normalisation for inference with running statistics (training uses batch statistics and
/// updates the running ones, as `nn.BatchNorm2d` does).
public final class BatchNorm2d: Module, UnaryLayer {
    public let weight: Parameter?
    public let bias: Parameter?
    public let running_mean: Buffer
    public let running_var: Buffer
    public let num_batches_tracked: Buffer
    public let eps: Double, momentum: Double

    public init(_ features: Int, eps: Double = 1e-5, momentum: Double = 0.1, affine: Bool = true,
                device: Device = .cpu, dtype: DType? = nil) throws {
        weight = affine ? try Parameter(.ones([features], dtype: dtype, device: device)) : nil
        bias = affine ? try Parameter(.zeros([features], dtype: dtype, device: device)) : nil
        running_mean = try Buffer(.zeros([features], dtype: dtype, device: device))
        running_var = try Buffer(.ones([features], dtype: dtype, device: device))
        num_batches_tracked = try Buffer(.zeros([], dtype: .int64, device: device))
        (self.eps, self.momentum) = (eps, momentum)
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        if isTraining { try num_batches_tracked.addScalar_(1) }
        return try F.batchNorm(x, runningMean: running_mean, runningVar: running_var, weight: weight, bias: bias,
                               training: isTraining, momentum: momentum, eps: eps)
    }
}

/// A lookup table `[count, dim]`; indices `[…]` → `[…, dim]`.
public final class Embedding: Module, UnaryLayer {
    public let weight: Parameter

    public init(_ count: Int, _ dim: Int, device: Device = .cpu, dtype: DType? = nil) throws {
        weight = try Parameter(.randn([count, dim], dtype: dtype, device: device))
        super.init()
    }

    public func callAsFunction(_ indices: Tensor) throws -> Tensor { try F.embedding(indices, weight) }
}

/// Zeroes elements with probability `p` in training mode and rescales the rest; identity in eval mode.
public final class Dropout: Module, UnaryLayer {
    public let p: Double

    public init(_ p: Double = 0.5) throws {
        guard (0...1).contains(p) else { throw TorchError("Dropout probability \(p) is outside [0, 1]") }
        self.p = p
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        isTraining && p > 0 ? try F.dropout(x, p: p, training: true) : x
    }
}

/// Activation layers without parameters, for `Sequential`.
public final class Activation: Module, UnaryLayer {
    let function: (Tensor) throws -> Tensor
    public init(_ function: @escaping (Tensor) throws -> Tensor) {
        self.function = function
        super.init()
    }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try function(x) }

    public static var relu: Activation { Activation { try $0.relu() } }
    public static var silu: Activation { Activation { try $0.silu() } }
    public static var gelu: Activation { Activation { try $0.gelu() } }
}
