import Foundation

/// `$VAR`, `${VAR}` and a leading `~` expanded from the environment: paths in run configs and
/// parity cases name fetched assets and models this way.
public func expandEnvironment(_ text: String) -> String {
    var result = text
    if result.hasPrefix("~") { result = FileManager.default.homeDirectoryForCurrentUser.path + result.dropFirst() }
    let environment = ProcessInfo.processInfo.environment
    let pattern = try! NSRegularExpression(pattern: #"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)"#)
    for match in pattern.matches(in: result, range: NSRange(result.startIndex..., in: result)).reversed() {
        let nameRange = match.range(at: 1).location != NSNotFound ? match.range(at: 1) : match.range(at: 2)
        guard let range = Range(match.range, in: result), let name = Range(nameRange, in: result) else { continue }
        // An empty variable counts as unset, so Backdrop's own fall back to their defaults.
        let value = environment[String(result[name])].flatMap { $0.isEmpty ? nil : $0 } ?? defaultValue(of: String(result[name]))
        result.replaceSubrange(range, with: value)
    }
    return result
}

/// Backdrop's own variables have defaults outside `make` (the cache under the home folder).
private func defaultValue(of name: String) -> String {
    let home = FileManager.default.homeDirectoryForCurrentUser.path
    switch name {
    case "BACKDROP_CACHE": return home + "/.cache/backdrop"
    case "BACKDROP_ASSETS": return home + "/.cache/backdrop/assets"
    default: return ""
    }
}
