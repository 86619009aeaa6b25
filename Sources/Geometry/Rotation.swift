import Foundation
import Torch

// One rotation convention for the whole project (MVDiffusion's, docs/datasets.md#camera-conventions, extended with
// pitch and roll the way the call pipeline needs them):
//
//   * Camera axes are OpenCV's: x right, y down, z forward. World axes are the camera axes of the
//     view at yaw = pitch = roll = 0, so world y also points down.
//   * R maps camera coordinates to world coordinates (camera-to-world); a pixel p's world ray is
//     R · K⁻¹ · p.
//   * R = Ry(yaw) · Rx(pitch) · Rz(roll), with the right-handed elementary rotations
//       Ry(θ) = [[cos θ, 0, sin θ], [0, 1, 0], [−sin θ, 0, cos θ]]
//       Rx(φ) = [[1, 0, 0], [0, cos φ, −sin φ], [0, sin φ, cos φ]]
//       Rz(ψ) = [[cos ψ, −sin ψ, 0], [sin ψ, cos ψ, 0], [0, 0, 1]]
//     so positive yaw turns right (forward (0,0,1) → (sin θ, 0, cos θ)), positive pitch looks up
//     (forward → (0, −sin φ, cos φ), and −y is up), and positive roll turns the camera clockwise
//     about its viewing axis as seen from behind it (its x axis dips towards +y), which makes the
//     scene appear rotated counter-clockwise in the image.
//   * With roll = 0 this is exactly MVDiffusion's get_K_R: R2 @ R1 with R1 = Rodrigues(y·θ) and
//     R2 = Rodrigues((R1·x)·φ) equals Ry(θ) · Rx(φ).
//   * Inverse: pitch = asin(−R[1,2]), yaw = atan2(R[0,2], R[2,2]), roll = atan2(R[1,0], R[1,1]);
//     at gimbal lock (|pitch| = 90°) roll is reported as 0 and yaw = atan2(−R[2,0], R[0,0]).

/// A camera orientation in degrees (see the convention above).
public struct Orientation: Equatable, Hashable, Sendable, Codable, CustomStringConvertible {
    /// Degrees about the vertical axis; positive turns right.
    public var yaw: Double
    /// Degrees; positive looks up.
    public var pitch: Double
    /// Degrees about the viewing axis; positive turns the camera clockwise.
    public var roll: Double

    public init(yaw: Double = 0, pitch: Double = 0, roll: Double = 0) {
        self.yaw = yaw
        self.pitch = pitch
        self.roll = roll
    }

    /// R = Ry(yaw) · Rx(pitch) · Rz(roll), computed in Double.
    public var rotation: Matrix3 {
        let (y, p, r) = (yaw * .pi / 180, pitch * .pi / 180, roll * .pi / 180)
        let ry = Matrix3(SIMD3(cos(y), 0, sin(y)), SIMD3(0, 1, 0), SIMD3(-sin(y), 0, cos(y)))
        let rx = Matrix3(SIMD3(1, 0, 0), SIMD3(0, cos(p), -sin(p)), SIMD3(0, sin(p), cos(p)))
        let rz = Matrix3(SIMD3(cos(r), -sin(r), 0), SIMD3(sin(r), cos(r), 0), SIMD3(0, 0, 1))
        return ry * rx * rz
    }

    /// R as a `[3, 3]` tensor.
    public func matrix(dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        try rotation.tensor(dtype: dtype, device: device)
    }

    /// The orientation of a rotation matrix (see the inverse formulas above).
    public init(rotation m: Matrix3) {
        let pitch = asin(max(-1, min(1, -m.row1.z)))
        if abs(cos(pitch)) < 1e-9 {
            self.init(yaw: atan2(-m.row2.x, m.row0.x) * 180 / .pi, pitch: pitch * 180 / .pi, roll: 0)
        } else {
            self.init(yaw: atan2(m.row0.z, m.row2.z) * 180 / .pi, pitch: pitch * 180 / .pi,
                      roll: atan2(m.row1.x, m.row1.y) * 180 / .pi)
        }
    }

    /// The orientation of a `[3, 3]` rotation tensor.
    public init(matrix: Tensor) throws {
        self.init(rotation: try Matrix3(matrix))
    }

    /// `[N, 3, 3]` matrices of several orientations.
    public static func matrices(_ orientations: [Orientation], dtype: DType = .float32,
                                device: Device = .cpu) throws -> Tensor {
        try Matrix3.stack(orientations.map(\.rotation), dtype: dtype, device: device)
    }

    public var description: String { String(format: "yaw %.2f° pitch %.2f° roll %.2f°", yaw, pitch, roll) }

    /// The angle in degrees of the rotation taking this orientation to `other` (the geodesic
    /// distance on SO(3)), the tracking error measure.
    public func angle(to other: Orientation) -> Double {
        rotation.angle(to: other.rotation)
    }
}

/// Batched rotations on tensors (any device; angles in radians).
public enum Rotations {
    /// `[...]` yaw, pitch and roll (radians, broadcastable) → R `[..., 3, 3]`.
    public static func fromYawPitchRoll(yaw: Tensor, pitch: Tensor, roll: Tensor) throws -> Tensor {
        let (cy, sy) = (try yaw.cos(), try yaw.sin())
        let (cp, sp) = (try pitch.cos(), try pitch.sin())
        let (cr, sr) = (try roll.cos(), try roll.sin())
        // Ry · Rx · Rz multiplied out.
        let entries: [Tensor] = [
            try cy * cr + sy * sp * sr, try sy * sp * cr - cy * sr, try sy * cp,
            try cp * sr, try cp * cr, try -sp,
            try cy * sp * sr - sy * cr, try sy * sr + cy * sp * cr, try cy * cp,
        ]
        let shape = try broadcastShape(entries.map(\.shape))
        return try Tensor.stack(entries.map { try $0.expand(shape) }, dim: -1).reshape(shape + [3, 3])
    }

    /// R `[..., 3, 3]` → yaw, pitch, roll `[...]` in radians (roll 0 at gimbal lock).
    public static func yawPitchRoll(of r: Tensor) throws -> (yaw: Tensor, pitch: Tensor, roll: Tensor) {
        func entry(_ i: Int, _ j: Int) throws -> Tensor { try r.select(dim: -2, index: i).select(dim: -1, index: j) }
        let pitch = try entry(1, 2).neg().clamp(min: -1, max: 1).asin()
        let locked = try pitch.cos().abs() .< 1e-6
        let yaw = try Tensor.where(locked, entry(2, 0).neg().atan2(entry(0, 0)), entry(0, 2).atan2(entry(2, 2)))
        let roll = try Tensor.where(locked, entry(1, 0).zerosLike(), entry(1, 0).atan2(entry(1, 1)))
        return (yaw, pitch, roll)
    }

    /// The rotation nearest to `m` `[..., 3, 3]` in the Frobenius norm (U·diag(1, 1, det(U Vᵀ))·Vᵀ from
    /// the SVD), e.g. to clean up a rotation estimated from a homography.
    public static func nearestRotation(_ m: Tensor) throws -> Tensor {
        let (u, _, vh) = try Linalg.svd(m)
        let d = try Linalg.det(u.matmul(vh))
        let ones = try d.onesLike()
        let correction = try Tensor.stack([ones, ones, d.sign()], dim: -1)
        return try (u * correction.unsqueeze(-2)).matmul(vh)
    }

    private static func broadcastShape(_ shapes: [[Int]]) throws -> [Int] {
        let rank = shapes.map(\.count).max() ?? 0
        var result = [Int](repeating: 1, count: rank)
        for shape in shapes {
            for (i, size) in shape.enumerated() {
                let k = rank - shape.count + i
                if result[k] == 1 { result[k] = size } else if size != 1, size != result[k] {
                    throw TorchError("yaw/pitch/roll shapes \(shapes) do not broadcast")
                }
            }
        }
        return result
    }
}
