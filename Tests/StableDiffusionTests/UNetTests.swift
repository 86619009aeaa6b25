import BackdropTestSupport
import Foundation
import StableDiffusion
import Torch
import XCTest

/// The UNet against diffusers 0.27 (committed parity cases made by tools/parity/image.py), the
/// MVDiffusion hooks, gradient checkpointing and freezing.
final class UNetTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        Runtime.threads = 2
    }

    // MARK: Parity with diffusers

    func testUNetSD2LinearProjectionHeadCounts() { ImageParity.run("unet_sd2_linear") }
    func testUNetSD1ConvProjection() { ImageParity.run("unet_sd1_conv") }
    func testUNetOddGroupsHeadsAndSize() { ImageParity.run("unet_odd_groups") }
    func testUNetUpcastAttention() { ImageParity.run("unet_upcast") }

    func testConfigReadsHeadCountsAndDefaults() throws {
        let config = try ConfigFile.decode(UNet2DConditionConfig.self, from: Data("""
            {"block_out_channels": [320, 640, 1280, 1280], "attention_head_dim": [5, 10, 20, 20],
             "cross_attention_dim": 1024, "use_linear_projection": true, "num_attention_heads": null}
            """.utf8), file: "config.json")
        XCTAssertEqual(config.attention_head_dim, [5, 10, 20, 20])
        XCTAssertEqual(config.layers_per_block, 2)
        XCTAssertEqual(config.norm_eps, 1e-5)
        XCTAssertEqual(config.mid_block_type, "UNetMidBlock2DCrossAttn")
        // An explicit null removes the mid block.
        let noMid = try ConfigFile.decode(UNet2DConditionConfig.self, from: Data(#"{"mid_block_type": null}"#.utf8),
                                          file: "config.json")
        XCTAssertNil(noMid.mid_block_type)
        // Features outside SD1/SD2 are refused with the key named.
        XCTAssertThrowsError(try ConfigFile.decode(UNet2DConditionConfig.self,
                                                   from: Data(#"{"class_embed_type": "timestep"}"#.utf8),
                                                   file: "config.json")) { error in
            XCTAssertEqual((error as? LoadingError)?.key, "class_embed_type", "\(error)")
        }
        XCTAssertThrowsError(try ConfigFile.decode(UNet2DConditionConfig.self,
                                                   from: Data(#"{"up_block_types": ["AttnUpBlock2D"]}"#.utf8),
                                                   file: "config.json")) { error in
            XCTAssertEqual((error as? LoadingError)?.key, "up_block_types", "\(error)")
        }
        XCTAssertThrowsError(try ConfigFile.decode(UNet2DConditionConfig.self,
                                                   from: Data(#"{"num_attention_heads": 8}"#.utf8),
                                                   file: "config.json")) { error in
            XCTAssertEqual((error as? LoadingError)?.key, "num_attention_heads", "\(error)")
        }
    }

    func testMisShapedInputsThrowInsteadOfCrashing() throws {
        let unet = try UNet2DConditionModel(config: Self.smallSD2)
        let (sample, timestep, context) = try Self.inputs(unet, size: 8)
        try withNoGrad {
            XCTAssertThrowsError(try unet(sample.select(dim: 0, index: 0), timestep: timestep, encoderHiddenStates: context))
            XCTAssertThrowsError(try unet(sample, timestep: timestep, encoderHiddenStates: context.select(dim: 0, index: 0)))
            XCTAssertThrowsError(try unet(sample, timestep: timestep, encoderHiddenStates: context.narrow(dim: 2, start: 0, length: 5)))
        }
    }

    // MARK: Hooks (MVDiffusion's nine insertion points)

    /// Identity hooks change nothing, and each point sees the width and size docs/models.md#unet-insertion-points lists,
    /// scaled to the small config: 320/640/1280/1280 @ 64/32/16/8 become 8/16/32/32 @ 16/8/4/2.
    func testHooksSeeTheNineInsertionPointsAndIdentityIsExact() throws {
        let unet = try UNet2DConditionModel(config: Self.smallSD2)
        unet.eval()
        let (sample, timestep, context) = try Self.inputs(unet, size: 16)
        let recorder = Recorder()
        let (plain, hooked) = try withNoGrad {
            (try unet(sample, timestep: timestep, encoderHiddenStates: context),
             try unet(sample, timestep: timestep, encoderHiddenStates: context, hooks: recorder))
        }
        XCTAssertEqual(try plain.sub(hooked).abs().amax().item(), 0)
        XCTAssertEqual(recorder.seen.map(\.point), ["down0", "down1", "down2", "down3", "mid", "up0", "up1", "up2", "up3"])
        XCTAssertEqual(recorder.seen.map(\.shape), [
            [2, 8, 16, 16], [2, 16, 8, 8], [2, 32, 4, 4], [2, 32, 2, 2],
            [2, 32, 2, 2],
            [2, 32, 2, 2], [2, 32, 4, 4], [2, 16, 8, 8], [2, 8, 16, 16],
        ])
    }

    /// A hook's output is what the rest of the UNet sees: the skip taken before the hook is
    /// unchanged, the downsampler's input is the hook's result.
    func testDownHookRunsAfterSkipsAndBeforeDownsampler() throws {
        let unet = try UNet2DConditionModel(config: Self.smallSD2)
        unet.eval()
        let (sample, timestep, context) = try Self.inputs(unet, size: 16)
        struct ZeroDown0: UNetHooks {
            func afterDownBlock(_ index: Int, _ h: Tensor) throws -> Tensor { index == 0 ? try h.zerosLike() : h }
        }
        let (plain, hooked) = try withNoGrad {
            (try unet(sample, timestep: timestep, encoderHiddenStates: context),
             try unet(sample, timestep: timestep, encoderHiddenStates: context, hooks: ZeroDown0()))
        }
        XCTAssertGreaterThan(try plain.sub(hooked).abs().amax().item(), 1e-3)

        // The same by hand: down block 0 with zeros fed to its downsampler.
        let down0 = try XCTUnwrap(unet.down_blocks[0] as? CrossAttnDownBlock2D)
        let emb = try unet.time_embedding(timestepEmbedding(timestep, dim: 8, flipSinToCos: true, downscaleFreqShift: 0))
        try withNoGrad {
            let h = try unet.conv_in(sample)
            let (out, skips) = try down0(h, temb: emb, context: context, beforeDownsample: { try $0.zerosLike() })
            let (_, plainSkips) = try down0(h, temb: emb, context: context, beforeDownsample: nil)
            XCTAssertEqual(skips.count, 3)  // two resnet/attention pairs, then the downsampler
            XCTAssertEqual(try skips[1].sub(plainSkips[1]).abs().amax().item(), 0)
            let downsampler = try XCTUnwrap(down0.downsamplers?.first)
            let downsampledZeros = try downsampler(h.zerosLike())
            XCTAssertEqual(try out.sub(downsampledZeros).abs().amax().item(), 0)
        }
    }

    // MARK: Training: frozen UNet, checkpointing

    /// A frozen UNet passes gradients through to a trained hook module and to its input, and none of
    /// its own parameters receives one; checkpointing gives the same gradients.
    func testFrozenUNetGradientsOnlyWhereAskedWithAndWithoutCheckpointing() throws {
        let unet = try UNet2DConditionModel(config: Self.smallSD2)
        unet.freeze()
        let (sample, timestep, context) = try Self.inputs(unet, size: 8)
        let adapter = try Adapter()

        func gradients(checkpointing: Bool) throws -> (adapter: Tensor, input: Tensor) {
            unet.gradientCheckpointing = checkpointing
            let input = try sample.clone().requiringGrad()
            for p in adapter.parameters() { try p.setGrad(nil) }
            let out = try unet(input, timestep: timestep, encoderHiddenStates: context, hooks: adapter)
            try out.square().mean().backward()
            XCTAssertTrue(unet.parameters().allSatisfy { $0.grad == nil }, "a frozen parameter got a gradient")
            return (try XCTUnwrap(adapter.scale.grad), try XCTUnwrap(input.grad))
        }
        let plain = try gradients(checkpointing: false)
        let checkpointed = try gradients(checkpointing: true)
        XCTAssertGreaterThan(try plain.adapter.abs().amax().item(), 0)
        XCTAssertLessThan(try plain.adapter.sub(checkpointed.adapter).abs().amax().item(), 1e-6)
        XCTAssertLessThan(try plain.input.sub(checkpointed.input).abs().amax().item(), 1e-6)
    }

    /// Checkpointing a trainable UNet gives the gradients of the plain backward pass.
    func testCheckpointingMatchesPlainBackward() throws {
        let unet = try UNet2DConditionModel(config: Self.smallSD2)
        let (sample, timestep, context) = try Self.inputs(unet, size: 8)
        func gradients(_ checkpointing: Bool) throws -> [Tensor] {
            unet.gradientCheckpointing = checkpointing
            for p in unet.parameters() { try p.setGrad(nil) }
            try unet(sample, timestep: timestep, encoderHiddenStates: context).square().mean().backward()
            return try unet.parameters().map { try XCTUnwrap($0.grad, "no gradient") }
        }
        let plain = try gradients(false), checkpointed = try gradients(true)
        XCTAssertEqual(plain.count, checkpointed.count)
        for (a, b) in zip(plain, checkpointed) {
            XCTAssertLessThan(try a.sub(b).abs().amax().item(), 1e-6)
        }
    }

    // MARK: Helpers

    /// SD2's block layout at 1/40 of the width (heads as counts: 1, 2, 4, 4 → head width 8).
    static let smallSD2: UNet2DConditionConfig = {
        var config = UNet2DConditionConfig()
        config.block_out_channels = [8, 16, 32, 32]
        config.attention_head_dim = [1, 2, 4, 4]
        config.cross_attention_dim = 12
        config.use_linear_projection = true
        config.norm_num_groups = 4
        config.layers_per_block = 2
        return config
    }()

    static func inputs(_ unet: UNet2DConditionModel, size: Int) throws -> (Tensor, Tensor, Tensor) {
        let g = try Generator(seed: 0)
        return (try Tensor.randn([2, 4, size, size], generator: g), try Tensor([10, 500] as [Float]),
                try Tensor.randn([2, 5, 12], generator: g))
    }
}

/// Records where hooks run and what they see, returning the input unchanged.
final class Recorder: UNetHooks {
    var seen: [(point: String, shape: [Int])] = []
    func afterDownBlock(_ index: Int, _ h: Tensor) throws -> Tensor { seen.append(("down\(index)", h.shape)); return h }
    func afterMidResnet(_ h: Tensor) throws -> Tensor { seen.append(("mid", h.shape)); return h }
    func afterUpBlock(_ index: Int, _ h: Tensor) throws -> Tensor { seen.append(("up\(index)", h.shape)); return h }
}

/// A trainable module at one insertion point (a per-channel scale after the mid resnet), standing
/// in for a CAA block.
final class Adapter: Module, UNetHooks {
    let scale: Parameter
    init(channels: Int = 32) throws {
        scale = try Parameter(Tensor.full([1, channels, 1, 1], 1.5))
        super.init()
    }
    func afterMidResnet(_ h: Tensor) throws -> Tensor { try h * scale }
}
