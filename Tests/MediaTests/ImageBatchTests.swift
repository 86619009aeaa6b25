import BackdropTestSupport
import Foundation
import Media
import Torch
import XCTest

/// `Tensor.writeImages`: a batch of images to files, as `backdrop generate` writes its prompts' images.
final class ImageBatchTests: XCTestCase {
    func testOneImageGoesToTheFileAndSeveralAreNumberedBesideIt() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("out.png")
        XCTAssertEqual(batchImageFiles(out, count: 1), [out])
        XCTAssertEqual(batchImageFiles(folder.appendingPathComponent("out"), count: 2).map(\.lastPathComponent), ["out-0.png", "out-1.png"])

        let batch = try Tensor.randint(0, 256, [2, 3, 5, 7], dtype: .uint8, generator: Generator(seed: 1))
        let files = try batch.writeImages(to: out, range: .uint8)
        XCTAssertEqual(files.map(\.lastPathComponent), ["out-0.png", "out-1.png"])
        for (index, file) in files.enumerated() {
            let read = try Image(contentsOf: file).tensor(.uint8)
            XCTAssertEqual(try TestSupport.maxAbsDifference(read, batch.select(dim: 0, index: index)), 0, file.lastPathComponent)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))

        XCTAssertEqual(try batch.narrow(dim: 0, start: 1, length: 1).writeImages(to: out, range: .uint8), [out])
        XCTAssertEqual(try TestSupport.maxAbsDifference(Image(contentsOf: out).tensor(.uint8), batch.select(dim: 0, index: 1)), 0)
        XCTAssertThrowsError(try batch.select(dim: 0, index: 0).writeImages(to: out)) { XCTAssertTrue("\($0)".contains("[N, C, H, W]")) }
    }
}
