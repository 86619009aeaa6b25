import Foundation
import ZIPFoundation

/// Reads `torch.save` files (`.pt`, `.pth`, `.bin`, `.ckpt`) in the zip format PyTorch has written
/// since 1.6, without Python and without executing anything in them.
///
/// The archive holds `<prefix>/data.pkl` (the pickled object, with tensors replaced by persistent
/// ids naming storages), `<prefix>/data/<key>` (each storage's raw bytes) and `<prefix>/version`;
/// the prefix is `archive` or the saved file's stem, depending on the writer. Tensors come back on
/// the CPU whatever device they were saved from.
public enum TorchPickle {
    /// The whole saved object. See `Unpickler` for what is interpreted, kept as a placeholder, or refused.
    public static func load(_ url: URL) throws -> PickleValue {
        let file = url.lastPathComponent
        let archive = try openArchive(url)
        let entries = archive.map(\.path)
        guard let pickle = entries.filter({ $0 == "data.pkl" || $0.hasSuffix("/data.pkl") && $0.dropLast(9).contains("/") == false })
            .min(by: { $0.count < $1.count }) else {
            throw TorchError("\(file): no data.pkl in the zip archive; not a torch.save file")
        }
        let prefix = String(pickle.dropLast("data.pkl".count))
        if entries.contains(prefix + "constants.pkl") {
            throw TorchError("\(file): a TorchScript archive (torch.jit.save), not a torch.save file; load it as TorchScript")
        }
        let context = "\(file) (\(pickle))"
        let program = try read(archive, path: pickle, file: file)
        let unpickler = Unpickler(program, context: context) { key, dtype, numel in
            let path = "\(prefix)data/\(key)"
            guard let entry = archive[path] else { throw TorchError("\(context): storage '\(key)' has no entry \(path)") }
            // Checksumming gigabytes of weights costs more than reading them; the pickle is checked.
            let bytes = try read(archive, path: path, file: file, entry: entry, verify: false)
            let (needed, overflow) = numel.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, bytes.count == needed else {
                throw TorchError("\(context): storage '\(key)' has \(bytes.count) bytes, \(numel) elements of \(dtype) need \(numel) × \(dtype.byteSize)")
            }
            return try bytes.withUnsafeBytes { try Tensor(bytes: $0, shape: [numel], dtype: dtype) }
        }
        return try unpickler.load()
    }

    /// The tensors of a saved state dict, by their dotted names.
    ///
    /// With `key`, the state dict is the entry at that dotted path (see `PickleValue[path:]`, e.g.
    /// "model.ema"); without, it is the top-level `state_dict` entry when there is one (Lightning
    /// checkpoints), else the whole object. Nested dicts are flattened with dots.
    public static func loadStateDict(_ url: URL, key: String? = nil) throws -> [String: Tensor] {
        let file = url.lastPathComponent
        let root = try load(url)
        var value = root
        if let key {
            guard let found = root[path: key] else {
                let available = (root.entries ?? []).compactMap(\.key.string).prefix(12).joined(separator: ", ")
                throw TorchError("\(file): no entry '\(key)'; the top level has: \(available)")
            }
            value = found
        } else if let stateDict = root["state_dict"], stateDict.entries != nil {
            value = stateDict
        }
        let tensors = value.tensors()
        guard !tensors.isEmpty else { throw TorchError("\(file): no tensors under \(key.map { "'\($0)'" } ?? "the top level")") }
        return tensors
    }

    // MARK: Zip access

    private static func openArchive(_ url: URL) throws -> Archive {
        let file = url.lastPathComponent
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw TorchError("cannot read \(url.path): no such file or not readable")
        }
        let head = (try? handle.read(upToCount: 4)) ?? Data()
        try? handle.close()
        guard head.starts(with: [0x50, 0x4B]) else {
            if head.first == 0x80 {
                throw TorchError("\(file): legacy torch.save format not supported; re-save with torch.save(..., _use_new_zipfile_serialization=True)")
            }
            throw TorchError("\(file): not a torch.save file (no zip signature)")
        }
        do {
            return try Archive(url: url, accessMode: .read)
        } catch {
            throw TorchError("\(file): cannot open the zip archive: \(error)")
        }
    }

    private static func read(_ archive: Archive, path: String, file: String, entry: Entry? = nil, verify: Bool = true) throws -> Data {
        guard let entry = entry ?? archive[path] else { throw TorchError("\(file): no entry \(path)") }
        var data = Data()
        data.reserveCapacity(Int(clamping: min(entry.uncompressedSize, 1 << 28)))
        let checksum: CRC32
        do {
            checksum = try archive.extract(entry, bufferSize: 1 << 20, skipCRC32: !verify) { data.append($0) }
        } catch {
            throw TorchError("\(file): cannot read \(path): \(error)")
        }
        // ZIPFoundation computes the checksum but leaves the comparison to us.
        if verify, checksum != entry.checksum {
            throw TorchError("\(file): \(path) is corrupt (CRC-32 mismatch)")
        }
        guard data.count == Int(clamping: entry.uncompressedSize) else {
            throw TorchError("\(file): \(path) is truncated (\(data.count) of \(entry.uncompressedSize) bytes)")
        }
        return data
    }
}
