import BackdropTestSupport
import Experiments
import Foundation
import Torch
import WebView
import XCTest

/// `backdrop serve` as users start it: on loopback unless --host says otherwise, answering pages,
/// and stopping cleanly on SIGTERM; without a registry it says so instead of creating one.
final class ServeCommandTests: XCTestCase {
    /// The local addresses listening on `port` (IPv4, from /proc/net/tcp), as dotted quads.
    func listeners(port: Int) throws -> [String] {
        let table = try String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)
        return table.split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 3, fields[3] == "0A" else { return nil }  // LISTEN
            let local = fields[1].split(separator: ":")
            guard local.count == 2, Int(local[1], radix: 16) == port, let address = UInt32(local[0], radix: 16) else { return nil }
            // The kernel prints the address in host (little-endian) order.
            return [address & 0xff, address >> 8 & 0xff, address >> 16 & 0xff, address >> 24].map(String.init).joined(separator: ".")
        }
    }

    func testServesOnLoopbackByDefaultAndStopsOnSIGTERM() throws {
        let folder = try TestSupport.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let registry = try RunRegistry(url: folder.appendingPathComponent("runs.sqlite"))
        _ = try registry.startRun(name: "served", configJSON: "{}", outputDir: folder.appendingPathComponent("runs/served").path)

        let port = try ProcessGroup.freePort()
        let server = Process()
        server.executableURL = try TestSupport.backdropExecutable()
        server.arguments = ["serve", "--registry", folder.appendingPathComponent("runs.sqlite").path, "--port", "\(port)"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { if server.isRunning { server.terminate() } }
        let deadline = Date().addingTimeInterval(60)
        var page: LoopbackHTTP.Reply?
        while page == nil, Date() < deadline, server.isRunning {
            page = try? LoopbackHTTP.request(port: port, method: "GET", path: "/index.html")
            if page == nil { Thread.sleep(forTimeInterval: 0.1) }
        }
        let reply = try XCTUnwrap(page, "the server answered")
        XCTAssertEqual(reply.status, 200)
        XCTAssertTrue(reply.text.contains(">served<"), reply.text)
        XCTAssertEqual(try listeners(port: port), ["127.0.0.1"], "loopback only")

        server.terminate()
        server.waitUntilExit()
        XCTAssertEqual(server.terminationReason, .exit, "a graceful shutdown, not death by the signal")
        XCTAssertEqual(server.terminationStatus, 0)
    }

    func testWithoutARegistryItSaysSoAndCreatesNothing() throws {
        let folder = try TestSupport.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let missing = folder.appendingPathComponent("results/runs.sqlite")
        for arguments in [["serve", "--registry", missing.path, "--port", "1"], ["report", "--registry", missing.path, "--out", folder.appendingPathComponent("r").path],
                          ["study", "results", "x", "--registry", missing.path]] {
            let result = try TestSupport.runBackdrop(arguments)
            XCTAssertEqual(result.status, 1, "\(arguments): \(result.output)")
            XCTAssertTrue(result.output.contains("no run registry"), result.output)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("results").path))
    }
}
