import Torch

/// How images reach the Inception network's 299×299 input. The choice shifts FID by several points
/// (docs/metrics.md#inception-input), so it is recorded with every statistic.
public enum InceptionResize: String, CaseIterable, Sendable {
    /// torch-fidelity / TF1: bilinear without half-pixel offset on [0, 255], then (x − 128) / 128.
    case tf1
    /// pytorch-fid: x / 255, PyTorch bilinear (align_corners false), then 2x − 1.
    case pytorchFID = "pytorch-fid"

    public static let inputSize = 299

    /// `images`: uint8 `[N, 3, H, W]` → float32 `[N, 3, 299, 299]` in Inception's input range.
    public func prepare(_ images: Tensor) throws -> Tensor {
        guard images.dtype == .uint8, images.rank == 4, try images.size(1) == 3 else {
            throw TorchError("Inception expects uint8 images [N, 3, H, W], got \(images.dtype) \(images.shape)")
        }
        let size = Self.inputSize
        switch self {
        case .tf1:
            let resized = try resizeBilinearTF1(images.to(dtype: .float32), height: size, width: size)
            return try (resized - 128.0) / 128.0
        case .pytorchFID:
            let unit = try images.to(dtype: .float32) / 255.0
            let resized = try F.interpolate(unit, size: IntPair(size, size), mode: .bilinear, alignCorners: false)
            return try resized * 2.0 - 1.0
        }
    }
}

/// TensorFlow 1.x `resize_bilinear` (align_corners false, no half-pixel centres): output pixel i
/// samples input coordinate i·in/out. The arithmetic follows torch-fidelity's exact ("slow")
/// implementation step for step, so the result is bit-identical on the CPU.
/// `x`: float `[N, C, H, W]` → `[N, C, height, width]`.
public func resizeBilinearTF1(_ x: Tensor, height: Int, width: Int) throws -> Tensor {
    let (inHeight, inWidth) = (try x.size(2), try x.size(3))
    func axis(_ outSize: Int, _ inSize: Int) throws -> (lo: Tensor, hi: Tensor, frac: Tensor) {
        let grid = try Tensor.arange(0, Double(outSize), dtype: x.dtype, device: x.device)
            * (Double(inSize) / Double(outSize))
        let lo = try grid.to(dtype: .int64)
        let hi = try (lo + 1.0).clamp(max: Double(inSize - 1))
        return (lo, hi, try grid - lo.to(dtype: x.dtype))
    }
    let (ylo, yhi, dy) = try axis(height, inHeight)
    let (xlo, xhi, dx) = try axis(width, inWidth)
    let top = try x.indexSelect(dim: 2, index: ylo), bottom = try x.indexSelect(dim: 2, index: yhi)
    let dxRow = try dx.view([1, 1, 1, width]), dyColumn = try dy.view([1, 1, height, 1])
    func blendColumns(_ rows: Tensor) throws -> Tensor {
        let left = try rows.indexSelect(dim: 3, index: xlo), right = try rows.indexSelect(dim: 3, index: xhi)
        return try left + (right - left) * dxRow
    }
    let upper = try blendColumns(top), lower = try blendColumns(bottom)
    return try upper + (lower - upper) * dyColumn
}
