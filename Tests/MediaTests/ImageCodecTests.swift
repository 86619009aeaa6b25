import BackdropTestSupport
import Datasets
import Foundation
import Media
import Torch
import XCTest

/// Tests/Fixtures/media/expected.json (tools/make_media_fixtures.py).
struct MediaFixtures: Decodable {
    struct PNGCase: Decodable { let width, height, channels, bitDepth: Int; let pixels: [Int] }
    struct JPEGCase: Decodable { let file: String; let width, height, channels: Int; let pixels: [Int] }
    struct YCbCrCase: Decodable { let width, height: Int; let rgb, ycbcr: [Int] }
    struct JPEGs: Decodable {
        let baseline, progressive, gray: JPEGCase
        let ycbcr: YCbCrCase
    }
    struct NpyCase: Decodable { let shape: [Int]; let values: [NpyValue] }
    enum NpyValue: Decodable, Equatable {
        case number(Double), text(String), flag(Bool)
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .flag(b) } else if let d = try? c.decode(Double.self) {
                self = .number(d)
            } else { self = .text(try c.decode(String.self)) }
        }
    }
    let png: [String: PNGCase]
    let jpeg: JPEGs
    let npy: [String: NpyCase]

    static func load() throws -> MediaFixtures {
        try JSONDecoder().decode(MediaFixtures.self, from: Data(contentsOf: TestSupport.fixture("media/expected.json")))
    }
}

final class ImageCodecTests: XCTestCase {
    func testDecodesEveryPNGLayout() throws {
        let fixtures = try MediaFixtures.load()
        XCTAssertEqual(fixtures.png.count, 17)
        for (name, expected) in fixtures.png.sorted(by: { $0.key < $1.key }) {
            let image = try Image(contentsOf: TestSupport.fixture("media/\(name).png"))
            XCTAssertEqual([image.width, image.height, image.channels, image.bitDepth],
                           [expected.width, expected.height, expected.channels, expected.bitDepth], name)
            switch image.samples {
            case .uint8(let values): XCTAssertEqual(values.map(Int.init), expected.pixels, name)
            case .uint16(let values): XCTAssertEqual(values.map(Int.init), expected.pixels, name)
            }
        }
    }

    func testPNGRoundTripsEveryLayout() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var g = SplitMix64(seed: 5)
        for channels in 1...4 {
            for depth in [8, 16] {
                let (w, h) = (13, 6)
                let image = depth == 8
                    ? try Image(width: w, height: h, channels: channels, pixels: (0..<(w * h * channels)).map { _ in UInt8(g.next() & 0xFF) })
                    : try Image(width: w, height: h, channels: channels, pixels16: (0..<(w * h * channels)).map { _ in UInt16(g.next() & 0xFFFF) })
                let url = directory.appendingPathComponent("image_\(channels)_\(depth).png")
                try image.write(to: url)
                XCTAssertEqual(try Image(contentsOf: url), image, "\(channels) channels, \(depth) bits")
            }
        }
        // Atomic writes leave no temporary files behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix(".") }, [])
    }

    func testJPEGDecodingMatchesPillow() throws {
        let fixtures = try MediaFixtures.load()
        for expected in [fixtures.jpeg.baseline, fixtures.jpeg.progressive, fixtures.jpeg.gray] {
            let image = try Image(contentsOf: TestSupport.fixture("media/\(expected.file)"))
            XCTAssertEqual([image.width, image.height, image.channels, image.bitDepth],
                           [expected.width, expected.height, expected.channels, 8], expected.file)
            // Both libjpeg-turbo with its default (islow) IDCT and fancy upsampling: identical pixels.
            XCTAssertEqual(image.pixels8.map(Int.init), expected.pixels, expected.file)
        }
    }

    func testJPEGRoundTripOfARealPhoto() throws {
        let photo = try MediaTestSupport.astronaut()
        XCTAssertEqual([photo.width, photo.height, photo.channels], [512, 512, 3])
        let decoded = try Image(jpegData: photo.jpegData(quality: 95))
        let psnr = try MediaTestSupport.psnr(decoded.tensor(), photo.tensor())
        XCTAssertGreaterThan(psnr, 36, "JPEG q95 of the astronaut: \(psnr) dB")
        // Gray JPEGs, and images with alpha (dropped) encode too.
        let gray = try Image(tensor: photo.tensor().mean(dims: [0], keepDim: true))
        XCTAssertEqual(try Image(jpegData: gray.jpegData()).channels, 1)
        let rgba = try Image(tensor: Tensor.cat([photo.tensor(), Tensor.ones([1, 512, 512])]))
        XCTAssertEqual(try Image(jpegData: rgba.jpegData()).channels, 3)
    }

    func testTensorConversions() throws {
        let image = try Image(width: 3, height: 2, channels: 3, pixels: (0..<18).map { UInt8($0 * 15) })
        let bytes = try image.tensor(.uint8)
        XCTAssertEqual(bytes.shape, [3, 2, 3])
        XCTAssertEqual(bytes.dtype, .uint8)
        XCTAssertEqual(try bytes[0, 0].toArray(UInt8.self), [0, 45, 90], "channel-first: red of the first row")
        XCTAssertEqual(try image.tensor(.unit).amax().item(), 1, accuracy: 1e-6)
        XCTAssertEqual(try image.tensor(.signed).amin().item(), -1, accuracy: 1e-6)
        for range in [PixelRange.uint8, .unit, .signed] {
            XCTAssertEqual(try Image(tensor: image.tensor(range), range: range), image, "\(range)")
        }
        // Out-of-range floats are clamped; 16-bit round trips through float exactly.
        let clamped = try Image(tensor: Tensor([-0.5, 0.5, 2] as [Float], shape: [1, 1, 3]))
        XCTAssertEqual(clamped.pixels8, [0, 128, 255])
        let deep = try Image(width: 2, height: 1, channels: 1, pixels16: [1, 65000])
        XCTAssertEqual(try Image(tensor: deep.tensor(.unit), bitDepth: 16), deep)
        XCTAssertEqual(deep.pixels8, [0, 253])
        // Gray → RGB replicates; alpha is dropped.
        let ga = try Image(width: 1, height: 1, channels: 2, pixels: [7, 9])
        XCTAssertEqual(ga.rgb8().pixels8, [7, 7, 7])
        XCTAssertThrowsError(try Image(tensor: Tensor.zeros([5, 2, 2])))
    }

    // MARK: Damaged files

    func testTruncatedAndCorruptFilesGiveErrorsNamingTheFile() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let photo = try MediaTestSupport.astronaut()
        let small = try Image(tensor: F.interpolate(photo.tensor().unsqueeze(0), size: 96, mode: .bilinear,
                                                    antialias: true)[0])
        let files: [(String, Data)] = [("photo.png", try small.pngData()), ("photo.jpg", try small.jpegData(quality: 90))]
        var g = SplitMix64(seed: 11)
        for (name, data) in files {
            // Truncation anywhere is an error that names the file.
            for fraction in [0.0, 0.001, 0.05, 0.3, 0.6, 0.95] {
                let cut = data.prefix(Int(Double(data.count) * fraction))
                try assertFails(cut, directory.appendingPathComponent("cut_\(fraction)_\(name)"))
            }
            try assertFails(data.dropLast(1), directory.appendingPathComponent("minus1_\(name)"))
            // Single bit flips: never a crash; an error must name the file. PNG's CRCs catch them all.
            var detected = 0
            let flips = 120
            for trial in 0..<flips {
                var bytes = [UInt8](data)
                let position = Int(g.next() % UInt64(bytes.count))
                bytes[position] ^= UInt8(1 << (g.next() % 8))
                let url = directory.appendingPathComponent("flip\(trial)_\(name)")
                try Data(bytes).write(to: url)
                do {
                    let image = try Image(contentsOf: url)
                    XCTAssertEqual(image.width * image.height > 0, true)
                } catch let error as MediaError {
                    detected += 1
                    XCTAssertTrue(error.description.contains(url.path), "\(error)")
                }
            }
            print("\(name): \(detected) of \(flips) single-bit flips detected")
            if name.hasSuffix(".png") { XCTAssertGreaterThanOrEqual(detected, flips * 95 / 100) }
        }
        // Not an image, empty, missing.
        try assertFails(Data("hello".utf8), directory.appendingPathComponent("text.png"))
        try assertFails(Data(), directory.appendingPathComponent("empty.jpg"))
        let missing = directory.appendingPathComponent("missing.png")
        XCTAssertThrowsError(try Image(contentsOf: missing)) { XCTAssertTrue("\($0)".contains(missing.path)) }
    }

    private func assertFails(_ data: Data, _ url: URL, line: UInt = #line) throws {
        try data.write(to: url)
        XCTAssertThrowsError(try Image(contentsOf: url), line: line) { error in
            XCTAssertTrue(error is MediaError, line: line)
            XCTAssertTrue("\(error)".contains(url.path), "\(error)", line: line)
        }
    }
}
