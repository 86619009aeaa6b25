import Foundation

/// Parameters that share hyper-parameters, as a `param_groups` entry of `torch.optim`.
public struct ParamGroup {
    public var parameters: [Parameter]
    public var lr: Double
    public var weightDecay: Double
    /// The learning rate the group started with; schedules scale from it (`initial_lr`).
    public var initialLR: Double

    public init(_ parameters: [Parameter], lr: Double, weightDecay: Double) {
        self.parameters = parameters
        self.lr = lr
        self.weightDecay = weightDecay
        initialLR = lr
    }
}

/// An optimiser's state in tensors plus its scalar settings, ready for safetensors.
public struct OptimizerState {
    public var tensors: [String: Tensor]
    public var metadata: [String: String]
}

/// What every optimiser offers: one update from the current gradients, and state to checkpoint.
public protocol Optimizer: AnyObject {
    var paramGroups: [ParamGroup] { get set }
    func step() throws
    func stateDict() throws -> OptimizerState
    func loadStateDict(_ state: OptimizerState) throws
}

extension Optimizer {
    /// Drops (default, like PyTorch 2) or zeroes every gradient.
    public func zeroGrad(setToNone: Bool = true) throws {
        for group in paramGroups {
            for p in group.parameters {
                if setToNone { try p.setGrad(nil) } else { try p.grad?.zero_() }
            }
        }
    }

    /// All parameters in group order; their positions are the keys of the saved state, as in PyTorch.
    var flatParameters: [Parameter] { paramGroups.flatMap(\.parameters) }

    func groupMetadata() -> [String: String] {
        var meta: [String: String] = [:]
        for (i, group) in paramGroups.enumerated() {
            meta["group.\(i).lr"] = "\(group.lr)"
            meta["group.\(i).initial_lr"] = "\(group.initialLR)"
            meta["group.\(i).weight_decay"] = "\(group.weightDecay)"
            meta["group.\(i).count"] = "\(group.parameters.count)"
        }
        return meta
    }

    func restoreGroups(from meta: [String: String]) throws {
        for i in paramGroups.indices {
            guard Int(meta["group.\(i).count"] ?? "") == paramGroups[i].parameters.count,
                  let lr = meta["group.\(i).lr"].flatMap(Double.init),
                  let initial = meta["group.\(i).initial_lr"].flatMap(Double.init),
                  let decay = meta["group.\(i).weight_decay"].flatMap(Double.init)
            else { throw TorchError("optimizer state does not match parameter group \(i) of this optimizer") }
            paramGroups[i].lr = lr
            paramGroups[i].initialLR = initial
            paramGroups[i].weightDecay = decay
        }
    }

    /// Writes the state as a safetensors file (atomically).
    public func save(to url: URL) throws {
        let state = try stateDict()
        try Safetensors.save(state.tensors, metadata: state.metadata, to: url)
    }

    public func load(from url: URL) throws {
        let file = try SafetensorsFile(url: url)
        try loadStateDict(OptimizerState(tensors: try file.loadAll(), metadata: file.metadata))
    }
}

/// Rescales all gradients so their global L2 norm is at most `maxNorm` (`clip_grad_norm_`);
/// returns the norm before clipping.
@discardableResult
public func clipGradNorm(_ parameters: [Parameter], maxNorm: Double) throws -> Double {
    let grads = parameters.compactMap(\.grad)
    guard !grads.isEmpty else { return 0 }
    return try withNoGrad {
        let norms = try grads.map { try Linalg.vectorNorm($0, ord: 2) }
        let total = try Linalg.vectorNorm(Tensor.stack(norms, dim: 0), ord: 2)
        let coefficient = try (total + 1e-6).reciprocal() * maxNorm
        let clamped = try coefficient.clamp(max: 1.0)
        for g in grads { try g.mul_(clamped.to(device: g.device)) }
        return try total.item()
    }
}
