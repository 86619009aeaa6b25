import Torch
import XCTest

@testable import MultiView

/// How a panorama's views draw their initial latents (docs/models.md#initial-noise).
final class InitialNoiseTests: XCTestCase {
    func draw(_ kind: InitialNoise, views: Int = 8, size: Int = 16, seed: UInt64 = 5) throws -> Tensor {
        try kind.draw(views: views, channels: 4, size: size, generator: Generator(seed: seed))
    }

    func testSharedMeanGivesEveryViewView0sChannelMeansAndKeepsItsOwnDeviations() throws {
        let independent = try draw(.independent), shared = try draw(.sharedMean)
        XCTAssertEqual(shared.shape, [8, 4, 16, 16])
        let means = try shared.mean(dims: [2, 3], keepDim: true)
        let spread: Double = try (means - means.slice(dim: 0, start: 0, end: 1)).abs().max().item()
        XCTAssertLessThan(spread, 1e-6, "every view has view 0's per-channel means")
        let ownMeans = try independent.mean(dims: [2, 3], keepDim: true)
        let firstViewChange: Double = try (shared.select(dim: 0, index: 0) - independent.select(dim: 0, index: 0)).abs().max().item()
        XCTAssertLessThan(firstViewChange, 1e-6, "view 0 is the independent draw")
        let deviations: Double = try ((shared - means) - (independent - ownMeans)).abs().max().item()
        XCTAssertLessThan(deviations, 1e-5, "each view keeps its own deviations from its mean")
        let meanGap: Double = try (ownMeans.slice(dim: 0, start: 1) - ownMeans.slice(dim: 0, start: 0, end: 1)).abs().max().item()
        XCTAssertGreaterThan(meanGap, 1e-2, "independent views have means of their own")
    }

    /// Each view must stay exactly N(0, I), the UNet's training noise: per-channel means of variance
    /// 1/(h·w), unit variance per element; only the views' means are one draw.
    func testEveryViewIsStillStandardNormal() throws {
        let (size, draws) = (8, 400)
        let noise = try Tensor.cat((0..<draws).map { try draw(.sharedMean, views: 4, size: size, seed: UInt64(100 + $0)) })
        let view3 = try noise.reshape([draws, 4, 4, size, size]).select(dim: 1, index: 3)
        let meanVariance: Double = try view3.mean(dims: [2, 3]).square().mean().item()
        let expected = 1 / Double(size * size)
        XCTAssertEqual(meanVariance / expected, 1, accuracy: 0.12, "a view's channel means keep variance 1/(h·w)")
        let elementVariance: Double = try view3.square().mean().item()
        XCTAssertEqual(elementVariance, 1, accuracy: 0.02)
        let elementMean: Double = try view3.mean().item()
        XCTAssertEqual(elementMean, 0, accuracy: 0.02)
    }
}
