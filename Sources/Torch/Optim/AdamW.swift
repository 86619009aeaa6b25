import Foundation

/// Adam with decoupled weight decay (`torch.optim.AdamW`, amsgrad off), update for update the same
/// arithmetic as PyTorch's single-tensor implementation.
public final class AdamW: Optimizer {
    public var paramGroups: [ParamGroup]
    public let beta1: Double, beta2: Double, eps: Double

    private struct Moments {
        var step = 0
        let expAvg: Tensor
        let expAvgSq: Tensor
    }
    private var state: [ObjectIdentifier: Moments] = [:]

    public init(_ groups: [ParamGroup], betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8) throws {
        for group in groups where group.lr < 0 || group.weightDecay < 0 {
            throw TorchError("AdamW: invalid learning rate \(group.lr) or weight decay \(group.weightDecay)")
        }
        guard (0..<1).contains(betas.0), (0..<1).contains(betas.1) else {
            throw TorchError("AdamW: betas \(betas) must lie in [0, 1)")
        }
        paramGroups = groups
        (beta1, beta2, self.eps) = (betas.0, betas.1, eps)
    }

    public convenience init(_ parameters: [Parameter], lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999),
                            eps: Double = 1e-8, weightDecay: Double = 1e-2) throws {
        try self.init([ParamGroup(parameters, lr: lr, weightDecay: weightDecay)], betas: betas, eps: eps)
    }

    public func step() throws {
        try withNoGrad {
            for group in paramGroups {
                for p in group.parameters {
                    guard let grad = p.grad else { continue }
                    var m = try state[ObjectIdentifier(p)]
                        ?? Moments(expAvg: p.zerosLike(), expAvgSq: p.zerosLike())
                    m.step += 1
                    try p.mul_(1 - group.lr * group.weightDecay)
                    try m.expAvg.mul_(beta1)
                    try m.expAvg.add_(grad, alpha: 1 - beta1)
                    try m.expAvgSq.mul_(beta2)
                    try m.expAvgSq.addcmul_(grad, grad, value: 1 - beta2)
                    let biasCorrection1 = 1 - Foundation.pow(beta1, Double(m.step))
                    let biasCorrection2 = 1 - Foundation.pow(beta2, Double(m.step))
                    let stepSize = group.lr / biasCorrection1
                    let denom = try m.expAvgSq.sqrt() / biasCorrection2.squareRoot()
                    try denom.addScalar_(eps)
                    try p.addcdiv_(m.expAvg, denom, value: -stepSize)
                    state[ObjectIdentifier(p)] = m
                }
            }
        }
    }

    /// Keys as in `optimizer.state_dict()`: `state.<index>.exp_avg`, `…exp_avg_sq`, `…step`.
    public func stateDict() throws -> OptimizerState {
        var tensors: [String: Tensor] = [:]
        for (i, p) in flatParameters.enumerated() {
            guard let m = state[ObjectIdentifier(p)] else { continue }
            tensors["state.\(i).exp_avg"] = m.expAvg
            tensors["state.\(i).exp_avg_sq"] = m.expAvgSq
            tensors["state.\(i).step"] = try Tensor(scalar: Float(m.step))
        }
        var meta = groupMetadata()
        meta["optimizer"] = "AdamW"
        meta["betas"] = "\(beta1),\(beta2)"
        meta["eps"] = "\(eps)"
        return OptimizerState(tensors: tensors, metadata: meta)
    }

    public func loadStateDict(_ saved: OptimizerState) throws {
        guard saved.metadata["optimizer"] == "AdamW" else {
            throw TorchError("optimizer state is for \(saved.metadata["optimizer"] ?? "an unknown optimizer"), not AdamW")
        }
        try restoreGroups(from: saved.metadata)
        var restored: [ObjectIdentifier: Moments] = [:]
        for (i, p) in flatParameters.enumerated() {
            guard let avg = saved.tensors["state.\(i).exp_avg"], let avgSq = saved.tensors["state.\(i).exp_avg_sq"],
                  let step = saved.tensors["state.\(i).step"] else { continue }
            guard avg.shape == p.shape, avgSq.shape == p.shape else {
                throw TorchError("optimizer state \(i) has shape \(avg.shape), parameter has \(p.shape)")
            }
            restored[ObjectIdentifier(p)] = Moments(step: Int(try step.item()),
                                                    expAvg: try avg.to(dtype: p.dtype, device: p.device, copy: true),
                                                    expAvgSq: try avgSq.to(dtype: p.dtype, device: p.device, copy: true))
        }
        state = restored
    }
}

/// Stochastic gradient descent with momentum, dampening and Nesterov (`torch.optim.SGD`).
public final class SGD: Optimizer {
    public var paramGroups: [ParamGroup]
    public let momentum: Double, dampening: Double, nesterov: Bool
    private var buffers: [ObjectIdentifier: Tensor] = [:]

    public init(_ groups: [ParamGroup], momentum: Double = 0, dampening: Double = 0, nesterov: Bool = false) throws {
        if nesterov, momentum <= 0 || dampening != 0 {
            throw TorchError("SGD: Nesterov momentum requires a momentum and zero dampening")
        }
        paramGroups = groups
        (self.momentum, self.dampening, self.nesterov) = (momentum, dampening, nesterov)
    }

    public convenience init(_ parameters: [Parameter], lr: Double, momentum: Double = 0, dampening: Double = 0,
                            weightDecay: Double = 0, nesterov: Bool = false) throws {
        try self.init([ParamGroup(parameters, lr: lr, weightDecay: weightDecay)], momentum: momentum,
                      dampening: dampening, nesterov: nesterov)
    }

    public func step() throws {
        try withNoGrad {
            for group in paramGroups {
                for p in group.parameters {
                    guard var d = p.grad else { continue }
                    if group.weightDecay != 0 { d = try d + (p * group.weightDecay) }
                    if momentum != 0 {
                        let buffer: Tensor
                        if let existing = buffers[ObjectIdentifier(p)] {
                            buffer = existing
                            try buffer.mul_(momentum)
                            try buffer.add_(d, alpha: 1 - dampening)
                        } else {
                            buffer = try d.clone().detach()
                            buffers[ObjectIdentifier(p)] = buffer
                        }
                        d = nesterov ? try d + (buffer * momentum) : buffer
                    }
                    try p.add_(d, alpha: -group.lr)
                }
            }
        }
    }

    public func stateDict() throws -> OptimizerState {
        var tensors: [String: Tensor] = [:]
        for (i, p) in flatParameters.enumerated() {
            if let buffer = buffers[ObjectIdentifier(p)] { tensors["state.\(i).momentum_buffer"] = buffer }
        }
        var meta = groupMetadata()
        meta["optimizer"] = "SGD"
        return OptimizerState(tensors: tensors, metadata: meta)
    }

    public func loadStateDict(_ saved: OptimizerState) throws {
        guard saved.metadata["optimizer"] == "SGD" else {
            throw TorchError("optimizer state is for \(saved.metadata["optimizer"] ?? "an unknown optimizer"), not SGD")
        }
        try restoreGroups(from: saved.metadata)
        var restored: [ObjectIdentifier: Tensor] = [:]
        for (i, p) in flatParameters.enumerated() {
            if let buffer = saved.tensors["state.\(i).momentum_buffer"] {
                guard buffer.shape == p.shape else {
                    throw TorchError("momentum buffer \(i) has shape \(buffer.shape), parameter has \(p.shape)")
                }
                restored[ObjectIdentifier(p)] = try buffer.to(dtype: p.dtype, device: p.device, copy: true)
            }
        }
        buffers = restored
    }
}
