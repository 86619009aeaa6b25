import Foundation
#if canImport(Glibc)
import Glibc
#endif

// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON `{"__metadata__": {String: String}, name: {"dtype", "shape",
// "data_offsets": [begin, end]}}` padded with spaces, then the tensor bytes, offsets relative to the
// end of the header.

/// One tensor listed in a safetensors header.
public struct SafetensorsEntry: Equatable, Sendable {
    public let name: String
    /// The file's dtype code ("F32", "BF16", "U16", …).
    public let code: String
    /// nil for codes LibTorch 1.13 has no dtype for (U16, U32, U64, F8_*): listed, not loadable.
    public let dtype: DType?
    public let shape: [Int]
    /// Byte range inside the data section.
    public let range: Range<Int>
}

/// A safetensors file opened lazily: the header is parsed on open, the file is memory-mapped, and a
/// tensor's bytes are copied into LibTorch only when that tensor is asked for.
public final class SafetensorsFile {
    public let url: URL
    public let metadata: [String: String]
    /// Tensor names, sorted.
    public let names: [String]
    private let entries: [String: SafetensorsEntry]
    private let data: Data
    private let dataStart: Int

    public init(url: URL) throws {
        self.url = url
        let file = url.lastPathComponent
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw TorchError("cannot read safetensors file \(url.path): \(failureReason(error))")
        }
        guard data.count >= 8 else {
            throw TorchError("\(file): not a safetensors file (\(data.count) bytes, the header length alone takes 8)")
        }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= Safetensors.maxHeaderLength else {
            throw TorchError("\(file): safetensors header length \(headerLength) is absurd (limit \(Safetensors.maxHeaderLength) bytes); the file is corrupt or not safetensors")
        }
        guard 8 + Int(headerLength) <= data.count else {
            throw TorchError("\(file): safetensors header length \(headerLength) runs past the end of the file (\(data.count) bytes); the file is truncated")
        }
        dataStart = 8 + Int(headerLength)
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: data.subdata(in: 8..<dataStart))
        } catch let error as HeaderError {
            throw TorchError("\(file): tensor '\(error.key)': \(error.message)")
        } catch {
            throw TorchError("\(file): safetensors header is not valid JSON of the expected shape: \(error)")
        }
        metadata = header.metadata
        entries = Dictionary(uniqueKeysWithValues: header.entries.map { ($0.name, $0) })
        names = entries.keys.sorted()

        // Overlapping or out-of-range byte ranges mean a corrupt (or hostile) header.
        let dataLength = data.count - dataStart
        var previous: SafetensorsEntry?
        for entry in header.entries.sorted(by: { ($0.range.lowerBound, $0.range.upperBound) < ($1.range.lowerBound, $1.range.upperBound) }) {
            guard entry.range.upperBound <= dataLength else {
                throw TorchError("\(file): tensor '\(entry.name)': data_offsets \(entry.range.lowerBound)..<\(entry.range.upperBound) run past the data section (\(dataLength) bytes)")
            }
            if let previous, entry.range.lowerBound < previous.range.upperBound, !entry.range.isEmpty {
                throw TorchError("\(file): tensor '\(entry.name)': data_offsets \(entry.range) overlap those of '\(previous.name)' \(previous.range)")
            }
            if !entry.range.isEmpty { previous = entry }
        }
    }

    public func info(_ name: String) -> SafetensorsEntry? { entries[name] }

    /// Copies one tensor out of the file (CPU, contiguous).
    public func tensor(_ name: String) throws -> Tensor {
        let file = url.lastPathComponent
        guard let entry = entries[name] else {
            throw TorchError("\(file): no tensor named '\(name)' (the file has \(names.count): \(names.prefix(8).joined(separator: ", "))\(names.count > 8 ? ", …" : ""))")
        }
        guard let dtype = entry.dtype else {
            throw TorchError("\(file): tensor '\(name)': dtype \(entry.code) is not supported by LibTorch 1.13")
        }
        let start = dataStart + entry.range.lowerBound
        do {
            return try data.withUnsafeBytes { raw in
                try Tensor(bytes: UnsafeRawBufferPointer(rebasing: raw[start..<start + entry.range.count]),
                           shape: entry.shape, dtype: dtype)
            }
        } catch let error as TorchError {
            throw TorchError("\(file): tensor '\(name)': \(error.message)")
        }
    }

    public func loadAll() throws -> [String: Tensor] {
        try Dictionary(uniqueKeysWithValues: names.map { ($0, try tensor($0)) })
    }
}

public enum Safetensors {
    /// Headers above this are refused: real ones are kilobytes, and the length is read before the JSON.
    public static let maxHeaderLength: UInt64 = 100_000_000

    public static func load(_ url: URL) throws -> [String: Tensor] { try SafetensorsFile(url: url).loadAll() }

    /// Writes `tensors` (moved to the CPU, made contiguous) in the layout the Python library uses:
    /// larger dtypes first so every tensor stays aligned, names sorted within a dtype, header padded
    /// with spaces to a multiple of 8. Writes a temporary file next to `url` and renames it.
    public static func save(_ tensors: [String: Tensor], metadata: [String: String]? = nil, to url: URL) throws {
        let file = url.lastPathComponent
        let ordered = try tensors.map { name, tensor -> (name: String, tensor: Tensor, code: String, rank: Int) in
            guard let (code, rank) = codes[tensor.dtype] else {
                throw TorchError("\(file): tensor '\(name)': dtype \(tensor.dtype) has no safetensors code")
            }
            return (name, tensor, code, rank)
        }.sorted { ($1.rank, $0.name) < ($0.rank, $1.name) }

        var header = "{"
        var fields: [String] = []
        if let metadata, !metadata.isEmpty {
            fields.append("\"__metadata__\":{" + metadata.sorted { $0.key < $1.key }
                .map { "\(jsonString($0.key)):\(jsonString($0.value))" }.joined(separator: ",") + "}")
        }
        var offset = 0
        for item in ordered {
            let end = offset + item.tensor.count * item.tensor.dtype.byteSize
            fields.append("\(jsonString(item.name)):{\"dtype\":\"\(item.code)\",\"shape\":[\(item.tensor.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        header += fields.joined(separator: ",") + "}"
        var headerBytes = Data(header.utf8)
        headerBytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - headerBytes.count % 8) % 8))

        try writeAtomically(to: url, streaming: { handle in
            var length = Data(count: 8)
            for i in 0..<8 { length[i] = UInt8(truncatingIfNeeded: UInt64(headerBytes.count) >> (8 * UInt64(i))) }
            try handle.write(contentsOf: length)
            try handle.write(contentsOf: headerBytes)
            for item in ordered {
                do {
                    try handle.write(contentsOf: try item.tensor.rawBytes())
                } catch let error as TorchError {
                    throw TorchError("\(file): tensor '\(item.name)': \(error.message)")
                }
            }
        })
    }

    // MARK: Codes

    /// DType ⇄ safetensors code; `rank` is the position in the Rust library's `Dtype` enum, which
    /// orders tensors in its files (descending).
    static let codes: [DType: (code: String, rank: Int)] = [
        .bool: ("BOOL", 0), .uint8: ("U8", 1), .int8: ("I8", 2), .int16: ("I16", 5), .float16: ("F16", 7),
        .bfloat16: ("BF16", 8), .int32: ("I32", 9), .float32: ("F32", 11), .float64: ("F64", 12), .int64: ("I64", 13),
    ]
    /// Every code of the format with its element size; those without a DType are listed but not loadable.
    static let elementSizes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8,
    ]
    static let dtypes: [String: DType] = Dictionary(uniqueKeysWithValues: codes.map { ($0.value.code, $0.key) })

    /// A JSON string literal escaped as serde_json does (non-ASCII kept as UTF-8).
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where scalar.value < 0x20: out += "\\u00" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

// MARK: Header decoding

private struct HeaderError: Error {
    let key: String
    let message: String
}

private struct Header: Decodable {
    var metadata: [String: String] = [:]
    var entries: [SafetensorsEntry] = []
    private var seen: Set<String> = []

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    struct Raw: Decodable {
        let dtype: String
        let shape: [Int]
        let data_offsets: [Int]
    }

    init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        for key in container.allKeys {
            let name = key.stringValue
            guard seen.insert(name).inserted else { throw HeaderError(key: name, message: "listed twice") }
            if name == "__metadata__" {
                do {
                    metadata = try container.decode([String: String].self, forKey: key)
                } catch {
                    throw HeaderError(key: name, message: "__metadata__ must map strings to strings")
                }
                continue
            }
            let raw: Raw
            do {
                raw = try container.decode(Raw.self, forKey: key)
            } catch {
                throw HeaderError(key: name, message: "expected {\"dtype\": String, \"shape\": [Int], \"data_offsets\": [Int, Int]}")
            }
            guard let size = Safetensors.elementSizes[raw.dtype] else {
                throw HeaderError(key: name, message: "unknown dtype '\(raw.dtype)'")
            }
            guard raw.data_offsets.count == 2, raw.data_offsets[0] >= 0, raw.data_offsets[0] <= raw.data_offsets[1] else {
                throw HeaderError(key: name, message: "data_offsets \(raw.data_offsets) are not [begin, end] with 0 <= begin <= end")
            }
            // Multiplying unchecked could overflow on a hostile header.
            var bytes = size
            for dim in raw.shape {
                let (product, overflow) = bytes.multipliedReportingOverflow(by: dim)
                guard dim >= 0, !overflow else {
                    throw HeaderError(key: name, message: "invalid shape \(raw.shape)")
                }
                bytes = product
            }
            guard raw.data_offsets[1] - raw.data_offsets[0] == bytes else {
                throw HeaderError(key: name, message: "data_offsets \(raw.data_offsets) span \(raw.data_offsets[1] - raw.data_offsets[0]) bytes but shape \(raw.shape) of \(raw.dtype) needs \(bytes)")
            }
            entries.append(SafetensorsEntry(name: name, code: raw.dtype, dtype: Safetensors.dtypes[raw.dtype], shape: raw.shape,
                                            range: raw.data_offsets[0]..<raw.data_offsets[1]))
        }
    }
}
