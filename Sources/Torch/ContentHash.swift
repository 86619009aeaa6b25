import Foundation

/// A fast 64-bit FNV-1a fingerprint of files and strings: enough to notice that a cache was built
/// from other weights or another config (not a cryptographic digest).
public struct ContentHash: Sendable {
    private var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var h = value
        for byte in bytes {
            h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        value = h
    }

    public mutating func update(_ text: String) {
        var copy = text
        copy.withUTF8 { update(UnsafeRawBufferPointer($0)) }
    }

    /// Mixes in a file's bytes (memory-mapped).
    public mutating func update(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw TorchError("cannot read \(url.path) to fingerprint it: \(failureReason(error))")
        }
        data.withUnsafeBytes { update($0) }
    }

    /// 16 hexadecimal digits.
    public var hex: String { String(format: "%016llx", value) }

    /// The fingerprint of a file, or of every regular file under a folder (relative paths and bytes,
    /// in sorted path order).
    public static func of(_ url: URL) throws -> String {
        var hash = ContentHash()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw TorchError("cannot fingerprint \(url.path): no such file or folder")
        }
        if !isDirectory.boolValue {
            try hash.update(contentsOf: url)
            return hash.hex
        }
        let files = (FileManager.default.enumerator(atPath: url.path)?.allObjects as? [String] ?? []).sorted()
        for relative in files {
            let file = url.appendingPathComponent(relative)
            var childIsDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: file.path, isDirectory: &childIsDirectory),
                  !childIsDirectory.boolValue else { continue }
            hash.update(relative)
            try hash.update(contentsOf: file)
        }
        return hash.hex
    }
}
