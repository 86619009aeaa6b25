import Foundation
import Torch

/// The cameras of one panorama's perspective views: per view an intrinsics matrix K and a
/// camera-to-world rotation R (the convention of `Orientation`), and the views' pixel size. It is a
/// value: equal layouts hash equal, so the correspondence geometry of CAA is cached by layout
/// directly (docs/models.md, CAA). Tensors are made from it only where a model consumes them.
public struct ViewLayout: Hashable, Sendable {
    public let intrinsics: [Matrix3]
    public let rotations: [Matrix3]
    /// Width and height of every view in pixels.
    public let resolution: Int

    public init(intrinsics: [Matrix3], rotations: [Matrix3], resolution: Int) throws {
        guard !rotations.isEmpty, intrinsics.count == rotations.count else {
            throw TorchError("a view layout needs one K per R, got \(intrinsics.count) and \(rotations.count)")
        }
        guard resolution > 0 else { throw TorchError("a view layout needs a positive resolution, got \(resolution)") }
        (self.intrinsics, self.rotations, self.resolution) = (intrinsics, rotations, resolution)
    }

    /// K and R `[V, 3, 3]` tensors (any dtype and device), e.g. a dataset's or a parity case's cameras.
    public init(K: Tensor, R: Tensor, resolution: Int) throws {
        guard K.rank == 3, K.shape.suffix(2) == [3, 3], R.shape == K.shape else {
            throw TorchError("cameras need K and R of shape [V, 3, 3], got \(K.shape) and \(R.shape)")
        }
        try self.init(intrinsics: Matrix3.unstack(K), rotations: Matrix3.unstack(R), resolution: resolution)
    }

    /// `count` views of one pinhole camera around the horizon, 360°/count apart, view i at yaw
    /// `yawOffset + i · 360/count` (MVDiffusion's layout: 8 views of 90° at 512²).
    public static func horizon(count: Int, fov: Double, resolution: Int, yawOffset: Double = 0) throws -> ViewLayout {
        guard count >= 1 else { throw TorchError("a view layout needs at least one view, got \(count)") }
        try PinholeCamera.validate(fov: fov)
        return try ViewLayout(camera: PinholeCamera(fov: fov, size: resolution),
                              yaws: (0..<count).map { horizonYaw(view: $0, count: count, offset: yawOffset) })
    }

    /// Square views of one pinhole camera at these yaws (degrees; pitch and roll 0).
    public init(camera: PinholeCamera, yaws: [Double]) throws {
        guard camera.width == camera.height else { throw TorchError("view layouts have square views, got \(camera)") }
        let k = Matrix3(rowMajor: camera.intrinsicsValues)
        try self.init(intrinsics: Array(repeating: k, count: yaws.count), rotations: yaws.map { Orientation(yaw: $0).rotation },
                      resolution: camera.width)
    }

    /// Yaw in degrees, in [0, 360), of view i of a horizon layout.
    static func horizonYaw(view i: Int, count: Int, offset: Double) -> Double {
        let yaw = (offset + 360 / Double(count) * Double(i)).truncatingRemainder(dividingBy: 360)
        return yaw < 0 ? yaw + 360 : yaw
    }

    public var count: Int { rotations.count }

    /// Each view's yaw in degrees (from its rotation).
    public var yaws: [Double] {
        rotations.map { let yaw = Orientation(rotation: $0).yaw; return yaw < 0 ? yaw + 360 : yaw }
    }

    /// The pinhole camera of view 0 when its K has MVDiffusion's form (square pixels, centred).
    public var camera: PinholeCamera? {
        let k = intrinsics[0]
        guard k.row0.y == 0, k.row1.x == 0, k.row2 == SIMD3(0, 0, 1), k.row0.x == k.row1.y, k.row0.x > 0 else { return nil }
        let camera = PinholeCamera(fov: 2 * atan(0.5 * Double(resolution) / k.row0.x) * 180 / .pi, size: resolution)
        return Matrix3(rowMajor: camera.intrinsicsValues).rounded(to: 1e-9) == k.rounded(to: 1e-9) ? camera : nil
    }

    /// The same layout with view 0 as the world frame (R₀ᵀ·Rᵢ), every entry rounded to `precision`.
    /// Turning the whole rig leaves every Rⱼ⁻¹Rᵢ, and so every correspondence, unchanged: layouts that
    /// differ only by a yaw offset have the same canonical layout (up to float noise below `precision`).
    public func canonical(precision: Double = 1e-9) -> ViewLayout {
        let reference = rotations[0].transposed
        return ViewLayout(checked: intrinsics.map { $0.rounded(to: precision) },
                          rotations: rotations.map { (reference * $0).rounded(to: precision) }, resolution: resolution)
    }

    private init(checked intrinsics: [Matrix3], rotations: [Matrix3], resolution: Int) {
        (self.intrinsics, self.rotations, self.resolution) = (intrinsics, rotations, resolution)
    }

    /// Every entry rounded to float32, as tensors and the latent cache store cameras: a layout made in
    /// Swift and the same layout read back from a float32 file are then equal.
    public var float32Rounded: ViewLayout {
        func f(_ m: Matrix3) -> Matrix3 { Matrix3(rowMajor: m.rowMajor.map { Double(Float($0)) }) }
        return ViewLayout(checked: intrinsics.map(f), rotations: rotations.map(f), resolution: resolution)
    }

    /// K `[V, 3, 3]`.
    public func intrinsicsTensor(dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        try Matrix3.stack(intrinsics, dtype: dtype, device: device)
    }

    /// R `[V, 3, 3]`.
    public func rotationsTensor(dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        try Matrix3.stack(rotations, dtype: dtype, device: device)
    }
}

/// Which neighbours each view attends to in correspondence-aware attention.
public enum NeighbourSet: String, Sendable, CaseIterable, Codable {
    /// The released MVDiffusion code: views i−1 and i+1 (mod V).
    case ring
    /// The paper: every other view.
    case all

    public func of(_ view: Int, views: Int) -> [Int] {
        switch self {
        case .ring: [(view - 1 + views) % views, (view + 1) % views]
        case .all: (0..<views).filter { $0 != view }
        }
    }
}
