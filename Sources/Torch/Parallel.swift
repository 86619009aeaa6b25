import Dispatch

/// Data-parallel loops for plain Swift kernels that run between tensor ops (the call pipeline's
/// 8-bit stages), on `Parallel.threads` workers. (LibTorch's `at::parallel_for` is a header template
/// whose OpenMP pragmas only take effect in code compiled with OpenMP, which the bridge is not, so
/// the loops use Dispatch.)
public enum Parallel {
    /// Workers for these loops; nil follows `Runtime.threads`. Separate so that a video call can run
    /// its Swift stages on every core while LibTorch keeps one thread for a small network.
    nonisolated(unsafe) public static var threads: Int?

    /// Calls `body` on disjoint chunks that cover `range`, in parallel when the range holds more than
    /// `grain` elements. Chunks run in no particular order.
    public static func forEach(_ range: Range<Int>, grain: Int, _ body: (Range<Int>) -> Void) {
        let count = range.count
        let chunks = min(max(threads ?? Runtime.threads, 1), max(1, count / max(grain, 1)))
        guard chunks > 1 else {
            if !range.isEmpty { body(range) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            body((range.lowerBound + count * chunk / chunks)..<(range.lowerBound + count * (chunk + 1) / chunks))
        }
    }
}
