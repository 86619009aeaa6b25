import BackdropTestSupport
import Foundation
import Media
import Torch
import XCTest

final class VideoTests: XCTestCase {
    /// Three small frames cut from the real astronaut photo.
    private func frames(width: Int = 64, height: Int = 48) throws -> [Tensor] {
        let photo = try MediaTestSupport.astronaut().tensor(.uint8)
        return try (0..<3).map { i in
            try photo.narrow(dim: 1, start: 100 + 40 * i, length: height).narrow(dim: 2, start: 150 + 30 * i, length: width)
                .contiguous()
        }
    }

    private func readAll(_ reader: any VideoReader) throws -> [Tensor] {
        var result: [Tensor] = []
        while let frame = try reader.nextFrame() { result.append(frame) }
        return result
    }

    func testFolderOfFramesRoundTripsExactly() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = try frames()
        let folder = directory.appendingPathComponent("frames")
        let writer = try createVideoWriter(folder, width: 64, height: 48)
        for frame in input { try writer.append(frame) }
        try writer.finish()
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted(),
                       ["frame_000000.png", "frame_000001.png", "frame_000002.png"])
        let reader = try openVideo(folder)
        XCTAssertEqual([reader.width, reader.height], [64, 48])
        let output = try readAll(reader)
        XCTAssertEqual(output.count, 3)
        for (a, b) in zip(input, output) { XCTAssertEqual(try TestSupport.maxAbsDifference(a, b), 0) }
        XCTAssertThrowsError(try writer.append(Tensor.zeros([3, 10, 10], dtype: .uint8))) { error in
            XCTAssertTrue("\(error)".contains("[3, 48, 64]"), "\(error)")
        }
    }

    func testY4MThroughTheCommonInterface() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("clip.y4m")
        let writer = try createVideoWriter(url, width: 64, height: 48, frameRate: 29.97)
        for frame in try frames() { try writer.append(frame) }
        try writer.finish()
        let header = String(decoding: try Data(contentsOf: url).prefix(40), as: UTF8.self)
        XCTAssertTrue(header.hasPrefix("YUV4MPEG2 W64 H48 F30000:1001 "), header)
        let reader = try openVideo(url)
        XCTAssertEqual(reader.frameRate, 30000.0 / 1001, accuracy: 1e-9)
        XCTAssertEqual(try readAll(reader).count, 3)
    }

    /// Frames read through our ffmpeg pipe equal what ffmpeg itself writes as PNG from the same file.
    func testFFmpegDecodeMatchesFFmpegsOwnPNGs() throws {
        try XCTSkipUnless(FFmpeg.isAvailable, "ffmpeg is not installed (make setup installs it)")
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let video = directory.appendingPathComponent("pattern.avi")
        try run("/usr/bin/env", ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=10",
                                 "-frames:v", "4", "-c:v", "mjpeg", video.path])
        let pngs = directory.appendingPathComponent("pngs")
        try FileManager.default.createDirectory(at: pngs, withIntermediateDirectories: true)
        try run("/usr/bin/env", ["ffmpeg", "-v", "error", "-i", video.path, "-pix_fmt", "rgb24", pngs.path + "/%03d.png"])

        let reader = try openVideo(video)
        XCTAssertEqual([reader.width, reader.height], [96, 64])
        XCTAssertEqual(reader.frameRate, 10, accuracy: 1e-9)
        let decoded = try readAll(reader)
        let expected = try readAll(openVideo(pngs))
        XCTAssertEqual(decoded.count, 4)
        XCTAssertEqual(expected.count, 4)
        for (a, b) in zip(decoded, expected) { XCTAssertEqual(try TestSupport.maxAbsDifference(a, b), 0) }
    }

    /// An mp4 written by us and decoded again keeps the picture (H.264 at CRF 18), appears only at
    /// finish(), and an odd size is padded rather than refused.
    func testFFmpegEncodeRoundTrip() throws {
        try XCTSkipUnless(FFmpeg.isAvailable, "ffmpeg is not installed (make setup installs it)")
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("out.mp4")
        let input = try frames(width: 63, height: 48)
        let writer = try createVideoWriter(url, width: 63, height: 48, frameRate: 10)
        for frame in input { try writer.append(frame) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
        try writer.finish()
        let reader = try openVideo(url)
        XCTAssertEqual([reader.width, reader.height], [64, 48])
        let output = try readAll(reader)
        XCTAssertEqual(output.count, 3)
        for (a, b) in zip(input, output) {
            let psnr = try MediaTestSupport.psnr(a.to(dtype: .float32) / 255, b.narrow(dim: 2, start: 0, length: 63).to(dtype: .float32) / 255)
            XCTAssertGreaterThan(psnr, 30, "H.264 round trip: \(psnr) dB")
        }
    }

    func testBadInputsNameTheFile() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let missing = directory.appendingPathComponent("missing.mp4")
        XCTAssertThrowsError(try openVideo(missing)) { XCTAssertTrue("\($0)".contains(missing.path), "\($0)") }
        let empty = directory.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        XCTAssertThrowsError(try openVideo(empty)) { XCTAssertTrue("\($0)".contains("no PNG or JPEG"), "\($0)") }
        if FFmpeg.isAvailable {
            let garbage = directory.appendingPathComponent("garbage.mp4")
            try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 2654435761) }).write(to: garbage)
            XCTAssertThrowsError(try openVideo(garbage)) { XCTAssertTrue("\($0)".contains(garbage.path), "\($0)") }
        }
        XCTAssertThrowsError(try createVideoWriter(directory.appendingPathComponent("x.png"), width: 4, height: 4))
    }

    private func run(_ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "\(arguments.joined(separator: " "))")
    }
}
