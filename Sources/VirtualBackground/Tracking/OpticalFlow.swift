import Foundation
import Torch

/// Pyramidal Lucas–Kanade (Bouguet's formulation): for each point, from the coarsest level down,
/// find the shift d minimising Σ (J(x + d) − I(x))² over a square window by Gauss–Newton with the
/// template's own gradients (so the 2×2 system matrix is built once per level), sampling J
/// bilinearly at sub-pixel positions; the result of each level, doubled, seeds the next.
struct LucasKanade {
    /// Window of (2·radius + 1)² pixels.
    var windowRadius = 7
    var maxIterations = 20
    /// Iterations stop when the update is shorter than this (pixels of the level).
    var epsilon: Float = 0.01
    /// A window whose gradient matrix has a smaller eigenvalue (per pixel, in (grey levels / pixel)²)
    /// is too flat to locate: the point is lost.
    var minEigenvalue: Float = 1e-2

    /// Where each point of `from`'s level 0 went in `to` (nil: lost — a flat window, a singular
    /// system, or a window that leaves the image at full resolution). `guesses`: initial shifts at
    /// level 0 (zero when nil).
    func track(_ points: [SIMD2<Float>], from: FramePyramid, to: FramePyramid,
               guesses: [SIMD2<Float>]? = nil) -> [SIMD2<Float>?] {
        let count = points.count
        guard count > 0 else { return [] }
        var result = [SIMD2<Float>?](repeating: nil, count: count)
        let levels = min(from.levels.count, to.levels.count)
        result.withUnsafeMutableBufferPointer { out in
            // Enough points per task to amortise its buffers.
            Parallel.forEach(0..<count, grain: 16) { chunk in
                let n = (2 * windowRadius + 1) * (2 * windowRadius + 1)
                let padded = (2 * windowRadius + 3) * (2 * windowRadius + 3)
                // [template I | Ix | Iy | window one pixel wider | warped]
                var buffer = [Float](repeating: 0, count: 4 * n + padded)
                buffer.withUnsafeMutableBufferPointer { b in
                    for i in chunk {
                        out[i] = trackOne(points[i], guess: guesses?[i] ?? .zero, levels: levels,
                                          from: from, to: to, buffer: b)
                    }
                }
            }
        }
        return result
    }

    private func trackOne(_ point: SIMD2<Float>, guess: SIMD2<Float>, levels: Int, from: FramePyramid,
                          to: FramePyramid, buffer: UnsafeMutableBufferPointer<Float>) -> SIMD2<Float>? {
        let r = windowRadius
        let side = 2 * r + 1, n = side * side
        let tI = UnsafeMutableBufferPointer(rebasing: buffer[0..<n])
        let tX = UnsafeMutableBufferPointer(rebasing: buffer[n..<(2 * n)])
        let tY = UnsafeMutableBufferPointer(rebasing: buffer[(2 * n)..<(3 * n)])
        let j = UnsafeMutableBufferPointer(rebasing: buffer[(3 * n)..<(4 * n)])
        let wide = UnsafeMutableBufferPointer(rebasing: buffer[(4 * n)...])
        let top = levels - 1
        var flow = guess / Float(1 << top)
        for level in stride(from: top, through: 0, by: -1) {
            let scale = 1 / Float(1 << level)
            let p = point * scale
            let image = from.levels[level], next = to.levels[level]
            // The template one pixel wider than the window, so that its Scharr derivatives come from
            // the same samples (one sampling pass instead of three, and no per-level gradient images).
            sampleWindow(image, at: p, radius: r + 1, into: wide)
            let ws = side + 2
            for y in 0..<side {
                for x in 0..<side {
                    let c = (y + 1) * ws + x + 1
                    let ul = wide[c - ws - 1], u = wide[c - ws], ur = wide[c - ws + 1]
                    let l = wide[c - 1], rr = wide[c + 1]
                    let dl = wide[c + ws - 1], d = wide[c + ws], dr = wide[c + ws + 1]
                    let k = y * side + x
                    tI[k] = wide[c]
                    tX[k] = (3 * (ur - ul) + 10 * (rr - l) + 3 * (dr - dl)) * (1 / 32)
                    tY[k] = (3 * (dl - ul) + 10 * (d - u) + 3 * (dr - ur)) * (1 / 32)
                }
            }
            var gxx: Float = 0, gxy: Float = 0, gyy: Float = 0
            for k in 0..<n {
                gxx += tX[k] * tX[k]
                gxy += tX[k] * tY[k]
                gyy += tY[k] * tY[k]
            }
            let det = gxx * gyy - gxy * gxy
            let minEig = ((gxx + gyy) - ((gxx - gyy) * (gxx - gyy) + 4 * gxy * gxy).squareRoot()) * 0.5
            if minEig / Float(n) < minEigenvalue || det <= 0 {
                // Too flat to refine here; a finer level may still see texture.
                if level == 0 { return nil }
                flow *= 2
                continue
            }
            let inverseDet = 1 / det
            for _ in 0..<maxIterations {
                let q = p + flow
                sampleWindow(next, at: q, radius: r, into: j)
                var bx: Float = 0, by: Float = 0
                for k in 0..<n {
                    let difference = j[k] - tI[k]
                    bx += difference * tX[k]
                    by += difference * tY[k]
                }
                // d = −G⁻¹ b
                let step = SIMD2<Float>((gxy * by - gyy * bx) * inverseDet, (gxy * bx - gxx * by) * inverseDet)
                flow += step
                if !(flow.x.isFinite && flow.y.isFinite) { return nil }
                if step.x * step.x + step.y * step.y < epsilon * epsilon { break }
            }
            if level > 0 { flow *= 2 }
        }
        let end = point + flow
        // The full-resolution window must lie inside the image, or border replication biased the fit.
        let base = to.levels[0]
        guard end.x >= Float(r), end.y >= Float(r), end.x <= Float(base.width - 2 - r),
              end.y <= Float(base.height - 2 - r) else { return nil }
        return end
    }
}

/// The (2r + 1)² window of `plane` centred at sub-pixel `p`, row-major, bilinear. All window pixels
/// share p's fractional part, so the four weights are computed once. Past the image the border is
/// replicated (by clamping the integer indices, which keeps that path nearly as cheap).
func sampleWindow(_ plane: Plane, at p: SIMD2<Float>, radius r: Int, into out: UnsafeMutableBufferPointer<Float>) {
    let (w, h) = (plane.width, plane.height)
    let fx0 = p.x.rounded(.down), fy0 = p.y.rounded(.down)
    // Far outside (a diverged guess) every index clamps to the border anyway.
    let x0 = Int(max(-Float(4 * r + 4), min(fx0, Float(w + 4 * r + 4))))
    let y0 = Int(max(-Float(4 * r + 4), min(fy0, Float(h + 4 * r + 4))))
    let ax = p.x - fx0, ay = p.y - fy0
    let w00 = (1 - ax) * (1 - ay), w10 = ax * (1 - ay), w01 = (1 - ax) * ay, w11 = ax * ay
    plane.pixels.withUnsafeBufferPointer { src in
        if x0 - r >= 0, y0 - r >= 0, x0 + r + 1 < w, y0 + r + 1 < h {
            var k = 0
            for dy in -r...r {
                let row = (y0 + dy) * w + x0
                for dx in -r...r {
                    let i = row + dx
                    out[k] = w00 * src[i] + w10 * src[i + 1] + w01 * src[i + w] + w11 * src[i + w + 1]
                    k += 1
                }
            }
            return
        }
        let side = 2 * r + 1
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * side + 2) { columns in
            // columns[0...side]: clamped x indices x0 − r … x0 + r + 1.
            for i in 0...side { columns[i] = min(max(x0 - r + i, 0), w - 1) }
            var k = 0
            for dy in -r...r {
                let top = min(max(y0 + dy, 0), h - 1) * w, bottom = min(max(y0 + dy + 1, 0), h - 1) * w
                for i in 0..<side {
                    let a = columns[i], b = columns[i + 1]
                    out[k] = w00 * src[top + a] + w10 * src[top + b] + w01 * src[bottom + a] + w11 * src[bottom + b]
                    k += 1
                }
            }
        }
    }
}
