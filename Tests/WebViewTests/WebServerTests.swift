import BackdropTestSupport
import Experiments
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Media
import Torch
import XCTest

@testable import WebView

/// A results folder with one run (metrics, a panorama folder), a published evaluation and a study
/// of two systems over two prompts.
struct SiteFixture {
    let root: URL
    let registry: RunRegistry
    let runID: Int64
    let panoramaFolder: String
    let study: RunRegistry.Study

    init(_ test: XCTestCase, perRater: Int? = nil) throws {
        root = try TestSupport.temporaryDirectory("web")
        test.addTeardownBlock { [root] in try? FileManager.default.removeItem(at: root) }
        registry = try RunRegistry(url: root.appendingPathComponent("runs.sqlite"))
        let output = root.appendingPathComponent("runs/mini")
        runID = try registry.startRun(name: "mini", configJSON: #"{"task":"caa","dataset":{"kind":"synthrooms"}}"#, outputDir: output.path)
        for step in 1...5 { try registry.log(.init(runId: runID, step: step, loss: 1 / Double(step), lr: 1e-4, stepsPerSecond: 2)) }
        try registry.finishRun(runID, status: "finished")
        try registry.record(.init(runId: runID, system: "model", checkpoint: nil, split: "test", count: 16, fid: 120.5, clipScore: 30))
        // Two panoramas with visibly different content, as the generator writes them.
        var folders: [URL] = []
        for (i, name) in ["eval/test/model/00000_a", "eval/test/baseline/00000_a"].enumerated() {
            let folder = output.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let ramp = try Tensor.arange(0, 256, dtype: .float32).div(255).reshape([1, 1, 256]).expand([3, 128, 256]).contiguous()
            let image = i == 0 ? ramp : try ramp.flip([2]).contiguous()
            try Image(tensor: image, range: .unit).write(to: folder.appendingPathComponent("panorama.png"))
            try Image(tensor: image.narrow(dim: 2, start: 0, length: 128).contiguous(), range: .unit).write(to: folder.appendingPathComponent("view_0.png"))
            try Data(#"{"prompts": ["a kitchen with a white wall"]}"#.utf8).write(to: folder.appendingPathComponent("generation.json"))
            folders.append(folder)
        }
        panoramaFolder = "runs/mini/eval/test/model/00000_a"
        study = try registry.createStudy(name: "pilot", perRater: perRater, panoramas: [
            ("mini", runID, "model", "a kitchen", folders[0]), ("mini", runID, "model", "a bedroom", folders[0]),
            ("mini --baseline", runID, "baseline", "a kitchen", folders[1]), ("mini --baseline", runID, "baseline", "a bedroom", folders[1]),
        ])
    }

    var site: ResultsSite { ResultsSite(registry: registry) }
    var application: some ApplicationProtocol { Application(router: WebServer.router(site: site)) }
}

extension TestResponse {
    var text: String { String(buffer: body) }
}

/// The form fields and the rater cookie of a study page.
struct RaterPage {
    var cookie: String
    var token: String?
    var panorama: String?

    init(_ response: TestResponse, cookie existing: String? = nil) {
        let text = response.text
        func field(_ name: String) -> String? {
            guard let range = text.range(of: "name=\"\(name)\" value=\"") else { return nil }
            return String(text[range.upperBound...].prefix { $0 != "\"" })
        }
        let set = response.headers[.setCookie].flatMap { $0.split(separator: ";").first }.map(String.init)
        cookie = set ?? existing ?? ""
        token = field("token")
        panorama = field("panorama")
    }
}

final class WebServerTests: XCTestCase {
    func get(_ client: some TestClientProtocol, _ uri: String, cookie: String? = nil) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        if let cookie { headers[.cookie] = cookie }
        return try await client.execute(uri: uri, method: .get, headers: headers)
    }

    func post(_ client: some TestClientProtocol, _ uri: String, form: String, cookie: String?,
              contentType: String = "application/x-www-form-urlencoded") async throws -> TestResponse {
        var headers: HTTPFields = [.contentType: contentType]
        if let cookie { headers[.cookie] = cookie }
        return try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: form))
    }

    func testEveryPageAndFile() async throws {
        let fixture = try SiteFixture(self)
        try await fixture.application.test(.router) { client in
            for uri in ["/", "/index.html", "/table.html", "/studies.html", "/runs/\(fixture.runID).html",
                        "/view/\(fixture.panoramaFolder)/index.html", "/assets/viewer.js", "/assets/charts.js", "/assets/site.css"] {
                let response = try await self.get(client, uri)
                XCTAssertEqual(response.status, .ok, uri)
                XCTAssertEqual(response.headers[HTTPField.Name("X-Content-Type-Options")!], "nosniff", uri)
            }
            let index = try await self.get(client, "/").text
            XCTAssertTrue(index.contains("<a href=\"runs/\(fixture.runID).html\">mini</a>"), index)
            XCTAssertTrue(index.contains(">caa<") && index.contains(">finished<") && index.contains(">5<"), index)
            let run = try await self.get(client, "/runs/\(fixture.runID).html").text
            XCTAssertTrue(run.contains("<canvas id=\"loss\">") && run.contains("\"loss\":[1,0.5,"), "curves: \(run)")
            XCTAssertTrue(run.contains("assets/chart.min.js"))
            XCTAssertTrue(run.contains("href=\"view/\(fixture.panoramaFolder)/index.html\""), "panorama link")
            XCTAssertTrue(run.contains("120.500"), "the evaluation")
            let view = try await self.get(client, "/view/\(fixture.panoramaFolder)/index.html").text
            XCTAssertTrue(view.contains("data-panorama=\"files/\(fixture.panoramaFolder)/panorama.png\""), view)
            XCTAssertTrue(view.contains("<base href=\"\(String(repeating: "../", count: 7))\">"), "base from the page's depth, 7")
            XCTAssertTrue(view.contains("a kitchen with a white wall"))
            let encoded = try await self.get(client, "/files/runs/mini/eval/test/model/00000%5Fa/panorama.png")
            XCTAssertEqual(encoded.status, .ok, "percent-encoded segments are decoded")
            let png = try await self.get(client, "/files/\(fixture.panoramaFolder)/panorama.png")
            XCTAssertEqual(png.status, .ok)
            XCTAssertEqual(png.headers[.contentType], "image/png")
            XCTAssertEqual(Array(png.body.readableBytesView.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
            let table = try await self.get(client, "/table.html").text
            XCTAssertTrue(table.contains("<a href=\"runs/\(fixture.runID).html#evaluations\">120.50</a>"), "cells link to their evaluation")
            XCTAssertTrue(table.contains("seed paper: model"), "published rows beside")
            if FileManager.default.fileExists(atPath: "/usr/share/javascript/three/three.min.js") {
                let three = try await self.get(client, "/assets/three.min.js")
                XCTAssertEqual(three.status, .ok)
                XCTAssertGreaterThan(three.body.readableBytes, 100_000)
            }
            for missing in ["/runs/99.html", "/runs/x.html", "/view/runs/index.html", "/assets/secret.js", "/study/nope/"] {
                let status = try await self.get(client, missing).status
                XCTAssertEqual(status, .notFound, missing)
            }
        }
    }

    /// Paths from URLs never leave the results folder, nor hand out the registry.
    func testTraversalIsRefused() async throws {
        let fixture = try SiteFixture(self)
        let outside = try TestSupport.temporaryDirectory("outside")
        addTeardownBlock { try? FileManager.default.removeItem(at: outside) }
        try Data("secret".utf8).write(to: outside.appendingPathComponent("secret.txt"))
        try Data("<script>alert(1)</script>".utf8).write(to: fixture.root.appendingPathComponent("page.html"))
        try FileManager.default.createSymbolicLink(at: fixture.root.appendingPathComponent("link"), withDestinationURL: outside)
        try await fixture.application.test(.router) { client in
            for uri in ["/files/../secret.txt", "/files/%2e%2e/%2e%2e/etc/passwd", "/files/..%2f..%2fetc%2fpasswd", "/files/runs.sqlite",
                        "/files/runs.sqlite-wal", "/files/link/secret.txt", "/files//etc/passwd", "/files/runs", "/view/../../index.html",
                        "/view/link/index.html", "/files/runs/mini/eval/test/model/00000_a/../../../../../runs.sqlite",
                        "/files/%2e%2e%2fsecret.txt", "/files/runs%2f..%2f..%2fsecret.txt", "/files/%ff", "/files/page.html"] {
                let response = try await self.get(client, uri)
                XCTAssertTrue((400..<500).contains(Int(response.status.code)), "\(uri): \(response.status)")
                XCTAssertNotEqual(response.text, "secret", uri)
                XCTAssertFalse(response.text.hasPrefix("SQLite format"), uri)
            }
        }
        XCTAssertNil(fixture.site.resolveInside("link/secret.txt"))
        XCTAssertNil(fixture.site.resolveInside("../secret.txt"))
        XCTAssertNotNil(fixture.site.resolveInside(fixture.panoramaFolder + "/panorama.png"))
    }

    /// A rater's whole way through a study, and every malformed answer refused without a change.
    func testStudyFlowAndBadAnswers() async throws {
        let fixture = try SiteFixture(self)
        try await fixture.application.test(.router) { client in
            let first = try await self.get(client, "/study/pilot/")
            XCTAssertEqual(first.status, .ok)
            let page = RaterPage(first)
            XCTAssertTrue(page.cookie.hasPrefix("backdrop_rater="), page.cookie)
            XCTAssertTrue(first.headers[.setCookie]?.contains("HttpOnly") == true && first.headers[.setCookie]?.contains("SameSite=Strict") == true)
            let token = try XCTUnwrap(page.token), key = try XCTUnwrap(page.panorama)
            XCTAssertFalse(first.text.contains("baseline") || first.text.contains("runs/"), "blind: nothing names a system or run")
            XCTAssertTrue(first.text.contains("study/pilot/image/\(key).png"))
            let image = try await self.get(client, "/study/pilot/image/\(key).png")
            XCTAssertEqual(image.headers[.contentType], "image/png")

            func answers() throws -> Int { try fixture.registry.answers(ofStudy: fixture.study.id).count }
            // Malformed answers: a 4xx each, nothing stored.
            let bad: [(String, String?, String, Int)] = [
                ("panorama=\(key)&score=0&token=\(token)", page.cookie, "application/x-www-form-urlencoded", 400),
                ("panorama=\(key)&score=11&token=\(token)", page.cookie, "application/x-www-form-urlencoded", 400),
                ("panorama=\(key)&score=x&token=\(token)", page.cookie, "application/x-www-form-urlencoded", 400),
                ("panorama=\(key)&score=5.0&token=\(token)", page.cookie, "application/x-www-form-urlencoded", 400),
                ("panorama=\(key)&score=05&token=\(token)", page.cookie, "application/x-www-form-urlencoded", 400),
                ("panorama=\(key)&score=5&score=6&token=\(token)", page.cookie, "application/x-www-form-urlencoded", 400),
                ("panorama=\(key)&score=5", page.cookie, "application/x-www-form-urlencoded", 403),
                ("panorama=\(key)&score=5&token=\(String(token.reversed()))", page.cookie, "application/x-www-form-urlencoded", 403),
                ("panorama=\(key)&score=5&token=\(token)", nil, "application/x-www-form-urlencoded", 403),
                ("panorama=\(key)&score=5&token=\(token)", "backdrop_rater=\(String(repeating: "0", count: 32))", "application/x-www-form-urlencoded", 403),
                ("panorama=ffff&score=5&token=\(token)", page.cookie, "application/x-www-form-urlencoded", 400),
                ("{\"score\": 5}", page.cookie, "application/json", 400),
                ("panorama=\(key)&score=5&token=\(token)&pad=" + String(repeating: "a", count: 5000), page.cookie,
                 "application/x-www-form-urlencoded", 413),
            ]
            for (form, cookie, type, status) in bad {
                let response = try await self.post(client, "/study/pilot/answer", form: form, cookie: cookie, contentType: type)
                XCTAssertEqual(Int(response.status.code), status, form.prefix(80) + " cookie: \(cookie ?? "none")")
                XCTAssertEqual(try answers(), 0, form)
            }
            let unknownStudy = try await self.post(client, "/study/other/answer", form: "panorama=\(key)&score=5&token=\(token)", cookie: page.cookie)
            XCTAssertEqual(unknownStudy.status, .notFound)

            // A good answer is stored and leads to the next panorama; replaying it changes nothing.
            let good = try await self.post(client, "/study/pilot/answer", form: "panorama=\(key)&score=7&token=\(token)", cookie: page.cookie)
            XCTAssertEqual(good.status, .seeOther)
            XCTAssertEqual(good.headers[.location], "/study/pilot/")
            XCTAssertEqual(try answers(), 1)
            let replay = try await self.post(client, "/study/pilot/answer", form: "panorama=\(key)&score=2&token=\(token)", cookie: page.cookie)
            XCTAssertEqual(replay.status, .conflict)
            XCTAssertEqual(try fixture.registry.answers(ofStudy: fixture.study.id).map(\.score), [7])

            // The rest of the study, then the thanks.
            var seen = [key]
            for score in [3, 9, 4] {
                let next = RaterPage(try await self.get(client, "/study/pilot/", cookie: page.cookie), cookie: page.cookie)
                let nextKey = try XCTUnwrap(next.panorama)
                XCTAssertFalse(seen.contains(nextKey))
                seen.append(nextKey)
                let response = try await self.post(client, "/study/pilot/answer", form: "panorama=\(nextKey)&score=\(score)&token=\(token)",
                                                   cookie: page.cookie)
                XCTAssertEqual(response.status, .seeOther)
            }
            let done = try await self.get(client, "/study/pilot/", cookie: page.cookie)
            XCTAssertTrue(done.text.contains("you rated all 4 panoramas"), done.text)
            let results = try fixture.registry.studyResults(fixture.study)
            XCTAssertEqual(results.map(\.answers), [2, 2])
            XCTAssertEqual(results.map(\.raters), [1, 1])
            let studies = try await self.get(client, "/studies.html").text
            XCTAssertTrue(studies.contains("mini --baseline"), studies)
        }
    }

    /// `--per-rater K`: each rater sees K panoramas, in an order of the rater's own.
    func testPerRaterOrder() throws {
        let fixture = try SiteFixture(self, perRater: 2)
        let flow = StudyFlow(registry: fixture.registry)
        let orders = try (0..<12).map { _ in try flow.sequence(fixture.study, rater: StudyFlow.newRater()).map(\.key) }
        XCTAssertTrue(orders.allSatisfy { $0.count == 2 })
        XCTAssertGreaterThan(Set(orders.map { $0.joined() }).count, 1, "raters do not all see the same order")
        let rater = StudyFlow.newRater()
        XCTAssertEqual(try flow.sequence(fixture.study, rater: rater), try flow.sequence(fixture.study, rater: rater), "stable per rater")
    }

    /// The study's US reaches Table I with its n.
    func testTableTakesTheUserScore() throws {
        let fixture = try SiteFixture(self)
        let panoramas = try fixture.registry.panoramas(ofStudy: fixture.study.id)
        for (rater, scores) in [("a", [8, 6, 3, 2]), ("b", [9, 7, 4, 1])] {
            for (panorama, score) in zip(panoramas, scores) {
                XCTAssertEqual(try fixture.registry.recordAnswer(studyID: fixture.study.id, panoramaID: panorama.id, rater: rater, score: score),
                               .recorded)
            }
        }
        let table = try ResultsTable.fromRegistry(fixture.registry, includePublished: false)
        let model = try XCTUnwrap(table.rows.first { $0.system.hasPrefix("CAA") })
        let baseline = try XCTUnwrap(table.rows.first { $0.system.hasPrefix("SD, independent") })
        XCTAssertEqual(model.values[.userScore], 7.5)
        XCTAssertEqual(baseline.values[.userScore], 2.5)
        XCTAssertTrue(model.notes[.userScore]?.contains("study pilot: 4 answers from 2 raters, 95 % CI ±") == true, "\(model.notes)")
        XCTAssertEqual(model.values[.fid], 120.5, "the evaluation's numbers stay")
        XCTAssertTrue(table.render(.md).contains("7.50"))
    }

    /// The 95 % interval uses Student's t: quantiles against scipy.stats.t.ppf(0.975, ν).
    func testStudentTQuantiles() {
        for (nu, expected) in [(1.0, 12.706204736174698), (4, 2.7764451051977987), (9, 2.2621571627409915), (29, 2.045229642132703),
                               (199, 1.971956544249395)] {
            XCTAssertEqual(StudentT.quantile(0.975, degreesOfFreedom: nu), expected, accuracy: 1e-9 * expected, "ν = \(nu)")
        }
        // mean 5, s = √(10/3) for 1…4 +3.5… (values 2, 4, 6, 8): half-width t(3)·s/2.
        let interval = MeanInterval([2, 4, 6, 8])
        XCTAssertEqual(interval.mean, 5)
        XCTAssertEqual(try XCTUnwrap(interval.halfWidth95), 3.182446305284263 * (20.0 / 3).squareRoot() / 2, accuracy: 1e-9)
        XCTAssertNil(MeanInterval([5]).halfWidth95)
    }

    /// `backdrop report`: every page, and every file a page refers to, exists in the folder.
    func testStaticReportIsSelfContained() throws {
        let fixture = try SiteFixture(self)
        guard FileManager.default.fileExists(atPath: "/usr/share/javascript/three/three.min.js") else {
            throw XCTSkip("libjs-three is not installed (make setup)")
        }
        let out = fixture.root.deletingLastPathComponent().appendingPathComponent("report-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: out) }
        let summary = try StaticReport(site: fixture.site).write(to: out)
        XCTAssertGreaterThanOrEqual(summary.pages, 6)
        let pages = FileManager.default.enumerator(at: out, includingPropertiesForKeys: nil)!.compactMap { $0 as? URL }
            .filter { $0.pathExtension == "html" }
        XCTAssertEqual(pages.count, summary.pages)
        var references = 0
        for page in pages {
            let html = try String(contentsOf: page, encoding: .utf8)
            let base = try XCTUnwrap(html.range(of: "<base href=\"").map { String(html[$0.upperBound...].prefix { $0 != "\"" }) })
            for attribute in ["src=\"", "href=\"", "data-panorama=\""] {
                var rest = Substring(html)
                while let range = rest.range(of: attribute) {
                    let target = String(rest[range.upperBound...].prefix { $0 != "\"" && $0 != "#" })
                    rest = rest[range.upperBound...]
                    if attribute == "data-panorama=\"" {
                        XCTAssertTrue(target.hasPrefix("data:image/png;base64,"), "a report's viewer carries its panorama")
                        continue
                    }
                    guard !target.isEmpty, !target.hasPrefix("http"), target != base else { continue }
                    let url = page.deletingLastPathComponent().appendingPathComponent(base).appendingPathComponent(target.removingPercentEncoding!)
                    XCTAssertTrue(FileManager.default.fileExists(atPath: url.standardizedFileURL.path), "\(page.lastPathComponent) → \(target)")
                    references += 1
                }
            }
        }
        XCTAssertGreaterThan(references, 20)
    }
}
