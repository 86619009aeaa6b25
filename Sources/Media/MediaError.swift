import Foundation

/// A failure reading or writing media, always naming the file (or stream) it concerns.
public struct MediaError: Error, CustomStringConvertible, Equatable {
    /// The file path, or a description of the stream ("<stdin>", "<memory>").
    public let file: String
    public let message: String

    public init(file: String, _ message: String) {
        self.file = file
        self.message = message
    }

    public var description: String { "\(file): \(message)" }
}

extension MediaError: LocalizedError {
    public var errorDescription: String? { description }
}

/// Reads a whole file, turning Foundation's error into one that names the file.
func readFile(_ url: URL) throws -> Data {
    do {
        return try Data(contentsOf: url, options: .mappedIfSafe)
    } catch {
        let reason = FileManager.default.fileExists(atPath: url.path) ? "cannot read the file" : "no such file"
        throw MediaError(file: url.path, reason)
    }
}
