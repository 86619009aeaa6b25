import Foundation
import Geometry
import StableDiffusion
import Torch

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

    /// The nine CAA blocks under their keys in this module, as one module: what checkpoints and
    /// exports hold, and what `loadCAA` fills.
    public var caaBlocks: Module {
        ModuleDict(cp_blocks_encoder.enumerated().map { ("cp_blocks_encoder.\($0.offset)", $0.element) }
            + [("cp_blocks_mid", cp_blocks_mid)]
            + cp_blocks_decoder.enumerated().map { ("cp_blocks_decoder.\($0.offset)", $0.element) })
    }

    /// The CAA blocks' state (their keys as in this module), as saved in checkpoints and exports.
    public func caaStateDict() -> [String: Tensor] { caaBlocks.stateDict() }

    /// Loads CAA weights (keys as `caaStateDict()`: a checkpoint's `weights.safetensors`, an export's
    /// `caa.safetensors`, `MVDiffusionCheckpoint.caaWeights`). Strict: any missing, unexpected or
    /// mis-shaped key throws and nothing changes; lenient: what matches loads and the rest is reported.
    @discardableResult
    public func loadCAA(_ weights: [String: Tensor], strict: Bool = true) throws -> StateDictReport {
        do {
            return try caaBlocks.loadStateDict(weights, strict: strict)
        } catch {
            throw TorchError("CAA weights do not fit this model: \(error)")
        }
    }

    /// `loadCAA` from a safetensors file; errors name the file. A training checkpoint of a run that
    /// keeps an EMA (`training.ema_decay`) holds the average of its parameters under `ema.` beside the
    /// raw weights; the average is what loads, as it is what the run is for.
    @discardableResult
    public func loadCAA(contentsOf url: URL, strict: Bool = true) throws -> StateDictReport {
        do {
            return try loadCAA(Self.inferenceWeights(contentsOf: url), strict: strict)
        } catch {
            throw TorchError("\(url.path): \(error)")
        }
    }

    /// The CAA weights a file holds for inference: a checkpoint's `ema.` averages in place of the raw
    /// parameters they average (buffers, the positional-encoding frequencies, stay the raw ones).
    public static func inferenceWeights(contentsOf url: URL) throws -> [String: Tensor] {
        var weights = try SafetensorsFile(url: url).loadAll()
        for (key, average) in weights where key.hasPrefix("ema.") {
            weights[String(key.dropFirst(4))] = average
            weights[key] = nil
        }
        return weights
    }

    /// `sample` `[B·V, 4, h, w]`, `timestep` `[B·V]` or `[B]` (one per panorama) or a scalar,
    /// `context` `[B·V, 77, D]` → the noise prediction `[B·V, 4, h, w]`.
    /// `layout`: the cameras of each panorama's views (the panoramas of a batch share it up to a
    /// common yaw, which leaves the correspondences unchanged).
    public func callAsFunction(_ sample: Tensor, timestep: Tensor, encoderHiddenStates context: Tensor,
                               layout: ViewLayout) throws -> Tensor {
        let v = layout.count
        let bv = try sample.size(0)
        guard v >= 1, bv % v == 0 else {
            throw TorchError("multi-view UNet: batch \(bv) is not a whole number of \(v)-view panoramas")
        }
        // One timestep per panorama, repeated for its views.
        var t = timestep.rank == 0 ? try timestep.unsqueeze(0) : timestep
        if try t.size(0) == bv / v, v > 1 { t = try t.repeatInterleaveViews(v) }
        let hooks = v > 1 ? CAAHooks(model: self, layout: layout) : nil
        return try unet(sample, timestep: t, encoderHiddenStates: context, hooks: hooks)
    }

    func apply(_ block: CAABlock, _ h: Tensor, _ layout: ViewLayout) throws -> Tensor {
        let geometry = try correspondences.geometry(layout, height: h.size(2), width: h.size(3), device: h.device)
        guard gradientCheckpointing, Autograd.isGradEnabled else { return try block(h, geometry: geometry) }
        return try Autograd.checkpoint([h], parameters: block.parameters()) { [try block($0[0], geometry: geometry)] }[0]
    }
}

/// Runs the CAA blocks at the UNet's insertion points.
struct CAAHooks: UNetHooks {
    let model: MultiViewUNet
    let layout: ViewLayout

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

