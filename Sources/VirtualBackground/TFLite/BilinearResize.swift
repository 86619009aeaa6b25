import Torch

/// TF's legacy RESIZE_BILINEAR (neither align_corners nor half_pixel_centers: source coordinate
/// s = o·in/out, the upper neighbour clamped to the last pixel) of `[B, C, H, W]`, as two 1-D passes
/// over precomputed neighbour indices and weights. (The half-pixel mappings go to `F.interpolate`;
/// masks to frame size to `PlaneResampler`.)
struct BilinearResize {
    let rows: ResampleAxis
    let columns: ResampleAxis

    init(from input: (height: Int, width: Int), to output: (height: Int, width: Int)) throws {
        rows = try ResampleAxis(input: input.height, output: output.height, dim: 2)
        columns = try ResampleAxis(input: input.width, output: output.width, dim: 3)
    }

    /// Float32 `[B, C, outH, outW]`. Columns first: the pass that makes the full-size output is then
    /// the row pass, whose gathers copy whole rows.
    func callAsFunction(_ x: Tensor) throws -> Tensor { try rows.resample(columns.resample(x)) }
}

/// Linear resampling along one axis (2 = rows, 3 = columns) of `[B, C, H, W]`: output pixel o takes
/// the source coordinate s = o·in/out — TF's legacy RESIZE_BILINEAR, and OpenCV's warp of a whole
/// image onto a tensor (MediaPipe's ImageToTensorCalculator, `ModelInputSampler`) — with neighbours
/// floor(s) and floor(s) + 1, weighted by the fraction.
struct ResampleAxis {
    let dim: Int
    let lower: Tensor, upper: Tensor, weight: Tensor
    /// Whether every source coordinate is a whole pixel (an integer scale such as 512 → 256).
    let integral: Bool

    /// Past the last pixel the upper neighbour is the last pixel.
    init(input: Int, output: Int, dim: Int) throws {
        guard dim == 2 || dim == 3 else { throw TFLiteError("cannot resample along dimension \(dim)") }
        self.dim = dim
        let taps = try Self.taps(input: input, output: output)
        integral = taps.allSatisfy { $0.weight == 0 }
        lower = try Tensor(taps.map { Int64($0.low) })
        upper = try Tensor(taps.map { Int64($0.high) })
        weight = try Tensor(taps.map(\.weight), shape: dim == 2 ? [1, 1, output, 1] : [1, 1, 1, output])
    }

    /// Output pixel o's neighbours and the weight of `high`. Past the last pixel `high` is the last
    /// pixel, or `input` — a zero pixel — with `zeroBeyondEdge` (OpenCV's BORDER_ZERO; only reached
    /// when upsampling). `subpixelSteps` rounds source coordinates to that grid (OpenCV's
    /// INTER_TAB_SIZE of 32).
    static func taps(input: Int, output: Int, subpixelSteps: Int? = nil,
                     zeroBeyondEdge: Bool = false) throws -> [(low: Int, high: Int, weight: Float)] {
        guard (1...(1 << 20)).contains(input), (1...(1 << 20)).contains(output) else {
            throw TFLiteError("cannot resample \(input) pixels to \(output)")
        }
        let scale = Double(input) / Double(output)
        return (0..<output).map { o in
            var source = Double(o) * scale
            if let steps = subpixelSteps { source = (source * Double(steps)).rounded() / Double(steps) }
            let l = min(max(Int(source.rounded(.down)), 0), input - 1)
            return (l, zeroBeyondEdge ? min(l + 1, input) : min(l + 1, input - 1), Float(source - Double(l)))
        }
    }

    /// Resamples along `dim`; the result is float32 whatever `x`'s dtype (gathering before
    /// converting keeps a uint8 video frame from being converted whole).
    func resample(_ x: Tensor) throws -> Tensor {
        let a = try gather(x, lower).to(dtype: .float32)
        if integral { return a }
        let difference = try gather(x, upper).to(dtype: .float32) - a
        try a.addcmul_(difference, weight)  // a is a fresh tensor: a + (b − a)·w in place
        return a
    }

    /// Rows of a single-image, single-channel tensor are gathered as the rows of a matrix, which
    /// LibTorch copies in blocks.
    private func gather(_ x: Tensor, _ index: Tensor) throws -> Tensor {
        let shape = x.shape
        if dim == 2, shape[0] * shape[1] == 1 {
            let rows = try x.reshape([shape[2], shape[3]]).indexSelect(dim: 0, index: index)
            return try rows.reshape([1, 1, index.count, shape[3]])
        }
        return try x.indexSelect(dim: dim, index: index)
    }
}
