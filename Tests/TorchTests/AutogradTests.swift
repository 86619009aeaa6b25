import Foundation
import BackdropTestSupport
import XCTest

@testable import Torch

final class AutogradTests: XCTestCase {
    func testBackwardOfScalarAndWithGradient() throws {
        let x = try Tensor([1.0, 2.0, 3.0] as [Float]).requiringGrad()
        let y = try (x * x).sum()   // dy/dx = 2x
        try y.backward()
        XCTAssertEqual(try x.grad!.toArray(Float.self), [2, 4, 6])

        try x.setGrad(nil)
        XCTAssertNil(x.grad)
        let z = try x * 3.0
        try z.backward(gradient: Tensor([1.0, 0.5, 0.0] as [Float]))
        XCTAssertEqual(try x.grad!.toArray(Float.self), [3, 1.5, 0])

        // Gradients accumulate until zeroed, as in PyTorch.
        try (x * 3.0).sum().backward()
        XCTAssertEqual(try x.grad!.toArray(Float.self), [6, 4.5, 3])
        try x.grad!.zero_()
        XCTAssertEqual(try x.grad!.toArray(Float.self), [0, 0, 0])
    }

    func testNonScalarBackwardWithoutGradientThrows() throws {
        let x = try Tensor([1.0, 2.0] as [Float]).requiringGrad()
        XCTAssertThrowsError(try (x * 2.0).backward()) { error in
            XCTAssertTrue("\(error)".contains("grad can be implicitly created only for scalar outputs"), "\(error)")
        }
    }

    func testNoGradInferenceAndDetach() throws {
        let x = try Tensor([1.0] as [Float]).requiringGrad()
        let inside = try withNoGrad { try x * 2.0 }
        XCTAssertFalse(inside.requiresGrad)
        XCTAssertTrue(Autograd.isGradEnabled)
        let inferred = try withInferenceMode { try x * 2.0 }
        XCTAssertFalse(inferred.requiresGrad)
        XCTAssertFalse(try (x * 2.0).detach().requiresGrad)
        XCTAssertTrue(try (x * 2.0).requiresGrad)
    }

    func testAutogradGradWithCreateGraph() throws {
        let x = try Tensor([3.0] as [Double]).requiringGrad()
        let y = try x.pow(3.0)  // y' = 3x², y'' = 6x
        let first = try Autograd.grad(outputs: [y], inputs: [x], createGraph: true)[0]!
        XCTAssertEqual(try first.item(), 27, accuracy: 1e-12)
        let second = try Autograd.grad(outputs: [first], inputs: [x])[0]!
        XCTAssertEqual(try second.item(), 18, accuracy: 1e-12)
        let unused = try Tensor([1.0] as [Double]).requiringGrad()
        let z = try x * 2.0
        XCTAssertNil(try Autograd.grad(outputs: [z], inputs: [unused], allowUnused: true)[0])
    }

    /// Checkpointing gives the same gradients for inputs and for parameters used inside.
    func testCheckpointMatchesPlainBackward() throws {
        let layer = try Linear(6, 6)
        let input = try Tensor.randn([4, 6], generator: Generator(seed: 3))
        func block(_ x: Tensor) throws -> Tensor { try layer(layer(x).silu()).tanh() }

        let plainInput = try input.clone().requiringGrad()
        try block(plainInput).square().sum().backward()
        let plainInputGrad = try plainInput.grad!.clone(), plainWeightGrad = try layer.weight.grad!.clone()
        try layer.weight.setGrad(nil)
        try layer.bias!.setGrad(nil)

        let checkpointedInput = try input.clone().requiringGrad()
        let outputs = try Autograd.checkpoint([checkpointedInput], parameters: layer.parameters()) { [try block($0[0])] }
        XCTAssertTrue(outputs[0].requiresGrad)
        try outputs[0].square().sum().backward()
        XCTAssertLessThan(try TestSupport.maxAbsDifference(checkpointedInput.grad!, plainInputGrad), 1e-6)
        XCTAssertLessThan(try TestSupport.maxAbsDifference(layer.weight.grad!, plainWeightGrad), 1e-6)
    }

    /// The recomputation in backward must draw the same dropout mask as the forward pass.
    func testCheckpointReplaysRandomState() throws {
        Runtime.seed(11)
        let w = try Parameter(.ones([1000]))
        let x = try Tensor.linspace(1, 2, count: 1000)
        let y = try Autograd.checkpoint([x], parameters: [w]) { [try F.dropout($0[0] * w, p: 0.5, training: true)] }[0]
        try y.sum().backward()
        // d(sum)/dw = x · mask / (1 − p), with the mask visible in y.
        let expected = try Tensor.where(y.ne(0), x * 2.0, x.zerosLike())
        XCTAssertEqual(try TestSupport.maxAbsDifference(w.grad!, expected), 0)
        let kept = try y.ne(0).sum().item()
        XCTAssertGreaterThan(kept, 400)
        XCTAssertLessThan(kept, 600)
    }

    func testSwiftErrorInsideCheckpointSurfacesAsThrow() throws {
        struct Oops: Error, CustomStringConvertible { var description: String { "closure said no" } }
        let x = try Tensor.ones([2]).requiringGrad()
        XCTAssertThrowsError(try Autograd.checkpoint([x]) { _ in throw Oops() }) { error in
            XCTAssertTrue("\(error)".contains("closure said no"), "\(error)")
        }
        // A LibTorch failure inside the closure too, and the process carries on.
        XCTAssertThrowsError(try Autograd.checkpoint([x]) { [try $0[0].matmul(Tensor.ones([3, 3]))] })
        XCTAssertEqual(try (x + 1.0).sum().item(), 4)
    }

    func testAutocastComputesMatmulsInBFloat16AndRestores() throws {
        let a = try Tensor.randn([4, 8], generator: Generator(seed: 1)), b = try Tensor.randn([8, 3], generator: Generator(seed: 2))
        let inside = try withAutocast(.bfloat16, device: .cpu) { try a.matmul(b) }
        XCTAssertEqual(inside.dtype, .bfloat16)
        XCTAssertLessThan(try TestSupport.maxAbsDifference(inside, a.matmul(b)), 0.1)
        XCTAssertEqual(try a.matmul(b).dtype, .float32, "autocast ends with its scope")
        // Gradients flow back to float32 leaves.
        let w = try b.clone().requiringGrad()
        try withAutocast(.bfloat16, device: .cpu) { try a.matmul(w).to(dtype: .float32).sum() }.backward()
        XCTAssertEqual(w.grad?.dtype, .float32)
    }
}
