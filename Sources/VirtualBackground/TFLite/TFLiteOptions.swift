// Builtin operator options: the `BuiltinOptions` union of TFLite's schema. Only the option tables of
// the operators that the segmentation models use are decoded; others are kept as their union tag.

public enum TFLitePadding: Int8, Equatable, Sendable {
    case same = 0, valid = 1
}

/// An activation that TFLite fuses into the preceding operator.
public enum TFLiteActivation: Int8, Equatable, Sendable {
    case none = 0, relu = 1, reluN1To1 = 2, relu6 = 3, tanh = 4, signBit = 5
}

public struct TFLiteConvOptions: Equatable, Sendable {
    public var padding: TFLitePadding
    public var strideH: Int, strideW: Int
    public var dilationH: Int, dilationW: Int
    /// 1 for CONV_2D; output channels per input channel for DEPTHWISE_CONV_2D.
    public var depthMultiplier: Int
    public var activation: TFLiteActivation

    public init(padding: TFLitePadding, strideH: Int, strideW: Int, dilationH: Int = 1, dilationW: Int = 1,
                depthMultiplier: Int = 1, activation: TFLiteActivation = .none) {
        self.padding = padding
        (self.strideH, self.strideW, self.dilationH, self.dilationW) = (strideH, strideW, dilationH, dilationW)
        self.depthMultiplier = depthMultiplier
        self.activation = activation
    }
}

public struct TFLitePoolOptions: Equatable, Sendable {
    public var padding: TFLitePadding
    public var strideH: Int, strideW: Int
    public var filterH: Int, filterW: Int
    public var activation: TFLiteActivation

    public init(padding: TFLitePadding, strideH: Int, strideW: Int, filterH: Int, filterW: Int,
                activation: TFLiteActivation = .none) {
        self.padding = padding
        (self.strideH, self.strideW, self.filterH, self.filterW) = (strideH, strideW, filterH, filterW)
        self.activation = activation
    }
}

public struct TFLiteResizeOptions: Equatable, Sendable {
    public var alignCorners: Bool
    public var halfPixelCenters: Bool

    public init(alignCorners: Bool, halfPixelCenters: Bool) {
        self.alignCorners = alignCorners
        self.halfPixelCenters = halfPixelCenters
    }
}

public enum TFLiteOptions: Equatable, Sendable {
    case none
    case conv2D(TFLiteConvOptions)
    case depthwiseConv2D(TFLiteConvOptions)
    case pool2D(TFLitePoolOptions)
    /// ADD, MUL (and SUB, DIV) carry only a fused activation.
    case elementwise(TFLiteActivation)
    case resizeBilinear(TFLiteResizeOptions)
    case reshape(newShape: [Int])
    /// MEAN and the other reductions.
    case reducer(keepDims: Bool)
    /// A union member this reader does not decode, by its tag.
    case other(tag: UInt8)

    /// Union tags (the member's 1-based position in `union BuiltinOptions`).
    private enum Tag {
        static let conv2D: UInt8 = 1, depthwiseConv2D: UInt8 = 2, pool2D: UInt8 = 5, add: UInt8 = 11
        static let resizeBilinear: UInt8 = 15, reshape: UInt8 = 17, mul: UInt8 = 21, reducer: UInt8 = 27
        static let sub: UInt8 = 28, div: UInt8 = 29
    }

    /// Decodes the union member `tag` stored in `table`; `owner` is the operator, for errors.
    init(type tag: UInt8, table: FlatTable?, owner: FlatTable) throws {
        guard tag != 0 else { self = .none; return }
        guard let t = table else {
            throw owner.buffer.error("\(owner.what): builtin options of type \(tag) are missing their table")
        }
        func padding(_ id: Int) throws -> TFLitePadding {
            let raw = try t.i8(id)
            guard let value = TFLitePadding(rawValue: raw) else { throw t.buffer.error("\(t.what): unknown padding \(raw)") }
            return value
        }
        func activation(_ id: Int) throws -> TFLiteActivation {
            let raw = try t.i8(id)
            guard let value = TFLiteActivation(rawValue: raw) else {
                throw t.buffer.error("\(t.what): unknown fused activation \(raw)")
            }
            return value
        }
        func int(_ id: Int, default value: Int32 = 0) throws -> Int { Int(try t.i32(id, default: value)) }

        switch tag {
        case Tag.conv2D:
            // padding, stride_w, stride_h, fused_activation_function, dilation_w_factor, dilation_h_factor
            self = .conv2D(TFLiteConvOptions(
                padding: try padding(0), strideH: try int(2), strideW: try int(1),
                dilationH: try int(5, default: 1), dilationW: try int(4, default: 1),
                depthMultiplier: 1, activation: try activation(3)))
        case Tag.depthwiseConv2D:
            // padding, stride_w, stride_h, depth_multiplier, fused_activation_function, dilation_w, dilation_h
            self = .depthwiseConv2D(TFLiteConvOptions(
                padding: try padding(0), strideH: try int(2), strideW: try int(1),
                dilationH: try int(6, default: 1), dilationW: try int(5, default: 1),
                depthMultiplier: try int(3), activation: try activation(4)))
        case Tag.pool2D:
            // padding, stride_w, stride_h, filter_width, filter_height, fused_activation_function
            self = .pool2D(TFLitePoolOptions(
                padding: try padding(0), strideH: try int(2), strideW: try int(1),
                filterH: try int(4), filterW: try int(3), activation: try activation(5)))
        case Tag.add, Tag.mul, Tag.sub, Tag.div:
            self = .elementwise(try activation(0))
        case Tag.resizeBilinear:
            // new_height and new_width (deprecated), align_corners, half_pixel_centers
            self = .resizeBilinear(TFLiteResizeOptions(alignCorners: try t.bool(2), halfPixelCenters: try t.bool(3)))
        case Tag.reshape:
            self = .reshape(newShape: try t.i32Vector(0).map(Int.init))
        case Tag.reducer:
            self = .reducer(keepDims: try t.bool(0))
        default:
            self = .other(tag: tag)
        }
    }
}
