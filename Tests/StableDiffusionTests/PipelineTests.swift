import BackdropTestSupport
import Foundation
import StableDiffusion
import Torch
import XCTest

/// The pipeline's wiring on the tiny committed folder (its numbers against diffusers are the
/// pipeline_* parity cases): seeding, batches, negative prompts, guidance, sizes.
final class PipelineTests: XCTestCase {
    static let folder = TestSupport.fixture("parity/pipeline_ddim/model")

    func testSeededNoiseIsDiffusersRandnFromTheGenerator() throws {
        let pipeline = try StableDiffusionPipeline.load(from: Self.folder)
        XCTAssertEqual(pipeline.vaeScaleFactor, 2)
        XCTAssertEqual(pipeline.defaultImageSize, 16)
        XCTAssertTrue(pipeline.scheduler is DDIMScheduler)
        let seeded = try pipeline.latents(prompts: ["a room"], steps: 3, guidanceScale: 5, generator: Generator(seed: 1))
        let noise = try Tensor.randn([1, 4, 8, 8], generator: Generator(seed: 1))
        let explicit = try pipeline.latents(prompts: ["a room"], steps: 3, guidanceScale: 5, latents: noise)
        XCTAssertEqual(try TestSupport.maxAbsDifference(seeded, explicit), 0)
        let other = try pipeline.latents(prompts: ["a room"], steps: 3, guidanceScale: 5, generator: Generator(seed: 2))
        XCTAssertGreaterThan(try TestSupport.maxAbsDifference(seeded, other), 1e-3)
        XCTAssertEqual(pipeline.scheduler.timesteps, [667, 334, 1])
    }

    func testBatchNegativePromptsAndGuidance() throws {
        let pipeline = try StableDiffusionPipeline.load(from: Self.folder, scheduler: .dpm)
        XCTAssertTrue(pipeline.scheduler is DPMSolverMultistepScheduler)
        let noise = try Tensor.randn([2, 4, 8, 8], generator: Generator(seed: 3))
        func run(_ negatives: [String]?, guidance: Double = 7) throws -> Tensor {
            try pipeline.latents(prompts: ["a room", "a kitchen"], negativePrompts: negatives, steps: 4,
                                 guidanceScale: guidance, latents: noise)
        }
        let one = try run(["dark"])
        XCTAssertEqual(one.shape, [2, 4, 8, 8])
        XCTAssertEqual(try TestSupport.maxAbsDifference(one, run(["dark", "dark"])), 0)
        XCTAssertGreaterThan(try TestSupport.maxAbsDifference(one, run(nil)), 1e-4)
        XCTAssertGreaterThan(try TestSupport.maxAbsDifference(one, run(["dark"], guidance: 1)), 1e-4)
        // Each batch row is the prompt's own run.
        let first = try pipeline.latents(prompts: ["a room"], negativePrompts: ["dark"], steps: 4, guidanceScale: 7,
                                         latents: noise.slice(dim: 0, end: 1))
        XCTAssertLessThan(try TestSupport.maxAbsDifference(first, one.slice(dim: 0, end: 1)), 1e-5)
        XCTAssertThrowsError(try run(["a", "b", "c"])) { error in XCTAssertTrue("\(error)".contains("negative prompts"), "\(error)") }

        let images = try pipeline.decode(one)
        XCTAssertEqual(images.shape, [2, 3, 16, 16])
        XCTAssertLessThanOrEqual(try images.abs().amax().item(), 1)
        XCTAssertThrowsError(try pipeline.latents(prompts: ["x"], steps: 2, height: 15, width: 16)) { error in
            XCTAssertTrue("\(error)".contains("multiples of 2"), "\(error)")
        }
        XCTAssertThrowsError(try pipeline.latents(prompts: ["x"], steps: 2, latents: Tensor.zeros([1, 4, 4, 4]))) { error in
            XCTAssertTrue("\(error)".contains("[1, 4, 8, 8]"), "\(error)")
        }
    }
}
