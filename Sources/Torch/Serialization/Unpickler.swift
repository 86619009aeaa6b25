import Foundation

/// A restricted unpickler: it interprets the opcodes of pickle protocols 2–5 (and the common
/// protocol-0 ones) into `PickleValue`s and never imports or calls anything. Known globals
/// (containers, tensor and storage rebuilders, `torch.Size`, `_codecs.encode`, numpy scalars) are
/// interpreted by name; other classes become `PickleObject` placeholders; functions, and anything
/// from modules whose only use in a pickle is running code, are refused with an error.
///
/// Hostile input is bounded: every length is checked against the data, containers nest at most
/// `maxDepth` deep, and the value tree may not expand (through shared references) beyond
/// `maxValues` values.
final class Unpickler {
    /// Loads the storage `key` as a 1-D tensor of `numel` elements of `dtype`.
    typealias StorageLoader = (_ key: String, _ dtype: DType, _ numel: Int) throws -> Tensor

    /// "file.pt (data.pkl)": prefixed to every error.
    let context: String
    let loadStorage: StorageLoader
    static let maxDepth = 256
    static let maxValues = 10_000_000

    // MARK: Intermediate values

    /// Containers, shared through the memo exactly as Python shares the objects (tuples too, so
    /// that shared sub-tuples are resolved once).
    final class Node {
        enum Kind {
            case tuple, list, set, dict, object(String)
            var isMapping: Bool { switch self { case .dict, .object: true; default: false } }
        }
        let kind: Kind
        var args: [Item] = []
        var state: Item?
        var items: [Item] = []
        var entries: [(key: Item, value: Item)] = []
        var index: [ScalarKey: Int] = [:]
        init(_ kind: Kind, args: [Item] = [], items: [Item] = []) { self.kind = kind; self.args = args; self.items = items }

        /// Python dicts keep one entry per key, at the position it was first set.
        func set(_ key: Item, _ value: Item) {
            guard let k = ScalarKey(key) else { entries.append((key, value)); return }
            if let i = index[k] { entries[i].value = value } else { index[k] = entries.count; entries.append((key, value)) }
        }
    }

    enum ScalarKey: Hashable {
        case string(String), int(Int)
        init?(_ item: Item) {
            switch item {
            case .value(.string(let s)): self = .string(s)
            case .value(.int(let i)): self = .int(i)
            default: return nil
            }
        }
    }

    enum Item {
        case value(PickleValue)
        case node(Node)
        case global(String, String)
        case storage(Tensor)
        case mark
    }

    private var data: Data
    private var position: Int
    private var stack: [Item] = []
    private var marks: [Int] = []
    private var memo: [Int: Item] = [:]
    private var storages: [String: Tensor] = [:]
    /// Every node made, so that teardown can unlink them one by one instead of recursively.
    private var nodes: [Node] = []

    init(_ data: Data, context: String, loadStorage: @escaping StorageLoader) {
        self.data = data
        self.position = data.startIndex
        self.context = context
        self.loadStorage = loadStorage
    }

    func fail(_ message: String) -> TorchError { TorchError("\(context): \(message)") }

    // MARK: Reading bytes

    private func take(_ n: Int) throws -> Data {
        guard n >= 0, n <= data.endIndex - position else {
            throw fail("truncated pickle: \(n) bytes wanted at offset \(position - data.startIndex), \(data.endIndex - position) left")
        }
        defer { position += n }
        return data[position..<position + n]
    }

    private func byte() throws -> UInt8 { try take(1).first! }

    private func uint(_ n: Int) throws -> UInt64 {
        try take(n).reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }

    private func line() throws -> String {
        guard let end = data[position...].firstIndex(of: UInt8(ascii: "\n")) else { throw fail("truncated pickle: unterminated line") }
        defer { position = end + 1 }
        return String(decoding: data[position..<end], as: UTF8.self)
    }

    private func length(_ n: Int) throws -> Int {
        let value = try uint(n)
        guard value <= UInt64(data.endIndex - position) else {
            throw fail("truncated pickle: length \(value) at offset \(position - data.startIndex) runs past the end")
        }
        return Int(value)
    }

    private func text(_ bytes: Data) -> String { String(decoding: bytes, as: UTF8.self) }

    /// Little-endian two's complement, as LONG1/LONG4 store it.
    private func integer(_ bytes: Data) -> Item {
        guard !bytes.isEmpty else { return .value(.int(0)) }
        let negative = bytes.last! & 0x80 != 0
        let fill: UInt8 = negative ? 0xFF : 0
        let significant = bytes.count <= 8 || bytes.dropFirst(8).allSatisfy { $0 == fill } && (bytes[bytes.startIndex + 7] & 0x80 != 0) == negative
        guard significant else {
            return .value(.opaque(PickleObject(className: "builtins.int", args: [.bytes(Data(bytes))])))
        }
        var value: UInt64 = negative ? .max : 0
        for (i, b) in bytes.prefix(8).enumerated() {
            value &= ~(UInt64(0xFF) << (8 * UInt64(i)))
            value |= UInt64(b) << (8 * UInt64(i))
        }
        return .value(.int(Int(Int64(bitPattern: value))))
    }

    // MARK: Stack

    private func pop() throws -> Item {
        guard let top = stack.popLast() else { throw fail("malformed pickle: stack underflow at offset \(position - data.startIndex)") }
        if case .mark = top { throw fail("malformed pickle: unexpected MARK") }
        return top
    }

    private func popMark() throws -> [Item] {
        guard let mark = marks.popLast(), mark < stack.count, case .mark = stack[mark] else {
            throw fail("malformed pickle: no MARK")
        }
        defer { stack.removeSubrange(mark...) }
        return Array(stack[(mark + 1)...])
    }

    private func top() throws -> Item {
        guard let top = stack.last else { throw fail("malformed pickle: stack underflow") }
        return top
    }

    private func memoGet(_ key: Int) throws -> Item {
        guard let item = memo[key] else { throw fail("malformed pickle: memo key \(key) not set") }
        return item
    }

    // MARK: Opcodes

    func load() throws -> PickleValue {
        defer {
            // A long chain of nested nodes would otherwise be released recursively, deep enough
            // to overflow the stack.
            for node in nodes { node.items = []; node.entries = []; node.args = []; node.state = nil }
            nodes = []; memo = [:]; stack = []
        }
        var resolved: [ObjectIdentifier: (value: PickleValue, size: Int)] = [:]
        var active: Set<ObjectIdentifier> = []
        return try resolve(try run(), depth: 0, &resolved, &active).value
    }

    private func node(_ kind: Node.Kind, args: [Item] = [], items: [Item] = []) -> Item {
        let node = Node(kind, args: args, items: items)
        nodes.append(node)
        return .node(node)
    }

    private func tuple(_ items: [Item]) -> Item { node(.tuple, items: items) }

    private func tupleItems(_ item: Item) -> [Item]? {
        guard case .node(let node) = item, case .tuple = node.kind else { return nil }
        return node.items
    }

    private func run() throws -> Item {
        while true {
            let op = try byte()
            switch op {
            case 0x80: // PROTO
                let proto = try byte()
                guard proto <= 5 else { throw fail("pickle protocol \(proto) is newer than 5") }
            case 0x95: _ = try take(8) // FRAME: only a read-ahead hint
            case 0x2E: return try pop() // STOP
            case 0x28: marks.append(stack.count); stack.append(.mark) // MARK
            case 0x29: stack.append(tuple([])) // EMPTY_TUPLE
            case 0x5D: stack.append(node(.list)) // EMPTY_LIST
            case 0x7D: stack.append(node(.dict)) // EMPTY_DICT
            case 0x8F: stack.append(node(.set)) // EMPTY_SET
            case 0x4E: stack.append(.value(.none)) // NONE
            case 0x88: stack.append(.value(.bool(true))) // NEWTRUE
            case 0x89: stack.append(.value(.bool(false))) // NEWFALSE
            case 0x4A: stack.append(.value(.int(Int(Int32(bitPattern: UInt32(try uint(4))))))) // BININT
            case 0x4B: stack.append(.value(.int(Int(try byte())))) // BININT1
            case 0x4D: stack.append(.value(.int(Int(try uint(2))))) // BININT2
            case 0x8A: stack.append(integer(try take(try length(1)))) // LONG1
            case 0x8B: stack.append(integer(try take(try length(4)))) // LONG4
            case 0x47: stack.append(.value(.float(Double(bitPattern: UInt64(bigEndian: try take(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }))))) // BINFLOAT
            case 0x49: // INT (protocol 0; "01"/"00" are True/False)
                let s = try line()
                if s == "01" || s == "00" { stack.append(.value(.bool(s == "01"))); break }
                guard let v = Int(s) else { throw fail("malformed pickle: INT '\(s)'") }
                stack.append(.value(.int(v)))
            case 0x4C: // LONG (protocol 0)
                let s = try line()
                guard let v = Int(s.hasSuffix("L") ? String(s.dropLast()) : s) else { throw fail("integer \(s) does not fit 64 bits") }
                stack.append(.value(.int(v)))
            case 0x46: // FLOAT (protocol 0)
                let s = try line()
                guard let v = Double(s) else { throw fail("malformed pickle: FLOAT '\(s)'") }
                stack.append(.value(.float(v)))
            case 0x58: stack.append(.value(.string(text(try take(try length(4)))))) // BINUNICODE
            case 0x8C: stack.append(.value(.string(text(try take(try length(1)))))) // SHORT_BINUNICODE
            case 0x8D: stack.append(.value(.string(text(try take(try length(8)))))) // BINUNICODE8
            case 0x54: stack.append(.value(.string(text(try take(try length(4)))))) // BINSTRING (Python 2 str)
            case 0x55: stack.append(.value(.string(text(try take(try length(1)))))) // SHORT_BINSTRING
            case 0x42: stack.append(.value(.bytes(Data(try take(try length(4)))))) // BINBYTES
            case 0x43: stack.append(.value(.bytes(Data(try take(try length(1)))))) // SHORT_BINBYTES
            case 0x8E, 0x96: stack.append(.value(.bytes(Data(try take(try length(8)))))) // BINBYTES8, BYTEARRAY8
            case 0x71: memo[Int(try byte())] = try top() // BINPUT
            case 0x72: memo[Int(try uint(4))] = try top() // LONG_BINPUT
            case 0x94: memo[memo.count] = try top() // MEMOIZE
            case 0x70: // PUT
                guard let key = Int(try line()) else { throw fail("malformed pickle: PUT") }
                memo[key] = try top()
            case 0x68: stack.append(try memoGet(Int(try byte()))) // BINGET
            case 0x6A: stack.append(try memoGet(Int(try uint(4)))) // LONG_BINGET
            case 0x67: // GET
                guard let key = Int(try line()) else { throw fail("malformed pickle: GET") }
                stack.append(try memoGet(key))
            case 0x85: stack.append(tuple([try pop()])) // TUPLE1
            case 0x86: let b = try pop(), a = try pop(); stack.append(tuple([a, b])) // TUPLE2
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); stack.append(tuple([a, b, c])) // TUPLE3
            case 0x74: stack.append(tuple(try popMark())) // TUPLE
            case 0x6C: stack.append(node(.list, items: try popMark())) // LIST
            case 0x64: // DICT
                let dict = node(.dict)
                try setItems(dict, try popMark())
                stack.append(dict)
            case 0x91: stack.append(node(.set, items: try popMark())) // FROZENSET
            case 0x73: let v = try pop(), k = try pop(); try setItems(try top(), [k, v]) // SETITEM
            case 0x75: let items = try popMark(); try setItems(try top(), items) // SETITEMS
            case 0x61: let v = try pop(); try append(to: try top(), [v]) // APPEND
            case 0x65, 0x90: let items = try popMark(); try append(to: try top(), items) // APPENDS, ADDITEMS
            case 0x30: _ = try pop() // POP
            case 0x31: _ = try popMark() // POP_MARK
            case 0x32: stack.append(try top()) // DUP
            case 0x63: // GLOBAL
                let module = try line(), name = try line()
                stack.append(try global(module, name))
            case 0x93: // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard case .value(.string(let n)) = name, case .value(.string(let m)) = module else {
                    throw fail("malformed pickle: STACK_GLOBAL needs two strings")
                }
                stack.append(try global(m, n))
            case 0x52: // REDUCE
                let args = try pop(), callee = try pop()
                guard let list = tupleItems(args) else { throw fail("malformed pickle: REDUCE arguments are not a tuple") }
                stack.append(try call(callee, list))
            case 0x81: // NEWOBJ: cls.__new__(cls, *args)
                let args = try pop(), cls = try pop()
                guard let list = tupleItems(args) else { throw fail("malformed pickle: NEWOBJ arguments are not a tuple") }
                stack.append(try instantiate(cls, list))
            case 0x92: // NEWOBJ_EX
                _ = try pop()
                let args = try pop(), cls = try pop()
                guard let list = tupleItems(args) else { throw fail("malformed pickle: NEWOBJ_EX arguments are not a tuple") }
                stack.append(try instantiate(cls, list))
            case 0x62: // BUILD
                let state = try pop()
                // Attribute state of dicts (OrderedDict's `_metadata`) and tensors does not
                // change their values; other placeholders keep it.
                if case .node(let node) = try top(), case .object = node.kind { node.state = state }
            case 0x51: stack.append(try persistent(try pop())) // BINPERSID
            case 0x50: stack.append(try persistent(.value(.string(try line())))) // PERSID
            default:
                throw fail("unsupported pickle opcode 0x\(String(op, radix: 16)) at offset \(position - 1 - data.startIndex)")
            }
        }
    }

    private func setItems(_ target: Item, _ items: [Item]) throws {
        guard items.count % 2 == 0 else { throw fail("malformed pickle: odd number of items for SETITEMS") }
        switch target {
        case .node(let node) where node.kind.isMapping:
            for i in stride(from: 0, to: items.count, by: 2) { node.set(items[i], items[i + 1]) }
        default:
            throw fail("malformed pickle: SETITEM on \(describe(target))")
        }
    }

    private func append(to target: Item, _ items: [Item]) throws {
        guard case .node(let node) = target else { throw fail("malformed pickle: APPEND on a non-list") }
        node.items += items
    }

    // MARK: Globals

    /// Modules that have no business in a checkpoint: naming one is how malicious pickles run code.
    static let refusedModules: Set<String> = [
        "os", "posix", "nt", "subprocess", "sys", "builtins", "__builtin__", "importlib", "runpy", "code",
        "codeop", "pty", "shutil", "socket", "ctypes", "marshal", "pickle", "_pickle", "cPickle", "dill",
        "shelve", "types", "operator", "_operator", "functools", "multiprocessing", "webbrowser", "commands",
        "popen2", "platform", "pdb", "bdb", "timeit", "threading", "_thread", "signal", "asyncio", "io", "_io",
        "tempfile", "logging", "zipimport", "pkgutil", "inspect", "ast", "sysconfig", "site", "urllib",
        "http", "ftplib", "smtplib", "telnetlib", "xmlrpc", "socketserver", "gc", "atexit", "cProfile",
        "profile", "trace", "doctest", "unittest", "distutils", "setuptools", "pip", "torch.hub", "torch.jit",
        "torch.ops", "torch._ops", "torch.package", "torch.utils.cpp_extension",
    ]
    /// Names refused in any module.
    static let refusedNames: Set<String> = [
        "system", "popen", "eval", "exec", "execfile", "compile", "getattr", "setattr", "delattr", "__import__",
        "apply", "open", "input", "breakpoint", "globals", "locals", "vars", "spawn", "call", "check_call",
        "check_output", "run", "Popen", "load", "loads", "__getattribute__", "__reduce__", "__reduce_ex__",
        "__setstate__", "import_module", "attrgetter", "methodcaller", "partial",
    ]
    /// Harmless builtins that pickles of ordinary data use.
    static let safeBuiltins: Set<String> = [
        "set", "frozenset", "bytearray", "slice", "complex", "range", "object", "int", "float", "str", "bool",
        "bytes", "list", "dict", "tuple",
    ]
    /// Exceptions inside refused modules.
    static let safeGlobals: Set<String> = Set(["types.SimpleNamespace"]).union(scriptListBuilders)
    /// TorchScript's pickler wraps typed lists in these; each returns its first argument unchanged.
    static let scriptListBuilders: Set<String> = [
        "torch.jit._pickle.build_intlist", "torch.jit._pickle.build_doublelist", "torch.jit._pickle.build_boollist",
        "torch.jit._pickle.build_tensorlist", "torch.jit._pickle.build_genericlist", "torch.jit._pickle.restore_type_tag",
    ]
    /// Reconstructors with lowercase names that build data, not run code.
    static let safeCallables: Set<String> = [
        "copyreg._reconstructor", "copy_reg._reconstructor", "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct", "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
        "numpy.dtype", "numpy.ndarray", "datetime.datetime", "datetime.date", "datetime.time",
        "datetime.timedelta", "datetime.timezone", "collections.defaultdict", "collections.deque",
        "torch.device", "torch.dtype", "torch.Size", "_codecs.encode",
    ]

    private func global(_ module: String, _ name: String) throws -> Item {
        let qualified = "\(module).\(name)"
        let refused: Bool
        if module == "builtins" || module == "__builtin__" {
            refused = !Self.safeBuiltins.contains(name)
        } else {
            refused = !Self.safeGlobals.contains(qualified)
                && (Self.refusedModules.contains(where: { module == $0 || module.hasPrefix($0 + ".") })
                    || Self.refusedNames.contains(name) || name.contains(".") || name.hasPrefix("__"))
        }
        if refused {
            throw fail("refusing global '\(qualified)': calling it while unpickling could run code (Backdrop never executes pickled code; this file may be malicious)")
        }
        return .global(module, name)
    }

    /// Python's naming convention tells classes (CapWords) from functions (lowercase).
    private static func looksLikeClass(_ name: String) -> Bool {
        name.first(where: { $0 != "_" })?.isUppercase ?? false
    }

    static let storageTypes: [String: DType] = [
        "FloatStorage": .float32, "DoubleStorage": .float64, "HalfStorage": .float16, "BFloat16Storage": .bfloat16,
        "LongStorage": .int64, "IntStorage": .int32, "ShortStorage": .int16, "CharStorage": .int8,
        "ByteStorage": .uint8, "BoolStorage": .bool, "ComplexFloatStorage": .complex64,
        "ComplexDoubleStorage": .complex128, "UntypedStorage": .uint8,
    ]

    private func call(_ callee: Item, _ args: [Item]) throws -> Item {
        guard case .global(let module, let name) = callee else {
            throw fail("refusing REDUCE on a value that is not a global (\(describe(callee)))")
        }
        let qualified = "\(module).\(name)"
        switch qualified {
        case "collections.OrderedDict", "builtins.dict", "__builtin__.dict":
            let dict = node(.dict)
            if case .node(let target) = dict, let first = args.first, case .node(let source) = first {
                for item in source.items { if let pair = tupleItems(item), pair.count == 2 { target.set(pair[0], pair[1]) } }
            }
            return dict
        case "builtins.set", "__builtin__.set", "builtins.frozenset", "__builtin__.frozenset",
             "builtins.list", "__builtin__.list":
            guard let first = args.first, case .node(let source) = first else { return node(.set) }
            return node(.set, items: source.items)
        case "builtins.bytearray", "__builtin__.bytearray":
            if let first = args.first, case .value(.bytes) = first { return first }
            return try call(.global("_codecs", "encode"), args)
        case "torch._utils._rebuild_tensor_v2":
            return try rebuildTensor(args)
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard let data = args.first, case .value(.tensor) = data else { throw fail("\(qualified) expects a tensor") }
            return data
        case "torch._tensor._rebuild_from_type_v2", "torch._tensor._rebuild_from_type":
            // (func, subclass, args, state): the subclass is dropped, the tensor kept.
            guard args.count >= 3, let inner = tupleItems(args[2]), case .global(_, let function) = args[0],
                  !function.hasPrefix("_rebuild_from_type") else { throw fail("\(qualified): unexpected arguments") }
            return try call(args[0], inner)
        case _ where Self.scriptListBuilders.contains(qualified):
            guard let first = args.first else { throw fail("\(qualified) expects an argument") }
            return first
        case "torch.Size":
            guard let first = args.first, tupleItems(first) != nil else { throw fail("torch.Size expects a tuple") }
            return first
        case "_codecs.encode":
            // Protocol 2 stores `bytes` as encode(latin-1 text).
            guard case .value(.string(let text))? = args.first else { throw fail("_codecs.encode expects a string") }
            var encoding = "utf-8"
            if args.count > 1, case .value(.string(let e)) = args[1] { encoding = e.lowercased() }
            if encoding == "utf-8" || encoding == "utf8" { return .value(.bytes(Data(text.utf8))) }
            guard encoding == "latin1" || encoding == "latin-1", text.unicodeScalars.allSatisfy({ $0.value < 256 }) else {
                throw fail("_codecs.encode with encoding '\(encoding)' is not supported")
            }
            return .value(.bytes(Data(text.unicodeScalars.map { UInt8($0.value) })))
        case "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar":
            if let number = numpyScalar(args) { return number }
        case "copyreg._reconstructor", "copy_reg._reconstructor":
            // (cls, base, state): object.__new__(cls), nothing run.
            if let cls = args.first, case .global = cls { return try instantiate(cls, []) }
        default:
            if module.hasPrefix("torch"), name.hasPrefix("_rebuild") {
                throw fail("unsupported tensor kind \(qualified) (sparse, quantised and meta tensors are not read)")
            }
            guard Self.looksLikeClass(name) || Self.safeCallables.contains(qualified) else {
                throw fail("refusing to call function '\(qualified)' while unpickling: only classes and known tensor rebuilders are read (Backdrop never executes pickled code)")
            }
        }
        return node(.object(qualified), args: args)
    }

    private func instantiate(_ cls: Item, _ args: [Item]) throws -> Item {
        guard case .global(let module, let name) = cls else { throw fail("malformed pickle: NEWOBJ on a value that is not a class") }
        switch "\(module).\(name)" {
        case "collections.OrderedDict", "builtins.dict", "__builtin__.dict": return node(.dict)
        case "builtins.list", "__builtin__.list": return node(.list)
        case "builtins.set", "__builtin__.set": return node(.set)
        default: return node(.object("\(module).\(name)"), args: args)
        }
    }

    /// numpy scalars `scalar(dtype(code), raw bytes)` of plain numeric codes become numbers.
    private func numpyScalar(_ args: [Item]) -> Item? {
        guard args.count == 2, case .node(let dtype) = args[0], case .object = dtype.kind,
              case .value(.string(let code))? = dtype.args.first, case .value(.bytes(let raw)) = args[1] else { return nil }
        var bigEndian = false
        if let item = dtype.state, let state = tupleItems(item), state.count > 1, case .value(.string(let order)) = state[1] { bigEndian = order == ">" }
        let bytes = bigEndian ? Data(raw.reversed()) : raw
        func load<T: FixedWidthInteger>(_: T.Type) -> T? {
            bytes.count == MemoryLayout<T>.size ? bytes.withUnsafeBytes { $0.loadUnaligned(as: T.self) } : nil
        }
        switch code {
        case "f8": return load(UInt64.self).map { .value(.float(Double(bitPattern: $0))) }
        case "f4": return load(UInt32.self).map { .value(.float(Double(Float(bitPattern: $0)))) }
        case "i8": return load(Int64.self).map { .value(.int(Int($0))) }
        case "i4": return load(Int32.self).map { .value(.int(Int($0))) }
        case "i2": return load(Int16.self).map { .value(.int(Int($0))) }
        case "i1": return load(Int8.self).map { .value(.int(Int($0))) }
        case "u4": return load(UInt32.self).map { .value(.int(Int($0))) }
        case "u2": return load(UInt16.self).map { .value(.int(Int($0))) }
        case "u1": return load(UInt8.self).map { .value(.int(Int($0))) }
        case "b1": return load(UInt8.self).map { .value(.bool($0 != 0)) }
        default: return nil
        }
    }

    // MARK: Tensors

    /// ('storage', StorageClass, key, location, numel) → the storage as a 1-D tensor, loaded once
    /// per key so that every view of it shares one LibTorch storage.
    private func persistent(_ pid: Item) throws -> Item {
        guard let fields = tupleItems(pid), fields.count >= 5, case .value(.string("storage")) = fields[0],
              case .global(let module, let typeName) = fields[1], module == "torch" || module == "torch.storage",
              case .value(.string(let key)) = fields[2], case .value(.int(let numel)) = fields[4], numel >= 0 else {
            throw fail("unsupported persistent id \(describe(pid)) (expected ('storage', torch.XStorage, key, location, numel))")
        }
        guard let dtype = Self.storageTypes[typeName] else { throw fail("storage '\(key)': unsupported storage type torch.\(typeName)") }
        if let cached = storages[key] {
            guard cached.dtype == dtype else { throw fail("storage '\(key)' is used as both \(cached.dtype) and \(dtype)") }
            return .storage(cached)
        }
        let storage = try loadStorage(key, dtype, numel)
        storages[key] = storage
        return .storage(storage)
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, …)`: a strided
    /// view of the storage, so shared storage and non-contiguous layouts survive.
    private func rebuildTensor(_ args: [Item]) throws -> Item {
        guard args.count >= 4, case .storage(let storage) = args[0], case .value(.int(let offset)) = args[1],
              let size = ints(args[2]), let stride = ints(args[3]), size.count == stride.count else {
            throw fail("_rebuild_tensor_v2: unexpected arguments \(args.prefix(4).map(describe))")
        }
        let numel = storage.count
        guard offset >= 0, size.allSatisfy({ $0 >= 0 }), stride.allSatisfy({ $0 >= 0 }) else {
            throw fail("tensor with offset \(offset), size \(size), stride \(stride) is invalid")
        }
        if !size.contains(0) {
            var last = offset
            for (n, s) in zip(size, stride) {
                let (step, o1) = (n - 1).multipliedReportingOverflow(by: s)
                let (sum, o2) = last.addingReportingOverflow(step)
                guard !o1, !o2 else { throw fail("tensor size \(size) stride \(stride) overflows") }
                last = sum
            }
            guard last < numel else {
                throw fail("tensor with offset \(offset), size \(size), stride \(stride) reaches element \(last) of a storage of \(numel)")
            }
        }
        do {
            return .value(.tensor(try storage.asStrided(size, strides: stride, offset: offset)))
        } catch let error as TorchError {
            throw fail(error.message)
        }
    }

    private func ints(_ item: Item) -> [Int]? {
        guard let items = tupleItems(item) else { return nil }
        var out: [Int] = []
        for case .value(.int(let i)) in items { out.append(i) }
        return out.count == items.count ? out : nil
    }

    /// A short rendering for error messages (nested containers elided).
    private func describe(_ item: Item) -> String { describe(item, depth: 0) }

    private func describe(_ item: Item, depth: Int) -> String {
        switch item {
        case .value(let v): return v.description
        case .global(let m, let n): return "\(m).\(n)"
        case .storage(let t): return "<storage \(t.dtype) \(t.count)>"
        case .mark: return "<mark>"
        case .node(let node):
            switch node.kind {
            case .tuple where depth < 2: return "(\(node.items.map { describe($0, depth: depth + 1) }.joined(separator: ", ")))"
            case .object(let name): return "<\(name)>"
            default: return "<\(node.kind)>"
            }
        }
    }

    // MARK: Result

    /// Turns the shared, mutable intermediate graph into values, each node once. A container met
    /// again inside itself (Python allows cycles) becomes a `backdrop.RecursiveReference` placeholder.
    /// `size` counts the values a full walk of the result would visit, so that a small file cannot
    /// expand into an exponentially large tree.
    private func resolve(_ item: Item, depth: Int, _ done: inout [ObjectIdentifier: (value: PickleValue, size: Int)],
                         _ active: inout Set<ObjectIdentifier>) throws -> (value: PickleValue, size: Int) {
        switch item {
        case .value(let v): return (v, 1)
        case .global(let m, let n): return (.global(module: m, name: n), 1)
        case .storage(let t): return (.tensor(t), 1)
        case .mark: return (.none, 1)
        case .node(let node):
            let id = ObjectIdentifier(node)
            if let hit = done[id] { return hit }
            guard active.insert(id).inserted else { return (.opaque(PickleObject(className: "backdrop.RecursiveReference")), 1) }
            defer { active.remove(id) }
            guard depth < Self.maxDepth else { throw fail("containers nest more than \(Self.maxDepth) levels deep") }
            var size = 1
            func child(_ item: Item) throws -> PickleValue {
                let (value, n) = try resolve(item, depth: depth + 1, &done, &active)
                size += n
                guard size <= Self.maxValues else { throw fail("the pickle expands to more than \(Self.maxValues) values") }
                return value
            }
            let items = try node.items.map(child)
            let entries = try node.entries.map { (key: try child($0.key), value: try child($0.value)) }
            let value: PickleValue
            switch node.kind {
            case .tuple: value = .tuple(items)
            case .list, .set: value = .list(items)
            case .dict: value = .dict(entries)
            case .object(let name):
                value = .opaque(PickleObject(className: name, args: try node.args.map(child), state: try node.state.map(child),
                                             items: items, entries: entries))
            }
            done[id] = (value, size)
            return (value, size)
        }
    }
}
