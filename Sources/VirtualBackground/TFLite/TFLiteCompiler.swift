import Torch

/// Turns TFLite operators into `TFLiteGraph.Step`s. Holds the constant tensors (in TFLite's layout)
/// and folds operators whose inputs are all constant (DEQUANTIZE of the float16 weights).
struct TFLiteCompiler {
    let model: TFLiteModel
    let graph: TFLiteSubgraph
    /// Constant values by tensor index, in TFLite's layout and dtype.
    var constants: [Int: Tensor] = [:]
    /// The position of the last operator that reads each tensor.
    private var lastReader: [Int: Int] = [:]
    /// Tensors that must never be overwritten: the caller's inputs, the outputs, and both sides of
    /// operators whose result may share storage with their input (RESHAPE views, a no-op DEQUANTIZE).
    private var protected: Set<Int> = []

    typealias Step = TFLiteGraph.Step
    /// The largest tensor a graph may declare (2²⁸ elements, 1 GiB of float32).
    static let maxElements = 1 << 28

    init(model: TFLiteModel, graph: TFLiteSubgraph) throws {
        self.model = model
        self.graph = graph
        // Shapes size tables and buffers made while compiling: a damaged file must not ask for terabytes.
        for (index, tensor) in graph.tensors.enumerated() {
            guard let count = tensor.elementCount, count <= Self.maxElements else {
                throw TFLiteError("\(model.name): tensor \(index) ('\(tensor.name)'): implausible shape \(tensor.shape)")
            }
        }
        for (index, tensor) in graph.tensors.enumerated() where !model.buffers[tensor.buffer].isEmpty {
            constants[index] = try constantTensor(tensor, index: index)
        }
        protected = Set(graph.inputs + graph.outputs)
        for (position, op) in graph.operators.enumerated() {
            for input in op.inputs where input >= 0 { lastReader[input] = position }
            let builtin = model.operatorCodes[op.opcodeIndex].builtin
            if builtin == .reshape || builtin == .dequantize { protected.formUnion(op.inputs + op.outputs) }
        }
    }

    /// Whether the operator at `position` may overwrite run-time tensor `index` in place: nothing reads
    /// it afterwards and its storage is its own.
    func consumable(_ index: Int, at position: Int) -> Bool {
        lastReader[index] == position && !protected.contains(index) && constants[index] == nil
    }

    private func constantTensor(_ tensor: TFLiteTensor, index: Int) throws -> Tensor {
        let dtype: DType
        switch tensor.type {
        case .float32: dtype = .float32
        case .float16: dtype = .float16
        case .int32: dtype = .int32
        case .int64: dtype = .int64
        case .uint8: dtype = .uint8
        case .int8: dtype = .int8
        default: throw TFLiteError("\(model.name): tensor \(index) ('\(tensor.name)'): type \(tensor.type) is not supported")
        }
        let bytes = model.data(of: tensor)
        let needed = tensor.elementCount.map { $0.multipliedReportingOverflow(by: dtype.byteSize) }
        guard let needed, !needed.overflow, bytes.count == needed.partialValue else {
            throw TFLiteError("\(model.name): tensor \(index) ('\(tensor.name)'): buffer has \(bytes.count) bytes, which shape \(tensor.shape) of \(tensor.type) does not fit")
        }
        return try bytes.withUnsafeBytes { try Tensor(bytes: $0, shape: tensor.shape, dtype: dtype) }
    }

    func error(_ position: Int, _ op: TFLiteOperator, _ message: String) -> TFLiteError {
        TFLiteError("\(model.name): operator \(position) (\(model.operatorCodes[op.opcodeIndex].name)): \(message)")
    }

    func shape(_ index: Int) -> [Int] { graph.tensors[index].shape }

    /// A step for `op`, or nil when the operator was folded into a constant.
    mutating func compile(_ op: TFLiteOperator, at position: Int) throws -> Step? {
        let code = model.operatorCodes[op.opcodeIndex]
        guard op.outputs.count == 1, op.outputs[0] >= 0 else {
            throw error(position, op, "expected one output, got \(op.outputs.count)")
        }
        let context = OpContext(compiler: self, op: op, position: position, label: "operator \(position) (\(code.name))")
        if code.builtin == .custom {
            guard code.customCode == "Convolution2DTransposeBias" else {
                throw error(position, op, "custom operator '\(code.name)' is not supported")
            }
            return try context.transposeConvBias()
        }
        switch code.builtin {
        case .dequantize:
            let input = try context.input(0)
            if let value = constants[input] {
                constants[op.outputs[0]] = try value.to(dtype: .float32)
                return nil
            }
            return context.step([input]) { try $0[0].to(dtype: .float32) }
        case .conv2D: return try context.convolution(depthwise: false)
        case .depthwiseConv2D: return try context.convolution(depthwise: true)
        case .hardSwish: return try context.unary { try $0.hardswish() }
        case .relu:
            // In place when this is the input's last use: saves allocating and filling a new tensor.
            if consumable(try context.input(0), at: position) {
                let zero = try Tensor(scalar: Float(0))
                return try context.unary { x in try x.maximum_(zero); return x }
            }
            return try context.unary { try $0.relu() }
        case .relu6: return try context.unary { try $0.clamp(min: 0, max: 6) }
        case .logistic: return try context.unary { try $0.sigmoid() }
        case .add: return try context.binary({ try $0 + $1 }, inPlace: { try $0.add_($1) })
        case .mul: return try context.binary({ try $0 * $1 }, inPlace: { try $0.mul_($1) })
        case .resizeBilinear: return try context.resizeBilinear()
        case .averagePool2D: return try context.pool(max: false)
        case .maxPool2D: return try context.pool(max: true)
        case .mean: return try context.mean()
        case .reshape: return try context.reshape()
        default:
            throw error(position, op, "operator \(code.builtin) is not supported")
        }
    }
}

/// What one operator's compilation needs: its compiler (constants, shapes) and where it is.
struct OpContext {
    let compiler: TFLiteCompiler
    let op: TFLiteOperator
    let position: Int
    let label: String

    var output: Int { op.outputs[0] }
    var outputShape: [Int] { compiler.shape(output) }

    func error(_ message: String) -> TFLiteError { compiler.error(position, op, message) }

    /// The tensor index of input `k`, which has to be present.
    func input(_ k: Int) throws -> Int {
        guard k < op.inputs.count, op.inputs[k] >= 0 else { throw error("input \(k) is missing") }
        return op.inputs[k]
    }

    /// Input `k` as a constant (weights, axes, sizes).
    func constant(_ k: Int) throws -> Tensor {
        let index = try input(k)
        guard let value = compiler.constants[index] else {
            throw error("input \(k) ('\(compiler.graph.tensors[index].name)') has to be a constant")
        }
        return value
    }

    /// The constant input `k` when it is present, nil when the optional input is left out.
    func optionalConstant(_ k: Int) throws -> Tensor? {
        guard k < op.inputs.count, op.inputs[k] >= 0 else { return nil }
        return try constant(k)
    }

    func step(_ inputs: [Int], _ run: @escaping ([Tensor]) throws -> Tensor) -> TFLiteGraph.Step {
        TFLiteGraph.Step(label: label, inputs: inputs, output: output, run: run)
    }

    /// A run-time image input `[1, H, W, C]` (NCHW at run time); returns its index and NHWC shape.
    func imageInput(_ k: Int) throws -> (index: Int, shape: [Int]) {
        let index = try input(k)
        let shape = compiler.shape(index)
        guard shape.count == 4 else { throw error("input \(k) must be rank 4 (NHWC), got \(shape)") }
        guard compiler.constants[index] == nil else { throw error("constant image inputs are not supported") }
        return (index, shape)
    }

    func unary(_ f: @escaping (Tensor) throws -> Tensor) throws -> TFLiteGraph.Step {
        step([try input(0)]) { try f($0[0]) }
    }

    /// Applies TFLite's fused activation after `f`.
    static func fused(_ activation: TFLiteActivation, _ x: Tensor) throws -> Tensor {
        switch activation {
        case .none: return x
        case .relu: return try x.relu()
        case .relu6: return try x.clamp(min: 0, max: 6)
        case .reluN1To1: return try x.clamp(min: -1, max: 1)
        case .tanh: return try x.tanh()
        case .signBit: throw TorchError("the SIGN_BIT fused activation is not supported")
        }
    }
}
