import BackdropTestSupport
import Foundation
import Torch
import VirtualBackground
import XCTest

/// The FlatBuffers/TFLite reader on MediaPipe's real selfie segmentation models (`make setup`), and
/// its errors on damaged files.
final class TFLiteModelTests: XCTestCase {
    static func model(_ name: String) throws -> URL { try TestSupport.asset("models/\(name)") }

    /// docs/models.md#mediapipe-selfie-segmentation: the op inventory of both graphs.
    func testGeneralModelOperators() throws {
        let model = try TFLiteModel(contentsOf: Self.model("selfie_segmentation.tflite"))
        XCTAssertEqual(model.subgraphs.count, 1)
        XCTAssertEqual(model.operatorCounts(), [
            "CONV_2D": 43, "DEPTHWISE_CONV_2D": 11, "HARD_SWISH": 11, "RELU": 22, "LOGISTIC": 11, "MUL": 10,
            "ADD": 14, "RESIZE_BILINEAR": 3, "AVERAGE_POOL_2D": 10, "DEQUANTIZE": 110,
            "Convolution2DTransposeBias": 1,
        ])
        let graph = model.subgraphs[0]
        XCTAssertEqual(graph.inputs.map { graph.tensors[$0].name }, ["input_1"])
        XCTAssertEqual(graph.inputs.map { graph.tensors[$0].shape }, [[1, 256, 256, 3]])
        XCTAssertEqual(graph.outputs.map { graph.tensors[$0].shape }, [[1, 256, 256, 1]])
        XCTAssertEqual(graph.inputs.map { graph.tensors[$0].type }, [.float32])

        // Weights are float16 constants behind DEQUANTIZE.
        let dequantized = graph.operators.filter { model.operatorCodes[$0.opcodeIndex].builtin == .dequantize }
        XCTAssertTrue(dequantized.allSatisfy { graph.tensors[$0.inputs[0]].type == .float16 })
        XCTAssertTrue(dequantized.allSatisfy { !model.data(of: graph.tensors[$0.inputs[0]]).isEmpty })

        // Options: the first convolution, the upsampling flags, the custom op's packed parameters.
        let ops = graph.operators.map { ($0, model.operatorCodes[$0.opcodeIndex]) }
        guard case .conv2D(let conv)? = ops.first(where: { $0.1.builtin == .conv2D })?.0.options else {
            return XCTFail("no Conv2DOptions on the first CONV_2D")
        }
        XCTAssertEqual(conv, TFLiteConvOptions(padding: .same, strideH: 2, strideW: 2, dilationH: 1, dilationW: 1,
                                               depthMultiplier: 1, activation: .none))
        let resizes = ops.filter { $0.1.builtin == .resizeBilinear }.map(\.0.options)
        XCTAssertEqual(resizes, Array(repeating: .resizeBilinear(TFLiteResizeOptions(alignCorners: false, halfPixelCenters: true)), count: 3))
        let custom = ops.filter { $0.1.builtin == .custom }
        XCTAssertEqual(custom.map(\.1.customCode), ["Convolution2DTransposeBias"])
        XCTAssertEqual(custom.first?.0.customOptions, [1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0])  // SAME, stride 2×2
        let pools = ops.filter { $0.1.builtin == .averagePool2D }.map(\.0.options)
        guard case .pool2D(let pool)? = pools.first else { return XCTFail("no Pool2DOptions") }
        XCTAssertEqual(pool, TFLitePoolOptions(padding: .valid, strideH: 64, strideW: 64, filterH: 64, filterW: 64, activation: .none))
    }

    func testLandscapeModelOperators() throws {
        let model = try TFLiteModel(contentsOf: Self.model("selfie_segmentation_landscape.tflite"))
        XCTAssertEqual(model.operatorCounts(), [
            "CONV_2D": 43, "DEPTHWISE_CONV_2D": 11, "HARD_SWISH": 11, "RELU": 22, "LOGISTIC": 11, "MUL": 10,
            "ADD": 14, "RESIZE_BILINEAR": 3, "MEAN": 10, "DEQUANTIZE": 110, "Convolution2DTransposeBias": 1,
        ])
        let graph = model.subgraphs[0]
        XCTAssertEqual(graph.inputs.map { graph.tensors[$0].shape }, [[1, 144, 256, 3]])
        XCTAssertEqual(graph.outputs.map { graph.tensors[$0].shape }, [[1, 144, 256, 1]])
        let means = graph.operators.filter { model.operatorCodes[$0.opcodeIndex].builtin == .mean }
        XCTAssertTrue(means.allSatisfy { $0.options == .reducer(keepDims: true) })
    }

    // MARK: Damaged files: errors that name the file, never a crash.

    private func assertFails(_ bytes: [UInt8], _ name: String, containing text: String? = nil,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try TFLiteModel(bytes: bytes, name: name), file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix("\(name):"), "error does not name the file: \(message)", file: file, line: line)
            if let text { XCTAssertTrue(message.contains(text), "'\(message)' lacks '\(text)'", file: file, line: line) }
        }
    }

    func testRejectsNonModels() throws {
        assertFails([], "empty.tflite", containing: "not a TFLite model")
        assertFails(Array("not a flatbuffer at all".utf8), "text.tflite", containing: "TFL3")
        var fake = [UInt8](repeating: 0, count: 64)
        fake.replaceSubrange(4..<8, with: Array("TFL3".utf8))
        fake[0] = 200  // root table offset past the end
        assertFails(fake, "fake.tflite", containing: "outside the file")
    }

    func testTruncatedFilesFail() throws {
        let bytes = [UInt8](try Data(contentsOf: Self.model("selfie_segmentation.tflite")))
        // Cuts everywhere, densely in the structural tail (subgraph, operators, codes). The last 125
        // bytes are a zip (labels.txt) appended after the FlatBuffer, which nothing in the model uses.
        let end = bytes.count - 125
        let cuts = Array(stride(from: 0, to: end, by: 4099)) + Array(stride(from: end - 34_000, to: end, by: 997)) + [end - 1]
        for cut in cuts {
            assertFails(Array(bytes[..<cut]), "cut\(cut).tflite")
        }
    }

    func testBadOffsetsFail() throws {
        let bytes = [UInt8](try Data(contentsOf: Self.model("selfie_segmentation.tflite")))
        var rootPastEnd = bytes
        rootPastEnd.replaceSubrange(0..<4, with: [0xF0, 0xFF, 0xFF, 0x7F])
        assertFails(rootPastEnd, "root.tflite", containing: "outside the file")
        // The root table's vtable offset (first 4 bytes of the table) pointing far away.
        let root = Int(bytes[0]) | Int(bytes[1]) << 8
        var badVTable = bytes
        badVTable.replaceSubrange(root..<root + 4, with: [0x00, 0x00, 0x00, 0x80])
        assertFails(badVTable, "vtable.tflite", containing: "outside the file")
    }

    /// Random single-byte damage in the structural parts: either a clean read (the byte was data) or a
    /// thrown error; compiling what still reads must not crash either.
    func testRandomDamageNeverCrashes() throws {
        let bytes = [UInt8](try Data(contentsOf: Self.model("selfie_segmentation.tflite")))
        var generator = SplitMix64(seed: 6)
        var read = 0, rejected = 0, ran = 0
        for _ in 0..<150 {
            var damaged = bytes
            let region = generator.next() % 4 == 0 ? 0..<2048 : (bytes.count - 34_000)..<bytes.count
            let position = region.lowerBound + Int(generator.next() % UInt64(region.count))
            damaged[position] ^= UInt8(truncatingIfNeeded: generator.next() | 1)
            do {
                let model = try TFLiteModel(bytes: damaged, name: "damaged.tflite")
                read += 1
                // Run a few of the graphs that still compile: failures are thrown errors too.
                if let graph = try? TFLiteGraph(model: model), ran < 8,
                   let shape = graph.inputShapes.first, shape.count == 4, shape.allSatisfy({ (1...512).contains($0) }) {
                    ran += 1
                    _ = try? graph([Tensor.zeros([1, shape[3], shape[1], shape[2]])])
                }
            } catch {
                XCTAssertTrue("\(error)".hasPrefix("damaged.tflite:"), "\(error)")
                rejected += 1
            }
        }
        XCTAssertGreaterThan(rejected, 0)
        XCTAssertGreaterThan(read, 0)
    }
}
