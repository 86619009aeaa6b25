import Foundation
import Torch

/// diffusers' `DPMSolverMultistepScheduler` config (0.27.2 names and defaults).
public struct DPMSolverMultistepSchedulerConfig: Decodable, Sendable, BetaScheduleConfig {
    /// Default 1000.
    public var num_train_timesteps = 1000
    /// Default 0.0001 (SD: 0.00085).
    public var beta_start = 0.0001
    /// Default 0.02 (SD: 0.012).
    public var beta_end = 0.02
    /// Default "linear" (SD: "scaled_linear").
    public var beta_schedule = "linear"
    /// Default nil.
    public var trained_betas: [Double]? = nil
    /// 1 or 2 (default); 3 is not supported here.
    public var solver_order = 2
    /// Default "epsilon".
    public var prediction_type = PredictionType.epsilon
    /// "dpmsolver++" (default) or "dpmsolver"; the SDE variants are not supported here.
    public var algorithm_type = "dpmsolver++"
    /// "midpoint" (default) or "heun".
    public var solver_type = "midpoint"
    /// First-order final steps when there are fewer than 15 steps. Default true.
    public var lower_order_final = true
    /// Default false.
    public var euler_at_final = false
    /// Default false; true is not supported here.
    public var use_karras_sigmas = false
    /// Default false; true is not supported here.
    public var use_lu_lambdas = false
    /// "zero" (default) or "sigma_min".
    public var final_sigmas_type = "zero"
    /// Default −∞ (no clipping).
    public var lambda_min_clipped = -Double.infinity
    /// Default "linspace".
    public var timestep_spacing = TimestepSpacing.linspace
    /// Default 0.
    public var steps_offset = 0
    /// Default false; not supported here.
    public var thresholding = false
    /// Default false; not supported here.
    public var rescale_betas_zero_snr = false

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: ConfigKey.self)
        let d = DPMSolverMultistepSchedulerConfig()
        num_train_timesteps = try c.value("num_train_timesteps", default: d.num_train_timesteps)
        beta_start = try c.value("beta_start", default: d.beta_start)
        beta_end = try c.value("beta_end", default: d.beta_end)
        beta_schedule = try c.value("beta_schedule", default: d.beta_schedule)
        trained_betas = try c.decodeIfPresent([Double].self, forKey: "trained_betas")
        solver_order = try c.value("solver_order", default: d.solver_order)
        prediction_type = try c.value("prediction_type", default: d.prediction_type)
        algorithm_type = try c.value("algorithm_type", default: d.algorithm_type)
        solver_type = try c.value("solver_type", default: d.solver_type)
        lower_order_final = try c.value("lower_order_final", default: d.lower_order_final)
        euler_at_final = try c.value("euler_at_final", default: d.euler_at_final)
        use_karras_sigmas = try c.value("use_karras_sigmas", default: d.use_karras_sigmas)
        use_lu_lambdas = try c.value("use_lu_lambdas", default: d.use_lu_lambdas)
        final_sigmas_type = try c.value("final_sigmas_type", default: d.final_sigmas_type)
        lambda_min_clipped = try c.value("lambda_min_clipped", default: d.lambda_min_clipped)
        timestep_spacing = try c.value("timestep_spacing", default: d.timestep_spacing)
        steps_offset = try c.value("steps_offset", default: d.steps_offset)
        thresholding = try c.value("thresholding", default: d.thresholding)
        rescale_betas_zero_snr = try c.value("rescale_betas_zero_snr", default: d.rescale_betas_zero_snr)
    }
}

/// DPM-Solver++ (Lu et al. 2022) multistep, first or second order, as diffusers 0.27.2's
/// `DPMSolverMultistepScheduler` (data prediction, midpoint or Heun second-order update, lower
/// orders for the first step and, below 15 steps, the last ones).
public final class DPMSolverMultistepScheduler: Scheduler {
    public let config: DPMSolverMultistepSchedulerConfig
    public let schedule: NoiseSchedule
    public private(set) var timesteps: [Int] = []
    public var initNoiseSigma: Double { 1 }
    /// σ_t = √((1−ᾱ)/ᾱ) at each inference timestep, then the final σ.
    public private(set) var sigmas: [Float] = []
    private var modelOutputs: [Tensor?] = []
    private var lowerOrderCount = 0
    private var stepIndex: Int?
    private let dataPrediction: Bool

    public init(config: DPMSolverMultistepSchedulerConfig = DPMSolverMultistepSchedulerConfig(),
                file: String = "scheduler_config.json") throws {
        func unsupported(_ key: String, _ message: String) -> LoadingError { LoadingError(file: file, key: key, message) }
        guard ["dpmsolver++", "dpmsolver", "deis"].contains(config.algorithm_type) else {
            throw unsupported("algorithm_type", "'\(config.algorithm_type)' is not supported (dpmsolver++ or dpmsolver)")
        }
        guard (1...2).contains(config.solver_order) else {
            throw unsupported("solver_order", "\(config.solver_order) is not supported (1 or 2)")
        }
        guard ["midpoint", "heun", "logrho", "bh1", "bh2"].contains(config.solver_type) else {
            throw unsupported("solver_type", "'\(config.solver_type)' is not supported (midpoint or heun)")
        }
        guard ["zero", "sigma_min"].contains(config.final_sigmas_type) else {
            throw unsupported("final_sigmas_type", "'\(config.final_sigmas_type)' is not supported (zero or sigma_min)")
        }
        if config.algorithm_type == "dpmsolver", config.final_sigmas_type == "zero" {
            throw unsupported("final_sigmas_type", "'zero' needs algorithm_type dpmsolver++ (as in diffusers)")
        }
        for (key, on) in [("use_karras_sigmas", config.use_karras_sigmas), ("use_lu_lambdas", config.use_lu_lambdas),
                          ("thresholding", config.thresholding), ("rescale_betas_zero_snr", config.rescale_betas_zero_snr)] where on {
            throw unsupported(key, "is not supported")
        }
        self.config = config
        schedule = try config.noiseSchedule(file: file)
        // diffusers maps "deis" to dpmsolver++ and the UniPC solver types to midpoint.
        dataPrediction = config.algorithm_type != "dpmsolver"
    }

    public convenience init(directory: URL) throws {
        let file = schedulerConfigFile(directory)
        try self.init(config: ConfigFile.decode(from: file), file: file.path)
    }

    public func setTimesteps(_ count: Int) throws {
        guard count > 0 else { throw TorchError("DPM-Solver: num_inference_steps must be positive, got \(count)") }
        let ac = schedule.alphasCumprod
        // λ_t = log α_t − log σ_t is decreasing in t; timesteps with λ below the clip are dropped.
        let cumprod = try Tensor(ac)
        let lambdas = try (cumprod.sqrt().log() - (1 - cumprod).sqrt().log()).toArray(Float.self)
        let clipped = lambdas.filter { $0 < Float(config.lambda_min_clipped) }.count
        let last = config.num_train_timesteps - clipped
        switch config.timestep_spacing {
        case .linspace:
            timesteps = Array(numpyLinspace(0, Double(last - 1), count + 1).map { Int($0.rounded(.toNearestOrEven)) }
                .reversed().dropLast())
        case .leading:
            let ratio = last / (count + 1)
            timesteps = (1...count).reversed().map { $0 * ratio + config.steps_offset }
        case .trailing:
            let ratio = Double(config.num_train_timesteps) / Double(count)
            timesteps = numpyArange(Double(last), 0, -ratio).map { Int($0.rounded(.toNearestOrEven)) - 1 }
        }
        let all = ac.map { ((1 - $0) / $0).squareRoot() }
        if let bad = timesteps.first(where: { !all.indices.contains($0) }) {
            throw TorchError("DPM-Solver: timestep \(bad) is outside 0..<\(all.count)")
        }
        let final: Float = config.final_sigmas_type == "sigma_min" ? ((1 - ac[0]) / ac[0]).squareRoot() : 0
        sigmas = timesteps.map { all[$0] } + [final]
        modelOutputs = Array(repeating: nil, count: config.solver_order)
        lowerOrderCount = 0
        stepIndex = nil
    }

    /// (α_t, σ_t) of the variance-preserving process for a VE sigma.
    private func alphaSigma(_ sigma: Float) -> (alpha: Float, sigma: Float) {
        let alpha = 1 / (sigma * sigma + 1).squareRoot()
        return (alpha, sigma * alpha)
    }

    private func lambda(_ pair: (alpha: Float, sigma: Float)) throws -> Float {
        try libtorch(pair.alpha) { try $0.log() } - libtorch(pair.sigma) { try $0.log() }
    }

    /// A float32 function as LibTorch evaluates it on a 0-d tensor (its vectorised log/exp can
    /// differ from libm's by an ulp, which the first steps amplify).
    private func libtorch(_ x: Float, _ function: (Tensor) throws -> Tensor) throws -> Float {
        Float(try function(Tensor(scalar: x)).item())
    }

    private func expm1(_ x: Float) throws -> Float { try libtorch(x) { try $0.exp() } - 1 }

    public func step(_ modelOutput: Tensor, timestep: Int, sample: Tensor, generator: Generator? = nil) throws -> Tensor {
        guard !sigmas.isEmpty else { throw TorchError("DPM-Solver: call setTimesteps before step") }
        if stepIndex == nil {
            let matches = timesteps.indices.filter { timesteps[$0] == timestep }
            stepIndex = matches.isEmpty ? timesteps.count - 1 : matches.count > 1 ? matches[1] : matches[0]
        }
        guard let index = stepIndex, index < timesteps.count else { throw TorchError("DPM-Solver: more steps than timesteps") }
        let n = timesteps.count
        let lowerOrderFinal = index == n - 1
            && (config.euler_at_final || (config.lower_order_final && n < 15) || config.final_sigmas_type == "zero")

        let converted = try convert(modelOutput, sample: sample, index: index)
        modelOutputs.removeFirst()
        modelOutputs.append(converted)
        let x = try sample.to(dtype: .float32)

        let result: Tensor
        if config.solver_order == 1 || lowerOrderCount < 1 || lowerOrderFinal {
            result = try firstOrder(converted, sample: x, index: index)
        } else {
            result = try secondOrder(sample: x, index: index)
        }
        if lowerOrderCount < config.solver_order { lowerOrderCount += 1 }
        stepIndex = index + 1
        return try result.to(dtype: modelOutput.dtype)
    }

    /// The model output as the solver's variable: x₀ for DPM-Solver++, ε for DPM-Solver.
    private func convert(_ output: Tensor, sample: Tensor, index: Int) throws -> Tensor {
        let (alpha, sigma) = alphaSigma(sigmas[index])
        if dataPrediction {
            switch config.prediction_type {
            case .epsilon: return try (sample - output * Double(sigma)) / Double(alpha)
            case .sample: return output
            case .vPrediction: return try sample * Double(alpha) - output * Double(sigma)
            }
        }
        switch config.prediction_type {
        case .epsilon: return output
        case .sample: return try (sample - output * Double(alpha)) / Double(sigma)
        case .vPrediction: return try output * Double(alpha) + sample * Double(sigma)
        }
    }

    private func firstOrder(_ m: Tensor, sample: Tensor, index: Int) throws -> Tensor {
        let t = alphaSigma(sigmas[index + 1]), s = alphaSigma(sigmas[index])
        let h = try lambda(t) - lambda(s)
        if dataPrediction {
            return try sample * Double(t.sigma / s.sigma) - m * Double(t.alpha * expm1(-h))
        }
        return try sample * Double(t.alpha / s.alpha) - m * Double(t.sigma * expm1(h))
    }

    private func secondOrder(sample: Tensor, index: Int) throws -> Tensor {
        guard let m0 = modelOutputs[modelOutputs.count - 1], let m1 = modelOutputs[modelOutputs.count - 2] else {
            throw TorchError("DPM-Solver: second-order step without a previous model output")
        }
        let t = alphaSigma(sigmas[index + 1]), s0 = alphaSigma(sigmas[index]), s1 = alphaSigma(sigmas[index - 1])
        let (lt, l0, l1) = (try lambda(t), try lambda(s0), try lambda(s1))
        let h = lt - l0, h0 = l0 - l1
        let r0 = h0 / h
        let d0 = m0, d1 = try (m0 - m1) * Double(1 / r0)
        if dataPrediction {
            let c = try t.alpha * expm1(-h)
            let base = try sample * Double(t.sigma / s0.sigma) - d0 * Double(c)
            if config.solver_type == "heun" {
                return try base + d1 * Double(t.alpha * (expm1(-h) / h + 1))
            }
            return try base - d1 * Double(0.5 * c)
        }
        let c = try t.sigma * expm1(h)
        let base = try sample * Double(t.alpha / s0.alpha) - d0 * Double(c)
        if config.solver_type == "heun" {
            return try base - d1 * Double(t.sigma * (expm1(h) / h - 1))
        }
        return try base - d1 * Double(0.5 * c)
    }
}
