import Foundation
import Torch

// The tracker's image kernels in plain Swift over contiguous Float buffers. A frame costs a few
// full-image passes (grayscale + downscale, pyramid, gradients); done as LibTorch ops that would be
// dozens of small ops per frame, each paying dispatch and allocation, for images of 640×360 and less.

/// A single-channel float image, row-major.
struct Plane {
    let width: Int
    let height: Int
    var pixels: [Float]

    init(width: Int, height: Int, pixels: [Float]) {
        precondition(pixels.count == width * height, "Plane: \(pixels.count) values for \(width)×\(height)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    init(width: Int, height: Int) {
        self.init(width: width, height: height, pixels: [Float](repeating: 0, count: width * height))
    }

    subscript(x: Int, y: Int) -> Float { pixels[y * width + x] }

    /// Bilinear value at (x, y) in pixel-centre coordinates, clamped to the border.
    func sample(_ x: Float, _ y: Float) -> Float {
        let cx = min(max(x, 0), Float(width - 1)), cy = min(max(y, 0), Float(height - 1))
        let x0 = min(Int(cx), width - 2 < 0 ? 0 : width - 2), y0 = min(Int(cy), height - 2 < 0 ? 0 : height - 2)
        let x1 = min(x0 + 1, width - 1), y1 = min(y0 + 1, height - 1)
        let fx = cx - Float(x0), fy = cy - Float(y0)
        let top = self[x0, y0] + (self[x1, y0] - self[x0, y0]) * fx
        let bottom = self[x0, y1] + (self[x1, y1] - self[x0, y1]) * fx
        return top + (bottom - top) * fy
    }
}

/// `[Float]` of `count` values, filled by `body` through a mutable buffer (no zero-fill first).
func makeFloats(_ count: Int, _ body: (UnsafeMutableBufferPointer<Float>) -> Void) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
        body(buffer)
        initialized = count
    }
}

enum TrackingImage {
    /// Luma (BT.601 weights, 0…255) of a uint8 RGB frame `[3, H, W]`, averaged over `factor`×`factor`
    /// blocks: an exact box filter for the integer downscale, so no aliasing reaches the tracker and
    /// the camera model stays exact (pixel x of the result is the centre of source pixels
    /// factor·x … factor·x + factor − 1). Trailing rows/columns that do not fill a block are dropped.
    static func luma(_ frame: Tensor, factor: Int) throws -> Plane {
        guard frame.rank == 3, frame.shape[0] == 3, frame.shape[1] >= factor, frame.shape[2] >= factor else {
            throw TrackingError("camera tracking needs an RGB frame [3, H, W], got \(frame.shape)")
        }
        guard frame.dtype == .uint8 else {
            throw TrackingError("camera tracking needs a uint8 frame, got \(frame.dtype)")
        }
        let (height, width) = (frame.shape[1], frame.shape[2])
        let (outW, outH) = (width / factor, height / factor)
        // One copy out of LibTorch; the kernels below read the bytes in place.
        let bytes = try frame.rawBytes()
        let plane = width * height
        let scale = 1 / Float(factor * factor)
        let (wr, wg, wb) = (0.299 * scale, 0.587 * scale, 0.114 * scale)
        let pixels = bytes.withUnsafeBytes { raw -> [Float] in
            let src = raw.bindMemory(to: UInt8.self)
            return makeFloats(outW * outH) { dst in
                Parallel.forEach(0..<outH, grain: 16) { rows in
                    for oy in rows {
                        let out = oy * outW
                        let top = oy * factor * width
                        switch factor {
                        case 1:
                            for x in 0..<outW {
                                dst[out + x] = wr * Float(src[top + x]) + wg * Float(src[plane + top + x])
                                    + wb * Float(src[2 * plane + top + x])
                            }
                        case 2:
                            // The 720p case: 2×2 blocks, summed as integers, weighted once.
                            let bottom = top + width
                            for ox in 0..<outW {
                                let a = top + 2 * ox, b = bottom + 2 * ox
                                let r = UInt32(src[a]) &+ UInt32(src[a + 1]) &+ UInt32(src[b]) &+ UInt32(src[b + 1])
                                let g = UInt32(src[plane + a]) &+ UInt32(src[plane + a + 1])
                                    &+ UInt32(src[plane + b]) &+ UInt32(src[plane + b + 1])
                                let bl = UInt32(src[2 * plane + a]) &+ UInt32(src[2 * plane + a + 1])
                                    &+ UInt32(src[2 * plane + b]) &+ UInt32(src[2 * plane + b + 1])
                                dst[out + ox] = wr * Float(r) + wg * Float(g) + wb * Float(bl)
                            }
                        default:
                            for ox in 0..<outW {
                                var r: UInt32 = 0, g: UInt32 = 0, b: UInt32 = 0
                                for dy in 0..<factor {
                                    let row = top + dy * width + ox * factor
                                    for dx in 0..<factor {
                                        r &+= UInt32(src[row + dx])
                                        g &+= UInt32(src[plane + row + dx])
                                        b &+= UInt32(src[2 * plane + row + dx])
                                    }
                                }
                                dst[out + ox] = wr * Float(r) + wg * Float(g) + wb * Float(b)
                            }
                        }
                    }
                }
            }
        }
        return Plane(width: outW, height: outH, pixels: pixels)
    }

    /// The next pyramid level: blurred with the 5-tap binomial kernel [1 4 6 4 1]/16 in both
    /// directions (borders replicated), then every second pixel. Size ⌈W/2⌉ × ⌈H/2⌉, so pixel x of
    /// the result sits on pixel 2x of the input.
    static func halve(_ image: Plane) -> Plane {
        let (w, h) = (image.width, image.height)
        let (outW, outH) = ((w + 1) / 2, (h + 1) / 2)
        let pixels = image.pixels.withUnsafeBufferPointer { src in
            makeFloats(outW * outH) { dst in
                Parallel.forEach(0..<outH, grain: 32) { rows in
                    // The vertically blurred source row, full width plus two replicated columns per side.
                    var column = [Float](repeating: 0, count: w + 4)
                    column.withUnsafeMutableBufferPointer { tmp in
                        for oy in rows {
                            let y = 2 * oy
                            let r0 = max(y - 2, 0) * w, r1 = max(y - 1, 0) * w, r2 = y * w
                            let r3 = min(y + 1, h - 1) * w, r4 = min(y + 2, h - 1) * w
                            for x in 0..<w {
                                tmp[x + 2] = src[r0 + x] + 4 * src[r1 + x] + 6 * src[r2 + x] + 4 * src[r3 + x] + src[r4 + x]
                            }
                            tmp[0] = tmp[2]; tmp[1] = tmp[2]
                            tmp[w + 2] = tmp[w + 1]; tmp[w + 3] = tmp[w + 1]
                            let out = oy * outW
                            for ox in 0..<outW {
                                let c = 2 * ox + 2
                                dst[out + ox] = (tmp[c - 2] + 4 * tmp[c - 1] + 6 * tmp[c] + 4 * tmp[c + 1] + tmp[c + 2]) * (1 / 256)
                            }
                        }
                    }
                }
            }
        }
        return Plane(width: outW, height: outH, pixels: pixels)
    }

    /// Scharr derivatives normalised to intensity per pixel (the kernels sum to 32): more isotropic
    /// than Sobel, which matters for sub-pixel Lucas–Kanade. Borders replicated.
    static func gradients(_ image: Plane) -> (x: Plane, y: Plane) {
        let (w, h) = (image.width, image.height)
        var gx = [Float](), gy = [Float]()
        image.pixels.withUnsafeBufferPointer { src in
            gx = makeFloats(w * h) { dx in
                gy = makeFloats(w * h) { dy in
                    Parallel.forEach(0..<h, grain: 32) { rows in
                        for y in rows {
                            let up = max(y - 1, 0) * w, mid = y * w, down = min(y + 1, h - 1) * w
                            for x in 0..<w {
                                let l = max(x - 1, 0), r = min(x + 1, w - 1)
                                let ul = src[up + l], ur = src[up + r], ml = src[mid + l], mr = src[mid + r]
                                let dl = src[down + l], dr = src[down + r]
                                dx[mid + x] = (3 * (ur - ul) + 10 * (mr - ml) + 3 * (dr - dl)) * (1 / 32)
                                dy[mid + x] = (3 * (dl - ul) + 10 * (src[down + x] - src[up + x]) + 3 * (dr - ur)) * (1 / 32)
                            }
                        }
                    }
                }
            }
        }
        return (Plane(width: w, height: h, pixels: gx), Plane(width: w, height: h, pixels: gy))
    }
}

/// One frame prepared for tracking: an image pyramid, level 0 at the tracking resolution.
struct FramePyramid {
    let levels: [Plane]

    init(_ base: Plane, levels count: Int) {
        var levels = [base]
        while levels.count <= count, let last = levels.last, last.width >= 16, last.height >= 16 {
            levels.append(TrackingImage.halve(last))
        }
        self.levels = levels
    }

    var base: Plane { levels[0] }
}

/// The person mask at the tracking resolution, dilated: a binary `[UInt8]` where 1 marks pixels
/// whose neighbourhood touches the person. Dilating by at least the Lucas–Kanade window radius keeps
/// background windows from straddling the person's edge, where the two move differently.
struct ExclusionMask {
    let width: Int
    let height: Int
    let bits: [UInt8]

    func contains(_ x: Float, _ y: Float) -> Bool {
        let ix = Int((x + 0.5).rounded(.down)), iy = Int((y + 0.5).rounded(.down))
        guard ix >= 0, iy >= 0, ix < width, iy < height else { return false }
        return bits[iy * width + ix] != 0
    }

    /// `mask` `[h, w]` or `[1, h, w]`, probabilities in [0, 1] at any resolution covering the whole
    /// frame (the segmenter's model-size output or a full-size mask), thresholded and dilated by
    /// `radius` tracking pixels (a square). Each tracking pixel reads the mask at its own centre
    /// (nearest sample). The dilation runs on the coarser of the two grids — a 256×256 model mask is
    /// dilated before it is sampled up, with the radius converted per axis — so its cost does not
    /// grow with the frame.
    init(_ mask: Tensor, width: Int, height: Int, threshold: Float, radius: Int) throws {
        let shape = mask.shape
        guard (mask.rank == 2 || (mask.rank == 3 && shape[0] == 1)), let mw = shape.last, mw > 0,
              shape[shape.count - 2] > 0 else {
            throw TrackingError("the person mask must be [H, W] or [1, H, W], got \(shape)")
        }
        let mh = shape[shape.count - 2]
        let values = try mask.to(dtype: .float32).rawBytes()
        var binary = values.withUnsafeBytes { raw in
            [UInt8](raw.bindMemory(to: Float.self).lazy.map { $0 >= threshold ? 1 : 0 })
        }
        let coarse = mw * mh < width * height
        if coarse, radius > 0 {
            let rx = Int((Double(radius * mw) / Double(width)).rounded(.up))
            let ry = Int((Double(radius * mh) / Double(height)).rounded(.up))
            binary = Self.dilate(binary, width: mw, height: mh, rx: rx, ry: ry)
        }
        let columns = (0..<width).map { min(mw - 1, Int((Double(2 * $0 + 1) * Double(mw) / Double(2 * width)).rounded(.down))) }
        var sampled = [UInt8](repeating: 0, count: width * height)
        binary.withUnsafeBufferPointer { src in
            columns.withUnsafeBufferPointer { column in
                sampled.withUnsafeMutableBufferPointer { out in
                    for y in 0..<height {
                        let my = min(mh - 1, Int((Double(2 * y + 1) * Double(mh) / Double(2 * height)).rounded(.down)))
                        let row = my * mw, outRow = y * width
                        for x in 0..<width { out[outRow + x] = src[row + column[x]] }
                    }
                }
            }
        }
        self.width = width
        self.height = height
        bits = !coarse && radius > 0 ? Self.dilate(sampled, width: width, height: height, rx: radius, ry: radius) : sampled
    }

    /// Rectangular dilation (half-widths rx, ry) as two 1-D passes, each a running count over the
    /// window (O(1) per pixel).
    static func dilate(_ bits: [UInt8], width: Int, height: Int, rx: Int, ry: Int) -> [UInt8] {
        var horizontal = [UInt8](repeating: 0, count: bits.count)
        var out = [UInt8](repeating: 0, count: bits.count)
        bits.withUnsafeBufferPointer { src in
            horizontal.withUnsafeMutableBufferPointer { h in
                for y in 0..<height {
                    let row = y * width
                    var count = 0
                    for x in 0..<min(rx, width) { count += Int(src[row + x]) }
                    for x in 0..<width {
                        if x + rx < width { count += Int(src[row + x + rx]) }
                        if x - rx - 1 >= 0 { count -= Int(src[row + x - rx - 1]) }
                        h[row + x] = count > 0 ? 1 : 0
                    }
                }
                // Vertical pass row by row, with one running count per column (cache-friendly).
                var counts = [Int32](repeating: 0, count: width)
                counts.withUnsafeMutableBufferPointer { c in
                    out.withUnsafeMutableBufferPointer { o in
                        for y in 0..<min(ry, height) { for x in 0..<width { c[x] += Int32(h[y * width + x]) } }
                        for y in 0..<height {
                            if y + ry < height {
                                let add = (y + ry) * width
                                for x in 0..<width { c[x] += Int32(h[add + x]) }
                            }
                            if y - ry - 1 >= 0 {
                                let remove = (y - ry - 1) * width
                                for x in 0..<width { c[x] -= Int32(h[remove + x]) }
                            }
                            let row = y * width
                            for x in 0..<width { o[row + x] = c[x] > 0 ? 1 : 0 }
                        }
                    }
                }
            }
        }
        return out
    }
}

/// Errors of the camera tracker (bad inputs); the message names what was wrong.
public struct TrackingError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
