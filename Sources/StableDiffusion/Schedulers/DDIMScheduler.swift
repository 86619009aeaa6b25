import Foundation
import Torch

/// A reverse-process sampler as a pipeline drives it: `setTimesteps`, then one `step` per
/// timestep with the model's output.
public protocol Scheduler: AnyObject {
    /// The timesteps of the current schedule, from noisiest to cleanest.
    var timesteps: [Int] { get }
    /// The standard deviation of the initial noise (1 for DDIM and DPM-Solver).
    var initNoiseSigma: Double { get }
    func setTimesteps(_ count: Int) throws
    /// The sample one step less noisy.
    func step(_ modelOutput: Tensor, timestep: Int, sample: Tensor, generator: Generator?) throws -> Tensor
}

/// diffusers' `DDIMScheduler` config (0.27.2 names and defaults). Decoding any diffusers
/// scheduler's `scheduler_config.json` behaves like `DDIMScheduler.from_config`: keys DDIM does
/// not know are ignored, keys it lacks take DDIM's defaults.
public struct DDIMSchedulerConfig: Decodable, Sendable, BetaScheduleConfig {
    /// Default 1000.
    public var num_train_timesteps = 1000
    /// Default 0.0001 (SD: 0.00085).
    public var beta_start = 0.0001
    /// Default 0.02 (SD: 0.012).
    public var beta_end = 0.02
    /// "linear" (default), "scaled_linear" (SD) or "squaredcos_cap_v2".
    public var beta_schedule = "linear"
    /// Default nil.
    public var trained_betas: [Double]? = nil
    /// Clamp the predicted x₀ to ±`clip_sample_range`. Default true (SD configs: false).
    public var clip_sample = true
    /// Default 1.0.
    public var clip_sample_range = 1.0
    /// Whether the step after the last uses ᾱ = 1 (true, default) or ᾱ_0 (false; SD).
    public var set_alpha_to_one = true
    /// Added to "leading" timesteps. Default 0 (SD: 1).
    public var steps_offset = 0
    /// Default "epsilon".
    public var prediction_type = PredictionType.epsilon
    /// Default "leading".
    public var timestep_spacing = TimestepSpacing.leading
    /// Dynamic thresholding (Imagen). Default false; not supported here.
    public var thresholding = false
    /// Default false; not supported here.
    public var rescale_betas_zero_snr = false

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: ConfigKey.self)
        let d = DDIMSchedulerConfig()
        num_train_timesteps = try c.value("num_train_timesteps", default: d.num_train_timesteps)
        beta_start = try c.value("beta_start", default: d.beta_start)
        beta_end = try c.value("beta_end", default: d.beta_end)
        beta_schedule = try c.value("beta_schedule", default: d.beta_schedule)
        trained_betas = try c.decodeIfPresent([Double].self, forKey: "trained_betas")
        clip_sample = try c.value("clip_sample", default: d.clip_sample)
        clip_sample_range = try c.value("clip_sample_range", default: d.clip_sample_range)
        set_alpha_to_one = try c.value("set_alpha_to_one", default: d.set_alpha_to_one)
        steps_offset = try c.value("steps_offset", default: d.steps_offset)
        prediction_type = try c.value("prediction_type", default: d.prediction_type)
        timestep_spacing = try c.value("timestep_spacing", default: d.timestep_spacing)
        thresholding = try c.value("thresholding", default: d.thresholding)
        rescale_betas_zero_snr = try c.value("rescale_betas_zero_snr", default: d.rescale_betas_zero_snr)
    }
}

/// DDIM (Song et al. 2021) as diffusers 0.27.2 implements it, with η = 0 (deterministic) or
/// η > 0 (noise drawn from the step's generator, as `randn_tensor` does on the CPU).
///
/// The scalar coefficients are computed in `Float` to follow diffusers' float32 0-d tensor
/// arithmetic, so a loop over the same model outputs reproduces its samples to rounding.
public final class DDIMScheduler: Scheduler {
    public let config: DDIMSchedulerConfig
    public let schedule: NoiseSchedule
    public private(set) var timesteps: [Int] = []
    public private(set) var numInferenceSteps = 0
    /// DDIM's η: 0 deterministic, 1 like DDPM.
    public var eta: Double = 0
    public var initNoiseSigma: Double { 1 }
    let finalAlphaCumprod: Float

    public init(config: DDIMSchedulerConfig = DDIMSchedulerConfig(), file: String = "scheduler_config.json") throws {
        if config.thresholding {
            throw LoadingError(file: file, key: "thresholding", "dynamic thresholding is not supported")
        }
        if config.rescale_betas_zero_snr {
            throw LoadingError(file: file, key: "rescale_betas_zero_snr", "zero-terminal-SNR rescaling is not supported")
        }
        self.config = config
        schedule = try config.noiseSchedule(file: file)
        finalAlphaCumprod = config.set_alpha_to_one ? 1 : schedule.alphasCumprod[0]
    }

    /// From `scheduler_config.json` in `directory` (or that file).
    public convenience init(directory: URL) throws {
        let file = schedulerConfigFile(directory)
        try self.init(config: ConfigFile.decode(from: file), file: file.path)
    }

    public func setTimesteps(_ count: Int) throws {
        let trainSteps = config.num_train_timesteps
        guard count > 0, count <= trainSteps else {
            throw TorchError("DDIM: num_inference_steps \(count) must be in 1...\(trainSteps) (num_train_timesteps)")
        }
        numInferenceSteps = count
        switch config.timestep_spacing {
        case .linspace:
            timesteps = numpyLinspace(0, Double(trainSteps - 1), count).map { Int($0.rounded(.toNearestOrEven)) }.reversed()
        case .leading:
            let ratio = trainSteps / count
            timesteps = (0..<count).reversed().map { $0 * ratio + config.steps_offset }
        case .trailing:
            let ratio = Double(trainSteps) / Double(count)
            timesteps = numpyArange(Double(trainSteps), 0, -ratio).map { Int($0.rounded(.toNearestOrEven)) - 1 }
        }
    }

    /// x_{t−1} from x_t and the model's output at `timestep` (diffusers `step(...).prev_sample`).
    public func step(_ modelOutput: Tensor, timestep: Int, sample: Tensor, generator: Generator? = nil) throws -> Tensor {
        guard numInferenceSteps > 0 else { throw TorchError("DDIM: call setTimesteps before step") }
        let ac = schedule.alphasCumprod
        guard ac.indices.contains(timestep) else { throw TorchError("DDIM: timestep \(timestep) is outside 0..<\(ac.count)") }
        let previous = timestep - config.num_train_timesteps / numInferenceSteps
        let alphaProd = ac[timestep]
        let alphaProdPrev = previous >= 0 ? ac[previous] : finalAlphaCumprod
        let betaProd = 1 - alphaProd

        var x0: Tensor, epsilon: Tensor
        switch config.prediction_type {
        case .epsilon:
            x0 = try (sample - modelOutput * Double(betaProd.squareRoot())) / Double(alphaProd.squareRoot())
            epsilon = modelOutput
        case .sample:
            x0 = modelOutput
            epsilon = try (sample - x0 * Double(alphaProd.squareRoot())) / Double(betaProd.squareRoot())
        case .vPrediction:
            x0 = try sample * Double(alphaProd.squareRoot()) - modelOutput * Double(betaProd.squareRoot())
            epsilon = try modelOutput * Double(alphaProd.squareRoot()) + sample * Double(betaProd.squareRoot())
        }
        if config.clip_sample {
            x0 = try x0.clamp(min: -config.clip_sample_range, max: config.clip_sample_range)
        }

        let betaProdPrev = 1 - alphaProdPrev
        let variance = (betaProdPrev / betaProd) * (1 - alphaProd / alphaProdPrev)
        let std = Float(eta) * variance.squareRoot()
        let direction = try epsilon * Double((1 - alphaProdPrev - std * std).squareRoot())
        var previousSample = try x0 * Double(alphaProdPrev.squareRoot()) + direction
        if eta > 0 {
            let noise = try Tensor.randn(modelOutput.shape, dtype: modelOutput.dtype, device: modelOutput.device,
                                         generator: generator)
            previousSample = try previousSample + noise * Double(std)
        }
        return previousSample
    }

    public func addNoise(_ original: Tensor, noise: Tensor, timesteps: Tensor) throws -> Tensor {
        try schedule.addNoise(original, noise: noise, timesteps: timesteps)
    }
}
