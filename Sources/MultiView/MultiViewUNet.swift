import Foundation
import StableDiffusion
import Torch

/// The views of a batch of panoramas and their cameras.
public struct ViewCameras: @unchecked Sendable {
    /// `[V, 3, 3]` intrinsics and camera-to-world rotations, shared by every panorama of the batch
    /// up to a common yaw (which does not change the correspondences).
    public let K: Tensor
    public let R: Tensor
    public var views: Int { K.shape.first ?? 0 }

    public init(K: Tensor, R: Tensor) throws {
        guard K.rank == 3, K.shape.suffix(2) == [3, 3], R.shape == K.shape else {
            throw TorchError("cameras need K and R of shape [V, 3, 3], got \(K.shape) and \(R.shape)")
        }
        (self.K, self.R) = (K, R)
    }
}

/// Stable Diffusion's UNet, frozen, with MVDiffusion's nine CAA blocks at its insertion points:
/// after each down block (before its downsampler), after the mid block's first resnet, after each
/// up block (before its upsampler). Views are folded into the batch (`[B·V, …]`, views of a
/// panorama consecutive). Keys follow MVDiffusion's checkpoint without its `mv_base_model.` prefix:
/// `unet.…`, `cp_blocks_encoder.{0…3}.…`, `cp_blocks_mid.…`, `cp_blocks_decoder.{0…3}.…`.
public final class MultiViewUNet: Module {
    public let unet: UNet2DConditionModel
    public let cp_blocks_encoder: [CAABlock]
    public let cp_blocks_mid: CAABlock
    public let cp_blocks_decoder: [CAABlock]
    public let correspondences: CorrespondenceCache
    /// Recompute CAA activations in the backward pass instead of keeping them (memory for time).
    public var gradientCheckpointing = false

    /// Wraps `unet` (frozen here: no gradients, no optimiser state) with fresh, identity CAA blocks.
    public init(unet: UNet2DConditionModel, imageSizePerLatent: Int = 8, latentSize: Int,
                neighbours: NeighbourSet = .ring, peMaxFrequency: Double? = nil) throws {
        self.unet = unet
        unet.freeze()
        let widths = unet.config.block_out_channels
        cp_blocks_encoder = try widths.map { try CAABlock(channels: $0, peMaxFrequency: peMaxFrequency) }
        cp_blocks_mid = try CAABlock(channels: widths.last ?? 0, peMaxFrequency: peMaxFrequency)
        cp_blocks_decoder = try widths.reversed().map { try CAABlock(channels: $0, peMaxFrequency: peMaxFrequency) }
        correspondences = CorrespondenceCache(imageSize: latentSize * imageSizePerLatent, neighbours: neighbours)
        super.init()
        // The blocks live where the UNet lives; they keep float32 weights (see `CAABlock`).
        try to(device: unet.conv_in.weight.device)
    }

    /// The CAA blocks' parameters: all that training updates.
    public var trainableParameters: [Parameter] {
        (cp_blocks_encoder + [cp_blocks_mid] + cp_blocks_decoder).flatMap { $0.parameters() }
    }

    /// The CAA blocks' state (their keys as in this module), as saved in checkpoints and exports.
    public func caaStateDict() -> [String: Tensor] {
        stateDict().filter { !$0.key.hasPrefix("unet.") }
    }

    /// `sample` `[B·V, 4, h, w]`, `timestep` `[B·V]` or `[B]` (one per panorama) or a scalar,
    /// `context` `[B·V, 77, D]` → the noise prediction `[B·V, 4, h, w]`.
    public func callAsFunction(_ sample: Tensor, timestep: Tensor, encoderHiddenStates context: Tensor,
                               cameras: ViewCameras) throws -> Tensor {
        let v = cameras.views
        let bv = try sample.size(0)
        guard v >= 1, bv % v == 0 else {
            throw TorchError("multi-view UNet: batch \(bv) is not a whole number of \(v)-view panoramas")
        }
        // One timestep per panorama, repeated for its views.
        var t = timestep.rank == 0 ? try timestep.unsqueeze(0) : timestep
        if try t.size(0) == bv / v, v > 1 { t = try t.repeatInterleaveViews(v) }
        let hooks = v > 1 ? CAAHooks(model: self, layout: try correspondences.layout(K: cameras.K, R: cameras.R)) : nil
        return try unet(sample, timestep: t, encoderHiddenStates: context, hooks: hooks)
    }

    func apply(_ block: CAABlock, _ h: Tensor, _ layout: CorrespondenceCache.Layout) throws -> Tensor {
        let geometry = try correspondences.geometry(layout, height: h.size(2), width: h.size(3), device: h.device)
        guard gradientCheckpointing, Autograd.isGradEnabled else { return try block(h, geometry: geometry) }
        return try Autograd.checkpoint([h], parameters: block.parameters()) { [try block($0[0], geometry: geometry)] }[0]
    }
}

/// Runs the CAA blocks at the UNet's insertion points.
struct CAAHooks: UNetHooks {
    let model: MultiViewUNet
    let layout: CorrespondenceCache.Layout

    func afterDownBlock(_ index: Int, _ h: Tensor) throws -> Tensor {
        try model.apply(model.cp_blocks_encoder[index], h, layout)
    }
    func afterMidResnet(_ h: Tensor) throws -> Tensor { try model.apply(model.cp_blocks_mid, h, layout) }
    func afterUpBlock(_ index: Int, _ h: Tensor) throws -> Tensor {
        try model.apply(model.cp_blocks_decoder[index], h, layout)
    }
}

extension Tensor {
    /// `[B]` → `[B·V]`, each value repeated for the V views of its panorama.
    func repeatInterleaveViews(_ views: Int) throws -> Tensor {
        let b = try size(0)
        return try unsqueeze(1).expand([b, views]).reshape([b * views])
    }
}
