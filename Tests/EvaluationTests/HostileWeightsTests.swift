import BackdropTestSupport
import Foundation
import Torch
import XCTest

@testable import Evaluation

/// Weight files a user names are untrusted (docs/security.md): loading one never runs its code and
/// never inflates it without bound. The hostile files come from tools/make_hostile_inputs.py.
final class HostileWeightsTests: XCTestCase {
    var folder: URL!
    var victim: URL!

    override func setUpWithError() throws {
        folder = try TestSupport.temporaryDirectory()
        addTeardownBlock { [folder] in try? FileManager.default.removeItem(at: folder!) }
        victim = folder.appendingPathComponent("victim.txt")
        try Data("precious".utf8).write(to: victim)
        let run = try TestSupport.runPythonTool("make_hostile_inputs.py", [folder.appendingPathComponent("hostile").path, victim.path])
        guard run.status == 0 else {
            XCTFail("tools/make_hostile_inputs.py failed:\n\(run.output)")
            throw XCTSkip("no hostile inputs")
        }
    }

    func hostile(_ name: String) -> URL { folder.appendingPathComponent("hostile/\(name)") }

    /// A TorchScript archive whose `__setstate__` writes into another file: offered as FID Inception
    /// weights, it is refused for its keys and the other file is untouched (LibTorch's loader would
    /// have overwritten its first bytes before any key was checked).
    func testScriptedSetstateIsNeverRun() throws {
        XCTAssertThrowsError(try InceptionV3.load(hostile("scripted_setstate.pt"))) { error in
            XCTAssertTrue("\(error)".contains("scripted_setstate.pt"), "\(error)")
            XCTAssertTrue("\(error)".contains("NVIDIA-layout Inception key"), "\(error)")
        }
        XCTAssertEqual(try String(contentsOf: victim, encoding: .utf8), "precious")
        // Its tensors are still readable as data (its own __getstate__ keeps them by position).
        let tensors = try TorchPickle.loadScriptModuleTensors(hostile("scripted_setstate.pt"))
        XCTAssertEqual(tensors["0"]?.shape, [2, 3, 1, 1])
        XCTAssertEqual(try String(contentsOf: victim, encoding: .utf8), "precious")
    }

    /// A 64 KB archive whose pickle deflates from 64 MiB is refused from its header, before inflating.
    func testZipBombIsRefusedBeforeInflating() throws {
        let before = TestSupport.residentMemory()
        XCTAssertThrowsError(try TorchPickle.load(hostile("inflating_pickle.pth"))) { error in
            XCTAssertTrue("\(error)".contains("inflating_pickle.pth"), "\(error)")
            XCTAssertTrue("\(error)".contains("zip bomb"), "\(error)")
        }
        XCTAssertLessThan(TestSupport.residentMemory() - before, 32 << 20)
    }

    /// The same bomb with a small declared size: inflation stops at the declared size.
    func testZipEntryLyingAboutItsSizeStopsAtTheDeclaredSize() throws {
        XCTAssertThrowsError(try TorchPickle.load(hostile("lying_pickle.pth"))) { error in
            XCTAssertTrue("\(error)".contains("lying_pickle.pth"), "\(error)")
            XCTAssertTrue("\(error)".contains("zip bomb") || "\(error)".contains("past its declared"), "\(error)")
        }
    }
}
