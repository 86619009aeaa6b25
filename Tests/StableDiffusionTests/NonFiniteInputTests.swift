import BackdropTestSupport
import Foundation
import Torch
import XCTest

@testable import StableDiffusion

/// Values that make every output degenerate are errors naming where they came from, not a black
/// image with exit status 0 (docs/security.md#non-finite-values).
final class NonFiniteInputTests: XCTestCase {
    /// A copy of the tiny SD that the test may corrupt.
    func copyOfTinyModel() throws -> URL {
        let folder = try TestSupport.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let copy = folder.appendingPathComponent("model")
        try FileManager.default.copyItem(at: try TestSupport.tinyStableDiffusion(), to: copy)
        return copy
    }

    func testNaNWeightsAreRefusedOnLoadWithFileAndKey() throws {
        let model = try copyOfTinyModel()
        let file = model.appendingPathComponent("unet/diffusion_pytorch_model.safetensors")
        var tensors = try Safetensors.load(file)
        let key = try XCTUnwrap(tensors.keys.sorted().first { $0.hasSuffix("conv_in.weight") })
        tensors[key] = try tensors[key]! * Double.nan
        try Safetensors.save(tensors, to: file)
        let (status, output) = try TestSupport.runBackdrop(["generate", "a room", "--model", model.path, "--steps", "2",
                                                            "--out", model.appendingPathComponent("x.png").path])
        XCTAssertEqual(status, 1, output)
        XCTAssertTrue(output.contains("diffusion_pytorch_model.safetensors"), output)
        XCTAssertTrue(output.contains(key) && output.contains("NaN or infinite"), output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: model.appendingPathComponent("x.png").path))
    }

    func testBetasOutsideZeroOneAreRefused() throws {
        let model = try copyOfTinyModel()
        let config = model.appendingPathComponent("scheduler/scheduler_config.json")
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: config)) as? [String: Any])
        object["beta_start"] = 2
        object["beta_schedule"] = "linear"
        try JSONSerialization.data(withJSONObject: object).write(to: config)
        let (status, output) = try TestSupport.runBackdrop(["generate", "a room", "--model", model.path, "--steps", "2",
                                                            "--out", model.appendingPathComponent("x.png").path])
        XCTAssertEqual(status, 1, output)
        XCTAssertTrue(output.contains("scheduler_config.json") && output.contains("beta_start"), output)
        XCTAssertTrue(output.contains("(0, 1)"), output)
        XCTAssertThrowsError(try NoiseSchedule(trainedBetas: [0.1, 0, 0.2])) { XCTAssertTrue("\($0)".contains("timestep 1"), "\($0)") }
    }

    func testDivergingLatentsStopTheLoop() throws {
        let finite = try Tensor.zeros([1, 4, 2, 2])
        XCTAssertNoThrow(try requireFiniteLatents(finite, step: 0, of: 2, timestep: 999))
        XCTAssertThrowsError(try requireFiniteLatents(finite / 0.0, step: 1, of: 2, timestep: 499)) {
            XCTAssertTrue("\($0)".contains("step 2 of 2 (timestep 499)"), "\($0)")
        }
    }
}
