import Foundation
import Geometry
import Torch

/// Multi-view consistency as MVDiffusion reports it (docs/metrics.md#consistency-psnr): the PSNR of the overlap
/// of neighbouring views, and its ratio to the same number on ground-truth views.
///
/// Protocol, per scene of V views with intrinsics K and camera-to-world rotations R:
/// - pairs (i, i + 1 mod V): view i is warped into view i + 1 by H = K_{i+1} R_{i+1}⁻¹ R_i K_i⁻¹
///   (`Homography.between`), bilinearly;
/// - the overlap is the set of target pixels whose source point lies in front of view i's camera
///   and inside its pixel-centre hull [0, W − 1] × [0, H − 1], so that no interpolated value mixes
///   in padding (a mask up to the image edge would darken a one-pixel seam and cap even ground
///   truth at a few tens of dB);
/// - PSNR = 10 log₁₀(255² / MSE) over the overlap's pixels and all three channels, on 8-bit values
///   (0…255, MAX = 255; the same as [0, 1] with MAX = 1). An overlap identical to within
///   MSE ≤ 255²·10⁻¹⁰ counts as `maximumPSNR` (100 dB) so that means and ratios stay finite;
/// - a scene's score is the mean over its V pairs; a set's score the mean over its scenes.
/// Computed in float64. tools/consistency_reference.py is an independent NumPy implementation.
public enum ViewConsistency {
    public static let peak = 255.0
    public static let maximumPSNR = 100.0
    /// How far (in pixels, as a fraction of a bilinear weight) a source point may lie outside the
    /// pixel-centre hull and still count, to absorb float64 rounding of exactly-on-edge points.
    static let hullTolerance = 1e-6

    /// PSNR of each pair (i, i + 1 mod V) of one scene. `views`: `[V, 3, H, W]`, uint8 or float on
    /// 0…255; `intrinsics` `[V, 3, 3]` or `[3, 3]`; `rotations` `[V, 3, 3]` camera-to-world.
    public static func pairPSNRs(views: Tensor, intrinsics: Tensor, rotations: Tensor) throws -> [Double] {
        guard views.rank == 4, try views.size(1) == 3, try views.size(0) >= 2 else {
            throw TorchError("consistency needs at least two views [V, 3, H, W], got \(views.shape)")
        }
        let (count, height, width) = (views.shape[0], views.shape[2], views.shape[3])
        guard rotations.shape == [count, 3, 3], intrinsics.shape == [count, 3, 3] || intrinsics.shape == [3, 3] else {
            throw TorchError("consistency: \(count) views need rotations [\(count), 3, 3] and intrinsics [\(count), 3, 3] " +
                             "or [3, 3], got \(rotations.shape) and \(intrinsics.shape)")
        }
        let pixels = try views.to(dtype: .float64, device: .cpu)
        let all = try Homography.pairwise(k: intrinsics.to(dtype: .float64, device: .cpu),
                                          r: rotations.to(dtype: .float64, device: .cpu))
        let next = (0..<count).map { ($0 + 1) % count }
        let h = try Tensor.stack((0..<count).map { try all.select(dim: 0, index: $0).select(dim: 0, index: next[$0]) })
        // A channel of ones warped alongside the image holds the bilinear weight that landed on real
        // pixels: 1 exactly where the source point is inside the pixel-centre hull.
        let withOnes = try Tensor.cat([pixels, pixels.select(dim: 1, index: 0).unsqueeze(1).onesLike()], dim: 1)
        let (warped, inFrontAndInside) = try Homography.warp(withOnes, homography: h, size: IntPair(height, width))
        let weight = try warped.select(dim: 1, index: 3).unsqueeze(1)
        let overlap = try inFrontAndInside.logicalAnd(weight .>= 1 - hullTolerance).to(dtype: .float64)
        let target = try pixels.indexSelect(dim: 0, index: Tensor(next.map(Int64.init), shape: [count]))
        let squared = try (warped.slice(dim: 1, start: 0, end: 3) - target).square() * overlap
        let errors: [Double] = try squared.sum(dims: [1, 2, 3]).toArray()
        let sizes: [Double] = try overlap.sum(dims: [1, 2, 3]).toArray()
        return try zip(errors, sizes).enumerated().map { pair, values in
            let (error, size) = values
            guard size > 0 else {
                throw TorchError("consistency: views \(pair) and \(next[pair]) do not overlap (views must be closer than one field of view)")
            }
            return psnr(meanSquaredError: error / (3 * size))
        }
    }

    /// 10 log₁₀(255² / MSE) on 0…255 values, at most `maximumPSNR`.
    public static func psnr(meanSquaredError mse: Double) -> Double {
        let floor = peak * peak * pow(10, -maximumPSNR / 10)
        return 10 * log10(peak * peak / max(mse, floor))
    }

    /// The mean over the pairs of one scene.
    public static func scenePSNR(views: Tensor, intrinsics: Tensor, rotations: Tensor) throws -> Double {
        let pairs = try pairPSNRs(views: views, intrinsics: intrinsics, rotations: rotations)
        return pairs.reduce(0, +) / Double(pairs.count)
    }
}

/// A set's consistency: the mean of the per-scene overlap PSNRs (`ViewConsistency`).
public struct ConsistencyScore: Equatable, Sendable {
    public let perScene: [Double]
    public var psnr: Double { perScene.reduce(0, +) / Double(max(perScene.count, 1)) }

    public init(perScene: [Double]) { self.perScene = perScene }

    /// This set's PSNR over the ground truth's (MVDiffusion: 25.4 / 37.7 = 0.67).
    public func ratio(to groundTruth: ConsistencyScore) -> Double { psnr / groundTruth.psnr }
}
