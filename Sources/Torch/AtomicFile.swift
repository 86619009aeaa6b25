import Foundation

/// Writes through a temporary file in the same directory and renames it into place, so a reader
/// never sees a half-written file and a crash leaves the old one intact. `write` receives the
/// temporary file's URL.
public func writeAtomically(to url: URL, _ write: (URL) throws -> Void) throws {
    let directory = url.deletingLastPathComponent()
    do {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    } catch {
        throw TorchError("cannot create the folder \(directory.path): \(failureReason(error))")
    }
    let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
    do {
        try write(temporary)
        if rename(temporary.path, url.path) != 0 {
            throw TorchError("cannot move \(temporary.path) to \(url.path): \(String(cString: strerror(errno)))")
        }
    } catch {
        try? FileManager.default.removeItem(at: temporary)
        if error is TorchError { throw error }
        throw TorchError("cannot write \(url.path): \(failureReason(error))")
    }
}

/// `writeAtomically` for content streamed into a file handle; the data reach the disk before the
/// rename.
public func writeAtomically(to url: URL, streaming body: (FileHandle) throws -> Void) throws {
    try writeAtomically(to: url) { temporary in
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
            throw TorchError("cannot create \(temporary.path) (is the folder writable?)")
        }
        let handle = try FileHandle(forWritingTo: temporary)
        defer { try? handle.close() }
        try body(handle)
        try handle.synchronize()
    }
}
