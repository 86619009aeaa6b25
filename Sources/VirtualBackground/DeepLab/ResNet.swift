import Torch

/// The feature extractor under a DeepLabV3 head: the last stage's features (`out`) and, for the
/// auxiliary FCN head, an earlier stage's (`aux`), as torchvision's `IntermediateLayerGetter` returns them.
public protocol DeepLabBackbone: Module {
    /// Channels of the `out` and `aux` features.
    var outChannels: Int { get }
    var auxChannels: Int { get }
    /// `[B, 3, H, W]` normalised → `out` `[B, outChannels, h, w]`, and `aux` when asked for.
    func features(_ x: Tensor, aux: Bool) throws -> (out: Tensor, aux: Tensor?)
}

/// torchvision's ResNet bottleneck, v1.5 (the stride sits on the 3×3 convolution, not the first 1×1):
/// 1×1 reduce → 3×3 (strided or dilated) → 1×1 expand ×4, batch norm after each, and a 1×1
/// projection shortcut (`downsample`) on the first block of a stage.
public final class Bottleneck: Module, UnaryLayer {
    public let conv1: Conv2d
    public let bn1: BatchNorm2d
    public let conv2: Conv2d
    public let bn2: BatchNorm2d
    public let conv3: Conv2d
    public let bn3: BatchNorm2d
    public let downsample: Sequential?

    public static let expansion = 4

    init(inChannels: Int, planes: Int, stride: Int, dilation: Int, projectShortcut: Bool) throws {
        let out = planes * Self.expansion
        conv1 = try Conv2d(inChannels, planes, kernelSize: 1, bias: false)
        bn1 = try BatchNorm2d(planes)
        conv2 = try Conv2d(planes, planes, kernelSize: 3, stride: IntPair(stride), padding: IntPair(dilation),
                           dilation: IntPair(dilation), bias: false)
        bn2 = try BatchNorm2d(planes)
        conv3 = try Conv2d(planes, out, kernelSize: 1, bias: false)
        bn3 = try BatchNorm2d(out)
        downsample = projectShortcut
            ? Sequential([try Conv2d(inChannels, out, kernelSize: 1, stride: IntPair(stride), bias: false), try BatchNorm2d(out)])
            : nil
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var h = try bn1(conv1(x)).relu()
        h = try bn2(conv2(h)).relu()
        h = try bn3(conv3(h))
        let shortcut = try downsample.map { try $0(x) } ?? x
        return try (h + shortcut).relu()
    }
}

/// The ResNet trunk of `deeplabv3_resnet50/101`: stem and four bottleneck stages, with the strides
/// of stages 3 and 4 replaced by dilation 2 and 4 (`replace_stride_with_dilation=[False, True, True]`),
/// so features stay at 1/8 of the input. The classifier (`avgpool`, `fc`) is not part of it, as
/// torchvision's `IntermediateLayerGetter` drops everything after `layer4`.
public final class ResNetBackbone: Module, DeepLabBackbone {
    public let conv1: Conv2d
    public let bn1: BatchNorm2d
    public let layer1: Sequential
    public let layer2: Sequential
    public let layer3: Sequential
    public let layer4: Sequential
    /// Bottlenecks per stage: [3, 4, 6, 3] is ResNet-50, [3, 4, 23, 3] ResNet-101.
    public let blockCounts: [Int]

    public var outChannels: Int { 512 * Bottleneck.expansion }
    public var auxChannels: Int { 256 * Bottleneck.expansion }

    public init(blockCounts: [Int]) throws {
        guard blockCounts.count == 4, blockCounts.allSatisfy({ $0 > 0 }) else {
            throw SegmentationError("a ResNet backbone needs four stages of at least one block, got \(blockCounts)")
        }
        self.blockCounts = blockCounts
        conv1 = try Conv2d(3, 64, kernelSize: 7, stride: 2, padding: 3, bias: false)
        bn1 = try BatchNorm2d(64)
        var inChannels = 64
        var dilation = 1
        /// One stage as torchvision's `_make_layer` builds it: a dilated stage keeps stride 1, and its
        /// first block still uses the dilation of the stage before.
        func stage(planes: Int, blocks: Int, stride: Int, dilate: Bool) throws -> Sequential {
            let previousDilation = dilation
            var stride = stride
            if dilate {
                dilation *= stride
                stride = 1
            }
            let project = stride != 1 || inChannels != planes * Bottleneck.expansion
            var layers: [any UnaryLayer] = [try Bottleneck(inChannels: inChannels, planes: planes, stride: stride,
                                                           dilation: previousDilation, projectShortcut: project)]
            inChannels = planes * Bottleneck.expansion
            for _ in 1..<blocks {
                layers.append(try Bottleneck(inChannels: inChannels, planes: planes, stride: 1, dilation: dilation,
                                             projectShortcut: false))
            }
            return Sequential(layers)
        }
        layer1 = try stage(planes: 64, blocks: blockCounts[0], stride: 1, dilate: false)
        layer2 = try stage(planes: 128, blocks: blockCounts[1], stride: 2, dilate: false)
        layer3 = try stage(planes: 256, blocks: blockCounts[2], stride: 2, dilate: true)
        layer4 = try stage(planes: 512, blocks: blockCounts[3], stride: 2, dilate: true)
        super.init()
    }

    /// `out` is `layer4`'s output, `aux` `layer3`'s (1024 channels), both at 1/8 of the input.
    public func features(_ x: Tensor, aux: Bool) throws -> (out: Tensor, aux: Tensor?) {
        var h = try bn1(conv1(x)).relu()
        h = try F.maxPool2d(h, kernel: 3, stride: 2, padding: 1)
        h = try layer2(layer1(h))
        let c4 = try layer3(h)
        return (try layer4(c4), aux ? c4 : nil)
    }
}
