import CTorch
import Foundation

/// A TorchScript module loaded through LibTorch (`torch.jit.load`).
public final class ScriptModule: @unchecked Sendable {
    let handle: bd_module
    /// Submodules made while building an export, kept so later registrations reach the same objects.
    fileprivate var children: [String: ScriptModule] = [:]

    init(owning handle: bd_module) { self.handle = handle }
    deinit { bd_jit_free(handle) }

    public convenience init(contentsOf url: URL, device: Device = .cpu) throws {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw TorchError("TorchScript file not found: \(url.path)")
        }
        let (dev, idx) = device.code
        guard let h = bd_jit_load(url.path, dev, idx) else {
            throw TorchError.fromBridge("cannot load TorchScript module \(url.path)")
        }
        self.init(owning: h)
    }

    /// Calls a method; a tuple or list result comes back flattened into its tensors.
    public func run(_ method: String = "forward", _ inputs: [Tensor], maxOutputs: Int = 64) throws -> [Tensor] {
        var out = [bd_tensor?](repeating: nil, count: maxOutputs)
        let n = withHandles(inputs) { bd_jit_run_method(handle, method, $0, Int32(inputs.count), &out, Int32(maxOutputs)) }
        if n < 0 { throw TorchError.fromBridge("TorchScript \(method)") }
        return try takeHandles(out, count: n)
    }

    public func forward(_ inputs: Tensor...) throws -> [Tensor] { try run("forward", inputs) }

    /// Parameters with their dotted names, recursively (`named_parameters()`).
    public func namedParameters() throws -> [(String, Tensor)] { try namedTensors(buffers: false) }
    public func namedBuffers() throws -> [(String, Tensor)] { try namedTensors(buffers: true) }

    public func setTraining(_ training: Bool) throws { try checkStatus(bd_jit_set_training(handle, training)) }

    private func namedTensors(buffers: Bool) throws -> [(String, Tensor)] {
        final class Collector { var items: [(String, Tensor)] = [] }
        let collector = Collector()
        let status = bd_jit_named_tensors(handle, buffers, { context, name, tensor in
            let c = Unmanaged<Collector>.fromOpaque(context!).takeUnretainedValue()
            c.items.append((String(cString: name!), Tensor(owning: tensor!)))
        }, Unmanaged.passUnretained(collector).toOpaque())
        try checkStatus(status)
        return collector.items
    }

    public func save(to url: URL) throws {
        try writeAtomically(to: url) { try checkStatus(bd_jit_save(handle, $0.path), "save TorchScript \(url.path)") }
    }
}

extension Module {
    /// Exports this module as TorchScript by tracing `forward` on `inputs`. The module's parameters
    /// and buffers are registered under their state-dict keys (as nested submodules), so the saved
    /// graph reads them by name and `named_parameters()` in Python lists the same keys.
    /// Shapes are fixed by the example inputs, as with `torch.jit.trace`.
    public func traced(inputs: [Tensor], method: String = "forward",
                       _ forward: @escaping ([Tensor]) throws -> [Tensor]) throws -> ScriptModule {
        let root = try scriptSkeleton(typeName: String(describing: type(of: self)))
        let box = ClosureBox(forward)
        let status = withExtendedLifetime(box) {
            withHandles(inputs) { ins in
                bd_jit_trace(root.handle, method, closureTrampoline, Unmanaged.passUnretained(box).toOpaque(), ins,
                             Int32(inputs.count))
            }
        }
        if status < 0 { throw TorchError.fromBridge("tracing \(type(of: self))") }
        return root
    }

    /// An empty TorchScript module tree mirroring this module's, holding the same tensors.
    private func scriptSkeleton(typeName: String) throws -> ScriptModule {
        guard let h = bd_jit_module_new(typeName) else { throw TorchError.fromBridge("TorchScript module") }
        let script = ScriptModule(owning: h)
        for (name, tensor) in localTensors {
            try register(tensor, named: name, isBuffer: tensor is Buffer, in: script)
        }
        for (name, child) in namedChildren {
            try attach(child, path: name.split(separator: ".").map(String.init), to: script)
        }
        return script
    }

    private func attach(_ child: Module, path: [String], to parent: ScriptModule) throws {
        // "resnets.0" becomes a submodule "resnets" holding a submodule "0": TorchScript names
        // cannot contain dots.
        if path.count > 1 {
            let holder = try ScriptModule.namedHolder(path[0], in: parent)
            return try attach(child, path: Array(path.dropFirst()), to: holder)
        }
        let script = try child.scriptSkeleton(typeName: String(describing: type(of: child)))
        try checkStatus(bd_jit_register_module(parent.handle, path[0], script.handle), "register \(path[0])")
        parent.children[path[0]] = script
    }

    private func register(_ tensor: Tensor, named name: String, isBuffer: Bool, in script: ScriptModule) throws {
        let parts = name.split(separator: ".").map(String.init)
        var owner = script
        for part in parts.dropLast() { owner = try ScriptModule.namedHolder(part, in: owner) }
        try checkStatus(bd_jit_register_tensor(owner.handle, parts.last!, tensor.handle, isBuffer), "register \(name)")
    }
}

extension ScriptModule {
    /// The plain submodule `name` of `parent`, made on first use (for list indices and dotted keys).
    fileprivate static func namedHolder(_ name: String, in parent: ScriptModule) throws -> ScriptModule {
        if let existing = parent.children[name] { return existing }
        guard let h = bd_jit_module_new("ModuleList") else { throw TorchError.fromBridge("TorchScript module") }
        let holder = ScriptModule(owning: h)
        try checkStatus(bd_jit_register_module(parent.handle, name, holder.handle), "register \(name)")
        parent.children[name] = holder
        return holder
    }
}
