import BackdropTestSupport
import Foundation
import Parity
import Torch
import XCTest

/// Every committed case in Tests/Fixtures/parity through the Parity module (new cases are picked
/// up without touching this file), and the harness's own failure reporting.
final class ParityCaseTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        Runtime.threads = 2
    }

    /// The committed cases (Tests/Fixtures/parity), except that a case of the same name in
    /// `$BACKDROP_PARITY_CASES` takes the place of a committed one. `make test-libtorch2` points it at
    /// the cases the unchanged generator wrote with PyTorch 2.15, so Backdrop on a LibTorch is held to
    /// the reference on that same LibTorch (docs/libtorch.md#the-reference-on-libtorch-215).
    static func cases() throws -> [URL] {
        let committed = Parity.cases(in: TestSupport.fixture("parity"))
        guard let path = ProcessInfo.processInfo.environment["BACKDROP_PARITY_CASES"], !path.isEmpty else {
            return committed
        }
        let regenerated = Parity.cases(in: URL(fileURLWithPath: path))
        guard !regenerated.isEmpty else { throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: path]) }
        let byName = Dictionary(uniqueKeysWithValues: regenerated.map { ($0.lastPathComponent, $0) })
        return committed.map { byName[$0.lastPathComponent] ?? $0 }
    }

    func testEveryCommittedCasePasses() throws {
        let cases = try Self.cases()
        XCTAssertGreaterThanOrEqual(cases.count, 15, "committed parity cases are missing")
        for url in cases {
            let report = Parity.run(url)
            for t in report.tensors {
                print(String(format: "parity %@/%@ %@ max-abs %.3e max-rel %.3e %@", report.name, t.name,
                             "\(t.expectedShape)", t.maxAbs, t.maxRel, t.passed ? "PASS" : "FAIL"))
                XCTAssertTrue(t.passed, "\(report.name)/\(t.name): max-abs \(t.maxAbs) > atol \(report.atol) + rtol \(report.rtol)·max|exp| \(t.message ?? "")")
            }
            XCTAssertNil(report.error, "\(report.name): \(report.error ?? "")")
            XCTAssertFalse(report.tensors.isEmpty, "\(report.name): no expected tensors")
        }
    }

    /// The reference tolerances of issue 3 are what the committed cases carry.
    func testCommittedTolerances() throws {
        for url in try Self.cases() {
            let c = try ParityCase(directory: url)
            switch c.component {
            case "tokenizer": XCTAssertEqual(c.atol + c.rtol, 0, c.name)
            case "text_encoder", "unet", "vae_encode", "vae_decode": XCTAssertLessThanOrEqual(c.atol + c.rtol, 2e-4, c.name)
            case "scheduler_ddim", "scheduler_dpm", "scheduler_ddpm": XCTAssertLessThanOrEqual(c.atol, 1e-5, c.name)
            case "pipeline": XCTAssertLessThanOrEqual(c.atol, 1e-3, c.name)
            default: break
            }
        }
    }

    /// A missing tensor, a wrong shape, wrong values, an unknown component and a broken folder are
    /// FAILs with messages, never crashes.
    func testFailuresAreReportedNotThrown() throws {
        let source = TestSupport.fixture("parity/scheduler_ddim_leading")
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let copy = directory.appendingPathComponent("case")
        try FileManager.default.copyItem(at: source, to: copy)
        let clean = Parity.run(copy)
        XCTAssertTrue(clean.passed)
        // What the component's own output differs by before the perturbation (0 on the LibTorch the
        // case was made with, a few float32 ulps on another): the perturbed report must show 1e-3 ± that.
        let baseline = clean.tensors.first { $0.name == "final_sample" }?.maxAbs ?? 0

        let expected = try Safetensors.load(copy.appendingPathComponent("expected.safetensors"))
        var changed = expected
        changed["final_sample"] = try expected["final_sample"]!.add(1e-3)
        changed["timesteps"] = try expected["timesteps"]!.slice(dim: 0, end: 3)
        changed["not_an_output"] = try Tensor.zeros([2])
        try Safetensors.save(changed, to: copy.appendingPathComponent("expected.safetensors"))
        let report = Parity.run(copy)
        XCTAssertFalse(report.passed)
        let byName = Dictionary(uniqueKeysWithValues: report.tensors.map { ($0.name, $0) })
        XCTAssertEqual(byName["final_sample"]?.passed, false)
        XCTAssertEqual(byName["final_sample"]?.maxAbs ?? 0, 1e-3, accuracy: 1e-6 + baseline)
        XCTAssertEqual(byName["timesteps"]?.passed, false)
        XCTAssertTrue(byName["timesteps"]?.message?.contains("shape [10], expected [3]") ?? false, "\(byName["timesteps"]?.message ?? "")")
        XCTAssertTrue(byName["not_an_output"]?.message?.contains("no 'not_an_output'") ?? false)

        // Missing input: the component fails, every expected tensor is a FAIL, the message names the tensor.
        try Safetensors.save(["sample": try Tensor.zeros([1])], to: copy.appendingPathComponent("inputs.safetensors"))
        let broken = Parity.run(copy)
        XCTAssertFalse(broken.passed)
        XCTAssertTrue(broken.error?.contains("model_outputs") ?? false, broken.error ?? "")

        var json = try String(contentsOf: copy.appendingPathComponent("case.json"), encoding: .utf8)
        json = json.replacingOccurrences(of: "scheduler_ddim", with: "no_such_component")
        try json.write(to: copy.appendingPathComponent("case.json"), atomically: true, encoding: .utf8)
        XCTAssertTrue(Parity.run(copy).error?.contains("unknown component 'no_such_component'") ?? false)

        let empty = directory.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        XCTAssertTrue(Parity.run(empty).error?.contains("case.json") ?? false)
        XCTAssertEqual(Parity.cases(in: directory).map(\.lastPathComponent), ["case"])
    }
}
