import Foundation
import Torch

/// How pixel values are represented in a tensor.
public enum PixelRange: Sendable, CustomStringConvertible {
    /// uint8 in 0…255 (16-bit images are rounded to 8 bits).
    case uint8
    /// float32 in [0, 1].
    case unit
    /// float32 in [−1, 1] (what the VAE and the diffusion model take: x / 127.5 − 1).
    case signed

    public var description: String {
        switch self {
        case .uint8: "uint8 0…255"
        case .unit: "float [0, 1]"
        case .signed: "float [-1, 1]"
        }
    }
}

/// A decoded raster image: `height` rows of `width` pixels with `channels` interleaved samples
/// (row-major `[H, W, C]`), 8 or 16 bits per sample. Convert to a `[C, H, W]` tensor with
/// `tensor(_:)` and back with `init(tensor:range:)`.
public struct Image: Equatable, Sendable {
    public enum Samples: Equatable, Sendable {
        case uint8([UInt8])
        case uint16([UInt16])
    }

    public let width: Int
    public let height: Int
    /// 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA.
    public let channels: Int
    public let samples: Samples

    public var bitDepth: Int {
        if case .uint16 = samples { return 16 }
        return 8
    }

    public var hasAlpha: Bool { channels == 2 || channels == 4 }

    /// An image from interleaved 8-bit samples.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) throws {
        try Self.check(width, height, channels, pixels.count)
        self.width = width
        self.height = height
        self.channels = channels
        samples = .uint8(pixels)
    }

    /// An image from interleaved 16-bit samples.
    public init(width: Int, height: Int, channels: Int, pixels16: [UInt16]) throws {
        try Self.check(width, height, channels, pixels16.count)
        self.width = width
        self.height = height
        self.channels = channels
        samples = .uint16(pixels16)
    }

    private static func check(_ width: Int, _ height: Int, _ channels: Int, _ count: Int) throws {
        guard width > 0, height > 0, (1...4).contains(channels) else {
            throw MediaError(file: "<image>", "invalid image layout \(width)×\(height)×\(channels)")
        }
        guard count == width * height * channels else {
            throw MediaError(file: "<image>", "\(count) samples do not fill \(width)×\(height)×\(channels)")
        }
    }

    /// The samples as 8-bit values (16-bit ones rounded: v / 257).
    public var pixels8: [UInt8] {
        switch samples {
        case .uint8(let values): return values
        case .uint16(let values): return values.map { UInt8((UInt32($0) + 128) / 257) }
        }
    }

    // MARK: Layout conversion

    /// The same picture as 8-bit RGB: gray is replicated, alpha is dropped (not composited), 16-bit
    /// samples are rounded. What the data pipeline feeds the models.
    public func rgb8() -> Image {
        let source = pixels8
        if channels == 3, bitDepth == 8 { return self }
        let n = width * height
        var out = [UInt8](repeating: 0, count: n * 3)
        source.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    switch channels {
                    case 1, 2:
                        let g = src[i * channels]
                        dst[3 * i] = g; dst[3 * i + 1] = g; dst[3 * i + 2] = g
                    default:
                        dst[3 * i] = src[i * channels]
                        dst[3 * i + 1] = src[i * channels + 1]
                        dst[3 * i + 2] = src[i * channels + 2]
                    }
                }
            }
        }
        // The layout is valid by construction.
        return (try? Image(width: width, height: height, channels: 3, pixels: out)) ?? self
    }

    // MARK: Tensors

    /// The image as a `[C, H, W]` tensor (C = `channels`) in `range`, on `device`.
    public func tensor(_ range: PixelRange = .unit, device: Device = .cpu) throws -> Tensor {
        let hwc: Tensor
        switch (samples, range) {
        case (.uint8(let values), _):
            hwc = try values.withUnsafeBytes { try Tensor(bytes: $0, shape: [height, width, channels], dtype: .uint8) }
        case (.uint16, .uint8):
            hwc = try pixels8.withUnsafeBytes { try Tensor(bytes: $0, shape: [height, width, channels], dtype: .uint8) }
        case (.uint16(let values), _):
            // Scale to 0…255 in float so that both float ranges below apply unchanged.
            hwc = try Tensor(values.map { Float($0) / 257 }, shape: [height, width, channels])
        }
        let chw = try hwc.permute(2, 0, 1).to(device: device).contiguous()
        switch range {
        case .uint8: return chw
        case .unit: return try chw.to(dtype: .float32) / 255
        case .signed: return try chw.to(dtype: .float32) / 127.5 - 1
        }
    }

    /// An image from a `[C, H, W]` tensor (C in 1…4) on any device. uint8 tensors are taken as is;
    /// float tensors are read in `range`, clamped, scaled and rounded to `bitDepth` (8 or 16) bits.
    public init(tensor: Tensor, range: PixelRange = .unit, bitDepth: Int = 8) throws {
        guard tensor.rank == 3, (1...4).contains(tensor.shape[0]) else {
            throw MediaError(file: "<tensor>", "expected a [C, H, W] image tensor with C in 1…4, got \(tensor.shape)")
        }
        guard bitDepth == 8 || bitDepth == 16 else {
            throw MediaError(file: "<tensor>", "bit depth must be 8 or 16, got \(bitDepth)")
        }
        let (c, h, w) = (tensor.shape[0], tensor.shape[1], tensor.shape[2])
        let hwc = try tensor.permute(1, 2, 0)
        if tensor.dtype == .uint8 {
            let bytes: [UInt8] = try hwc.contiguous().toArray()
            if bitDepth == 8 {
                try self.init(width: w, height: h, channels: c, pixels: bytes)
            } else {
                try self.init(width: w, height: h, channels: c, pixels16: bytes.map { UInt16($0) * 257 })
            }
            return
        }
        guard tensor.dtype.isFloatingPoint else {
            throw MediaError(file: "<tensor>", "image tensors must be uint8 or floating point, got \(tensor.dtype)")
        }
        var unit = try hwc.to(dtype: .float32)
        switch range {
        case .uint8: unit = try unit / 255
        case .unit: break
        case .signed: unit = try (unit + 1) / 2
        }
        let maximum = bitDepth == 8 ? 255.0 : 65535.0
        let scaled = try (unit.clamp(min: 0, max: 1) * maximum).round().contiguous()
        if bitDepth == 8 {
            try self.init(width: w, height: h, channels: c, pixels: try scaled.to(dtype: .uint8).toArray())
        } else {
            let values: [Int32] = try scaled.to(dtype: .int32).toArray()
            try self.init(width: w, height: h, channels: c, pixels16: values.map { UInt16(truncatingIfNeeded: $0) })
        }
    }
}

extension Tensor {
    /// `[…, 3, H, W]` in [−1, 1] → uint8 on the CPU, rounded as a PNG of it stores it
    /// (`Image(tensor:range: .signed)`): the form views are kept and scored in.
    public func signedToUInt8() throws -> Tensor {
        try (((to(dtype: .float32, device: .cpu) + 1) / 2).clamp(min: 0, max: 1) * 255).round().to(dtype: .uint8)
    }
}
