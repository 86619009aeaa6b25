import Torch

/// ASPP's image-pooling branch: global average ("0", no parameters) → 1×1 conv → BN → ReLU, spread
/// back over the feature map.
public final class ASPPPooling: ModuleList, UnaryLayer {
    init(inChannels: Int, outChannels: Int) throws {
        super.init([Activation { try F.adaptiveAvgPool2d($0, outputSize: 1) },
                    try Conv2d(inChannels, outChannels, kernelSize: 1, bias: false),
                    try BatchNorm2d(outChannels), Activation.relu])
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var y = x
        for case let layer as any UnaryLayer in modules { y = try layer(y) }
        return try F.interpolate(y, size: IntPair(x.shape[2], x.shape[3]), mode: .bilinear, alignCorners: false)
    }
}

/// Atrous spatial pyramid pooling (DeepLabV3): a 1×1 branch, three 3×3 branches dilated by the
/// atrous rates and the image-pooling branch (`convs.0` … `convs.4`), concatenated and projected
/// to 256 channels (`project`; its dropout is inactive at inference).
public final class ASPP: Module, UnaryLayer {
    public let convs: [Module]
    public let project: Sequential

    init(inChannels: Int, rates: [Int] = [12, 24, 36], outChannels: Int = 256) throws {
        var branches: [Module] = [Sequential([try Conv2d(inChannels, outChannels, kernelSize: 1, bias: false),
                                              try BatchNorm2d(outChannels), Activation.relu])]
        for rate in rates {
            branches.append(Sequential([try Conv2d(inChannels, outChannels, kernelSize: 3, padding: IntPair(rate),
                                                   dilation: IntPair(rate), bias: false),
                                        try BatchNorm2d(outChannels), Activation.relu]))
        }
        branches.append(try ASPPPooling(inChannels: inChannels, outChannels: outChannels))
        convs = branches
        project = Sequential([try Conv2d(branches.count * outChannels, outChannels, kernelSize: 1, bias: false),
                              try BatchNorm2d(outChannels), Activation.relu, try Dropout(0.5)])
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var outputs: [Tensor] = []
        for case let branch as any UnaryLayer in convs { outputs.append(try branch(x)) }
        return try project(Tensor.cat(outputs, dim: 1))
    }
}

/// torchvision's `DeepLabHead`: ASPP ("0") → 3×3 conv ("1") → BN ("2") → ReLU → 1×1 conv to the
/// class logits ("4").
public final class DeepLabHead: ModuleList, UnaryLayer {
    init(inChannels: Int, numClasses: Int) throws {
        super.init([try ASPP(inChannels: inChannels),
                    try Conv2d(256, 256, kernelSize: 3, padding: 1, bias: false),
                    try BatchNorm2d(256), Activation.relu,
                    try Conv2d(256, numClasses, kernelSize: 1)])
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var y = x
        for case let layer as any UnaryLayer in modules { y = try layer(y) }
        return y
    }
}

/// torchvision's `FCNHead`, DeepLabV3's auxiliary classifier: 3×3 conv to a quarter of the channels
/// ("0") → BN ("1") → ReLU → dropout 0.1 → 1×1 conv to the class logits ("4").
public final class FCNHead: ModuleList, UnaryLayer {
    init(inChannels: Int, numClasses: Int) throws {
        let inner = inChannels / 4
        super.init([try Conv2d(inChannels, inner, kernelSize: 3, padding: 1, bias: false),
                    try BatchNorm2d(inner), Activation.relu, try Dropout(0.1),
                    try Conv2d(inner, numClasses, kernelSize: 1)])
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var y = x
        for case let layer as any UnaryLayer in modules { y = try layer(y) }
        return y
    }
}
