import CTorch

extension Tensor {
    /// Whether autograd records operations on this tensor. Setting it on a non-leaf to false is
    /// ignored, as LibTorch refuses it; use `detach()` instead.
    public var requiresGrad: Bool {
        get { bd_requires_grad(handle) }
        set { if bd_set_requires_grad(handle, newValue) < 0 { bd_clear_error() } }
    }

    /// Sets `requiresGrad` and returns the same tensor, for chaining after creation.
    @discardableResult
    public func requiringGrad(_ flag: Bool = true) throws -> Tensor {
        try checkStatus(bd_set_requires_grad(handle, flag))
        return self
    }

    /// The accumulated gradient, or nil when none has been computed (or it was dropped).
    public var grad: Tensor? {
        var out: bd_tensor?
        if bd_grad(handle, &out) < 0 { bd_clear_error(); return nil }
        return out.map { Tensor(owning: $0) }
    }

    /// Replaces (or, with nil, drops) the accumulated gradient.
    public func setGrad(_ gradient: Tensor?) throws {
        try checkStatus(bd_set_grad(handle, gradient?.handle))
    }

    /// Back-propagates from this tensor; a non-scalar output needs `gradient`.
    public func backward(gradient: Tensor? = nil, retainGraph: Bool = false, createGraph: Bool = false) throws {
        try checkStatus(bd_backward(handle, gradient?.handle, retainGraph || createGraph, createGraph))
    }

    /// The same data, cut off from the autograd graph.
    public func detach() throws -> Tensor { try .wrap(bd_detach(handle)) }

    /// Replaces the data behind this tensor while keeping its identity (Python's `p.data = new`).
    public func setData(_ data: Tensor) throws { try checkStatus(bd_set_data(handle, data.handle)) }
}

/// Gradient computation scopes and helpers.
public enum Autograd {
    public static var isGradEnabled: Bool { bd_is_grad_enabled() }

    /// Gradients of `outputs` with respect to `inputs` (`torch.autograd.grad`); nil for unused inputs
    /// when `allowUnused`.
    public static func grad(outputs: [Tensor], inputs: [Tensor], gradOutputs: [Tensor]? = nil,
                            retainGraph: Bool = false, createGraph: Bool = false,
                            allowUnused: Bool = false) throws -> [Tensor?] {
        var result = [bd_tensor?](repeating: nil, count: inputs.count)
        let status = withHandles(outputs) { outs in
            withHandles(inputs) { ins in
                withHandles(gradOutputs ?? []) { grads in
                    bd_autograd_grad(outs, Int32(outputs.count), ins, Int32(inputs.count),
                                     gradOutputs == nil ? nil : grads, retainGraph || createGraph, createGraph,
                                     allowUnused, &result)
                }
            }
        }
        try checkStatus(status)
        return result.map { $0.map { Tensor(owning: $0) } }
    }

    /// Gradient checkpointing: runs `body(inputs)` without keeping its activations; the backward
    /// pass runs it again (with the same random state, so dropout agrees) to get them. Name the
    /// trainable `parameters` that `body` reads: they receive their gradients even when no input
    /// needs one (a frozen backbone feeding a trained block).
    public static func checkpoint(_ inputs: [Tensor], parameters: [Tensor] = [], maxOutputs: Int = 16,
                                  _ body: @escaping ([Tensor]) throws -> [Tensor]) throws -> [Tensor] {
        let context = Unmanaged.passRetained(ClosureBox(body)).toOpaque()
        var out = [bd_tensor?](repeating: nil, count: maxOutputs)
        let n = withHandles(inputs + parameters) { ins in
            bd_checkpoint(closureTrampoline, context, { Unmanaged<ClosureBox>.fromOpaque($0!).release() },
                          ins, Int32(inputs.count), Int32(parameters.count), &out, Int32(maxOutputs))
        }
        return try takeHandles(out, count: n)
    }
}

/// Runs `body` with gradient recording switched off (`torch.no_grad()`).
public func withNoGrad<R>(_ body: () throws -> R) rethrows -> R {
    try withGradEnabled(false, body)
}

/// Runs `body` with gradient recording set to `enabled`, restoring the previous mode afterwards.
public func withGradEnabled<R>(_ enabled: Bool, _ body: () throws -> R) rethrows -> R {
    let previous = bd_set_grad_enabled(enabled)
    defer { _ = bd_set_grad_enabled(previous) }
    return try body()
}

/// Runs `body` in LibTorch's inference mode: no autograd bookkeeping at all (faster than no-grad);
/// tensors made inside cannot later enter autograd.
public func withInferenceMode<R>(_ body: () throws -> R) rethrows -> R {
    let guardHandle = bd_inference_mode_enter()
    defer { bd_inference_mode_exit(guardHandle) }
    return try body()
}

/// Runs `body` under automatic mixed precision on `device`: LibTorch computes matmuls and
/// convolutions in `dtype` (bfloat16 on CPU; float16 or bfloat16 on CUDA) and keeps precision-
/// sensitive ops in float32.
public func withAutocast<R>(_ dtype: DType = .bfloat16, device: Device, _ body: () throws -> R) throws -> R {
    var enabled: Int32 = 0, previous: Int32 = 0
    let type = device == .cpu ? Int32(BD_CPU) : Int32(BD_CUDA)
    try checkStatus(bd_autocast_enter(type, Int32(dtype.rawValue), &enabled, &previous), "autocast \(dtype) on \(device)")
    defer { bd_autocast_exit(type, enabled, previous) }
    return try body()
}

/// A Swift closure carried through the C bridge as an opaque context.
final class ClosureBox {
    let body: ([Tensor]) throws -> [Tensor]
    init(_ body: @escaping ([Tensor]) throws -> [Tensor]) { self.body = body }
}

/// The C entry point through which the bridge calls a `ClosureBox`. Swift errors become bridge
/// errors, so they surface again as a thrown `TorchError` where the bridge call returns.
let closureTrampoline: bd_closure = { context, inputs, count, out, capacity in
    let box = Unmanaged<ClosureBox>.fromOpaque(context!).takeUnretainedValue()
    // The bridge frees its input handles after the call: keep our own.
    let tensors = (0..<Int(count)).map { Tensor(owning: bd_shallow_copy(inputs![$0]!)) }
    do {
        let results = try box.body(tensors)
        guard results.count <= Int(capacity) else {
            bd_set_error("closure returned \(results.count) tensors, at most \(capacity) allowed")
            return -1
        }
        for (i, tensor) in results.enumerated() { out![i] = bd_shallow_copy(tensor.handle) }
        return Int32(results.count)
    } catch {
        bd_set_error(String(describing: error))
        return -1
    }
}
