import CImage
import Foundation
import Torch

/// Encoded image formats Backdrop reads and writes.
public enum ImageFormat: Equatable, Sendable {
    case png
    /// JPEG with a quality of 1…100.
    case jpeg(quality: Int)

    /// The format for a file name's extension (`.png`, `.jpg`, `.jpeg`), or nil.
    public init?(pathExtension: String) {
        switch pathExtension.lowercased() {
        case "png": self = .png
        case "jpg", "jpeg": self = .jpeg(quality: 95)
        default: return nil
        }
    }
}

extension Image {
    // MARK: Decoding

    /// Reads a PNG or JPEG file (recognised by its signature, not its name).
    public init(contentsOf url: URL) throws {
        try self.init(data: readFile(url), name: url.path)
    }

    /// Decodes PNG or JPEG bytes; `name` is used in error messages.
    public init(data: Data, name: String = "<memory>") throws {
        let bytes = [UInt8](data.prefix(8))
        if bytes.count >= 8, bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            try self.init(pngData: data, name: name)
        } else if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8 {
            try self.init(jpegData: data, name: name)
        } else {
            throw MediaError(file: name, "not a PNG or JPEG file (unrecognised signature)")
        }
    }

    public init(pngData data: Data, name: String = "<memory>") throws {
        self = try Self.decode(data, name: name, kind: "PNG", ci_png_decode)
    }

    public init(jpegData data: Data, name: String = "<memory>") throws {
        self = try Self.decode(data, name: name, kind: "JPEG", ci_jpeg_decode)
    }

    private typealias Decoder = (UnsafePointer<UInt8>?, Int, UnsafeMutablePointer<ci_image>?,
                                 UnsafeMutablePointer<CChar>?, Int) -> Int32

    private static func decode(_ data: Data, name: String, kind: String, _ decoder: Decoder) throws -> Image {
        var raw = ci_image()
        var message = [CChar](repeating: 0, count: 512)
        let status = data.withUnsafeBytes { bytes in
            decoder(bytes.bindMemory(to: UInt8.self).baseAddress, bytes.count, &raw, &message, message.count)
        }
        defer { ci_image_free(&raw) }
        guard status == 0, let pixels = raw.pixels else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw MediaError(file: name, "cannot decode \(kind): \(text.isEmpty ? "unknown error" : text)")
        }
        let (w, h, c) = (Int(raw.width), Int(raw.height), Int(raw.channels))
        let n = w * h * c
        if raw.bit_depth == 16 {
            let values = Array(UnsafeBufferPointer(start: pixels.assumingMemoryBound(to: UInt16.self), count: n))
            return try Image(width: w, height: h, channels: c, pixels16: values)
        }
        let values = Array(UnsafeBufferPointer(start: pixels.assumingMemoryBound(to: UInt8.self), count: n))
        return try Image(width: w, height: h, channels: c, pixels: values)
    }

    // MARK: Encoding

    /// PNG bytes; `compression` is the zlib level 0…9 (nil: libpng's default).
    public func pngData(compression: Int? = nil) throws -> Data {
        try encode(kind: "PNG") { image, buffer, message, size in
            ci_png_encode(image, Int32(compression ?? -1), buffer, message, size)
        }
    }

    /// JPEG bytes (gray or RGB; alpha is dropped and 16-bit samples are rounded to 8 bits).
    public func jpegData(quality: Int = 95) throws -> Data {
        let source: Image
        switch channels {
        case 1 where bitDepth == 8, 3 where bitDepth == 8: source = self
        case 1, 2: source = try Image(width: width, height: height, channels: 1,
                                      pixels: stride(from: 0, to: pixels8.count, by: channels).map { pixels8[$0] })
        default: source = rgb8()
        }
        return try source.encode(kind: "JPEG") { image, buffer, message, size in
            ci_jpeg_encode(image, Int32(quality), buffer, message, size)
        }
    }

    private func encode(kind: String, _ encoder: (UnsafePointer<ci_image>, UnsafeMutablePointer<ci_buffer>,
                                                  UnsafeMutablePointer<CChar>, Int) -> Int32) throws -> Data {
        var buffer = ci_buffer()
        var message = [CChar](repeating: 0, count: 512)
        let status: Int32
        switch samples {
        case .uint8(let values):
            status = values.withUnsafeBytes { raw in
                var image = ci_image(width: Int32(width), height: Int32(height), channels: Int32(channels),
                                     bit_depth: 8, pixels: UnsafeMutableRawPointer(mutating: raw.baseAddress))
                return encoder(&image, &buffer, &message, message.count)
            }
        case .uint16(let values):
            status = values.withUnsafeBytes { raw in
                var image = ci_image(width: Int32(width), height: Int32(height), channels: Int32(channels),
                                     bit_depth: 16, pixels: UnsafeMutableRawPointer(mutating: raw.baseAddress))
                return encoder(&image, &buffer, &message, message.count)
            }
        }
        defer { ci_buffer_free(&buffer) }
        guard status == 0, let data = buffer.data else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw MediaError(file: "<memory>", "cannot encode \(kind): \(text)")
        }
        return Data(bytes: data, count: buffer.size)
    }

    /// Writes the image atomically (temporary file, then rename). The format comes from `format`, or
    /// else from the file extension.
    public func write(to url: URL, format: ImageFormat? = nil) throws {
        guard let format = format ?? ImageFormat(pathExtension: url.pathExtension) else {
            throw MediaError(file: url.path, "unknown image format: use a .png, .jpg or .jpeg name or pass a format")
        }
        let data: Data
        do {
            switch format {
            case .png: data = try pngData()
            case .jpeg(let quality): data = try jpegData(quality: quality)
            }
        } catch let error as MediaError {
            throw MediaError(file: url.path, error.message)
        }
        do {
            try writeAtomically(to: url) { try data.write(to: $0) }
        } catch {
            throw MediaError(file: url.path, "cannot write: \(failureReason(error))")
        }
    }
}

extension Tensor {
    /// Writes a `[C, H, W]` image tensor (uint8, or float in `range`) as PNG/JPEG by extension.
    public func writeImage(to url: URL, range: PixelRange = .unit) throws {
        try Image(tensor: self, range: range).write(to: url)
    }
}

extension Tensor {
    /// Writes a batch `[N, C, H, W]` (uint8, or float in `range`) as N images: one image goes to
    /// `url` itself, several to `<stem>-0.<ext>`, `<stem>-1.<ext>` … beside it (`png` when `url` has
    /// no extension). Returns the files in batch order.
    @discardableResult
    public func writeImages(to url: URL, range: PixelRange = .unit) throws -> [URL] {
        guard rank == 4 else { throw MediaError(file: url.path, "an image batch must be [N, C, H, W], got \(shape)") }
        let files = batchImageFiles(url, count: shape[0])
        for (index, file) in files.enumerated() { try select(dim: 0, index: index).writeImage(to: file, range: range) }
        return files
    }
}

/// Where `Tensor.writeImages` puts a batch of `count` images for `url`: `url` itself for one image,
/// else `<stem>-<i>.<ext>` beside it (`png` when `url` has no extension).
public func batchImageFiles(_ url: URL, count: Int) -> [URL] {
    guard count != 1 else { return [url] }
    let stem = url.deletingPathExtension().lastPathComponent
    let ext = url.pathExtension.isEmpty ? "png" : url.pathExtension
    return (0..<count).map { url.deletingLastPathComponent().appendingPathComponent("\(stem)-\($0).\(ext)") }
}
