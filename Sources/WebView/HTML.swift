import Foundation

/// Text made safe for HTML element content and attribute values.
func escape(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for character in text {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(character)
        }
    }
    return out
}

/// JSON for a `<script>` block: `</` cannot end the block early.
func scriptJSON<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
    return String(decoding: try encoder.encode(value), as: UTF8.self).replacingOccurrences(of: "</", with: "<\\/")
}

/// A page path relative to the site root, percent-encoded per segment.
func sitePath(_ segments: [String]) -> String {
    segments.map { $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#"))) ?? $0 }
        .joined(separator: "/")
}

/// One page of the site. Links inside are relative to the site root; `<base>` points there from the
/// page's own depth, so the same HTML works from the server and as files (`backdrop report`).
struct Page {
    var title: String
    /// The page's path below the root ("index.html", "runs/3.html", …): sets the `<base>`.
    var path: String
    var body: String
    var scripts: [String] = []
    /// Off on a rater's pages: from a blind study nothing links to the runs that name the systems.
    var navigation = true

    func render() -> String {
        let depth = path.split(separator: "/", omittingEmptySubsequences: false).count - 1
        let base = depth == 0 ? "./" : String(repeating: "../", count: depth)
        let scriptTags = scripts.map { "<script src=\"\(escape($0))\"></script>" }.joined(separator: "\n")
        return """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <base href="\(base)">
            <title>\(escape(title)) · Backdrop</title>
            <link rel="stylesheet" href="assets/site.css">
            </head>
            <body>
            \(navigation ? "<nav><a href=\"index.html\">Runs</a> <a href=\"table.html\">Table I</a> <a href=\"studies.html\">Studies</a></nav>" : "<nav></nav>")
            <main>
            <h1>\(escape(title))</h1>
            \(body)
            </main>
            \(scriptTags)
            </body>
            </html>

            """
    }
}
