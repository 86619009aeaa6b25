import Foundation
import StableDiffusion
import Torch

/// `scheduler_ddim`, `scheduler_dpm` (sampling loops over given model outputs) and
/// `scheduler_ddpm` (training utilities).
enum SchedulerComponents {
    static let runners: [String: ParityRunner] = [
        "scheduler_ddim": { c in
            let scheduler = try DDIMScheduler(directory: c.model)
            scheduler.eta = try c.args.double("eta", default: 0)
            return try loop(scheduler, c)
        },
        "scheduler_dpm": { c in try loop(DPMSolverMultistepScheduler(directory: c.model), c) },
        "scheduler_ddpm": ddpm,
    ]

    /// args `num_inference_steps` (and `seed` for η > 0); inputs `sample` [B, C, h, w] and
    /// `model_outputs` [S, B, C, h, w] → `timesteps` int64 [S], `final_sample`.
    static func loop(_ scheduler: Scheduler, _ c: ParityCase) throws -> [String: Tensor] {
        try scheduler.setTimesteps(c.args.int("num_inference_steps"))
        let outputs = try c.input("model_outputs")
        guard outputs.shape.first == scheduler.timesteps.count else {
            throw ParityError("model_outputs has \(outputs.shape.first ?? 0) steps, the schedule \(scheduler.timesteps.count)")
        }
        // The reference draws η-noise from one generator seeded once, as diffusers' pipelines do.
        let generator = try c.args.has("seed") ? Generator(seed: UInt64(c.args.int("seed"))) : nil
        var sample = try c.input("sample")
        for (i, t) in scheduler.timesteps.enumerated() {
            sample = try scheduler.step(outputs.select(dim: 0, index: i), timestep: t, sample: sample, generator: generator)
        }
        return ["timesteps": try Tensor(scheduler.timesteps.map(Int64.init)), "final_sample": sample]
    }

    /// inputs `original_samples`, `noise`, `timesteps` [B] → `noisy_samples`, `velocity`, `alphas_cumprod` [T].
    static func ddpm(_ c: ParityCase) throws -> [String: Tensor] {
        let scheduler = try DDPMScheduler(directory: c.model)
        let (x0, noise, t) = (try c.input("original_samples"), try c.input("noise"), try c.input("timesteps"))
        return ["noisy_samples": try scheduler.addNoise(x0, noise: noise, timesteps: t),
                "velocity": try scheduler.velocity(x0, noise: noise, timesteps: t),
                "alphas_cumprod": try Tensor(scheduler.schedule.alphasCumprod)]
    }
}
