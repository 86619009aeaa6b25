import Foundation
import Torch

/// The six faces of a Matterport3D skybox, in file order (`<pano>_skybox<i>_sami.jpg`), with
/// MVDiffusion's orientations (docs/datasets.md#cube-faces, `vx`/`vy` in its Matterport3D loader): each face is
/// a 90° square view with rotation R = Ry(yaw) · Rx(pitch).
public enum CubeFace: Int, CaseIterable, Sendable {
    case up = 0, left = 1, front = 2, right = 3, back = 4, down = 5

    /// (yaw, pitch) in degrees: up (−90, +90), left (270, 0), front (0, 0), right (90, 0),
    /// back (180, 0), down (−90, −90).
    public var orientation: Orientation {
        switch self {
        case .up: Orientation(yaw: -90, pitch: 90)
        case .left: Orientation(yaw: 270)
        case .front: Orientation(yaw: 0)
        case .right: Orientation(yaw: 90)
        case .back: Orientation(yaw: 180)
        case .down: Orientation(yaw: -90, pitch: -90)
        }
    }
}

/// Cube maps in the skybox layout: faces `[B, 6, C, S, S]` in `CubeFace` order.
public enum CubeMap {
    /// `[6, 3, 3]` camera-to-world rotations of the faces.
    public static func faceRotations(dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        try Orientation.matrices(CubeFace.allCases.map(\.orientation), dtype: dtype, device: device)
    }

    /// The 90° camera of a face of `size` pixels.
    public static func faceCamera(size: Int) -> PinholeCamera { PinholeCamera(fov: 90, size: size) }

    /// Equirectangular → cube: `[B, 6, C, S, S]` faces of `size` pixels rendered from `sampler`.
    public static func faces(from sampler: EquirectSampler, size: Int) throws -> Tensor {
        try sampler.perspective(camera: faceCamera(size: size),
                                rotations: faceRotations(dtype: sampler.dtype, device: sampler.device))
    }
}

/// Samples a cube map in any direction. The faces are laid out once in an atlas, each padded by a
/// one-pixel ring taken from its neighbours, so every direction reads exactly one face with
/// bilinear filtering that stays continuous across face edges (no seams, no black borders).
public final class CubeMapSampler: @unchecked Sendable {
    public let faceSize: Int
    public let channels: Int
    public let batch: Int
    /// `[B, C, 6·(S+2), S+2]`: the padded faces stacked vertically.
    private let atlas: Tensor
    /// `[6, 3, 3]`
    private let rotations: Tensor
    /// `[3, 18]`: the six rotations side by side, so that d · faceColumns gives every face's local
    /// coordinates of d at once.
    private let faceColumns: Tensor

    /// `faces` `[6, C, S, S]` or `[B, 6, C, S, S]`; uint8 is converted to float32 (values unchanged).
    public init(faces: Tensor) throws {
        var f = faces.rank == 4 ? try faces.unsqueeze(0) : faces
        guard f.rank == 5, f.shape[1] == 6, f.shape[3] == f.shape[4], f.shape[3] >= 2 else {
            throw TorchError("CubeMapSampler: expected faces [6, C, S, S] or [B, 6, C, S, S], got \(faces.shape)")
        }
        if !f.dtype.isFloatingPoint { f = try f.to(dtype: .float32) }
        (batch, channels, faceSize) = (f.shape[0], f.shape[2], f.shape[3])
        rotations = try CubeMap.faceRotations(dtype: f.dtype, device: f.device)
        faceColumns = try rotations.permute(1, 0, 2).reshape([3, 18]).contiguous()
        let s = faceSize
        // Ring pixels in padded coordinates (row i, column j), in the order the cat below expects:
        // top row, bottom row (S+2 each), then the left and right columns without corners (S each).
        var ring: [(Double, Double)] = []
        for j in 0..<(s + 2) { ring.append((0, Double(j))) }
        for j in 0..<(s + 2) { ring.append((Double(s + 1), Double(j))) }
        for i in 1...s { ring.append((Double(i), 0)) }
        for i in 1...s { ring.append((Double(i), Double(s + 1))) }
        let camera = CubeMap.faceCamera(size: s)
        let local = try Tensor(ring.flatMap { (i, j) in [(j - 1 - camera.cx) / camera.focal, (i - 1 - camera.cy) / camera.focal, 1] },
                               shape: [ring.count, 3]).to(dtype: f.dtype, device: f.device)
        let world = try local.unsqueeze(0).matmul(rotations.mT())  // [6, ring, 3]
        let values = try Self.blendFaces(f, directions: world.reshape([-1, 3]), rotations: rotations)
            .reshape([batch, channels, 6, ring.count]).permute(0, 2, 1, 3)  // [B, 6, C, ring]
        let n = s + 2
        let top = try values.narrow(dim: 3, start: 0, length: n).unsqueeze(3)
        let bottom = try values.narrow(dim: 3, start: n, length: n).unsqueeze(3)
        let left = try values.narrow(dim: 3, start: 2 * n, length: s).unsqueeze(4)
        let right = try values.narrow(dim: 3, start: 2 * n + s, length: s).unsqueeze(4)
        let padded = try Tensor.cat([top, Tensor.cat([left, f, right], dim: 4), bottom], dim: 3)  // [B, 6, C, S+2, S+2]
        atlas = try padded.permute(0, 2, 1, 3, 4).reshape([batch, channels, 6 * n, n]).contiguous()
    }

    public var dtype: DType { atlas.dtype }
    public var device: Device { atlas.device }

    /// Samples at world directions `[h, w, 3]` (shared by the batch) or `[B, h, w, 3]` → `[B, C, h, w]`.
    public func sample(directions: Tensor, mode: F.GridSampleMode = .bilinear) throws -> Tensor {
        guard directions.rank == 3 || directions.rank == 4, directions.shape.last == 3 else {
            throw TorchError("CubeMapSampler.sample: expected directions [h, w, 3] or [B, h, w, 3], got \(directions.shape)")
        }
        let d = try directions.to(dtype: dtype, device: device)
        let points = try d.reshape([-1, 3])
        // Face-local coordinates R_fᵀ·d for all six faces in one [M, 3] × [3, 18] product (rows d·R_f),
        // then the face each direction points at most directly.
        let local = try points.matmul(faceColumns).reshape([-1, 6, 3])
        let face = try local.select(dim: -1, index: 2).argmax(dim: 1, keepDim: true)  // [M, 1]
        let chosen = try local.gather(dim: 1, index: face.unsqueeze(-1).expand([face.shape[0], 1, 3])).squeeze(dim: 1)
        let s = Double(faceSize), half = s / 2
        let z = try chosen.select(dim: -1, index: 2)
        // Padded-atlas pixel coordinates (the chosen face's z is ≥ 1/√3 of the length, never 0).
        let x = try chosen.select(dim: -1, index: 0) / z * half + (s - 1) / 2 + 1
        let y = try chosen.select(dim: -1, index: 1) / z * half + (s - 1) / 2 + 1
            + face.squeeze(dim: 1).to(dtype: dtype) * (s + 2)
        var grid = try Tensor.stack([x * (2 / (s + 1)) - 1, y * (2 / (6 * (s + 2) - 1)) - 1], dim: -1)
            .reshape(Array(d.shape.dropLast()) + [2])
        if grid.rank == 3 { grid = try grid.unsqueeze(0).expand([batch] + grid.shape) }
        return try F.gridSample(atlas, grid, mode: mode, paddingMode: .border, alignCorners: true)
    }

    /// Perspective views: rotations `[V, 3, 3]` or `[B, V, 3, 3]` → `[B, V, C, h, w]`.
    public func perspective(camera: PinholeCamera, rotations views: Tensor,
                            mode: F.GridSampleMode = .bilinear) throws -> Tensor {
        guard views.rank == 3 || views.rank == 4, Array(views.shape.suffix(2)) == [3, 3] else {
            throw TorchError("CubeMapSampler.perspective: expected rotations [V, 3, 3] or [B, V, 3, 3], got \(views.shape)")
        }
        let (h, w) = (camera.height, camera.width)
        let count = views.shape[views.rank - 3]
        let rays = try camera.rays(dtype: dtype, device: device).reshape([1, h * w, 3])
        var world = try rays.matmul(views.to(dtype: dtype, device: device).mT())
        if world.rank == 3 { world = try world.unsqueeze(0).expand([batch, count, h * w, 3]) }
        let sampled = try sample(directions: world.reshape([batch, count * h, w, 3]), mode: mode)
        return try sampled.reshape([batch, channels, count, h, w]).permute(0, 2, 1, 3, 4)
    }

    /// Cube → equirectangular `[B, C, H, W]`.
    public func equirect(width: Int, height: Int) throws -> Tensor {
        try sample(directions: Equirect.directionGrid(width: width, height: height, dtype: dtype, device: device))
    }

    /// Every face sampled with an alpha channel and averaged by coverage: `[B, C, N]` for world
    /// directions `[N, 3]`. Slow (each face reads every point) but exact at edges; used for the ring.
    private static func blendFaces(_ faces: Tensor, directions: Tensor, rotations: Tensor) throws -> Tensor {
        let (b, c, s) = (faces.shape[0], faces.shape[2], faces.shape[3])
        let n = directions.shape[0]
        let withAlpha = try Tensor.cat([faces, faces.narrow(dim: 2, start: 0, length: 1).onesLike()], dim: 2)
            .reshape([b * 6, c + 1, s, s])
        let local = try directions.unsqueeze(0).matmul(rotations)  // [6, N, 3]
        let z = try local.select(dim: -1, index: 2)
        let inFront = try z .> 1e-6
        let safeZ = try Tensor.where(inFront, z, z.onesLike())
        // For a 90° face, align_corners=false grid coordinates are exactly x/z and y/z.
        var grid = try Tensor.stack([local.select(dim: -1, index: 0) / safeZ, local.select(dim: -1, index: 1) / safeZ], dim: -1)
        grid = try Tensor.where(inFront.unsqueeze(-1), grid, grid.fullLike(3))
        let sampled = try F.gridSample(withAlpha, grid.unsqueeze(1).repeat([b, 1, 1, 1]), paddingMode: .zeros,
                                       alignCorners: false)  // [B·6, C+1, 1, N]
        let summed = try sampled.reshape([b, 6, c + 1, n]).sum(dim: 1)  // [B, C+1, N]
        let alpha = try summed.narrow(dim: 1, start: c, length: 1)
        return try summed.narrow(dim: 1, start: 0, length: c) / alpha.clamp(min: 1e-6)
    }
}
