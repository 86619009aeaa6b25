import Foundation

// backdrop-fuzz: the parsers of untrusted input under libFuzzer (docs/security.md#fuzzing).
//
//   backdrop-fuzz HARNESS FILE…                      replay: run each file once (any build)
//   backdrop-fuzz HARNESS [libFuzzer flags] DIR…     fuzz (`make fuzz` builds with
//                                                    -sanitize=fuzzer,address -DBACKDROP_FUZZ)
//
// A replayed input that the parser refuses is fine; the process must not crash.

let arguments = CommandLine.arguments
guard arguments.count >= 2, let harness = Harness.all.first(where: { $0.name == arguments[1] }) else {
    FileHandle.standardError.write(Data("usage: backdrop-fuzz HARNESS [FILE… | libFuzzer flags and corpus folders]\nharnesses: \(Harness.all.map(\.name).joined(separator: ", "))\n".utf8))
    exit(64)
}
nonisolated(unsafe) var selected = harness

#if BACKDROP_FUZZ
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// libFuzzer's runtime references this entry point even when the driver is started with a callback.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    _ = try? selected.run(bytes.map { Data(bytes: $0, count: size) } ?? Data())
    return 0
}

// libFuzzer sees the arguments after the harness name.
var forwarded: [UnsafeMutablePointer<CChar>?] = ([arguments[0]] + arguments.dropFirst(2)).map { strdup($0) } + [nil]
var count = Int32(forwarded.count - 1)
let status = forwarded.withUnsafeMutableBufferPointer { buffer -> Int32 in
    var base: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buffer.baseAddress
    return LLVMFuzzerRunDriver(&count, &base) { fuzzOneInput($0, $1) }
}
exit(status)
#else
var refused = 0
for path in arguments.dropFirst(2) {
    let data: Data
    do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
        FileHandle.standardError.write(Data("cannot read \(path): \(error)\n".utf8))
        exit(1)
    }
    do { try selected.run(data) } catch { refused += 1 }
}
print("\(harness.name): \(arguments.count - 2) inputs replayed, \(refused) refused with an error, none crashed")
#endif
