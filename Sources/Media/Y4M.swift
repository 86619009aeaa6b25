import Foundation
import Torch

// YUV4MPEG2 (Y4M) video: a text header line, then per frame "FRAME\n" and the planar Y, U, V
// samples. Backdrop writes `YUV4MPEG2 W H F30:1 Ip A1:1 C420jpeg` (what ffmpeg and v4l2loopback
// tools read); it reads 4:2:0 (any chroma siting), 4:4:4 and mono.
//
// Colour: BT.601 full range ("JPEG" YCbCr), the convention of C420jpeg:
//   Y  =       0.299    R + 0.587    G + 0.114    B
//   Cb = 128 − 0.168736 R − 0.331264 G + 0.5      B
//   Cr = 128 + 0.5      R − 0.418688 G − 0.081312 B
// and its inverse R = Y + 1.402 (Cr−128), G = Y − 0.344136 (Cb−128) − 0.714136 (Cr−128),
// B = Y + 1.772 (Cb−128). A stream tagged `XCOLORRANGE=LIMITED` (ffmpeg's yuv420p) is expanded from
// 16–235/16–240 first. 4:2:0 chroma is the mean of each 2×2 block when writing and is upsampled
// bilinearly with centred siting when reading (exact for 420jpeg; the small siting offset of
// 420mpeg2/420paldv is ignored).

/// Chroma layouts of a Y4M stream.
public enum Y4MChroma: String, Sendable {
    case c420jpeg = "420jpeg", c420 = "420", c420mpeg2 = "420mpeg2", c420paldv = "420paldv"
    case c444 = "444", mono = "mono"

    var subsampled: Bool { self != .c444 && self != .mono }
}

/// The parameters of a Y4M stream header.
public struct Y4MHeader: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var frameRate: (numerator: Int, denominator: Int)
    public var chroma: Y4MChroma
    /// True for studio-range samples (`XCOLORRANGE=LIMITED`).
    public var limitedRange: Bool

    public init(width: Int, height: Int, frameRate: (Int, Int) = (30, 1), chroma: Y4MChroma = .c420jpeg,
                limitedRange: Bool = false) {
        self.width = width
        self.height = height
        self.frameRate = (frameRate.0, frameRate.1)
        self.chroma = chroma
        self.limitedRange = limitedRange
    }

    public static func == (a: Y4MHeader, b: Y4MHeader) -> Bool {
        a.width == b.width && a.height == b.height && a.frameRate == b.frameRate && a.chroma == b.chroma
            && a.limitedRange == b.limitedRange
    }

    var chromaSize: (width: Int, height: Int) {
        switch chroma {
        case .c444: (width, height)
        case .mono: (0, 0)
        default: ((width + 1) / 2, (height + 1) / 2)
        }
    }

    var frameBytes: Int { width * height + 2 * chromaSize.width * chromaSize.height }

    /// The header line Backdrop writes (without the newline).
    var line: String {
        "YUV4MPEG2 W\(width) H\(height) F\(frameRate.numerator):\(frameRate.denominator) Ip A1:1 C\(chroma.rawValue)"
    }
}

/// Reads RGB frames from a Y4M file or stream.
public final class Y4MReader {
    public let header: Y4MHeader
    public let name: String
    private let input: FileHandle
    private var buffer = Data()
    private var consumed = 0
    private var ended = false
    public private(set) var framesRead = 0

    /// Opens a Y4M file.
    public convenience init(url: URL) throws {
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw MediaError(file: url.path, FileManager.default.fileExists(atPath: url.path)
                             ? "cannot open for reading" : "no such file")
        }
        try self.init(fileHandle: handle, name: url.path)
    }

    /// Reads from an open handle (a pipe from ffmpeg, standard input); `name` appears in errors.
    public init(fileHandle: FileHandle, name: String) throws {
        input = fileHandle
        self.name = name
        var tmp = Data(), offset = 0, eof = false
        guard let line = try Self.readLine(fileHandle, &tmp, &offset, &eof, limit: 4096, name: name) else {
            throw MediaError(file: name, "empty file: no YUV4MPEG2 header")
        }
        header = try Self.parseHeader(line, name: name)
        buffer = tmp
        consumed = offset
        ended = eof
    }

    static func parseHeader(_ line: String, name: String) throws -> Y4MHeader {
        let tokens = line.split(separator: " ")
        guard tokens.first == "YUV4MPEG2" else {
            throw MediaError(file: name, "not a Y4M file: the header does not start with YUV4MPEG2")
        }
        var width: Int?, height: Int?, rate = (30, 1), chroma = Y4MChroma.c420jpeg, limited = false
        for token in tokens.dropFirst() {
            let value = String(token.dropFirst())
            switch token.first {
            case "W": width = Int(value)
            case "H": height = Int(value)
            case "F":
                let parts = value.split(separator: ":").compactMap { Int($0) }
                guard parts.count == 2, parts[0] > 0, parts[1] > 0 else {
                    throw MediaError(file: name, "bad frame rate '\(token)' in the Y4M header")
                }
                rate = (parts[0], parts[1])
            case "C":
                guard let c = Y4MChroma(rawValue: value) else {
                    throw MediaError(file: name, "unsupported Y4M colour space '\(value)' (supported: 420jpeg, 420, "
                                     + "420mpeg2, 420paldv, 444, mono)")
                }
                chroma = c
            case "I":
                guard value == "p" || value == "?" else {
                    throw MediaError(file: name, "interlaced Y4M ('\(token)') is not supported")
                }
            case "X":
                if value.uppercased() == "COLORRANGE=LIMITED" { limited = true }
            default: break  // A (aspect) and unknown tags do not change decoding
            }
        }
        guard let w = width, let h = height, w > 0, h > 0, w <= 16384, h <= 16384 else {
            throw MediaError(file: name, "the Y4M header lacks a valid width and height: '\(line)'")
        }
        return Y4MHeader(width: w, height: h, frameRate: rate, chroma: chroma, limitedRange: limited)
    }

    /// The next frame as `[3, H, W]` uint8 RGB, or nil at the end of the stream. A frame cut short
    /// is an error.
    public func nextFrame() throws -> Tensor? {
        guard let planes = try nextPlanes() else { return nil }
        return try YCbCr.toRGB(y: planes.y, cb: planes.cb, cr: planes.cr, header: header)
    }

    /// The next frame's raw planes: Y `[H, W]`, Cb and Cr `[h, w]` uint8 (nil for mono).
    public func nextPlanes() throws -> (y: Tensor, cb: Tensor?, cr: Tensor?)? {
        guard let line = try Self.readLine(input, &buffer, &consumed, &ended, limit: 1024, name: name) else {
            return nil
        }
        guard line.hasPrefix("FRAME") else {
            throw MediaError(file: name, "frame \(framesRead): expected a FRAME marker, found '\(line.prefix(32))'")
        }
        let size = header.frameBytes
        try fill(size)
        guard buffer.count - consumed >= size else {
            throw MediaError(file: name, "frame \(framesRead) is truncated: \(buffer.count - consumed) of \(size) bytes")
        }
        let (w, h) = (header.width, header.height)
        let (cw, ch) = header.chromaSize
        let frame = buffer.subdata(in: (buffer.startIndex + consumed)..<(buffer.startIndex + consumed + size))
        consumed += size
        compact()
        framesRead += 1
        return try frame.withUnsafeBytes { raw in
            let y = try Tensor(bytes: UnsafeRawBufferPointer(rebasing: raw[0..<(w * h)]), shape: [h, w], dtype: .uint8)
            guard header.chroma != .mono else { return (y, nil, nil) }
            let c = cw * ch
            let cb = try Tensor(bytes: UnsafeRawBufferPointer(rebasing: raw[(w * h)..<(w * h + c)]), shape: [ch, cw],
                                dtype: .uint8)
            let cr = try Tensor(bytes: UnsafeRawBufferPointer(rebasing: raw[(w * h + c)..<(w * h + 2 * c)]),
                                shape: [ch, cw], dtype: .uint8)
            return (y, cb, cr)
        }
    }

    /// Reads until at least `count` unconsumed bytes are buffered or the input ends.
    private func fill(_ count: Int) throws {
        while buffer.count - consumed < count, !ended {
            let chunk: Data?
            do { chunk = try input.read(upToCount: max(count - (buffer.count - consumed), 1 << 16)) } catch {
                throw MediaError(file: name, "read failed: \(failureReason(error))")
            }
            guard let chunk, !chunk.isEmpty else { ended = true; break }
            buffer.append(chunk)
        }
    }

    private func compact() {
        if consumed > (1 << 20) || consumed == buffer.count {
            buffer.removeFirst(consumed)
            buffer = Data(buffer)  // rebase indices at zero
            consumed = 0
        }
    }

    /// One '\n'-terminated ASCII line (without the newline), nil at a clean end of input.
    private static func readLine(_ input: FileHandle, _ buffer: inout Data, _ consumed: inout Int, _ ended: inout Bool,
                                 limit: Int, name: String) throws -> String? {
        while true {
            let start = buffer.startIndex + consumed
            if let newline = buffer[start...].firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[start..<newline], as: UTF8.self)
                consumed = newline + 1 - buffer.startIndex
                return line
            }
            if buffer.count - consumed > limit {
                throw MediaError(file: name, "no line end within \(limit) bytes: not a Y4M stream or corrupt")
            }
            if ended {
                if buffer.count == consumed { return nil }
                throw MediaError(file: name, "truncated: the stream ends inside a header line")
            }
            let chunk: Data?
            do { chunk = try input.read(upToCount: 1 << 16) } catch {
                throw MediaError(file: name, "read failed: \(failureReason(error))")
            }
            if let chunk, !chunk.isEmpty { buffer.append(chunk) } else { ended = true }
        }
    }
}

/// Writes RGB frames as a C420jpeg Y4M stream.
public final class Y4MWriter {
    public let header: Y4MHeader
    public let name: String
    private let output: FileHandle
    /// When writing a file: the temporary path renamed onto `destination` by `finish()`.
    private let temporary: URL?
    private let destination: URL?
    public private(set) var framesWritten = 0
    private var finished = false

    /// Writes a file atomically: frames go to a temporary file that `finish()` renames into place.
    public init(url: URL, width: Int, height: Int, frameRate: (Int, Int) = (30, 1)) throws {
        header = Y4MHeader(width: width, height: height, frameRate: frameRate)
        name = url.path
        let directory = url.deletingLastPathComponent()
        let temp = directory.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw MediaError(file: url.path, "cannot create the folder: \(failureReason(error))")
        }
        guard FileManager.default.createFile(atPath: temp.path, contents: nil),
              let handle = FileHandle(forWritingAtPath: temp.path) else {
            throw MediaError(file: url.path, "cannot create a temporary file next to it")
        }
        output = handle
        temporary = temp
        destination = url
        try writeHeader()
    }

    /// Writes to an open handle (a pipe to ffmpeg, standard output); `name` appears in errors.
    public init(fileHandle: FileHandle, name: String, width: Int, height: Int, frameRate: (Int, Int) = (30, 1)) throws {
        header = Y4MHeader(width: width, height: height, frameRate: frameRate)
        self.name = name
        output = fileHandle
        temporary = nil
        destination = nil
        try writeHeader()
    }

    deinit {
        // An unfinished file is abandoned, never left half-written under its final name.
        if !finished, let temporary {
            try? output.close()
            try? FileManager.default.removeItem(at: temporary)
        }
    }

    private func writeHeader() throws {
        guard header.width > 0, header.height > 0 else {
            throw MediaError(file: name, "invalid frame size \(header.width)×\(header.height)")
        }
        try write(Data((header.line + "\n").utf8))
    }

    private func write(_ data: Data) throws {
        do { try output.write(contentsOf: data) } catch {
            throw MediaError(file: name, "write failed: \(failureReason(error))")
        }
    }

    /// Appends a `[3, H, W]` RGB frame: uint8, or float in `range`.
    public func write(_ frame: Tensor, range: PixelRange = .unit) throws {
        guard !finished else { throw MediaError(file: name, "write after finish()") }
        guard frame.shape == [3, header.height, header.width] else {
            throw MediaError(file: name, "frame \(framesWritten) has shape \(frame.shape), expected "
                             + "[3, \(header.height), \(header.width)]")
        }
        let planes = try YCbCr.fromRGB(frame, range: range)
        var data = Data("FRAME\n".utf8)
        data.append(try planes.y.rawBytes())
        data.append(try planes.cb.rawBytes())
        data.append(try planes.cr.rawBytes())
        try write(data)
        framesWritten += 1
    }

    /// Appends an image (converted to 8-bit RGB).
    public func write(_ image: Image) throws {
        try write(image.rgb8().tensor(.uint8), range: .uint8)
    }

    /// Closes the stream; a file is renamed into place.
    public func finish() throws {
        guard !finished else { return }
        finished = true
        guard let temporary, let destination else { return }
        do { try output.close() } catch {
            throw MediaError(file: name, "close failed: \(failureReason(error))")
        }
        if rename(temporary.path, destination.path) != 0 {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw MediaError(file: name, "cannot move the finished file into place: \(reason)")
        }
    }
}

/// BT.601 full-range RGB ⇄ YCbCr on tensors (see the file comment for the formulas).
public enum YCbCr {
    /// `[3, H, W]` RGB (uint8, or float in `range`) → uint8 planes Y `[H, W]` and 2×2-averaged
    /// Cb, Cr `[⌈H/2⌉, ⌈W/2⌉]`.
    public static func fromRGB(_ rgb: Tensor, range: PixelRange = .unit) throws -> (y: Tensor, cb: Tensor, cr: Tensor) {
        // uint8 input is 0…255 whatever `range` says; float input is read in `range`.
        var x = try rgb.to(dtype: .float32)
        if rgb.dtype != .uint8 {
            switch range {
            case .uint8: break
            case .unit: x = try x * 255
            case .signed: x = try (x + 1) * 127.5
            }
        }
        let (r, g, b) = (try x[0], try x[1], try x[2])
        let y = try r * 0.299 + g * 0.587 + b * 0.114
        let cb = try r * -0.168736 + g * -0.331264 + b * 0.5 + 128
        let cr = try r * 0.5 + g * -0.418688 + b * -0.081312 + 128
        // Averaging in 2×2 blocks; a last odd row/column averages what it has (ceil mode).
        let chroma = try F.avgPool2d(Tensor.stack([cb, cr]).unsqueeze(0), kernel: 2, ceilMode: true).squeeze(dim: 0)
        func quantise(_ t: Tensor) throws -> Tensor { try t.round().clamp(min: 0, max: 255).to(dtype: .uint8).contiguous() }
        return (try quantise(y), try quantise(chroma[0]), try quantise(chroma[1]))
    }

    /// Planes → `[3, H, W]` uint8 RGB. Cb/Cr may be subsampled (`[⌈H/2⌉, ⌈W/2⌉]`) or full size; nil
    /// chroma means gray.
    public static func toRGB(y: Tensor, cb: Tensor?, cr: Tensor?, limitedRange: Bool = false) throws -> Tensor {
        let (h, w) = (y.shape[0], y.shape[1])
        var luma = try y.to(dtype: .float32)
        if limitedRange { luma = try (luma - 16) * (255.0 / 219.0) }
        guard let cb, let cr else {
            return try luma.round().clamp(min: 0, max: 255).to(dtype: .uint8).unsqueeze(0).expand([3, h, w]).contiguous()
        }
        var chroma = try Tensor.stack([cb, cr]).to(dtype: .float32)
        if limitedRange { chroma = try (chroma - 128) * (255.0 / 224.0) + 128 }
        if chroma.shape[1] != h || chroma.shape[2] != w {
            // Centred siting: bilinear ×2 without corner alignment puts each chroma sample at the
            // centre of its 2×2 block; odd sizes are cropped after upsampling.
            let up = try F.interpolate(chroma.unsqueeze(0), size: IntPair(2 * chroma.shape[1], 2 * chroma.shape[2]),
                                       mode: .bilinear, alignCorners: false)
            chroma = try up[0, .all, .r(0..<h), .r(0..<w)]
        }
        let u = try chroma[0] - 128, v = try chroma[1] - 128
        let r = try luma + v * 1.402
        let g = try luma - u * 0.344136 - v * 0.714136
        let b = try luma + u * 1.772
        return try Tensor.stack([r, g, b]).round().clamp(min: 0, max: 255).to(dtype: .uint8)
    }

    static func toRGB(y: Tensor, cb: Tensor?, cr: Tensor?, header: Y4MHeader) throws -> Tensor {
        try toRGB(y: y, cb: cb, cr: cr, limitedRange: header.limitedRange)
    }
}
