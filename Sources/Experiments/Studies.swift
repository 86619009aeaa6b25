import Foundation
import GRDB
import Torch

/// Blind rating studies (docs/web.md#rating-study): the paper's user score (US), a 1–10
/// photorealism score that people give each panorama without knowing which system made it. A study
/// holds panoramas of several systems for the same prompts; raters (a cookie's id) answer once per
/// panorama. Kept in the run registry's database, beside the runs the systems come from.
extension RunRegistry {
    public struct Study: Codable, FetchableRecord, Equatable, Sendable {
        public var id: Int64
        public var name: String
        /// Panoramas shown to each rater (all when nil).
        public var perRater: Int?
        public var createdAt: Date
    }

    public struct StudyPanorama: Codable, FetchableRecord, Equatable, Sendable {
        public var id: Int64
        public var studyId: Int64
        /// What a rater's page names the panorama by: random, so that neither it nor its order says the system.
        public var key: String
        /// The system as `study create --systems` named it: a run name, with " --baseline" for its baseline.
        public var system: String
        public var runId: Int64?
        /// "model" or "baseline", as evaluations name systems.
        public var kind: String
        public var prompt: String
        /// The panorama folder (panorama.png, view_<i>.png, cameras.json), stored like run folders.
        public var folder: String
    }

    public struct StudyAnswer: Codable, FetchableRecord, Equatable, Sendable {
        public var panoramaId: Int64
        public var rater: String
        public var score: Int
        public var createdAt: Date
    }

    /// One system's mean score with its 95 % confidence interval (Student's t over the answers).
    public struct StudyResult: Equatable, Sendable {
        public var system: String
        public var runId: Int64?
        public var kind: String
        public var answers: Int
        public var raters: Int
        public var mean: Double
        /// Half-width of the 95 % interval; nil with fewer than two answers.
        public var halfWidth95: Double?
    }

    static func registerStudyMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v2-studies") { db in
            try db.create(table: "study") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("name", .text).notNull().unique()
                t.column("perRater", .integer)
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(table: "studyPanorama") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("studyId", .integer).notNull().references("study", onDelete: .cascade)
                t.column("key", .text).notNull().unique()
                t.column("system", .text).notNull()
                t.column("runId", .integer).references("run", onDelete: .setNull)
                t.column("kind", .text).notNull()
                t.column("prompt", .text).notNull()
                t.column("folder", .text).notNull()
            }
            try db.create(table: "studyAnswer") { t in
                t.column("panoramaId", .integer).notNull().references("studyPanorama", onDelete: .cascade)
                t.column("rater", .text).notNull()
                t.column("score", .integer).notNull().check { $0 >= 1 && $0 <= 10 }
                t.column("createdAt", .datetime).notNull()
                // One answer per rater and panorama: a replayed answer is refused, not counted twice.
                t.primaryKey(["panoramaId", "rater"], onConflict: .abort)
            }
            // A rater of a study and the token its forms must carry (the synchronizer-token defence
            // against cross-site request forgery).
            try db.create(table: "studyRater") { t in
                t.column("studyId", .integer).notNull().references("study", onDelete: .cascade)
                t.column("rater", .text).notNull()
                t.column("token", .text).notNull()
                t.column("createdAt", .datetime).notNull()
                t.primaryKey(["studyId", "rater"])
            }
        }
    }

    /// A new study of `panoramas` (system, run, kind, prompt, folder); its name must be new.
    @discardableResult
    public func createStudy(name: String, perRater: Int?, panoramas: [(system: String, runId: Int64?, kind: String, prompt: String, folder: URL)])
        throws -> Study {
        try Self.validateStudyName(name)
        return try pool.write { db in
            if try Study.fetchOne(db, sql: "SELECT * FROM study WHERE name = ?", arguments: [name]) != nil {
                throw TorchError("a study named '\(name)' exists in \(url.path)")
            }
            try db.execute(sql: "INSERT INTO study (name, perRater, createdAt) VALUES (?, ?, ?)", arguments: [name, perRater, Date()])
            let id = db.lastInsertedRowID
            for p in panoramas {
                try db.execute(sql: "INSERT INTO studyPanorama (studyId, key, system, runId, kind, prompt, folder) VALUES (?, ?, ?, ?, ?, ?, ?)",
                               arguments: [id, randomHex(bytes: 12), p.system, p.runId, p.kind, p.prompt, stored(p.folder.path)])
            }
            return try Study.fetchOne(db, sql: "SELECT * FROM study WHERE id = ?", arguments: [id])!
        }
    }

    /// Study names appear in URLs and folder names: ASCII letters, digits, '-', '_' and '.', not starting with '.'.
    public static func validateStudyName(_ name: String) throws {
        let allowed = name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || "-_.".utf8.contains(byte)
        }
        guard !name.isEmpty, name.count <= 100, allowed, !name.hasPrefix(".") else {
            throw TorchError("study name '\(name)': 1–100 ASCII letters, digits, '-', '_' or '.', not starting with '.'")
        }
    }

    /// The rater's CSRF token in a study, made on the rater's first visit.
    public func raterToken(studyID: Int64, rater: String) throws -> String {
        try pool.write { db in
            if let token = try String.fetchOne(db, sql: "SELECT token FROM studyRater WHERE studyId = ? AND rater = ?",
                                               arguments: [studyID, rater]) { return token }
            let token = randomHex(bytes: 24)
            try db.execute(sql: "INSERT INTO studyRater (studyId, rater, token, createdAt) VALUES (?, ?, ?, ?)",
                           arguments: [studyID, rater, token, Date()])
            return token
        }
    }

    /// Whether `token` is the one issued to `rater` in the study (an unknown rater has none).
    public func checkRaterToken(studyID: Int64, rater: String, token: String) throws -> Bool {
        let issued = try pool.read {
            try String.fetchOne($0, sql: "SELECT token FROM studyRater WHERE studyId = ? AND rater = ?", arguments: [studyID, rater])
        }
        guard let issued, issued.utf8.count == token.utf8.count else { return false }
        // Compared in constant time: the position of the first difference must not leak through timing.
        return zip(issued.utf8, token.utf8).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    public func study(named name: String) throws -> Study? {
        try pool.read { try Study.fetchOne($0, sql: "SELECT * FROM study WHERE name = ?", arguments: [name]) }
    }

    public func studies() throws -> [Study] {
        try pool.read { try Study.fetchAll($0, sql: "SELECT * FROM study ORDER BY id") }
    }

    public func panoramas(ofStudy id: Int64) throws -> [StudyPanorama] {
        try pool.read { try StudyPanorama.fetchAll($0, sql: "SELECT * FROM studyPanorama WHERE studyId = ? ORDER BY id", arguments: [id]) }
    }

    public func answers(ofStudy id: Int64, rater: String? = nil) throws -> [StudyAnswer] {
        try pool.read { db in
            try StudyAnswer.fetchAll(db, sql: """
                SELECT a.* FROM studyAnswer a JOIN studyPanorama p ON p.id = a.panoramaId
                WHERE p.studyId = ? AND (? IS NULL OR a.rater = ?) ORDER BY a.createdAt, a.panoramaId
                """, arguments: [id, rater, rater])
        }
    }

    public enum AnswerOutcome: Equatable, Sendable { case recorded, alreadyAnswered }

    /// Records `rater`'s score of a panorama of study `studyID`. The caller has validated the score;
    /// the database checks it again, and refuses a second answer of the same rater and panorama.
    public func recordAnswer(studyID: Int64, panoramaID: Int64, rater: String, score: Int) throws -> AnswerOutcome {
        guard (1...10).contains(score) else { throw TorchError("score \(score) is not an integer in 1…10") }
        return try pool.write { db in
            guard try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM studyPanorama WHERE id = ? AND studyId = ?",
                                   arguments: [panoramaID, studyID]) == 1 else {
                throw TorchError("panorama \(panoramaID) is not in study \(studyID)")
            }
            let inserted = try Int.fetchOne(db, sql: """
                INSERT INTO studyAnswer (panoramaId, rater, score, createdAt) VALUES (?, ?, ?, ?)
                ON CONFLICT (panoramaId, rater) DO NOTHING RETURNING 1
                """, arguments: [panoramaID, rater, score, Date()])
            return inserted == nil ? .alreadyAnswered : .recorded
        }
    }

    /// Each system's mean US with its 95 % interval, in the order the study lists the systems.
    public func studyResults(_ study: Study) throws -> [StudyResult] {
        let panoramas = try panoramas(ofStudy: study.id)
        let answers = try answers(ofStudy: study.id)
        let systemOf = Dictionary(uniqueKeysWithValues: panoramas.map { ($0.id, $0.system) })
        var systems: [String] = []
        for p in panoramas where !systems.contains(p.system) { systems.append(p.system) }
        return systems.map { system in
            let mine = answers.filter { systemOf[$0.panoramaId] == system }
            let first = panoramas.first { $0.system == system }!
            let scores = mine.map { Double($0.score) }
            let summary = MeanInterval(scores)
            return StudyResult(system: system, runId: first.runId, kind: first.kind, answers: scores.count,
                               raters: Set(mine.map(\.rater)).count, mean: summary.mean, halfWidth95: summary.halfWidth95)
        }
    }
}

/// `bytes` random bytes from the system's generator, as hex.
public func randomHex(bytes: Int) -> String {
    var generator = SystemRandomNumberGenerator()
    return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
}

/// The mean of a sample and the half-width of its 95 % confidence interval, t(0.975, n−1)·s/√n.
public struct MeanInterval: Equatable, Sendable {
    public var mean: Double
    public var halfWidth95: Double?

    public init(_ values: [Double]) {
        let n = Double(values.count)
        mean = values.isEmpty ? .nan : values.reduce(0, +) / n
        guard values.count >= 2 else { halfWidth95 = nil; return }
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)
        halfWidth95 = StudentT.quantile(0.975, degreesOfFreedom: n - 1) * (variance / n).squareRoot()
    }
}

/// Student's t distribution, for confidence intervals of small samples.
public enum StudentT {
    /// P(T ≤ t) with ν degrees of freedom: 1 − ½·I_{ν/(ν+t²)}(ν/2, ½) for t ≥ 0.
    public static func cdf(_ t: Double, degreesOfFreedom nu: Double) -> Double {
        let tail = 0.5 * regularizedIncompleteBeta(nu / (nu + t * t), a: nu / 2, b: 0.5)
        return t >= 0 ? 1 - tail : tail
    }

    /// The p-quantile, by bisection on the CDF (monotone; 200 halvings reach double precision).
    public static func quantile(_ p: Double, degreesOfFreedom nu: Double) -> Double {
        var (low, high) = (-1e6, 1e6)
        for _ in 0..<200 {
            let middle = (low + high) / 2
            if cdf(middle, degreesOfFreedom: nu) < p { low = middle } else { high = middle }
        }
        return (low + high) / 2
    }

    /// I_x(a, b) by its continued fraction (Lentz's method), using the symmetry
    /// I_x(a, b) = 1 − I_{1−x}(b, a) where the fraction converges slowly.
    static func regularizedIncompleteBeta(_ x: Double, a: Double, b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        if x > (a + 1) / (a + b + 2) { return 1 - regularizedIncompleteBeta(1 - x, a: b, b: a) }
        let logBeta: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
        let logPowers: Double = a * log(x) + b * log(1 - x)
        let logFront = logBeta + logPowers
        let tiny = 1e-300
        var c = 1.0, d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var fraction = d
        for m in 1...500 {
            let m = Double(m)
            let even: Double = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            d = 1 + even * d; if abs(d) < tiny { d = tiny }
            c = 1 + even / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            fraction *= d * c
            let odd: Double = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            d = 1 + odd * d; if abs(d) < tiny { d = tiny }
            c = 1 + odd / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            let step = d * c
            fraction *= step
            if abs(step - 1) < 1e-15 { break }
        }
        return exp(logFront) * fraction / a
    }
}
