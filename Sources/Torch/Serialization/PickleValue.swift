import Foundation

/// A value read from a Python pickle by `TorchPickle`: containers and scalars as Swift values,
/// tensors as `Tensor`, and anything else as an inert `PickleObject` that records what Python
/// would have built (nothing is ever called).
public indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes(Data)
    /// Python lists, and also sets and frozensets (in pickle order).
    case list([PickleValue])
    /// Python tuples and `torch.Size`.
    case tuple([PickleValue])
    /// dicts and OrderedDicts, in insertion order.
    case dict([(key: PickleValue, value: PickleValue)])
    case tensor(Tensor)
    /// A class or function stored as a value (e.g. a dtype like `torch.float32`), never resolved.
    case global(module: String, name: String)
    case opaque(PickleObject)
}

/// An instance of a class the reader does not interpret: its qualified class name, the arguments
/// it would have been constructed with, its `__setstate__` state, and any items appended or set
/// on it (list and dict subclasses such as Lightning's `AttributeDict`).
public struct PickleObject {
    public var className: String
    public var args: [PickleValue] = []
    public var state: PickleValue? = nil
    public var items: [PickleValue] = []
    public var entries: [(key: PickleValue, value: PickleValue)] = []
}

extension PickleValue {
    public var isNone: Bool { if case .none = self { true } else { false } }
    public var bool: Bool? { if case .bool(let v) = self { v } else { nil } }
    public var int: Int? { if case .int(let v) = self { v } else { nil } }
    /// Floats and ints as a Double.
    public var double: Double? {
        switch self {
        case .float(let v): v
        case .int(let v): Double(v)
        default: nil
        }
    }
    public var string: String? { if case .string(let v) = self { v } else { nil } }
    public var bytes: Data? { if case .bytes(let v) = self { v } else { nil } }
    public var tensor: Tensor? { if case .tensor(let v) = self { v } else { nil } }
    public var object: PickleObject? { if case .opaque(let v) = self { v } else { nil } }
    /// Elements of a list or tuple.
    public var array: [PickleValue]? {
        switch self {
        case .list(let v), .tuple(let v): v
        default: nil
        }
    }
    /// Entries of a dict, or of an opaque dict subclass.
    public var entries: [(key: PickleValue, value: PickleValue)]? {
        switch self {
        case .dict(let v): v
        case .opaque(let o) where !o.entries.isEmpty: o.entries
        default: nil
        }
    }

    /// The entry with a string key; for opaque objects, also an attribute from their dict state
    /// (so `args["depth"]` reads an `argparse.Namespace`).
    public subscript(key: String) -> PickleValue? {
        if let entries, let hit = entries.first(where: { $0.key.string == key }) { return hit.value }
        if case .opaque(let o) = self, let state = o.state, case .dict = state { return state[key] }
        return nil
    }

    public subscript(index: Int) -> PickleValue? {
        guard let array, array.indices.contains(index) else { return nil }
        return array[index]
    }

    /// A dotted path such as "optimizer_states.0.state": each part is a string key, else an int
    /// key or a list index.
    public subscript(path path: String) -> PickleValue? {
        var value = self
        for part in path.split(separator: ".", omittingEmptySubsequences: false).map(String.init) {
            if let next = value[part] { value = next; continue }
            guard let i = Int(part) else { return nil }
            if let next = value[i] ?? value.entries?.first(where: { $0.key.int == i })?.value { value = next } else { return nil }
        }
        return value
    }

    /// Every tensor below this value, keyed by its dotted path: dict keys (strings or ints) and
    /// list/tuple indices joined with dots, like a flattened `state_dict`.
    public func tensors(prefix: String = "") -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        func walk(_ value: PickleValue, _ path: String) {
            func child(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
            switch value {
            case .tensor(let t): out[path] = t
            case .list(let items), .tuple(let items):
                for (i, item) in items.enumerated() { walk(item, child(String(i))) }
            default:
                for (key, item) in value.entries ?? [] {
                    switch key {
                    case .string(let s): walk(item, child(s))
                    case .int(let i): walk(item, child(String(i)))
                    default: continue
                    }
                }
            }
        }
        walk(self, prefix.hasSuffix(".") ? String(prefix.dropLast()) : prefix)
        return out
    }
}

extension PickleValue: CustomStringConvertible {
    /// A Python-like rendering, with tensors shown by dtype and shape only.
    public var description: String {
        switch self {
        case .none: "None"
        case .bool(let v): v ? "True" : "False"
        case .int(let v): String(v)
        case .float(let v): String(v)
        case .string(let v): "'\(v)'"
        case .bytes(let v): "b<\(v.count) bytes>"
        case .list(let v): "[\(v.map(\.description).joined(separator: ", "))]"
        case .tuple(let v): "(\(v.map(\.description).joined(separator: ", "))\(v.count == 1 ? "," : ""))"
        case .dict(let v): "{\(v.map { "\($0.key): \($0.value)" }.joined(separator: ", "))}"
        case .tensor(let t): "tensor(\(t.dtype), \(t.shape))"
        case .global(let module, let name): "\(module).\(name)"
        case .opaque(let o): "<\(o.className)>"
        }
    }
}
