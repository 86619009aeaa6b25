import BackdropTestSupport
import Foundation
import StableDiffusion
import Torch
import XCTest

/// Scheduler timesteps and betas against diffusers 0.27.2 (values printed by it); the sampling
/// loops themselves are checked by the scheduler_* parity cases.
final class SchedulerTests: XCTestCase {
    func sd2DDIM(_ change: (inout DDIMSchedulerConfig) -> Void = { _ in }) throws -> DDIMScheduler {
        var config = DDIMSchedulerConfig()
        (config.beta_start, config.beta_end, config.beta_schedule) = (0.00085, 0.012, "scaled_linear")
        (config.clip_sample, config.set_alpha_to_one, config.steps_offset) = (false, false, 1)
        change(&config)
        return try DDIMScheduler(config: config)
    }

    func testDDIMTimesteps() throws {
        let ddim = try sd2DDIM()
        try ddim.setTimesteps(50)
        XCTAssertEqual(ddim.timesteps, Array(stride(from: 981, through: 1, by: -20)))
        try ddim.setTimesteps(10)
        XCTAssertEqual(ddim.timesteps, [901, 801, 701, 601, 501, 401, 301, 201, 101, 1])
        let trailing = try sd2DDIM { $0.timestep_spacing = .trailing }
        try trailing.setTimesteps(7)
        // np.round(np.arange(1000, 0, -1000/7)).astype(int64) - 1
        XCTAssertEqual(trailing.timesteps, [999, 856, 713, 570, 428, 285, 142])
        let linspace = try sd2DDIM { $0.timestep_spacing = .linspace }
        try linspace.setTimesteps(4)
        XCTAssertEqual(linspace.timesteps, [999, 666, 333, 0])
        XCTAssertThrowsError(try ddim.setTimesteps(1001))
        XCTAssertThrowsError(try sd2DDIM().step(Tensor.zeros([1]), timestep: 1, sample: Tensor.zeros([1]))) { error in
            XCTAssertTrue("\(error)".contains("setTimesteps"), "\(error)")
        }
    }

    func testDPMSolverTimesteps() throws {
        var config = DPMSolverMultistepSchedulerConfig()
        (config.beta_start, config.beta_end, config.beta_schedule) = (0.00085, 0.012, "scaled_linear")
        let dpm = try DPMSolverMultistepScheduler(config: config)
        try dpm.setTimesteps(10)
        // np.linspace(0, 999, 11).round()[::-1][:-1]
        XCTAssertEqual(dpm.timesteps, [999, 899, 799, 699, 599, 500, 400, 300, 200, 100])
        XCTAssertEqual(dpm.sigmas.count, 11)
        XCTAssertEqual(dpm.sigmas.last, 0)
        config.use_karras_sigmas = true
        XCTAssertThrowsError(try DPMSolverMultistepScheduler(config: config)) { error in
            XCTAssertEqual((error as? LoadingError)?.key, "use_karras_sigmas")
        }
    }

    /// SD's scaled-linear schedule: ᾱ at a few timesteps, as diffusers computes it in float32.
    func testNoiseSchedule() throws {
        let schedule = try NoiseSchedule(betaStart: 0.00085, betaEnd: 0.012, betaSchedule: "scaled_linear")
        XCTAssertEqual(schedule.betas.first!, 0.00085, accuracy: 1e-10)
        XCTAssertEqual(schedule.betas.last!, 0.012, accuracy: 1e-9)
        XCTAssertEqual(schedule.alphasCumprod[0], 0.99915, accuracy: 1e-7)
        XCTAssertEqual(schedule.alphasCumprod[999], 0.0046600, accuracy: 1e-6)
        XCTAssertThrowsError(try NoiseSchedule(betaSchedule: "sigmoid")) { error in
            XCTAssertEqual((error as? LoadingError)?.key, "beta_schedule")
        }
        let ddpm = try DDPMScheduler()
        let x = try Tensor.ones([2, 1, 2, 2]), noise = try Tensor.zeros([2, 1, 2, 2])
        let noisy = try ddpm.addNoise(x, noise: noise, timesteps: Tensor([Int64(0), 999]))
        XCTAssertEqual(try noisy.select(dim: 0, index: 0).mean().item(), Double(ddpm.schedule.alphasCumprod[0].squareRoot()), accuracy: 1e-7)
        XCTAssertThrowsError(try ddpm.addNoise(x, noise: noise, timesteps: Tensor([Int64(0), 1000])))
    }

    /// Min-SNR-γ weights (γ = 5) against diffusers 0.27.2's `compute_snr` and its training scripts'
    /// weighting, printed by it (float32 there, so compared to 1e-5 relative).
    func testMinSNRWeights() throws {
        func assertClose(_ ours: [Double], _ theirs: [Double], _ label: String) {
            for (a, b) in zip(ours, theirs) { XCTAssertEqual(a, b, accuracy: 1e-5 * abs(b), label) }
        }
        let steps = [0, 10, 300, 999]
        var config = DDPMSchedulerConfig()
        (config.beta_start, config.beta_end, config.beta_schedule) = (0.00085, 0.012, "scaled_linear")
        let sd = try DDPMScheduler(config: config)
        assertClose(steps.map(sd.schedule.signalToNoiseRatio), [1175.44055, 103.5075, 1.4420073, 0.00468191318], "SNR")
        assertClose(sd.minSNRWeights(timesteps: steps, gamma: 5), [0.00425372412, 0.0483056791, 1, 1], "ε weights")
        (config.beta_start, config.beta_end, config.beta_schedule) = (0.0001, 0.02, "linear")
        config.prediction_type = .vPrediction
        let v = try DDPMScheduler(config: config)
        assertClose(v.minSNRWeights(timesteps: steps, gamma: 5), [0.00050008297, 0.0109675527, 0.39401105, 4.03583144e-05], "v weights")
    }

    /// An error δ of the model's output moves the clean-image estimate x̂₀ that DDIM's step forms
    /// from it by `scale · δ`: checked through `DDIMScheduler.step` itself (η = 0, one step to the
    /// final ᾱ = 1, where the step returns x̂₀), for each prediction type; the cap holds.
    func testCleanImageErrorScalesAreHowFarTheEstimateMoves() throws {
        for prediction in [PredictionType.epsilon, .vPrediction, .sample] {
            var config = DDIMSchedulerConfig()
            (config.beta_schedule, config.prediction_type, config.clip_sample) = ("squaredcos_cap_v2", prediction, false)
            (config.set_alpha_to_one, config.timestep_spacing) = (true, .trailing)
            let ddim = try DDIMScheduler(config: config)
            try ddim.setTimesteps(2)
            let t = try XCTUnwrap(ddim.timesteps.last)  // 499, whose step ends at ᾱ = 1
            var trainingConfig = DDPMSchedulerConfig()
            (trainingConfig.beta_schedule, trainingConfig.prediction_type) = ("squaredcos_cap_v2", prediction)
            let ddpm = try DDPMScheduler(config: trainingConfig)
            let sample = try Tensor.randn([1, 4, 3, 3], generator: Generator(seed: 3))
            let output = try Tensor.randn([1, 4, 3, 3], generator: Generator(seed: 4))
            let delta = 1e-3
            let moved = try (ddim.step(output + delta, timestep: t, sample: sample) - ddim.step(output, timestep: t, sample: sample))
                .abs().mean().item() / delta
            let scale = try XCTUnwrap(ddpm.cleanImageErrorScales(timesteps: [t], cap: .infinity).first)
            XCTAssertEqual(scale, moved, accuracy: 1e-3 * max(1, moved), "\(prediction) at t = \(t)")
            XCTAssertEqual(ddpm.cleanImageErrorScales(timesteps: [t], cap: 0.5), [min(scale, 0.5)], "\(prediction) cap")
        }
    }
}
