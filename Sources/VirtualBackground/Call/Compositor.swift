import Foundation
import Torch

/// Errors of the call pipeline (bad sizes, missing inputs); the message names what is wrong.
public struct CallError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Puts the person over the rendered room: out = room + α·(person − room) per pixel, on 8-bit RGB
/// frames, with an optional colour match that moves the person's white balance towards the room's.
public final class Compositor {
    /// 0 (default) leaves the person's colours alone; 1 gives the person the room's per-channel
    /// colour balance (brightness is kept, only the ratios between R, G and B move).
    public var colorMatch: Float
    /// Weight of the new frame in the moving average of the colour gains, so the person's colour
    /// does not flicker when the room behind them changes.
    public var colorSmoothing: Float = 0.1
    private var gains: SIMD3<Float>?

    public init(colorMatch: Float = 0) {
        self.colorMatch = colorMatch
    }

    /// - Parameters:
    ///   - person: the camera frame `[3, H, W]` uint8.
    ///   - room: the background viewport `[3, H, W]` uint8.
    ///   - alpha: the person mask `[1, H, W]` or `[H, W]` in [0, 1] (float) at the frame's size.
    /// - Returns: `[3, H, W]` uint8.
    public func composite(person: Tensor, room: Tensor, alpha: Tensor) throws -> Tensor {
        guard person.rank == 3, person.shape[0] == 3, person.dtype == .uint8, room.shape == person.shape, room.dtype == .uint8
        else {
            throw CallError("composite: person and room must be [3, H, W] uint8 of one size, got \(person.shape) "
                            + "\(person.dtype) and \(room.shape) \(room.dtype)")
        }
        let (h, w) = (person.shape[1], person.shape[2])
        guard alpha.count == h * w, alpha.shape.suffix(2) == [h, w] else {
            throw CallError("composite: the mask \(alpha.shape) does not match the frame \(w)×\(h)")
        }
        let foreground: [UInt8] = try person.contiguous().toArray()
        let background: [UInt8] = try room.contiguous().toArray()
        // 8-bit alpha: the blend is then integer arithmetic, exact to rounding.
        let weights: [UInt8] = try (alpha.to(dtype: .float32).reshape([h * w]) * 255).round().clamp(min: 0, max: 255)
            .to(dtype: .uint8).toArray()
        let plane = h * w
        let gain = colorMatch > 0 ? try updateGains(foreground, background, weights, plane: plane) : SIMD3<Float>(1, 1, 1)
        var output = [UInt8](repeating: 0, count: 3 * plane)
        foreground.withUnsafeBufferPointer { fg in
            background.withUnsafeBufferPointer { bg in
                weights.withUnsafeBufferPointer { a in
                    output.withUnsafeMutableBufferPointer { out in
                        for channel in 0..<3 {
                            let offset = channel * plane
                            if gain[channel] == 1 {
                                for i in 0..<plane {
                                    let alpha = Int32(a[i]), f = Int32(fg[offset + i]), b = Int32(bg[offset + i])
                                    out[offset + i] = UInt8(truncatingIfNeeded: (b * 255 + (f - b) * alpha + 127) / 255)
                                }
                            } else {
                                let g = gain[channel]
                                for i in 0..<plane {
                                    let alpha = Float(a[i]) / 255, b = Float(bg[offset + i])
                                    let f = min(Float(fg[offset + i]) * g, 255)
                                    out[offset + i] = UInt8(b + (f - b) * alpha + 0.5)
                                }
                            }
                        }
                    }
                }
            }
        }
        return try output.withUnsafeBytes { try Tensor(bytes: $0, shape: [3, h, w], dtype: .uint8) }
    }

    /// Per-channel gains that give the person's mean colour the room's chromaticity at the person's
    /// own brightness, blended by `colorMatch` and smoothed over time.
    private func updateGains(_ fg: [UInt8], _ bg: [UInt8], _ alpha: [UInt8], plane: Int) throws -> SIMD3<Float> {
        var personSum = SIMD3<Double>(0, 0, 0), roomSum = SIMD3<Double>(0, 0, 0), weight = 0.0
        for i in 0..<plane {
            let a = Double(alpha[i]) / 255
            personSum += a * SIMD3(Double(fg[i]), Double(fg[plane + i]), Double(fg[2 * plane + i]))
            roomSum += SIMD3(Double(bg[i]), Double(bg[plane + i]), Double(bg[2 * plane + i]))
            weight += a
        }
        guard weight > Double(plane) * 0.01 else { return gains ?? SIMD3(1, 1, 1) }
        let person = personSum / weight + 1, room = roomSum / Double(plane) + 1
        let personChroma = person / ((person.x + person.y + person.z) / 3)
        let roomChroma = room / ((room.x + room.y + room.z) / 3)
        let target = SIMD3<Float>(roomChroma / personChroma)
        let blended = SIMD3<Float>(1, 1, 1) + (target - SIMD3<Float>(1, 1, 1)) * colorMatch
        let smoothed = gains.map { $0 + (blended - $0) * colorSmoothing } ?? blended
        gains = smoothed
        return smoothed
    }
}
