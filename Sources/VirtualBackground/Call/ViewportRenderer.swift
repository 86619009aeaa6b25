import Foundation
import Geometry
import Torch

/// Renders the perspective viewport of an equirectangular panorama for the camera's current
/// rotation, fast enough to run on every frame of a call (REFERENCE.md §6: gnomonic projection,
/// `Equirect`'s pixel mapping, wrapping at the ±180° seam).
///
/// The exact mapping (rotate the pixel's ray, two `atan2`s) is evaluated only at the nodes of a grid
/// every `cellSize` pixels; inside a cell the panorama coordinates are interpolated bilinearly,
/// which on an 8-pixel grid stays well below a tenth of a panorama pixel away from the exact map
/// (the gnomonic map is smooth away from the poles; the test measures it). Cells where the map is
/// not smooth — around a pole, where longitude turns fast — are computed exactly per pixel.
/// Sampling is bilinear on 8-bit RGB with rows clamped at the poles. `EquirectSampler.viewport`
/// is the tensor-op reference for this renderer.
public final class ViewportRenderer: @unchecked Sendable {
    public let camera: PinholeCamera
    public let panoramaWidth: Int
    public let panoramaHeight: Int
    public let cellSize: Int
    /// Rows of `panoramaWidth + 1` packed RGB pixels: column 0 repeated at the end, so the bilinear
    /// tap to the right of the last column needs no modulo.
    private let texels: [UInt32]
    /// Camera-space rays (not normalised: atan2 does not need it) at the grid nodes, row-major.
    private let nodeRays: [SIMD3<Float>]
    private let nodeColumns: Int
    private let nodeRows: Int

    /// - Parameters:
    ///   - panorama: `[3, H, W]` uint8 RGB (float in [0, 1] is scaled and rounded), W ≥ 2.
    ///   - camera: the viewport's size and horizontal FOV.
    /// Frames are rendered on LibTorch's intra-op threads (`Runtime.threads`).
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
        // One 32-bit word per pixel (0x00BBGGRR): the sampler blends red and blue in one multiply.
        let hwc: [UInt8] = try rgb.permute(1, 2, 0).contiguous().toArray()
        var packed = [UInt32](repeating: 0, count: h * (w + 1))
        for row in 0..<h {
            for column in 0...w {
                let source = (row * w + column % w) * 3
                packed[row * (w + 1) + column] = UInt32(hwc[source]) | UInt32(hwc[source + 1]) << 8 | UInt32(hwc[source + 2]) << 16
            }
        }
        texels = packed
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

    /// The viewport for a camera-to-world rotation (row-major 3×3, `Orientation.matrixValues`),
    /// `[3, h, w]` uint8 RGB.
    public func render(rotation: [Double]) throws -> Tensor {
        guard rotation.count == 9 else { throw CallError("viewport: a rotation has 9 values, got \(rotation.count)") }
        let (w, h) = (camera.width, camera.height)
        let coordinates = nodeCoordinates(rotation)
        let output = try Tensor.empty([3, h, w], dtype: .uint8)
        let r = rotation.map(Float.init)
        try output.withUnsafeMutableBytes { out in
            try texels.withUnsafeBufferPointer { tex in
                try coordinates.withUnsafeBufferPointer { nodes in
                    let context = RenderContext(out: out.bindMemory(to: UInt8.self).baseAddress!, texels: tex.baseAddress!,
                                                nodes: nodes.baseAddress!, width: w, height: h, nodeColumns: nodeColumns,
                                                cell: cellSize, panoramaWidth: panoramaWidth, panoramaHeight: panoramaHeight,
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
        try render(rotation: orientation.matrixValues)
    }

    /// Panorama coordinates (column, row) of every node for this rotation.
    private func nodeCoordinates(_ rotation: [Double]) -> [SIMD2<Float>] {
        let r = rotation.map(Float.init)
        let (pw, ph) = (Float(panoramaWidth), Float(panoramaHeight))
        return nodeRays.map { ray in
            equirectCoordinates(SIMD3(r[0] * ray.x + r[1] * ray.y + r[2] * ray.z,
                                      r[3] * ray.x + r[4] * ray.y + r[5] * ray.z,
                                      r[6] * ray.x + r[7] * ray.y + r[8] * ray.z), width: pw, height: ph)
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

/// Raw pointers and sizes shared by the render workers (each writes disjoint rows). The inner loops
/// use wrapping integer arithmetic: every value is bounded by construction, and overflow checks in
/// the per-pixel path would cost more than the arithmetic.
private struct RenderContext: @unchecked Sendable {
    let out: UnsafeMutablePointer<UInt8>
    let texels: UnsafePointer<UInt32>
    let nodes: UnsafePointer<SIMD2<Float>>
    let width: Int, height: Int, nodeColumns: Int, cell: Int
    let panoramaWidth: Int, panoramaHeight: Int
    let rotation: (SIMD3<Float>, SIMD3<Float>, SIMD3<Float>)
    let focal: Float
    let principal: SIMD2<Float>

    func renderCellRow(_ cellRow: Int) {
        let pw = Float(panoramaWidth)
        let y0 = cellRow * cell, y1 = min(y0 + cell, height)
        let inverseCell = 1 / Float(cell)
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
            for y in y0..<y1 {
                let t = Float(y - y0) * inverseCell
                let left = a + (c - a) * t, right = b + (d - b) * t
                // Scalars, not SIMD2, in the per-pixel loop: it then compiles to plain register code.
                let stepX = (right.x - left.x) * inverseCell, stepY = (right.y - left.y) * inverseCell
                var px = left.x, py = left.y
                var index = y * width + x0
                for _ in x0..<x1 {
                    sample(px, py, into: index)
                    px += stepX
                    py += stepY
                    index &+= 1
                }
            }
        }
    }

    private func renderExactly(_ columns: Range<Int>, _ rows: Range<Int>) {
        let (pw, ph) = (Float(panoramaWidth), Float(panoramaHeight))
        for y in rows {
            for x in columns {
                let ray = SIMD3<Float>((Float(x) - principal.x) / focal, (Float(y) - principal.y) / focal, 1)
                let world = SIMD3((rotation.0 * ray).sum(), (rotation.1 * ray).sum(), (rotation.2 * ray).sum())
                let p = equirectCoordinates(world, width: pw, height: ph)
                sample(p.x, p.y, into: y * width + x)
            }
        }
    }

    @inline(__always)
    private func unwrap(_ x: Float, near reference: Float, width: Float) -> Float {
        if x - reference > width / 2 { return x - width }
        if reference - x > width / 2 { return x + width }
        return x
    }

    /// Bilinear sample at panorama coordinates (column possibly off by one turn) into output
    /// pixel `index` of the three planes, in fixed point (weights in 1/256).
    @inline(__always)
    private func sample(_ column: Float, _ row: Float, into index: Int) {
        let pw = Float(panoramaWidth)
        var x = column
        if x < 0 { x += pw } else if x >= pw { x -= pw }
        if !(x >= 0 && x < pw) { x = 0 }  // only for non-finite or absurd inputs; keeps indices in range
        let y = min(max(row, 0), Float(panoramaHeight &- 1))
        let fx = UInt32(x * 256), fy = UInt32(y * 256)
        let xi = Int(fx &>> 8), yi = Int(fy &>> 8)
        let wx = fx & 255, wy = fy & 255
        let stride = panoramaWidth &+ 1
        let t0 = texels + (yi &* stride &+ xi), t1 = yi &+ 1 < panoramaHeight ? t0 + stride : t0
        let (a, b, c, d) = (t0[0], t0[1], t1[0], t1[1])
        // Red and blue share a word (each lane stays below 2¹⁶ in 8.8 fixed point), green alone.
        let rbTop = ((a & 0xFF00FF) &* (256 &- wx) &+ (b & 0xFF00FF) &* wx) &>> 8 & 0xFF00FF
        let rbBottom = ((c & 0xFF00FF) &* (256 &- wx) &+ (d & 0xFF00FF) &* wx) &>> 8 & 0xFF00FF
        let rb = (rbTop &* (256 &- wy) &+ rbBottom &* wy &+ 0x80_0080) &>> 8
        let gTop = (a &>> 8 & 0xFF) &* (256 &- wx) &+ (b &>> 8 & 0xFF) &* wx
        let gBottom = (c &>> 8 & 0xFF) &* (256 &- wx) &+ (d &>> 8 & 0xFF) &* wx
        let g = (gTop &* (256 &- wy) &+ gBottom &* wy &+ 32768) &>> 16
        let plane = width &* height
        out[index] = UInt8(truncatingIfNeeded: rb)
        out[index &+ plane] = UInt8(truncatingIfNeeded: g)
        out[index &+ 2 &* plane] = UInt8(truncatingIfNeeded: rb &>> 16)
    }
}
