import Foundation

/// Checks a zip archive's directory before ZIPFoundation reads it (docs/security.md#bounded-parsing):
/// every offset and size the end-of-central-directory record, the central directory and the local
/// headers declare must point inside the file. ZIPFoundation converts some of them to signed
/// integers unchecked, so a crafted offset past `Int64.max` stopped the process (found by `make fuzz`).
/// Reads only the directory and 30 bytes per entry, never the entries' data.
enum ZipBounds {
    static func check(_ url: URL) throws {
        let file = url.lastPathComponent
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw TorchError("cannot read \(url.path): no such file or not readable")
        }
        defer { try? handle.close() }
        func fail(_ message: String) -> TorchError { TorchError("\(file): not a well-formed zip archive: \(message)") }
        let length = UInt64(try handle.seekToEnd())
        func read(_ offset: UInt64, _ count: Int) throws -> Data {
            guard offset <= length, UInt64(count) <= length - offset else {
                throw fail("\(count) bytes at offset \(offset) lie past the end of the file (\(length) bytes)")
            }
            try handle.seek(toOffset: offset)
            let data = try handle.read(upToCount: count) ?? Data()
            guard data.count == count else { throw fail("the file ends inside a record at offset \(offset)") }
            return data
        }

        // End of central directory: the last 22 bytes, or up to 65,535 bytes of comment before them.
        guard length >= 22 else { throw fail("\(length) bytes cannot hold an end-of-central-directory record") }
        let tailLength = Int(min(length, 22 + 65_535))
        let tail = try read(length - UInt64(tailLength), tailLength)
        guard let end = (0...(tailLength - 22)).reversed().first(where: { tail.uint32(at: $0) == 0x0605_4b50 }) else {
            throw fail("no end-of-central-directory record")
        }
        var entries = UInt64(tail.uint16(at: end + 10))
        var directorySize = UInt64(tail.uint32(at: end + 12))
        var directoryOffset = UInt64(tail.uint32(at: end + 16))
        let endOffset = length - UInt64(tailLength) + UInt64(end)
        if endOffset >= 20, try read(endOffset - 20, 4).uint32(at: 0) == 0x0706_4b50 {
            // ZIP64: the locator before the record points at the 64-bit record. Readers take its
            // values whenever it is there (ZIPFoundation does), saturated 32-bit fields or not.
            let record = try read(endOffset - 20, 20).uint64(at: 8)
            let zip64 = try read(record, 56)
            guard zip64.uint32(at: 0) == 0x0606_4b50 else { throw fail("the ZIP64 locator points at no ZIP64 record") }
            (entries, directorySize, directoryOffset) = (zip64.uint64(at: 32), zip64.uint64(at: 40), zip64.uint64(at: 48))
        }
        guard directoryOffset <= length, directorySize <= length - directoryOffset else {
            throw fail("the central directory (\(directorySize) bytes at \(directoryOffset)) lies past the end of the file")
        }
        guard entries <= directorySize / 46 else { throw fail("\(entries) entries cannot fit a \(directorySize)-byte directory") }

        let directory = try read(directoryOffset, Int(directorySize))
        var position = 0
        for index in 0..<Int(entries) {
            guard position + 46 <= directory.count, directory.uint32(at: position) == 0x0201_4b50 else {
                throw fail("central directory entry \(index) is missing or truncated")
            }
            var compressed = UInt64(directory.uint32(at: position + 20))
            var uncompressed = UInt64(directory.uint32(at: position + 24))
            let (nameLength, extraLength, commentLength) = (Int(directory.uint16(at: position + 28)),
                                                            Int(directory.uint16(at: position + 30)),
                                                            Int(directory.uint16(at: position + 32)))
            var localOffset = UInt64(directory.uint32(at: position + 42))
            let extraStart = position + 46 + nameLength
            guard extraStart + extraLength + commentLength <= directory.count else {
                throw fail("central directory entry \(index) runs past the directory")
            }
            // ZIP64 extended information (0x0001): the 64-bit values of the fields set to 0xFFFFFFFF, in order.
            var field = extraStart
            while field + 4 <= extraStart + extraLength {
                let (id, size) = (directory.uint16(at: field), Int(directory.uint16(at: field + 2)))
                guard field + 4 + size <= extraStart + extraLength else { throw fail("entry \(index) has a truncated extra field") }
                if id == 0x0001 {
                    var cursor = field + 4
                    func next() throws -> UInt64 {
                        guard cursor + 8 <= field + 4 + size else { throw fail("entry \(index) has a short ZIP64 field") }
                        defer { cursor += 8 }
                        return directory.uint64(at: cursor)
                    }
                    if uncompressed == 0xFFFF_FFFF { uncompressed = try next() }
                    if compressed == 0xFFFF_FFFF { compressed = try next() }
                    if localOffset == 0xFFFF_FFFF { localOffset = try next() }
                }
                field += 4 + size
            }
            guard uncompressed <= UInt64(Int64.max) else { throw fail("entry \(index) declares \(uncompressed) bytes") }
            let local = try read(localOffset, 30)
            guard local.uint32(at: 0) == 0x0403_4b50 else { throw fail("entry \(index) points at no local header (offset \(localOffset))") }
            let dataOffset = localOffset + 30 + UInt64(local.uint16(at: 26)) + UInt64(local.uint16(at: 28))
            guard dataOffset <= length, compressed <= length - dataOffset else {
                throw fail("entry \(index)'s \(compressed) bytes at offset \(dataOffset) lie past the end of the file")
            }
            position = extraStart + extraLength + commentLength
        }
    }
}

private extension Data {
    func uint16(at offset: Int) -> UInt16 {
        UInt16(self[startIndex + offset]) | UInt16(self[startIndex + offset + 1]) << 8
    }
    func uint32(at offset: Int) -> UInt32 { UInt32(uint16(at: offset)) | UInt32(uint16(at: offset + 2)) << 16 }
    func uint64(at offset: Int) -> UInt64 { UInt64(uint32(at: offset)) | UInt64(uint32(at: offset + 4)) << 32 }
}
