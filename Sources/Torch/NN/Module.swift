import CTorch

/// A learnable tensor of a module. It is a leaf of the autograd graph; `requiresGrad` false means
/// frozen.
public final class Parameter: Tensor, @unchecked Sendable {
    public init(_ tensor: Tensor, requiresGrad: Bool = true) throws {
        // A detached alias: a fresh leaf on the same storage, as `nn.Parameter(t)` makes.
        guard let leaf = bd_detach(tensor.handle) else { throw TorchError.fromBridge("Parameter") }
        super.init(owning: leaf)
        try checkStatus(bd_set_requires_grad(handle, requiresGrad))
    }
}

/// A tensor that belongs to a module's state but is not learned (running statistics, tables).
public final class Buffer: Tensor, @unchecked Sendable {
    public init(_ tensor: Tensor) throws {
        guard let alias = bd_detach(tensor.handle) else { throw TorchError.fromBridge("Buffer") }
        super.init(owning: alias)
    }
}

/// What `loadStateDict` found; a strict load throws when any list is non-empty.
public struct StateDictReport: CustomStringConvertible, Sendable {
    public var missing: [String] = []
    public var unexpected: [String] = []
    public var mismatched: [(key: String, expected: [Int], found: [Int])] = []

    public var isClean: Bool { missing.isEmpty && unexpected.isEmpty && mismatched.isEmpty }

    /// The first keys of each kind, and how many there are: a checkpoint of another model lists
    /// thousands, and the first few say what happened.
    public var description: String {
        func listed(_ keys: [String]) -> String {
            keys.count <= Self.shown ? keys.joined(separator: ", ")
                : keys.prefix(Self.shown).joined(separator: ", ") + " and \(keys.count - Self.shown) more"
        }
        var parts: [String] = []
        if !missing.isEmpty { parts.append("missing keys: \(listed(missing))") }
        if !unexpected.isEmpty { parts.append("unexpected keys: \(listed(unexpected))") }
        for m in mismatched.prefix(Self.shown) {
            parts.append("shape mismatch for \(m.key): model \(m.expected), checkpoint \(m.found)")
        }
        if mismatched.count > Self.shown { parts.append("\(mismatched.count - Self.shown) more shape mismatches") }
        return parts.isEmpty ? "all keys matched" : parts.joined(separator: "; ")
    }

    static let shown = 8
}

/// Base of every layer and model. Parameters, buffers and child modules are the stored properties
/// of type `Parameter`, `Buffer`, `Module`, their optionals and arrays; a property's name is its key,
/// so `down_blocks[0].resnets[1].conv1.weight` is `down_blocks.0.resnets.1.conv1.weight`, exactly as
/// in a PyTorch state dict. Containers whose children carry bare indices override `namedChildren`.
open class Module {
    /// Training mode (dropout active); switch with `train()` / `eval()`.
    public private(set) var isTraining = true

    public init() {}

    /// The direct children with their keys.
    open var namedChildren: [(String, Module)] {
        reflectedMembers().flatMap { name, value -> [(String, Module)] in
            if let module = value as? Module { return [(name, module)] }
            if let list = value as? [Module] { return list.enumerated().map { ("\(name).\($0.offset)", $0.element) } }
            return []
        }
    }

    /// Parameters and buffers owned directly by this module (not its children), in declaration order.
    open var localTensors: [(String, Tensor)] {
        reflectedMembers().flatMap { name, value -> [(String, Tensor)] in
            if let tensor = value as? Parameter { return [(name, tensor)] }
            if let tensor = value as? Buffer { return [(name, tensor)] }
            if let list = value as? [Parameter] { return list.enumerated().map { ("\(name).\($0.offset)", $0.element) } }
            return []
        }
    }

    /// Every stored property of this object's class chain, optionals unwrapped, nil ones skipped.
    private func reflectedMembers() -> [(String, Any)] {
        var members: [(String, Any)] = []
        var mirror: Mirror? = Mirror(reflecting: self)
        while let current = mirror {
            for child in current.children {
                guard let label = child.label, !label.hasPrefix("$"), !label.hasPrefix("_") else { continue }
                if let value = unwrapOptional(child.value) { members.append((label, value)) }
            }
            mirror = current.superclassMirror
        }
        return members
    }

    /// Parameters of this module and its descendants with dotted keys; each parameter once.
    public func namedParameters() -> [(String, Parameter)] {
        namedTensors().compactMap { key, tensor in (tensor as? Parameter).map { (key, $0) } }
    }

    public func namedBuffers() -> [(String, Buffer)] {
        namedTensors().compactMap { key, tensor in (tensor as? Buffer).map { (key, $0) } }
    }

    /// Parameters, optionally only those that are not frozen.
    public func parameters(trainableOnly: Bool = false) -> [Parameter] {
        namedParameters().map(\.1).filter { !trainableOnly || $0.requiresGrad }
    }

    /// Every module of the tree with its dotted key ("" for self), parents first.
    public func namedModules(prefix: String = "") -> [(String, Module)] {
        var result = [(prefix, self)]
        for (name, child) in namedChildren {
            result += child.namedModules(prefix: prefix.isEmpty ? name : "\(prefix).\(name)")
        }
        return result
    }

    /// Parameters and buffers in PyTorch's state-dict order. A tensor shared by two paths is
    /// listed under the first one only, as `named_parameters()` does.
    public func namedTensors() -> [(String, Tensor)] {
        var seen = Set<ObjectIdentifier>()
        var result: [(String, Tensor)] = []
        for (path, module) in namedModules() {
            for (name, tensor) in module.localTensors where seen.insert(ObjectIdentifier(tensor)).inserted {
                result.append((path.isEmpty ? name : "\(path).\(name)", tensor))
            }
        }
        return result
    }

    /// The state dict: every parameter and buffer by key.
    public func stateDict() -> [String: Tensor] {
        Dictionary(namedTensors(), uniquingKeysWith: { first, _ in first })
    }

    /// Copies `state` into this module's tensors (converting dtype and device to the module's).
    /// Strict loading throws on any missing, unexpected or mis-shaped key and changes nothing;
    /// lenient loading loads what matches and reports the rest.
    @discardableResult
    public func loadStateDict(_ state: [String: Tensor], strict: Bool = true) throws -> StateDictReport {
        let own = namedTensors()
        var report = StateDictReport()
        let ownKeys = Set(own.map(\.0))
        report.unexpected = state.keys.filter { !ownKeys.contains($0) }.sorted()
        var assignments: [(Tensor, Tensor)] = []
        for (key, tensor) in own {
            guard let source = state[key] else { report.missing.append(key); continue }
            if source.shape != tensor.shape {
                report.mismatched.append((key, tensor.shape, source.shape))
                continue
            }
            guard try source.isAllFinite() else { throw TorchError("state dict key \(key) holds NaN or infinite values") }
            assignments.append((tensor, source))
        }
        if strict, !report.isClean { throw TorchError("state dict does not match the model: \(report)") }
        try withNoGrad {
            for (target, source) in assignments { try target.copy_(from: source) }
        }
        return report
    }

    public func train(_ mode: Bool = true) {
        for (_, module) in namedModules() { module.isTraining = mode }
    }

    public func eval() { train(false) }

    /// Stops gradients for every parameter (they keep their values and stay in the state dict).
    public func freeze() { for p in parameters() { p.requiresGrad = false } }
    public func unfreeze() { for p in parameters() { p.requiresGrad = true } }

    /// Moves every parameter and buffer to a device and/or floating dtype in place (integer
    /// buffers keep their dtype), like `module.to(...)`.
    public func to(device: Device? = nil, dtype: DType? = nil) throws {
        try withNoGrad {
            for (_, tensor) in namedTensors() {
                let type = tensor.dtype.isFloatingPoint ? dtype : nil
                let converted = try tensor.to(dtype: type, device: device)
                if converted !== tensor { try tensor.setData(converted) }
            }
        }
    }
}

private func unwrapOptional(_ value: Any) -> Any? {
    let mirror = Mirror(reflecting: value)
    guard mirror.displayStyle == .optional else { return value }
    return mirror.children.first.map { unwrapOptional($0.value) } ?? nil
}

/// Children with bare indices as keys ("0", "1", …), like `nn.Sequential` and `nn.ModuleList`.
open class ModuleList: Module {
    public var modules: [Module]
    public init(_ modules: [Module]) {
        self.modules = modules
        super.init()
    }
    open override var namedChildren: [(String, Module)] {
        modules.enumerated().map { ("\($0.offset)", $0.element) }
    }
    public subscript(index: Int) -> Module { modules[index] }
    public var count: Int { modules.count }
}

/// Children under given keys, like `nn.ModuleDict`: a state dict of several modules under their own
/// prefixes ("unet.…", "text_encoder.…") without a model class to hold them.
public final class ModuleDict: Module {
    public let children: [(String, Module)]
    public init(_ children: [(String, Module)]) {
        self.children = children
        super.init()
    }
    public override var namedChildren: [(String, Module)] { children }
}

/// A module with one input and one output.
public protocol UnaryLayer: Module {
    func callAsFunction(_ x: Tensor) throws -> Tensor
}

/// Applies its layers in order; keys "0", "1", … as `nn.Sequential`.
public final class Sequential: ModuleList, UnaryLayer {
    public init(_ layers: [any UnaryLayer]) { super.init(layers) }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var y = x
        for case let layer as any UnaryLayer in modules { y = try layer(y) }
        return y
    }
}
