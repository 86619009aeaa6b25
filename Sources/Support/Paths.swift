import Foundation

/// `$VAR`, `${VAR}` and a leading `~` expanded from the environment: paths in run configs and
/// parity cases name fetched assets and models this way.
public func expandEnvironment(_ text: String) -> String {
    var result = text
    if result.hasPrefix("~") { result = FileManager.default.homeDirectoryForCurrentUser.path + result.dropFirst() }
    for (range, name) in variableReferences(in: result).reversed() {
        result.replaceSubrange(range, with: variableValue(name) ?? "")
    }
    return result
}

/// The variables `text` names that are neither set nor one of Backdrop's own (which have defaults):
/// `expandEnvironment` would replace them by nothing.
public func unsetVariables(in text: String) -> [String] {
    variableReferences(in: text).map(\.name).filter { variableValue($0) == nil }
}

private func variableReferences(in text: String) -> [(range: Range<String.Index>, name: String)] {
    let pattern = try! NSRegularExpression(pattern: #"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)"#)
    return pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap { match in
        let nameRange = match.range(at: 1).location != NSNotFound ? match.range(at: 1) : match.range(at: 2)
        guard let range = Range(match.range, in: text), let name = Range(nameRange, in: text) else { return nil }
        return (range, String(text[name]))
    }
}

/// An empty variable counts as unset, so Backdrop's own fall back to their defaults.
private func variableValue(_ name: String) -> String? {
    ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 } ?? defaultValue(of: name)
}

/// Backdrop's own variables have defaults outside `make` (the cache under the home folder).
private func defaultValue(of name: String) -> String? {
    let home = FileManager.default.homeDirectoryForCurrentUser.path
    switch name {
    case "BACKDROP_CACHE": return home + "/.cache/backdrop"
    case "BACKDROP_ASSETS": return home + "/.cache/backdrop/assets"
    default: return nil
    }
}
