import Torch

/// TensorFlow's "2015-12-05" Inception-v3 with the FID patches, in torchvision's key layout
/// (`Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch1x1.bn.running_mean`, `fc.weight` …), so
/// pytorch-fid's `pt_inception-2015-12-05-*.pth` loads unchanged. The FID patches are TF's own
/// graph: average pools that exclude padding in the A, C and E₁ blocks, a max pool in E₂'s pool
/// branch, and batch norm with eps 1e-3.
public final class InceptionV3: Module {
    public let Conv2d_1a_3x3: BasicConv2d
    public let Conv2d_2a_3x3: BasicConv2d
    public let Conv2d_2b_3x3: BasicConv2d
    public let Conv2d_3b_1x1: BasicConv2d
    public let Conv2d_4a_3x3: BasicConv2d
    public let Mixed_5b: InceptionA
    public let Mixed_5c: InceptionA
    public let Mixed_5d: InceptionA
    public let Mixed_6a: InceptionB
    public let Mixed_6b: InceptionC
    public let Mixed_6c: InceptionC
    public let Mixed_6d: InceptionC
    public let Mixed_6e: InceptionC
    public let Mixed_7a: InceptionD
    public let Mixed_7b: InceptionE
    public let Mixed_7c: InceptionE
    /// The 1008-way classifier (TF's 1001 classes padded); nil for weights without one.
    public let fc: Linear?

    public init(classifier: Bool = true) throws {
        Conv2d_1a_3x3 = try BasicConv2d(3, 32, kernel: 3, stride: 2)
        Conv2d_2a_3x3 = try BasicConv2d(32, 32, kernel: 3)
        Conv2d_2b_3x3 = try BasicConv2d(32, 64, kernel: 3, padding: 1)
        Conv2d_3b_1x1 = try BasicConv2d(64, 80, kernel: 1)
        Conv2d_4a_3x3 = try BasicConv2d(80, 192, kernel: 3)
        Mixed_5b = try InceptionA(192, poolFeatures: 32)
        Mixed_5c = try InceptionA(256, poolFeatures: 64)
        Mixed_5d = try InceptionA(288, poolFeatures: 64)
        Mixed_6a = try InceptionB(288)
        Mixed_6b = try InceptionC(768, channels7x7: 128)
        Mixed_6c = try InceptionC(768, channels7x7: 160)
        Mixed_6d = try InceptionC(768, channels7x7: 160)
        Mixed_6e = try InceptionC(768, channels7x7: 192)
        Mixed_7a = try InceptionD(768)
        Mixed_7b = try InceptionE(1280, maxPoolBranch: false)
        Mixed_7c = try InceptionE(2048, maxPoolBranch: true)
        fc = classifier ? try Linear(2048, 1008) : nil
        super.init()
    }

    /// The four feature sizes pytorch-fid offers (64, 192, 768, 2048), each spatially averaged.
    public struct Features {
        public var pool64: Tensor, pool192: Tensor, pool768: Tensor, pool2048: Tensor
    }

    /// Features of images already resized to 299×299 and normalised to [−1, 1).
    /// `x`: `[B, 3, 299, 299]` → four `[B, D]` feature tensors.
    public func features(_ x: Tensor) throws -> Features {
        var h = try Conv2d_2b_3x3(Conv2d_2a_3x3(Conv2d_1a_3x3(x)))
        h = try F.maxPool2d(h, kernel: 3, stride: 2)
        let pool64 = try globalAverage(h)
        h = try F.maxPool2d(Conv2d_4a_3x3(Conv2d_3b_1x1(h)), kernel: 3, stride: 2)
        let pool192 = try globalAverage(h)
        for block in [Mixed_5b, Mixed_5c, Mixed_5d] as [any UnaryLayer] { h = try block(h) }
        h = try Mixed_6a(h)
        for block in [Mixed_6b, Mixed_6c, Mixed_6d, Mixed_6e] { h = try block(h) }
        let pool768 = try globalAverage(h)
        h = try Mixed_7c(Mixed_7b(Mixed_7a(h)))
        return Features(pool64: pool64, pool192: pool192, pool768: pool768, pool2048: try globalAverage(h))
    }

    /// The classifier's 1008 logits from pool3 features `[B, 2048]`; `unbiased` leaves out the fc
    /// bias, as torch-fidelity's Inception Score does.
    public func logits(_ pool2048: Tensor, unbiased: Bool) throws -> Tensor {
        guard let fc else { throw TorchError("these Inception weights have no 1008-way classifier") }
        return try F.linear(pool2048, fc.weight, unbiased ? nil : fc.bias)
    }

    private func globalAverage(_ x: Tensor) throws -> Tensor {
        try x.mean(dims: [2, 3])
    }
}

/// Convolution without bias, batch norm (eps 1e-3), ReLU: torchvision's `BasicConv2d`.
public final class BasicConv2d: Module, UnaryLayer {
    public let conv: Conv2d
    public let bn: BatchNorm2d

    init(_ inChannels: Int, _ outChannels: Int, kernel: IntPair, stride: IntPair = 1, padding: IntPair = 0) throws {
        conv = try Conv2d(inChannels, outChannels, kernelSize: kernel, stride: stride, padding: padding, bias: false)
        bn = try BatchNorm2d(outChannels, eps: 1e-3)
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try bn(conv(x)).relu() }
}

/// TF's 3×3 average pool of stride 1 that divides by the number of pixels inside the image.
private func averagePoolExcludingPadding(_ x: Tensor) throws -> Tensor {
    try F.avgPool2d(x, kernel: 3, stride: 1, padding: 1, countIncludePad: false)
}

/// Mixed_5b–5d: 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg-pool→1×1.
public final class InceptionA: Module, UnaryLayer {
    public let branch1x1, branch5x5_1, branch5x5_2, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3, branch_pool: BasicConv2d

    init(_ inChannels: Int, poolFeatures: Int) throws {
        branch1x1 = try BasicConv2d(inChannels, 64, kernel: 1)
        branch5x5_1 = try BasicConv2d(inChannels, 48, kernel: 1)
        branch5x5_2 = try BasicConv2d(48, 64, kernel: 5, padding: 2)
        branch3x3dbl_1 = try BasicConv2d(inChannels, 64, kernel: 1)
        branch3x3dbl_2 = try BasicConv2d(64, 96, kernel: 3, padding: 1)
        branch3x3dbl_3 = try BasicConv2d(96, 96, kernel: 3, padding: 1)
        branch_pool = try BasicConv2d(inChannels, poolFeatures, kernel: 1)
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try Tensor.cat([
            branch1x1(x),
            branch5x5_2(branch5x5_1(x)),
            branch3x3dbl_3(branch3x3dbl_2(branch3x3dbl_1(x))),
            branch_pool(averagePoolExcludingPadding(x)),
        ], dim: 1)
    }
}

/// Mixed_6a: grid reduction 35→17.
public final class InceptionB: Module, UnaryLayer {
    public let branch3x3, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3: BasicConv2d

    init(_ inChannels: Int) throws {
        branch3x3 = try BasicConv2d(inChannels, 384, kernel: 3, stride: 2)
        branch3x3dbl_1 = try BasicConv2d(inChannels, 64, kernel: 1)
        branch3x3dbl_2 = try BasicConv2d(64, 96, kernel: 3, padding: 1)
        branch3x3dbl_3 = try BasicConv2d(96, 96, kernel: 3, stride: 2)
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try Tensor.cat([
            branch3x3(x),
            branch3x3dbl_3(branch3x3dbl_2(branch3x3dbl_1(x))),
            F.maxPool2d(x, kernel: 3, stride: 2),
        ], dim: 1)
    }
}

/// Mixed_6b–6e: factorised 7×7 convolutions.
public final class InceptionC: Module, UnaryLayer {
    public let branch1x1, branch7x7_1, branch7x7_2, branch7x7_3: BasicConv2d
    public let branch7x7dbl_1, branch7x7dbl_2, branch7x7dbl_3, branch7x7dbl_4, branch7x7dbl_5, branch_pool: BasicConv2d

    init(_ inChannels: Int, channels7x7 c: Int) throws {
        branch1x1 = try BasicConv2d(inChannels, 192, kernel: 1)
        branch7x7_1 = try BasicConv2d(inChannels, c, kernel: 1)
        branch7x7_2 = try BasicConv2d(c, c, kernel: [1, 7], padding: [0, 3])
        branch7x7_3 = try BasicConv2d(c, 192, kernel: [7, 1], padding: [3, 0])
        branch7x7dbl_1 = try BasicConv2d(inChannels, c, kernel: 1)
        branch7x7dbl_2 = try BasicConv2d(c, c, kernel: [7, 1], padding: [3, 0])
        branch7x7dbl_3 = try BasicConv2d(c, c, kernel: [1, 7], padding: [0, 3])
        branch7x7dbl_4 = try BasicConv2d(c, c, kernel: [7, 1], padding: [3, 0])
        branch7x7dbl_5 = try BasicConv2d(c, 192, kernel: [1, 7], padding: [0, 3])
        branch_pool = try BasicConv2d(inChannels, 192, kernel: 1)
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let double = try branch7x7dbl_5(branch7x7dbl_4(branch7x7dbl_3(branch7x7dbl_2(branch7x7dbl_1(x)))))
        return try Tensor.cat([
            branch1x1(x),
            branch7x7_3(branch7x7_2(branch7x7_1(x))),
            double,
            branch_pool(averagePoolExcludingPadding(x)),
        ], dim: 1)
    }
}

/// Mixed_7a: grid reduction 17→8.
public final class InceptionD: Module, UnaryLayer {
    public let branch3x3_1, branch3x3_2, branch7x7x3_1, branch7x7x3_2, branch7x7x3_3, branch7x7x3_4: BasicConv2d

    init(_ inChannels: Int) throws {
        branch3x3_1 = try BasicConv2d(inChannels, 192, kernel: 1)
        branch3x3_2 = try BasicConv2d(192, 320, kernel: 3, stride: 2)
        branch7x7x3_1 = try BasicConv2d(inChannels, 192, kernel: 1)
        branch7x7x3_2 = try BasicConv2d(192, 192, kernel: [1, 7], padding: [0, 3])
        branch7x7x3_3 = try BasicConv2d(192, 192, kernel: [7, 1], padding: [3, 0])
        branch7x7x3_4 = try BasicConv2d(192, 192, kernel: 3, stride: 2)
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try Tensor.cat([
            branch3x3_2(branch3x3_1(x)),
            branch7x7x3_4(branch7x7x3_3(branch7x7x3_2(branch7x7x3_1(x)))),
            F.maxPool2d(x, kernel: 3, stride: 2),
        ], dim: 1)
    }
}

/// Mixed_7b (average-pool branch, padding excluded) and Mixed_7c (max-pool branch): expanded
/// filter banks.
public final class InceptionE: Module, UnaryLayer {
    public let branch1x1, branch3x3_1, branch3x3_2a, branch3x3_2b: BasicConv2d
    public let branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3a, branch3x3dbl_3b, branch_pool: BasicConv2d
    let maxPoolBranch: Bool

    init(_ inChannels: Int, maxPoolBranch: Bool) throws {
        branch1x1 = try BasicConv2d(inChannels, 320, kernel: 1)
        branch3x3_1 = try BasicConv2d(inChannels, 384, kernel: 1)
        branch3x3_2a = try BasicConv2d(384, 384, kernel: [1, 3], padding: [0, 1])
        branch3x3_2b = try BasicConv2d(384, 384, kernel: [3, 1], padding: [1, 0])
        branch3x3dbl_1 = try BasicConv2d(inChannels, 448, kernel: 1)
        branch3x3dbl_2 = try BasicConv2d(448, 384, kernel: 3, padding: 1)
        branch3x3dbl_3a = try BasicConv2d(384, 384, kernel: [1, 3], padding: [0, 1])
        branch3x3dbl_3b = try BasicConv2d(384, 384, kernel: [3, 1], padding: [1, 0])
        branch_pool = try BasicConv2d(inChannels, 192, kernel: 1)
        self.maxPoolBranch = maxPoolBranch
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let a = try branch3x3_1(x)
        let b = try branch3x3dbl_2(branch3x3dbl_1(x))
        let pooled = maxPoolBranch ? try F.maxPool2d(x, kernel: 3, stride: 1, padding: 1)
                                   : try averagePoolExcludingPadding(x)
        return try Tensor.cat([
            branch1x1(x),
            branch3x3_2a(a), branch3x3_2b(a),
            branch3x3dbl_3a(b), branch3x3dbl_3b(b),
            branch_pool(pooled),
        ], dim: 1)
    }
}
