import Foundation
import WebView
import XCTest

/// Just enough of the W3C WebDriver protocol to drive headless Chromium through Debian's
/// chromedriver: sessions, navigation, scripts, elements, pointer actions, cookies, screenshots.
final class WebDriver {
    let process = Process()
    let base: URL

    /// Starts chromedriver on `port`; nil when Chromium or chromedriver is not installed.
    init?(port: Int) throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver"),
              FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium") else { return nil }
        base = URL(string: "http://127.0.0.1:\(port)")!
        process.executableURL = URL(fileURLWithPath: "/usr/bin/chromedriver")
        process.arguments = ["--port=\(port)", "--allowed-ips=127.0.0.1"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let status = try? request("GET", "status"), (status["value"] as? [String: Any])?["ready"] as? Bool == true { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw WebDriverError("chromedriver did not become ready on port \(port)")
    }

    deinit {
        process.terminate()
        process.waitUntilExit()
    }

    struct WebDriverError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// One JSON request; the response's JSON object (LoopbackHTTP: swift-corelibs' URLSession fails
    /// on chromedriver's replies with "Failed writing header").
    @discardableResult
    func request(_ method: String, _ path: String, _ body: [String: Any]? = nil) throws -> [String: Any] {
        let payload = try body.map { try JSONSerialization.data(withJSONObject: $0) } ?? Data()
        let reply = try LoopbackHTTP.request(port: base.port!, method: method, path: "/" + path,
                                             headers: body == nil ? [:] : ["Content-Type": "application/json"], body: payload)
        guard let object = try JSONSerialization.jsonObject(with: reply.body) as? [String: Any] else {
            throw WebDriverError("\(method) \(path): not a JSON object")
        }
        if let value = object["value"] as? [String: Any], let error = value["error"] as? String {
            throw WebDriverError("\(method) \(path): \(error): \(value["message"] as? String ?? "")")
        }
        return object
    }

    /// A browser of its own (own profile, own cookies).
    func session() throws -> Session {
        let arguments = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--use-angle=swiftshader",
                         "--enable-unsafe-swiftshader", "--window-size=1280,1000", "--hide-scrollbars"]
        let response = try request("POST", "session", ["capabilities": ["alwaysMatch": [
            "browserName": "chrome", "goog:chromeOptions": ["binary": "/usr/bin/chromium", "args": arguments]]]])
        guard let id = (response["value"] as? [String: Any])?["sessionId"] as? String else { throw WebDriverError("no session id") }
        return Session(driver: self, id: id)
    }

    final class Session {
        let driver: WebDriver
        let id: String
        static let elementKey = "element-6066-11e4-a52e-4f735466cecf"

        init(driver: WebDriver, id: String) { (self.driver, self.id) = (driver, id) }
        deinit { _ = try? driver.request("DELETE", "session/\(id)") }

        func open(_ url: String) throws { try driver.request("POST", "session/\(id)/url", ["url": url]) }

        func run(_ script: String, _ arguments: [Any] = []) throws -> Any? {
            try driver.request("POST", "session/\(id)/execute/sync", ["script": script, "args": arguments])["value"]
        }

        func element(_ css: String) throws -> String {
            let value = try driver.request("POST", "session/\(id)/element", ["using": "css selector", "value": css])["value"]
            guard let element = (value as? [String: Any])?[Self.elementKey] as? String else { throw WebDriverError("no element \(css)") }
            return element
        }

        func click(_ css: String) throws { try driver.request("POST", "session/\(id)/element/\(try element(css))/click", [:]) }

        /// Presses the mouse on the element's centre, moves by (dx, dy) and releases.
        func drag(_ css: String, dx: Int, dy: Int) throws {
            let origin = [Self.elementKey: try element(css)]
            try driver.request("POST", "session/\(id)/actions", ["actions": [[
                "type": "pointer", "id": "mouse", "parameters": ["pointerType": "mouse"],
                "actions": [["type": "pointerMove", "origin": origin, "x": 0, "y": 0], ["type": "pointerDown", "button": 0],
                            ["type": "pointerMove", "duration": 300, "origin": "pointer", "x": dx, "y": dy],
                            ["type": "pointerUp", "button": 0]]]]])
            try driver.request("DELETE", "session/\(id)/actions")
        }

        func cookies() throws -> [String: String] {
            let list = try driver.request("GET", "session/\(id)/cookie")["value"] as? [[String: Any]] ?? []
            return Dictionary(list.compactMap { c in (c["name"] as? String).map { ($0, c["value"] as? String ?? "") } }) { a, _ in a }
        }

        /// The window as PNG bytes.
        func screenshot() throws -> Data {
            guard let text = try driver.request("GET", "session/\(id)/screenshot")["value"] as? String,
                  let data = Data(base64Encoded: text) else { throw WebDriverError("no screenshot") }
            return data
        }

        /// Polls `script` (returning a truthy value when done) for up to `seconds`.
        func wait(for script: String, seconds: Double = 30) throws {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if let value = try run(script), (value as? Bool) == true { return }
                Thread.sleep(forTimeInterval: 0.1)
            }
            throw WebDriverError("timed out waiting for: \(script)")
        }
    }
}
