import Foundation
import Torch

/// Shi–Tomasi "good features to track": pixels whose structure tensor, summed over a small block,
/// has a large smaller eigenvalue, i.e. texture that constrains motion in both directions (what
/// Lucas–Kanade needs to solve for a 2-D shift).
struct CornerDetector {
    /// Corners keep a response of at least this fraction of the strongest one.
    var qualityLevel: Float = 0.01
    /// Minimum distance in pixels between corners (including already tracked points).
    var minDistance: Float = 10
    /// The structure tensor is summed over (2·blockRadius + 1)² pixels.
    var blockRadius = 1
    /// Corners keep this distance from the image border (the Lucas–Kanade window must fit).
    var border = 8

    /// Min-eigenvalue response per pixel, 0 within `border + blockRadius` of the edge.
    func response(gradientX: Plane, gradientY: Plane) -> Plane {
        let (w, h) = (gradientX.width, gradientX.height)
        let b = blockRadius
        let margin = max(border, b)
        let pixels = gradientX.pixels.withUnsafeBufferPointer { gx in
            gradientY.pixels.withUnsafeBufferPointer { gy in
                makeFloats(w * h) { out in
                    out.initialize(repeating: 0)
                    guard w > 2 * margin, h > 2 * margin else { return }
                    Parallel.forEach(0..<h - 2 * margin, grain: 32) { chunk in
                        // Column sums over the block's rows of the three tensor entries, then a sliding
                        // horizontal window over those sums.
                        var sums = [Float](repeating: 0, count: 3 * w)
                        sums.withUnsafeMutableBufferPointer { s in
                            for y in (chunk.lowerBound + margin)..<(chunk.upperBound + margin) {
                                for x in 0..<w { s[x] = 0; s[w + x] = 0; s[2 * w + x] = 0 }
                                for yy in (y - b)...(y + b) {
                                    let row = yy * w
                                    for x in 0..<w {
                                        let dx = gx[row + x], dy = gy[row + x]
                                        s[x] += dx * dx
                                        s[w + x] += dx * dy
                                        s[2 * w + x] += dy * dy
                                    }
                                }
                                for x in margin..<(w - margin) {
                                    var a: Float = 0, c: Float = 0, d: Float = 0
                                    for xx in (x - b)...(x + b) { a += s[xx]; c += s[w + xx]; d += s[2 * w + xx] }
                                    // Smaller eigenvalue of [[a, c], [c, d]].
                                    let half = (a - d) * 0.5
                                    out[y * w + x] = (a + d) * 0.5 - (half * half + c * c).squareRoot()
                                }
                            }
                        }
                    }
                }
            }
        }
        return Plane(width: w, height: h, pixels: pixels)
    }

    /// Up to `limit` corners, strongest first, outside `excluded` and at least `minDistance` from each
    /// other and from `existing` points. Candidates are local maxima of the response (3×3) above
    /// `qualityLevel` × the strongest response among allowed pixels.
    func detect(gradientX: Plane, gradientY: Plane, excluded: ExclusionMask?, existing: [SIMD2<Float>],
                limit: Int) -> [SIMD2<Float>] {
        guard limit > 0 else { return [] }
        let r = response(gradientX: gradientX, gradientY: gradientY)
        let (w, h) = (r.width, r.height)
        let margin = max(border, blockRadius)
        guard w > 2 * margin, h > 2 * margin else { return [] }
        // Pixels under the mask get response 0 here, so they are neither the strongest nor candidates.
        var response = r.pixels
        if let excluded {
            response.withUnsafeMutableBufferPointer { p in
                excluded.bits.withUnsafeBufferPointer { bits in
                    for i in 0..<(w * h) where bits[i] != 0 { p[i] = 0 }
                }
            }
        }
        var candidates: [(response: Float, index: Int)] = []
        response.withUnsafeBufferPointer { p in
            var strongest: Float = 0
            for y in margin..<(h - margin) {
                for x in margin..<(w - margin) where p[y * w + x] > strongest { strongest = p[y * w + x] }
            }
            guard strongest > 0 else { return }
            let threshold = strongest * qualityLevel
            for y in margin..<(h - margin) {
                for x in margin..<(w - margin) {
                    let i = y * w + x
                    let v = p[i]
                    guard v >= threshold else { continue }
                    // A plateau keeps every pixel here; the distance test below thins it out.
                    if v < p[i - 1] || v < p[i + 1] || v < p[i - w] || v < p[i + w]
                        || v < p[i - w - 1] || v < p[i - w + 1] || v < p[i + w - 1] || v < p[i + w + 1] { continue }
                    candidates.append((v, i))
                }
            }
        }
        // Ties broken by position so that the result does not depend on the sort's stability.
        candidates.sort { $0.response != $1.response ? $0.response > $1.response : $0.index < $1.index }

        // Buckets of accepted points on a grid of minDistance cells: a new point only needs to be
        // checked against the 3×3 neighbouring cells.
        let cell = max(minDistance, 1)
        let gridW = Int(Float(w) / cell) + 1, gridH = Int(Float(h) / cell) + 1
        var grid = [[SIMD2<Float>]](repeating: [], count: gridW * gridH)
        let minDistanceSquared = minDistance * minDistance
        func cellIndex(_ p: SIMD2<Float>) -> (Int, Int) {
            (min(gridW - 1, max(0, Int(p.x / cell))), min(gridH - 1, max(0, Int(p.y / cell))))
        }
        func isFree(_ p: SIMD2<Float>) -> Bool {
            let (cx, cy) = cellIndex(p)
            for gy in max(0, cy - 1)...min(gridH - 1, cy + 1) {
                for gx in max(0, cx - 1)...min(gridW - 1, cx + 1) {
                    for q in grid[gy * gridW + gx] {
                        let d = p - q
                        if d.x * d.x + d.y * d.y < minDistanceSquared { return false }
                    }
                }
            }
            return true
        }
        func insert(_ p: SIMD2<Float>) {
            let (cx, cy) = cellIndex(p)
            grid[cy * gridW + cx].append(p)
        }
        existing.forEach(insert)

        var corners: [SIMD2<Float>] = []
        for candidate in candidates {
            let p = SIMD2<Float>(Float(candidate.index % w), Float(candidate.index / w))
            guard isFree(p) else { continue }
            insert(p)
            corners.append(p)
            if corners.count == limit { break }
        }
        return corners
    }
}
