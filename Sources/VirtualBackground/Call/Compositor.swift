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
    ///   - alpha: the person mask `[1, h, w]` or `[h, w]` in [0, 1] (float), at the frame's size or
    ///     the segmenter's: it is then resized here, bilinearly with half-pixel centres as
    ///     `MaskPostProcessor` does, so no frame-sized float mask is ever materialised.
    ///   - binarize: re-threshold the upsampled mask at 0.5 (smooth contours of a binary mask, as
    ///     `MaskPostProcessor` does after upsampling a thresholded mask).
    /// - Returns: `[3, H, W]` uint8.
    public func composite(person: Tensor, room: Tensor, alpha: Tensor, binarize: Bool = false) throws -> Tensor {
        guard person.rank == 3, person.shape[0] == 3, person.dtype == .uint8, room.shape == person.shape, room.dtype == .uint8
        else {
            throw CallError("composite: person and room must be [3, H, W] uint8 of one size, got \(person.shape) "
                            + "\(person.dtype) and \(room.shape) \(room.dtype)")
        }
        let (h, w) = (person.shape[1], person.shape[2])
        let mask = alpha.rank >= 2 ? Array(alpha.shape.suffix(2)) : []
        guard mask.count == 2, alpha.count == mask[0] * mask[1], mask[0] > 0, mask[1] > 0 else {
            throw CallError("composite: the mask must be [1, h, w] or [h, w], got \(alpha.shape) (the frame is \(w)×\(h))")
        }
        let alphaValues = try alpha.to(dtype: .float32).reshape(mask)
        let weights = try AlphaPlane(from: alphaValues, height: h, width: w, binarize: binarize)
        let plane = h * w
        let gain = colorMatch > 0 ? try updateGains(person, room, weights.tensor(), plane: plane) : SIMD3<Float>(1, 1, 1)
        let output = try Tensor.empty([3, h, w], dtype: .uint8)
        try person.withUnsafeBytes { fgBytes in
            try room.withUnsafeBytes { bgBytes in
                try weights.values.withUnsafeBufferPointer { alphaBuffer in
                    try output.withUnsafeMutableBytes { outBytes in
                        let blend = Blend(person: fgBytes.bindMemory(to: UInt8.self).baseAddress!,
                                          room: bgBytes.bindMemory(to: UInt8.self).baseAddress!,
                                          alpha: alphaBuffer.baseAddress!,
                                          out: outBytes.bindMemory(to: UInt8.self).baseAddress!, plane: plane, gain: gain)
                        Parallel.forEach(0..<plane, grain: 32768) { blend.run($0) }
                    }
                }
            }
        }
        return output
    }

    /// Per-channel gains that give the person's mean colour the room's chromaticity at the person's
    /// own brightness, blended by `colorMatch` and smoothed over time.
    private func updateGains(_ person: Tensor, _ room: Tensor, _ alpha: Tensor, plane: Int) throws -> SIMD3<Float> {
        let a = try alpha.reshape([1, plane]).to(dtype: .float64) / 255
        let weight = try a.sum().item()
        let personSum = try (person.reshape([3, plane]).to(dtype: .float64) * a).sum(dims: [1]).toArray(Double.self)
        let roomSum = try room.reshape([3, plane]).to(dtype: .float64).sum(dims: [1]).toArray(Double.self)
        guard weight > Double(plane) * 0.01 else { return gains ?? SIMD3(1, 1, 1) }
        let person = SIMD3(personSum[0], personSum[1], personSum[2]) / weight + 1
        let room = SIMD3(roomSum[0], roomSum[1], roomSum[2]) / Double(plane) + 1
        let personChroma = person / ((person.x + person.y + person.z) / 3)
        let roomChroma = room / ((room.x + room.y + room.z) / 3)
        let target = SIMD3<Float>(roomChroma / personChroma)
        let blended = SIMD3<Float>(1, 1, 1) + (target - SIMD3<Float>(1, 1, 1)) * colorMatch
        let smoothed = gains.map { $0 + (blended - $0) * colorSmoothing } ?? blended
        gains = smoothed
        return smoothed
    }
}

/// The compositing weights as 8-bit values (0…255) at the frame's size, resized from the mask's
/// size by `PlaneResampler` (PyTorch's bilinear `align_corners=False`, as `MaskPostProcessor`).
struct AlphaPlane {
    let values: [UInt8]
    let height: Int
    let width: Int

    /// - Parameter mask: `[h, w]` float32.
    init(from mask: Tensor, height: Int, width: Int, binarize: Bool) throws {
        self.height = height
        self.width = width
        let resampler = try PlaneResampler(from: (mask.shape[0], mask.shape[1]), to: (height, width))
        values = try [UInt8](unsafeUninitializedCapacity: height * width) { buffer, initialized in
            try mask.withUnsafeBytes { source in
                resampler.resampleToAlpha(source.bindMemory(to: Float.self).baseAddress!, into: buffer.baseAddress!,
                                          binarize: binarize)
            }
            initialized = height * width
        }
    }

    /// `[1, H, W]` float in [0, 255].
    func tensor() throws -> Tensor {
        try values.withUnsafeBytes { try Tensor(bytes: $0, shape: [1, height, width], dtype: .uint8) }.to(dtype: .float32)
    }
}

/// One frame's blend over raw planes; workers take disjoint pixel ranges.
private struct Blend: @unchecked Sendable {
    let person: UnsafePointer<UInt8>
    let room: UnsafePointer<UInt8>
    let alpha: UnsafePointer<UInt8>
    let out: UnsafeMutablePointer<UInt8>
    let plane: Int
    let gain: SIMD3<Float>

    func run(_ pixels: Range<Int>) {
        let plain = gain == SIMD3<Float>(1, 1, 1)
        for channel in 0..<3 {
            let offset = channel * plane
            if plain {
                // 8-bit alpha: integer arithmetic, exact to rounding.
                for i in pixels {
                    let a = Int32(alpha[i])
                    let f = Int32(person[offset &+ i]), b = Int32(room[offset &+ i])
                    // round(v / 255) for 0 ≤ v ≤ 255², without a division.
                    let v = b &* 255 &+ (f &- b) &* a &+ 128
                    out[offset &+ i] = UInt8(truncatingIfNeeded: (v &+ (v &>> 8)) &>> 8)
                }
            } else {
                let g = gain[channel]
                for i in pixels {
                    let a = Float(alpha[i]) / 255, b = Float(room[offset + i])
                    let f = min(Float(person[offset + i]) * g, 255)
                    out[offset + i] = UInt8(b + (f - b) * a + 0.5)
                }
            }
        }
    }
}
