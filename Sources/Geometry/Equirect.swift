import Foundation
import Torch

/// Equirectangular panoramas.
///
/// Pixel mapping (docs/datasets.md#equirectangular-panoramas, with the latitude sign written for our y-down world axes):
///
///     longitude u = atan2(x, z)                 ∈ [−π, π]   0 = forward (+z), positive to the right
///     latitude  v = atan2(−y, √(x² + z²))       ∈ [−π/2, π/2], positive up
///     column = (u / 2π + 0.5) · W − 0.5,   row = (−v / π + 0.5) · H − 0.5
///
/// The common form v = atan2(y, …) is py360convert's formula for y-UP axes; with the
/// y-down camera axes of MVDiffusion's R (OpenCV convention) that sign would put the ceiling in the
/// bottom rows, so the latitude here is atan2(−y, …). The result: the centre column looks along
/// yaw 0, yaw grows to the right (a view at yaw θ is centred on column (θ/360 + 0.5)·W − 0.5, as in
/// MVDiffusion's stitched panoramas and PanFusion's `matterport_stitched_images`), the top row is
/// straight up. Columns −0.5 and W − 0.5 are the same meridian (±180°): sampling wraps there.
public enum Equirect {
    /// Pixel coordinates `[..., 2]` (column, row) of directions `[..., 3]` (any length > 0).
    public static func pixels(of directions: Tensor, width: Int, height: Int) throws -> Tensor {
        let x = try directions.select(dim: -1, index: 0), y = try directions.select(dim: -1, index: 1)
        let z = try directions.select(dim: -1, index: 2)
        let u = try x.atan2(z)
        let v = try y.neg().atan2((x.square() + z.square()).sqrt())
        let column = try (u / (2 * Double.pi) + 0.5) * Double(width) - 0.5
        let row = try (v / -Double.pi + 0.5) * Double(height) - 0.5
        return try Tensor.stack([column, row], dim: -1)
    }

    /// Unit directions `[..., 3]` of pixel coordinates `[..., 2]` (column, row).
    public static func directions(atPixels pixels: Tensor, width: Int, height: Int) throws -> Tensor {
        let column = try pixels.select(dim: -1, index: 0), row = try pixels.select(dim: -1, index: 1)
        let u = try ((column + 0.5) / Double(width) - 0.5) * (2 * Double.pi)
        let v = try ((row + 0.5) / Double(height) - 0.5) * -Double.pi
        let cv = try v.cos()
        return try Tensor.stack([cv * u.sin(), v.sin().neg(), cv * u.cos()], dim: -1)
    }

    /// Unit directions of every pixel centre, `[H, W, 3]` (cached per size, dtype and device).
    public static func directionGrid(width: Int, height: Int, dtype: DType = .float32,
                                     device: Device = .cpu) throws -> Tensor {
        try GridCache.shared.grid("equirect", [Double(width), Double(height)], dtype: dtype, device: device) {
            let x = try Tensor.arange(0, Double(width), dtype: .float64).unsqueeze(0).expand([height, width])
            let y = try Tensor.arange(0, Double(height), dtype: .float64).unsqueeze(1).expand([height, width])
            return try directions(atPixels: Tensor.stack([x, y], dim: -1), width: width, height: height)
        }
    }

    /// The (fractional) column whose meridian is at `yaw` degrees.
    public static func column(ofYaw yaw: Double, width: Int) -> Double {
        var u = yaw.truncatingRemainder(dividingBy: 360)
        if u >= 180 { u -= 360 } else if u < -180 { u += 360 }
        return (u / 360 + 0.5) * Double(width) - 0.5
    }

    /// The (fractional) row of latitude `pitch` degrees (positive up).
    public static func row(ofPitch pitch: Double, height: Int) -> Double {
        (-pitch / 180 + 0.5) * Double(height) - 0.5
    }
}

/// A panorama prepared for repeated sampling (a training loader, or a viewport that follows the
/// camera every frame). It is padded once: one wrapped column on each side, so bilinear sampling is
/// continuous across the ±180° seam (no black column), and one row above and below holding the
/// first/last row shifted by half a turn, i.e. the pixels across the pole, so that sampling near
/// the poles blends with the far side instead of clamping.
public final class EquirectSampler: @unchecked Sendable {
    public let width: Int
    public let height: Int
    public let channels: Int
    public let batch: Int
    /// `[B, C, H + 2, W + 2]`
    private let padded: Tensor

    /// `panorama` `[C, H, W]` or `[B, C, H, W]`; uint8 is converted to float32 (values unchanged),
    /// floating dtypes are kept. Samples come back in the same value range.
    public init(_ panorama: Tensor) throws {
        guard panorama.rank == 3 || panorama.rank == 4 else {
            throw TorchError("EquirectSampler: expected [C, H, W] or [B, C, H, W], got \(panorama.shape)")
        }
        var p = panorama.rank == 3 ? try panorama.unsqueeze(0) : panorama
        if !p.dtype.isFloatingPoint { p = try p.to(dtype: .float32) }
        (batch, channels, height, width) = (p.shape[0], p.shape[1], p.shape[2], p.shape[3])
        guard width >= 2, height >= 2 else { throw TorchError("EquirectSampler: panorama \(p.shape) is too small") }
        let top = try p.narrow(dim: 2, start: 0, length: 1).roll(width / 2, dim: 3)
        let bottom = try p.narrow(dim: 2, start: height - 1, length: 1).roll(width / 2, dim: 3)
        let rows = try Tensor.cat([top, p, bottom], dim: 2)
        padded = try Tensor.cat([rows.narrow(dim: 3, start: width - 1, length: 1), rows,
                                 rows.narrow(dim: 3, start: 0, length: 1)], dim: 3).contiguous()
    }

    public var dtype: DType { padded.dtype }
    public var device: Device { padded.device }

    /// Samples at world directions `[h, w, 3]` (shared by the batch) or `[B, h, w, 3]` → `[B, C, h, w]`.
    public func sample(directions: Tensor, mode: F.GridSampleMode = .bilinear) throws -> Tensor {
        guard directions.rank == 3 || directions.rank == 4, directions.shape.last == 3 else {
            throw TorchError("EquirectSampler.sample: expected directions [h, w, 3] or [B, h, w, 3], got \(directions.shape)")
        }
        let d = try directions.to(dtype: dtype)
        let dx = try d.select(dim: -1, index: 0), dy = try d.select(dim: -1, index: 1), dz = try d.select(dim: -1, index: 2)
        let u = try dx.atan2(dz)
        let v = try dy.neg().atan2((dx.square() + dz.square()).sqrt())
        // Equirect.pixels shifted by the one-pixel padding and normalised for align_corners = true
        // collapses to a scale: column + 1 = u·W/2π + (W+1)/2, so x = 2(column + 1)/(W+1) − 1 = u·W/(π(W+1)),
        // and likewise y = −2v·H/(π(H+1)). Fewer ops per frame for a moving viewport.
        let x = try u * (Double(width) / (Double.pi * Double(width + 1)))
        let y = try v * (-2 * Double(height) / (Double.pi * Double(height + 1)))
        var grid = try Tensor.stack([x, y], dim: -1)
        if grid.rank == 3 { grid = try grid.unsqueeze(0).expand([batch] + grid.shape) }
        return try F.gridSample(padded, grid, mode: mode, paddingMode: .border, alignCorners: true)
    }

    /// Perspective views (gnomonic projection). `rotations` camera-to-world, `[V, 3, 3]` (shared by
    /// the batch) or `[B, V, 3, 3]` → `[B, V, C, h, w]` with h, w the camera's size.
    public func perspective(camera: PinholeCamera, rotations: Tensor,
                            mode: F.GridSampleMode = .bilinear) throws -> Tensor {
        guard rotations.rank == 3 || rotations.rank == 4, Array(rotations.shape.suffix(2)) == [3, 3] else {
            throw TorchError("EquirectSampler.perspective: expected rotations [V, 3, 3] or [B, V, 3, 3], got \(rotations.shape)")
        }
        let (h, w) = (camera.height, camera.width)
        let views = rotations.shape[rotations.rank - 3]
        let rays = try camera.rays(dtype: dtype, device: device).reshape([1, h * w, 3])
        // World ray = R · ray; as rows: ray · Rᵀ.
        var world = try rays.matmul(rotations.to(dtype: dtype, device: device).mT())  // [(B,) V, h·w, 3]
        if world.rank == 3 { world = try world.unsqueeze(0).expand([batch, views, h * w, 3]) }
        let sampled = try sample(directions: world.reshape([batch, views * h, w, 3]), mode: mode)
        return try sampled.reshape([batch, channels, views, h, w]).permute(0, 2, 1, 3, 4)
    }

    /// One viewport for a single rotation `[3, 3]` → `[B, C, h, w]` (the call pipeline's per-frame op).
    public func viewport(camera: PinholeCamera, rotation: Tensor, mode: F.GridSampleMode = .bilinear) throws -> Tensor {
        try perspective(camera: camera, rotations: rotation.reshape([1, 3, 3]), mode: mode).select(dim: 1, index: 0)
    }
}

// MARK: - Stitching

/// How overlapping views are blended when stitched into a panorama.
public enum StitchWeighting: String, Sendable, Codable {
    /// MVDiffusion: a horizontal triangle per view, 1 at the centre column and 0 at the left and
    /// right edges, constant vertically. Right for views at pitch 0.
    case horizontal
    /// The triangle in both directions (1 at the centre, 0 on every edge): for full-sphere stitching
    /// of views with pitch, where views also overlap vertically.
    case separable
    /// Plain average of every view that sees the pixel.
    case uniform
}

/// The equirectangular canvas a stitch fills.
public struct StitchCanvas: Equatable, Sendable {
    public var width: Int
    public var height: Int
    /// Rows kept in the output (nil: all).
    public var rows: Range<Int>?

    public init(width: Int, height: Int, rows: Range<Int>? = nil) {
        self.width = width
        self.height = height
        self.rows = rows
    }

    /// MVDiffusion's canvas: 2048 × 4096, cropped to rows 540 ..< 1508 (968 rows, about ±42.5° of
    /// latitude — what eight pitch-0 views of 90° cover).
    public static let mvdiffusion = StitchCanvas(width: 4096, height: 2048, rows: 540..<1508)

    /// A full sphere of `width` × `width / 2`.
    public static func full(width: Int) -> StitchCanvas { StitchCanvas(width: width, height: width / 2) }
}

extension Equirect {
    /// Stitches perspective views into an equirectangular panorama by weighted averaging.
    ///
    /// - Parameters:
    ///   - views: `[B, V, C, h, w]` or `[V, C, h, w]` (any float range; uint8 is converted to float).
    ///   - camera: the views' camera (all views share it).
    ///   - rotations: camera-to-world, `[V, 3, 3]` or `[B, V, 3, 3]`.
    ///   - fill: the value of pixels no view covers (MVDiffusion fills white).
    /// - Returns: the panorama `[B, C, rows, W]` and the summed weight `[B, 1, rows, W]` (0 where
    ///   nothing covers the pixel).
    public static func stitch(views: Tensor, camera: PinholeCamera, rotations: Tensor,
                              canvas: StitchCanvas, weighting: StitchWeighting = .horizontal,
                              fill: Double = 0) throws -> (panorama: Tensor, weight: Tensor) {
        var v = views.rank == 4 ? try views.unsqueeze(0) : views
        guard v.rank == 5, v.shape[3] == camera.height, v.shape[4] == camera.width else {
            throw TorchError("stitch: expected views [B, V, C, \(camera.height), \(camera.width)], got \(views.shape)")
        }
        if !v.dtype.isFloatingPoint { v = try v.to(dtype: .float32) }
        let (batch, count, channels) = (v.shape[0], v.shape[1], v.shape[2])
        guard rotations.shape.suffix(3) == [count, 3, 3] else {
            throw TorchError("stitch: rotations \(rotations.shape) do not match \(count) views")
        }
        let dtype = v.dtype, device = v.device
        let rows = canvas.rows ?? 0..<canvas.height
        let directions = try directionGrid(width: canvas.width, height: canvas.height, dtype: dtype, device: device)
            .narrow(dim: 0, start: rows.lowerBound, length: rows.count)  // [H', W, 3]
        let r = try rotations.to(dtype: dtype, device: device)
        var sum = try Tensor.zeros([batch, channels, rows.count, canvas.width], dtype: dtype, device: device)
        var weights = try Tensor.zeros([batch, 1, rows.count, canvas.width], dtype: dtype, device: device)
        for i in 0..<count {
            // Camera coordinates Rᵀ · d, as rows d · R.
            let ri = r.rank == 3 ? try r.select(dim: 0, index: i).unsqueeze(0) : try r.select(dim: 1, index: i)  // [1 or B, 3, 3]
            let local = try directions.reshape([1, -1, 3]).matmul(ri)  // [1 or B, H'·W, 3]
            let (pixels, inFront) = try camera.project(local)
            let inside = try inFront.logicalAnd(camera.contains(pixels))
            let px = try pixels.select(dim: -1, index: 0), py = try pixels.select(dim: -1, index: 1)
            var weight = try inside.to(dtype: dtype)
            switch weighting {
            case .uniform: break
            case .horizontal:
                weight = try weight * triangle(px, center: camera.cx, halfWidth: Double(camera.width) / 2)
            case .separable:
                weight = try weight * triangle(px, center: camera.cx, halfWidth: Double(camera.width) / 2)
                    * triangle(py, center: camera.cy, halfWidth: Double(camera.height) / 2)
            }
            let grid = try normalizedGrid(pixels, width: camera.width, height: camera.height)
                .reshape([-1, rows.count, canvas.width, 2]).expand([batch, rows.count, canvas.width, 2])
            let sampled = try F.gridSample(v.select(dim: 1, index: i), grid, paddingMode: .border, alignCorners: false)
            let w = try weight.reshape([-1, 1, rows.count, canvas.width])
            sum = try sum + sampled * w
            weights = try weights + w
        }
        let covered = try weights .> 1e-8
        let panorama = try Tensor.where(covered, sum / weights.clamp(min: 1e-8), sum.fullLike(fill))
        return (panorama, weights)
    }

    /// max(0, 1 − |x − center| / halfWidth): 1 at the centre, 0 at the image edges.
    private static func triangle(_ x: Tensor, center: Double, halfWidth: Double) throws -> Tensor {
        let distance = try (x - center).abs() / halfWidth
        return try (1.0 - distance).clamp(min: 0)
    }
}
