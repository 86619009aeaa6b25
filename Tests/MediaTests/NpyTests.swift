import BackdropTestSupport
import Datasets
import Foundation
import Torch
import XCTest

final class NpyTests: XCTestCase {
    private func values(_ array: NpyArray) throws -> [MediaFixtures.NpyValue] {
        switch array.values {
        case .strings(let strings): return strings.map { .text($0) }
        case .numeric(let tensor):
            if tensor.dtype == .bool { return try tensor.toArray(Bool.self).map { .flag($0) } }
            return try tensor.toArray(Double.self).map { .number($0) }
        }
    }

    func testReadsVersionsOneToThreeAndEveryDtype() throws {
        let expected = try MediaFixtures.load().npy
        let files: [(String, String)] = [
            ("split_v1", "split"), ("split_v2", "split"), ("unicode_v3", "unicode"), ("bytes_s4", "bytes_s4"),
            ("strings_fortran", "strings_fortran"),
        ] + ["f4", "f8_fortran", "i4_big", "i8", "u1", "b1", "f2", "scalar"].map { ("numeric_\($0)", "numeric_\($0)") }
        for (file, key) in files {
            let array = try NpyArray(contentsOf: TestSupport.fixture("media/\(file).npy"))
            let reference = try XCTUnwrap(expected[key], key)
            XCTAssertEqual(array.shape, reference.shape, file)
            XCTAssertEqual(try values(array), reference.values, file)
        }
        let split = try NpyArray(contentsOf: TestSupport.fixture("media/split_v1.npy"))
        XCTAssertTrue(split.descr.hasPrefix("<U"), split.descr)
        XCTAssertEqual(try split.strings()[1], "17DRP5sb8fy/matterport_skybox_images/0f37bd0737e349de9d536263a4bdd60d_skybox1_sami.jpg")
        XCTAssertEqual(try NpyArray(contentsOf: TestSupport.fixture("media/numeric_i4_big.npy")).tensor().dtype, .int32)
    }

    func testDamagedOrUnsupportedFilesAreNamed() throws {
        for (file, words) in [("object", "object arrays"), ("truncated", "truncated data")] {
            let url = TestSupport.fixture("media/\(file).npy")
            XCTAssertThrowsError(try NpyArray(contentsOf: url)) { error in
                XCTAssertTrue("\(error)".contains(url.path), "\(error)")
                XCTAssertTrue("\(error)".contains(words), "\(error)")
            }
        }
        XCTAssertThrowsError(try NpyArray(data: Data("not numpy".utf8), name: "x.npy")) { XCTAssertTrue("\($0)".hasPrefix("x.npy: ")) }
        XCTAssertThrowsError(try NpyArray(contentsOf: URL(fileURLWithPath: "/nonexistent/train.npy"))) {
            XCTAssertTrue("\($0)".contains("/nonexistent/train.npy"))
        }
        let numeric = try NpyArray(contentsOf: TestSupport.fixture("media/numeric_f4.npy"))
        XCTAssertThrowsError(try numeric.strings(name: "numeric_f4.npy"))
    }

    func testNumpyReadsWhatSwiftWrites() throws {
        _ = try TestSupport.referencePython()
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let strings = ["scan/matterport_skybox_images/abc_skybox0_sami.jpg", "café 🙂", "", "x", "日本", "last"]
        let cases: [(String, () throws -> Void, [String: Any])] = [
            ("strings.npy", { try NpyWriter.write(strings: strings, shape: [3, 2], to: directory.appendingPathComponent("strings.npy")) },
             ["shape": [3, 2], "dtype": "<U\(strings.map { $0.unicodeScalars.count }.max() ?? 0)", "values": strings]),
            ("floats.npy", { try NpyWriter.write(tensor: Tensor([1.5, -2, 3.25, 0] as [Float], shape: [2, 2]),
                                                 to: directory.appendingPathComponent("floats.npy")) },
             ["shape": [2, 2], "dtype": "float32", "values": [1.5, -2, 3.25, 0]]),
            ("ints.npy", { try NpyWriter.write(tensor: Tensor([7, -9] as [Int64]), to: directory.appendingPathComponent("ints.npy")) },
             ["shape": [2], "dtype": "int64", "values": [7, -9]]),
        ]
        for (name, write, expected) in cases {
            try write()
            let expectedURL = directory.appendingPathComponent("\(name).json")
            try JSONSerialization.data(withJSONObject: expected).write(to: expectedURL)
            let (status, output) = try TestSupport.runPythonTool(
                "make_media_fixtures.py", ["--check-npy", directory.appendingPathComponent(name).path, expectedURL.path])
            XCTAssertEqual(status, 0, output)
            // And Swift reads its own files back.
            XCTAssertNoThrow(try NpyArray(contentsOf: directory.appendingPathComponent(name)))
        }
    }
}
