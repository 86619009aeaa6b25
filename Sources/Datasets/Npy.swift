import Foundation
import Torch

/// A NumPy `.npy` array (format versions 1.0, 2.0 and 3.0): unicode (`<U n`, `>U n`) and byte
/// string (`|S n`) arrays become Swift strings, numeric arrays become tensors. Object arrays
/// (pickled Python objects) are refused: they cannot be read without running a Python unpickler.
///
/// Format: magic `\x93NUMPY`, major and minor version bytes, a little-endian header length (2 bytes
/// in 1.0, 4 bytes in 2.0/3.0), an ASCII (UTF-8 in 3.0) Python dict literal
/// `{'descr': '<U87', 'fortran_order': False, 'shape': (9820, 6), }`, then the raw data.
public struct NpyArray: Sendable {
    public enum Values: Sendable {
        case strings([String])
        case numeric(Tensor)
    }

    /// The dtype string, e.g. `<U87`, `<f4`, `|u1`.
    public let descr: String
    public let shape: [Int]
    /// Elements in C (row-major) order, whatever the file's order was.
    public let values: Values

    public var count: Int { shape.reduce(1, *) }

    /// The elements as strings (row-major), or an error naming `name` for a numeric array.
    public func strings(name: String = "<npy>") throws -> [String] {
        guard case .strings(let values) = values else {
            throw NpyError(file: name, "expected a string array, found dtype \(descr)")
        }
        return values
    }

    /// The elements as a tensor of `shape`, or an error for a string array.
    public func tensor(name: String = "<npy>") throws -> Tensor {
        guard case .numeric(let tensor) = values else {
            throw NpyError(file: name, "expected a numeric array, found dtype \(descr)")
        }
        return tensor
    }
}

/// A malformed or unsupported `.npy` file.
public struct NpyError: Error, CustomStringConvertible, LocalizedError {
    public let file: String
    public let message: String
    public init(file: String, _ message: String) { self.file = file; self.message = message }
    public var description: String { "\(file): \(message)" }
    public var errorDescription: String? { description }
}

extension NpyArray {
    /// Reads an `.npy` file.
    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
            throw NpyError(file: url.path, FileManager.default.fileExists(atPath: url.path)
                           ? "cannot read the file" : "no such file")
        }
        try self.init(data: data, name: url.path)
    }

    /// Parses `.npy` bytes; `name` appears in errors.
    public init(data: Data, name: String = "<npy>") throws {
        let bytes = [UInt8](data)
        guard bytes.count >= 10, bytes.starts(with: [0x93] + Array("NUMPY".utf8)) else {
            throw NpyError(file: name, "not a .npy file (missing the \\x93NUMPY magic)")
        }
        let major = bytes[6], minor = bytes[7]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw NpyError(file: name, "truncated header") }
            headerLength = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
            headerStart = 12
        default:
            throw NpyError(file: name, "unsupported .npy format version \(major).\(minor) (supported: 1.0–3.0)")
        }
        guard headerStart + headerLength <= bytes.count else {
            throw NpyError(file: name, "truncated header: \(headerLength) bytes announced, \(bytes.count - headerStart) present")
        }
        let headerBytes = bytes[headerStart..<(headerStart + headerLength)]
        // 1.0/2.0 headers are latin-1 (ASCII in practice); 3.0 headers are UTF-8.
        let header = major == 3 ? String(decoding: headerBytes, as: UTF8.self)
                                : String(headerBytes.map { Character(Unicode.Scalar($0)) })
        let dict = try NpyHeader(parsing: header, name: name)
        let body = headerStart + headerLength
        self = try Self.decodeBody(bytes, from: body, header: dict, name: name)
    }

    private static func decodeBody(_ bytes: [UInt8], from offset: Int, header: NpyHeader, name: String) throws -> NpyArray {
        // Sizes from a header are checked before any arithmetic on them: a crafted one trapped on a
        // negative string length (found by make fuzz) and could overflow the element count.
        var count = 1
        for dimension in header.shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard dimension >= 0, !overflow else { throw NpyError(file: name, "impossible shape \(header.shape)") }
            count = product
        }
        var descr = header.descr
        let order = descr.first.map { "<>|=".contains($0) } == true ? descr.removeFirst() : "="
        let bigEndian = order == ">"
        guard let kind = descr.first, let size = Int(descr.dropFirst()) else {
            throw NpyError(file: name, "unsupported dtype '\(header.descr)' (structured or object arrays cannot be read)")
        }
        guard (1...(1 << 24)).contains(size) else { throw NpyError(file: name, "impossible element size in dtype '\(header.descr)'") }
        let elementBytes: Int
        switch kind {
        case "U": elementBytes = 4 * size
        case "S", "a": elementBytes = size
        case "f", "i", "u", "b": elementBytes = size
        case "O": throw NpyError(file: name, "object arrays (pickled Python objects) are not supported: save a "
                                 + "unicode array instead, e.g. np.save(path, np.array(rows, dtype=str))")
        default: throw NpyError(file: name, "unsupported dtype '\(header.descr)'")
        }
        let (needed, overflow) = count.multipliedReportingOverflow(by: elementBytes)
        guard !overflow, bytes.count - offset >= needed else {
            throw NpyError(file: name, "truncated data: \(needed) bytes expected for shape \(header.shape) of "
                           + "\(header.descr), \(bytes.count - offset) present")
        }
        // Fortran order: elements come with the first index varying fastest. Reading them as the
        // reversed shape and transposing gives C order.
        let storageShape = header.fortranOrder ? Array(header.shape.reversed()) : header.shape
        switch kind {
        case "U", "S", "a":
            var strings: [String] = []
            strings.reserveCapacity(count)
            for i in 0..<count {
                let start = offset + i * elementBytes
                strings.append(kind == "U" ? decodeUTF32(bytes, start, size, bigEndian: bigEndian)
                                           : decodeBytes(bytes, start, size))
            }
            if header.fortranOrder, storageShape.count > 1 {
                strings = transposeIndices(storageShape).map { strings[$0] }
            }
            return NpyArray(descr: header.descr, shape: header.shape, values: .strings(strings))
        default:
            let dtype: DType
            switch (kind, size) {
            case ("f", 2): dtype = .float16
            case ("f", 4): dtype = .float32
            case ("f", 8): dtype = .float64
            case ("i", 1): dtype = .int8
            case ("i", 2): dtype = .int16
            case ("i", 4): dtype = .int32
            case ("i", 8): dtype = .int64
            case ("u", 1): dtype = .uint8
            case ("b", 1): dtype = .bool
            default:
                throw NpyError(file: name, "unsupported numeric dtype '\(header.descr)' (LibTorch has no "
                               + "unsigned types wider than 8 bits)")
            }
            var raw = Array(bytes[offset..<(offset + needed)])
            if bigEndian, size > 1 {
                for i in 0..<count { raw[(i * size)..<((i + 1) * size)].reverse() }
            }
            var tensor = try raw.withUnsafeBytes { try Tensor(bytes: $0, shape: storageShape, dtype: dtype) }
            if header.fortranOrder, storageShape.count > 1 {
                tensor = try tensor.permute(Array((0..<storageShape.count).reversed())).contiguous()
            }
            return NpyArray(descr: header.descr, shape: header.shape, values: .numeric(tensor))
        }
    }

    /// For an array stored in `storageShape` (the reversed logical shape), the storage index of
    /// each logical element in C order.
    private static func transposeIndices(_ storageShape: [Int]) -> [Int] {
        let shape = Array(storageShape.reversed())
        let count = shape.reduce(1, *)
        var storageStrides = [Int](repeating: 1, count: storageShape.count)
        for d in stride(from: storageShape.count - 2, through: 0, by: -1) {
            storageStrides[d] = storageStrides[d + 1] * storageShape[d + 1]
        }
        return (0..<count).map { flat in
            var rest = flat, index = 0
            for d in stride(from: shape.count - 1, through: 0, by: -1) {
                let coordinate = rest % shape[d]
                rest /= shape[d]
                // Logical dimension d is storage dimension (rank - 1 - d).
                index += coordinate * storageStrides[shape.count - 1 - d]
            }
            return index
        }
    }

    private static func decodeUTF32(_ bytes: [UInt8], _ start: Int, _ length: Int, bigEndian: Bool) -> String {
        var scalars = String.UnicodeScalarView()
        for k in 0..<length {
            let p = start + 4 * k
            let value = bigEndian
                ? UInt32(bytes[p]) << 24 | UInt32(bytes[p + 1]) << 16 | UInt32(bytes[p + 2]) << 8 | UInt32(bytes[p + 3])
                : UInt32(bytes[p]) | UInt32(bytes[p + 1]) << 8 | UInt32(bytes[p + 2]) << 16 | UInt32(bytes[p + 3]) << 24
            if value == 0 { break }  // NumPy pads with NULs
            scalars.append(Unicode.Scalar(value) ?? "\u{FFFD}")
        }
        return String(scalars)
    }

    private static func decodeBytes(_ bytes: [UInt8], _ start: Int, _ length: Int) -> String {
        let slice = bytes[start..<(start + length)]
        let end = slice.firstIndex(of: 0) ?? slice.endIndex
        return String(decoding: slice[start..<end], as: UTF8.self)
    }
}

/// The header dict of an `.npy` file.
struct NpyHeader {
    var descr: String
    var fortranOrder: Bool
    var shape: [Int]

    /// Parses the restricted Python literal NumPy writes: a dict with string keys `descr`,
    /// `fortran_order` and `shape`, a string, a bool and a tuple of integers.
    init(parsing text: String, name: String) throws {
        func field(_ key: String) throws -> Substring {
            for quote in ["'", "\""] {
                if let range = text.range(of: "\(quote)\(key)\(quote)") {
                    let rest = text[range.upperBound...].drop { $0 == " " }
                    guard rest.first == ":" else { break }
                    return rest.dropFirst().drop { $0 == " " }
                }
            }
            throw NpyError(file: name, "the header has no '\(key)' entry: \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        let descrText = try field("descr")
        guard let quote = descrText.first, quote == "'" || quote == "\"",
              let end = descrText.dropFirst().firstIndex(of: quote) else {
            throw NpyError(file: name, "unsupported dtype description in header: \(text) (structured arrays cannot be read)")
        }
        descr = String(descrText[descrText.index(after: descrText.startIndex)..<end])
        let orderText = try field("fortran_order")
        if orderText.hasPrefix("True") { fortranOrder = true } else if orderText.hasPrefix("False") {
            fortranOrder = false
        } else {
            throw NpyError(file: name, "bad fortran_order in header: \(text)")
        }
        let shapeText = try field("shape")
        guard shapeText.first == "(", let close = shapeText.firstIndex(of: ")") else {
            throw NpyError(file: name, "bad shape in header: \(text)")
        }
        let inner = shapeText[shapeText.index(after: shapeText.startIndex)..<close]
        var dims: [Int] = []
        for part in inner.split(separator: ",") {
            let trimmed = part.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "L", with: "")
            if trimmed.isEmpty { continue }
            guard let value = Int(trimmed), value >= 0 else {
                throw NpyError(file: name, "bad shape entry '\(part)' in header: \(text)")
            }
            dims.append(value)
        }
        shape = dims
        // Guard against absurd shapes in corrupt headers before anything is allocated.
        var total = 1
        for d in dims {
            let (product, overflow) = total.multipliedReportingOverflow(by: d)
            guard !overflow, product < (1 << 40) else { throw NpyError(file: name, "shape \(dims) is too large") }
            total = product
        }
    }
}

/// Writes `.npy` files readable by `numpy.load` (format 1.0, or 2.0 for very long headers).
public enum NpyWriter {
    /// A string array as `<U n` (UTF-32 LE, n = the longest string's length in code points).
    public static func write(strings: [String], shape: [Int], to url: URL) throws {
        guard shape.reduce(1, *) == strings.count else {
            throw NpyError(file: url.path, "\(strings.count) strings do not fill shape \(shape)")
        }
        let width = max(1, strings.map { $0.unicodeScalars.count }.max() ?? 1)
        var body = Data(capacity: strings.count * width * 4)
        for string in strings {
            var scalars = string.unicodeScalars.map(\.value)
            scalars += [UInt32](repeating: 0, count: width - scalars.count)
            for value in scalars { withUnsafeBytes(of: value.littleEndian) { body.append(contentsOf: $0) } }
        }
        try write(descr: "<U\(width)", shape: shape, body: body, to: url)
    }

    /// A numeric tensor in its own dtype (little-endian, C order).
    public static func write(tensor: Tensor, to url: URL) throws {
        let descr: String
        switch tensor.dtype {
        case .float16: descr = "<f2"
        case .float32: descr = "<f4"
        case .float64: descr = "<f8"
        case .int8: descr = "|i1"
        case .int16: descr = "<i2"
        case .int32: descr = "<i4"
        case .int64: descr = "<i8"
        case .uint8: descr = "|u1"
        case .bool: descr = "|b1"
        default: throw NpyError(file: url.path, "cannot write dtype \(tensor.dtype) as .npy")
        }
        try write(descr: descr, shape: tensor.shape, body: tensor.contiguous().rawBytes(), to: url)
    }

    static func write(descr: String, shape: [Int], body: Data, to url: URL) throws {
        let shapeText = shape.isEmpty ? "()" : shape.count == 1 ? "(\(shape[0]),)"
                                                               : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        // The header (with magic, version and length) is padded with spaces to a multiple of 64
        // bytes and ends with a newline, as NumPy writes it.
        var prefix = 10
        if header.utf8.count + prefix + 1 > 65535 { prefix = 12 }
        let padding = (64 - (prefix + header.utf8.count + 1) % 64) % 64
        header += String(repeating: " ", count: padding) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8))
        let length = header.utf8.count
        if prefix == 10 {
            data.append(contentsOf: [1, 0, UInt8(length & 0xFF), UInt8(length >> 8)])
        } else {
            data.append(contentsOf: [2, 0] + (0..<4).map { UInt8((length >> (8 * $0)) & 0xFF) })
        }
        data.append(contentsOf: Array(header.utf8))
        data.append(body)
        do { try writeAtomically(to: url) { try data.write(to: $0) } } catch {
            throw NpyError(file: url.path, "cannot write: \(failureReason(error))")
        }
    }
}
