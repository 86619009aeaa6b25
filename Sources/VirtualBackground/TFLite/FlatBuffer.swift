import Foundation

// A bounds-checked reader of the FlatBuffers binary format (https://flatbuffers.dev/internals/), just
// enough for TFLite models: no code generation, no unchecked pointer arithmetic. Every read checks its
// range, so a truncated or corrupt file is an error naming the file, never a crash.
//
// The format in brief (all little-endian):
// - the buffer starts with a u32 offset to the root table (then, for TFLite, the identifier "TFL3");
// - a table starts with an i32 that points back (table − value) to its vtable: u16 vtable size in
//   bytes, u16 table size, then one u16 per field: the field's offset inside the table, 0 = absent
//   (the reader then uses the schema's default);
// - a field holding a table, vector or string stores a u32 offset relative to the field's own position;
// - a vector is a u32 element count followed by the elements (a vector of tables stores one u32
//   relative offset per element); a string is a vector of bytes (followed by a NUL);
// - a union is two fields: a u8 type tag, then the offset of the table of that type.

/// A malformed or unsupported model file; the message names the file.
public struct TFLiteError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The bytes of one FlatBuffers file and the name to put in errors.
final class FlatBuffer {
    let bytes: [UInt8]
    let name: String

    init(bytes: [UInt8], name: String) {
        self.bytes = bytes
        self.name = name
    }

    func error(_ message: String) -> TFLiteError { TFLiteError("\(name): \(message)") }

    /// Checks that `count` bytes from `position` lie inside the buffer.
    func check(_ position: Int, _ count: Int, _ what: @autoclosure () -> String) throws {
        guard position >= 0, count >= 0, position <= bytes.count, count <= bytes.count - position else {
            throw error("\(what()) at byte \(position) (+\(count)) lies outside the file (\(bytes.count) bytes): truncated or corrupt")
        }
    }

    func u8(_ p: Int) throws -> UInt8 { try check(p, 1, "a byte"); return bytes[p] }

    func u16(_ p: Int) throws -> UInt16 {
        try check(p, 2, "a 16-bit value")
        return UInt16(bytes[p]) | UInt16(bytes[p + 1]) << 8
    }

    func u32(_ p: Int) throws -> UInt32 {
        try check(p, 4, "a 32-bit value")
        return (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[p + $1]) << (8 * UInt32($1)) }
    }

    func u64(_ p: Int) throws -> UInt64 {
        try check(p, 8, "a 64-bit value")
        return (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[p + $1]) << (8 * UInt64($1)) }
    }

    func i32(_ p: Int) throws -> Int32 { Int32(bitPattern: try u32(p)) }

    /// The table that the root offset at the start of the buffer points to.
    func root() throws -> FlatTable {
        guard bytes.count >= 8 else { throw error("\(bytes.count) bytes is too short for a FlatBuffers file") }
        return try table(at: Int(try u32(0)), "")
    }

    /// The table at `position`, with its vtable located and checked.
    func table(at position: Int, _ what: String) throws -> FlatTable {
        let label = what.isEmpty ? "root table" : what
        let back = Int(try i32(position))
        let vtable = position - back
        let vtableSize = Int(try u16(vtable))
        guard vtableSize >= 4, vtableSize % 2 == 0 else {
            throw error("\(label): vtable at byte \(vtable) has an impossible size \(vtableSize)")
        }
        try check(vtable, vtableSize, "\(label): vtable")
        let tableSize = Int(try u16(vtable + 2))
        try check(position, tableSize, "\(label): table")
        return FlatTable(buffer: self, position: position, vtable: vtable, fieldCount: (vtableSize - 4) / 2,
                         size: tableSize, what: what)
    }
}

/// One table inside a `FlatBuffer`. Field accessors take the schema's field id (declaration order,
/// counting a union as two fields) and return the schema default when the field is absent.
struct FlatTable {
    let buffer: FlatBuffer
    let position: Int
    let vtable: Int
    let fieldCount: Int
    let size: Int
    /// What the table is, for errors ("subgraph 0, operator 12"); empty for the root.
    let what: String

    private var label: String { what.isEmpty ? "root table" : what }

    /// The absolute position of field `id`, or nil when the field is absent.
    func fieldPosition(_ id: Int, width: Int) throws -> Int? {
        guard id < fieldCount else { return nil }
        let offset = Int(try buffer.u16(vtable + 4 + 2 * id))
        if offset == 0 { return nil }
        guard offset + width <= size else {
            throw buffer.error("\(label): field \(id) at offset \(offset) runs past the table's \(size) bytes")
        }
        return position + offset
    }

    func bool(_ id: Int, default value: Bool = false) throws -> Bool {
        guard let p = try fieldPosition(id, width: 1) else { return value }
        return try buffer.u8(p) != 0
    }

    func u8(_ id: Int, default value: UInt8 = 0) throws -> UInt8 {
        guard let p = try fieldPosition(id, width: 1) else { return value }
        return try buffer.u8(p)
    }

    func i8(_ id: Int, default value: Int8 = 0) throws -> Int8 { Int8(bitPattern: try u8(id, default: UInt8(bitPattern: value))) }

    func i32(_ id: Int, default value: Int32 = 0) throws -> Int32 {
        guard let p = try fieldPosition(id, width: 4) else { return value }
        return try buffer.i32(p)
    }

    func u32(_ id: Int, default value: UInt32 = 0) throws -> UInt32 {
        guard let p = try fieldPosition(id, width: 4) else { return value }
        return try buffer.u32(p)
    }

    func u64(_ id: Int, default value: UInt64 = 0) throws -> UInt64 {
        guard let p = try fieldPosition(id, width: 8) else { return value }
        return try buffer.u64(p)
    }

    /// The label of a table reached from this one ("subgraph 0, operator 12").
    private func child(_ name: String) -> String { what.isEmpty ? name : "\(what), \(name)" }

    /// Follows the u32 offset stored in field `id`.
    private func target(_ id: Int, _ kind: String) throws -> Int? {
        guard let p = try fieldPosition(id, width: 4) else { return nil }
        let target = p + Int(try buffer.u32(p))
        try buffer.check(target, 4, "\(label): \(kind) of field \(id)")
        return target
    }

    func table(_ id: Int, _ name: String) throws -> FlatTable? {
        guard let t = try target(id, "table") else { return nil }
        return try buffer.table(at: t, child(name))
    }

    /// Where a vector's elements start and how many there are; checks they fit the file.
    private func vector(_ id: Int, elementSize: Int) throws -> (start: Int, count: Int)? {
        guard let t = try target(id, "vector") else { return nil }
        let count = Int(try buffer.u32(t))
        let (bytes, overflow) = count.multipliedReportingOverflow(by: elementSize)
        guard !overflow else { throw buffer.error("\(label): vector of field \(id) claims \(count) elements") }
        try buffer.check(t + 4, bytes, "\(label): \(count) elements of the vector in field \(id)")
        return (t + 4, count)
    }

    func string(_ id: Int) throws -> String? {
        guard let (start, count) = try vector(id, elementSize: 1) else { return nil }
        return String(decoding: buffer.bytes[start..<start + count], as: UTF8.self)
    }

    func i32Vector(_ id: Int) throws -> [Int32] {
        guard let (start, count) = try vector(id, elementSize: 4) else { return [] }
        return try (0..<count).map { try buffer.i32(start + 4 * $0) }
    }

    /// The byte range of a `[ubyte]` vector inside the buffer (nil when absent).
    func byteRange(_ id: Int) throws -> Range<Int>? {
        guard let (start, count) = try vector(id, elementSize: 1) else { return nil }
        return start..<start + count
    }

    /// The tables of a vector of tables; `name` labels each in errors ("tensor 3").
    func tables(_ id: Int, _ name: String) throws -> [FlatTable] {
        guard let (start, count) = try vector(id, elementSize: 4) else { return [] }
        return try (0..<count).map { i in
            let p = start + 4 * i
            return try buffer.table(at: p + Int(try buffer.u32(p)), child("\(name) \(i)"))
        }
    }
}
