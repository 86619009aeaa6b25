import BackdropTestSupport
import Foundation
import Media
import Torch
import XCTest

final class Y4MTests: XCTestCase {
    func testHeaderAndRoundTripOfARealPhoto() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let photo = try MediaTestSupport.astronaut().tensor(.unit).unsqueeze(0)
        for (w, h) in [(64, 48), (33, 17)] {  // odd sizes: the last chroma row/column averages what it has
            let frame = try F.interpolate(photo, size: IntPair(h, w), mode: .bilinear, antialias: true)[0]
            let url = directory.appendingPathComponent("clip_\(w)x\(h).y4m")
            let writer = try Y4MWriter(url: url, width: w, height: h)
            try writer.write(frame)
            try writer.write(frame.flip(2))
            try writer.write(Tensor.full([3, h, w], 0.25))
            XCTAssertFalse(FileManager.default.fileExists(atPath: url.path), "not visible before finish()")
            try writer.finish()
            let data = try Data(contentsOf: url)
            let header = "YUV4MPEG2 W\(w) H\(h) F30:1 Ip A1:1 C420jpeg\nFRAME\n"
            XCTAssertEqual(String(decoding: data.prefix(header.utf8.count), as: UTF8.self), header)
            let frameBytes = w * h + 2 * ((w + 1) / 2) * ((h + 1) / 2)
            XCTAssertEqual(data.count, header.utf8.count - 6 + 3 * (6 + frameBytes))

            let reader = try Y4MReader(url: url)
            XCTAssertEqual(reader.header, Y4MHeader(width: w, height: h))
            let first = try XCTUnwrap(try reader.nextFrame())
            XCTAssertEqual(first.shape, [3, h, w])
            XCTAssertEqual(first.dtype, .uint8)
            let psnr = try MediaTestSupport.psnr(first.to(dtype: .float32) / 255, frame)
            XCTAssertGreaterThan(psnr, w == 64 ? 30 : 27, "4:2:0 round trip of the photo at \(w)×\(h): \(psnr) dB")
            _ = try reader.nextFrame()
            let flat = try XCTUnwrap(try reader.nextFrame())
            XCTAssertLessThanOrEqual(try (flat.to(dtype: .float32) - 63.75).abs().amax().item(), 1)
            XCTAssertNil(try reader.nextFrame(), "a clean end after the last frame")
        }
    }

    func testYCbCrMatchesPillowsFullRangeConversion() throws {
        let c = try MediaFixtures.load().jpeg.ycbcr
        let rgb = try Tensor(c.rgb.map { UInt8($0) }, shape: [c.height, c.width, 3]).permute(2, 0, 1)
        let reference = try Tensor(c.ycbcr.map { Float($0) }, shape: [c.height, c.width, 3]).permute(2, 0, 1)
        let (y, cb, cr) = try YCbCr.fromRGB(rgb.contiguous(), range: .uint8)
        XCTAssertLessThanOrEqual(try TestSupport.maxAbsDifference(y, reference[0]), 1)
        // Our chroma is the 2×2 mean of the full-resolution chroma (Pillow rounds each pixel first,
        // we round the mean: up to 1.5 apart).
        let chroma = try F.avgPool2d(reference.narrow(dim: 0, start: 1, length: 2).unsqueeze(0), kernel: 2, ceilMode: true)[0]
        XCTAssertLessThanOrEqual(try TestSupport.maxAbsDifference(cb, chroma[0]), 1.5)
        XCTAssertLessThanOrEqual(try TestSupport.maxAbsDifference(cr, chroma[1]), 1.5)
        // Pure colours.
        let red = try YCbCr.fromRGB(Tensor([255, 0, 0] as [UInt8], shape: [3, 1, 1]))
        XCTAssertEqual([try red.y.item(), try red.cb.item(), try red.cr.item()], [76, 85, 255])
    }

    func testLimitedRangeStreamsAreExpanded() throws {
        let url = try TestSupport.temporaryDirectory().appendingPathComponent("limited.y4m")
        var data = Data("YUV4MPEG2 W2 H2 F25:1 Ip A0:0 C420mpeg2 XYSCSS=420MPEG2 XCOLORRANGE=LIMITED\nFRAME\n".utf8)
        data.append(contentsOf: [16, 235, 16, 235, 128, 128])
        try data.write(to: url)
        let reader = try Y4MReader(url: url)
        XCTAssertEqual(reader.header.frameRate.numerator, 25)
        XCTAssertTrue(reader.header.limitedRange)
        let frame = try XCTUnwrap(try reader.nextFrame())
        XCTAssertEqual(try frame[0].toArray(UInt8.self), [0, 255, 0, 255])
    }

    func testDamagedStreamsGiveErrorsNamingTheFile() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("ok.y4m")
        let writer = try Y4MWriter(url: url, width: 8, height: 6)
        try writer.write(Tensor.full([3, 6, 8], 0.5))
        try writer.write(Tensor.full([3, 6, 8], 0.7))
        try writer.finish()
        let data = try Data(contentsOf: url)
        // Cut inside the second frame.
        let cut = directory.appendingPathComponent("cut.y4m")
        try data.prefix(data.count - 10).write(to: cut)
        let reader = try Y4MReader(url: cut)
        XCTAssertNotNil(try reader.nextFrame())
        XCTAssertThrowsError(try reader.nextFrame()) { XCTAssertTrue("\($0)".contains(cut.path), "\($0)") }
        // Bad headers.
        for (name, text) in [("notY4M", "P6\n8 6\n255\n"), ("noSize", "YUV4MPEG2 F30:1\n"), ("c422", "YUV4MPEG2 W8 H6 C422\n"),
                             ("interlaced", "YUV4MPEG2 W8 H6 It\n"), ("empty", "")] {
            let bad = directory.appendingPathComponent("\(name).y4m")
            try Data(text.utf8).write(to: bad)
            XCTAssertThrowsError(try Y4MReader(url: bad), name) { XCTAssertTrue("\($0)".contains(bad.path), "\($0)") }
        }
        // A wrong frame size is refused when writing.
        let wrong = try Y4MWriter(url: directory.appendingPathComponent("wrong.y4m"), width: 8, height: 6)
        XCTAssertThrowsError(try wrong.write(Tensor.zeros([3, 6, 9])))
        XCTAssertThrowsError(try Y4MReader(url: directory.appendingPathComponent("missing.y4m")))
    }
}
