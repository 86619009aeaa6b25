import Foundation
import Torch

// The parts of TFLite's schema (tensorflow/lite/schema/schema.fbs) that the MediaPipe segmentation
// models use, read with `FlatBuffer`. Field ids below are the schema's declaration order.

/// A TFLite model file: operator codes, subgraphs and the raw buffers that hold constant tensors.
/// Indices inside (tensor → buffer, operator → code, operator → tensors) are checked when the file is
/// read, so users of these values can index without further checks.
public struct TFLiteModel {
    /// The file name, for messages.
    public let name: String
    public let version: UInt32
    public let description: String?
    public let operatorCodes: [TFLiteOperatorCode]
    public let subgraphs: [TFLiteSubgraph]
    /// Each buffer's byte range in `bytes` (empty for tensors computed at run time).
    public let buffers: [Range<Int>]
    /// Named metadata buffers ("min_runtime_version", …): name → buffer index.
    public let metadata: [(name: String, buffer: Int)]
    /// The whole file.
    public let bytes: [UInt8]

    /// Reads and checks a `.tflite` file.
    public init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw TFLiteError("cannot read the TFLite model \(url.path): \(failureReason(error))")
        }
        try self.init(bytes: [UInt8](data), name: url.lastPathComponent)
    }

    public init(bytes: [UInt8], name: String) throws {
        let buffer = FlatBuffer(bytes: bytes, name: name)
        guard bytes.count >= 8, bytes[4..<8].elementsEqual("TFL3".utf8) else {
            throw buffer.error("not a TFLite model (no \"TFL3\" identifier at byte 4)")
        }
        let model = try buffer.root()
        self.name = name
        self.bytes = bytes
        version = try model.u32(0)
        description = try model.string(3)
        operatorCodes = try model.tables(1, "operator code").map(TFLiteOperatorCode.init)
        buffers = try model.tables(4, "buffer").map { table in
            if let range = try table.byteRange(0) { return range }
            // Models over 2 GB keep buffers after the FlatBuffer, addressed by file offset and size.
            let offset = try table.u64(1), size = try table.u64(2)
            guard offset > 1, size > 0 else { return 0..<0 }
            guard offset <= UInt64(bytes.count), size <= UInt64(bytes.count) - offset else {
                throw buffer.error("\(table.what): data at offset \(offset) (+\(size)) lies outside the file (\(bytes.count) bytes)")
            }
            return Int(offset)..<Int(offset + size)
        }
        subgraphs = try model.tables(2, "subgraph").map(TFLiteSubgraph.init)
        metadata = try model.tables(6, "metadata").map { (try $0.string(0) ?? "", Int(try $0.u32(1))) }
        guard !subgraphs.isEmpty else { throw buffer.error("the model has no subgraph") }
        try validate(buffer)
    }

    /// Every index a tensor or operator holds must point at something that exists.
    private func validate(_ buffer: FlatBuffer) throws {
        for entry in metadata where !buffers.indices.contains(entry.buffer) {
            throw buffer.error("metadata '\(entry.name)': buffer \(entry.buffer) does not exist (\(buffers.count) buffers)")
        }
        for (s, graph) in subgraphs.enumerated() {
            for (t, tensor) in graph.tensors.enumerated() where !buffers.indices.contains(tensor.buffer) {
                throw buffer.error("subgraph \(s), tensor \(t) ('\(tensor.name)'): buffer \(tensor.buffer) does not exist (\(buffers.count) buffers)")
            }
            for index in graph.inputs + graph.outputs where !graph.tensors.indices.contains(index) {
                throw buffer.error("subgraph \(s): input/output tensor \(index) does not exist (\(graph.tensors.count) tensors)")
            }
            for (o, op) in graph.operators.enumerated() {
                guard operatorCodes.indices.contains(op.opcodeIndex) else {
                    throw buffer.error("subgraph \(s), operator \(o): operator code \(op.opcodeIndex) does not exist (\(operatorCodes.count) codes)")
                }
                // -1 marks an optional input that is left out.
                for index in op.inputs + op.outputs where index != -1 && !graph.tensors.indices.contains(index) {
                    throw buffer.error("subgraph \(s), operator \(o) (\(operatorCodes[op.opcodeIndex].name)): tensor \(index) does not exist (\(graph.tensors.count) tensors)")
                }
            }
        }
    }

    /// The constant bytes of a tensor (empty for tensors computed at run time).
    public func data(of tensor: TFLiteTensor) -> ArraySlice<UInt8> { bytes[buffers[tensor.buffer]] }

    /// How often each operator (builtin name or custom code) occurs in a subgraph.
    public func operatorCounts(subgraph: Int = 0) -> [String: Int] {
        subgraphs[subgraph].operators.reduce(into: [:]) { $0[operatorCodes[$1.opcodeIndex].name, default: 0] += 1 }
    }
}

/// Which operator an operator index refers to: a builtin, or a custom op by name.
public struct TFLiteOperatorCode: Equatable {
    public let builtin: TFLiteBuiltinOperator
    /// The custom op's name when `builtin == .custom` ("Convolution2DTransposeBias").
    public let customCode: String?
    public let version: Int32

    /// The builtin's name, or the custom code.
    public var name: String { builtin == .custom ? customCode ?? "CUSTOM" : builtin.description }

    init(_ table: FlatTable) throws {
        // Codes above 127 moved from the byte field 0 (now `deprecated_builtin_code`) to the int field 3;
        // writers fill both with the smaller of the code and 127, so the larger of the two is the code.
        let deprecated = Int32(try table.i8(0))
        let current = try table.i32(3)
        builtin = TFLiteBuiltinOperator(rawValue: max(deprecated, current))
        customCode = try table.string(1)
        version = try table.i32(2, default: 1)
    }
}

public struct TFLiteSubgraph {
    public let name: String?
    public let tensors: [TFLiteTensor]
    public let inputs: [Int]
    public let outputs: [Int]
    public let operators: [TFLiteOperator]

    init(_ table: FlatTable) throws {
        tensors = try table.tables(0, "tensor").map(TFLiteTensor.init)
        inputs = try table.i32Vector(1).map(Int.init)
        outputs = try table.i32Vector(2).map(Int.init)
        operators = try table.tables(3, "operator").map(TFLiteOperator.init)
        name = try table.string(4)
    }
}

public struct TFLiteTensor: Equatable {
    /// The number of elements, nil when the shape's product overflows (a corrupt file).
    public var elementCount: Int? {
        var count = 1
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            if overflow { return nil }
            count = product
        }
        return count
    }

    public let name: String
    /// As stored: NHWC for images, OHWI for convolution weights.
    public let shape: [Int]
    public let type: TFLiteTensorType
    /// Index into `TFLiteModel.buffers`; buffer 0 is the empty buffer of run-time tensors.
    public let buffer: Int

    init(_ table: FlatTable) throws {
        shape = try table.i32Vector(0).map(Int.init)
        type = TFLiteTensorType(rawValue: try table.i8(1))
        buffer = Int(try table.u32(2))
        name = try table.string(3) ?? ""
        if let bad = shape.first(where: { $0 < 0 }) {
            throw table.buffer.error("\(table.what) ('\(name)'): negative dimension \(bad) in shape \(shape)")
        }
    }
}

public struct TFLiteOperator {
    public let opcodeIndex: Int
    /// Tensor indices; -1 marks a left-out optional input.
    public let inputs: [Int]
    public let outputs: [Int]
    public let options: TFLiteOptions
    /// The opaque parameter bytes of a custom op.
    public let customOptions: [UInt8]

    init(_ table: FlatTable) throws {
        opcodeIndex = Int(try table.u32(0))
        inputs = try table.i32Vector(1).map(Int.init)
        outputs = try table.i32Vector(2).map(Int.init)
        options = try TFLiteOptions(type: try table.u8(3), table: try table.table(4, "builtin options"),
                                   owner: table)
        customOptions = try table.byteRange(5).map { Array(table.buffer.bytes[$0]) } ?? []
    }
}

/// TFLite's element types (schema enum `TensorType`).
public struct TFLiteTensorType: RawRepresentable, Equatable, Hashable, CustomStringConvertible {
    public let rawValue: Int8
    public init(rawValue: Int8) { self.rawValue = rawValue }

    public static let float32 = Self(rawValue: 0)
    public static let float16 = Self(rawValue: 1)
    public static let int32 = Self(rawValue: 2)
    public static let uint8 = Self(rawValue: 3)
    public static let int64 = Self(rawValue: 4)
    public static let int8 = Self(rawValue: 9)

    public var description: String {
        switch self {
        case .float32: "FLOAT32"
        case .float16: "FLOAT16"
        case .int32: "INT32"
        case .uint8: "UINT8"
        case .int64: "INT64"
        case .int8: "INT8"
        default: "TensorType(\(rawValue))"
        }
    }
}

/// TFLite's builtin operators (schema enum `BuiltinOperator`); named constants for the ones this
/// reader knows, any other code is kept as a number.
public struct TFLiteBuiltinOperator: RawRepresentable, Equatable, Hashable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let add = Self(rawValue: 0)
    public static let averagePool2D = Self(rawValue: 1)
    public static let concatenation = Self(rawValue: 2)
    public static let conv2D = Self(rawValue: 3)
    public static let depthwiseConv2D = Self(rawValue: 4)
    public static let dequantize = Self(rawValue: 6)
    public static let logistic = Self(rawValue: 14)
    public static let maxPool2D = Self(rawValue: 17)
    public static let mul = Self(rawValue: 18)
    public static let relu = Self(rawValue: 19)
    public static let relu6 = Self(rawValue: 21)
    public static let reshape = Self(rawValue: 22)
    public static let resizeBilinear = Self(rawValue: 23)
    public static let custom = Self(rawValue: 32)
    public static let mean = Self(rawValue: 40)
    public static let hardSwish = Self(rawValue: 117)

    private static let names: [Int32: String] = [
        0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 6: "DEQUANTIZE",
        14: "LOGISTIC", 17: "MAX_POOL_2D", 18: "MUL", 19: "RELU", 21: "RELU6", 22: "RESHAPE", 23: "RESIZE_BILINEAR",
        32: "CUSTOM", 40: "MEAN", 117: "HARD_SWISH",
    ]

    public var description: String { Self.names[rawValue] ?? "BuiltinOperator(\(rawValue))" }
}
