/// SplitMix64: a tiny seeded generator for reproducible sampling in plain Swift code (data loading
/// order, RANSAC, test data), where a LibTorch `Generator` would cost a tensor per draw; the same
/// keys give the same sequence on every platform.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// A generator for a tuple of keys (e.g. seed, epoch, index), each mixed in turn.
    public init(_ keys: UInt64...) {
        var s: UInt64 = 0x243F_6A88_85A3_08D3
        for key in keys {
            var g = SplitMix64(seed: s ^ key)
            s = g.next()
        }
        state = s
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }

    /// A value in 0..<n (n > 0; the modulo bias is below 2⁻⁴⁰ for the small n used here).
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}
