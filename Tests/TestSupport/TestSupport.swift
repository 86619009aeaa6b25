import Foundation
import Torch
import XCTest

/// Helpers shared by every test target: fixture paths, error measures, the Python reference
/// environment and the fetched assets.
public enum TestSupport {
    public static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static func fixture(_ relativePath: String) -> URL {
        repositoryRoot.appendingPathComponent("Tests/Fixtures").appendingPathComponent(relativePath)
    }

    /// max |a − b| over all elements, computed in float64.
    public static func maxAbsDifference(_ a: Tensor, _ b: Tensor) throws -> Double {
        XCTAssertEqual(a.shape, b.shape, "shapes differ")
        let x = try a.to(dtype: .float64, device: .cpu), y = try b.to(dtype: .float64, device: .cpu)
        return try (x - y).abs().amax().item()
    }

    public static func temporaryDirectory(_ name: String = #function) throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("backdrop-tests-\(name.filter(\.isLetter))-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// The Python reference interpreter (`make venv`), or a skip when this machine has none.
    /// `make test` always provides it through BACKDROP_PYTHON, so CI never skips.
    public static func referencePython() throws -> String {
        if let path = ProcessInfo.processInfo.environment["BACKDROP_PYTHON"],
           FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        throw XCTSkip("no Python reference environment: run through `make test` or set BACKDROP_PYTHON")
    }

    /// Runs a script under tools/ with the reference interpreter; returns its exit status and output.
    public static func runPythonTool(_ script: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
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

    /// A fetched asset under `$BACKDROP_ASSETS` (`make setup` puts them there). Skips when the
    /// variable is unset (a plain `swift test`); fails when it is set but the file is missing.
    public static func asset(_ relativePath: String) throws -> URL {
        guard let root = ProcessInfo.processInfo.environment["BACKDROP_ASSETS"] else {
            throw XCTSkip("BACKDROP_ASSETS is not set: run through `make test`")
        }
        let url = URL(fileURLWithPath: root).appendingPathComponent(relativePath)
        guard FileManager.default.fileExists(atPath: url.path) else {
            XCTFail("\(url.path) is missing: run `make setup`")
            throw XCTSkip("missing asset \(relativePath)")
        }
        return url
    }

    /// The `backdrop` executable built next to the test bundle (`swift build --build-tests` builds it).
    public static func backdropExecutable() throws -> URL { try builtExecutable("backdrop") }

    /// An executable product built next to the test bundle (`backdrop`, `backdrop-fuzz`).
    public static func builtExecutable(_ name: String) throws -> URL {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = directory.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        let fallback = repositoryRoot.appendingPathComponent(".build/debug/\(name)")
        guard FileManager.default.isExecutableFile(atPath: fallback.path) else {
            throw XCTSkip("the \(name) executable is not built next to the tests")
        }
        return fallback
    }

    /// Runs the `backdrop` executable (in `directory`, or this process's); returns its exit status
    /// and its standard output and error.
    public static func runBackdrop(_ arguments: [String], in directory: URL? = nil) throws -> (status: Int32, output: String) {
        try run(try backdropExecutable(), arguments, in: directory)
    }

    /// Runs an executable; returns its exit status and its standard output and error. Whatever the
    /// arguments, Backdrop's executables end with an exit code, never a signal.
    public static func run(_ executable: URL, _ arguments: [String], in directory: URL? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .exit, "\(executable.lastPathComponent) \(arguments): ended by signal \(process.terminationStatus)")
        return (process.terminationStatus, output)
    }

    /// The tiny SD-shaped model `make models` writes (random weights).
    public static func tinyStableDiffusion() throws -> URL {
        let cache = ProcessInfo.processInfo.environment["BACKDROP_CACHE"]
        guard let cache else { throw XCTSkip("BACKDROP_CACHE is not set: run through `make test`") }
        let url = URL(fileURLWithPath: cache).appendingPathComponent("models/tiny-sd-v1")
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent("model_index.json").path) else {
            XCTFail("\(url.path) is missing: run `make models`")
            throw XCTSkip("missing tiny model")
        }
        return url
    }

    /// A folder of fixtures too large to commit that a Makefile rule generates into the cache and
    /// exports as `variable` (BACKDROP_DEEPLAB_FIXTURES from `make models`). Skips when the variable
    /// is unset (a plain `swift test`); fails when it is set but `marker`, written last, is missing.
    public static func generatedFixtures(_ variable: String, marker: String, rule: String) throws -> URL {
        guard let path = ProcessInfo.processInfo.environment[variable], !path.isEmpty else {
            throw XCTSkip("\(variable) is not set: run through `make test`")
        }
        let url = URL(fileURLWithPath: path)
        guard FileManager.default.fileExists(atPath: url.appendingPathComponent(marker).path) else {
            XCTFail("\(url.path) is incomplete: run `\(rule)`")
            throw XCTSkip("missing generated fixtures \(url.lastPathComponent)")
        }
        return url
    }

    /// Resident memory of this process in bytes (Linux /proc).
    public static func residentMemory() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
              let pages = text.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
