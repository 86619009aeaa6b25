import BackdropTestSupport
import Foundation
import StableDiffusion
import Torch
import XCTest

/// The VAE against diffusers 0.27, both attention weight layouts, sampling and loading options.
final class VAETests: XCTestCase {
    override class func setUp() {
        super.setUp()
        Runtime.threads = 2
    }

    func testEncodeMatchesDiffusers() { ImageParity.run("vae_encode") }
    func testDecodeMatchesDiffusers() { ImageParity.run("vae_decode") }
    /// The same weights saved under the pre-0.14 names (`query/key/value/proj_attn`).
    func testDecodeWithOldAttentionKeyNames() { ImageParity.run("vae_decode_old_keys") }

    func testOldKeyRenameTouchesOnlyMidBlockAttention() {
        let rename = AutoencoderKL.renamingDeprecatedAttention
        XCTAssertEqual(rename("encoder.mid_block.attentions.0.query.weight"), "encoder.mid_block.attentions.0.to_q.weight")
        XCTAssertEqual(rename("decoder.mid_block.attentions.0.proj_attn.bias"), "decoder.mid_block.attentions.0.to_out.0.bias")
        XCTAssertEqual(rename("decoder.mid_block.attentions.0.group_norm.weight"),
                       "decoder.mid_block.attentions.0.group_norm.weight")
        XCTAssertEqual(rename("decoder.up_blocks.0.resnets.0.conv1.weight"), "decoder.up_blocks.0.resnets.0.conv1.weight")
    }

    func testSampleUsesTheGeneratorAndClampsLogvar() throws {
        let moments = try Tensor.cat([Tensor.zeros([1, 4, 2, 2]), Tensor.full([1, 4, 2, 2], 50)], dim: 1)
        let posterior = try DiagonalGaussianDistribution(moments: moments)
        XCTAssertEqual(try posterior.logvar.amax().item(), 20)
        let a = try posterior.sample(generator: Generator(seed: 7))
        let b = try posterior.sample(generator: Generator(seed: 7))
        XCTAssertEqual(try a.sub(b).abs().amax().item(), 0)
        let noise = try Tensor.randn([1, 4, 2, 2], generator: Generator(seed: 7))
        XCTAssertLessThan(try a.sub(noise * Foundation.exp(10.0)).abs().amax().item(), 1e-2)
    }
}

/// Loading: strict keys with errors naming file, key and shapes; dtype conversion on request.
final class ImageLoadingTests: XCTestCase {
    /// A copy of a committed case's model folder whose weights `edit` changes.
    func modelFolder(_ caseName: String, _ edit: (inout [String: Tensor]) throws -> Void) throws -> URL {
        let source = TestSupport.fixture("parity/\(caseName)/model")
        let folder = try TestSupport.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.copyItem(at: source.appendingPathComponent("config.json"),
                                         to: folder.appendingPathComponent("config.json"))
        let weights = "diffusion_pytorch_model.safetensors"
        var state = try Safetensors.load(source.appendingPathComponent(weights))
        try edit(&state)
        try Safetensors.save(state, to: folder.appendingPathComponent(weights))
        return folder
    }

    func testMisShapedKeyNamesFileKeyAndBothShapes() throws {
        let folder = try modelFolder("unet_upcast") { $0["conv_in.weight"] = try Tensor.zeros([8, 4, 1, 1]) }
        XCTAssertThrowsError(try UNet2DConditionModel.load(from: folder)) { error in
            guard let error = error as? LoadingError else { return XCTFail("\(error)") }
            XCTAssertEqual(error.key, "conv_in.weight")
            XCTAssertTrue(error.file.hasSuffix("diffusion_pytorch_model.safetensors"), error.file)
            XCTAssertTrue(error.message.contains("[8, 4, 3, 3]") && error.message.contains("[8, 4, 1, 1]"),
                          error.message)
        }
    }

    func testMissingAndUnexpectedKeysAreErrors() throws {
        let missing = try modelFolder("vae_decode") { $0["decoder.conv_out.bias"] = nil }
        XCTAssertThrowsError(try AutoencoderKL.load(from: missing)) { error in
            XCTAssertEqual((error as? LoadingError)?.key, "decoder.conv_out.bias", "\(error)")
        }
        let extra = try modelFolder("vae_decode") { $0["decoder.extra.weight"] = try Tensor.zeros([1]) }
        XCTAssertThrowsError(try AutoencoderKL.load(from: extra)) { error in
            XCTAssertTrue("\(error)".contains("decoder.extra.weight"), "\(error)")
        }
        // Old and new names for the same attention weight at once are ambiguous.
        let both = try modelFolder("vae_decode") {
            $0["decoder.mid_block.attentions.0.query.weight"] = $0["decoder.mid_block.attentions.0.to_q.weight"]
        }
        XCTAssertThrowsError(try AutoencoderKL.load(from: both)) { error in
            XCTAssertEqual((error as? LoadingError)?.key, "decoder.mid_block.attentions.0.to_q.weight", "\(error)")
        }
    }

    func testHalfPrecisionOnRequest() throws {
        let folder = TestSupport.fixture("parity/unet_sd2_linear/model")
        let half = try UNet2DConditionModel.load(from: folder, dtype: .float16)
        XCTAssertTrue(half.parameters().allSatisfy { $0.dtype == .float16 })

        // bfloat16 runs on the CPU; its outputs track float32 to bfloat16's ~3 significant digits.
        let bf16 = try UNet2DConditionModel.load(from: folder, dtype: .bfloat16)
        XCTAssertTrue(bf16.parameters().allSatisfy { $0.dtype == .bfloat16 })
        let full = try UNet2DConditionModel.load(from: folder)
        let inputs = try Safetensors.load(TestSupport.fixture("parity/unet_sd2_linear/inputs.safetensors"))
        let sample = try XCTUnwrap(inputs["sample"]), t = try XCTUnwrap(inputs["timestep"])
        let context = try XCTUnwrap(inputs["encoder_hidden_states"])
        try withNoGrad {
            let reference = try full(sample, timestep: t, encoderHiddenStates: context)
            let low = try bf16(sample.to(dtype: .bfloat16), timestep: t, encoderHiddenStates: context.to(dtype: .bfloat16))
            XCTAssertEqual(low.dtype, .bfloat16)
            let error = try low.to(dtype: .float32).sub(reference).abs().amax().item()
            XCTAssertLessThan(error, 0.1 * (try reference.abs().amax().item()))
        }
        let vae = try AutoencoderKL.load(from: TestSupport.fixture("parity/vae_decode_old_keys/model"),
                                         dtype: .bfloat16)
        XCTAssertTrue(vae.parameters().allSatisfy { $0.dtype == .bfloat16 })
    }
}
