import Foundation
import Torch

/// A pinhole camera with square pixels, MVDiffusion's intrinsics convention:
/// f = 0.5 · W / tan(FOV / 2) with FOV the horizontal field of view, cx = (W − 1) / 2,
/// cy = (H − 1) / 2. Pixel (x, y) is the centre of column x, row y; the image spans
/// [−0.5, W − 0.5] × [−0.5, H − 0.5].
public struct PinholeCamera: Hashable, Sendable, Codable, CustomStringConvertible {
    /// Horizontal field of view in degrees.
    public var fov: Double
    public var width: Int
    public var height: Int

    public init(fov: Double = 90, width: Int, height: Int) {
        self.fov = fov
        self.width = width
        self.height = height
    }

    /// Checks a horizontal field of view in degrees: a pinhole camera sees less than a half-space.
    /// The one check of every FOV a user gives (configs, commands, the tracker).
    @discardableResult
    public static func validate(fov: Double) throws -> Double {
        guard fov.isFinite, fov > 0, fov < 180 else {
            throw TorchError("a field of view must lie in (0, 180) degrees, got \(fov)")
        }
        return fov
    }

    /// A square camera (MVDiffusion's views: `PinholeCamera(fov: 90, size: 512)`).
    public init(fov: Double = 90, size: Int) { self.init(fov: fov, width: size, height: size) }

    public var focal: Double { 0.5 * Double(width) / tan(fov * .pi / 360) }
    public var cx: Double { Double(width - 1) / 2 }
    public var cy: Double { Double(height - 1) / 2 }
    /// Vertical field of view in degrees (equal to `fov` for square images).
    public var verticalFOV: Double { 2 * atan(0.5 * Double(height) / focal) * 180 / .pi }

    /// K, row-major.
    public var intrinsicsValues: [Double] { [focal, 0, cx, 0, focal, cy, 0, 0, 1] }

    /// K as a `[3, 3]` tensor.
    public func intrinsics(dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        try Tensor(intrinsicsValues, shape: [3, 3]).to(dtype: dtype, device: device)
    }

    /// Camera-space rays K⁻¹ · (x, y, 1) of every pixel centre, `[H, W, 3]` with z = 1 (not
    /// normalised). Cached per (FOV, size, dtype, device).
    public func rays(dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        try GridCache.shared.grid("rays", [fov, Double(width), Double(height)], dtype: dtype, device: device) {
            // Built in float64 so that every cached dtype is rounded once from exact values.
            let xs = try (Tensor.arange(0, Double(width), dtype: .float64) - cx) / focal
            let ys = try (Tensor.arange(0, Double(height), dtype: .float64) - cy) / focal
            let x = try xs.unsqueeze(0).expand([height, width])
            let y = try ys.unsqueeze(1).expand([height, width])
            return try Tensor.stack([x, y, x.onesLike()], dim: -1)
        }
    }

    /// Pixel coordinates `[..., 2]` (x, y) of camera-space directions `[..., 3]`, with a mask of the
    /// directions in front of the camera (z > 0). Points behind get meaningless coordinates.
    public func project(_ directions: Tensor) throws -> (pixels: Tensor, inFront: Tensor) {
        let x = try directions.select(dim: -1, index: 0), y = try directions.select(dim: -1, index: 1)
        let z = try directions.select(dim: -1, index: 2)
        let inFront = try z .> 1e-9
        let safeZ = try Tensor.where(inFront, z, z.onesLike())
        let px = try x / safeZ * focal + cx, py = try y / safeZ * focal + cy
        return (try Tensor.stack([px, py], dim: -1), inFront)
    }

    /// Whether pixel coordinates `[..., 2]` lie inside the image rectangle [−0.5, W − 0.5] × [−0.5, H − 0.5].
    public func contains(_ pixels: Tensor) throws -> Tensor {
        let x = try pixels.select(dim: -1, index: 0), y = try pixels.select(dim: -1, index: 1)
        return try (x .>= -0.5).logicalAnd(x .<= Double(width) - 0.5)
            .logicalAnd(y .>= -0.5).logicalAnd(y .<= Double(height) - 0.5)
    }

    /// The same view at another resolution (intrinsics follow the MVDiffusion formula at that size).
    public func resized(width: Int, height: Int) -> PinholeCamera { PinholeCamera(fov: fov, width: width, height: height) }

    public var description: String { "\(width)×\(height) camera, \(fov)° horizontal FOV" }
}

/// Pixel coordinates → `gridSample` coordinates (align_corners = false: −1 and 1 are the outer
/// edges of the border pixels). `pixels` `[..., 2]` holds (x, y).
public func normalizedGrid(_ pixels: Tensor, width: Int, height: Int) throws -> Tensor {
    let x = try pixels.select(dim: -1, index: 0), y = try pixels.select(dim: -1, index: 1)
    return try Tensor.stack([(x * 2 + 1) / Double(width) - 1, (y * 2 + 1) / Double(height) - 1], dim: -1)
}

/// Homographies between views of a rotating camera.
public enum Homography {
    /// H_ij = K_j · R_j⁻¹ · R_i · K_i⁻¹ (MVDiffusion): maps pixels of view i into view j.
    /// All inputs `[..., 3, 3]` (broadcast); the inverses are true inverses, as in the reference.
    public static func between(ki: Tensor, ri: Tensor, kj: Tensor, rj: Tensor) throws -> Tensor {
        try kj.matmul(Linalg.inv(rj)).matmul(ri).matmul(Linalg.inv(ki))
    }

    /// Every pair: K `[V, 3, 3]` (or `[3, 3]`), R `[V, 3, 3]` → `[V, V, 3, 3]` with entry (i, j) = H_ij.
    public static func pairwise(k: Tensor, r: Tensor) throws -> Tensor {
        let views = r.shape[r.rank - 3]
        let kk = k.rank == 2 ? try k.expand([views, 3, 3]) : k
        return try between(ki: kk.unsqueeze(1), ri: r.unsqueeze(1), kj: kk.unsqueeze(0), rj: r.unsqueeze(0))
    }

    /// Applies H `[..., 3, 3]` to pixel coordinates `[..., N, 2]` → `[..., N, 2]`, with a mask `[..., N]`
    /// of points whose homogeneous coordinate is positive (in front of the target camera).
    public static func apply(_ h: Tensor, to points: Tensor) throws -> (points: Tensor, inFront: Tensor) {
        let homogeneous = try Tensor.cat([points, points.select(dim: -1, index: 0).unsqueeze(-1).onesLike()], dim: -1)
        let mapped = try homogeneous.matmul(h.mT())
        let w = try mapped.select(dim: -1, index: 2)
        let inFront = try w .> 1e-12
        let safeW = try Tensor.where(inFront, w, w.onesLike()).unsqueeze(-1)
        return (try mapped.slice(dim: -1, start: 0, end: 2) / safeW, inFront)
    }

    /// Warps `image` `[B, C, h, w]` into a `size` target: `h` `[B, 3, 3]` (or `[3, 3]`) maps SOURCE
    /// pixels to TARGET pixels (as `cv2.warpPerspective`). Bilinear, zero outside. Returns the warped
    /// image `[B, C, H, W]` and a validity mask `[B, 1, H, W]` (target pixels whose source point lies
    /// in front of the source camera and inside the source image).
    public static func warp(_ image: Tensor, homography h: Tensor, size: IntPair) throws -> (image: Tensor, valid: Tensor) {
        let (batch, srcH, srcW) = (image.shape[0], image.shape[2], image.shape[3])
        let target = try PinholeCamera(fov: 90, width: size.width, height: size.height)
            .pixelGrid(dtype: h.dtype, device: h.device)
        let inverse = try Linalg.inv(h.rank == 2 ? h.expand([batch, 3, 3]) : h)
        let (source, inFront) = try apply(inverse, to: target.reshape([1, -1, 2]))
        let grid = try normalizedGrid(source, width: srcW, height: srcH).reshape([batch, size.height, size.width, 2])
        let sourceCamera = PinholeCamera(fov: 90, width: srcW, height: srcH)
        let valid = try inFront.logicalAnd(sourceCamera.contains(source)).reshape([batch, 1, size.height, size.width])
        let warped = try F.gridSample(image.to(dtype: h.dtype), grid, paddingMode: .zeros, alignCorners: false)
        return (try warped * valid.to(dtype: warped.dtype), valid)
    }
}

extension PinholeCamera {
    /// Pixel-centre coordinates `[H, W, 2]` (x, y) (cached).
    func pixelGrid(dtype: DType, device: Device) throws -> Tensor {
        try GridCache.shared.grid("pixels", [Double(width), Double(height)], dtype: dtype, device: device) {
            let x = try Tensor.arange(0, Double(width), dtype: .float64).unsqueeze(0).expand([height, width])
            let y = try Tensor.arange(0, Double(height), dtype: .float64).unsqueeze(1).expand([height, width])
            return try Tensor.stack([x, y], dim: -1)
        }
    }
}
