import Foundation
import Torch

/// How each panorama's view yaws are offset.
public enum YawPolicy: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The same offset always (test: 0, as MVDiffusion).
    case fixed(Double)
    /// A fresh integer offset 0…359 per (seed, epoch, panorama), as MVDiffusion's
    /// `random.randint(0, 359)` for training.
    case random
    /// `count` integer offsets drawn once per (seed, panorama); each epoch uses one of them. This is
    /// what a latent cache stores when training uses random offsets.
    case randomSet(count: Int)

    /// The offset in degrees for panorama `index` in `epoch`.
    public func offset(seed: UInt64, epoch: Int, index: Int) -> Double {
        switch self {
        case .fixed(let value):
            return value
        case .random:
            var g = SplitMix64(seed, 0x5941_57, UInt64(epoch), UInt64(index))
            return Double(g.next() % 360)
        case .randomSet:
            let choices = offsets(seed: seed, index: index)
            var g = SplitMix64(seed, 0x5345_54, UInt64(epoch), UInt64(index))
            return choices[Int(g.next() % UInt64(choices.count))]
        }
    }

    /// Every offset this policy can give panorama `index` (one for `.fixed`, 360 for `.random`).
    public func offsets(seed: UInt64, index: Int) -> [Double] {
        switch self {
        case .fixed(let value): return [value]
        case .random: return (0..<360).map(Double.init)
        case .randomSet(let count):
            var g = SplitMix64(seed, 0x5345_54, UInt64(index))
            return (0..<max(count, 1)).map { _ in Double(g.next() % 360) }
        }
    }

    /// A stable text form (for cache attributes and logs).
    public var description: String {
        switch self {
        case .fixed(let value): "fixed(\(value))"
        case .random: "random-integer-degrees"
        case .randomSet(let count): "random-set(\(count))"
        }
    }
}

/// Order, sharding and failure policy of a pass over a `PanoramaSource`.
public struct LoaderOptions: Hashable, Sendable, Codable {
    public var seed: UInt64 = 0
    /// Shuffle the panoramas each epoch (a permutation of (seed, epoch), the same on every rank).
    public var shuffle = true
    /// This process's rank and the number of data-parallel processes: rank r takes positions
    /// r, r + W, r + 2W, … of the epoch's order, so ranks see disjoint panoramas.
    public var rank = 0
    public var worldSize = 1
    /// Drop the last N mod W panoramas of the order so every rank gets the same count (data-parallel
    /// steps must match); off for evaluation, where every panorama counts.
    public var evenShards = true
    public var yawPolicy: YawPolicy = .random
    /// Skip panoramas that fail to load (missing faces, unreadable JPEGs, absent captions), logging
    /// each one, instead of stopping at the first.
    public var skipBad = false
    /// Samples decoded ahead on a background thread while the caller works on the current one.
    public var prefetch = 1

    public init(seed: UInt64 = 0, shuffle: Bool = true, rank: Int = 0, worldSize: Int = 1, evenShards: Bool = true,
                yawPolicy: YawPolicy = .random, skipBad: Bool = false, prefetch: Int = 1) {
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.worldSize = worldSize
        self.evenShards = evenShards
        self.yawPolicy = yawPolicy
        self.skipBad = skipBad
        self.prefetch = prefetch
    }

    /// Evaluation: no shuffling, yaw offset 0, every panorama.
    public static func evaluation(rank: Int = 0, worldSize: Int = 1) -> LoaderOptions {
        LoaderOptions(shuffle: false, rank: rank, worldSize: worldSize, evenShards: false, yawPolicy: .fixed(0))
    }
}

/// Iterates a `PanoramaSource` epoch by epoch: deterministic order, sharding, yaw offsets, optional
/// skipping of bad panoramas and background prefetching.
public final class PanoramaLoader {
    public let source: PanoramaSource
    public let options: LoaderOptions
    /// Where skipped panoramas are reported (standard error by default).
    public var log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    /// Identifiers skipped so far (over all epochs), with the reason.
    public private(set) var skipped: [(panorama: String, reason: String)] = []

    public init(source: PanoramaSource, options: LoaderOptions) throws {
        guard options.worldSize >= 1, (0..<options.worldSize).contains(options.rank) else {
            throw DatasetError("rank \(options.rank) is outside a world of \(options.worldSize) processes")
        }
        self.source = source
        self.options = options
    }

    /// The panorama indices this rank visits in `epoch`, in order.
    public func indices(epoch: Int) -> [Int] {
        var order = Array(0..<source.count)
        if options.shuffle {
            var g = SplitMix64(options.seed, 0x5348_5546, UInt64(epoch))
            // Fisher–Yates with our own generator (Swift's shuffle algorithm is not guaranteed stable
            // across toolchains).
            for i in stride(from: order.count - 1, to: 0, by: -1) {
                order.swapAt(i, Int(g.next() % UInt64(i + 1)))
            }
        }
        let world = options.worldSize
        let usable = options.evenShards ? order.count / world * world : order.count
        return stride(from: options.rank, to: usable, by: world).map { order[$0] }
    }

    /// Panoramas per rank per epoch.
    public var countPerEpoch: Int { indices(epoch: 0).count }

    /// The yaw offset (degrees) of panorama `index` in `epoch`.
    public func yawOffset(index: Int, epoch: Int) -> Double {
        options.yawPolicy.offset(seed: options.seed, epoch: epoch, index: index)
    }

    /// Loads one panorama with this epoch's offset (no skipping).
    public func sample(index: Int, epoch: Int) throws -> MultiViewSample {
        try source.sample(at: index, yawOffset: yawOffset(index: index, epoch: epoch))
    }

    /// Calls `body` with each sample of this rank in `epoch`. A failing panorama stops the pass with
    /// its error, or with `skipBad` is logged and skipped; the number skipped is printed at the end.
    /// Returns the number of samples delivered.
    @discardableResult
    public func forEach(epoch: Int, _ body: (MultiViewSample) throws -> Void) throws -> Int {
        let source = self.source
        return try forEach(epoch: epoch, load: { index, yawOffset in try source.sample(at: index, yawOffset: yawOffset) }, body)
    }

    /// The same pass with another loader of items (e.g. a latent cache keyed by panorama index and
    /// yaw offset): order, sharding, yaw offsets, skipping and prefetching stay the loader's.
    @discardableResult
    public func forEach<Item>(epoch: Int, load: @escaping (_ index: Int, _ yawOffset: Double) throws -> Item,
                              _ body: (Item) throws -> Void) throws -> Int {
        let order = indices(epoch: epoch)
        let skippedBefore = skipped.count
        var delivered = 0
        let options = self.options
        let pending = Prefetcher(depth: max(0, options.prefetch)) { (i: Int) -> Result<Item, Error> in
            let index = order[i]
            return Result { try load(index, options.yawPolicy.offset(seed: options.seed, epoch: epoch, index: index)) }
        }
        for i in order.indices {
            switch pending.take(i, count: order.count) {
            case .success(let item):
                try body(item)
                delivered += 1
            case .failure(let error):
                guard options.skipBad else { throw error }
                let id = source.identifier(at: order[i])
                // The error usually names the panorama already; do not repeat it.
                var reason = "\(error)"
                if let error = error as? DatasetError, error.panorama == id {
                    reason = (error.file.map { "\($0): " } ?? "") + error.message
                }
                skipped.append((id, reason))
                log("skipping panorama \(id): \(reason)")
            }
        }
        let count = skipped.count - skippedBefore
        if options.skipBad, count > 0 {
            log("skipped \(count) of \(order.count) panoramas in epoch \(epoch) (skip_bad)")
        }
        return delivered
    }
}

/// Computes items i, i+1, … ahead of time on one background queue, so that decoding and warping the
/// next panorama overlaps with the caller's work on this one (LibTorch is safe to call from several
/// threads on distinct tensors).
private final class Prefetcher<Value> {
    private let depth: Int
    private let make: (Int) -> Value
    private let queue = DispatchQueue(label: "backdrop.datasets.prefetch")
    private var results: [Int: Value] = [:]
    private var started = Set<Int>()
    private let condition = NSCondition()

    init(depth: Int, make: @escaping (Int) -> Value) {
        self.depth = depth
        self.make = make
    }

    /// Item `i` (computed now if it was not prefetched), scheduling the next `depth` items.
    func take(_ i: Int, count: Int) -> Value {
        for j in i...min(count - 1, i + depth) where j > i || depth > 0 { start(j) }
        if depth == 0 { return make(i) }
        condition.lock()
        defer { condition.unlock() }
        while results[i] == nil { condition.wait() }
        return results.removeValue(forKey: i)!
    }

    private func start(_ j: Int) {
        condition.lock()
        let fresh = started.insert(j).inserted
        condition.unlock()
        guard fresh else { return }
        queue.async { [self] in
            let value = make(j)
            condition.lock()
            results[j] = value
            condition.broadcast()
            condition.unlock()
        }
    }
}
