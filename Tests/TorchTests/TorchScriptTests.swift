import Foundation
import BackdropTestSupport
import XCTest

@testable import Torch

/// A small conv + self-attention model with diffusers-style keys (`attn.to_out.0`).
final class ConvAttention: Module {
    final class Attention: Module {
        let to_q: Linear, to_k: Linear, to_v: Linear
        let to_out: [Module]
        let heads: Int

        init(channels: Int, heads: Int) throws {
            to_q = try Linear(channels, channels, bias: false)
            to_k = try Linear(channels, channels, bias: false)
            to_v = try Linear(channels, channels, bias: false)
            to_out = [try Linear(channels, channels), try Dropout(0.0)]
            self.heads = heads
            super.init()
        }

        /// `[B, N, C]` → `[B, N, C]`
        func callAsFunction(_ x: Tensor) throws -> Tensor {
            let (b, n, c) = (try x.size(0), try x.size(1), try x.size(2))
            func split(_ t: Tensor) throws -> Tensor {
                try t.reshape([b, n, heads, c / heads]).transpose(1, 2)
            }
            let out = try F.scaledDotProductAttention(split(to_q(x)), split(to_k(x)), split(to_v(x)))
            let merged = try out.transpose(1, 2).reshape([b, n, c])
            return try (to_out[0] as! Linear)(merged)
        }
    }

    let conv: Conv2d
    let norm: GroupNorm
    let attn: Attention

    override init() {
        conv = try! Conv2d(3, 8, kernelSize: 3, padding: 1)
        norm = try! GroupNorm(groups: 2, channels: 8)
        attn = try! Attention(channels: 8, heads: 2)
        super.init()
    }

    /// `[B, 3, H, W]` → `[B, 8, H, W]`
    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let h = try norm(conv(x)).silu()
        let (b, c, height, width) = (try h.size(0), try h.size(1), try h.size(2), try h.size(3))
        let tokens = try h.flatten(start: 2, end: 3).transpose(1, 2)
        let attended = try tokens + attn(tokens)
        return try attended.transpose(1, 2).reshape([b, c, height, width])
    }
}

final class TorchScriptTests: XCTestCase {
    func testTracedExportRoundTripKeepsNamesAndOutputs() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = ConvAttention()
        model.eval()
        let input = try Tensor.randn([2, 3, 6, 5], generator: Generator(seed: 5))
        let expected = try withNoGrad { try model(input) }

        let script = try model.traced(inputs: [input]) { [try model($0[0])] }
        let url = directory.appendingPathComponent("model.pt")
        try script.save(to: url)

        let loaded = try ScriptModule(contentsOf: url)
        let swiftNames = model.namedParameters().map(\.0)
        XCTAssertEqual(try loaded.namedParameters().map(\.0).sorted(), swiftNames.sorted())
        XCTAssertTrue(swiftNames.contains("attn.to_out.0.weight"))
        // Same values under the same names, so the graph reads the parameters rather than constants.
        let params = Dictionary(uniqueKeysWithValues: try loaded.namedParameters())
        for (name, p) in model.namedParameters() {
            XCTAssertEqual(try TestSupport.maxAbsDifference(params[name]!, p), 0, name)
        }
        let output = try withNoGrad { try loaded.forward(input)[0] }
        XCTAssertLessThan(try TestSupport.maxAbsDifference(output, expected), 1e-5)

        // A different batch and spatial size still runs (shapes come from the tensors, not constants
        // … except where Swift read them: this model reshapes with sizes it read, so they are baked).
        XCTAssertThrowsError(try loaded.forward(Tensor.zeros([1, 3, 4, 4])))

        // Python's torch.jit.load reads the same file, same names, same outputs.
        try Safetensors.save(["input": input, "output": expected], to: directory.appendingPathComponent("io.safetensors"))
        try JSONSerialization.data(withJSONObject: swiftNames).write(to: directory.appendingPathComponent("names.json"))
        let python = try TestSupport.runPythonTool("make_nn_fixtures.py", ["--check-torchscript", directory.path])
        XCTAssertEqual(python.status, 0, python.output)
    }

    /// Small elementwise ops take a direct path in the bridge; under tracing they must still be
    /// recorded, not baked in as constants.
    func testSmallElementwiseOpsAreRecordedWhenTracing() throws {
        final class Scale: Module {
            let weight: Parameter
            override init() {
                weight = try! Parameter(.full([4], 2))
                super.init()
            }
        }
        let model = Scale()
        model.freeze()
        let script = try model.traced(inputs: [try Tensor.ones([4]), try Tensor.ones([4])]) {
            [try ($0[0] + $0[1]) * model.weight / $0[1] - $0[0]]
        }
        let a = try Tensor([1, 2, 3, 4] as [Float]), b = try Tensor([4, 3, 2, 1] as [Float])
        let expected = try ((a + b) * 2.0 / b - a).toArray(Float.self)
        XCTAssertEqual(try script.run("forward", [a, b])[0].toArray(Float.self), expected)
    }

    /// Tensors made from Swift values inside a traced function enter the graph as constants with
    /// their values (a trace sees the allocation but not the bytes copied into it).
    func testSwiftValuesInsideATraceBecomeConstants() throws {
        final class Empty: Module {}
        let script = try Empty().traced(inputs: [try Tensor.zeros([4])]) {
            [try $0[0] + Tensor([1, 2, 3, 4] as [Float]) * Tensor(scalar: Float(10))]
        }
        XCTAssertEqual(try script.forward(Tensor.ones([4]))[0].toArray(Float.self), [11, 21, 31, 41])
    }

    func testLoadErrorsAreThrown() throws {
        XCTAssertThrowsError(try ScriptModule(contentsOf: URL(fileURLWithPath: "/nonexistent/model.pt"))) {
            XCTAssertTrue("\($0)".contains("/nonexistent/model.pt"))
        }
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let garbage = directory.appendingPathComponent("garbage.pt")
        try Data("not a zip".utf8).write(to: garbage)
        XCTAssertThrowsError(try ScriptModule(contentsOf: garbage)) { XCTAssertTrue("\($0)".contains("garbage.pt")) }
    }

    func testTracingErrorLeavesNoTraceBehind() throws {
        let model = ConvAttention()
        XCTAssertThrowsError(try model.traced(inputs: [try Tensor.zeros([1, 4, 4, 4])]) { [try model($0[0])] })
        // A later trace on this thread works.
        let script = try model.traced(inputs: [try Tensor.zeros([1, 3, 4, 4])]) { [try model($0[0])] }
        XCTAssertEqual(try script.forward(Tensor.zeros([1, 3, 4, 4]))[0].shape, [1, 8, 4, 4])
    }
}
