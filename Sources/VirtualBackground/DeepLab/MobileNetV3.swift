import Torch

/// torchvision's `Conv2dNormActivation`: convolution without bias ("0"), batch norm ("1"), optional
/// activation ("2"); padding `(k − 1) / 2 · dilation` keeps the size at stride 1.
func convNormActivation(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, dilation: Int = 1,
                        groups: Int = 1, eps: Double, activation: Activation?) throws -> Sequential {
    var layers: [any UnaryLayer] = [
        try Conv2d(inChannels, outChannels, kernelSize: IntPair(kernel), stride: IntPair(stride),
                   padding: IntPair((kernel - 1) / 2 * dilation), dilation: IntPair(dilation), groups: groups, bias: false),
        try BatchNorm2d(outChannels, eps: eps),
    ]
    if let activation { layers.append(activation) }
    return Sequential(layers)
}

/// torchvision's `_make_divisible`: the nearest multiple of `divisor` (at least `divisor`), rounded up
/// a step when rounding would lose more than 10 %.
func makeDivisible(_ value: Double, _ divisor: Int = 8) -> Int {
    var rounded = max(divisor, Int(value + Double(divisor) / 2) / divisor * divisor)
    if Double(rounded) < 0.9 * value { rounded += divisor }
    return rounded
}

/// Squeeze-and-excitation as torchvision's MobileNetV3 uses it: global average → `fc1` → ReLU → `fc2`
/// → hard sigmoid, scaling the channels.
public final class SqueezeExcitation: Module, UnaryLayer {
    public let fc1: Conv2d
    public let fc2: Conv2d

    init(channels: Int, squeezeChannels: Int) throws {
        fc1 = try Conv2d(channels, squeezeChannels, kernelSize: 1)
        fc2 = try Conv2d(squeezeChannels, channels, kernelSize: 1)
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let scale = try fc2(fc1(F.adaptiveAvgPool2d(x, outputSize: 1)).relu()).hardsigmoid()
        return try x * scale
    }
}

/// One row of MobileNetV3-Large's block table (torchvision's `InvertedResidualConfig`, width 1).
struct InvertedResidualConfig {
    let input: Int, kernel: Int, expanded: Int, output: Int
    let squeezeExcite: Bool, hardSwish: Bool
    let stride: Int, dilation: Int
}

/// MobileNetV3's inverted residual: optional 1×1 expansion, depthwise k×k, optional
/// squeeze-and-excitation, linear 1×1 projection; the input is added back when the configured stride
/// is 1 and the width is kept. Children are torchvision's `block.0`, `block.1`, ….
public final class InvertedResidual: Module, UnaryLayer {
    public let block: Sequential
    let residual: Bool
    /// A stage boundary (configured stride 2): torchvision's `_is_cn`, which picks the features DeepLab uses.
    let isStageStart: Bool

    init(_ c: InvertedResidualConfig, eps: Double) throws {
        let activation = { c.hardSwish ? Activation { try $0.hardswish() } : Activation.relu }
        var layers: [any UnaryLayer] = []
        if c.expanded != c.input {
            layers.append(try convNormActivation(c.input, c.expanded, kernel: 1, eps: eps, activation: activation()))
        }
        // A dilated block trades its stride for dilation (the dilated last stage of DeepLab's backbone).
        layers.append(try convNormActivation(c.expanded, c.expanded, kernel: c.kernel, stride: c.dilation > 1 ? 1 : c.stride,
                                             dilation: c.dilation, groups: c.expanded, eps: eps, activation: activation()))
        if c.squeezeExcite {
            layers.append(try SqueezeExcitation(channels: c.expanded, squeezeChannels: makeDivisible(Double(c.expanded / 4))))
        }
        layers.append(try convNormActivation(c.expanded, c.output, kernel: 1, eps: eps, activation: nil))
        block = Sequential(layers)
        // The configured stride decides, so the dilated first block of the last stage has no residual
        // even though it runs at stride 1.
        residual = c.stride == 1 && c.input == c.output
        isStageStart = c.stride > 1
        super.init()
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let y = try block(x)
        return residual ? try y + x : y
    }
}

/// The `features` of torchvision's `mobilenet_v3_large(dilated=True)`, keyed "0" … "16" as in
/// `deeplabv3_mobilenet_v3_large`'s state dict (`backbone.<i>.…`): a stride-2 stem, fifteen inverted
/// residuals (the last stage dilated by 2 instead of strided, so features stay at 1/16), and a 1×1
/// widening to 960 channels. Batch norms use eps 0.001.
public final class MobileNetV3LargeBackbone: ModuleList, DeepLabBackbone {
    static let table: [InvertedResidualConfig] = [
        .init(input: 16, kernel: 3, expanded: 16, output: 16, squeezeExcite: false, hardSwish: false, stride: 1, dilation: 1),
        .init(input: 16, kernel: 3, expanded: 64, output: 24, squeezeExcite: false, hardSwish: false, stride: 2, dilation: 1),
        .init(input: 24, kernel: 3, expanded: 72, output: 24, squeezeExcite: false, hardSwish: false, stride: 1, dilation: 1),
        .init(input: 24, kernel: 5, expanded: 72, output: 40, squeezeExcite: true, hardSwish: false, stride: 2, dilation: 1),
        .init(input: 40, kernel: 5, expanded: 120, output: 40, squeezeExcite: true, hardSwish: false, stride: 1, dilation: 1),
        .init(input: 40, kernel: 5, expanded: 120, output: 40, squeezeExcite: true, hardSwish: false, stride: 1, dilation: 1),
        .init(input: 40, kernel: 3, expanded: 240, output: 80, squeezeExcite: false, hardSwish: true, stride: 2, dilation: 1),
        .init(input: 80, kernel: 3, expanded: 200, output: 80, squeezeExcite: false, hardSwish: true, stride: 1, dilation: 1),
        .init(input: 80, kernel: 3, expanded: 184, output: 80, squeezeExcite: false, hardSwish: true, stride: 1, dilation: 1),
        .init(input: 80, kernel: 3, expanded: 184, output: 80, squeezeExcite: false, hardSwish: true, stride: 1, dilation: 1),
        .init(input: 80, kernel: 3, expanded: 480, output: 112, squeezeExcite: true, hardSwish: true, stride: 1, dilation: 1),
        .init(input: 112, kernel: 3, expanded: 672, output: 112, squeezeExcite: true, hardSwish: true, stride: 1, dilation: 1),
        .init(input: 112, kernel: 5, expanded: 672, output: 160, squeezeExcite: true, hardSwish: true, stride: 2, dilation: 2),
        .init(input: 160, kernel: 5, expanded: 960, output: 160, squeezeExcite: true, hardSwish: true, stride: 1, dilation: 2),
        .init(input: 160, kernel: 5, expanded: 960, output: 160, squeezeExcite: true, hardSwish: true, stride: 1, dilation: 2),
    ]
    /// Number of children: stem, the table, the final 1×1.
    static let featureCount = table.count + 2

    public let outChannels = 960
    /// torchvision takes `aux` from the fourth stage boundary counted from the end (`stage_indices[-4]`),
    /// block 4, the 1/8-resolution features with 40 channels.
    public let auxChannels = 40
    let outIndex: Int, auxIndex: Int

    public init() throws {
        let eps = 0.001
        var layers: [Module] = [try convNormActivation(3, 16, kernel: 3, stride: 2, eps: eps,
                                                      activation: Activation { try $0.hardswish() })]
        for config in Self.table { layers.append(try InvertedResidual(config, eps: eps)) }
        layers.append(try convNormActivation(160, 960, kernel: 1, eps: eps, activation: Activation { try $0.hardswish() }))
        let stageStarts = [0] + layers.indices.filter { (layers[$0] as? InvertedResidual)?.isStageStart == true }
            + [layers.count - 1]
        outIndex = stageStarts[stageStarts.count - 1]
        auxIndex = stageStarts[stageStarts.count - 4]
        super.init(layers)
    }

    public func features(_ x: Tensor, aux: Bool) throws -> (out: Tensor, aux: Tensor?) {
        var h = x
        var auxFeatures: Tensor?
        for case let (index, layer as any UnaryLayer) in modules.enumerated() where index <= outIndex {
            h = try layer(h)
            if aux, index == auxIndex { auxFeatures = h }
        }
        return (h, auxFeatures)
    }
}
