/// An exponential moving average of parameters, as diffusers' `EMAModel` keeps for SD training
/// (no `update_after_step`, no inverse-gamma warm-up): after optimiser step n the shadow moves
/// toward the parameters by 1 − d with d = min(decay, (1 + (n − 1)) / (10 + (n − 1))), and d = 0 at
/// n = 1, so early steps follow the weights closely and late steps average over ≈ 1 / (1 − decay).
public final class ExponentialMovingAverage {
    public let decay: Double
    /// Optimiser steps averaged so far (diffusers' `optimization_step`).
    public private(set) var steps = 0
    public let names: [String]
    private let parameters: [Parameter]
    /// The averaged weights, in `names` order.
    public let shadow: [Tensor]

    public init(_ named: [(String, Parameter)], decay: Double) throws {
        guard decay >= 0, decay < 1 else { throw TorchError("EMA decay must lie in [0, 1), got \(decay)") }
        self.decay = decay
        names = named.map(\.0)
        parameters = named.map(\.1)
        shadow = try withNoGrad { try named.map { try $0.1.detach().clone() } }
    }

    /// The decay applied at the current step.
    public var currentDecay: Double {
        let n = Double(max(0, steps - 1))
        return n <= 0 ? 0 : min(decay, (1 + n) / (10 + n))
    }

    /// Moves the average toward the current parameters; call after each optimiser step.
    public func update() throws {
        steps += 1
        let d = currentDecay
        try withNoGrad {
            for (s, p) in zip(shadow, parameters) {
                try s.sub_(s - p, alpha: 1 - d)
            }
        }
    }

    /// The averaged weights by name (checkpoints store them under `ema.` beside the raw weights).
    public func stateDict() -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: zip(names, shadow))
    }

    /// Restores the average and its step count from a checkpoint.
    public func load(_ state: [String: Tensor], steps: Int) throws {
        try withNoGrad {
            for (name, s) in zip(names, shadow) {
                guard let t = state[name] else { throw TorchError("EMA state has no \(name)") }
                guard t.shape == s.shape else { throw TorchError("EMA state \(name) is \(t.shape), expected \(s.shape)") }
                try s.copy_(from: t.to(dtype: s.dtype, device: s.device))
            }
        }
        self.steps = steps
    }

    /// Copies the averaged weights into the parameters (for export and evaluation).
    public func copyToParameters() throws {
        try withNoGrad {
            for (s, p) in zip(shadow, parameters) { try p.copy_(from: s) }
        }
    }
}
