import Foundation
import StableDiffusion
import Torch

/// `pipeline`: diffusers' StableDiffusionPipeline end to end from given initial latents.
enum PipelineComponents {
    static let runners: [String: ParityRunner] = ["pipeline": pipeline]

    /// args `prompt`, `negative_prompt` (string or null), `num_inference_steps`, `guidance_scale`,
    /// `height`, `width` (and optionally `scheduler`: "ddim" or "dpm", default: the folder's);
    /// input `latents` [1, 4, h, w] → `final_latents` (before decoding), `image` [1, 3, H, W] in [−1, 1].
    static func pipeline(_ c: ParityCase) throws -> [String: Tensor] {
        let kind = try c.args.has("scheduler") ? SchedulerKind(rawValue: c.args.string("scheduler")) : nil
        if c.args.has("scheduler"), kind == nil { throw ParityError("\(c.name): args.scheduler must be ddim or dpm") }
        let pipeline = try StableDiffusionPipeline.load(from: c.model, scheduler: kind)
        let negative = c.args.has("negative_prompt") ? [try c.args.string("negative_prompt")] : nil
        let latents = try pipeline.latents(
            prompts: [try c.args.string("prompt")], negativePrompts: negative, steps: c.args.int("num_inference_steps"),
            guidanceScale: c.args.double("guidance_scale"), height: c.args.int("height"), width: c.args.int("width"),
            latents: c.input("latents"), eta: c.args.double("eta", default: 0))
        return ["final_latents": latents, "image": try pipeline.decode(latents)]
    }
}
