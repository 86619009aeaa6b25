import BackdropTestSupport
import Foundation
import XCTest

/// Failures reach the user as one line that keeps the cause, exit 1 at work and 64 for usage, and
/// never as a signal or a dump (docs/security.md#errors).
final class FailureReportingTests: XCTestCase {
    var folder: URL!

    override func setUpWithError() throws {
        folder = try TestSupport.temporaryDirectory()
        addTeardownBlock { [folder] in try? FileManager.default.removeItem(at: folder!) }
    }

    /// Runs backdrop in the test's folder; returns its exit status and its output's lines.
    func backdrop(_ arguments: String...) throws -> (status: Int32, lines: [String]) {
        let (status, output) = try TestSupport.runBackdrop(arguments, in: folder)
        return (status, output.split(separator: "\n").map(String.init))
    }

    func errorLine(_ lines: [String]) -> String { lines.first { $0.hasPrefix("Error: ") } ?? "" }

    func testAMissingRegistryIsARuntimeFailureWithoutTheUsageFooter() throws {
        let (status, lines) = try backdrop("table", "--registry", "nowhere/runs.sqlite")
        XCTAssertEqual(status, 1)
        XCTAssertTrue(errorLine(lines).contains("no run registry at nowhere/runs.sqlite"), "\(lines)")
        XCTAssertFalse(lines.contains { $0.hasPrefix("Usage:") }, "\(lines)")
        // Read-only commands never create files.
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("nowhere").path))
    }

    func testAUsageErrorExits64WithTheUsageLine() throws {
        let (status, lines) = try backdrop("generate", "a room", "--model", "m", "--guidance", "inf")
        XCTAssertEqual(status, 64)
        XCTAssertTrue(errorLine(lines).contains("--guidance"), "\(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("Usage:") }, "\(lines)")
    }

    /// CUDA asked of a LibTorch without it: one line saying so, not LibTorch's 42-line dispatcher dump.
    func testCUDAOnACPUBuildIsOneLine() throws {
        let tiny = try TestSupport.tinyStableDiffusion()
        let probe = try backdrop("info")
        guard probe.lines.contains(where: { $0.hasPrefix("devices") && !$0.contains("cuda") }) else {
            throw XCTSkip("this machine has CUDA")
        }
        let (status, lines) = try backdrop("generate", "a room", "--model", tiny.path, "--device", "cuda", "--out", "x.png")
        XCTAssertEqual(status, 1)
        XCTAssertEqual(lines.count, 1, "\(lines)")
        XCTAssertTrue(errorLine(lines).contains("sees no CUDA device"), "\(lines)")
    }

    /// A write that fails keeps its reason (not "(Torch.TorchError error 1.)" or "The operation
    /// could not be completed").
    func testWriteFailuresKeepTheirReason() throws {
        let (status, lines) = try backdrop("dataset", "synth", "--out", "/proc/backdrop-cannot-write", "--count", "1", "--face-size", "8")
        XCTAssertEqual(status, 1)
        let line = errorLine(lines)
        XCTAssertTrue(line.contains("/proc/backdrop-cannot-write"), line)
        XCTAssertFalse(line.contains("TorchError") || line.contains("could not be completed"), line)
        XCTAssertTrue(line.contains("No such file or directory") || line.contains("Permission denied"), line)
    }

    /// An output ffmpeg cannot write: the error names ffmpeg's exit status and its last words
    /// (before SIGPIPE was ignored, the command died silently with status 141).
    func testFFmpegFailuresAreReportedNotASignal() throws {
        let panorama = try TestSupport.asset("panoramas/interior.png")
        let photo = try TestSupport.asset("photos/astronaut.png")
        let (status, lines) = try backdrop("call", "--background", panorama.path, "--input", photo.path, "--out", "/proc/backdrop.mp4")
        XCTAssertEqual(status, 1)
        XCTAssertTrue(errorLine(lines).contains("ffmpeg"), "\(lines)")
        XCTAssertTrue(errorLine(lines).contains("exit status"), "\(lines)")
        // An unknown container is refused before any work.
        let unknown = try backdrop("call", "--background", panorama.path, "--input", photo.path, "--out", "call.xyz")
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(errorLine(unknown.lines).contains("'.xyz' is not a video container"), "\(unknown.lines)")
        XCTAssertFalse(unknown.lines.contains { $0.contains("call ") && $0.contains("/s") }, "work started: \(unknown.lines)")
    }

    /// Writing the input as the output would destroy it before it is read.
    func testAnOutputThatIsAnInputIsRefused() throws {
        let photo = folder.appendingPathComponent("frame.png")
        try FileManager.default.copyItem(at: try TestSupport.asset("photos/astronaut.png"), to: photo)
        let before = try Data(contentsOf: photo)
        let (status, lines) = try backdrop("call", "--background", "room.png", "--input", "frame.png", "--out", "./frame.png")
        XCTAssertEqual(status, 64)
        XCTAssertTrue(errorLine(lines).contains("is the --input file"), "\(lines)")
        XCTAssertEqual(try Data(contentsOf: photo), before)
        let segment = try backdrop("segment", "--input", photo.path, "--out", "frame.png")
        XCTAssertEqual(segment.status, 64)
        XCTAssertEqual(try Data(contentsOf: photo), before)
    }
}
