import Foundation
import StableDiffusion
import Torch
import XCTest

/// Runs a committed image-side parity case (Tests/Fixtures/parity/NAME, format ../shared/PARITY.md)
/// and checks every expected tensor against max|out − exp| ≤ atol + rtol·max|exp|.
enum ImageParity {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/parity")

    struct Case: Decodable {
        let component: String
        let model: String
        let atol: Double
        let rtol: Double
    }

    /// The outputs of the case's component for its inputs, by expected tensor name.
    static func outputs(_ description: Case, at directory: URL) throws -> [String: Tensor] {
        let inputs = try Safetensors.load(directory.appendingPathComponent("inputs.safetensors"))
        let model = directory.appendingPathComponent(description.model)
        func input(_ name: String) throws -> Tensor { try XCTUnwrap(inputs[name], "input \(name) is missing") }
        return try withNoGrad {
            switch description.component {
            case "unet":
                let unet = try UNet2DConditionModel.load(from: model)
                return ["sample": try unet(input("sample"), timestep: input("timestep"),
                                           encoderHiddenStates: input("encoder_hidden_states"))]
            case "vae_encode":
                let posterior = try AutoencoderKL.load(from: model).encode(input("image"))
                return ["mean": posterior.mean, "logvar": posterior.logvar]
            case "vae_decode":
                return ["image": try AutoencoderKL.load(from: model).decode(input("latents"))]
            default:
                throw TorchError("not an image-side component: \(description.component)")
            }
        }
    }

    /// Worst max-abs error over the case's tensors, after asserting each within tolerance.
    @discardableResult
    static func run(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> Double {
        let directory = fixtures.appendingPathComponent(name)
        let description = try JSONDecoder().decode(Case.self, from: Data(contentsOf: directory.appendingPathComponent("case.json")))
        let expected = try Safetensors.load(directory.appendingPathComponent("expected.safetensors"))
        let outputs = try outputs(description, at: directory)
        var worst = 0.0
        for (key, want) in expected.sorted(by: { $0.key < $1.key }) {
            let got = try XCTUnwrap(outputs[key], "\(name): no output \(key)", file: file, line: line)
            XCTAssertEqual(got.shape, want.shape, "\(name)/\(key)", file: file, line: line)
            let error = try got.to(dtype: .float64).sub(want.to(dtype: .float64)).abs().amax().item()
            let scale = try want.to(dtype: .float64).abs().amax().item()
            print("parity \(name)/\(key) \(want.shape): max-abs \(error), max|exp| \(scale)")
            XCTAssertLessThanOrEqual(error, description.atol + description.rtol * scale, "\(name)/\(key)",
                                     file: file, line: line)
            worst = max(worst, error)
        }
        return worst
    }
}
