import Experiments
import Foundation
import Hummingbird
import Media
import Torch
import WebView

/// `make bench-serve`: 200 raters at once against `backdrop serve`'s study pages on loopback. Each
/// opens the study, answers its panoramas one by one (POST, then GET the next), and finally replays
/// its first answer, which must be refused. Prints requests/s and latency percentiles, then checks the
/// database: every accepted answer stored once, nothing lost, nothing doubled.
enum ServeBench {
    static func run(_ options: Options) throws {
        let raters = 200, panoramaCount = 12, perRater = 6
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("backdrop-serve-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let registry = try RunRegistry(url: root.appendingPathComponent("runs.sqlite"))
        let runID = try registry.startRun(name: "bench", configJSON: "{}", outputDir: root.appendingPathComponent("runs/bench").path)
        var panoramas: [(system: String, runId: Int64?, kind: String, prompt: String, folder: URL)] = []
        for i in 0..<panoramaCount {
            let folder = root.appendingPathComponent("panoramas/\(i)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let image = try Tensor.rand([3, 256, 512], dtype: .float32)
            try Image(tensor: image, range: .unit).write(to: folder.appendingPathComponent("panorama.png"))
            panoramas.append((i % 2 == 0 ? "bench" : "bench --baseline", runID, i % 2 == 0 ? "model" : "baseline", "room \(i / 2)", folder))
        }
        let study = try registry.createStudy(name: "load", perRater: perRater, panoramas: panoramas)

        let port = try ProcessGroup.freePort()
        let app = Application(router: WebServer.router(site: ResultsSite(registry: registry)),
                              configuration: .init(address: .hostname("127.0.0.1", port: port)))
        let server = Task.detached { try await app.run() }
        defer { server.cancel() }
        while (try? LoopbackHTTP.request(port: port, method: "GET", path: "/index.html")) == nil { Thread.sleep(forTimeInterval: 0.05) }

        final class Tally: @unchecked Sendable {
            let lock = NSLock()
            var latencies: [Double] = []
            var accepted = 0, refusedReplays = 0, failures: [String] = []
            func add(_ seconds: Double) { lock.withLock { latencies.append(seconds) } }
        }
        let tally = Tally()
        @Sendable func timed(_ method: String, _ path: String, headers: [String: String] = [:], body: String = "") throws -> LoopbackHTTP.Reply {
            let start = DispatchTime.now().uptimeNanoseconds
            let reply = try LoopbackHTTP.request(port: port, method: method, path: path, headers: headers, body: Data(body.utf8))
            tally.add(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            return reply
        }
        @Sendable func field(_ name: String, _ text: String) -> String? {
            text.range(of: "name=\"\(name)\" value=\"").map { String(text[$0.upperBound...].prefix { $0 != "\"" }) }
        }
        // One thread per rater (a dispatch pool would run only as many at once as there are cores),
        // all released together.
        let done = DispatchGroup()
        let gate = NSCondition()
        nonisolated(unsafe) var open = false
        @Sendable func rate(_ rater: Int) {
            gate.lock()
            while !open { gate.wait() }
            gate.unlock()
            defer { done.leave() }
            do {
                var page = try timed("GET", "/study/load/")
                guard let cookie = page.headers["set-cookie"]?.split(separator: ";").first.map(String.init) else {
                    throw LoopbackHTTP.Failure("no cookie")
                }
                var first: String?
                for answer in 0..<perRater {
                    guard let token = field("token", page.text), let key = field("panorama", page.text) else {
                        throw LoopbackHTTP.Failure("no form on page \(answer + 1)")
                    }
                    let form = "panorama=\(key)&score=\((rater + answer) % 10 + 1)&token=\(token)"
                    first = first ?? form
                    let posted = try timed("POST", "/study/load/answer",
                                           headers: ["Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie], body: form)
                    guard posted.status == 303 else { throw LoopbackHTTP.Failure("answer \(answer + 1): status \(posted.status)") }
                    tally.lock.withLock { tally.accepted += 1 }
                    page = try timed("GET", "/study/load/", headers: ["Cookie": cookie])
                }
                let replay = try timed("POST", "/study/load/answer",
                                       headers: ["Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie], body: first!)
                if replay.status == 409 { tally.lock.withLock { tally.refusedReplays += 1 } }
            } catch {
                tally.lock.withLock { tally.failures.append("rater \(rater): \(error)") }
            }
        }
        for rater in 0..<raters {
            done.enter()
            let thread = Thread { rate(rater) }
            thread.stackSize = 512 * 1024
            thread.start()
        }
        Thread.sleep(forTimeInterval: 0.5)
        let begin = DispatchTime.now().uptimeNanoseconds
        gate.lock()
        open = true
        gate.broadcast()
        gate.unlock()
        done.wait()
        let wall = Double(DispatchTime.now().uptimeNanoseconds - begin) / 1e9
        let sorted = tally.latencies.sorted()
        func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] * 1000 }
        let stored = try registry.answers(ofStudy: study.id)
        let distinct = Set(stored.map { "\($0.rater)/\($0.panoramaId)" }).count
        print(String(format: "%d raters × %d answers on loopback: %d requests in %.2f s = %.0f requests/s; latency p50 %.1f ms, p99 %.1f ms, max %.1f ms",
                     raters, perRater, sorted.count, wall, Double(sorted.count) / wall, percentile(0.5), percentile(0.99), sorted.last! * 1000))
        print("answers accepted \(tally.accepted), stored \(stored.count), distinct (rater, panorama) \(distinct), " +
              "replays refused \(tally.refusedReplays)/\(raters), failures \(tally.failures.count)")
        for failure in tally.failures.prefix(5) { print("  \(failure)") }
        let consistent = stored.count == tally.accepted && distinct == stored.count && tally.accepted == raters * perRater
            && tally.refusedReplays == raters
        print(consistent ? "no lost or doubled answers" : "MISMATCH: lost or doubled answers")
        if !consistent { exit(1) }
    }
}
