import Foundation
import BackdropTestSupport
import XCTest
@testable import Torch

/// Fixtures come from tools/make_serialization_fixtures.py (PyTorch 1.13, safetensors 0.4.3);
/// expected.json records every tensor's dtype, shape, strides, offset and bytes.
final class SerializationTests: XCTestCase {
    var temporary: URL!

    override func setUpWithError() throws {
        temporary = FileManager.default.temporaryDirectory.appendingPathComponent("backdrop-serialization-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: temporary)
    }

    func fixture(_ name: String) -> URL { TestSupport.fixture("serialization/\(name)") }

    func expected(_ file: String) throws -> [String: Any] {
        let data = try Data(contentsOf: fixture("expected.json"))
        let all = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try XCTUnwrap(all[file] as? [String: Any], "expected.json has no entry for \(file)")
    }

    func specs(_ file: String, _ field: String = "tensors") throws -> [String: [String: Any]] {
        try XCTUnwrap(try expected(file)[field] as? [String: [String: Any]])
    }

    /// dtype, shape and bytes always; strides and storage offset when the file records a layout.
    func assertTensor(_ tensor: Tensor?, matches spec: [String: Any], layout: Bool = false, _ label: String,
                      file: StaticString = #filePath, line: UInt = #line) throws {
        let tensor = try XCTUnwrap(tensor, "\(label): missing", file: file, line: line)
        XCTAssertEqual(tensor.dtype.description, spec["dtype"] as? String, "\(label): dtype", file: file, line: line)
        XCTAssertEqual(tensor.shape, spec["shape"] as? [Int], "\(label): shape", file: file, line: line)
        XCTAssertEqual(try tensor.rawBytes().hex, spec["hex"] as? String, "\(label): bytes", file: file, line: line)
        if layout {
            XCTAssertEqual(tensor.strides, spec["strides"] as? [Int], "\(label): strides", file: file, line: line)
            XCTAssertEqual(tensor.storageOffset, spec["offset"] as? Int, "\(label): storage offset", file: file, line: line)
        }
    }

    func assertThrows(_ expression: @autoclosure () throws -> some Any, containing parts: [String],
                      file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try expression(), file: file, line: line) { error in
            let message = (error as? TorchError)?.message ?? "\(error)"
            for part in parts {
                XCTAssertTrue(message.contains(part), "error '\(message)' does not mention '\(part)'", file: file, line: line)
            }
        }
    }

    // MARK: Safetensors

    func testSafetensorsWrittenByPythonReadExactly() throws {
        let file = try SafetensorsFile(url: fixture("dtypes.safetensors"))
        let specs = try specs("dtypes.safetensors")
        XCTAssertEqual(file.names, specs.keys.sorted())
        XCTAssertEqual(file.metadata, try expected("dtypes.safetensors")["metadata"] as? [String: String])
        XCTAssertEqual(file.info("bf16")?.dtype, .bfloat16)
        XCTAssertEqual(file.info("bf16")?.shape, [2, 2])
        XCTAssertEqual(file.info("scalar")?.shape, [])
        for (name, spec) in specs { try assertTensor(try file.tensor(name), matches: spec, name) }
        XCTAssertEqual(try file.tensor("i64").toArray(Int64.self), [0, -1, 1 << 40, -(1 << 62)])
        XCTAssertEqual(try file.tensor("bool").toArray(Bool.self), [true, false, true])
        XCTAssertEqual(try file.tensor("f16").toArray(Float.self)[2], 65504)
        XCTAssertEqual(try file.loadAll().count, specs.count)
        XCTAssertEqual(try SafetensorsFile(url: fixture("no_metadata.safetensors")).metadata, [:])
        assertThrows(try file.tensor("missing"), containing: ["dtypes.safetensors", "missing"])
    }

    func testSafetensorsRoundTripInSwift() throws {
        var tensors = try SafetensorsFile(url: fixture("dtypes.safetensors")).loadAll()
        let matrix = try Tensor((0..<6).map(Float.init), shape: [2, 3])
        tensors["transposed"] = try matrix.transpose(0, 1)  // written contiguously
        let metadata = ["format": "pt", "quote\"and\\slash": "tab\tnewline\n\u{01} é 雪"]
        let url = temporary.appendingPathComponent("round.safetensors")
        try Safetensors.save(tensors, metadata: metadata, to: url)

        let back = try SafetensorsFile(url: url)
        XCTAssertEqual(back.metadata, metadata)
        XCTAssertEqual(back.names, tensors.keys.sorted())
        for (name, tensor) in tensors {
            let read = try back.tensor(name)
            XCTAssertEqual(read.dtype, tensor.dtype, name)
            XCTAssertEqual(read.shape, tensor.shape, name)
            XCTAssertEqual(try read.rawBytes(), try tensor.rawBytes(), name)
        }
        XCTAssertEqual(try back.tensor("transposed").toArray(Float.self), [0, 3, 1, 4, 2, 5])
        // Header padded to 8 bytes; no temporary file left behind.
        let data = try Data(contentsOf: url)
        XCTAssertEqual(data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) } % 8, 0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: temporary.path), ["round.safetensors"])
        // Overwriting replaces the file.
        try Safetensors.save(["x": try Tensor([Int32(7)])], to: url)
        XCTAssertEqual(try Safetensors.load(url)["x"]?.toArray(Int32.self), [7])
    }

    func testSafetensorsWrittenBySwiftReadByPython() throws {
        let files: [String: [String: Tensor]] = [
            "dtypes.safetensors": try SafetensorsFile(url: fixture("dtypes.safetensors")).loadAll(),
            "swift_made.safetensors": [
                "weight": try Tensor((0..<12).map { Float($0) * 0.5 }, shape: [3, 4]).transpose(0, 1),
                "half": try Tensor([Float(1), -2, 3]).to(dtype: .float16),
                "bf16": try Tensor([Float(0.1), 1e20]).to(dtype: .bfloat16),
                "steps": try Tensor([Int64(1) << 50, -1]),
                "mask": try Tensor([true, false]),
                "empty": try Tensor([Float](), shape: [0, 2]),
            ],
        ]
        let metadata: [String: [String: String]] = ["dtypes.safetensors": ["format": "pt", "k\"ey": "va\nlue é"], "swift_made.safetensors": [:]]
        var expected: [String: Any] = [:]
        for (file, tensors) in files {
            try Safetensors.save(tensors, metadata: metadata[file], to: temporary.appendingPathComponent(file))
            var specs: [String: Any] = [:]
            for (name, t) in tensors {
                specs[name] = ["dtype": t.dtype.description, "shape": t.shape, "hex": try t.rawBytes().hex]
            }
            expected[file] = ["metadata": metadata[file] ?? [:], "tensors": specs]
        }
        try JSONSerialization.data(withJSONObject: expected).write(to: temporary.appendingPathComponent("expected.json"))

        let python = try TestSupport.runPythonTool("make_serialization_fixtures.py", ["--check-swift", temporary.path])
        XCTAssertEqual(python.status, 0, "Python check failed:\n\(python.output)")
    }

    /// Writes an 8-byte length (the header's own unless `length` is given), the header and `data`.
    func makeSafetensors(_ name: String, header: String, data: Data = Data(), length: UInt64? = nil) throws -> URL {
        let json = Data(header.utf8)
        var bytes = Data((0..<8).map { UInt8(truncatingIfNeeded: (length ?? UInt64(json.count)) >> (8 * $0)) })
        bytes += json + data
        let url = temporary.appendingPathComponent(name)
        try bytes.write(to: url)
        return url
    }

    func testSafetensorsErrorsNameFileAndKey() throws {
        let short = temporary.appendingPathComponent("short.safetensors")
        try Data([1, 2, 3]).write(to: short)
        assertThrows(try SafetensorsFile(url: short), containing: ["short.safetensors"])
        assertThrows(try SafetensorsFile(url: temporary.appendingPathComponent("absent.safetensors")), containing: ["absent.safetensors"])

        let huge = try makeSafetensors("huge.safetensors", header: "{}", length: 1 << 40)
        assertThrows(try SafetensorsFile(url: huge), containing: ["huge.safetensors", "absurd"])
        let past = try makeSafetensors("past.safetensors", header: "{}", length: 1000)
        assertThrows(try SafetensorsFile(url: past), containing: ["past.safetensors", "1000"])
        let badJSON = try makeSafetensors("bad.safetensors", header: "{\"w\": [1, 2")
        assertThrows(try SafetensorsFile(url: badJSON), containing: ["bad.safetensors", "JSON"])

        let outside = try makeSafetensors("outside.safetensors", header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: Data(count: 4))
        assertThrows(try SafetensorsFile(url: outside), containing: ["outside.safetensors", "'w'"])
        let mismatch = try makeSafetensors("mismatch.safetensors", header: #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: Data(count: 8))
        assertThrows(try SafetensorsFile(url: mismatch), containing: ["mismatch.safetensors", "'w'"])
        let overlap = try makeSafetensors("overlap.safetensors", header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[2],"data_offsets":[4,12]}}"#, data: Data(count: 12))
        assertThrows(try SafetensorsFile(url: overlap), containing: ["overlap.safetensors", "'a'", "'b'"])
        let unknown = try makeSafetensors("unknown.safetensors", header: #"{"q":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}}"#, data: Data(count: 1))
        assertThrows(try SafetensorsFile(url: unknown), containing: ["unknown.safetensors", "'q'", "Q7"])
        let negative = try makeSafetensors("negative.safetensors", header: #"{"n":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}"#)
        assertThrows(try SafetensorsFile(url: negative), containing: ["negative.safetensors", "'n'"])
        let badMetadata = try makeSafetensors("meta.safetensors", header: #"{"__metadata__":{"n":1}}"#)
        assertThrows(try SafetensorsFile(url: badMetadata), containing: ["meta.safetensors", "__metadata__"])

        // Listed but not loadable: a dtype LibTorch 1.13 lacks.
        let u16 = try makeSafetensors("u16.safetensors", header: #"{"u":{"dtype":"U16","shape":[1],"data_offsets":[0,2]}}"#, data: Data(count: 2))
        let file = try SafetensorsFile(url: u16)
        XCTAssertEqual(file.info("u")?.code, "U16")
        assertThrows(try file.tensor("u"), containing: ["u16.safetensors", "'u'", "U16"])
        assertThrows(try Safetensors.save(["c": try Tensor.zeros([1], dtype: .complex64)], to: temporary.appendingPathComponent("c.safetensors")),
                     containing: ["c.safetensors", "'c'"])
    }

    // MARK: torch.save files

    func testStateDictOfAModule() throws {
        let specs = try specs("state_dict.pt")
        let tensors = try TorchPickle.loadStateDict(fixture("state_dict.pt"))
        XCTAssertEqual(Set(tensors.keys), Set(specs.keys))
        for (name, spec) in specs { try assertTensor(tensors[name], matches: spec, layout: true, name) }
        // The OrderedDict keeps the module's order.
        let value = try TorchPickle.load(fixture("state_dict.pt"))
        XCTAssertEqual(value.entries?.compactMap(\.key.string), try expected("state_dict.pt")["keys"] as? [String])
    }

    func testDtypesAndPythonValues() throws {
        let value = try TorchPickle.load(fixture("dtypes.pt"))  // written through a buffer: prefix "archive"
        let tensors = value.tensors()
        for (name, spec) in try specs("dtypes.pt") { try assertTensor(tensors[name], matches: spec, layout: true, name) }
        XCTAssertEqual(value["name"]?.string, "tiny")
        XCTAssertEqual(value["n"]?.int, 7)
        XCTAssertEqual(value["neg"]?.int, -3)
        XCTAssertEqual(value["big"]?.int, 1 << 40)
        XCTAssertEqual(value["f"]?.double, 0.25)
        XCTAssertEqual(value["flag"]?.bool, true)
        XCTAssertEqual(value["off"]?.bool, false)
        XCTAssertEqual(value["none"]?.isNone, true)
        XCTAssertEqual(value["list"]?.array?.count, 3)
        XCTAssertEqual(value["list"]?[1]?.double, 2.5)
        XCTAssertEqual(value["list"]?[2]?.string, "a")
        XCTAssertEqual(value["tuple"]?.array?.compactMap(\.int), [1, 2])
        XCTAssertEqual(value["bytes"]?.bytes, Data([0x61, 0x62, 0]))
        XCTAssertEqual(value["size"]?.array?.compactMap(\.int), [2, 3])
        XCTAssertEqual(value["device"]?.object?.className, "torch.device")
        XCTAssertEqual(value["device"]?.object?.args.first?.string, "cpu")
        XCTAssertEqual(try value["param"]?.tensor?.toArray(Float.self), [1, 2])
    }

    func testTensorsSharingOneStorage() throws {
        let value = try TorchPickle.load(fixture("shared.pt"))
        let base = try XCTUnwrap(value["base"]?.tensor), row = try XCTUnwrap(value["row"]?.tensor)
        let col = try XCTUnwrap(value["col"]?.tensor)
        XCTAssertTrue(row.sharesStorage(with: base))
        XCTAssertTrue(col.sharesStorage(with: base))
        XCTAssertEqual(col.strides, [4])
        XCTAssertEqual(col.storageOffset, 2)
        XCTAssertEqual(try col.toArray(Float.self), [2, 6, 10])
        for (name, spec) in try specs("shared.pt") { try assertTensor(value[name]?.tensor, matches: spec, layout: true, name) }
    }

    func testNonContiguousViews() throws {
        let tensors = try TorchPickle.loadStateDict(fixture("noncontiguous.pt"))
        for (name, spec) in try specs("noncontiguous.pt") { try assertTensor(tensors[name], matches: spec, layout: true, name) }
        let t = try XCTUnwrap(tensors["t"])
        XCTAssertFalse(t.isContiguous)
        XCTAssertEqual(try t.toArray(Double.self).prefix(5), [0, 5, 10, 15, 1])
        XCTAssertEqual(try tensors["strided"]?.toArray(Double.self), [1, 3, 11, 13])
    }

    func testProtocol4AndRecursiveList() throws {
        let value = try TorchPickle.load(fixture("protocol4.pt"))
        for (name, spec) in try specs("protocol4.pt") { try assertTensor(value.tensors()[name], matches: spec, layout: true, name) }
        let loop = try XCTUnwrap(value["loop"]?.array)
        XCTAssertEqual(loop.first?.int, 1)
        XCTAssertEqual(loop.last?.object?.className, "backdrop.RecursiveReference")
    }

    func testLightningCheckpoint() throws {
        let url = fixture("lightning.ckpt")
        let stateDict = try TorchPickle.loadStateDict(url)
        let expectedStateDict = try specs("lightning.ckpt", "state_dict")
        XCTAssertEqual(Set(stateDict.keys), Set(expectedStateDict.keys))
        for (name, spec) in expectedStateDict { try assertTensor(stateDict[name], matches: spec, layout: true, name) }

        let ckpt = try TorchPickle.load(url)
        XCTAssertEqual(ckpt["epoch"]?.int, 3)
        XCTAssertEqual(ckpt["global_step"]?.int, 10)
        let hparams = try XCTUnwrap(ckpt["hyper_parameters"]?.object)
        XCTAssertEqual(hparams.className, "pytorch_lightning.utilities.parsing.AttributeDict")
        XCTAssertEqual(ckpt["hyper_parameters"]?["lr"]?.double, 1e-3)
        XCTAssertEqual(ckpt["hyper_parameters"]?["betas"]?.array?.compactMap(\.double), [0.9, 0.999])
        XCTAssertEqual(ckpt["hyper_parameters"]?["args"]?.object?.className, "argparse.Namespace")
        XCTAssertEqual(ckpt["hyper_parameters"]?["args"]?["depth"]?.int, 2)
        let callback = try XCTUnwrap(ckpt["callbacks"]?["ModelCheckpoint"])
        let custom = try XCTUnwrap(callback["custom"]?.object)
        XCTAssertEqual(custom.className, "lightning_like.callbacks.CustomThing")
        XCTAssertEqual(callback["custom"]?["n"]?.int, 3)
        XCTAssertEqual(callback["np_score"]?.double, 0.75)
        let all = ckpt.tensors()
        for (name, spec) in try specs("lightning.ckpt") { try assertTensor(all[name], matches: spec, layout: true, name) }
        XCTAssertNotNil(all["optimizer_states.0.state.0.exp_avg"])
        XCTAssertEqual(Set(try TorchPickle.loadStateDict(url, key: "optimizer_states.0.state").keys), ["0.step", "0.exp_avg"])
        assertThrows(try TorchPickle.loadStateDict(url, key: "nope"), containing: ["lightning.ckpt", "nope"])
    }

    func testMaliciousPicklesAreRefusedNotRun() throws {
        let marker = "/tmp/backdrop_pwned"
        try? FileManager.default.removeItem(atPath: marker)
        assertThrows(try TorchPickle.load(fixture("malicious_system.pt")), containing: ["malicious_system.pt", "system"])
        assertThrows(try TorchPickle.loadStateDict(fixture("malicious_system.pt")), containing: ["system"])
        assertThrows(try TorchPickle.load(fixture("malicious_eval.pt")), containing: ["malicious_eval.pt", "eval"])
        assertThrows(try TorchPickle.load(fixture("unknown_function.pt")), containing: ["some_package.helpers.helper_function"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker))
    }

    func testUnreadableFilesGiveClearErrors() throws {
        assertThrows(try TorchPickle.load(fixture("legacy.pt")), containing: ["legacy.pt", "_use_new_zipfile_serialization=True"])
        assertThrows(try TorchPickle.load(fixture("dtypes.safetensors")), containing: ["dtypes.safetensors", "not a torch.save file"])
        assertThrows(try TorchPickle.load(temporary.appendingPathComponent("absent.pt")), containing: ["absent.pt"])
        let truncated = temporary.appendingPathComponent("truncated.pt")
        try Data(try Data(contentsOf: fixture("state_dict.pt")).prefix(600)).write(to: truncated)
        assertThrows(try TorchPickle.load(truncated), containing: ["truncated.pt"])
        // A flipped bit in data.pkl is caught by its CRC-32.
        let program = try storedEntry("state_dict/data.pkl", in: fixture("state_dict.pt"))
        var bytes = try Data(contentsOf: fixture("state_dict.pt"))
        bytes[program.startIndex + 40] ^= 0x01
        let corrupt = temporary.appendingPathComponent("state_dict.pt")
        try bytes.write(to: corrupt)
        assertThrows(try TorchPickle.load(corrupt), containing: ["state_dict.pt", "corrupt"])
    }

    func testUnpicklerOnHandWrittenPrograms() throws {
        func run(_ bytes: [UInt8]) throws -> PickleValue {
            let unpickler = Unpickler(Data(bytes), context: "test.pkl") { _, _, _ in throw TorchError("no storages") }
            return try unpickler.load()
        }
        // PROTO 2, EMPTY_LIST, MARK, LONG1 -2^63, BINFLOAT 1.5, SHORT_BINBYTES "x", APPENDS, STOP
        let list = try run([0x80, 2, 0x5D, 0x28, 0x8A, 8, 0, 0, 0, 0, 0, 0, 0, 0x80,
                            0x47, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0, 0x43, 1, 0x78, 0x65, 0x2E])
        XCTAssertEqual(list.array?.first?.int, Int.min)
        XCTAssertEqual(list[1]?.double, 1.5)
        XCTAssertEqual(list[2]?.bytes, Data("x".utf8))
        // A 9-byte integer beyond Int64 is kept, not truncated.
        XCTAssertEqual(try run([0x80, 2, 0x8A, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x2E]).object?.className, "builtins.int")
        // GLOBAL 'os system' is refused before anything could call it.
        assertThrows(try run([0x80, 2] + Array("cos\nsystem\n".utf8) + [0x2E]), containing: ["test.pkl", "os.system"])
        assertThrows(try run([0x80, 2] + Array("cbuiltins\ngetattr\n".utf8) + [0x2E]), containing: ["builtins.getattr"])
        // Truncated and malformed programs throw.
        assertThrows(try run([0x80, 2, 0x58, 0xFF, 0xFF, 0, 0]), containing: ["test.pkl", "truncated"])
        assertThrows(try run([0x80, 2, 0x73]), containing: ["test.pkl"])
        assertThrows(try run([0x80, 2, 0xFF]), containing: ["opcode 0xff"])
        // 100 000 nested tuples: refused by depth, and torn down without recursing.
        assertThrows(try run([0x80, 2, 0x4E] + Array(repeating: 0x85, count: 100_000) + [0x2E]), containing: ["levels deep"])
        // x = (x, x) forty times: a billion-laughs expansion, refused by size.
        assertThrows(try run([0x80, 2, 0x4E] + Array([[UInt8]](repeating: [0x32, 0x86], count: 40).joined()) + [0x2E]), containing: ["expands"])
    }

    /// The stored (uncompressed) bytes of the zip entry `name`, found through the central
    /// directory (PyTorch's writer puts sizes in data descriptors, not local headers).
    func storedEntry(_ name: String, in url: URL) throws -> Data {
        let zip = try Data(contentsOf: url)
        func le(_ at: Int, _ n: Int) -> Int { (0..<n).reduce(0) { $0 | Int(zip[at + $1]) << (8 * $1) } }
        var offset = 0
        while let header = zip.range(of: Data([0x50, 0x4B, 0x01, 0x02]), in: offset..<zip.count) {
            let h = header.lowerBound
            let nameLength = le(h + 28, 2)
            if zip[(h + 46)..<(h + 46 + nameLength)] == Data(name.utf8) {
                let local = le(h + 42, 4)
                let start = local + 30 + le(local + 26, 2) + le(local + 28, 2)
                return zip[start..<(start + le(h + 20, 4))]
            }
            offset = h + 4
        }
        throw TorchError("no entry \(name) in \(url.lastPathComponent)")
    }

    /// Random byte edits of real files must end in a value or a thrown error, never a crash.
    func testCorruptedInputsNeverCrash() throws {
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func random(_ n: Int) -> Int {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int((seed >> 33) % UInt64(n))
        }
        let programs = try [("state_dict.pt", "state_dict/data.pkl"), ("lightning.ckpt", "lightning/data.pkl"),
                            ("protocol4.pt", "protocol4/data.pkl")].map { try storedEntry($0.1, in: fixture($0.0)) }
        for program in programs {
            for _ in 0..<300 {
                var bytes = [UInt8](program)
                for _ in 0...random(4) { bytes[random(bytes.count)] = UInt8(random(256)) }
                if random(4) == 0 { bytes.removeLast(random(bytes.count)) }
                let unpickler = Unpickler(Data(bytes), context: "fuzz") { _, dtype, numel in
                    guard numel < 1 << 20 else { throw TorchError("too big") }
                    return try Tensor.zeros([numel], dtype: dtype)
                }
                _ = try? unpickler.load()
            }
        }
        let original = try Data(contentsOf: fixture("dtypes.safetensors"))
        let url = temporary.appendingPathComponent("fuzz.safetensors")
        for _ in 0..<300 {
            var bytes = [UInt8](original)
            for _ in 0...random(3) { bytes[random(min(bytes.count, 700))] = UInt8(random(256)) }
            try Data(bytes).write(to: url)
            if let file = try? SafetensorsFile(url: url) { for name in file.names { _ = try? file.tensor(name) } }
        }
    }
}

fileprivate extension Data {
    var hex: String { map { String(format: "%02x", $0) }.joined() }
}
