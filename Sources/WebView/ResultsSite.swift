import Experiments
import Foundation
import Geometry

/// The pages of `backdrop serve` and `backdrop report` (docs/web.md), rendered from the run registry
/// and the folders beside it. Every page has one path below the site root, the same for the server
/// and for the files a report writes:
/// - `index.html`: runs; `runs/<id>.html`: a run (config, curves, panoramas, evaluations);
/// - `view/<folder>/index.html`: one panorama in the 360° viewer, with its views, prompts and cameras;
/// - `table.html`: Table I; `studies.html`: rating studies and their results;
/// - `files/<path>`: a file of the results folder; `assets/<name>`: scripts and style.
public struct ResultsSite: Sendable {
    public let registry: RunRegistry
    public var root: URL { registry.root }
    /// Panoramas listed per folder of a run (an evaluation may hold thousands).
    public var panoramasPerFolder = 24

    public init(registry: RunRegistry) { self.registry = registry }

    // MARK: Runs

    struct RunSummary {
        var run: RunRegistry.Run
        var task: String
        var steps: Int
        var wallSeconds: Double?
    }

    func summaries() throws -> [RunSummary] {
        try registry.runs().reversed().map { run in
            let config = (try? JSONSerialization.jsonObject(with: Data(run.config.utf8))) as? [String: Any]
            let task = config?["task"] as? String ?? "caa"
            let end = run.endedAt ?? (run.status == "running" ? Date() : nil)
            return RunSummary(run: run, task: task, steps: try registry.lastStep(run.id) ?? 0, wallSeconds: end.map { $0.timeIntervalSince(run.startedAt) })
        }
    }

    public func indexPage() throws -> String {
        let rows = try summaries().map { s in
            """
            <tr><td><a href="runs/\(s.run.id).html">\(escape(s.run.name))</a></td><td>\(escape(s.task))</td>\
            <td class="status-\(escape(s.run.status))">\(escape(s.run.status))</td><td class="num">\(s.steps)</td>\
            <td class="num">\(s.wallSeconds.map(duration) ?? "—")</td><td>\(escape(dateText(s.run.startedAt)))</td>\
            <td><code>\(escape(String((s.run.gitCommit ?? "—").prefix(12))))</code></td></tr>
            """
        }
        let body = rows.isEmpty ? "<p>No runs in \(escape(registry.url.path)) yet (<code>backdrop train</code> records them).</p>" : """
            <table class="runs"><thead><tr><th>run</th><th>task</th><th>status</th><th>steps</th><th>wall time</th><th>started</th>\
            <th>commit</th></tr></thead><tbody>
            \(rows.joined(separator: "\n"))
            </tbody></table>
            """
        return Page(title: "Runs", path: "index.html", body: body).render()
    }

    public func runPage(id: Int64) throws -> String? {
        guard let run = try registry.run(id) else { return nil }
        let metrics = try registry.metrics(id)
        struct Curve: Encodable { var step: [Int]; var loss: [Double]; var lr: [Double] }
        let curve = Curve(step: metrics.map(\.step), loss: metrics.map(\.loss), lr: metrics.map(\.lr))
        let config = prettyJSON(run.config)
        let folder = registry.directory(of: run)
        let groups = panoramaGroups(in: folder)
        let gallery = groups.map { parent, items -> String in
            let shown = items.prefix(panoramasPerFolder).map { url -> String in
                let path = relativePath(url)
                return """
                    <a class="thumb" href="\(sitePath(["view"] + path.split(separator: "/").map(String.init)))/index.html">\
                    <img src="\(sitePath(["files"] + (path + "/panorama.png").split(separator: "/").map(String.init)))" \
                    alt="panorama \(escape(url.lastPathComponent))" loading="lazy"><span>\(escape(url.lastPathComponent))</span></a>
                    """
            }
            let more = items.count > shown.count ? "<p>… and \(items.count - shown.count) more</p>" : ""
            return "<h3>\(escape(relativePath(parent)))</h3><div class=\"gallery\">\(shown.joined())</div>\(more)"
        }
        let evaluations = try registry.evaluations(runID: id)
        let evaluationRows = evaluations.enumerated().map { index, e in
            func value(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "—" }
            return """
                <tr id="evaluation-\(index + 1)"><td>\(escape(e.system))</td><td>\(escape(e.split))</td><td class="num">\(e.count)</td>\
                <td>\(escape(e.checkpoint.map { URL(fileURLWithPath: $0).lastPathComponent } ?? "—"))</td>\
                <td class="num">\(value(e.fid))</td><td class="num">\(value(e.isMean))</td><td class="num">\(value(e.clipScore))</td>\
                <td class="num">\(value(e.consistencyPsnr))</td><td class="num">\(value(e.consistencyRatio))</td>\
                <td>\(escape(e.notes ?? ""))</td><td>\(escape(dateText(e.createdAt)))</td></tr>
                """
        }
        let body = """
            <p>\(escape(run.status)), started \(escape(dateText(run.startedAt)))\(run.endedAt.map { ", ended " + escape(dateText($0)) } ?? ""); \
            folder <code>\(escape(relativePath(folder)))</code>; commit <code>\(escape(run.gitCommit ?? "—"))</code></p>
            <h2>Loss and learning rate</h2>
            \(metrics.isEmpty ? "<p>No steps logged.</p>" : "<div class=\"charts\"><div><canvas id=\"loss\"></canvas></div><div><canvas id=\"lr\"></canvas></div></div>")
            <script type="application/json" id="curve">\(try scriptJSON(curve))</script>
            <h2 id="panoramas">Panoramas</h2>
            \(gallery.isEmpty ? "<p>None in the run's folder.</p>" : gallery.joined(separator: "\n"))
            <h2 id="evaluations">Evaluations</h2>
            \(evaluationRows.isEmpty ? "<p>None (<code>backdrop eval --run \(escape(run.name))</code>).</p>" : """
            <table><thead><tr><th>system</th><th>split</th><th>views</th><th>checkpoint</th><th>FID</th><th>IS</th><th>CS</th>\
            <th>PSNR</th><th>ratio</th><th>notes</th><th>recorded</th></tr></thead><tbody>\(evaluationRows.joined(separator: "\n"))</tbody></table>
            """)
            <h2>Config</h2>
            <pre>\(escape(config))</pre>
            """
        return Page(title: "Run \(run.name)", path: "runs/\(id).html", body: body,
                    scripts: metrics.isEmpty ? [] : ["assets/chart.min.js", "assets/charts.js"]).render()
    }

    // MARK: Panoramas

    /// A run's panorama folders grouped by their parent folder, both sorted.
    func panoramaGroups(in folder: URL) -> [(URL, [URL])] {
        let groups = Dictionary(grouping: panoramaFolders(in: folder)) { $0.deletingLastPathComponent().standardizedFileURL.path }
        return groups.keys.sorted().map { (URL(fileURLWithPath: $0), groups[$0]!.sorted { $0.path < $1.path }) }
    }

    /// The panorama folders a run's page shows.
    public func shownPanoramaFolders(of run: RunRegistry.Run) -> [URL] {
        panoramaGroups(in: registry.directory(of: run)).flatMap { $0.1.prefix(panoramasPerFolder) }
    }

    /// Folders below `folder` holding a `panorama.png` (generated or stitched panoramas).
    func panoramaFolders(in folder: URL) -> [URL] {
        guard let walker = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil,
                                                          options: [.skipsHiddenFiles]) else { return [] }
        var found: [URL] = []
        for case let url as URL in walker where url.lastPathComponent == "panorama.png" {
            found.append(url.deletingLastPathComponent())
        }
        return found
    }

    /// A folder's or file's path relative to the results folder.
    func relativePath(_ url: URL) -> String {
        let path = url.standardizedFileURL.path, rootPath = root.standardizedFileURL.path
        return path.hasPrefix(rootPath + "/") ? String(path.dropFirst(rootPath.count + 1)) : path
    }

    /// A path from a URL as a file inside the results folder: nil when it would leave it (`..`, an
    /// absolute path, a symbolic link pointing out) or names the registry's database.
    public func resolveInside(_ relative: String) -> URL? {
        let parts = relative.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard !parts.isEmpty, !parts.contains(where: { $0 == ".." || $0 == "." || $0.contains("\0") }) else { return nil }
        let url = parts.reduce(root) { $0.appendingPathComponent($1) }
        let real = url.resolvingSymlinksInPath().standardizedFileURL.path
        let realRoot = root.resolvingSymlinksInPath().standardizedFileURL.path
        guard real.hasPrefix(realRoot + "/") else { return nil }
        // Study answers (raters' data) stay in the database; the site never hands it out.
        guard !URL(fileURLWithPath: real).lastPathComponent.hasPrefix(registry.url.lastPathComponent) else { return nil }
        return url
    }

    /// The viewer page of a panorama folder (relative to the results folder); nil when it has none.
    /// `embedPanorama`: the panorama inside the page as a data: URL, for pages opened from files,
    /// where browsers treat a neighbouring file as another origin and refuse it to WebGL.
    public func viewPage(folder relative: String, embedPanorama: Bool = false) throws -> String? {
        guard let folder = resolveInside(relative),
              FileManager.default.fileExists(atPath: folder.appendingPathComponent("panorama.png").path) else { return nil }
        let path = relativePath(folder)
        let segments = path.split(separator: "/").map(String.init)
        let views = (0..<64).map { folder.appendingPathComponent("view_\($0).png") }
            .prefix { FileManager.default.fileExists(atPath: $0.path) }
        let prompts = promptsOf(folder)
        let cameras = camerasOf(folder)
        let cameraRows = (cameras?.views ?? []).map { c in
            // FOV from the focal length: f = W / (2 tan(FOV / 2)) (the cameras.json convention).
            let fov = 2 * atan(Double(cameras!.resolution) / (2 * c.K.row0.x)) * 180 / .pi
            return "<tr><td>\(c.view)</td><td class=\"num\">\(String(format: "%.1f°", c.yawDeg))</td>" +
                "<td class=\"num\">\(String(format: "%.1f°", fov))</td><td class=\"num\">\(cameras!.resolution)</td></tr>"
        }
        let viewTiles = views.enumerated().map { i, url in
            "<figure><img src=\"\(sitePath(["files"] + segments + [url.lastPathComponent]))\" alt=\"view \(i)\">" +
                "<figcaption>view \(i)\(i < prompts.count ? ": " + escape(prompts[i]) : "")</figcaption></figure>"
        }
        let body = """
            \(viewerMarkup(image: embedPanorama
                ? "data:image/png;base64," + (try Data(contentsOf: folder.appendingPathComponent("panorama.png"))).base64EncodedString()
                : sitePath(["files"] + segments + ["panorama.png"])))
            \(prompts.isEmpty ? "" : "<h2>Prompt</h2><p class=\"prompt\">\(escape(Set(prompts).count == 1 ? prompts[0] : prompts.joined(separator: " · ")))</p>")
            <h2>Views</h2><div class="views">\(viewTiles.joined())</div>
            \(cameraRows.isEmpty ? "" : "<h2>Cameras</h2><table><thead><tr><th>view</th><th>yaw</th><th>FOV</th><th>pixels</th></tr></thead><tbody>\(cameraRows.joined())</tbody></table>")
            <p><a href="\(sitePath(["files"] + segments + ["panorama.png"]))">panorama.png</a></p>
            """
        return Page(title: segments.last ?? "panorama", path: sitePath(["view"] + segments + ["index.html"]), body: body,
                    scripts: ["assets/three.min.js", "assets/viewer.js"]).render()
    }

    /// The 360° viewer's canvas for an equirectangular image (assets/viewer.js drives it).
    func viewerMarkup(image: String) -> String {
        """
        <div class="viewer" data-panorama="\(escape(image))"><canvas></canvas>\
        <p class="hint">Drag to look around; the wheel changes the field of view (<span class="fov">75</span>°).</p></div>
        """
    }

    func promptsOf(_ folder: URL) -> [String] {
        struct Generation: Decodable { var prompts: [String] }
        if let data = try? Data(contentsOf: folder.appendingPathComponent("generation.json")),
           let generation = try? JSONDecoder().decode(Generation.self, from: data) { return generation.prompts }
        return []
    }

    func camerasOf(_ folder: URL) -> CamerasFile? {
        guard let data = try? Data(contentsOf: folder.appendingPathComponent("cameras.json")) else { return nil }
        return try? JSONDecoder().decode(CamerasFile.self, from: data)
    }

    // MARK: Table I and studies

    public func tablePage() throws -> String {
        let table = try ResultsTable.fromRegistry(registry)
        let (texts, numbers) = table.footnotes()
        let header = "<tr><th>system</th><th>source</th>" + ResultsTable.columns.map { "<th>\(escape($0.heading))</th>" }.joined() + "</tr>"
        let rows = zip(table.rows, numbers).map { row, marks -> String in
            let cells = ResultsTable.columns.map { metric -> String in
                let text = escape(table.cell(row, metric) ?? "—")
                let linked = row.runId.map { "<a href=\"runs/\($0).html#\(metric == .userScore ? "panoramas" : "evaluations")\">\(text)</a>" } ?? text
                let mark = marks[metric].map { "<sup><a href=\"table.html#note-\($0)\">\($0)</a></sup>" } ?? ""
                return "<td class=\"num\">\(linked)\(mark)</td>"
            }
            let source = row.runId.map { "<a href=\"runs/\($0).html\">\(escape(row.source))</a>" } ?? escape(row.source)
            return "<tr class=\"\(row.published ? "published" : "ours")\"><td>\(escape(row.system))</td><td>\(source)</td>\(cells.joined())</tr>"
        }
        let notes = texts.enumerated().map { "<li id=\"note-\($0.offset + 1)\">\(escape($0.element))</li>" }
        let body = """
            <p>This project's evaluated systems (from <code>backdrop eval</code> and rating studies), then the published rows. \
            Each number of a run links to the evaluations behind it.</p>
            <table class="table1"><thead>\(header)</thead><tbody>\(rows.joined(separator: "\n"))</tbody></table>
            <ol class="notes">\(notes.joined())</ol>
            """
        return Page(title: "Table I", path: "table.html", body: body).render()
    }

    public func studiesPage(serving: Bool) throws -> String {
        let studies = try registry.studies()
        let sections = try studies.map { study -> String in
            let results = try registry.studyResults(study)
            let rows = results.map { r in
                "<tr><td>\(escape(r.system))</td><td class=\"num\">\(r.answers == 0 ? "—" : String(format: "%.2f", r.mean))</td>" +
                    "<td class=\"num\">\(r.halfWidth95.map { String(format: "± %.2f", $0) } ?? "—")</td>" +
                    "<td class=\"num\">\(r.answers)</td><td class=\"num\">\(r.raters)</td></tr>"
            }
            let link = serving ? "<p>Raters open <a href=\"study/\(sitePath([study.name]))/\">study/\(escape(study.name))/</a>.</p>" : ""
            return """
                <h2>\(escape(study.name))</h2>\(link)
                <table><thead><tr><th>system</th><th>mean US</th><th>95 % CI</th><th>answers</th><th>raters</th></tr></thead>\
                <tbody>\(rows.joined())</tbody></table>
                """
        }
        let body = studies.isEmpty ? "<p>No rating studies (<code>backdrop study create</code>).</p>" : sections.joined(separator: "\n")
        return Page(title: "Rating studies", path: "studies.html", body: body).render()
    }

    /// A rater's page: the next panorama in the viewer with the 1–10 form, or the thanks at the end.
    /// Nothing on it says which system made the panorama.
    public func raterPage(_ study: RunRegistry.Study, next: StudyFlow.Next, message: String? = nil) -> String {
        let base = sitePath(["study", study.name])
        let notice = message.map { "<p class=\"notice\">\(escape($0))</p>" } ?? ""
        let body: String
        if let panorama = next.panorama {
            let choices = (1...10).map { "<label><input type=\"radio\" name=\"score\" value=\"\($0)\" required> \($0)</label>" }
            body = """
                \(notice)<p>Panorama \(next.answered + 1) of \(next.total). Look around (drag, wheel), then rate how \
                <strong>photorealistic</strong> the room looks, from 1 (not at all) to 10 (like a photograph).</p>
                <p class="prompt">“\(escape(panorama.prompt))”</p>
                \(viewerMarkup(image: "\(base)/image/\(panorama.key).png"))
                <form method="post" action="\(base)/answer" class="rating">
                <input type="hidden" name="panorama" value="\(escape(panorama.key))">
                <input type="hidden" name="token" value="\(escape(next.token))">
                \(choices.joined(separator: "\n"))
                <button type="submit">Submit</button>
                </form>
                """
        } else {
            body = "\(notice)<p class=\"done\">Thank you: you rated all \(next.total) panoramas of this study.</p>"
        }
        return Page(title: "Rating study", path: "\(base)/index.html", body: body,
                    scripts: next.panorama == nil ? [] : ["assets/three.min.js", "assets/viewer.js"], navigation: false).render()
    }

    // MARK: Formatting

    func prettyJSON(_ text: String) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)),
              let data = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]) else { return text }
        return String(decoding: data, as: UTF8.self)
    }

    func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d h %02d min", s / 3600, s % 3600 / 60) : s >= 60 ? String(format: "%d min %02d s", s / 60, s % 60) : "\(s) s"
    }

    func dateText(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate, .withTime, .withColonSeparatorInTime, .withSpaceBetweenDateAndTime]
        return formatter.string(from: date)
    }
}
