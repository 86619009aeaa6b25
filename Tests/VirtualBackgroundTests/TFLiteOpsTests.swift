import BackdropTestSupport
import Foundation
import Torch
@testable import VirtualBackground
import XCTest

/// The TFLite operator semantics that PyTorch does not share: TF's SAME padding, the legacy bilinear
/// mapping, MediaPipe's transposed convolution, checked against direct transcriptions of the
/// reference kernels.
final class TFLiteOpsTests: XCTestCase {
    func testSamePaddingPutsTheOddPixelLast() {
        XCTAssertTrue(tfSamePadding(input: 256, kernel: 3, stride: 2) == (0, 1))  // the model's first conv
        XCTAssertTrue(tfSamePadding(input: 32, kernel: 5, stride: 2) == (1, 2))
        XCTAssertTrue(tfSamePadding(input: 16, kernel: 5, stride: 1) == (2, 2))
        XCTAssertTrue(tfSamePadding(input: 9, kernel: 3, stride: 2) == (1, 1))
        XCTAssertTrue(tfSamePadding(input: 10, kernel: 3, stride: 1, dilation: 2) == (2, 2))
        XCTAssertTrue(tfSamePadding(input: 4, kernel: 1, stride: 2) == (0, 0))
    }

    func testLegacyBilinearMapping() throws {
        // TF legacy: source = dst · in/out, upper neighbour clamped to the last pixel.
        let x = try Tensor([0, 10, 20, 30] as [Float], shape: [1, 1, 1, 4])
        let tf = try ResampleAxis(input: 4, output: 6, dim: 3).resample(x).toArray(Float.self)
        let expected: [Float] = [0, 20.0 / 3, 40.0 / 3, 20, 80.0 / 3, 30]
        for (a, b) in zip(tf, expected) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        // OpenCV's warp (MediaPipe's model input): the same mapping on a 1/32 grid, zero past the border.
        let cv = try ModelInputSampler(from: (1, 2), to: (1, 4))(Tensor([8, 16] as [Float], shape: [1, 1, 1, 2]))
        XCTAssertEqual(try cv.toArray(Float.self), [8, 12, 16, 8])
        let edge = try ModelInputSampler(from: (2, 1), to: (4, 1))(Tensor([8, 16] as [Float], shape: [1, 1, 2, 1]))
        XCTAssertEqual(try edge.toArray(Float.self), [8, 12, 16, 8])
        // Along the rows too.
        let rows = try ResampleAxis(input: 2, output: 4, dim: 2).resample(Tensor([8, 16] as [Float], shape: [1, 1, 2, 1]))
        XCTAssertEqual(try rows.toArray(Float.self), [8, 12, 16, 16])
    }

    /// MediaPipe's reference loop (transpose_conv_bias.cc), NHWC input and OHWI weights.
    private func referenceTransposeConv(_ input: [Float], h: Int, w: Int, c: Int, _ filter: [Float], o: Int,
                                        kh: Int, kw: Int, _ bias: [Float], sh: Int, sw: Int,
                                        same: Bool) -> (values: [Float], h: Int, w: Int) {
        let padH = same ? max(0, kh - (h - 1) % sh - 1) : 0, padW = same ? max(0, kw - (w - 1) % sw - 1) : 0
        let outH = sh * (h - 1) + kh - padH, outW = sw * (w - 1) + kw - padW
        var out = [Float](repeating: 0, count: outH * outW * o)
        for y in 0..<outH { for x in 0..<outW { for oc in 0..<o { out[(y * outW + x) * o + oc] = bias[oc] } } }
        for iy in 0..<h { for ix in 0..<w { for ic in 0..<c {
            for fy in 0..<kh { for fx in 0..<kw { for oc in 0..<o {
                let oy = iy * sh - padH / 2 + fy, ox = ix * sw - padW / 2 + fx
                guard oy >= 0, oy < outH, ox >= 0, ox < outW else { continue }
                out[(oy * outW + ox) * o + oc] += input[(iy * w + ix) * c + ic] * filter[((oc * kh + fy) * kw + fx) * c + ic]
            } } }
        } } }
        return (out, outH, outW)
    }

    func testTransposeConvBiasMatchesMediaPipesKernel() throws {
        let generator = try Generator(seed: 3)
        // (h, w, kh, kw, sh, sw, same): the model's case, odd SAME totals, VALID, unequal strides; kernels
        // equal to the stride (the depth-to-space path) with two outputs, unequal sides and a crop.
        let configs = [(128, 128, 2, 2, 2, 2, true), (5, 4, 3, 3, 2, 2, true), (4, 4, 4, 4, 2, 2, true),
                       (3, 5, 2, 3, 1, 2, false), (6, 3, 3, 2, 3, 1, true), (5, 7, 3, 2, 3, 2, false),
                       (5, 4, 2, 2, 2, 2, true)]
        for (h, w, kh, kw, sh, sw, same) in configs {
            let (c, o) = (h > 100 ? 16 : 3, h > 100 ? 1 : 2)
            let input = try Tensor.randn([1, h, w, c], generator: generator)
            let filter = try Tensor.randn([o, kh, kw, c], generator: generator)
            let bias = try Tensor.randn([o], generator: generator)
            let conv = try TransposeConvBias(filter: filter, bias: bias, inputHeight: h, inputWidth: w, inputChannels: c,
                                             strideH: sh, strideW: sw, same: same)
            let ours = try conv(input.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).contiguous()
            let reference = referenceTransposeConv(try input.toArray(), h: h, w: w, c: c, try filter.toArray(), o: o,
                                                   kh: kh, kw: kw, try bias.toArray(), sh: sh, sw: sw, same: same)
            XCTAssertEqual(ours.shape, [1, reference.h, reference.w, o], "\((h, w, kh, kw, sh, sw, same))")
            let difference = zip(try ours.toArray(Float.self), reference.values).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(difference, 1e-4, "\((h, w, kh, kw, sh, sw, same))")
        }
    }

    func testGraphChecksItsInput() throws {
        let graph = try TFLiteGraph(model: TFLiteModel(contentsOf: TestSupport.asset("models/selfie_segmentation.tflite")))
        XCTAssertEqual(graph.inputNames, ["input_1"])
        XCTAssertThrowsError(try graph([Tensor.zeros([1, 256, 256, 3])])) { error in
            XCTAssertTrue("\(error)".contains("input_1"), "\(error)")
        }
        XCTAssertThrowsError(try graph([])) { XCTAssertTrue("\($0)".contains("expected 1 input")) }
        // Any batch size runs; outputs stay in [0, 1].
        let out = try graph([Tensor.rand([2, 3, 256, 256], generator: Generator(seed: 1))])[0]
        XCTAssertEqual(out.shape, [2, 1, 256, 256])
        XCTAssertGreaterThanOrEqual(try out.min().item(), 0)
        XCTAssertLessThanOrEqual(try out.max().item(), 1)
    }
}
