import Foundation
import Torch
@testable import VirtualBackground
import XCTest

/// Threshold, temporal smoothing, blob removal and feathering on constructed masks.
final class MaskPostProcessorTests: XCTestCase {
    /// An `[h, w]` probability map: `background` everywhere, `value` inside the given rectangles.
    private func map(_ h: Int, _ w: Int, background: Float = 0.1,
                     _ rects: [(y: Range<Int>, x: Range<Int>, value: Float)]) throws -> Tensor {
        var values = [Float](repeating: background, count: h * w)
        for r in rects { for y in r.y { for x in r.x { values[y * w + x] = r.value } } }
        return try Tensor(values, shape: [1, h, w])
    }

    private func values(_ t: Tensor) throws -> [Float] { try t.contiguous().toArray() }

    /// The mask resampler is PyTorch's bilinear interpolation with align_corners=False (half-pixel
    /// centres, clamped edges), enlarging and shrinking, on several planes at once.
    func testPlaneResamplerMatchesPyTorchBilinear() throws {
        let g = try Generator(seed: 7)
        for (source, target) in [((36, 64), (720, 1280)), ((256, 256), (97, 203)), ((5, 3), (5, 3)), ((1, 7), (4, 2))] {
            let planes = try Tensor.rand([2, 1, source.0, source.1], generator: g)
            let ours = try PlaneResampler(from: source, to: target)(planes)
            let reference = try F.interpolate(planes, size: IntPair(target.0, target.1), mode: .bilinear, alignCorners: false)
            XCTAssertEqual(ours.shape, reference.shape)
            XCTAssertLessThan(try (ours - reference).abs().amax().item(), 1e-5, "\(source) → \(target)")
        }
        XCTAssertThrowsError(try PlaneResampler(from: (0, 4), to: (2, 2)))
        XCTAssertThrowsError(try PlaneResampler(from: (4, 4), to: (2, 2))(Tensor.zeros([1, 3, 4])))
    }

    func testThresholdOnly() throws {
        let p = try Tensor([0.2, 0.5, 0.49, 0.9] as [Float], shape: [1, 2, 2])
        let processor = MaskPostProcessor(MaskPostProcessing(threshold: 0.5, temporalSmoothing: 1, minBlobFraction: 0))
        XCTAssertEqual(try values(processor.process(p)), [0, 1, 0, 1])
        processor.settings.threshold = nil
        XCTAssertEqual(try values(processor.process(p)), [0.2, 0.5, 0.49, 0.9])
        XCTAssertEqual(try processor.process(p.squeeze(dim: 0)).shape, [1, 2, 2])
        XCTAssertThrowsError(try processor.process(Tensor.zeros([2, 2, 2])))
    }

    /// s_t = 0.85·p_t + 0.15·s_{t−1} (OBS's temporal_smooth_factor): a one-frame dropout is damped,
    /// a lasting change is followed within frames, `reset()` forgets.
    func testTemporalSmoothing() throws {
        let processor = MaskPostProcessor(MaskPostProcessing(threshold: nil, temporalSmoothing: 0.85, minBlobFraction: 0))
        let on = try Tensor.full([1, 1, 1], 1), off = try Tensor.full([1, 1, 1], 0)
        XCTAssertEqual(try processor.process(on).item(), 1)  // the first frame is taken as it is
        XCTAssertEqual(try processor.process(off).item(), 0.15, accuracy: 1e-6)
        XCTAssertEqual(try processor.process(off).item(), 0.0225, accuracy: 1e-6)
        XCTAssertEqual(try processor.process(on).item(), 0.85 + 0.15 * 0.0225, accuracy: 1e-6)
        processor.reset()
        XCTAssertEqual(try processor.process(off).item(), 0)
        // With a heavier weight on the past, one bad frame does not flip the thresholded mask.
        let steady = MaskPostProcessor(MaskPostProcessing(threshold: 0.5, temporalSmoothing: 0.3, minBlobFraction: 0))
        let dropout = [1, 1, 0, 1].map { Float($0) }
        let masks = try dropout.map { try steady.process(Tensor.full([1, 1, 1], Double($0))).item() }
        XCTAssertEqual(masks, [1, 1, 1, 1])
        // A new size restarts the average instead of failing.
        XCTAssertEqual(try steady.process(Tensor.zeros([1, 2, 2])).shape, [1, 2, 2])
    }

    func testSmallBlobsAreDropped() throws {
        // 40×40 = 1600 px; 5 % = 80 px. A person (20×20 = 400 px), a speck (3×3 = 9 px) and a blob of
        // 9×9 = 81 px, just above the limit.
        let p = try map(40, 40, [(0..<20, 0..<20, 0.9), (30..<33, 30..<33, 0.8), (25..<34, 2..<11, 0.95)])
        let processor = MaskPostProcessor(MaskPostProcessing(temporalSmoothing: 1, minBlobFraction: 0.05))
        let mask = try values(processor.process(p))
        XCTAssertEqual(mask[5 * 40 + 5], 1)        // person kept
        XCTAssertEqual(mask[31 * 40 + 31], 0)      // speck dropped
        XCTAssertEqual(mask[29 * 40 + 6], 1)       // 81-pixel blob kept
        XCTAssertEqual(mask.reduce(0, +), 400 + 81)
        // Diagonal neighbours join one blob (8-connectivity): two 7×7 squares touching at a corner
        // make 98 px ≥ 80 and survive together.
        let diagonal = try map(40, 40, [(0..<7, 0..<7, 0.9), (7..<14, 7..<14, 0.9)])
        XCTAssertEqual(try values(processor.process(diagonal)).reduce(0, +), 98)
        // With soft output the dropped blob's probabilities are zeroed, the rest kept.
        processor.settings.threshold = nil
        let soft = try values(processor.process(p))
        XCTAssertEqual(soft[31 * 40 + 31], 0)
        XCTAssertEqual(soft[5 * 40 + 5], 0.9, accuracy: 1e-6)
    }

    func testSmallHolesAreFilledOnlyWhenAsked() throws {
        // A person with a 2×2 hole in the middle and a notch open to the border.
        var rects: [(y: Range<Int>, x: Range<Int>, value: Float)] = [(0..<20, 0..<20, 0.9)]
        rects.append((9..<11, 9..<11, 0.1))
        rects.append((0..<3, 5..<7, 0.1))
        let p = try map(20, 20, rects)
        let keep = MaskPostProcessor(MaskPostProcessing(temporalSmoothing: 1, minBlobFraction: 0))
        XCTAssertEqual(try values(keep.process(p))[10 * 20 + 10], 0)
        let fill = MaskPostProcessor(MaskPostProcessing(temporalSmoothing: 1, minBlobFraction: 0, maxHoleFraction: 0.05))
        let filled = try values(fill.process(p))
        XCTAssertEqual(filled[10 * 20 + 10], 1)   // enclosed hole filled
        XCTAssertEqual(filled[1 * 20 + 5], 0)     // touches the border: real background
    }

    func testResizeAndFeather() throws {
        // A 4×4 map with the left half on → an 8×16 frame: a binary mask with its edge in the middle.
        let p = try map(4, 4, background: 0, [(0..<4, 0..<2, 1)])
        let processor = MaskPostProcessor(MaskPostProcessing(temporalSmoothing: 1, minBlobFraction: 0))
        let hard = try processor.process(p, height: 8, width: 16)
        XCTAssertEqual(hard.shape, [1, 8, 16])
        XCTAssertEqual(Array(try values(hard).prefix(16)), [Float](repeating: 1, count: 8) + [Float](repeating: 0, count: 8))
        // Feathering with radius 2 ramps over 5 pixels around the edge and keeps the far pixels.
        processor.settings.featherRadius = 2
        let row = Array(try values(processor.process(p, height: 8, width: 16)).prefix(16))
        XCTAssertEqual(row[0], 1)
        XCTAssertEqual(row[15], 0)
        XCTAssertEqual(row[5], 1, accuracy: 1e-6)
        XCTAssertEqual(row[6], 0.8, accuracy: 1e-6)
        XCTAssertEqual(row[7], 0.6, accuracy: 1e-6)
        XCTAssertEqual(row[8], 0.4, accuracy: 1e-6)
        XCTAssertEqual(row[10], 0, accuracy: 1e-6)
        XCTAssertTrue(zip(row, row.dropFirst()).allSatisfy { $0 >= $1 })
    }

    func testConnectedComponents() throws {
        let pattern = """
            ##..#
            ..#.#
            ..#..
            .....
            ##.##
            """
        let mask = pattern.split(separator: "\n").flatMap { $0.trimmingCharacters(in: .whitespaces).map { $0 == "#" } }
        let eight = try ConnectedComponents(mask: mask, width: 5, height: 5, eightConnected: true)
        XCTAssertEqual(eight.sizes.sorted(), [2, 2, 2, 4])  // the centre column joins the top-left pair diagonally
        let four = try ConnectedComponents(mask: mask, width: 5, height: 5, eightConnected: false)
        XCTAssertEqual(four.sizes.sorted(), [2, 2, 2, 2, 2])
        XCTAssertEqual(four.labels[2 * 5 + 2] >= 0, true)
        XCTAssertFalse(four.touchesBorder[Int(four.labels[2 * 5 + 2])])
        XCTAssertEqual(four.labels[3 * 5 + 0], -1)
        XCTAssertThrowsError(try ConnectedComponents(mask: [true], width: 2, height: 2))
    }
}
