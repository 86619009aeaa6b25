import Datasets
import Foundation
import Torch

/// Which of the synthetic rooms' wall colours a view shows (docs/metrics.md#wall-colour): the
/// generator's own colour labels, read from the captions, and a k-nearest-neighbour vote on one
/// feature per view: the per-channel median of its wall band (the rows between 25 % and 60 % of the
/// height, where a level camera sees wall; the median ignores the furniture, windows and doors on
/// it) divided by that of its ceiling band (the top 8 %). The rooms are lit warm, cool or dim at
/// random, which moves a white wall to orange or a dark blue one to brown; the ceiling, one material
/// in every room, carries the same light, so the ratio cancels most of it (70 % against 58 % for the
/// wall alone on real views, measured when this was chosen). Fitted on real training views; its
/// accuracy on real test views is the measure's own ceiling.
public struct WallColourClassifier: Sendable {
    public static let colours = SyntheticRooms.wallColours
    let features: [[Double]]
    let labels: [Int]
    public let k: Int

    /// The wall colour a caption names ("a pale blue wall", "a dark blue striped wall"), as an index
    /// into `colours`; nil when it names none. Longer names win ("light grey" over "grey").
    public static func label(caption: String) -> Int? {
        let words = caption.lowercased().split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
        for (index, colour) in colours.enumerated().sorted(by: { $0.element.count > $1.element.count }) {
            let name = colour.split(separator: " ").map(String.init)
            for start in words.indices where start > 0 && words[start - 1] == "a" && start + name.count <= words.count {
                guard Array(words[start..<(start + name.count)]) == name else { continue }
                // "<colour> wall" or "<colour> <pattern> wall"
                let rest = words[(start + name.count)...].prefix(2)
                if rest.first == "wall" || (rest.count == 2 && rest.last == "wall") { return index }
            }
        }
        return nil
    }

    /// `image` `[3, H, W]` uint8 → per channel, the median of the wall band over that of the ceiling band.
    public static func feature(_ image: Tensor) throws -> [Double] {
        let height = image.shape[1]
        func median(rows start: Int, _ count: Int) throws -> [Double] {
            let band = try image.narrow(dim: 1, start: start, length: max(1, count)).to(dtype: .float64).flatten(start: 1, end: -1)
            return try band.sort(dim: 1).values.select(dim: 1, index: band.shape[1] / 2).toArray(Double.self)
        }
        let wall = try median(rows: height / 4, height * 3 / 5 - height / 4)
        let ceiling = try median(rows: 0, height * 2 / 25)
        return zip(wall, ceiling).map { ($0 + 1) / ($1 + 1) }
    }

    /// Fits on `images` (`[3, H, W]` uint8) with their colour indices.
    public init(images: [Tensor], labels: [Int], k: Int = 5) throws {
        guard !images.isEmpty, images.count == labels.count else {
            throw TorchError("wall colour classifier: \(images.count) images for \(labels.count) labels")
        }
        features = try images.map(Self.feature)
        self.labels = labels
        self.k = min(k, images.count)
    }

    /// The majority colour among the `k` nearest training features (ties: the nearest of them).
    public func predict(_ image: Tensor) throws -> Int {
        let x = try Self.feature(image)
        func distance(_ f: [Double]) -> Double {
            var sum = 0.0
            for (a, b) in zip(f, x) { sum += (a - b) * (a - b) }
            return sum
        }
        let scored: [(distance: Double, label: Int)] = zip(features, labels).map { (distance($0.0), $0.1) }
        let nearest = scored.sorted { $0.distance < $1.distance }.prefix(k)
        var votes: [Int: Int] = [:]
        for neighbour in nearest { votes[neighbour.label, default: 0] += 1 }
        let best = votes.values.max()!
        return nearest.first { votes[$0.label] == best }!.label
    }

    /// Per colour of `colours`, how many of `images` are labelled with it and how many of those it
    /// is predicted to be: which colours a model keeps and which it loses
    /// (docs/models.md#what-bounds-the-miniature).
    public func tally(_ images: [Tensor], labels: [Int]) throws -> [ColourTally] {
        guard images.count == labels.count else {
            throw TorchError("wall colour classifier: \(images.count) images for \(labels.count) labels")
        }
        var tallies = Self.colours.map { ColourTally(colour: $0, views: 0, hits: 0) }
        for (image, label) in zip(images, labels) {
            guard tallies.indices.contains(label) else {
                throw TorchError("wall colour classifier: label \(label) is not one of the \(tallies.count) wall colours")
            }
            tallies[label].views += 1
            if try predict(image) == label { tallies[label].hits += 1 }
        }
        return tallies
    }

    /// The share of `images` whose predicted colour is their label.
    public func accuracy(_ images: [Tensor], labels: [Int]) throws -> Double {
        try Self.accuracy(tally(images, labels: labels))
    }

    /// The share of all tallied views that were predicted rightly (NaN for none).
    public static func accuracy(_ tallies: [ColourTally]) -> Double {
        let views = tallies.reduce(0) { $0 + $1.views }
        return views == 0 ? .nan : Double(tallies.reduce(0) { $0 + $1.hits }) / Double(views)
    }
}

/// One wall colour's views and how many of them the classifier names rightly.
public struct ColourTally: Sendable, Equatable {
    public let colour: String
    public var views: Int
    public var hits: Int

    public init(colour: String, views: Int, hits: Int) {
        self.colour = colour
        self.views = views
        self.hits = hits
    }
}
