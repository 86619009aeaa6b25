import Dispatch
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
    /// Worker threads for one frame (rows of cells are dealt out in turn).
    public var threads: Int
    /// RGB interleaved rows of `panoramaWidth + 1` pixels: column 0 repeated at the end, so the
    /// bilinear tap to the right of the last column needs no modulo.
    private let texels: [UInt8]
    /// Camera-space rays (not normalised: atan2 does not need it) at the grid nodes, row-major.
    private let nodeRays: [SIMD3<Float>]
    private let nodeColumns: Int
    private let nodeRows: Int

    /// - Parameters:
    ///   - panorama: `[3, H, W]` uint8 RGB (float in [0, 1] is scaled and rounded), W ≥ 2.
    ///   - camera: the viewport's size and horizontal FOV.
    public init(panorama: Tensor, camera: PinholeCamera, cellSize: Int = 8,
                threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws {
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
        let hwc: [UInt8] = try rgb.permute(1, 2, 0).contiguous().toArray()
        var padded = [UInt8](repeating: 0, count: h * (w + 1) * 3)
        for row in 0..<h {
            let source = row * w * 3, target = row * (w + 1) * 3
            padded.replaceSubrange(target..<(target + w * 3), with: hwc[source..<(source + w * 3)])
            padded.replaceSubrange((target + w * 3)..<(target + w * 3 + 3), with: hwc[source..<(source + 3)])
        }
        texels = padded
        (panoramaHeight, panoramaWidth) = (h, w)
        self.camera = camera
        self.cellSize = cellSize
        self.threads = max(1, threads)
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
        let cellRows = nodeRows - 1
        let workers = min(threads, max(cellRows, 1))
        try output.withUnsafeMutableBytes { out in
            texels.withUnsafeBufferPointer { tex in
                coordinates.withUnsafeBufferPointer { nodes in
                    let context = RenderContext(out: out.bindMemory(to: UInt8.self).baseAddress!, texels: tex.baseAddress!,
                                                nodes: nodes.baseAddress!, width: w, height: h, nodeColumns: nodeColumns,
                                                cell: cellSize, panoramaWidth: panoramaWidth, panoramaHeight: panoramaHeight,
                                                rotation: rotation.map(Float.init), camera: camera)
                    DispatchQueue.concurrentPerform(iterations: workers) { worker in
                        for cellRow in stride(from: worker, to: cellRows, by: workers) {
                            context.renderCellRow(cellRow)
                        }
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

/// Raw pointers and sizes shared by the render workers (each writes disjoint rows).
private struct RenderContext: @unchecked Sendable {
    let out: UnsafeMutablePointer<UInt8>
    let texels: UnsafePointer<UInt8>
    let nodes: UnsafePointer<SIMD2<Float>>
    let width: Int, height: Int, nodeColumns: Int, cell: Int
    let panoramaWidth: Int, panoramaHeight: Int
    let rotation: [Float]
    let camera: PinholeCamera

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
            if spread > pw / 16 {
                renderExactly(x0..<x1, y0..<y1)
                continue
            }
            for y in y0..<y1 {
                let t = Float(y - y0) * inverseCell
                let left = a + (c - a) * t, right = b + (d - b) * t
                let step = (right - left) * inverseCell
                var p = left
                for x in x0..<x1 {
                    sample(p, into: y * width + x)
                    p += step
                }
            }
        }
    }

    private func renderExactly(_ columns: Range<Int>, _ rows: Range<Int>) {
        let (f, cx, cy) = (Float(camera.focal), Float(camera.cx), Float(camera.cy))
        let r = rotation
        for y in rows {
            for x in columns {
                let ray = SIMD3<Float>((Float(x) - cx) / f, (Float(y) - cy) / f, 1)
                let world = SIMD3(r[0] * ray.x + r[1] * ray.y + r[2] * ray.z, r[3] * ray.x + r[4] * ray.y + r[5] * ray.z,
                                  r[6] * ray.x + r[7] * ray.y + r[8] * ray.z)
                sample(equirectCoordinates(world, width: Float(panoramaWidth), height: Float(panoramaHeight)),
                       into: y * width + x)
            }
        }
    }

    @inline(__always)
    private func unwrap(_ x: Float, near reference: Float, width: Float) -> Float {
        if x - reference > width / 2 { return x - width }
        if reference - x > width / 2 { return x + width }
        return x
    }

    /// Bilinear sample at panorama coordinates `p` (column possibly off by one turn) into output
    /// pixel `index` of the three planes, in 8-bit fixed point (weights in 1/256).
    @inline(__always)
    private func sample(_ p: SIMD2<Float>, into index: Int) {
        let pw = Float(panoramaWidth)
        var x = p.x
        if x < 0 { x += pw } else if x >= pw { x -= pw }
        if !(x >= 0 && x < pw) { x = 0 }  // only for non-finite or absurd inputs; keeps indices in range
        let y = min(max(p.y, 0), Float(panoramaHeight - 1))
        let fx = Int32(x * 256), fy = Int32(y * 256)
        let xi = Int(fx >> 8), yi = Int(fy >> 8)
        let wx = fx & 255, wy = fy & 255
        let stride = (panoramaWidth + 1) * 3
        let yj = min(yi + 1, panoramaHeight - 1)
        let t0 = texels + yi * stride + xi * 3, t1 = texels + yj * stride + xi * 3
        let plane = width * height
        for channel in 0..<3 {
            let upper = Int32(t0[channel]) * (256 - wx) + Int32(t0[channel + 3]) * wx
            let lower = Int32(t1[channel]) * (256 - wx) + Int32(t1[channel + 3]) * wx
            out[channel * plane + index] = UInt8(truncatingIfNeeded: (upper * (256 - wy) + lower * wy + 32768) >> 16)
        }
    }
}
