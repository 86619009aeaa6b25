import Foundation
import Torch

/// Pillow's resampling filters, numbered as `PIL.Image.Resampling` (what transformers stores as
/// `resample` in `preprocessor_config.json`). Nearest (0) is a different algorithm and not offered.
public enum PILFilter: Int, Sendable, CaseIterable {
    case lanczos = 1, bilinear = 2, bicubic = 3, box = 4, hamming = 5

    /// Half-width of the kernel at scale 1, in input pixels.
    var support: Double {
        switch self {
        case .box: 0.5
        case .bilinear, .hamming: 1
        case .bicubic: 2
        case .lanczos: 3
        }
    }

    /// The kernels of Pillow's Resample.c, with its operation order (the fixed-point weights are
    /// rounded from these doubles, so a reordered formula could flip a rounding).
    func weight(_ t: Double) -> Double {
        switch self {
        case .box:
            return t > -0.5 && t <= 0.5 ? 1 : 0
        case .bilinear:
            let x = abs(t)
            return x < 1 ? 1 - x : 0
        case .hamming:
            var x = abs(t)
            if x == 0 { return 1 }
            if x >= 1 { return 0 }
            x *= Double.pi
            // Resample.c writes these two constants as C floats.
            return sin(x) / x * (Double(Float(0.54)) + Double(Float(0.46)) * cos(x))
        case .bicubic:
            let a = -0.5, x = abs(t)
            if x < 1 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        case .lanczos:
            func sinc(_ v: Double) -> Double { v == 0 ? 1 : sin(v * Double.pi) / (v * Double.pi) }
            return -3 <= t && t < 3 ? sinc(t) * sinc(t / 3) : 0
        }
    }
}

/// Pillow's `Image.resize` of an 8-bit image (Pillow 9–11, `reducing_gap=None`, whole-image box),
/// reproduced bit for bit:
/// - a separable filter whose support widens by the downscale factor (so downscaling averages
///   every input pixel — the antialiasing that plain bicubic interpolation lacks);
/// - per output pixel, weights normalised to sum 1 and then quantised to 22-bit fixed point
///   (`PRECISION_BITS = 32 − 8 − 2`), rounding half away from zero;
/// - the horizontal pass first, over only the rows the vertical pass reads, its result rounded
///   (add 2²¹, shift right by 22) and clipped to 0…255 before the vertical pass does the same;
/// - a pass is skipped when its side keeps its size.
///
/// LibTorch's `interpolate(mode: .bicubic, antialias: true)` (rounded to uint8) uses the same kernel
/// but float weights and no rounding between the passes: on the real photos and panoramas of
/// $BACKDROP_ASSETS resized for CLIP it differs from Pillow in 10–20% of the pixels, by up to 11
/// levels (`CLIPScoreTests` prints the measurement), hence this implementation.
public enum PILResize {
    static let precisionBits = 32 - 8 - 2

    /// `image`: uint8 `[C, H, W]` → uint8 `[C, height, width]`.
    public static func resize(_ image: Tensor, height: Int, width: Int, filter: PILFilter = .bicubic) throws -> Tensor {
        guard image.dtype == .uint8, image.rank == 3 else {
            throw TorchError("PILResize: expected a uint8 image [C, H, W], got \(image.dtype) \(image.shape)")
        }
        guard height > 0, width > 0 else { throw TorchError("PILResize: output size \(height)×\(width) must be positive") }
        let (channels, inHeight, inWidth) = (image.shape[0], image.shape[1], image.shape[2])
        guard inHeight > 0, inWidth > 0 else { throw TorchError("PILResize: empty image \(image.shape)") }
        if inHeight == height, inWidth == width { return try image.to(device: .cpu, copy: true) }

        var pixels = try image.toArray(UInt8.self)
        var rows = inHeight, columns = inWidth
        var vertical = Coefficients(inSize: inHeight, outSize: height, filter: filter)
        if width != inWidth {
            // Only the rows the vertical pass will read, as Pillow does; the vertical bounds shift with them.
            let first = vertical.bounds[0]
            let last = vertical.bounds[2 * (height - 1)] + vertical.bounds[2 * (height - 1) + 1]
            let horizontal = Coefficients(inSize: inWidth, outSize: width, filter: filter)
            pixels = horizontal.apply(pixels, channels: channels, rows: rows, columns: columns,
                                      firstRow: first, rowCount: last - first, along: .columns)
            (rows, columns) = (last - first, width)
            for i in 0..<height { vertical.bounds[2 * i] -= first }
        }
        if height != inHeight {
            pixels = vertical.apply(pixels, channels: channels, rows: rows, columns: columns,
                                    firstRow: 0, rowCount: height, along: .rows)
            rows = height
        }
        return try Tensor(pixels, shape: [channels, rows, columns])
    }

    /// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for one axis.
    struct Coefficients {
        /// Per output index: first input index, count of inputs.
        var bounds: [Int]
        /// `outSize × taps` fixed-point weights.
        let weights: [Int32]
        let taps: Int

        init(inSize: Int, outSize: Int, filter: PILFilter) {
            let scale = Double(inSize) / Double(outSize)
            let filterScale = max(scale, 1)
            let support = filter.support * filterScale
            taps = Int(support.rounded(.up)) * 2 + 1
            var bounds = [Int](repeating: 0, count: outSize * 2)
            var weights = [Int32](repeating: 0, count: outSize * taps)
            var k = [Double](repeating: 0, count: taps)
            let unit = Double(1 << PILResize.precisionBits)
            for xx in 0..<outSize {
                let center = (Double(xx) + 0.5) * scale
                let ss = 1.0 / filterScale
                // C casts truncate toward zero; Swift's Int(Double) does too.
                let xmin = max(Int(center - support + 0.5), 0)
                let count = min(Int(center + support + 0.5), inSize) - xmin
                var total = 0.0
                for x in 0..<count {
                    k[x] = filter.weight((Double(x + xmin) - center + 0.5) * ss)
                    total += k[x]
                }
                for x in 0..<count {
                    let w = total != 0 ? k[x] / total : k[x]
                    weights[xx * taps + x] = w < 0 ? Int32(-0.5 + w * unit) : Int32(0.5 + w * unit)
                }
                bounds[2 * xx] = xmin
                bounds[2 * xx + 1] = count
            }
            self.bounds = bounds
            self.weights = weights
        }

        enum Axis { case rows, columns }

        /// One pass over planar `[C, rows, columns]` bytes. `.columns` resamples each row of input
        /// rows `firstRow ..< firstRow + rowCount`; `.rows` resamples each column into `rowCount`
        /// output rows.
        func apply(_ input: [UInt8], channels: Int, rows: Int, columns: Int, firstRow: Int, rowCount: Int,
                   along axis: Axis) -> [UInt8] {
            let outColumns = axis == .columns ? bounds.count / 2 : columns
            var output = [UInt8](repeating: 0, count: channels * rowCount * outColumns)
            let half = 1 << (PILResize.precisionBits - 1)
            input.withUnsafeBufferPointer { src in
                weights.withUnsafeBufferPointer { kk in
                    bounds.withUnsafeBufferPointer { b in
                        output.withUnsafeMutableBufferPointer { dst in
                            for c in 0..<channels {
                                let plane = c * rows * columns, outPlane = c * rowCount * outColumns
                                for yy in 0..<rowCount {
                                    for xx in 0..<outColumns {
                                        var sum = half
                                        switch axis {
                                        case .columns:
                                            let (start, count) = (b[2 * xx], b[2 * xx + 1])
                                            let row = plane + (yy + firstRow) * columns + start
                                            for x in 0..<count { sum += Int(src[row + x]) * Int(kk[xx * taps + x]) }
                                        case .rows:
                                            let (start, count) = (b[2 * yy], b[2 * yy + 1])
                                            for y in 0..<count {
                                                sum += Int(src[plane + (start + y) * columns + xx]) * Int(kk[yy * taps + y])
                                            }
                                        }
                                        // Pillow's clip8: an arithmetic shift, then the 0…255 clamp.
                                        dst[outPlane + yy * outColumns + xx] = UInt8(min(max(sum >> PILResize.precisionBits, 0), 255))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            return output
        }
    }
}
