import Foundation
import Support
import Torch
import Yams

/// A problem in a run config, naming the file and the dotted key.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let key: String
    public let message: String

    public var description: String { "\(file): \(key.isEmpty ? "" : "\(key): ")\(message)" }
}

/// Typed, strict reading of one YAML mapping: every value is read through a typed accessor that
/// names the file and key on a wrong type, and `finish()` rejects keys nobody read, suggesting the
/// closest known one (so `learning_rate` next to `lr` is caught, not ignored).
public final class ConfigSection {
    public let file: String
    public let path: String
    private let values: [String: Any]
    private var known: [String] = []

    init(file: String, path: String, values: [String: Any]) {
        (self.file, self.path, self.values) = (file, path, values)
    }

    /// Parses YAML text whose top level must be a mapping.
    public static func parse(yaml: String, file: String) throws -> ConfigSection {
        try YAMLLimits.check(yaml: yaml, file: file)
        let loaded: Any?
        do {
            loaded = try Yams.load(yaml: yaml)
        } catch {
            throw ConfigError(file: file, key: "", message: "not valid YAML: \(error)")
        }
        guard let mapping = loaded as? [String: Any] else {
            throw ConfigError(file: file, key: "", message: "the top level must be a mapping of sections")
        }
        return ConfigSection(file: file, path: "", values: mapping)
    }

    func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    private func raw(_ key: String) -> Any? {
        known.append(key)
        guard let value = values[key], !(value is NSNull) else { return nil }
        return value
    }

    private func typeError(_ key: String, _ expected: String, _ value: Any) -> ConfigError {
        ConfigError(file: file, key: keyPath(key), message: "expected \(expected), got '\(value)'")
    }

    public func int(_ key: String, default value: Int? = nil) throws -> Int? {
        guard let v = raw(key) else { return value }
        if let i = v as? Int { return i }
        throw typeError(key, "an integer", v)
    }

    public func int(_ key: String, default value: Int) throws -> Int { try int(key, default: Optional(value))! }

    public func double(_ key: String, default value: Double? = nil) throws -> Double? {
        guard let v = raw(key) else { return value }
        var number: Double?
        if let d = v as? Double { number = d } else if let i = v as? Int { number = Double(i) }
        // YAML 1.1 reads 2e-4 (no dot) as a string; accept any number spelled as text.
        else if let s = v as? String { number = Double(s) }
        guard let number else { throw typeError(key, "a number", v) }
        guard number.isFinite else { throw typeError(key, "a finite number", v) }
        return number
    }

    public func double(_ key: String, default value: Double) throws -> Double { try double(key, default: Optional(value))! }

    public func bool(_ key: String, default value: Bool) throws -> Bool {
        guard let v = raw(key) else { return value }
        if let b = v as? Bool { return b }
        throw typeError(key, "true or false", v)
    }

    public func string(_ key: String, default value: String? = nil) throws -> String? {
        guard let v = raw(key) else { return value }
        if let s = v as? String {
            // A path naming an unset variable would become a wrong path and a misleading error later.
            if let name = unsetVariables(in: s).first {
                throw ConfigError(file: file, key: keyPath(key), message: "'\(s)' names $\(name), which is not set in the environment")
            }
            return s
        }
        if v is Int || v is Double { return "\(v)" }
        throw typeError(key, "text", v)
    }

    public func requiredString(_ key: String) throws -> String {
        guard let s = try string(key) else {
            throw ConfigError(file: file, key: keyPath(key), message: "is required")
        }
        return s
    }

    /// One of a closed set of values; the error lists them.
    public func choice<Choice: ConfigChoice>(_ key: String, default value: Choice) throws -> Choice {
        let s = try string(key, default: value.rawValue)!
        guard let choice = Choice(rawValue: s) else {
            throw ConfigError(file: file, key: keyPath(key),
                              message: "'\(s)' is not one of \(Choice.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return choice
    }

    /// A positive integer (a multiple of `multipleOf`).
    public func positive(_ key: String, default value: Int, multipleOf: Int = 1) throws -> Int {
        let v = try int(key, default: value)
        guard v > 0, v % multipleOf == 0 else {
            throw ConfigError(file: file, key: keyPath(key),
                              message: multipleOf > 1 ? "must be a positive multiple of \(multipleOf), got \(v)"
                                                      : "must be positive, got \(v)")
        }
        return v
    }

    /// A positive, finite number.
    public func positiveDouble(_ key: String, default value: Double) throws -> Double {
        let v = try double(key, default: value)
        guard v > 0 else { throw ConfigError(file: file, key: keyPath(key), message: "must be positive, got \(v)") }
        return v
    }

    /// Fails when any of `keys` is present: keys that the section's other values make meaningless
    /// (an AdamW setting with SGD) are refused rather than silently ignored.
    public func reject(_ keys: [String], because reason: String) throws {
        for key in keys where values[key] != nil {
            throw ConfigError(file: file, key: keyPath(key), message: reason)
        }
    }

    /// Fails when the section holds any key: a whole section the config's other choices make
    /// meaningless (`caa:` for task `autoencoder`).
    public func rejectAll(because reason: String) throws {
        if let key = values.keys.sorted().first {
            throw ConfigError(file: file, key: keyPath(key), message: reason)
        }
    }

    /// Whether the section holds `key`.
    public func has(_ key: String) -> Bool { values[key] != nil }

    public func doubles(_ key: String, count: Int, default value: [Double]) throws -> [Double] {
        guard let v = raw(key) else { return value }
        guard let list = v as? [Any], list.count == count else { throw typeError(key, "a list of \(count) numbers", v) }
        return try list.map {
            if let d = $0 as? Double { return d }
            if let i = $0 as? Int { return Double(i) }
            throw typeError(key, "a list of \(count) numbers", v)
        }
    }

    /// A nested mapping (empty when absent).
    public func section(_ key: String) throws -> ConfigSection {
        guard let v = raw(key) else { return ConfigSection(file: file, path: keyPath(key), values: [:]) }
        guard let mapping = v as? [String: Any] else { throw typeError(key, "a mapping", v) }
        return ConfigSection(file: file, path: keyPath(key), values: mapping)
    }

    /// Rejects keys that were never read.
    public func finish() throws {
        for key in values.keys.sorted() where !known.contains(key) {
            var message = "unknown key"
            if let suggestion = closest(to: key, in: known) { message += "; did you mean '\(suggestion)'?" }
            throw ConfigError(file: file, key: keyPath(key), message: message)
        }
    }
}

/// The candidate within edit distance 3 (or sharing a prefix of 4) of `word`, if any.
func closest(to word: String, in candidates: [String]) -> String? {
    let scored = candidates.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }
    guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    if best.1 <= max(2, min(3, word.count / 3)) { return best.0 }
    return candidates.first { $0.count >= 4 && word.hasPrefix(String($0.prefix(4))) }
}

func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var previous = Array(0...b.count)
    for i in 1...max(1, a.count) where !a.isEmpty {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...max(1, b.count) where !b.isEmpty {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return a.isEmpty ? b.count : previous[b.count]
}
