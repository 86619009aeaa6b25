import CHDF5
import Foundation

/// An HDF5 file of tensor datasets (chunked, optionally gzip-compressed) and string attributes on
/// its root, through libhdf5. Readable by h5py. Large datasets are written and read by rows, so a
/// cache never needs to fit in memory.
///
/// New files are written under a temporary name and appear under their real name only at
/// `commit()`, so an interrupted build never leaves a half-written file behind.
public final class HDF5File {
    public let url: URL
    private var id: ch5_id
    private let temporary: URL?
    private var isOpen = true

    /// Opens an existing file.
    public init(url: URL, writable: Bool = false) throws {
        self.url = url
        temporary = nil
        guard FileManager.default.fileExists(atPath: url.path) else { throw TorchError("HDF5 file not found: \(url.path)") }
        id = try Self.call(url) { ch5_open(url.path, writable ? 1 : 0, $0, $1) }
    }

    /// Creates a new file that replaces `url` at `commit()`.
    public init(creating url: URL) throws {
        self.url = url
        let directory = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
        self.temporary = temporary
        id = try Self.call(url) { ch5_create(temporary.path, $0, $1) }
    }

    deinit {
        if isOpen { _ = ch5_close(id) }
        if let temporary { try? FileManager.default.removeItem(at: temporary) }
    }

    /// Closes a created file and moves it into place.
    public func commit() throws {
        guard let temporary else { throw TorchError("\(url.path) was opened, not created: nothing to commit") }
        close()
        try writeAtomically(to: url) { destination in
            try FileManager.default.moveItem(at: temporary, to: destination)
        }
    }

    public func close() {
        if isOpen { _ = ch5_close(id) }
        isOpen = false
    }

    // MARK: Datasets

    /// Declares a dataset; `chunkRows` > 0 chunks along the first dimension, `compression` 1…9 adds gzip.
    public func createDataset(_ name: String, dtype: DType, shape: [Int], chunkRows: Int = 0, compression: Int = 0) throws {
        let dims = shape.map(Int64.init)
        try call(name) { ch5_create_dataset(id, name, Int32(dtype.rawValue), dims, Int32(dims.count), Int64(chunkRows),
                                            Int32(compression), $0, $1) }
    }

    /// Writes `rows` (shape `[n, …]` matching the dataset's trailing dimensions) starting at `row`.
    public func write(_ name: String, rows: Tensor, at row: Int = 0) throws {
        let bytes = try rows.rawBytes()
        _ = try bytes.withUnsafeBytes { raw in
            try call(name) { ch5_write_rows(id, name, Int32(rows.dtype.rawValue), Int64(row), Int64(rows.shape.first ?? 1),
                                            raw.baseAddress, $0, $1) }
        }
    }

    /// Creates a dataset holding `tensor` entirely.
    public func write(_ name: String, _ tensor: Tensor, chunkRows: Int = 0, compression: Int = 0) throws {
        try createDataset(name, dtype: tensor.dtype, shape: tensor.shape, chunkRows: chunkRows, compression: compression)
        if tensor.count > 0 { try write(name, rows: tensor.rank == 0 ? tensor.reshape([1]) : tensor) }
    }

    /// Shape and element type of a dataset.
    public func info(_ name: String) throws -> (shape: [Int], dtype: DType) {
        var shape = [Int64](repeating: 0, count: 16)
        var code: Int32 = -1
        let rank = try call(name) { ch5_dataset_info(id, name, &shape, &code, $0, $1) }
        guard let dtype = DType(rawValue: code) else {
            throw TorchError("\(url.lastPathComponent): dataset '\(name)' has an element type Backdrop cannot read")
        }
        return (shape.prefix(Int(rank)).map(Int.init), dtype)
    }

    /// Rows `row ..< row + count` of a dataset (all rows when `count` is nil), in its stored type
    /// or converted to `dtype`.
    public func read(_ name: String, rows row: Int = 0, count: Int? = nil, dtype: DType? = nil) throws -> Tensor {
        let (shape, stored) = try info(name)
        let type = dtype ?? stored
        let n = count ?? ((shape.first ?? 1) - row)
        let rowShape = shape.isEmpty ? [] : [n] + shape.dropFirst()
        let result = try Tensor.empty(rowShape, dtype: type)
        var buffer = Data(count: result.count * type.byteSize)
        _ = try buffer.withUnsafeMutableBytes { raw in
            try call(name) { ch5_read_rows(id, name, Int32(type.rawValue), Int64(row), Int64(n), raw.baseAddress, $0, $1) }
        }
        return try buffer.withUnsafeBytes { try Tensor(bytes: $0, shape: rowShape, dtype: type) }
    }

    /// Every dataset's path, sorted.
    public var datasetNames: [String] {
        get throws {
            let needed = try call("datasets") { ch5_list_datasets(id, nil, 0, $0, $1) }
            var buffer = [CChar](repeating: 0, count: Int(needed) + 1)
            _ = try call("datasets") { ch5_list_datasets(id, &buffer, buffer.count, $0, $1) }
            return String(cString: buffer).split(separator: "\n").map(String.init).sorted()
        }
    }

    // MARK: Attributes

    public func setAttribute(_ key: String, _ value: String) throws {
        try call(key) { ch5_set_string_attribute(id, key, value, $0, $1) }
    }

    /// A root attribute's text, or nil when it does not exist (fixed- or variable-length strings;
    /// FID statistics from strangers go through `ch5_read_statistics_isolated` instead).
    public func attribute(_ key: String) throws -> String? {
        var error = [CChar](repeating: 0, count: 512)
        let length = ch5_get_string_attribute(id, key, 1, nil, 0, &error, error.count)
        if length == -2 { return nil }
        if length < 0 { throw TorchError("\(url.lastPathComponent): attribute '\(key)': \(String(cString: error))") }
        var buffer = [CChar](repeating: 0, count: Int(length) + 1)
        _ = ch5_get_string_attribute(id, key, 1, &buffer, buffer.count, &error, error.count)
        return String(cString: buffer)
    }

    // MARK: Errors

    @discardableResult
    private func call<R: BinaryInteger>(_ subject: String, _ body: (UnsafeMutablePointer<CChar>, Int) -> R) throws -> R {
        guard isOpen else { throw TorchError("\(url.lastPathComponent) is closed") }
        return try Self.call(url, subject, body)
    }

    @discardableResult
    private static func call<R: BinaryInteger>(_ url: URL, _ subject: String? = nil,
                                                _ body: (UnsafeMutablePointer<CChar>, Int) -> R) throws -> R {
        var error = [CChar](repeating: 0, count: 1024)
        let result = error.withUnsafeMutableBufferPointer { body($0.baseAddress!, $0.count) }
        if result < 0 {
            let context = subject.map { "\(url.path): '\($0)'" } ?? url.path
            throw TorchError("\(context): \(String(cString: error))")
        }
        return result
    }
}
