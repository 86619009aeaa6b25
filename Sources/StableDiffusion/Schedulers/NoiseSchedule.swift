import Foundation
import Torch

/// The forward (noising) process shared by diffusers' DDPM, DDIM and DPM-Solver schedulers:
/// betas from the config, `alphas_cumprod`, and the training utilities `add_noise` and
/// `get_velocity`.
///
/// Numbers follow diffusers 0.27.2 bit for bit: betas are made in float32 (`torch.linspace` in
/// float32, squared for "scaled_linear"; "squaredcos_cap_v2" in float64 then float32), and
/// `alphas_cumprod` is `torch.cumprod` of float32 alphas, which LibTorch accumulates in float64
/// and rounds to float32 per element.
public struct NoiseSchedule: Sendable {
    public let betas: [Float]
    public let alphasCumprod: [Float]

    public var trainTimesteps: Int { betas.count }

    /// - Parameters:
    ///   - file: named in errors (the config the values came from).
    public init(trainTimesteps: Int = 1000, betaStart: Double = 0.0001, betaEnd: Double = 0.02,
                betaSchedule: String = "linear", trainedBetas: [Double]? = nil, file: String = "scheduler_config.json") throws {
        // Every β is a variance fraction in (0, 1): `beta_start: 2` made ᾱ negative and every image black.
        guard (1...100_000).contains(trainTimesteps) else {
            throw LoadingError(file: file, key: "num_train_timesteps", "must lie in 1…100000, found \(trainTimesteps)")
        }
        if trainedBetas == nil, betaSchedule != "squaredcos_cap_v2" {
            for (key, value) in [("beta_start", betaStart), ("beta_end", betaEnd)] where !(value > 0 && value < 1) {
                throw LoadingError(file: file, key: key, "must lie in (0, 1), found \(value)")
            }
        }
        var betas: [Float]
        if let trainedBetas {
            betas = trainedBetas.map { Float($0) }
        } else {
            switch betaSchedule {
            case "linear":
                betas = try Tensor.linspace(betaStart, betaEnd, count: trainTimesteps, dtype: .float32).toArray(Float.self)
            case "scaled_linear":
                betas = try Tensor.linspace(betaStart.squareRoot(), betaEnd.squareRoot(), count: trainTimesteps, dtype: .float32)
                    .pow(2).toArray(Float.self)
            case "squaredcos_cap_v2":
                betas = NoiseSchedule.cosineBetas(trainTimesteps)
            default:
                throw LoadingError(file: file, key: "beta_schedule",
                                   "unsupported '\(betaSchedule)' (expected linear, scaled_linear or squaredcos_cap_v2)")
            }
        }
        if let bad = betas.firstIndex(where: { !($0 > 0 && $0 < 1) }) {
            throw LoadingError(file: file, key: trainedBetas == nil ? "beta_schedule" : "trained_betas",
                               "β at timestep \(bad) is \(betas[bad]); every β must lie in (0, 1)")
        }
        self.betas = betas
        var product = 1.0
        alphasCumprod = betas.map { beta in
            product *= Double(Float(1) - beta)
            return Float(product)
        }
    }

    /// diffusers' `betas_for_alpha_bar` with the cosine ᾱ(t) of Nichol & Dhariwal, capped at 0.999.
    static func cosineBetas(_ count: Int) -> [Float] {
        func alphaBar(_ t: Double) -> Double {
            let c = cos((t + 0.008) / 1.008 * Double.pi / 2)
            return c * c
        }
        return (0..<count).map { i in
            let t1 = Double(i) / Double(count), t2 = Double(i + 1) / Double(count)
            return Float(min(1 - alphaBar(t2) / alphaBar(t1), 0.999))
        }
    }

    /// ᾱ_t / (1 − ᾱ_t), computed in double precision from the float32 ᾱ diffusers keeps.
    public func signalToNoiseRatio(_ timestep: Int) -> Double {
        let alphaBar = Double(alphasCumprod[timestep])
        return alphaBar / (1 - alphaBar)
    }

    /// √ᾱ_t and √(1−ᾱ_t) per batch element, shaped `[B, 1, …]` to broadcast over `like`.
    private func coefficients(_ timesteps: Tensor, like sample: Tensor) throws -> (Tensor, Tensor) {
        let steps = try timesteps.flatten().toArray(Int64.self).map(Int.init)
        if let bad = steps.first(where: { !(0..<trainTimesteps).contains($0) }) {
            throw TorchError("timestep \(bad) is outside 0..<\(trainTimesteps)")
        }
        let shape = [steps.count] + Array(repeating: 1, count: max(sample.rank - 1, 0))
        let a = try Tensor(steps.map { alphasCumprod[$0].squareRoot() }, shape: shape)
        let s = try Tensor(steps.map { (1 - alphasCumprod[$0]).squareRoot() }, shape: shape)
        return (try a.to(dtype: sample.dtype, device: sample.device), try s.to(dtype: sample.dtype, device: sample.device))
    }

    /// `√ᾱ_t · x₀ + √(1−ᾱ_t) · ε` (diffusers `add_noise`): x₀ `[B, …]`, ε like x₀, timesteps `[B]` int.
    public func addNoise(_ original: Tensor, noise: Tensor, timesteps: Tensor) throws -> Tensor {
        let (a, s) = try coefficients(timesteps, like: original)
        return try a * original + s * noise
    }

    /// The v-prediction target `√ᾱ_t · ε − √(1−ᾱ_t) · x₀` (diffusers `get_velocity`).
    public func velocity(_ sample: Tensor, noise: Tensor, timesteps: Tensor) throws -> Tensor {
        let (a, s) = try coefficients(timesteps, like: sample)
        return try a * noise - s * sample
    }

    /// What a model trained with `predictionType` should output for `(x₀, ε, t)`: ε for "epsilon",
    /// the velocity for "v_prediction", x₀ for "sample".
    public func trainingTarget(_ predictionType: PredictionType, sample: Tensor, noise: Tensor,
                               timesteps: Tensor) throws -> Tensor {
        switch predictionType {
        case .epsilon: return noise
        case .vPrediction: return try velocity(sample, noise: noise, timesteps: timesteps)
        case .sample: return sample
        }
    }
}

/// What the denoising model predicts (`prediction_type`).
public enum PredictionType: String, Sendable, Decodable {
    case epsilon
    case vPrediction = "v_prediction"
    case sample
}

/// How inference timesteps are spread over the training ones (`timestep_spacing`).
public enum TimestepSpacing: String, Sendable, Decodable {
    case leading, trailing, linspace
}

/// Fields every diffusers scheduler config shares; each scheduler adds its own and its own defaults.
protocol BetaScheduleConfig {
    var num_train_timesteps: Int { get }
    var beta_start: Double { get }
    var beta_end: Double { get }
    var beta_schedule: String { get }
    var trained_betas: [Double]? { get }
}

extension BetaScheduleConfig {
    func noiseSchedule(file: String) throws -> NoiseSchedule {
        try NoiseSchedule(trainTimesteps: num_train_timesteps, betaStart: beta_start, betaEnd: beta_end,
                          betaSchedule: beta_schedule, trainedBetas: trained_betas, file: file)
    }
}

/// diffusers' `DDPMScheduler` config, for training: the noise schedule and the prediction type.
/// Defaults are diffusers 0.27.2's.
public struct DDPMSchedulerConfig: Decodable, Sendable, BetaScheduleConfig {
    /// Default 1000.
    public var num_train_timesteps = 1000
    /// Default 0.0001 (SD: 0.00085).
    public var beta_start = 0.0001
    /// Default 0.02 (SD: 0.012).
    public var beta_end = 0.02
    /// "linear" (default), "scaled_linear" (SD) or "squaredcos_cap_v2".
    public var beta_schedule = "linear"
    /// Explicit betas, overriding the schedule. Default nil.
    public var trained_betas: [Double]? = nil
    /// "epsilon" (default; SD 2-base) or "v_prediction" (SD 2.1 768) or "sample".
    public var prediction_type = PredictionType.epsilon

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: ConfigKey.self)
        let d = DDPMSchedulerConfig()
        num_train_timesteps = try c.value("num_train_timesteps", default: d.num_train_timesteps)
        beta_start = try c.value("beta_start", default: d.beta_start)
        beta_end = try c.value("beta_end", default: d.beta_end)
        beta_schedule = try c.value("beta_schedule", default: d.beta_schedule)
        trained_betas = try c.decodeIfPresent([Double].self, forKey: "trained_betas")
        prediction_type = try c.value("prediction_type", default: d.prediction_type)
    }
}

/// Training-side utilities of diffusers' `DDPMScheduler`: noising and targets.
public struct DDPMScheduler: Sendable {
    public let config: DDPMSchedulerConfig
    public let schedule: NoiseSchedule

    public init(config: DDPMSchedulerConfig = DDPMSchedulerConfig(), file: String = "scheduler_config.json") throws {
        self.config = config
        schedule = try config.noiseSchedule(file: file)
    }

    /// From `scheduler_config.json` in `directory` (any diffusers scheduler's config, as `from_config`).
    public init(directory: URL) throws {
        let file = schedulerConfigFile(directory)
        try self.init(config: ConfigFile.decode(from: file), file: file.path)
    }

    public func addNoise(_ original: Tensor, noise: Tensor, timesteps: Tensor) throws -> Tensor {
        try schedule.addNoise(original, noise: noise, timesteps: timesteps)
    }

    public func velocity(_ sample: Tensor, noise: Tensor, timesteps: Tensor) throws -> Tensor {
        try schedule.velocity(sample, noise: noise, timesteps: timesteps)
    }

    /// The loss target for the configured prediction type.
    public func target(sample: Tensor, noise: Tensor, timesteps: Tensor) throws -> Tensor {
        try schedule.trainingTarget(config.prediction_type, sample: sample, noise: noise, timesteps: timesteps)
    }

    /// Min-SNR-γ loss weights (Hang et al. 2023, docs/models.md#min-snr): `min(SNR_t, γ) / SNR_t` for ε- and
    /// x₀-targets, `min(SNR_t, γ) / (SNR_t + 1)` for v-targets, as diffusers' training scripts weight them.
    /// They cap the weight of the nearly clean timesteps, whose easy, small-scale errors otherwise take
    /// most of a small model's capacity from the noisy ones that decide the layout of an image.
    public func minSNRWeights(timesteps: [Int], gamma: Double) -> [Double] {
        timesteps.map { t in
            let snr = schedule.signalToNoiseRatio(t)
            let denominator = config.prediction_type == .vPrediction ? snr + 1 : snr
            return min(snr, gamma) / denominator
        }
    }

    /// How much an error of the prediction target moves the clean-image estimate x̂₀ at each timestep:
    /// `√(1−ᾱ_t)/√ᾱ_t` for ε (x̂₀ = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t), `√(1−ᾱ_t)` for v, 1 for x₀. Capped at
    /// `cap`, because at the last timesteps ᾱ_t is so small that the factor would be in the thousands.
    public func cleanImageErrorScales(timesteps: [Int], cap: Double) -> [Double] {
        timesteps.map { t in
            let alphaBar = Double(schedule.alphasCumprod[t])
            let scale: Double
            switch config.prediction_type {
            case .epsilon: scale = ((1 - alphaBar) / alphaBar).squareRoot()
            case .vPrediction: scale = (1 - alphaBar).squareRoot()
            case .sample: scale = 1
            }
            return min(scale, cap)
        }
    }
}

/// `scheduler_config.json` in a scheduler folder, or the file itself.
func schedulerConfigFile(_ url: URL) -> URL {
    url.pathExtension == "json" ? url : url.appendingPathComponent("scheduler_config.json")
}

/// numpy's `linspace(start, stop, count)`: `i · step + start`, the last value exactly `stop`.
func numpyLinspace(_ start: Double, _ stop: Double, _ count: Int) -> [Double] {
    guard count > 1 else { return count == 1 ? [start] : [] }
    let step = (stop - start) / Double(count - 1)
    var values = (0..<count).map { Double($0) * step + start }
    values[count - 1] = stop
    return values
}

/// numpy's float `arange(start, stop, step)`: ⌈(stop − start)/step⌉ values `start + i · δ`, with
/// δ = (start + step) − start as numpy computes it.
func numpyArange(_ start: Double, _ stop: Double, _ step: Double) -> [Double] {
    let count = max(Int(((stop - start) / step).rounded(.up)), 0)
    let delta = (start + step) - start
    return (0..<count).map { i in i == 0 ? start : i == 1 ? start + step : start + Double(i) * delta }
}
