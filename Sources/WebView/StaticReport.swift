import Experiments
import Foundation

/// `backdrop report --out DIR`: the site as files that open without a server (docs/web.md#report):
/// the same pages at the same paths as `serve`, the panoramas they show and the scripts they load.
/// The viewer's panorama is inside its page: from file:// a browser will not hand a neighbouring
/// image to WebGL.
/// Written into a staging folder and moved into place whole, so a failed report leaves the old one.
public struct StaticReport {
    public let site: ResultsSite

    public init(site: ResultsSite) { self.site = site }

    public struct Summary: Equatable {
        public var pages: Int
        public var files: Int
    }

    @discardableResult
    public func write(to destination: URL) throws -> Summary {
        let fileManager = FileManager.default
        let staging = destination.deletingLastPathComponent()
            .appendingPathComponent(".\(destination.lastPathComponent).\(UUID().uuidString).tmp")
        defer { try? fileManager.removeItem(at: staging) }
        var summary = Summary(pages: 0, files: 0)
        func page(_ path: String, _ html: String) throws {
            let url = staging.appendingPathComponent(path.removingPercentEncoding ?? path)
            try fileManager.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(html.utf8).write(to: url)
            summary.pages += 1
        }
        func copy(_ source: URL, to path: String) throws {
            let url = staging.appendingPathComponent(path)
            guard !fileManager.fileExists(atPath: url.path) else { return }
            try fileManager.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try fileManager.copyItem(at: source, to: url)
            summary.files += 1
        }

        try page("index.html", site.indexPage())
        try page("table.html", site.tablePage())
        try page("studies.html", site.studiesPage(serving: false))
        for run in try site.registry.runs() {
            if let html = try site.runPage(id: run.id) { try page("runs/\(run.id).html", html) }
            for folder in site.shownPanoramaFolders(of: run) {
                let relative = site.relativePath(folder)
                if let html = try site.viewPage(folder: relative, embedPanorama: true) { try page("view/\(relative)/index.html", html) }
                let files = (try? fileManager.contentsOfDirectory(atPath: folder.path)) ?? []
                for name in files where name == "panorama.png" || (name.hasPrefix("view_") && name.hasSuffix(".png")) {
                    try copy(folder.appendingPathComponent(name), to: "files/\(relative)/\(name)")
                }
            }
        }
        for name in ["three.min.js", "chart.min.js", "viewer.js", "charts.js", "site.css"] {
            guard let source = WebServer.asset(named: name), fileManager.fileExists(atPath: source.path) else {
                throw ReportError("asset \(name) is missing" + (WebServer.packagedScripts[name].map { ": install \($0.package) (make setup)" } ?? ""))
            }
            try copy(source, to: "assets/\(name)")
        }
        if fileManager.fileExists(atPath: destination.path) { try fileManager.removeItem(at: destination) }
        try fileManager.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
        try fileManager.moveItem(at: staging, to: destination)
        return summary
    }
}

public struct ReportError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
