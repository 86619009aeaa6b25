import BackdropTestSupport
import Foundation
import Geometry
import StableDiffusion
import Torch
import XCTest

@testable import MultiView

/// A tiny SD-shaped UNet whose widths suit CAA (multiples of 32).
func tinyUNet() throws -> UNet2DConditionModel {
    var config = UNet2DConditionConfig()
    config.block_out_channels = [32, 64]
    config.down_block_types = ["CrossAttnDownBlock2D", "DownBlock2D"]
    config.up_block_types = ["UpBlock2D", "CrossAttnUpBlock2D"]
    config.layers_per_block = 1
    config.attention_head_dim = 2
    config.cross_attention_dim = 16
    config.norm_num_groups = 8
    config.use_linear_projection = true
    Runtime.seed(0)
    let unet = try UNet2DConditionModel(config: config)
    unet.eval()
    return unet
}

final class MultiViewUNetTests: XCTestCase {
    let views = 4, latent = 8

    func inputs(batch: Int = 1) throws -> (Tensor, Tensor, Tensor, ViewLayout) {
        let g = try Generator(seed: 4)
        let x = try Tensor.randn([batch * views, 4, latent, latent], generator: g)
        let t = try Tensor((0..<batch).map { Float(100 + 300 * $0) }, shape: [batch])
        let context = try Tensor.randn([batch * views, 5, 16], generator: g)
        return (x, t, context, try mvdiffusionLayout(views: views, imageSize: latent * 8, yawOffset: 10, fov: 120))
    }

    /// Untrained CAA blocks are the identity: the multi-view UNet equals SD on each view.
    func testUntrainedEqualsIndependentViews() throws {
        let unet = try tinyUNet()
        let model = try MultiViewUNet(unet: unet, latentSize: latent)
        let (x, t, context, cameras) = try inputs(batch: 2)
        let joint = try withNoGrad { try model(x, timestep: t, encoderHiddenStates: context, layout: cameras) }
        let perView = try withNoGrad {
            try unet(x, timestep: t.repeatInterleaveViews(views), encoderHiddenStates: context)
        }
        XCTAssertLessThan(try TestSupport.maxAbsDifference(joint, perView), 1e-5)
        XCTAssertEqual(model.caaStateDict().count, 14 * 5, "2 encoder + 1 mid + 2 decoder blocks × 14 keys")
        XCTAssertTrue(model.caaStateDict().keys.contains("cp_blocks_decoder.1.transformer.attn1.to_out.weight"))
        XCTAssertEqual(model.correspondences.count, 2, "one geometry per feature resolution (8×8, 4×4)")
    }

    /// Only CAA is trained: the UNet gets no gradients, every CAA block does; checkpointing gives
    /// the same gradients.
    func testOnlyCAAReceivesGradientsAndCheckpointingAgrees() throws {
        let model = try MultiViewUNet(unet: try tinyUNet(), latentSize: latent)
        // Move every block off the identity so gradients flow through all of them.
        try withNoGrad {
            for p in model.trainableParameters where p.dtype.isFloatingPoint && p.rank >= 1 {
                try p.add_(Tensor.randn(p.shape, generator: Generator(seed: UInt64(p.count))) * 0.02)
            }
        }
        let (x, t, context, cameras) = try inputs()
        func gradients() throws -> [Tensor] {
            for p in model.trainableParameters { try p.setGrad(nil) }
            try model(x, timestep: t, encoderHiddenStates: context, layout: cameras).square().mean().backward()
            return try model.trainableParameters.filter(\.requiresGrad).map { try XCTUnwrap($0.grad, "a CAA parameter got no gradient").clone() }
        }
        let plain = try gradients()
        XCTAssertTrue(model.unet.parameters().allSatisfy { $0.grad == nil && !$0.requiresGrad })
        model.gradientCheckpointing = true
        let checkpointed = try gradients()
        for (a, b) in zip(plain, checkpointed) { XCTAssertLessThan(try TestSupport.maxAbsDifference(a, b), 1e-6) }
    }

    /// With trained (non-zero) blocks a view's prediction depends on its neighbours.
    func testViewsInteract() throws {
        let model = try MultiViewUNet(unet: try tinyUNet(), latentSize: latent)
        try withNoGrad {
            for block in model.cp_blocks_encoder + [model.cp_blocks_mid] + model.cp_blocks_decoder {
                try block.transformer.attn1.to_out.weight.normal_(std: 0.2, generator: Generator(seed: 1))
            }
        }
        let (x, t, context, cameras) = try inputs()
        let before = try withNoGrad { try model(x, timestep: t, encoderHiddenStates: context, layout: cameras) }
        let changed = try x.clone()
        try changed.narrow(dim: 0, start: 1, length: 1).fill_(0)  // view 1 only
        let after = try withNoGrad { try model(changed, timestep: t, encoderHiddenStates: context, layout: cameras) }
        XCTAssertGreaterThan(try TestSupport.maxAbsDifference(before.narrow(dim: 0, start: 0, length: 1),
                                                               after.narrow(dim: 0, start: 0, length: 1)), 1e-4)
        XCTAssertThrowsError(try model(x.narrow(dim: 0, start: 0, length: 3), timestep: t, encoderHiddenStates: context,
                                       layout: cameras))
    }
}

extension MultiViewUNetTests {
    /// A batch of panoramas is each panorama alone: CAA attends within a panorama's views only.
    func testPanoramasOfABatchDoNotMix() throws {
        let model = try MultiViewUNet(unet: try tinyUNet(), latentSize: latent)
        try withNoGrad {
            for p in model.trainableParameters where p.dtype.isFloatingPoint && p.rank >= 1 {
                try p.add_(Tensor.randn(p.shape, generator: Generator(seed: UInt64(p.count))) * 0.05)
            }
        }
        let (x, t, context, cameras) = try inputs(batch: 2)
        let joint = try withNoGrad { try model(x, timestep: t, encoderHiddenStates: context, layout: cameras) }
        for b in 0..<2 {
            let alone = try withNoGrad {
                try model(x.narrow(dim: 0, start: b * views, length: views), timestep: t.narrow(dim: 0, start: b, length: 1),
                          encoderHiddenStates: context.narrow(dim: 0, start: b * views, length: views), layout: cameras)
            }
            XCTAssertLessThan(try TestSupport.maxAbsDifference(joint.narrow(dim: 0, start: b * views, length: views), alone), 1e-5,
                              "panorama \(b)")
        }
    }
}
