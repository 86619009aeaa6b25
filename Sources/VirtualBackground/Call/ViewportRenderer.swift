import CKernels
import Foundation
import Geometry
import Torch

/// Renders the perspective viewport of an equirectangular panorama for the camera's current
/// rotation, fast enough to run on every frame of a call (docs/models.md#viewport: gnomonic projection,
/// `Equirect`'s pixel mapping, wrapping at the ±180° seam).
///
/// The exact mapping (rotate the pixel's ray, two `atan2`s) is evaluated only at the nodes of a grid
/// every `cellSize` pixels; inside a cell the panorama coordinates are interpolated bilinearly,
/// which on an 8-pixel grid stays well below a tenth of a panorama pixel away from the exact map
/// (the gnomonic map is smooth away from the poles; the test measures it). Cells where the map is
/// not smooth — around a pole, where longitude turns fast — are computed exactly per pixel.
/// Sampling is bilinear on 8-bit RGB (`bk_bilinear_cell`: AVX2 where the CPU has it) with rows
/// clamped at the poles. `EquirectSampler.viewport` is the tensor-op reference for this renderer.
public final class ViewportRenderer: @unchecked Sendable {
    public let camera: PinholeCamera
    public let panoramaWidth: Int
    public let panoramaHeight: Int
    public let cellSize: Int
    /// The panorama as packed RGBA texels (`bk_texture`), with `margin` columns repeated from the
    /// other side of the seam on both ends and the first and last rows repeated once above and below.
    private let texels: [UInt32]
    private let margin: Int
    /// Camera-space rays (not normalised: atan2 does not need it) at the grid nodes, row-major.
    private let nodeRays: [SIMD3<Float>]
    private let nodeColumns: Int
    private let nodeRows: Int

    /// - Parameters:
    ///   - panorama: `[3, H, W]` uint8 RGB (float in [0, 1] is scaled and rounded), W ≥ 2.
    ///   - camera: the viewport's size and horizontal FOV.
    /// Frames are rendered on `Parallel.threads` workers.
    public init(panorama: Tensor, camera: PinholeCamera, cellSize: Int = 8) throws {
        guard panorama.rank == 3, panorama.shape[0] == 3, panorama.shape[1] >= 2, panorama.shape[2] >= 2 else {
            throw CallError("viewport: the panorama must be [3, H, W] RGB, got \(panorama.shape)")
        }
        guard cellSize >= 1, camera.width >= 1, camera.height >= 1 else {
            throw CallError("viewport: invalid camera \(camera) or cell size \(cellSize)")
        }
        var rgb = panorama.dtype == .uint8 ? panorama
            : try (panorama.to(dtype: .float32) * 255).round().clamp(min: 0, max: 255).to(dtype: .uint8)
        // A panorama cropped around the horizon (MVDiffusion stitches 968×4096 of a 2048×4096 sphere,
        // since pitch-0 views reach only ±43°) is centred on the equator and its first and last rows
        // are extended to the poles, so looking up or down shows a smear, not black.
        if rgb.shape[1] * 2 < rgb.shape[2] {
            let missing = rgb.shape[2] / 2 - rgb.shape[1]
            rgb = try F.pad(rgb.to(dtype: .float32).unsqueeze(0), [0, 0, missing / 2, missing - missing / 2],
                            mode: .replicate)[0].to(dtype: .uint8)
        }
        let (h, w) = (rgb.shape[1], rgb.shape[2])
        // Interpolated cells stay within w/16 of their first node (else they are rendered exactly), so a
        // margin of w/16 + 4 columns lets the per-pixel loop run without wrapping or clamping.
        let margin = w / 16 + 4
        let stride = w + 2 * margin
        // The sampler's 16.16 fixed-point coordinates and 16-bit texel indices bound the texture.
        guard stride < 1 << 15, h + 2 < 1 << 15 else {
            throw CallError("viewport: panoramas up to about 30000×32000 pixels are supported, got \(w)×\(h)")
        }
        let hwc: [UInt8] = try rgb.permute(1, 2, 0).contiguous().toArray()
        var packed = [UInt32](repeating: 0, count: (h + 2) * stride)
        for row in 0..<(h + 2) {
            let sourceRow = min(max(row - 1, 0), h - 1)
            for column in 0..<stride {
                let source = (sourceRow * w + ((column - margin) % w + w) % w) * 3
                packed[row * stride + column] = UInt32(hwc[source]) | UInt32(hwc[source + 1]) << 8 | UInt32(hwc[source + 2]) << 16
            }
        }
        texels = packed
        self.margin = margin
        (panoramaHeight, panoramaWidth) = (h, w)
        self.camera = camera
        self.cellSize = cellSize
        // Nodes every cellSize pixels; the cells cover every pixel, so the last node may lie beyond
        // the image (rays extrapolate fine).
        nodeColumns = (camera.width + cellSize - 1) / cellSize + 1
        nodeRows = (camera.height + cellSize - 1) / cellSize + 1
        let (f, cx, cy) = (camera.focal, camera.cx, camera.cy)
        var rays: [SIMD3<Float>] = []
        rays.reserveCapacity(nodeColumns * nodeRows)
        for j in 0..<nodeRows {
            for i in 0..<nodeColumns {
                rays.append(SIMD3(Float((Double(i * cellSize) - cx) / f), Float((Double(j * cellSize) - cy) / f), 1))
            }
        }
        nodeRays = rays
    }

    /// Whether frames are sampled with the SIMD kernel (AVX2, where the CPU has it). Setting it to
    /// false forces the portable kernel, which renders bit-identical frames (tests and benchmarks
    /// compare the two); process-wide.
    public static var usesSIMD: Bool {
        get { bk_simd_active() != 0 }
        set { bk_set_simd(newValue ? 1 : 0) }
    }

    /// The viewport for a camera-to-world rotation, `[3, h, w]` uint8 RGB.
    public func render(rotation: Matrix3) throws -> Tensor {
        let (w, h) = (camera.width, camera.height)
        let coordinates = nodeCoordinates(rotation)
        let output = try Tensor.empty([3, h, w], dtype: .uint8)
        let r = rotation.rowMajor.map(Float.init)
        try output.withUnsafeMutableBytes { out in
            texels.withUnsafeBufferPointer { tex in
                coordinates.withUnsafeBufferPointer { nodes in
                    let context = RenderContext(out: out.bindMemory(to: UInt8.self).baseAddress!, texels: tex.baseAddress!,
                                                nodes: nodes.baseAddress!, width: w, height: h, nodeColumns: nodeColumns,
                                                cell: cellSize, margin: margin, panoramaWidth: panoramaWidth, panoramaHeight: panoramaHeight,
                                                rotation: (SIMD3(r[0], r[1], r[2]), SIMD3(r[3], r[4], r[5]), SIMD3(r[6], r[7], r[8])),
                                                focal: Float(camera.focal), principal: SIMD2(Float(camera.cx), Float(camera.cy)))
                    Parallel.forEach(0..<(nodeRows - 1), grain: 1) { cellRows in
                        for cellRow in cellRows { context.renderCellRow(cellRow) }
                    }
                }
            }
        }
        return output
    }

    public func render(_ orientation: Orientation) throws -> Tensor {
        try render(rotation: orientation.rotation)
    }

    /// Panorama coordinates (column, row) of every node for this rotation, node rows in parallel
    /// (two `atan2`s per node are a tenth of the frame's work).
    private func nodeCoordinates(_ rotation: Matrix3) -> [SIMD2<Float>] {
        let r = rotation.rowMajor.map(Float.init)
        let (pw, ph) = (Float(panoramaWidth), Float(panoramaHeight))
        let columns = nodeColumns
        return [SIMD2<Float>](unsafeUninitializedCapacity: nodeRays.count) { coordinates, count in
            let buffer = coordinates
            nodeRays.withUnsafeBufferPointer { rays in
                Parallel.forEach(0..<nodeRows, grain: 8) { rows in
                    for index in (rows.lowerBound * columns)..<(rows.upperBound * columns) {
                        let ray = rays[index]
                        buffer[index] = equirectCoordinates(SIMD3(r[0] * ray.x + r[1] * ray.y + r[2] * ray.z,
                                                                             r[3] * ray.x + r[4] * ray.y + r[5] * ray.z,
                                                                             r[6] * ray.x + r[7] * ray.y + r[8] * ray.z),
                                                                       width: pw, height: ph)
                    }
                }
            }
            count = nodeRays.count
        }
    }
}

/// `Equirect.pixels` for one direction.
@inline(__always)
private func equirectCoordinates(_ d: SIMD3<Float>, width: Float, height: Float) -> SIMD2<Float> {
    let u = atan2f(d.x, d.z)
    let v = atan2f(-d.y, (d.x * d.x + d.z * d.z).squareRoot())
    return SIMD2((u / (2 * .pi) + 0.5) * width - 0.5, (-v / .pi + 0.5) * height - 0.5)
}

/// One panorama pixel per 64-bit word, its channels in 21-bit lanes (blue from bit 0, green from 21,
/// red from 42), so a bilinear sample is one weighted sum of four words: with weights in 1/64 pixel
/// along each axis (their products sum to 4096), every lane stays below 255·4096 + 2048 < 2²⁰.
enum Texels {
    static let fractionBits = 6
    static let weightSum: UInt64 = 1 << (2 * fractionBits)

    @inline(__always)
    static func pack(_ red: UInt8, _ green: UInt8, _ blue: UInt8) -> UInt64 {
        UInt64(blue) | UInt64(green) << 21 | UInt64(red) << 42
    }

    /// The weighted sum of the four neighbours at fractional offsets `fx`, `fy` (0..<64), rounded;
    /// a lane's value is then at bits 12…19 of the lane.
    @inline(__always)
    static func blend(_ topLeft: UInt64, _ topRight: UInt64, _ bottomLeft: UInt64, _ bottomRight: UInt64,
                      _ fx: UInt64, _ fy: UInt64) -> UInt64 {
        let w11 = fx &* fy
        let w10 = fx &<< 6 &- w11, w01 = fy &<< 6 &- w11
        let w00 = weightSum &- w10 &- w01 &- w11
        let rounding: UInt64 = 2048 | 2048 << 21 | 2048 << 42
        return topLeft &* w00 &+ topRight &* w10 &+ bottomLeft &* w01 &+ bottomRight &* w11 &+ rounding
    }
}

/// Raw pointers and sizes shared by the render workers (each writes disjoint rows).
private struct RenderContext: @unchecked Sendable {
    let out: UnsafeMutablePointer<UInt8>
    let texels: UnsafePointer<UInt32>
    let nodes: UnsafePointer<SIMD2<Float>>
    let width: Int, height: Int, nodeColumns: Int, cell: Int, margin: Int
    let panoramaWidth: Int, panoramaHeight: Int
    let rotation: (SIMD3<Float>, SIMD3<Float>, SIMD3<Float>)
    let focal: Float
    let principal: SIMD2<Float>

    private var texture: bk_texture { bk_texture(texels: texels, stride: panoramaWidth + 2 * margin) }
    /// Texel coordinates are panorama coordinates shifted by the margin and the repeated top row.
    private var offset: SIMD2<Float> { SIMD2(Float(margin), 1) }

    func renderCellRow(_ cellRow: Int) {
        let pw = Float(panoramaWidth)
        let y0 = cellRow * cell, y1 = min(y0 + cell, height)
        let (texture, offset) = (texture, offset)
        for cellColumn in 0..<(nodeColumns - 1) {
            let x0 = cellColumn * cell, x1 = min(x0 + cell, width)
            guard x0 < width else { break }
            let top = cellRow * nodeColumns + cellColumn, bottom = top + nodeColumns
            let a = nodes[top]
            // Unwrap the other corners to a's side of the seam.
            var b = nodes[top + 1], c = nodes[bottom], d = nodes[bottom + 1]
            b.x = unwrap(b.x, near: a.x, width: pw)
            c.x = unwrap(c.x, near: a.x, width: pw)
            d.x = unwrap(d.x, near: a.x, width: pw)
            let spread = max(max(a.x, b.x), max(c.x, d.x)) - min(min(a.x, b.x), min(c.x, d.x))
            if !(spread <= pw / 16) {
                renderExactly(x0..<x1, y0..<y1)
                continue
            }
            let (ta, tb, tc, td) = (a + offset, b + offset, c + offset, d + offset)
            let corners = (ta.x, ta.y, tb.x, tb.y, tc.x, tc.y, td.x, td.y)
            withUnsafeBytes(of: corners) { corners in
                bk_bilinear_cell(texture, corners.bindMemory(to: Float.self).baseAddress!, Int32(cell), Int32(x1 - x0),
                                 Int32(y1 - y0), out + (y0 * width + x0), width, width * height)
            }
        }
    }

    private func renderExactly(_ columns: Range<Int>, _ rows: Range<Int>) {
        let (pw, ph) = (Float(panoramaWidth), Float(panoramaHeight))
        let (texture, offset) = (texture, offset)
        for y in rows {
            for x in columns {
                let ray = SIMD3<Float>((Float(x) - principal.x) / focal, (Float(y) - principal.y) / focal, 1)
                let world = SIMD3((rotation.0 * ray).sum(), (rotation.1 * ray).sum(), (rotation.2 * ray).sum())
                var p = equirectCoordinates(world, width: pw, height: ph) + offset
                // In range for every finite ray; the clamps keep indices valid for absurd rotations.
                if !(p.x.isFinite && p.y.isFinite) { p = offset }
                p = p.clamped(lowerBound: .zero, upperBound: SIMD2(Float(texture.stride - 2), ph))
                bk_bilinear_pixel(texture, Int32(p.x * 65536), Int32(p.y * 65536), out + (y * width + x), width * height)
            }
        }
    }

    @inline(__always)
    private func unwrap(_ x: Float, near reference: Float, width: Float) -> Float {
        if x - reference > width / 2 { return x - width }
        if reference - x > width / 2 { return x + width }
        return x
    }
}
