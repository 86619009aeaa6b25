import Foundation
import Torch

/// A 3×3 matrix in Double, stored as three row vectors: the one matrix type of cameras (K), rotations
/// (R) and homographies wherever they are few and small enough to stay in Swift (view layouts,
/// tracking, cameras.json). Tensors are made from it only where a model consumes them.
public struct Matrix3: Hashable, Sendable, Codable, CustomStringConvertible {
    public var row0: SIMD3<Double>, row1: SIMD3<Double>, row2: SIMD3<Double>

    public init(_ row0: SIMD3<Double>, _ row1: SIMD3<Double>, _ row2: SIMD3<Double>) {
        (self.row0, self.row1, self.row2) = (row0, row1, row2)
    }

    /// Nine values, row-major. Fewer or more is a programming error of the caller; data from files
    /// goes through `init(validating:)`.
    public init(rowMajor m: [Double]) {
        precondition(m.count == 9, "a 3×3 matrix has 9 values, got \(m.count)")
        self.init(SIMD3(m[0], m[1], m[2]), SIMD3(m[3], m[4], m[5]), SIMD3(m[6], m[7], m[8]))
    }

    /// Nine finite values, row-major, from untrusted input (a file, a tensor).
    public init(validating m: [Double]) throws {
        guard m.count == 9 else { throw TorchError("a 3×3 matrix has 9 values, got \(m.count)") }
        guard m.allSatisfy(\.isFinite) else { throw TorchError("a 3×3 matrix must be finite, got \(m)") }
        self.init(rowMajor: m)
    }

    /// A `[3, 3]` tensor, any dtype and device.
    public init(_ tensor: Tensor) throws {
        guard tensor.shape == [3, 3] else { throw TorchError("expected a [3, 3] matrix, got \(tensor.shape)") }
        try self.init(validating: try tensor.to(dtype: .float64, device: .cpu).contiguous().toArray(Double.self))
    }

    public static let identity = Matrix3(SIMD3(1, 0, 0), SIMD3(0, 1, 0), SIMD3(0, 0, 1))

    public var rowMajor: [Double] {
        [row0.x, row0.y, row0.z, row1.x, row1.y, row1.z, row2.x, row2.y, row2.z]
    }

    public var transposed: Matrix3 {
        Matrix3(SIMD3(row0.x, row1.x, row2.x), SIMD3(row0.y, row1.y, row2.y), SIMD3(row0.z, row1.z, row2.z))
    }

    public static func * (m: Matrix3, v: SIMD3<Double>) -> SIMD3<Double> {
        SIMD3((m.row0 * v).sum(), (m.row1 * v).sum(), (m.row2 * v).sum())
    }

    public static func * (a: Matrix3, b: Matrix3) -> Matrix3 {
        // Row i of a·b is Σ_k a[i][k] · (row k of b).
        func row(_ r: SIMD3<Double>) -> SIMD3<Double> { r.x * b.row0 + r.y * b.row1 + r.z * b.row2 }
        return Matrix3(row(a.row0), row(a.row1), row(a.row2))
    }

    public static func + (a: Matrix3, b: Matrix3) -> Matrix3 { Matrix3(a.row0 + b.row0, a.row1 + b.row1, a.row2 + b.row2) }

    /// The outer product u·vᵀ.
    public static func outer(_ u: SIMD3<Double>, _ v: SIMD3<Double>) -> Matrix3 { Matrix3(u.x * v, u.y * v, u.z * v) }

    /// Degrees of the rotation this rotation matrix performs (from its trace).
    public var rotationAngle: Double {
        acos(max(-1, min(1, (row0.x + row1.y + row2.z - 1) / 2))) * 180 / .pi
    }

    /// Degrees of the rotation selfᵀ·other between two rotation matrices.
    public func angle(to other: Matrix3) -> Double { (transposed * other).rotationAngle }

    /// Every entry rounded to a multiple of `step`: layouts that differ only by float noise compare equal.
    public func rounded(to step: Double) -> Matrix3 {
        func r(_ v: SIMD3<Double>) -> SIMD3<Double> { (v / step).rounded(.toNearestOrEven) * step }
        return Matrix3(r(row0), r(row1), r(row2))
    }

    /// `[3, 3]` tensor.
    public func tensor(dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        try Tensor(rowMajor, shape: [3, 3]).to(dtype: dtype, device: device)
    }

    /// `[N, 3, 3]` tensor of several matrices.
    public static func stack(_ matrices: [Matrix3], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        try Tensor(matrices.flatMap(\.rowMajor), shape: [matrices.count, 3, 3]).to(dtype: dtype, device: device)
    }

    /// The matrices of a `[N, 3, 3]` tensor.
    public static func unstack(_ tensor: Tensor) throws -> [Matrix3] {
        guard tensor.rank == 3, tensor.shape.suffix(2) == [3, 3] else {
            throw TorchError("expected [N, 3, 3] matrices, got \(tensor.shape)")
        }
        let values = try tensor.to(dtype: .float64, device: .cpu).contiguous().toArray(Double.self)
        return try (0..<tensor.shape[0]).map { try Matrix3(validating: Array(values[(9 * $0)..<(9 * $0 + 9)])) }
    }

    // Row-major nine numbers: the layout of cameras.json and of NumPy's `K.tolist()` flattened.
    public init(from decoder: any Decoder) throws {
        try self.init(validating: try decoder.singleValueContainer().decode([Double].self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rowMajor)
    }

    public var description: String { "[\(row0.x), \(row0.y), \(row0.z); \(row1.x), \(row1.y), \(row1.z); \(row2.x), \(row2.y), \(row2.z)]" }
}

public func cross(_ a: SIMD3<Double>, _ b: SIMD3<Double>) -> SIMD3<Double> {
    SIMD3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x)
}

public func normalized(_ v: SIMD3<Double>) -> SIMD3<Double> { v / (v * v).sum().squareRoot() }
