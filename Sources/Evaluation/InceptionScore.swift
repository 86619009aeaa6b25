import Foundation
import Torch

/// Inception Score with torch-fidelity's protocol: logits without the fc bias, samples permuted by
/// NumPy's `RandomState(seed).permutation`, `splits` contiguous chunks, per chunk
/// exp(mean KL(p ‖ p̄)) in float64, reported as mean and population standard deviation (ddof 0).
public struct InceptionScore: Equatable, Sendable, CustomStringConvertible {
    public let mean: Double
    public let std: Double

    public var description: String { String(format: "%.4f ± %.4f", mean, std) }

    /// `logits`: `[N, classes]` (unbiased logits for the published protocol).
    public init(logits: Tensor, splits: Int = 10, shuffle: Bool = true, seed: UInt32 = 2020) throws {
        guard logits.rank == 2 else { throw TorchError("Inception Score needs logits [N, classes], got \(logits.shape)") }
        let n = try logits.size(0)
        guard splits >= 1, n >= splits else {
            throw TorchError("Inception Score needs at least \(splits) samples for \(splits) splits, got \(n)")
        }
        var x = try logits.to(dtype: .float64, device: .cpu)
        if shuffle {
            var random = NumPyRandomState(seed: seed)
            let order = random.permutation(n).map(Int64.init)
            x = try x.indexSelect(dim: 0, index: Tensor(order, shape: [n]))
        }
        let p = try F.softmax(x, dim: 1), logP = try F.logSoftmax(x, dim: 1)
        var scores: [Double] = []
        for i in 0..<splits {
            let (start, end) = (i * n / splits, (i + 1) * n / splits)
            let pChunk = try p.slice(dim: 0, start: start, end: end)
            let logPChunk = try logP.slice(dim: 0, start: start, end: end)
            let q = try pChunk.mean(dim: 0, keepDim: true)
            let kl = try pChunk * (logPChunk - q.log())
            scores.append(try kl.sum(dim: 1).mean().exp().item())
        }
        let average = scores.reduce(0, +) / Double(splits)
        mean = average
        std = (scores.map { ($0 - average) * ($0 - average) }.reduce(0, +) / Double(splits)).squareRoot()
    }
}

/// NumPy's legacy `RandomState` (MT19937 seeded with `init_genrand`), enough of it to reproduce
/// `permutation`, which torch-fidelity uses to assign samples to Inception-Score splits.
struct NumPyRandomState {
    private var state = [UInt32](repeating: 0, count: 624)
    private var position = 624

    init(seed: UInt32) {
        state[0] = seed
        for i in 1..<624 {
            state[i] = 1_812_433_253 &* (state[i - 1] ^ (state[i - 1] >> 30)) &+ UInt32(i)
        }
    }

    mutating func nextUInt32() -> UInt32 {
        if position >= 624 { twist() }
        var y = state[position]
        position += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9d2c_5680
        y ^= (y << 15) & 0xefc6_0000
        y ^= y >> 18
        return y
    }

    private mutating func twist() {
        for i in 0..<624 {
            let y = (state[i] & 0x8000_0000) | (state[(i + 1) % 624] & 0x7fff_ffff)
            state[i] = state[(i + 397) % 624] ^ (y >> 1) ^ (y & 1 == 0 ? 0 : 0x9908_b0df)
        }
        position = 0
    }

    /// A uniform integer in 0...max by masked rejection, as NumPy's `random_interval`.
    mutating func interval(_ max: UInt32) -> UInt32 {
        if max == 0 { return 0 }
        var mask = max
        mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4; mask |= mask >> 8; mask |= mask >> 16
        while true {
            let value = nextUInt32() & mask
            if value <= max { return value }
        }
    }

    /// `RandomState.permutation(n)`: Fisher–Yates from the end, as NumPy's legacy shuffle.
    mutating func permutation(_ n: Int) -> [Int] {
        var values = Array(0..<n)
        var i = n - 1
        while i >= 1 {
            let j = Int(interval(UInt32(i)))
            values.swapAt(i, j)
            i -= 1
        }
        return values
    }
}
