import BackdropTestSupport
import Foundation
import Torch
import VirtualBackground
import XCTest

/// Skipping unchanged frames (`SegmentationCache`, `FrameChangeDetector`).
final class SegmentationCacheTests: XCTestCase {
    /// Counts its runs and answers with the frame's mean, so a reused output is recognisable.
    final class CountingSegmenter: PersonSegmenter {
        var runs = 0
        func modelProbabilities(_ image: Tensor) throws -> Tensor {
            runs += 1
            return try Tensor.full([1, 4, 4], image.to(dtype: .float32).mean().item() / 255)
        }
        func probabilities(_ image: Tensor) throws -> Tensor {
            runs += 1
            return try Tensor.zeros([1, image.shape[1], image.shape[2]])
        }
    }

    private func frame(seed: UInt64, height: Int = 90, width: Int = 160) throws -> Tensor {
        try Tensor.randint(0, 256, [3, height, width], dtype: .uint8, generator: Generator(seed: seed))
    }

    func testIdenticalFramesSkipAndChangedFrameRuns() throws {
        let model = CountingSegmenter()
        let cache = SegmentationCache(model)
        let a = try frame(seed: 1)
        let first = try cache.modelProbabilities(a)
        for _ in 0..<4 {
            XCTAssertTrue(try cache.modelProbabilities(a.clone()) === first, "an identical frame reuses the output")
        }
        XCTAssertEqual([model.runs, cache.modelRuns, cache.skippedFrames], [1, 1, 4])

        let b = try frame(seed: 2)
        XCTAssertFalse(try cache.modelProbabilities(b) === first)
        XCTAssertEqual([model.runs, cache.modelRuns, cache.skippedFrames], [2, 2, 4])
        // The frame-size output is cached separately from the model-size one.
        _ = try cache.probabilities(b)
        _ = try cache.probabilities(b)
        XCTAssertEqual([model.runs, cache.skippedFrames], [3, 5])
        // Another frame size always runs.
        _ = try cache.modelProbabilities(frame(seed: 2, height: 80))
        XCTAssertEqual(model.runs, 4)
    }

    /// Noise of ±2 levels averages away on the thumbnail; a person-sized change does not; the
    /// reference stays the last frame the model ran on, so slow drift adds up and triggers a run.
    func testThresholdOnNoiseMotionAndDrift() throws {
        let detector = FrameChangeDetector()
        let base = try frame(seed: 3, height: 360, width: 640).to(dtype: .float32)
        let noise = try Tensor.randint(-2, 3, [3, 360, 640], dtype: .float32, generator: Generator(seed: 4))
        let noisy = try (base + noise).clamp(min: 0, max: 255).to(dtype: .uint8)
        let reference = try detector.thumbnail(base.to(dtype: .uint8))
        let noiseDifference = try XCTUnwrap(detector.difference(detector.thumbnail(noisy), reference))
        XCTAssertLessThan(noiseDifference, detector.threshold)

        // A 160×120 block (8 % of the frame) brightened by 40 levels.
        let moved = try base.clone()
        try moved.slice(dim: 1, start: 100, end: 220).slice(dim: 2, start: 300, end: 460).addScalar_(40)
        let motion = try XCTUnwrap(detector.difference(detector.thumbnail(moved.clamp(min: 0, max: 255).to(dtype: .uint8)), reference))
        XCTAssertGreaterThan(motion, detector.threshold)

        let model = CountingSegmenter()
        let cache = SegmentationCache(model)
        var runsAt: [Int] = []
        for step in 0..<8 {
            // Brightens by 0.4 levels a frame (float frames in [0, 1], so nothing rounds the drift away):
            // each step is below the threshold, three add up to 1.2 and run the model.
            _ = try cache.modelProbabilities((base + 0.4 * Double(step)).clamp(min: 0, max: 255) / 255)
            runsAt.append(model.runs)
        }
        XCTAssertEqual(runsAt, [1, 1, 1, 2, 2, 2, 3, 3], "drift from the last processed frame must trigger runs")
    }

    func testZeroThresholdRunsEveryFrame() throws {
        let model = CountingSegmenter()
        let cache = SegmentationCache(model, detector: FrameChangeDetector(threshold: 0))
        let a = try frame(seed: 5)
        for _ in 0..<3 { _ = try cache.modelProbabilities(a) }
        XCTAssertEqual([model.runs, cache.modelRuns, cache.skippedFrames], [3, 3, 0])
        // reset() forgets the reference frame.
        let cached = SegmentationCache(model)
        _ = try cached.modelProbabilities(a)
        cached.reset()
        _ = try cached.modelProbabilities(a)
        XCTAssertEqual(cached.modelRuns, 2)
    }
}
