import Foundation
import StableDiffusion
import Torch

/// `unet`, `vae_encode`, `vae_decode` (diffusers' UNet2DConditionModel and AutoencoderKL folders).
enum ImageComponents {
    static let runners: [String: ParityRunner] = [
        "unet": unet,
        "vae_encode": vaeEncode,
        "vae_decode": vaeDecode,
    ]

    /// `sample` [B, C, h, w], `timestep` [B], `encoder_hidden_states` [B, L, D] → `sample` [B, C, h, w].
    static func unet(_ c: ParityCase) throws -> [String: Tensor] {
        let unet = try UNet2DConditionModel.load(from: c.model)
        return ["sample": try unet(c.input("sample"), timestep: c.input("timestep"),
                                   encoderHiddenStates: c.input("encoder_hidden_states"))]
    }

    /// `image` [B, 3, H, W] in [−1, 1] → the posterior's `mean` and (clamped) `logvar` [B, 4, h, w].
    static func vaeEncode(_ c: ParityCase) throws -> [String: Tensor] {
        let posterior = try AutoencoderKL.load(from: c.model).encode(c.input("image"))
        return ["mean": posterior.mean, "logvar": posterior.logvar]
    }

    /// `latents` [B, 4, h, w] (already divided by the scaling factor) → `image` [B, 3, H, W].
    static func vaeDecode(_ c: ParityCase) throws -> [String: Tensor] {
        ["image": try AutoencoderKL.load(from: c.model).decode(c.input("latents"))]
    }
}
