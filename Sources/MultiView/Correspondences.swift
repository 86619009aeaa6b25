import Foundation
import Geometry
import Torch

/// The geometry of correspondence-aware attention for one view layout at one feature resolution,
/// computed once (in float64) and reused by every block and step at that resolution. For query
/// cell (u, v) of view i the pixel is p = (s/2 + s·u, s/2 + s·v) (s = image size / grid size); its
/// correspondence c = H_ij p in neighbour j gives key-grid position g = c/s − 0.5, and the 3×3
/// samples at g + d (x offset outer) are valid when (g + d + 0.5)·s lies strictly inside the image.
/// Mapped back into view i as r, each sample's positional-encoding input is (r − p)/s.
public struct LevelGeometry: @unchecked Sendable {
    public let views: Int
    public let height: Int, width: Int
    /// Neighbour views of each view, flattened view-major: `[V · N]` int64.
    public let neighbourIndex: Tensor
    public let neighboursPerView: Int
    /// Samples per query: N·9.
    public var tokens: Int { neighboursPerView * 9 }
    /// grid_sample coordinates (align_corners true), the 9 offsets stacked along the height:
    /// `[V · N, 9·h, w, 2]`.
    public let sampleGrid: Tensor
    /// Key-grid positions g + d in cell units: `[V, N·9, h, w, 2]`.
    public let keyPositions: Tensor
    /// (r − p)/s: `[V, N·9, h, w, 2]`.
    public let peInput: Tensor
    /// 1 where the sample lies inside the neighbour's image: `[V, N·9, h, w]`.
    public let mask: Tensor

    /// The geometry of `layout`'s views (intrinsics and camera-to-world rotations of one panorama).
    public init(layout: ViewLayout, height: Int, width: Int, neighbours: NeighbourSet, device: Device = .cpu) throws {
        let views = layout.count, imageSize = layout.resolution
        guard views >= 2 else { throw TorchError("CAA geometry needs at least 2 views, got \(views)") }
        guard height > 0, width > 0, imageSize % height == 0, imageSize >= height else {
            throw TorchError("CAA geometry: image size \(imageSize) is not a multiple of the feature size \(height)")
        }
        let k = try layout.intrinsicsTensor(dtype: .float64), r = try layout.rotationsTensor(dtype: .float64)
        let s = imageSize / height
        // Query pixels [h, w, 2] as (x, y).
        let xs = try Tensor.arange(0, Double(width), dtype: .float64) * Double(s) + Double(s / 2)
        let ys = try Tensor.arange(0, Double(height), dtype: .float64) * Double(s) + Double(s / 2)
        let p = try Tensor.stack([xs.view([1, width]).expand([height, width]), ys.view([height, 1]).expand([height, width])], dim: -1)
        let offsets: [(Double, Double)] = [-1.0, 0, 1].flatMap { dx in [-1.0, 0, 1].map { dy in (dx, dy) } }

        var grids: [Tensor] = [], positions: [Tensor] = [], peInputs: [Tensor] = [], masks: [Tensor] = []
        var neighbourList: [Int64] = []
        for i in 0..<views {
            var viewPositions: [Tensor] = [], viewPE: [Tensor] = [], viewMask: [Tensor] = []
            for j in neighbours.of(i, views: views) {
                neighbourList.append(Int64(j))
                let g = try project(homography(k, r, from: i, to: j), p) / Double(s) - 0.5
                let back = try homography(k, r, from: j, to: i)
                var samples: [Tensor] = []
                for (dx, dy) in offsets {
                    let q = try g + Tensor([dx, dy], shape: [2])
                    let image = try (q + 0.5) * Double(s)
                    let ix = try image.select(dim: -1, index: 0), iy = try image.select(dim: -1, index: 1)
                    let inside = try ix.gt(0).logicalAnd(ix.lt(Double(imageSize)))
                        .logicalAnd(iy.gt(0)).logicalAnd(iy.lt(Double(imageSize)))
                    viewPositions.append(q)
                    viewPE.append(try (project(back, image) - p) / Double(s))
                    viewMask.append(inside)
                    samples.append(q)
                }
                // Pixel-index coordinates → grid_sample's [−1, 1] (align_corners true).
                let scale = try Tensor([2 / Double(max(width - 1, 1)), 2 / Double(max(height - 1, 1))], shape: [2])
                grids.append(try Tensor.cat(samples, dim: 0) * scale - 1.0)
            }
            positions.append(try Tensor.stack(viewPositions, dim: 0))
            peInputs.append(try Tensor.stack(viewPE, dim: 0))
            masks.append(try Tensor.stack(viewMask, dim: 0))
        }
        self.views = views
        self.height = height
        self.width = width
        neighboursPerView = neighbours.of(0, views: views).count
        neighbourIndex = try Tensor(neighbourList, shape: [neighbourList.count]).to(device: device)
        // A ray perpendicular to a neighbour's axis projects to infinity; its samples are invalid
        // (masked), but a masked NaN would still poison the attention, so they become zeros.
        sampleGrid = try finite(Tensor.stack(grids, dim: 0)).to(dtype: .float32, device: device)
        keyPositions = try Tensor.stack(positions, dim: 0).to(dtype: .float32, device: device)
        peInput = try finite(Tensor.stack(peInputs, dim: 0)).to(dtype: .float32, device: device)
        mask = try Tensor.stack(masks, dim: 0).to(dtype: .float32, device: device)
    }
}

/// Non-finite entries replaced by 0.
private func finite(_ t: Tensor) throws -> Tensor {
    try Tensor.where(t.isfinite(), t, t.zerosLike())
}

/// H_{i→j} = K_j R_j⁻¹ R_i K_i⁻¹ (true inverses), float64 `[3, 3]`.
func homography(_ K: Tensor, _ R: Tensor, from i: Int, to j: Int) throws -> Tensor {
    let kj = try K.select(dim: 0, index: j), ki = try K.select(dim: 0, index: i)
    let rj = try R.select(dim: 0, index: j), ri = try R.select(dim: 0, index: i)
    return try kj.matmul(Linalg.inv(rj)).matmul(ri).matmul(Linalg.inv(ki))
}

/// Applies a homography to pixel positions `[..., 2]` and dehomogenises.
func project(_ H: Tensor, _ xy: Tensor) throws -> Tensor {
    let ones = try Tensor.ones(Array(xy.shape.dropLast()) + [1], dtype: xy.dtype)
    let projected = try Tensor.cat([xy, ones], dim: -1).matmul(H.transpose(0, 1))
    return try projected.narrow(dim: -1, start: 0, length: 2) / projected.narrow(dim: -1, start: 2, length: 1)
}

/// Geometry per (layout, resolution, device), computed on first use. Yaw offsets rotate all views of a
/// panorama together and leave every R_j⁻¹R_i unchanged, so one entry serves every training panorama
/// of a layout: entries are keyed by, and computed from, the canonical layout (view 0 as the world
/// frame) at 1e-6, which absorbs float32 camera noise.
public final class CorrespondenceCache: @unchecked Sendable {
    private struct Key: Hashable {
        let layout: ViewLayout
        let height: Int, width: Int
        let device: Device
    }

    private var entries: [Key: LevelGeometry] = [:]
    private let lock = NSLock()
    public let neighbours: NeighbourSet
    public let imageSize: Int

    public init(imageSize: Int, neighbours: NeighbourSet = .ring) {
        self.imageSize = imageSize
        self.neighbours = neighbours
    }

    public var count: Int { lock.withLock { entries.count } }

    public func geometry(_ layout: ViewLayout, height: Int, width: Int, device: Device) throws -> LevelGeometry {
        guard layout.resolution == imageSize else {
            throw TorchError("CAA geometry: the views are \(layout.resolution) pixels, the model was built for \(imageSize)")
        }
        let key = Key(layout: layout.canonical(precision: 1e-6), height: height, width: width, device: device)
        if let hit = lock.withLock({ entries[key] }) { return hit }
        // Computed from the key itself, so the cached values do not depend on which panorama (which
        // yaw offset, with which float32 camera noise) happened to fill the entry: a resumed run,
        // whose cache fills at another step, then computes exactly what an uninterrupted one does.
        let geometry = try LevelGeometry(layout: key.layout, height: height, width: width,
                                         neighbours: neighbours, device: device)
        lock.withLock { entries[key] = geometry }
        return geometry
    }
}
