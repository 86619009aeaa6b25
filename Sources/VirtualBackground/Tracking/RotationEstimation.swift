import Foundation
import Geometry
import Torch

/// The unit ray K⁻¹·(x, y, 1) of a pixel, in the camera's OpenCV axes.
struct Intrinsics: Equatable {
    var focal: Double
    var cx: Double
    var cy: Double

    func bearing(_ p: SIMD2<Float>) -> SIMD3<Double> {
        normalized(SIMD3((Double(p.x) - cx) / focal, (Double(p.y) - cy) / focal, 1))
    }

    func project(_ d: SIMD3<Double>) -> SIMD2<Float> {
        SIMD2(Float(d.x / d.z * focal + cx), Float(d.y / d.z * focal + cy))
    }
}

/// Deterministic sampling for RANSAC: the same frames give the same rotations.
typealias SampleGenerator = SplitMix64

/// The rotation R with a ≈ R·b for corresponding unit vectors (the same world points seen from two
/// orientations of a camera that only rotates: with a pinhole K this is the homography H = K R K⁻¹
/// between the images, and working on K⁻¹-normalised bearings leaves only R to find).
enum RotationFit {
    /// Exact for two pairs (the minimal sample): the orthonormal frames spanned by (a₁, a₁ × a₂) and
    /// (b₁, b₁ × b₂) are aligned. nil when the two bearings are (nearly) parallel.
    static func minimal(_ a1: SIMD3<Double>, _ a2: SIMD3<Double>, _ b1: SIMD3<Double>, _ b2: SIMD3<Double>) -> Matrix3? {
        let na = cross(a1, a2), nb = cross(b1, b2)
        let la = (na * na).sum(), lb = (nb * nb).sum()
        guard la > 1e-12, lb > 1e-12 else { return nil }
        let ua = na / la.squareRoot(), ub = nb / lb.squareRoot()
        return Matrix3.outer(a1, b1) + Matrix3.outer(ua, ub) + Matrix3.outer(cross(a1, ua), cross(b1, ub))
    }

    /// Least squares over many pairs (Kabsch / orthogonal Procrustes): R maximises Σ aᵢ·(R bᵢ), i.e. R is
    /// the rotation nearest to M = Σ aᵢ bᵢᵀ, U·diag(1, 1, det(U Vᵀ))·Vᵀ from M's SVD.
    static func leastSquares(_ a: [SIMD3<Double>], _ b: [SIMD3<Double>]) throws -> Matrix3 {
        var m = Matrix3(.zero, .zero, .zero)
        for (u, v) in zip(a, b) { m = m + Matrix3.outer(u, v) }
        let rotation = try Rotations.nearestRotation(Tensor(m.rowMajor, shape: [3, 3]))
        return Matrix3(rowMajor: try rotation.toArray(Double.self))
    }

    /// Squared chord |a − R b|², ≈ the squared angle (radians) between a and R b for small errors.
    @inline(__always)
    static func residual(_ r: Matrix3, _ a: SIMD3<Double>, _ b: SIMD3<Double>) -> Double {
        let d = a - r * b
        return (d * d).sum()
    }
}

/// RANSAC over the pure-rotation model, scored MSAC-style (each pair costs min(residual, threshold²),
/// so among hypotheses with equal inlier counts the tighter one wins), then a least-squares refit on
/// the inliers, twice.
struct RotationRANSAC {
    /// Inlier threshold as an angle in radians (a pixel threshold divided by the focal length).
    var threshold: Double
    var maxIterations = 200
    var confidence = 0.999
    /// Minimal samples whose two bearings are closer than this angle (radians) are skipped: they
    /// leave the rotation about their own direction undetermined.
    var minSeparation = 0.01

    /// R with a ≈ R b on the inliers, and which pairs are inliers; nil with fewer than 2 pairs or no
    /// usable sample.
    func estimate(_ a: [SIMD3<Double>], _ b: [SIMD3<Double>], generator: inout SampleGenerator) throws
        -> (rotation: Matrix3, inliers: [Bool])? {
        let count = a.count
        guard count >= 2, b.count == count else { return nil }
        let t2 = threshold * threshold
        let minSeparation2 = minSeparation * minSeparation
        var best: (rotation: Matrix3, cost: Double, inliers: Int)?
        var iterations = maxIterations, iteration = 0
        while iteration < iterations {
            iteration += 1
            let i = generator.below(count)
            var j = generator.below(count - 1)
            if j >= i { j += 1 }
            let separation = cross(b[i], b[j])
            guard (separation * separation).sum() > minSeparation2,
                  let r = RotationFit.minimal(a[i], a[j], b[i], b[j]) else { continue }
            var cost = 0.0, inliers = 0
            for k in 0..<count {
                let e = RotationFit.residual(r, a[k], b[k])
                if e < t2 { cost += e; inliers += 1 } else { cost += t2 }
            }
            if best == nil || cost < best!.cost {
                best = (r, cost, inliers)
                // Samples needed to draw two inliers at once with the requested confidence.
                let w = Double(inliers) / Double(count)
                let miss = 1 - w * w
                if miss <= 1e-12 {
                    iterations = iteration
                } else {
                    iterations = min(maxIterations, Int((log(1 - confidence) / log(miss)).rounded(.up)))
                }
            }
        }
        guard var rotation = best?.rotation else { return nil }
        var mask = [Bool](repeating: false, count: count)
        for _ in 0..<2 {
            mask = (0..<count).map { RotationFit.residual(rotation, a[$0], b[$0]) < t2 }
            let selected = (0..<count).filter { mask[$0] }
            guard selected.count >= 2 else { break }
            rotation = try RotationFit.leastSquares(selected.map { a[$0] }, selected.map { b[$0] })
        }
        mask = (0..<count).map { RotationFit.residual(rotation, a[$0], b[$0]) < t2 }
        return (rotation, mask)
    }
}
