import Foundation

/// Learning-rate schedules with `torch.optim.lr_scheduler` semantics. Call `step()` once per
/// optimiser step or once per epoch, whichever the run's config says; the schedule itself only
/// counts calls.
public final class LRScheduler {
    public enum Kind: Equatable, Sendable {
        /// The learning rate never changes.
        case constant
        /// `LinearLR`: factor goes linearly from `startFactor` to `endFactor` over `totalIters` steps.
        case linear(startFactor: Double, endFactor: Double = 1, totalIters: Int)
        /// `CosineAnnealingLR(T_max, eta_min)`, with PyTorch's recursive update (it restarts upward
        /// past `tMax`, as PyTorch does).
        case cosine(tMax: Int, etaMin: Double = 0)
        /// Linear warm-up from `startFactor` for `warmupSteps`, then cosine annealing over the rest.
        case warmupCosine(warmupSteps: Int, startFactor: Double, tMax: Int, etaMin: Double = 0)
    }

    public let kind: Kind
    public private(set) var lastEpoch = 0
    private unowned let optimizer: any Optimizer
    private var baseLRs: [Double]

    public init(_ optimizer: any Optimizer, _ kind: Kind) throws {
        switch kind {
        case .linear(let start, let end, let total):
            guard start > 0, start <= 1, end >= 0, end <= 1, total > 0 else {
                throw TorchError("linear schedule needs 0 < startFactor ≤ 1, 0 ≤ endFactor ≤ 1 and totalIters > 0")
            }
        case .cosine(let tMax, _):
            guard tMax > 0 else { throw TorchError("cosine schedule needs tMax > 0, got \(tMax)") }
        case .warmupCosine(let warmup, let start, let tMax, _):
            guard warmup >= 0, start > 0, start <= 1, tMax > 0 else {
                throw TorchError("warm-up cosine schedule needs warmupSteps ≥ 0, 0 < startFactor ≤ 1, tMax > 0")
            }
        case .constant: break
        }
        self.optimizer = optimizer
        self.kind = kind
        baseLRs = optimizer.paramGroups.map(\.initialLR)
        applyInitial()
    }

    /// The learning rate of each group now.
    public var currentLRs: [Double] { optimizer.paramGroups.map(\.lr) }

    public func step() {
        lastEpoch += 1
        for i in optimizer.paramGroups.indices {
            optimizer.paramGroups[i].lr = nextLR(current: optimizer.paramGroups[i].lr, base: baseLRs[i])
        }
    }

    /// Continues a schedule from a checkpoint: the group learning rates are restored with the
    /// optimiser's state, this restores the counter.
    public func restore(lastEpoch: Int) { self.lastEpoch = lastEpoch }

    private func applyInitial() {
        let factor: Double
        switch kind {
        case .linear(let start, _, _): factor = start
        case .warmupCosine(let warmup, let start, _, _) where warmup > 0: factor = start
        default: return
        }
        for i in optimizer.paramGroups.indices { optimizer.paramGroups[i].lr *= factor }
    }

    private func nextLR(current: Double, base: Double) -> Double {
        switch kind {
        case .constant:
            return current
        case .linear(let start, let end, let total):
            return Self.linearStep(current: current, epoch: lastEpoch, start: start, end: end, total: total)
        case .cosine(let tMax, let etaMin):
            return Self.cosineStep(current: current, base: base, epoch: lastEpoch, tMax: tMax, etaMin: etaMin)
        case .warmupCosine(let warmup, let start, let tMax, let etaMin):
            if lastEpoch <= warmup, warmup > 0 {
                return Self.linearStep(current: current, epoch: lastEpoch, start: start, end: 1, total: warmup)
            }
            return Self.cosineStep(current: current, base: base, epoch: lastEpoch - warmup, tMax: tMax, etaMin: etaMin)
        }
    }

    private static func linearStep(current: Double, epoch: Int, start: Double, end: Double, total: Int) -> Double {
        if epoch > total { return current }
        return current * (1 + (end - start) / (Double(total) * start + Double(epoch - 1) * (end - start)))
    }

    private static func cosineStep(current: Double, base: Double, epoch: Int, tMax: Int, etaMin: Double) -> Double {
        let e = Double(epoch), t = Double(tMax)
        if epoch == 0 { return current }
        if (epoch - 1 - tMax) % (2 * tMax) == 0 {
            return current + (base - etaMin) * (1 - cos(Double.pi / t)) / 2
        }
        return (1 + cos(Double.pi * e / t)) / (1 + cos(Double.pi * (e - 1) / t)) * (current - etaMin) + etaMin
    }
}
