import Foundation
import Torch

/// An exclusive advisory lock (`flock`) on `<folder>/.lock`, held by the one process that writes the
/// folder (a training run). The kernel releases it when the process dies, however it dies, so a
/// lock that can be taken means nobody is writing there: that is how the registry tells a run
/// killed with SIGKILL from a live one (`RunRegistry.markInterruptedRuns`).
public final class FolderLock {
    public static let fileName = ".lock"
    public let folder: URL
    private let descriptor: Int32

    /// Takes the lock, creating the folder; fails at once, naming the holder, when another process has it.
    public init(_ folder: URL) throws {
        self.folder = folder
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw TorchError("cannot create the folder \(folder.path): \(failureReason(error))")
        }
        let path = folder.appendingPathComponent(Self.fileName).path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TorchError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            close(fd)
            throw TorchError("\(folder.path) is in use by another training process" +
                             (holder.map { $0.isEmpty ? "" : " (\($0))" } ?? "") + "; two runs must not write one folder")
        }
        descriptor = fd
        let owner = "pid \(getpid()) on \(ProcessInfo.processInfo.hostName)\n"
        _ = ftruncate(fd, 0)
        _ = owner.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }

    /// Whether a live process holds the lock of `folder`. Creates nothing: a folder without a lock
    /// file has no holder.
    public static func isHeld(_ folder: URL) -> Bool {
        let fd = open(folder.appendingPathComponent(fileName).path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard flock(fd, LOCK_SH | LOCK_NB) == 0 else { return true }
        flock(fd, LOCK_UN)
        return false
    }
}
