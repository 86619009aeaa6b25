import BackdropTestSupport
import Foundation
import XCTest

@testable import Torch

/// HDF5 through libhdf5, checked against h5py both ways (tools/hdf5_reference.py).
final class HDF5Tests: XCTestCase {
    /// h5py's own dump of a file: dataset → (dtype, shape, values), and root attributes.
    func h5pyDump(_ url: URL) throws -> [String: Any] {
        let run = try TestSupport.runPythonTool("hdf5_reference.py", ["--dump", url.path])
        XCTAssertEqual(run.status, 0, run.output)
        return try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as! [String: Any]
    }

    /// Foundation's JSON parser can be off in the last digit of a double; the values themselves are
    /// float32/float16 exact, so 1e-12 relative is exact for them.
    func assertValues(_ tensor: Tensor, _ expected: Any?, _ message: String, line: UInt = #line) throws {
        let ours = try tensor.to(dtype: .float64).flatten(start: 0, end: -1).toArray(Double.self)
        guard let reference = expected as? [Double], reference.count == ours.count else {
            return XCTFail("\(message): h5py reports \(String(describing: expected))", line: line)
        }
        for (a, b) in zip(ours, reference) where abs(a - b) > 1e-12 * max(1, abs(b)) {
            return XCTFail("\(message): \(a) vs h5py \(b)", line: line)
        }
    }

    func testReadsWhatH5pyWrote() throws {
        let url = TestSupport.fixture("hdf5/h5py_written.h5")
        let file = try HDF5File(url: url)
        XCTAssertEqual(try file.datasetNames, ["f64", "index", "latents/f16", "latents/f32", "pixels"])
        let reference = try h5pyDump(url)
        let datasets = reference["datasets"] as! [String: [String: Any]]
        for (name, expected) in datasets {
            let tensor = try file.read(name)
            XCTAssertEqual(tensor.shape, expected["shape"] as! [Int], name)
            try assertValues(tensor, expected["values"], name)
        }
        XCTAssertEqual(try file.info("latents/f16").dtype, .float16)
        XCTAssertEqual(try file.info("index").dtype, .int64)
        XCTAssertEqual(try file.attribute("prompt_prefix"), "This is one view of a scene. ")
        XCTAssertEqual(try file.attribute("unicode"), "équirectangulaire ✓")
        XCTAssertNil(try file.attribute("absent"))
        // Rows of a chunked, compressed dataset.
        XCTAssertEqual(try file.read("latents/f32", rows: 2, count: 2).shape, [2, 4, 3])
        XCTAssertEqual(try TestSupport.maxAbsDifference(file.read("latents/f32", rows: 2, count: 2),
                                                        file.read("latents/f32").narrow(dim: 0, start: 2, length: 2)), 0)
    }

    func testH5pyReadsWhatWeWrite() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("cache.h5")
        let latents = try Tensor.randn([6, 4, 2, 2], generator: Generator(seed: 1))
        let half = try Tensor.randn([3, 5], generator: Generator(seed: 2)).to(dtype: .float16)
        let file = try HDF5File(creating: url)
        // Written in two row blocks into a chunked, compressed dataset, as a cache builder does.
        try file.createDataset("views/latents", dtype: .float32, shape: [6, 4, 2, 2], chunkRows: 2, compression: 4)
        try file.write("views/latents", rows: latents.narrow(dim: 0, start: 0, length: 4), at: 0)
        try file.write("views/latents", rows: latents.narrow(dim: 0, start: 4, length: 2), at: 4)
        try file.write("half", half)
        try file.write("ids", try Tensor((0..<5).map { Int64($0 * 3) }))
        try file.setAttribute("resolution", "512")
        try file.setAttribute("model_hash", "d41d8cd9")
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path), "the file appears only at commit")
        try file.commit()

        let dump = try h5pyDump(url)
        let datasets = dump["datasets"] as! [String: [String: Any]]
        XCTAssertEqual(datasets["views/latents"]?["shape"] as? [Int], [6, 4, 2, 2])
        XCTAssertEqual(datasets["views/latents"]?["chunks"] as? [Int], [2, 4, 2, 2])
        XCTAssertEqual(datasets["views/latents"]?["compression"] as? String, "gzip")
        try assertValues(latents, datasets["views/latents"]?["values"], "views/latents")
        XCTAssertEqual(datasets["half"]?["dtype"] as? String, "float16")
        try assertValues(half, datasets["half"]?["values"], "half")
        XCTAssertEqual(datasets["ids"]?["dtype"] as? String, "int64")
        XCTAssertEqual((dump["attributes"] as! [String: String])["resolution"], "512")
        XCTAssertEqual(try HDF5File(url: url).attribute("model_hash"), "d41d8cd9")
    }

    func testErrorsNameTheFileAndDataset() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let notHDF5 = directory.appendingPathComponent("notes.h5")
        try Data("plain text".utf8).write(to: notHDF5)
        XCTAssertThrowsError(try HDF5File(url: notHDF5)) { XCTAssertTrue("\($0)".contains("notes.h5"), "\($0)") }
        XCTAssertThrowsError(try HDF5File(url: directory.appendingPathComponent("missing.h5"))) {
            XCTAssertTrue("\($0)".contains("missing.h5"))
        }
        let file = try HDF5File(url: TestSupport.fixture("hdf5/h5py_written.h5"))
        XCTAssertThrowsError(try file.read("nope")) { XCTAssertTrue("\($0)".contains("'nope'"), "\($0)") }
        XCTAssertThrowsError(try file.read("index", rows: 8, count: 5)) { XCTAssertTrue("\($0)".contains("out of range"), "\($0)") }

        let created = try HDF5File(creating: directory.appendingPathComponent("abandoned.h5"))
        try created.write("x", try Tensor.zeros([2]))
        // Never committed: no file at the destination, no temporary left behind once released.
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("abandoned.h5").path))
    }
}
