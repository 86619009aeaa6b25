import Foundation
import Support
import Torch

/// How fast a `PanoramaLoader` delivers samples (decoding plus warping, no model): what
/// `backdrop dataset bench` reports.
public struct LoaderThroughput: Sendable {
    public let panoramas: Int
    public let views: Int
    /// Wall-clock and process CPU seconds of the timed samples (CPU time as well because on a shared
    /// machine wall time also measures the neighbours).
    public let seconds: Double
    public let cpuSeconds: Double

    public var viewsPerSecond: Double { seconds > 0 ? Double(views) / seconds : 0 }
    public var cpuSecondsPerView: Double { cpuSeconds / Double(max(views, 1)) }
}

extension PanoramaLoader {
    /// Times `panoramas` samples after one warm-up sample (grids, allocator), in the loader's
    /// order, epoch after epoch as needed.
    public func measureThroughput(panoramas count: Int, progress: ProgressReporter? = nil) throws -> LoaderThroughput {
        guard count >= 1 else { throw DatasetError("the loader benchmark needs at least one panorama, not \(count)") }
        guard source.count > 0 else { throw DatasetError("the dataset has no panoramas to time") }
        _ = try sample(index: 0, epoch: 0)
        var views = 0, done = 0
        let start = Date(), cpuStart = processCPUSeconds()
        do {
            for epoch in 0... {
                let delivered = try forEach(epoch: epoch) { sample in
                    views += sample.images.shape[0]
                    done += 1
                    progress?.update(done)
                    if done >= count { throw Enough() }
                }
                guard delivered > 0 else { throw DatasetError("epoch \(epoch) delivered no panoramas (all skipped?)") }
            }
        } catch is Enough {}
        progress?.finish()
        return LoaderThroughput(panoramas: done, views: views, seconds: Date().timeIntervalSince(start),
                                cpuSeconds: processCPUSeconds() - cpuStart)
    }
}

/// Ends the timed pass once enough samples came.
private struct Enough: Error {}
