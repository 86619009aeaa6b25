import Foundation
import Torch
import XCTest

/// Shared helpers of the Torch tests: fixture paths, error measures, the Python reference.
enum TestSupport {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func fixture(_ relativePath: String) -> URL {
        repositoryRoot.appendingPathComponent("Tests/Fixtures").appendingPathComponent(relativePath)
    }

    /// max |a − b| over all elements, computed in float64.
    static func maxAbsDifference(_ a: Tensor, _ b: Tensor) throws -> Double {
        XCTAssertEqual(a.shape, b.shape, "shapes differ")
        let x = try a.to(dtype: .float64, device: .cpu), y = try b.to(dtype: .float64, device: .cpu)
        return try (x - y).abs().amax().item()
    }

    static func temporaryDirectory(_ name: String = #function) throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("backdrop-tests-\(name.filter(\.isLetter))-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// The Python reference interpreter (`make venv`), or a skip when this machine has none.
    /// `make test` always provides it through BACKDROP_PYTHON, so CI never skips.
    static func referencePython() throws -> String {
        if let path = ProcessInfo.processInfo.environment["BACKDROP_PYTHON"],
           FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        throw XCTSkip("no Python reference environment: run through `make test` or set BACKDROP_PYTHON")
    }

    /// Runs a script under tools/ with the reference interpreter; returns its exit status and output.
    static func runPythonTool(_ script: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try referencePython())
        process.arguments = [repositoryRoot.appendingPathComponent("tools/\(script)").path] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Resident memory of this process in bytes (Linux /proc).
    static func residentMemory() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
              let pages = text.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
