import Experiments
import Foundation
import HTTPTypes
import Hummingbird

/// `backdrop serve` (docs/web.md): the results site over HTTP, with the rating study's forms. Every
/// request that fails validation gets a 4xx and changes nothing; files are served only from inside
/// the results folder.
public enum WebServer {
    /// Scripts Debian packages ship (libjs-three, libjs-chart.js), served by Backdrop itself: no CDN.
    public static let packagedScripts = [
        "three.min.js": (path: "/usr/share/javascript/three/three.min.js", package: "libjs-three"),
        "chart.min.js": (path: "/usr/share/javascript/chart.js/chart.min.js", package: "libjs-chart.js"),
    ]

    /// Backdrop's own assets (viewer, charts, style), from the module's resources.
    public static func asset(named name: String) -> URL? {
        if let packaged = packagedScripts[name] { return URL(fileURLWithPath: packaged.path) }
        guard ["viewer.js", "charts.js", "site.css"].contains(name) else { return nil }
        return Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Assets")
    }

    /// At most this much of a form is read; a study answer is under 200 bytes.
    static let maximumFormBytes = 4096

    public static func router(site: ResultsSite) -> Router<BasicRequestContext> {
        let router = Router()
        let flow = StudyFlow(registry: site.registry)
        router.get("/") { _, _ in try html(site.indexPage()) }
        router.get("index.html") { _, _ in try html(site.indexPage()) }
        router.get("table.html") { _, _ in try html(site.tablePage()) }
        router.get("studies.html") { _, _ in try html(site.studiesPage(serving: true)) }
        router.get("runs/:page") { _, context in
            let page = try context.parameters.require("page")
            guard page.hasSuffix(".html"), let id = Int64(page.dropLast(5)), let text = try site.runPage(id: id) else {
                throw HTTPError(.notFound, message: "no such run")
            }
            return html(text)
        }
        router.get("view/**") { _, context in
            guard var parts = decoded(context.parameters.getCatchAll()) else { throw HTTPError(.badRequest) }
            guard parts.last == "index.html" else { throw HTTPError(.notFound) }
            parts.removeLast()
            guard let text = try site.viewPage(folder: parts.joined(separator: "/")) else {
                throw HTTPError(.notFound, message: "no panorama there")
            }
            return html(text)
        }
        router.get("files/**") { _, context in
            guard let relative = decoded(context.parameters.getCatchAll())?.joined(separator: "/") else { throw HTTPError(.badRequest) }
            guard let url = site.resolveInside(relative) else { throw HTTPError(.notFound, message: "not a file of the results folder") }
            return try file(url)
        }
        router.get("assets/:name") { _, context in
            let name = try context.parameters.require("name")
            guard let url = asset(named: name) else { throw HTTPError(.notFound) }
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw HTTPError(.notFound, message: "\(url.path) is missing: install \(packagedScripts[name]?.package ?? "it") (make setup)")
            }
            return try file(url, cache: true)
        }

        // The rating study (docs/web.md#rating-study).
        @Sendable func study(_ context: BasicRequestContext) throws -> RunRegistry.Study {
            let name = try context.parameters.require("study")
            guard (try? RunRegistry.validateStudyName(name)) != nil, let study = try site.registry.study(named: name) else {
                throw HTTPError(.notFound, message: "no such study")
            }
            return study
        }
        router.get("study/:study") { request, context in
            let study = try study(context)
            var rater = request.cookies[StudyFlow.raterCookie]?.value ?? ""
            let isNew = !StudyFlow.isRaterID(rater)
            if isNew { rater = StudyFlow.newRater() }
            var response = html(site.raterPage(study, next: try flow.next(study, rater: rater)), private: true)
            if isNew {
                response.setCookie(Cookie(name: StudyFlow.raterCookie, value: rater, maxAge: 90 * 86400, path: "/study",
                                          httpOnly: true, sameSite: .strict))
            }
            return response
        }
        router.post("study/:study/answer") { request, context in
            let study = try study(context)
            var request = request
            let body: ByteBuffer
            do { body = try await request.collectBody(upTo: maximumFormBytes) } catch {
                throw HTTPError(.contentTooLarge, message: "a form of more than \(maximumFormBytes) bytes")
            }
            guard request.headers[.contentType]?.hasPrefix("application/x-www-form-urlencoded") == true,
                  let form = StudyFlow.parseForm(String(buffer: body)) else {
                throw HTTPError(.badRequest, message: "expected one url-encoded form")
            }
            let rater = request.cookies[StudyFlow.raterCookie]?.value
            switch try flow.submit(study, rater: rater, form: form) {
            case .success:
                return Response(status: .seeOther, headers: [.location: "/" + sitePath(["study", study.name]) + "/", .cacheControl: "no-store"])
            case .failure(let refusal):
                guard let rater, StudyFlow.isRaterID(rater) else { throw HTTPError(.init(code: refusal.status), message: refusal.message) }
                var page = html(site.raterPage(study, next: try flow.next(study, rater: rater), message: refusal.message), private: true)
                page.status = .init(code: refusal.status)
                return page
            }
        }
        router.get("study/:study/image/:file") { _, context in
            let study = try study(context)
            let name = try context.parameters.require("file")
            guard name.hasSuffix(".png"),
                  let panorama = try site.registry.panoramas(ofStudy: study.id).first(where: { $0.key == String(name.dropLast(4)) }) else {
                throw HTTPError(.notFound)
            }
            return try file(site.registry.resolve(panorama.folder).appendingPathComponent("panorama.png"))
        }
        return router
    }

    /// Percent-decoded path segments (a segment may then hold "/" or "..": `resolveInside` splits and
    /// checks the joined path again); nil when one is not valid percent-encoded UTF-8.
    static func decoded(_ segments: [Substring]) -> [String]? {
        var result: [String] = []
        for segment in segments {
            guard let text = String(segment).removingPercentEncoding else { return nil }
            result.append(text)
        }
        return result
    }

    /// The server on `host:port` (loopback unless told otherwise).
    public static func application(site: ResultsSite, host: String, port: Int) -> some ApplicationProtocol {
        Application(router: router(site: site), configuration: .init(address: .hostname(host, port: port), serverName: "backdrop"))
    }

    // MARK: Responses

    /// Headers every response carries: no sniffing, no framing, scripts only from this site.
    static let securityHeaders: HTTPFields = [
        HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        HTTPField.Name("Content-Security-Policy")!: "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'; form-action 'self'",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
    ]

    static func html(_ text: String, private isPrivate: Bool = false) -> Response {
        var headers = securityHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        if isPrivate { headers[.cacheControl] = "no-store" }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static let contentTypes = ["png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "json": "application/json",
                               "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8", "csv": "text/csv; charset=utf-8",
                               "md": "text/markdown; charset=utf-8", "tex": "text/plain; charset=utf-8", "txt": "text/plain; charset=utf-8",
                               "yaml": "text/plain; charset=utf-8"]

    /// A regular file of a known kind; anything else (folders, sockets, databases, HTML that would run
    /// as this site's) is not found.
    static func file(_ url: URL, cache: Bool = false) throws -> Response {
        guard let type = contentTypes[url.pathExtension.lowercased()],
              let attributes = try? FileManager.default.attributesOfItem(atPath: url.path),
              attributes[.type] as? FileAttributeType == .typeRegular,
              let data = FileManager.default.contents(atPath: url.path) else {
            throw HTTPError(.notFound, message: "not a file this site serves")
        }
        var headers = securityHeaders
        headers[.contentType] = type
        headers[.cacheControl] = cache ? "max-age=3600" : "no-cache"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
