import Torch

/// A TFLite subgraph compiled once into a list of LibTorch steps over pre-converted weights, so that
/// running it only runs ops: no parsing, no layout conversion of weights, no shape arithmetic per call.
///
/// Layout: TFLite is NHWC; here every rank-4 value is NCHW (LibTorch's convolution layout), other
/// ranks keep TFLite's order. Rank-4 values are channels-last in memory (`Tensor.channelsLast()`),
/// as the model was built for: LibTorch's NHWC convolutions run this mobile network's small-channel
/// layers several times faster than its NCHW ones (up to 18× on the 16-channel 128² layers).
/// Inputs and outputs are therefore `[B, C, H, W]` for image tensors. Constant subexpressions (the DEQUANTIZE of float16 weights) are folded while compiling.
public final class TFLiteGraph {
    /// The model file's name, for messages.
    public let name: String
    /// Input and output shapes as the model declares them (NHWC for images).
    public let inputShapes: [[Int]]
    public let outputShapes: [[Int]]
    public let inputNames: [String]
    public let outputNames: [String]

    let steps: [Step]
    private let inputIndices: [Int]
    private let outputIndices: [Int]
    private let tensorCount: Int

    /// One operator: computes `output` from the run-time values `inputs` (constants are captured).
    struct Step {
        let label: String
        let inputs: [Int]
        let output: Int
        /// Values whose last use is this step; dropped afterwards to keep the peak memory low.
        var releases: [Int] = []
        let run: ([Tensor]) throws -> Tensor
    }

    public init(model: TFLiteModel, subgraph index: Int = 0) throws {
        guard model.subgraphs.indices.contains(index) else {
            throw TFLiteError("\(model.name): no subgraph \(index) (the model has \(model.subgraphs.count))")
        }
        let graph = model.subgraphs[index]
        name = model.name
        inputIndices = graph.inputs
        outputIndices = graph.outputs
        tensorCount = graph.tensors.count
        inputShapes = graph.inputs.map { graph.tensors[$0].shape }
        outputShapes = graph.outputs.map { graph.tensors[$0].shape }
        inputNames = graph.inputs.map { graph.tensors[$0].name }
        outputNames = graph.outputs.map { graph.tensors[$0].name }

        var compiler = try TFLiteCompiler(model: model, graph: graph)
        var steps: [Step] = []
        var available = Set(graph.inputs)
        for (position, op) in graph.operators.enumerated() {
            guard let step = try compiler.compile(op, at: position) else { continue }  // folded into a constant
            for input in step.inputs where !available.contains(input) {
                throw compiler.error(position, op, "reads tensor \(input) ('\(graph.tensors[input].name)') before any operator computes it")
            }
            available.insert(step.output)
            steps.append(step)
        }
        for output in graph.outputs where !available.contains(output) && compiler.constants[output] == nil {
            throw TFLiteError("\(model.name): output tensor \(output) ('\(graph.tensors[output].name)') is never computed")
        }
        // Each run-time value is released after the last step that reads it (graph outputs never).
        var lastUse: [Int: Int] = [:]
        for (s, step) in steps.enumerated() { for input in step.inputs { lastUse[input] = s } }
        for output in graph.outputs { lastUse[output] = nil }
        for (value, s) in lastUse { steps[s].releases.append(value) }
        self.steps = steps
        self.constantOutputs = Dictionary(uniqueKeysWithValues: graph.outputs.compactMap { i in
            compiler.constants[i].map { (i, $0) }
        })
    }

    /// Outputs that constant folding already computed (none in a real model, but possible).
    private let constantOutputs: [Int: Tensor]

    /// Runs the graph. `inputs` are float32 `[B, C, H, W]` for the model's `[1, H, W, C]` inputs (any
    /// batch size), other ranks in TFLite's order; the outputs follow the same convention.
    public func callAsFunction(_ inputs: [Tensor]) throws -> [Tensor] {
        guard inputs.count == inputIndices.count else {
            throw TFLiteError("\(name): expected \(inputIndices.count) input tensors, got \(inputs.count)")
        }
        var values = [Tensor?](repeating: nil, count: tensorCount)
        for (k, index) in inputIndices.enumerated() {
            let declared = inputShapes[k], given = inputs[k].shape
            let expected = declared.count == 4 ? [given.first ?? 1, declared[3], declared[1], declared[2]] : declared
            guard given == expected else {
                throw TFLiteError("\(name): input '\(inputNames[k])' must be \(expected) (NCHW for the model's NHWC \(declared)), got \(given)")
            }
            let input = try inputs[k].to(dtype: .float32)
            values[index] = input.rank == 4 ? try input.channelsLast() : input
        }
        return try withInferenceMode {
            for step in steps {
                var arguments: [Tensor] = []
                arguments.reserveCapacity(step.inputs.count)
                for input in step.inputs {
                    guard let value = values[input] else {
                        throw TFLiteError("\(name): \(step.label): input tensor \(input) has no value")
                    }
                    arguments.append(value)
                }
                do {
                    values[step.output] = try step.run(arguments)
                } catch let error as TorchError {
                    throw TFLiteError("\(name): \(step.label): \(error.message)")
                }
                for value in step.releases { values[value] = nil }
            }
            return try outputIndices.map { index in
                guard let value = values[index] ?? constantOutputs[index] else {
                    throw TFLiteError("\(name): output tensor \(index) has no value")
                }
                return value
            }
        }
    }
}
