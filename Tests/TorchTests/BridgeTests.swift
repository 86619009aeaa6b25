import Foundation
import BackdropTestSupport
import XCTest

@testable import Torch

/// The C bridge's contract: errors become throws with LibTorch's message, handles never leak.
final class BridgeTests: XCTestCase {
    func testLibTorchErrorBecomesThrowAndProcessSurvives() throws {
        let a = try Tensor.ones([2, 3]), b = try Tensor.ones([4, 5])
        XCTAssertThrowsError(try a.matmul(b)) { error in
            XCTAssertTrue("\(error)".contains("cannot be multiplied"), "\(error)")
        }
        // The error is consumed: the next successful call reports nothing stale.
        XCTAssertEqual(try (a + 1.0).sum().item(), 12)
        XCTAssertThrowsError(try Tensor.full([-1], 0)) { XCTAssertTrue("\($0)".contains("negative dimension")) }
    }

    func testErrorsStayOnTheirThread() throws {
        final class Messages: @unchecked Sendable {
            private let lock = NSLock()
            private(set) var all: [String] = []
            func append(_ m: String) { lock.lock(); all.append(m); lock.unlock() }
        }
        let group = DispatchGroup()
        let collected = Messages()
        for i in 0..<4 {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                do {
                    _ = try Tensor.ones([2, i + 2]).matmul(try Tensor.ones([7, 2]))
                } catch {
                    collected.append("\(error)")
                }
            }
        }
        group.wait()
        let messages = collected.all
        XCTAssertEqual(messages.count, 4)
        for i in 0..<4 { XCTAssertTrue(messages.contains { $0.contains("(2x\(i + 2) and 7x2)") }, "\(messages)") }
    }

    /// 10⁶ small ops must not grow resident memory: every handle is released.
    func testNoLeakOverAMillionOps() throws {
        let a = try Tensor([1, 2, 3, 4] as [Float]), b = try Tensor([4, 3, 2, 1] as [Float])
        for _ in 0..<20_000 { _ = try a + b }  // warm the allocator
        let before = TestSupport.residentMemory()
        for _ in 0..<1_000_000 { _ = try a + b }
        let grown = TestSupport.residentMemory() - before
        XCTAssertLessThan(grown, 8 << 20, "resident memory grew by \(grown >> 10) KiB over 10⁶ ops")
    }

    /// The bridge's direct loop for small same-shape tensors must agree bit for bit with LibTorch's
    /// kernels (reached here through non-contiguous views of the same values), and step aside for
    /// autograd.
    func testSmallTensorFastPathIsExact() throws {
        for dtype in [DType.float32, .float64] {
            let values = try Tensor.randn([2, 50], dtype: dtype, generator: Generator(seed: 1))
            let special = try Tensor([Double.nan, .infinity, -.infinity, 0, -0.0, 1e-310], shape: [6]).to(dtype: dtype)
            let a = try Tensor.cat([values.flatten(start: 0, end: 1), special], dim: 0)
            let b = try a.flip([0])
            let aStrided = try Tensor.stack([a, a], dim: 1).select(dim: 1, index: 0)
            XCTAssertFalse(aStrided.isContiguous)
            for (fast, generic) in [(try a + b, try aStrided + b), (try a - b, try aStrided - b),
                                    (try a * b, try aStrided * b), (try a / b, try aStrided / b)] {
                XCTAssertEqual(try fast.rawBytes(), try generic.rawBytes(), "\(dtype)")
            }
        }
        let x = try Tensor.ones([3]).requiringGrad()
        let y = try x * x
        XCTAssertTrue(y.requiresGrad)
        try y.sum().backward()
        XCTAssertEqual(try x.grad!.toArray(Float.self), [2, 2, 2])
    }

    func testRuntimeSettings() throws {
        let threads = Runtime.threads
        Runtime.threads = 1
        XCTAssertEqual(Runtime.threads, 1)
        Runtime.threads = threads

        XCTAssertEqual(Runtime.defaultDType, .float32)
        Runtime.defaultDType = .float64
        XCTAssertEqual(try Tensor.zeros([1]).dtype, .float64)
        Runtime.defaultDType = .float32
        XCTAssertEqual(try Tensor.zeros([1]).dtype, .float32)

        XCTAssertEqual(try Device(parsing: "cuda:1"), .cuda(1))
        XCTAssertThrowsError(try Device(parsing: "tpu"))
        if Runtime.cudaDeviceCount == 0 {
            XCTAssertEqual(Device.best, .cpu)
            XCTAssertThrowsError(try Tensor.zeros([1], device: .cuda(0)))
        } else {
            XCTAssertEqual(try Tensor.ones([2], device: .best).to(device: .cpu).sum().item(), 2)
        }
        Runtime.seed(7)
        let first = try Tensor.randn([3]).toArray(Float.self)
        Runtime.seed(7)
        XCTAssertEqual(try Tensor.randn([3]).toArray(Float.self), first)
    }
}

/// Direct access to a tensor's storage, the zero-copy path of the call pipeline's 8-bit stages.
final class DirectDataAccessTests: XCTestCase {
    func testReadsTheTensorsOwnBytesAndCopiesOnlyWhenNeeded() throws {
        let t = try Tensor.arange(0, 12, dtype: .float32).reshape([3, 4])
        let direct: [Float] = try t.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        XCTAssertEqual(direct, try t.toArray(Float.self))
        let transposed = try t.mT()
        XCTAssertFalse(transposed.isContiguous)
        let viaCopy: [Float] = try transposed.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        XCTAssertEqual(viaCopy, try transposed.contiguous().toArray(Float.self))
    }

    func testWritesInPlaceOnlyIntoContiguousTensors() throws {
        let t = try Tensor.zeros([2, 3], dtype: .uint8)
        try t.withUnsafeMutableBytes { bytes in
            for i in 0..<bytes.count { bytes[i] = UInt8(i * 10) }
        }
        XCTAssertEqual(try t.toArray(UInt8.self), [0, 10, 20, 30, 40, 50])
        XCTAssertThrowsError(try t.mT().withUnsafeMutableBytes { _ in }) { error in
            XCTAssertTrue("\(error)".contains("contiguous"), "\(error)")
        }
    }
}
