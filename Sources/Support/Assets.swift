import Foundation

/// The files `make setup` fetches (models, panoramas, photos): under `$BACKDROP_ASSETS`, by default
/// `~/.cache/backdrop/assets`.
public enum Assets {
    /// `$BACKDROP_ASSETS` (an empty value counts as unset), else its default, `~/.cache/backdrop/assets`.
    public static var root: URL { URL(fileURLWithPath: expandEnvironment("$BACKDROP_ASSETS")) }

    /// `relativePath` under `root`; an `AssetError` naming the missing file and `remedy` when it is not there.
    public static func file(_ relativePath: String, remedy: String = "run `make setup`") throws -> URL {
        let url = root.appendingPathComponent(relativePath)
        guard FileManager.default.fileExists(atPath: url.path) else { throw AssetError("\(url.path) is missing: \(remedy)") }
        return url
    }
}

/// A fetched asset that is not where `make setup` puts it.
public struct AssetError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
