import Foundation
import GRDB
import Torch

/// Every training run, its per-step metrics, checkpoints and evaluation results, in one SQLite
/// database (`results/runs.sqlite`). WAL mode and a busy timeout let two runs (two processes)
/// write at once.
public final class RunRegistry: @unchecked Sendable {
    public let url: URL
    let pool: DatabasePool

    public struct Run: Codable, FetchableRecord, Equatable, Sendable {
        public var id: Int64
        public var name: String
        public var config: String
        public var gitCommit: String?
        public var outputDir: String
        public var startedAt: Date
        public var endedAt: Date?
        /// running, finished, failed or interrupted.
        public var status: String
    }

    public struct Metric: Codable, FetchableRecord, Equatable, Sendable {
        public var runId: Int64
        public var step: Int
        public var loss: Double
        public var lr: Double
        public var stepsPerSecond: Double

        public init(runId: Int64, step: Int, loss: Double, lr: Double, stepsPerSecond: Double) {
            (self.runId, self.step, self.loss, self.lr, self.stepsPerSecond) = (runId, step, loss, lr, stepsPerSecond)
        }
    }

    public struct Evaluation: Codable, FetchableRecord, Equatable, Sendable {
        public var runId: Int64?
        /// "model", "baseline" or "ground-truth" (`backdrop eval` records the last for consistency).
        public var system: String
        public var checkpoint: String?
        public var split: String
        public var count: Int
        public var fid: Double?
        public var isMean: Double?
        public var isStd: Double?
        public var clipScore: Double?
        public var consistencyPsnr: Double?
        public var consistencyRatio: Double?
        public var userScore: Double?
        /// Why a metric is missing (e.g. "IS: the Inception weights have no classifier").
        public var notes: String?
        public var createdAt: Date

        public init(runId: Int64?, system: String, checkpoint: String?, split: String, count: Int, fid: Double? = nil,
                    isMean: Double? = nil, isStd: Double? = nil, clipScore: Double? = nil, consistencyPsnr: Double? = nil,
                    consistencyRatio: Double? = nil, userScore: Double? = nil, notes: String? = nil) {
            (self.runId, self.system, self.checkpoint, self.split, self.count) = (runId, system, checkpoint, split, count)
            (self.fid, self.isMean, self.isStd, self.clipScore) = (fid, isMean, isStd, clipScore)
            (self.consistencyPsnr, self.consistencyRatio, self.userScore, self.notes) =
                (consistencyPsnr, consistencyRatio, userScore, notes)
            createdAt = Date()
        }
    }

    public init(url: URL) throws {
        self.url = url
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.busyMode = .timeout(30)
        do {
            pool = try Self.openPool(url, configuration)
            try Self.migrate(pool)
        } catch {
            throw TorchError("cannot open the run registry \(url.path): \(error)")
        }
    }

    /// Opening a new registry switches it to WAL, which needs the file to itself for a moment. When
    /// another process is opening it at the same moment SQLite may answer SQLITE_BUSY at once instead
    /// of waiting out the busy timeout (seen with four processes opening a new file under load), so
    /// the open is tried again.
    static func openPool(_ url: URL, _ configuration: Configuration) throws -> DatabasePool {
        var attempt = 0
        while true {
            do {
                return try DatabasePool(path: url.path, configuration: configuration)
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && attempt < 50 {
                attempt += 1
                Thread.sleep(forTimeInterval: 0.01 * Double(attempt))
            }
        }
    }

    /// Brings the schema up to date. Two processes opening a new registry at once (a training run and
    /// a test or `serve` reading it) may both find a migration unapplied; the one that then loses the
    /// race for the write lock fails on the other's tables, and its transaction is rolled back. It
    /// tries again, and finds the migration applied.
    static func migrate(_ pool: DatabasePool) throws {
        var attempt = 0
        while true {
            do {
                try migrator.migrate(pool)
                return
            } catch let error as DatabaseError where error.resultCode == .SQLITE_ERROR && attempt < 20 {
                attempt += 1
                Thread.sleep(forTimeInterval: 0.02 * Double(attempt))
            }
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "run") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("name", .text).notNull()
                t.column("config", .text).notNull()
                t.column("gitCommit", .text)
                t.column("outputDir", .text).notNull()
                t.column("startedAt", .datetime).notNull()
                t.column("endedAt", .datetime)
                t.column("status", .text).notNull()
            }
            try db.create(table: "metric") { t in
                t.column("runId", .integer).notNull().references("run", onDelete: .cascade)
                t.column("step", .integer).notNull()
                t.column("loss", .double).notNull()
                t.column("lr", .double).notNull()
                t.column("stepsPerSecond", .double).notNull()
                t.primaryKey(["runId", "step"], onConflict: .replace)
            }
            try db.create(table: "checkpoint") { t in
                t.column("runId", .integer).notNull().references("run", onDelete: .cascade)
                t.column("step", .integer).notNull()
                t.column("path", .text).notNull()
                t.column("createdAt", .datetime).notNull()
                t.primaryKey(["runId", "step"], onConflict: .replace)
            }
            try db.create(table: "evaluation") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("runId", .integer).references("run", onDelete: .cascade)
                t.column("system", .text).notNull()
                t.column("checkpoint", .text)
                t.column("split", .text).notNull()
                t.column("count", .integer).notNull()
                t.column("fid", .double)
                t.column("isMean", .double)
                t.column("isStd", .double)
                t.column("clipScore", .double)
                t.column("consistencyPsnr", .double)
                t.column("consistencyRatio", .double)
                t.column("userScore", .double)
                t.column("notes", .text)
                t.column("createdAt", .datetime).notNull()
            }
        }
        registerStudyMigration(&migrator)
        return migrator
    }

    // MARK: Paths

    /// The folder the registry file lives in (`results/`): run folders and checkpoints inside it are
    /// stored relative to it, so the results folder can move or be copied whole.
    public var root: URL { url.deletingLastPathComponent().standardizedFileURL }

    /// `path` as the registry stores it: relative to `root` when inside it, else absolute.
    func stored(_ path: String) -> String {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        let prefix = root.path.hasSuffix("/") ? root.path : root.path + "/"
        return absolute.hasPrefix(prefix) ? String(absolute.dropFirst(prefix.count)) : absolute
    }

    /// A stored path as a URL: relative ones under `root` (older registries hold absolute paths).
    public func resolve(_ stored: String) -> URL {
        stored.hasPrefix("/") ? URL(fileURLWithPath: stored) : root.appendingPathComponent(stored)
    }

    /// The output folder of a registered run.
    public func directory(of run: Run) -> URL { resolve(run.outputDir) }

    // MARK: Runs

    /// Registers a new run in state `running`; returns its id.
    public func startRun(name: String, configJSON: String, outputDir: String, gitCommit: String? = currentGitCommit())
        throws -> Int64 {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO run (name, config, gitCommit, outputDir, startedAt, status) VALUES (?, ?, ?, ?, ?, 'running')
                """, arguments: [name, configJSON, gitCommit, stored(outputDir), Date()])
            return db.lastInsertedRowID
        }
    }

    /// Runs still marked `running` whose folder no process holds (`FolderLock`) died without a word
    /// (SIGKILL, a power cut, an out-of-memory kill): they become `interrupted`. Returns their ids.
    @discardableResult
    public func markInterruptedRuns() throws -> [Int64] {
        let dead = try pool.read { try Run.fetchAll($0, sql: "SELECT * FROM run WHERE status = 'running'") }
            .filter { !FolderLock.isHeld(directory(of: $0)) }.map(\.id)
        for id in dead { try finishRun(id, status: "interrupted") }
        return dead
    }

    /// Marks a run as running again (after `--resume`).
    public func reopenRun(_ id: Int64) throws {
        try pool.write { try $0.execute(sql: "UPDATE run SET status = 'running', endedAt = NULL WHERE id = ?", arguments: [id]) }
    }

    public func finishRun(_ id: Int64, status: String) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE run SET status = ?, endedAt = ? WHERE id = ?", arguments: [status, Date(), id])
        }
    }

    public func run(_ id: Int64) throws -> Run? {
        try pool.read { try Run.fetchOne($0, sql: "SELECT * FROM run WHERE id = ?", arguments: [id]) }
    }

    /// The newest run with this name.
    public func latestRun(named name: String) throws -> Run? {
        try pool.read { try Run.fetchOne($0, sql: "SELECT * FROM run WHERE name = ? ORDER BY id DESC LIMIT 1", arguments: [name]) }
    }

    public func runs() throws -> [Run] {
        try pool.read { try Run.fetchAll($0, sql: "SELECT * FROM run ORDER BY id") }
    }

    // MARK: Metrics and checkpoints

    /// A step's metrics; logging a step again (after a resume) replaces it.
    public func log(_ metric: Metric) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO metric (runId, step, loss, lr, stepsPerSecond) VALUES (?, ?, ?, ?, ?)",
                           arguments: [metric.runId, metric.step, metric.loss, metric.lr, metric.stepsPerSecond])
        }
    }

    public func metrics(_ runID: Int64) throws -> [Metric] {
        try pool.read { try Metric.fetchAll($0, sql: "SELECT * FROM metric WHERE runId = ? ORDER BY step", arguments: [runID]) }
    }

    /// The last logged step of a run (without reading its metrics), nil before its first.
    public func lastStep(_ runID: Int64) throws -> Int? {
        try pool.read { try Int.fetchOne($0, sql: "SELECT MAX(step) FROM metric WHERE runId = ?", arguments: [runID]) }
    }

    public func recordCheckpoint(_ runID: Int64, step: Int, path: String) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO checkpoint (runId, step, path, createdAt) VALUES (?, ?, ?, ?)",
                           arguments: [runID, step, stored(path), Date()])
        }
    }

    /// A run's checkpoints, with their folders resolved.
    public func checkpoints(_ runID: Int64) throws -> [(step: Int, path: String)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT step, path FROM checkpoint WHERE runId = ? ORDER BY step", arguments: [runID])
                .map { ($0["step"], resolve($0["path"]).path) }
        }
    }

    // MARK: Evaluations

    public func record(_ evaluation: Evaluation) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO evaluation (runId, system, checkpoint, split, count, fid, isMean, isStd, clipScore,
                                        consistencyPsnr, consistencyRatio, userScore, notes, createdAt)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [evaluation.runId, evaluation.system, evaluation.checkpoint, evaluation.split,
                                 evaluation.count, evaluation.fid, evaluation.isMean, evaluation.isStd,
                                 evaluation.clipScore, evaluation.consistencyPsnr, evaluation.consistencyRatio,
                                 evaluation.userScore, evaluation.notes, evaluation.createdAt])
        }
    }

    public func evaluations(runID: Int64? = nil) throws -> [Evaluation] {
        try pool.read { db in
            if let runID {
                return try Evaluation.fetchAll(db, sql: "SELECT * FROM evaluation WHERE runId = ? ORDER BY id", arguments: [runID])
            }
            return try Evaluation.fetchAll(db, sql: "SELECT * FROM evaluation ORDER BY id")
        }
    }
}

/// The commit recorded with each run: HEAD of the repository at `directory`, with "-dirty" appended when tracked files differ from it
/// (as `git describe --dirty` marks a tree), so a run's recorded commit never claims code it did not run.
public func currentGitCommit(in directory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)) -> String? {
    func git(_ arguments: [String]) -> (status: Int32, output: String)? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git", "-C", directory.path] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
    guard let head = git(["rev-parse", "HEAD"]), head.status == 0 else { return nil }
    let dirty = git(["diff", "--quiet", "HEAD", "--"]).map { $0.status == 1 } ?? false
    return head.output + (dirty ? "-dirty" : "")
}
