import BackdropTestSupport
import Experiments
import Foundation
import Hummingbird
import Torch
import XCTest

@testable import WebView

/// The site in a real browser: Debian's Chromium, headless, driven through chromedriver. Pages
/// render, the 360° viewer turns under a drag (its canvas changes and is not blank), and two raters
/// complete a study whose stored scores and US are exactly what they submitted. Screenshots go to
/// $BACKDROP_SCREENSHOTS when set (docs/screenshots/ holds one per page).
final class BrowserTests: XCTestCase {
    func screenshot(_ session: WebDriver.Session, _ name: String) throws {
        let data = try session.screenshot()
        XCTAssertEqual(Array(data.prefix(4)), [0x89, 0x50, 0x4E, 0x47], "a PNG")
        guard let folder = ProcessInfo.processInfo.environment["BACKDROP_SCREENSHOTS"] else { return }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: folder).appendingPathComponent("\(name).png"))
    }

    /// The viewer canvas's pixels, summarised: a fingerprint of them and their standard deviation.
    static let canvasSummary = """
        const source = document.querySelector('.viewer canvas');
        const copy = document.createElement('canvas');
        copy.width = source.width; copy.height = source.height;
        const context = copy.getContext('2d');
        context.drawImage(source, 0, 0);
        const pixels = context.getImageData(0, 0, copy.width, copy.height).data;
        let sum = 0, squares = 0, hash = 0;
        for (let i = 0; i < pixels.length; i += 4) {
          const v = pixels[i] + pixels[i + 1] + pixels[i + 2];
          sum += v; squares += v * v; hash = (hash * 31 + v) >>> 0;
        }
        const n = pixels.length / 4, mean = sum / n;
        return {hash: hash, std: Math.sqrt(squares / n - mean * mean), width: copy.width,
                yaw: Number(document.querySelector('.viewer').dataset.yaw)};
        """

    /// Synchronous on purpose: the WebDriver calls block while Chromium loads pages from the server,
    /// whose handlers run on the concurrency pool; blocking a pool thread (2 on this machine) from an
    /// async test deadlocks it.
    func testPagesViewerAndAStudyInChromium() throws {
        let fixture = try SiteFixture(self)
        guard let driver = try WebDriver(port: try ProcessGroup.freePort()) else {
            throw XCTSkip("Debian's chromium and chromium-driver are not installed (make setup)")
        }
        guard FileManager.default.fileExists(atPath: "/usr/share/javascript/three/three.min.js") else {
            throw XCTSkip("libjs-three is not installed (make setup)")
        }
        let port = try ProcessGroup.freePort()
        let app = Application(router: WebServer.router(site: fixture.site),
                              configuration: .init(address: .hostname("127.0.0.1", port: port)))
        let server = Task.detached { try await app.run() }
        defer { server.cancel() }
        let deadline = Date().addingTimeInterval(30)
        while (try? LoopbackHTTP.request(port: port, method: "GET", path: "/index.html")) == nil {
            guard Date() < deadline else { return XCTFail("the server did not start on port \(port)") }
            Thread.sleep(forTimeInterval: 0.1)
        }
        do {
            let root = "http://127.0.0.1:\(port)"
            let first = try driver.session()

            // Pages.
            for (page, name, expected) in [("/index.html", "runs", "mini"), ("/runs/\(fixture.runID).html", "run", "Loss and learning rate"),
                                           ("/table.html", "table", "seed paper"), ("/studies.html", "studies", "pilot")] {
                try first.open(root + page)
                try first.wait(for: "return document.readyState === 'complete'")
                let text = try first.run("return document.body.innerText") as? String ?? ""
                XCTAssertTrue(text.contains(expected), "\(page): \(text.prefix(300))")
                if name == "run" { try first.wait(for: "return !!document.querySelector('#loss').getAttribute('style')") }
                try screenshot(first, name)
            }

            // The 360° viewer turns under a drag.
            try first.open(root + "/view/\(fixture.panoramaFolder)/index.html")
            try first.wait(for: "return document.querySelector('.viewer').dataset.ready === '1'")
            let before = try XCTUnwrap(first.run(Self.canvasSummary) as? [String: Any])
            XCTAssertGreaterThan(before["std"] as? Double ?? 0, 5, "the canvas is not blank: \(before)")
            try screenshot(first, "viewer")
            try first.drag(".viewer canvas", dx: 200, dy: 0)
            let after = try XCTUnwrap(first.run(Self.canvasSummary) as? [String: Any])
            XCTAssertNotEqual(before["hash"] as? Int, after["hash"] as? Int, "the view changed: \(before) → \(after)")
            XCTAssertGreaterThan(after["std"] as? Double ?? 0, 5, "still not blank")
            XCTAssertNotEqual(before["yaw"] as? Double, after["yaw"] as? Double)

            // The static report works from files: its viewer loads and draws without a server.
            let report = fixture.root.deletingLastPathComponent().appendingPathComponent("report-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: report) }
            try StaticReport(site: fixture.site).write(to: report)
            try first.open(report.appendingPathComponent("view/\(fixture.panoramaFolder)/index.html").absoluteString)
            try first.wait(for: "return document.querySelector('.viewer').dataset.ready === '1'")
            let fromFile = try XCTUnwrap(first.run(Self.canvasSummary) as? [String: Any])
            XCTAssertGreaterThan(fromFile["std"] as? Double ?? 0, 5, "the report's viewer draws the panorama: \(fromFile)")
            try first.open(report.appendingPathComponent("runs/\(fixture.runID).html").absoluteString)
            try first.wait(for: "return !!document.querySelector('#loss') && !!document.querySelector('#loss').getAttribute('style')")

            // Two raters complete the study; what they submitted is what is stored.
            var submitted: [String: [String: Int]] = [:]  // rater → panorama key → score
            for (index, session) in [first, try driver.session()].enumerated() {
                try session.open(root + "/study/pilot/")
                var answers: [String: Int] = [:]
                for round in 0..<4 {
                    try session.wait(for: "return document.readyState === 'complete' && (!!document.querySelector('.done') || " +
                                     "document.querySelector('.viewer').dataset.ready === '1')")
                    let key = try XCTUnwrap(session.run("return document.querySelector('input[name=panorama]').value") as? String)
                    let score = index == 0 ? 9 - round : 2 + round * 2
                    try session.click("input[name=score][value='\(score)']")
                    if index == 0, round == 0 { try screenshot(session, "study") }
                    // The next page is a new document: wait until the submitted one is gone.
                    _ = try session.run("document.body.dataset.submitted = '1'")
                    try session.click("button[type=submit]")
                    try session.wait(for: "return document.readyState === 'complete' && !document.body.dataset.submitted")
                    answers[key] = score
                }
                try session.wait(for: "return !!document.querySelector('.done')")
                if index == 1 { try screenshot(session, "study-done") }
                let rater = try XCTUnwrap(session.cookies()[StudyFlow.raterCookie])
                submitted[rater] = answers
            }
            XCTAssertEqual(submitted.count, 2, "two raters")

            let panoramas = Dictionary(uniqueKeysWithValues: try fixture.registry.panoramas(ofStudy: fixture.study.id).map { ($0.id, $0) })
            var stored: [String: [String: Int]] = [:]
            for answer in try fixture.registry.answers(ofStudy: fixture.study.id) {
                stored[answer.rater, default: [:]][panoramas[answer.panoramaId]!.key] = answer.score
            }
            XCTAssertEqual(stored, submitted)
            let table = try ResultsTable.fromRegistry(fixture.registry, includePublished: false)
            for (kind, system) in [("model", "CAA"), ("baseline", "SD, independent")] {
                let scores = submitted.values.flatMap { answers in
                    answers.filter { key, _ in panoramas.values.first { $0.key == key }!.kind == kind }.values
                }
                let row = try XCTUnwrap(table.rows.first { $0.system.hasPrefix(system) })
                XCTAssertEqual(row.values[.userScore]!, Double(scores.reduce(0, +)) / Double(scores.count), accuracy: 1e-12, kind)
                XCTAssertTrue(row.notes[.userScore]!.contains("4 answers from 2 raters"), row.notes[.userScore]!)
            }
        }
    }
}
