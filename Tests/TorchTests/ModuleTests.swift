import Foundation
import BackdropTestSupport
import XCTest

@testable import Torch

/// The Swift mirror of `Layers` in tools/make_nn_fixtures.py: same keys, same forward.
final class FixtureLayers: Module {
    let conv: Conv2d
    let grouped: Conv2d
    let norm: GroupNorm
    let bn: BatchNorm2d
    let up: ConvTranspose2d
    let ln: LayerNorm
    let proj: Sequential
    let embed: Embedding

    override init() {
        conv = try! Conv2d(3, 8, kernelSize: 3, stride: 2, padding: 1)
        grouped = try! Conv2d(8, 8, kernelSize: 3, padding: 2, dilation: 2, groups: 4, bias: false)
        norm = try! GroupNorm(groups: 4, channels: 8)
        bn = try! BatchNorm2d(8)
        up = try! ConvTranspose2d(8, 4, kernelSize: 4, stride: 2, padding: 1, groups: 2)
        ln = try! LayerNorm(4)
        proj = Sequential([try! Linear(4, 6), Activation.silu, try! Linear(6, 5, bias: false)])
        embed = try! Embedding(10, 5)
        super.init()
    }

    func callAsFunction(_ x: Tensor, ids: Tensor) throws -> Tensor {
        var h = try conv(x)
        h = try norm(grouped(h)).silu()
        h = try bn(h)
        h = try up(h)
        h = try ln(h.permute([0, 2, 3, 1]))
        h = try proj(h)
        return try h + embed(ids).unsqueeze(1).unsqueeze(1)
    }
}

final class ModuleTests: XCTestCase {
    lazy var fixtures = try! SafetensorsFile(url: TestSupport.fixture("nn/nn.safetensors"))

    func pythonStateDict() throws -> [String: Tensor] {
        var state: [String: Tensor] = [:]
        for name in fixtures.names where name.hasPrefix("layers.") {
            state[String(name.dropFirst("layers.".count))] = try fixtures.tensor(name)
        }
        return state
    }

    func testStateDictKeysMatchPyTorch() throws {
        let model = FixtureLayers()
        XCTAssertEqual(Set(model.stateDict().keys), Set(try pythonStateDict().keys))
        XCTAssertTrue(model.stateDict().keys.contains("proj.2.weight"))
        XCTAssertFalse(model.stateDict().keys.contains("proj.2.bias"))
        XCTAssertEqual(model.namedBuffers().map(\.0).sorted(),
                       ["bn.num_batches_tracked", "bn.running_mean", "bn.running_var"])
    }

    func testLoadedLayersReproducePyTorchForward() throws {
        let model = FixtureLayers()
        let report = try model.loadStateDict(try pythonStateDict())
        XCTAssertTrue(report.isClean)
        model.eval()
        let y = try model(try fixtures.tensor("layers_in.x"), ids: try fixtures.tensor("layers_in.ids"))
        let error = try TestSupport.maxAbsDifference(y, try fixtures.tensor("layers_out"))
        XCTAssertLessThan(error, 1e-5, "layers forward max-abs error \(error)")
        XCTAssertEqual(try model.bn.num_batches_tracked.itemInt(), 7)
    }

    /// A checkpoint of another model: the message names the first keys and counts the rest.
    func testMismatchMessageStaysShort() throws {
        var report = StateDictReport()
        report.unexpected = (0..<1000).map { "other.layer\($0).weight" }
        let message = report.description
        XCTAssertTrue(message.hasPrefix("unexpected keys: other.layer0.weight, other.layer1.weight"), message)
        XCTAssertTrue(message.hasSuffix("other.layer7.weight and 992 more"), message)
    }

    func testStrictLoadReportsEveryProblemAndChangesNothing() throws {
        let model = FixtureLayers()
        let before = try model.conv.weight.clone()
        var state = try pythonStateDict()
        state["ln.weight"] = nil
        state["extra.weight"] = try Tensor.zeros([1])
        state["embed.weight"] = try Tensor.zeros([11, 5])
        XCTAssertThrowsError(try model.loadStateDict(state)) { error in
            let message = String(describing: error)
            XCTAssertTrue(message.contains("missing keys: ln.weight"), message)
            XCTAssertTrue(message.contains("unexpected keys: extra.weight"), message)
            XCTAssertTrue(message.contains("embed.weight: model [10, 5], checkpoint [11, 5]"), message)
        }
        XCTAssertEqual(try TestSupport.maxAbsDifference(model.conv.weight, before), 0)

        let report = try model.loadStateDict(state, strict: false)
        XCTAssertEqual(report.missing, ["ln.weight"])
        XCTAssertEqual(report.unexpected, ["extra.weight"])
        XCTAssertEqual(report.mismatched.map(\.key), ["embed.weight"])
        XCTAssertEqual(try TestSupport.maxAbsDifference(model.conv.weight, try state["conv.weight"]!), 0)
    }

    func testModesFreezingAndConversion() throws {
        let model = FixtureLayers()
        model.eval()
        XCTAssertFalse(model.namedModules().contains { $0.1.isTraining })
        model.train()
        XCTAssertTrue(model.proj.isTraining)

        model.freeze()
        XCTAssertTrue(model.parameters(trainableOnly: true).isEmpty)
        model.unfreeze()
        XCTAssertEqual(model.parameters(trainableOnly: true).count, model.parameters().count)

        let weight = model.conv.weight
        try model.to(dtype: .float64)
        XCTAssertTrue(weight === model.conv.weight)
        XCTAssertEqual(model.conv.weight.dtype, .float64)
        XCTAssertEqual(model.bn.num_batches_tracked.dtype, .int64, "integer buffers keep their dtype")
        XCTAssertTrue(model.conv.weight.requiresGrad)
    }

    func testSharedParameterListedOnce() throws {
        final class Tied: Module {
            let a: Linear
            let b: Linear
            let shared: Parameter
            init(_ p: Parameter) throws {
                a = try Linear(2, 2)
                b = try Linear(2, 2)
                shared = p
                super.init()
            }
        }
        let p = try Parameter(.ones([2]))
        let model = try Tied(p)
        XCTAssertEqual(model.namedParameters().filter { $0.1 === p }.count, 1)
        // PyTorch's order: a module's own parameters before its children's.
        XCTAssertEqual(model.namedParameters().map(\.0), ["shared", "a.weight", "a.bias", "b.weight", "b.bias"])
    }

    func testDefaultInitialisationBounds() throws {
        let layer = try Linear(100, 50)
        let bound = 1 / 10.0
        XCTAssertLessThanOrEqual(try layer.weight.abs().amax().item(), bound)
        XCTAssertGreaterThan(try layer.weight.abs().amax().item(), bound * 0.9)
        XCTAssertThrowsError(try Conv2d(3, 8, kernelSize: 3, groups: 2))
        XCTAssertThrowsError(try GroupNorm(groups: 3, channels: 8))
    }
}
