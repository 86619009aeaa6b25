import Foundation
import Torch

// Video in and out for the call pipeline. Frames are `[3, H, W]` uint8 RGB tensors everywhere.
// Y4M and folders of PNG/JPEG frames are read and written natively; any other container (mp4,
// avi, mkv, webcam devices) goes through an `ffmpeg` process exchanging raw rgb24 frames over a
// pipe, so no codec library is linked into Backdrop.

/// A source of RGB frames.
public protocol VideoReader: AnyObject {
    /// The file or folder, for messages.
    var name: String { get }
    var width: Int { get }
    var height: Int { get }
    /// Frames per second (the container's nominal rate; 30 for image folders).
    var frameRate: Double { get }
    /// The next frame `[3, H, W]` uint8 RGB, or nil at the end.
    func nextFrame() throws -> Tensor?
}

/// A sink of RGB frames. `finish()` must be called; until then a file output is not in place.
public protocol VideoWriter: AnyObject {
    var name: String { get }
    /// Appends a `[3, H, W]` uint8 RGB frame of the writer's size.
    func append(_ frame: Tensor) throws
    func finish() throws
}

/// Opens `url` for reading: a `.y4m` file, a folder of PNG/JPEG frames (sorted by name), a single
/// image (one frame), or anything `ffmpeg` can decode.
public func openVideo(_ url: URL) throws -> any VideoReader {
    var isFolder: ObjCBool = false
    let exists = FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder)
    guard exists else { throw MediaError(file: url.path, "no such file or folder") }
    if isFolder.boolValue { return try ImageSequenceReader(folder: url) }
    let ext = url.pathExtension.lowercased()
    if ext == "y4m" { return try Y4MReader(url: url) }
    if ImageFormat(pathExtension: ext) != nil { return try ImageSequenceReader(files: [url], name: url.path) }
    return try FFmpegReader(url: url)
}

/// Creates a writer for `url` by its form: `.y4m` natively, `.png`-less paths without an extension
/// (or ending in `/`) as a folder of `frame_000000.png` files, `/dev/video*` as a v4l2loopback
/// camera, any other extension (mp4, mkv, avi, webm, mov) encoded by `ffmpeg`. Files appear
/// atomically at `finish()`.
public func createVideoWriter(_ url: URL, width: Int, height: Int, frameRate: Double = 30) throws -> any VideoWriter {
    guard width > 0, height > 0, frameRate > 0 else {
        throw MediaError(file: url.path, "invalid video size \(width)×\(height) at \(frameRate) fps")
    }
    let ext = url.pathExtension.lowercased()
    if ext == "y4m" {
        return try Y4MWriter(url: url, width: width, height: height, frameRate: rationalFrameRate(frameRate))
    }
    if url.path.hasPrefix("/dev/video") {
        return try FFmpegWriter(device: url, width: width, height: height, frameRate: frameRate)
    }
    if ext.isEmpty || url.absoluteString.hasSuffix("/") {
        return try ImageSequenceWriter(folder: url, width: width, height: height)
    }
    if ImageFormat(pathExtension: ext) != nil {
        throw MediaError(file: url.path, "a video output must be .y4m, a video container (.mp4 …) or a folder, not one image")
    }
    // Checked before any work: an extension ffmpeg cannot write used to surface only when the
    // first frame hit a dead pipe.
    guard FFmpegWriter.containers.contains(ext) else {
        throw MediaError(file: url.path, "'.\(ext)' is not a video container Backdrop writes; use .y4m, a folder for PNG frames, or "
                         + FFmpegWriter.containers.sorted().map { ".\($0)" }.joined(separator: ", "))
    }
    return try FFmpegWriter(file: url, width: width, height: height, frameRate: frameRate)
}

/// The frame rate as the integer ratio Y4M headers carry (NTSC rates keep their 1001 denominator).
func rationalFrameRate(_ rate: Double) -> (Int, Int) {
    let rounded = rate.rounded()
    if abs(rate - rounded) < 1e-6 { return (Int(rounded), 1) }
    let ntsc = rate * 1001 / 1000
    if abs(ntsc - ntsc.rounded()) < 1e-3 { return (Int(ntsc.rounded()) * 1000, 1001) }
    return (Int((rate * 1000).rounded()), 1000)
}

func checkFrame(_ frame: Tensor, width: Int, height: Int, name: String) throws {
    guard frame.shape == [3, height, width], frame.dtype == .uint8 else {
        throw MediaError(file: name, "expected a [3, \(height), \(width)] uint8 frame, got \(frame.shape) \(frame.dtype)")
    }
}

// MARK: - Y4M

extension Y4MReader: VideoReader {
    public var width: Int { header.width }
    public var height: Int { header.height }
    public var frameRate: Double { Double(header.frameRate.numerator) / Double(header.frameRate.denominator) }
}

extension Y4MWriter: VideoWriter {
    public func append(_ frame: Tensor) throws {
        try checkFrame(frame, width: header.width, height: header.height, name: name)
        try write(frame, range: .uint8)
    }
}

// MARK: - Image folders

/// Frames from image files; every frame must have the first frame's size.
public final class ImageSequenceReader: VideoReader {
    public let name: String
    public let width: Int
    public let height: Int
    public let frameRate: Double = 30
    public let files: [URL]
    private var index = 0
    private var pending: Tensor?

    public convenience init(folder: URL) throws {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        } catch {
            throw MediaError(file: folder.path, "cannot list the folder: \(failureReason(error))")
        }
        let files = names.filter { ImageFormat(pathExtension: URL(fileURLWithPath: $0).pathExtension) != nil }
            .map { folder.appendingPathComponent($0) }
        guard !files.isEmpty else { throw MediaError(file: folder.path, "the folder holds no PNG or JPEG frames") }
        try self.init(files: files, name: folder.path)
    }

    public init(files: [URL], name: String) throws {
        guard let first = files.first else { throw MediaError(file: name, "no frames") }
        self.files = files
        self.name = name
        let frame = try Self.load(first)
        (height, width) = (frame.shape[1], frame.shape[2])
        pending = frame
    }

    public func nextFrame() throws -> Tensor? {
        defer { index += 1 }
        if let frame = pending {
            pending = nil
            return frame
        }
        guard index < files.count else { return nil }
        let frame = try Self.load(files[index])
        guard frame.shape[1] == height, frame.shape[2] == width else {
            throw MediaError(file: files[index].path,
                             "frame is \(frame.shape[2])×\(frame.shape[1]), the sequence is \(width)×\(height)")
        }
        return frame
    }

    private static func load(_ url: URL) throws -> Tensor {
        try Image(contentsOf: url).rgb8().tensor(.uint8)
    }
}

/// Writes `frame_000000.png`, `frame_000001.png`, … into a folder (each file atomically).
public final class ImageSequenceWriter: VideoWriter {
    public let name: String
    public let folder: URL
    public let width: Int
    public let height: Int
    public private(set) var framesWritten = 0

    public init(folder: URL, width: Int, height: Int) throws {
        self.folder = folder
        self.name = folder.path
        self.width = width
        self.height = height
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw MediaError(file: folder.path, "cannot create the folder: \(failureReason(error))")
        }
    }

    public func append(_ frame: Tensor) throws {
        try checkFrame(frame, width: width, height: height, name: name)
        let url = folder.appendingPathComponent(String(format: "frame_%06d.png", framesWritten))
        try Image(tensor: frame, range: .uint8).write(to: url, format: .png)
        framesWritten += 1
    }

    public func finish() throws {}
}

// MARK: - ffmpeg

/// Where `ffmpeg`/`ffprobe` live: `BACKDROP_FFMPEG` or the first on `PATH`.
public enum FFmpeg {
    public static func executable(_ tool: String = "ffmpeg") -> String? {
        let environment = ProcessInfo.processInfo.environment
        if tool == "ffmpeg", let explicit = environment["BACKDROP_FFMPEG"], !explicit.isEmpty { return explicit }
        if tool == "ffprobe", let explicit = environment["BACKDROP_FFMPEG"], !explicit.isEmpty {
            let sibling = URL(fileURLWithPath: explicit).deletingLastPathComponent().appendingPathComponent("ffprobe").path
            if FileManager.default.isExecutableFile(atPath: sibling) { return sibling }
        }
        for folder in (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(folder)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    public static var isAvailable: Bool { executable() != nil && executable("ffprobe") != nil }

    static func require(_ tool: String, for name: String) throws -> String {
        guard let path = executable(tool) else {
            throw MediaError(file: name, "\(tool) is not installed (`make setup` installs it); "
                             + "use a .y4m file or a folder of PNG frames instead")
        }
        return path
    }

    /// A process whose standard error goes to a temporary file, read back for error messages (a pipe
    /// could fill up and stall ffmpeg).
    static func launch(_ tool: String, _ arguments: [String], name: String,
                       stdin: Pipe? = nil, stdout: Pipe? = nil) throws -> (Process, URL) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try require(tool, for: name))
        process.arguments = arguments
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("backdrop-\(tool)-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let logHandle = try FileHandle(forWritingTo: log)
        // The child holds its own descriptor once started; ours would only leak.
        defer { try? logHandle.close() }
        process.standardError = logHandle
        process.standardInput = stdin ?? FileHandle.nullDevice
        process.standardOutput = stdout ?? FileHandle.nullDevice
        do { try process.run() } catch {
            throw MediaError(file: name, "cannot start \(tool): \(failureReason(error))")
        }
        return (process, log)
    }

    static func errorText(_ log: URL) -> String {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: log)
        let lines = text.split(separator: "\n").suffix(4).joined(separator: " | ")
        return lines.isEmpty ? "no message" : lines
    }
}

/// Decodes any ffmpeg-readable video into raw rgb24 frames over a pipe.
public final class FFmpegReader: VideoReader {
    public let name: String
    public let width: Int
    public let height: Int
    public let frameRate: Double
    private let process: Process
    private let log: URL
    private let output: FileHandle
    private var buffer = Data()
    private var ended = false
    public private(set) var framesRead = 0

    public init(url: URL) throws {
        name = url.path
        (width, height, frameRate) = try Self.probe(url)
        let pipe = Pipe()
        (process, log) = try FFmpeg.launch("ffmpeg", ["-nostdin", "-v", "error", "-i", url.path,
                                                      "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                                           name: name, stdout: pipe)
        output = pipe.fileHandleForReading
    }

    deinit {
        if process.isRunning { process.terminate() }
        try? FileManager.default.removeItem(at: log)
    }

    /// Size and frame rate of the first video stream, from ffprobe.
    static func probe(_ url: URL) throws -> (Int, Int, Double) {
        let pipe = Pipe()
        let (process, log) = try FFmpeg.launch("ffprobe", ["-v", "error", "-select_streams", "v:0", "-show_entries",
                                                          "stream=width,height,avg_frame_rate,r_frame_rate",
                                                          "-of", "default=noprint_wrappers=1", url.path],
                                               name: url.path, stdout: pipe)
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw MediaError(file: url.path, "not a readable video: \(FFmpeg.errorText(log))")
        }
        try? FileManager.default.removeItem(at: log)
        var fields: [String: String] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { fields[parts[0]] = parts[1] }
        }
        guard let w = fields["width"].flatMap(Int.init), let h = fields["height"].flatMap(Int.init), w > 0, h > 0 else {
            throw MediaError(file: url.path, "no video stream found")
        }
        func rate(_ text: String?) -> Double? {
            guard let parts = text?.split(separator: "/").compactMap({ Double($0) }), parts.count == 2, parts[1] > 0,
                  parts[0] > 0 else { return nil }
            return parts[0] / parts[1]
        }
        return (w, h, rate(fields["avg_frame_rate"]) ?? rate(fields["r_frame_rate"]) ?? 30)
    }

    public func nextFrame() throws -> Tensor? {
        let size = width * height * 3
        while buffer.count < size, !ended {
            let chunk = try output.read(upToCount: max(size - buffer.count, 1 << 16)) ?? Data()
            if chunk.isEmpty { ended = true } else { buffer.append(chunk) }
        }
        guard buffer.count >= size else {
            process.waitUntilExit()
            if process.terminationStatus != 0 {
                throw MediaError(file: name, "ffmpeg failed after \(framesRead) frames: \(FFmpeg.errorText(log))")
            }
            if !buffer.isEmpty {
                throw MediaError(file: name, "frame \(framesRead) is truncated: \(buffer.count) of \(size) bytes")
            }
            return nil
        }
        let frame = try buffer.withUnsafeBytes {
            try Tensor(bytes: UnsafeRawBufferPointer(rebasing: $0[0..<size]), shape: [height, width, 3], dtype: .uint8)
        }
        buffer = buffer.count == size ? Data() : Data(buffer[(buffer.startIndex + size)...])
        framesRead += 1
        return try frame.permute(2, 0, 1).contiguous()
    }
}

/// Encodes raw rgb24 frames with an ffmpeg process: H.264 (yuv420p, widely playable) for files,
/// raw yuv420p for a v4l2loopback device.
public final class FFmpegWriter: VideoWriter {
    public let name: String
    public let width: Int
    public let height: Int
    private let process: Process
    private let log: URL
    private let input: FileHandle
    private let temporary: URL?
    private let destination: URL?
    private var finished = false
    public private(set) var framesWritten = 0

    /// The file extensions ffmpeg's muxers take by name (checked up front; `ffmpeg -muxers`).
    public static let containers: Set<String> = ["mp4", "mkv", "mov", "avi", "webm", "m4v", "nut", "flv", "ts", "gif"]

    /// A file written atomically: encoded to a hidden temporary next to it, renamed by `finish()`.
    public convenience init(file url: URL, width: Int, height: Int, frameRate: Double) throws {
        let directory = url.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw MediaError(file: url.path, "cannot create the folder: \(failureReason(error))")
        }
        let temporary = directory.appendingPathComponent(".\(UUID().uuidString).tmp.\(url.pathExtension)")
        // yuv420p needs even sizes: pad by one pixel where needed rather than fail.
        let codec = ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-pix_fmt", "yuv420p"]
            + (["mp4", "mkv", "mov"].contains(url.pathExtension.lowercased()) ? ["-c:v", "libx264", "-crf", "18",
                                                                                  "-preset", "veryfast"] : [])
        try self.init(name: url.path, width: width, height: height, frameRate: frameRate,
                      output: codec + [temporary.path], temporary: temporary, destination: url)
    }

    /// A v4l2loopback virtual camera (`modprobe v4l2loopback exclusive_caps=1`).
    public convenience init(device: URL, width: Int, height: Int, frameRate: Double) throws {
        guard FileManager.default.fileExists(atPath: device.path) else {
            throw MediaError(file: device.path, "no such video device (is the v4l2loopback module loaded?)")
        }
        try self.init(name: device.path, width: width, height: height, frameRate: frameRate,
                      output: ["-pix_fmt", "yuv420p", "-f", "v4l2", device.path], temporary: nil, destination: nil)
    }

    private init(name: String, width: Int, height: Int, frameRate: Double, output: [String],
                 temporary: URL?, destination: URL?) throws {
        self.name = name
        self.width = width
        self.height = height
        self.temporary = temporary
        self.destination = destination
        let pipe = Pipe()
        (process, log) = try FFmpeg.launch("ffmpeg", ["-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                                                      "-s", "\(width)x\(height)", "-r", "\(frameRate)", "-i", "-"] + output,
                                           name: name, stdin: pipe)
        input = pipe.fileHandleForWriting
    }

    deinit {
        if !finished {
            try? input.close()
            if process.isRunning { process.terminate() }
            if let temporary { try? FileManager.default.removeItem(at: temporary) }
            try? FileManager.default.removeItem(at: log)
        }
    }

    public func append(_ frame: Tensor) throws {
        try checkFrame(frame, width: width, height: height, name: name)
        do { try frame.permute(1, 2, 0).withUnsafeBytes { try input.write(contentsOf: $0) } } catch let error as TorchError {
            throw error
        } catch {
            // The pipe broke because ffmpeg quit: its exit status and last words say why.
            try? input.close()
            process.waitUntilExit()
            finished = true
            if let temporary { try? FileManager.default.removeItem(at: temporary) }
            throw MediaError(file: name, "ffmpeg stopped taking frames after \(framesWritten) (exit status \(process.terminationStatus)): "
                             + FFmpeg.errorText(log))
        }
        framesWritten += 1
    }

    public func finish() throws {
        guard !finished else { return }
        finished = true
        try? input.close()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            if let temporary { try? FileManager.default.removeItem(at: temporary) }
            throw MediaError(file: name, "ffmpeg failed (exit status \(process.terminationStatus)): \(FFmpeg.errorText(log))")
        }
        try? FileManager.default.removeItem(at: log)
        if let temporary, let destination, rename(temporary.path, destination.path) != 0 {
            throw MediaError(file: destination.path, "cannot move the encoded video into place: \(String(cString: strerror(errno)))")
        }
    }
}
