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
        let (archive, prefix) = try openPickleArchive(url)
        if archive[prefix + "constants.pkl"] != nil {
            throw TorchError("\(url.lastPathComponent): a TorchScript archive (torch.jit.save), not a torch.save file; load it as TorchScript")
        }
        return try unpickle(archive, prefix: prefix, file: url.lastPathComponent)
    }

    /// A bare pickle stream (protocols 0–5) outside any archive, read by the same restricted
    /// unpickler; persistent ids (tensor storages) have nothing to point at and are refused.
    public static func loadPickle(_ data: Data, context: String) throws -> PickleValue {
        try Unpickler(data, context: context) { key, _, _ in
            throw TorchError("\(context): storage '\(key)' outside a torch.save archive")
        }.load()
    }

    /// The tensors a TorchScript archive (`torch.jit.save`) holds in its module tree, by dotted
    /// attribute path (`net.layers.conv.weight`), read with the same restricted unpickler as
    /// `torch.save` files: the archive's code is never loaded or run (docs/security.md), so an
    /// untrusted archive cannot execute its `__setstate__`.
    public static func loadScriptModuleTensors(_ url: URL) throws -> [String: Tensor] {
        let file = url.lastPathComponent
        let (archive, prefix) = try openPickleArchive(url)
        guard archive[prefix + "constants.pkl"] != nil else {
            throw TorchError("\(file): not a TorchScript archive (no constants.pkl beside data.pkl)")
        }
        let root = try unpickle(archive, prefix: prefix, file: file)
        var out: [String: Tensor] = [:]
        // A scripted module is an object whose state is the dict of its attributes (parameters,
        // buffers and submodules by name), or whatever its own `__getstate__` returned (by index).
        func walk(_ value: PickleValue, _ path: String) {
            func child(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }
            switch value {
            case .tensor(let t): out[path] = t
            case .opaque(let object): if let state = object.state { walk(state, path) }
            case .list(let items), .tuple(let items):
                for (i, item) in items.enumerated() { walk(item, child(String(i))) }
            default:
                for (key, item) in value.entries ?? [] {
                    if let name = key.string { walk(item, child(name)) }
                }
            }
        }
        walk(root, "")
        guard !out.isEmpty else { throw TorchError("\(file): the TorchScript archive holds no tensors in its module tree") }
        return out
    }

    /// Whether the file is a zip archive written by `torch.jit.save` (it has `constants.pkl`).
    public static func isTorchScriptArchive(_ url: URL) throws -> Bool {
        let (archive, prefix) = try openPickleArchive(url)
        return archive[prefix + "constants.pkl"] != nil
    }

    /// Opens a zip-format archive and finds its `<prefix>/data.pkl`.
    private static func openPickleArchive(_ url: URL) throws -> (Archive, prefix: String) {
        let archive = try openArchive(url)
        let entries = archive.map(\.path)
        guard let pickle = entries.filter({ $0 == "data.pkl" || $0.hasSuffix("/data.pkl") && $0.dropLast(9).contains("/") == false })
            .min(by: { $0.count < $1.count }) else {
            throw TorchError("\(url.lastPathComponent): no data.pkl in the zip archive; not a torch.save file")
        }
        return (archive, String(pickle.dropLast("data.pkl".count)))
    }

    private static func unpickle(_ archive: Archive, prefix: String, file: String) throws -> PickleValue {
        let pickle = prefix + "data.pkl"
        let context = "\(file) (\(pickle))"
        let program = try read(archive, path: pickle, file: file, limit: maxPickleBytes)
        let unpickler = Unpickler(program, context: context) { key, dtype, numel in
            let path = "\(prefix)data/\(key)"
            guard let entry = archive[path] else { throw TorchError("\(context): storage '\(key)' has no entry \(path)") }
            // The size the tensor metadata implies is checked against the entry's declared size
            // before a byte is inflated.
            let (needed, overflow) = numel.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, numel >= 0, UInt64(needed) == entry.uncompressedSize else {
                throw TorchError("\(context): storage '\(key)' has \(entry.uncompressedSize) bytes, \(numel) elements of \(dtype) need \(numel) × \(dtype.byteSize)")
            }
            // Checksumming gigabytes of weights costs more than reading them; the pickle is checked.
            let bytes = try read(archive, path: path, file: file, entry: entry, verify: false, limit: needed)
            return try bytes.withUnsafeBytes { try Tensor(bytes: $0, shape: [numel], dtype: dtype) }
        }
        return try unpickler.load()
    }

    /// The largest `data.pkl` read: the pickle of a state dict holds names and metadata, a few MB
    /// for the largest models (docs/security.md#bounded-parsing).
    static let maxPickleBytes = 256 << 20
    /// torch.save stores its entries uncompressed; a deflated entry may inflate at most this much
    /// (a zip bomb's ratio is near deflate's 1032:1 limit).
    static let maxCompressionRatio: UInt64 = 100

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
        try ZipBounds.check(url)
        do {
            return try Archive(url: url, accessMode: .read)
        } catch {
            throw TorchError("\(file): cannot open the zip archive: \(error)")
        }
    }

    /// One entry's bytes. The declared size is checked against `limit` and the compression ratio
    /// before inflating, and inflation stops as soon as it passes the declared size.
    private static func read(_ archive: Archive, path: String, file: String, entry: Entry? = nil, verify: Bool = true,
                             limit: Int) throws -> Data {
        guard let entry = entry ?? archive[path] else { throw TorchError("\(file): no entry \(path)") }
        let declared = entry.uncompressedSize
        guard declared <= UInt64(limit) else {
            throw TorchError("\(file): \(path) declares \(declared) bytes, more than the \(limit) allowed")
        }
        if entry.isCompressed, declared > max(entry.compressedSize, 1) * maxCompressionRatio {
            throw TorchError("\(file): \(path) would inflate \(entry.compressedSize) bytes to \(declared) " +
                             "(more than \(maxCompressionRatio)×); refusing a zip bomb")
        }
        var data = Data()
        data.reserveCapacity(Int(declared))
        let checksum: CRC32
        do {
            checksum = try archive.extract(entry, bufferSize: 1 << 20, skipCRC32: !verify) { chunk in
                guard UInt64(data.count + chunk.count) <= declared else { throw OversizedEntry() }
                data.append(chunk)
            }
        } catch is OversizedEntry {
            throw TorchError("\(file): \(path) inflates past its declared \(declared) bytes")
        } catch {
            throw TorchError("\(file): cannot read \(path): \(error)")
        }
        // ZIPFoundation computes the checksum but leaves the comparison to us.
        if verify, checksum != entry.checksum {
            throw TorchError("\(file): \(path) is corrupt (CRC-32 mismatch)")
        }
        guard UInt64(data.count) == declared else {
            throw TorchError("\(file): \(path) is truncated (\(data.count) of \(declared) bytes)")
        }
        return data
    }

    private struct OversizedEntry: Error {}
}
