import BackdropTestSupport
import Foundation
import XCTest

@testable import Experiments

/// The registry and run folders stay truthful: one writer per folder, dead runs marked, and paths
/// that survive moving the results folder (docs/security.md#runs).
final class RunSafetyTests: XCTestCase {
    var results: URL!

    override func setUpWithError() throws {
        results = try TestSupport.temporaryDirectory().appendingPathComponent("results")
        try FileManager.default.createDirectory(at: results, withIntermediateDirectories: true)
        addTeardownBlock { [results] in try? FileManager.default.removeItem(at: results!.deletingLastPathComponent()) }
    }

    func testOneWriterPerFolder() throws {
        let folder = results.appendingPathComponent("runs/a")
        var first: FolderLock? = try FolderLock(folder)
        XCTAssertTrue(FolderLock.isHeld(folder))
        XCTAssertThrowsError(try FolderLock(folder)) { error in
            XCTAssertTrue("\(error)".contains("in use by another training process (pid \(getpid())"), "\(error)")
        }
        XCTAssertNotNil(first)
        first = nil
        XCTAssertFalse(FolderLock.isHeld(folder), "released with its owner")
        XCTAssertNoThrow(try FolderLock(folder))
        // Asking creates nothing.
        let elsewhere = results.appendingPathComponent("runs/never")
        XCTAssertFalse(FolderLock.isHeld(elsewhere))
        XCTAssertFalse(FileManager.default.fileExists(atPath: elsewhere.path))
    }

    /// A run whose process died (nobody holds its folder) stops being "running"; a live one stays.
    func testDeadRunsAreMarkedInterrupted() throws {
        let registry = try RunRegistry(url: results.appendingPathComponent("runs.sqlite"))
        let (live, dead) = (results.appendingPathComponent("runs/live"), results.appendingPathComponent("runs/dead"))
        let lock = try FolderLock(live)
        let liveID = try registry.startRun(name: "live", configJSON: "{}", outputDir: live.path)
        let deadID = try registry.startRun(name: "dead", configJSON: "{}", outputDir: dead.path)
        XCTAssertEqual(try registry.markInterruptedRuns(), [deadID])
        XCTAssertEqual(try registry.run(deadID)?.status, "interrupted")
        XCTAssertEqual(try registry.run(liveID)?.status, "running")
        withExtendedLifetime(lock) {}
    }

    /// Paths inside the results folder are stored relative to it: moved whole, it still resolves
    /// its runs and their checkpoints (it used to say "run has no checkpoint yet").
    func testAMovedResultsFolderStillFindsItsRuns() throws {
        let config = #"{"name": "moved", "model": {"base": "m"}, "dataset": {"root": "d"}, "output_dir": "runs/moved"}"#
        do {
            let registry = try RunRegistry(url: results.appendingPathComponent("runs.sqlite"))
            let folder = results.appendingPathComponent("runs/moved")
            let id = try registry.startRun(name: "moved", configJSON: config, outputDir: folder.path)
            try registry.recordCheckpoint(id, step: 3, path: folder.appendingPathComponent("checkpoints/step-00000003").path)
            XCTAssertEqual(try registry.run(id)?.outputDir, "runs/moved")
            let outside = try registry.startRun(name: "outside", configJSON: config, outputDir: "/srv/elsewhere")
            XCTAssertEqual(try registry.run(outside)?.outputDir, "/srv/elsewhere")
        }
        let moved = results.deletingLastPathComponent().appendingPathComponent("archive/results")
        try FileManager.default.createDirectory(at: moved.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.moveItem(at: results, to: moved)
        results = moved
        let registry = try RunRegistry(url: moved.appendingPathComponent("runs.sqlite"))
        let run = try Run.named("moved", registry: registry)
        XCTAssertEqual(run.directory.standardizedFileURL.path, moved.appendingPathComponent("runs/moved").standardizedFileURL.path)
        XCTAssertEqual(try registry.checkpoints(try XCTUnwrap(run.record).id).map(\.path),
                       [moved.appendingPathComponent("runs/moved/checkpoints/step-00000003").path])
    }

    /// Several processes opening one new registry at once (a run starting while a test or `serve`
    /// polls it) all end up with the whole schema; none fails on the tables another made.
    func testRegistriesOpenedAtOnceAllSucceed() throws {
        let folder = try TestSupport.temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        for round in 0..<10 {
            let url = folder.appendingPathComponent("runs-\(round).sqlite")
            let failures = NSLock()
            var errors: [String] = []
            DispatchQueue.concurrentPerform(iterations: 4) { _ in
                do { _ = try RunRegistry(url: url).studies() } catch { failures.withLock { errors.append("\(error)") } }
            }
            XCTAssertEqual(errors, [], "round \(round)")
        }
    }
}
