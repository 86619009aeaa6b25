import CTorch
import Foundation

/// An error raised by LibTorch (its message, unchanged) or by Backdrop's own checks.
public struct TorchError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    /// The error LibTorch left on this thread, consumed.
    static func fromBridge(_ context: String? = nil) -> TorchError {
        let text = bd_last_error().map { String(cString: $0) } ?? "unknown LibTorch failure"
        bd_clear_error()
        return TorchError(context.map { "\($0): \(text)" } ?? text)
    }
}

/// Element types, numbered as `c10::ScalarType`.
public enum DType: Int32, CaseIterable, Sendable, CustomStringConvertible {
    case uint8 = 0, int8 = 1, int16 = 2, int32 = 3, int64 = 4
    case float16 = 5, float32 = 6, float64 = 7, complex64 = 9, complex128 = 10
    case bool = 11, bfloat16 = 15

    public var byteSize: Int {
        switch self {
        case .uint8, .int8, .bool: 1
        case .int16, .float16, .bfloat16: 2
        case .int32, .float32: 4
        case .int64, .float64, .complex64: 8
        case .complex128: 16
        }
    }

    public var isFloatingPoint: Bool { [.float16, .float32, .float64, .bfloat16].contains(self) }

    public var description: String {
        switch self {
        case .uint8: "uint8"
        case .int8: "int8"
        case .int16: "int16"
        case .int32: "int32"
        case .int64: "int64"
        case .float16: "float16"
        case .float32: "float32"
        case .float64: "float64"
        case .complex64: "complex64"
        case .complex128: "complex128"
        case .bool: "bool"
        case .bfloat16: "bfloat16"
        }
    }
}

/// Where a tensor lives.
public enum Device: Equatable, Hashable, Sendable, CustomStringConvertible {
    case cpu
    case cuda(Int)

    /// CUDA device 0 when the linked LibTorch has a usable GPU, else the CPU.
    public static var best: Device { Runtime.cudaDeviceCount > 0 ? .cuda(0) : .cpu }

    var code: (Int32, Int32) {
        switch self {
        case .cpu: (Int32(BD_CPU), -1)
        case .cuda(let index): (Int32(BD_CUDA), Int32(index))
        }
    }

    /// Parses "cpu", "cuda", "cuda:1" and "best".
    public init(parsing text: String) throws {
        switch text {
        case "cpu": self = .cpu
        case "cuda": self = .cuda(0)
        case "best": self = .best
        default:
            guard text.hasPrefix("cuda:"), let index = Int(text.dropFirst(5)), index >= 0 else {
                throw TorchError("unknown device '\(text)': expected cpu, cuda, cuda:N or best")
            }
            self = .cuda(index)
        }
    }

    public var description: String {
        switch self {
        case .cpu: "cpu"
        case .cuda(let index): "cuda:\(index)"
        }
    }
}

/// Swift element types that map to a tensor dtype.
public protocol TensorElement {
    static var dtype: DType { get }
}
extension Float: TensorElement { public static var dtype: DType { .float32 } }
extension Double: TensorElement { public static var dtype: DType { .float64 } }
extension Int64: TensorElement { public static var dtype: DType { .int64 } }
extension Int32: TensorElement { public static var dtype: DType { .int32 } }
extension Int16: TensorElement { public static var dtype: DType { .int16 } }
extension Int8: TensorElement { public static var dtype: DType { .int8 } }
extension UInt8: TensorElement { public static var dtype: DType { .uint8 } }
extension Bool: TensorElement { public static var dtype: DType { .bool } }
#if arch(x86_64) || arch(arm64)
extension Float16: TensorElement { public static var dtype: DType { .float16 } }
#endif

/// A LibTorch tensor. The handle is owned by this object and released when it goes away.
/// (Not final only so that `Parameter` and `Buffer` can mark a module's tensors.)
public class Tensor: @unchecked Sendable {
    let handle: bd_tensor

    init(owning handle: bd_tensor) { self.handle = handle }
    deinit { bd_free(handle) }

    /// Wraps a handle returned by the bridge; NULL means the call failed.
    @inline(__always)
    static func wrap(_ handle: bd_tensor?, _ context: @autoclosure () -> String? = nil) throws -> Tensor {
        guard let handle else { throw TorchError.fromBridge(context()) }
        return Tensor(owning: handle)
    }

    // MARK: Metadata

    public var rank: Int { Int(bd_dim(handle)) }
    public var shape: [Int] {
        var sizes = [Int64](repeating: 0, count: rank)
        _ = bd_sizes(handle, &sizes)
        return sizes.map(Int.init)
    }
    public var strides: [Int] {
        var values = [Int64](repeating: 0, count: rank)
        _ = bd_strides(handle, &values)
        return values.map(Int.init)
    }
    public var storageOffset: Int { Int(bd_storage_offset(handle)) }
    public var count: Int { Int(bd_numel(handle)) }
    public var dtype: DType { DType(rawValue: Int32(bd_dtype(handle))) ?? .float32 }
    public var device: Device {
        var type: Int32 = 0, index: Int32 = 0
        _ = bd_device(handle, &type, &index)
        return type == Int32(BD_CUDA) ? .cuda(Int(index)) : .cpu
    }
    public var isContiguous: Bool { bd_is_contiguous(handle) }

    /// Size of one dimension; negative dimensions count from the end.
    public func size(_ dim: Int) throws -> Int {
        let s = shape
        let index = dim < 0 ? dim + s.count : dim
        guard s.indices.contains(index) else {
            throw TorchError("dimension \(dim) is out of range for a tensor of shape \(s)")
        }
        return s[index]
    }

    /// Whether both tensors view the same storage.
    public func sharesStorage(with other: Tensor) -> Bool { bd_same_storage(handle, other.handle) }

    // MARK: Data in and out

    /// Copies raw bytes laid out contiguously in row-major order.
    public convenience init(bytes: UnsafeRawBufferPointer, shape: [Int], dtype: DType) throws {
        let expected = shape.reduce(1, *) * dtype.byteSize
        guard bytes.count == expected else {
            throw TorchError("tensor data has \(bytes.count) bytes, shape \(shape) of \(dtype) needs \(expected)")
        }
        let sizes = shape.map(Int64.init)
        let h = bd_from_data(bytes.baseAddress, sizes, Int32(sizes.count), Int32(dtype.rawValue))
        guard let h else { throw TorchError.fromBridge() }
        self.init(owning: h)
    }

    public convenience init<T: TensorElement>(_ values: [T], shape: [Int]? = nil) throws {
        let shape = shape ?? [values.count]
        let handle: bd_tensor? = try values.withUnsafeBytes { raw in
            guard raw.count == shape.reduce(1, *) * T.dtype.byteSize else {
                throw TorchError("\(values.count) values do not fill shape \(shape)")
            }
            let sizes = shape.map(Int64.init)
            return bd_from_data(raw.baseAddress, sizes, Int32(sizes.count), Int32(T.dtype.rawValue))
        }
        guard let handle else { throw TorchError.fromBridge() }
        self.init(owning: handle)
    }

    public convenience init<T: TensorElement>(scalar: T) throws {
        try self.init([scalar], shape: [])
    }

    /// The elements, converted to `T`, in row-major order (copied to the CPU when needed).
    public func toArray<T: TensorElement>(_ type: T.Type = T.self) throws -> [T] {
        let source = try to(dtype: T.dtype, device: .cpu)
        let n = source.count
        var result = [T]()
        result.reserveCapacity(n)
        try [UInt8](unsafeUninitializedCapacity: n * T.dtype.byteSize) { buffer, initialized in
            if bd_copy_to_buffer(source.handle, buffer.baseAddress, buffer.count) < 0 {
                throw TorchError.fromBridge()
            }
            initialized = buffer.count
        }.withUnsafeBytes { raw in
            result.append(contentsOf: raw.bindMemory(to: T.self))
        }
        return result
    }

    /// The raw bytes of the tensor in its own dtype, contiguous, row-major, from the CPU.
    public func rawBytes() throws -> Data {
        let source = try device == .cpu ? self : to(device: .cpu)
        var data = Data(count: count * dtype.byteSize)
        let status = data.withUnsafeMutableBytes { bd_copy_to_buffer(source.handle, $0.baseAddress, $0.count) }
        if status < 0 { throw TorchError.fromBridge() }
        return data
    }

    /// Runs `body` on the tensor's own bytes (row-major, its dtype) without copying; a tensor that
    /// is not contiguous or not on the CPU is first copied to one that is.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let source = try device == .cpu ? contiguous() : to(device: .cpu).contiguous()
        guard let pointer = bd_data_ptr(source.handle) else { throw TorchError.fromBridge() }
        return try withExtendedLifetime(source) {
            try body(UnsafeRawBufferPointer(start: pointer, count: source.count * source.dtype.byteSize))
        }
    }

    /// Runs `body` on the storage of a contiguous CPU tensor for writing in place (fill a tensor
    /// made by `Tensor.empty` without an extra copy). Not for tensors that autograd tracks.
    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) throws -> R {
        guard device == .cpu, isContiguous else {
            throw TorchError("withUnsafeMutableBytes needs a contiguous CPU tensor, got \(shape) on \(device)")
        }
        guard let pointer = bd_data_ptr(handle) else { throw TorchError.fromBridge() }
        return try body(UnsafeMutableRawBufferPointer(start: pointer, count: count * dtype.byteSize))
    }

    /// The single value of a one-element tensor.
    public func item() throws -> Double {
        var value = 0.0
        if bd_item_double(handle, &value) < 0 { throw TorchError.fromBridge() }
        return value
    }

    public func itemInt() throws -> Int {
        var value: Int64 = 0
        if bd_item_int64(handle, &value) < 0 { throw TorchError.fromBridge() }
        return Int(value)
    }

    // MARK: Conversion

    /// Converts dtype and/or device; returns `self` when nothing changes and `copy` is false.
    public func to(dtype: DType? = nil, device: Device? = nil, copy: Bool = false) throws -> Tensor {
        let targetType = dtype ?? self.dtype
        let targetDevice = device ?? self.device
        if !copy, targetType == self.dtype, targetDevice == self.device { return self }
        let (dev, idx) = targetDevice.code
        return try .wrap(bd_to(handle, Int32(targetType.rawValue), dev, idx, copy))
    }

    /// Another `Tensor` object on the same LibTorch tensor (same storage, same autograd identity).
    public func alias() -> Tensor { Tensor(owning: bd_shallow_copy(handle)) }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        guard let text = bd_to_string(handle) else { return "Tensor(<unprintable>)" }
        defer { bd_free_string(text) }
        return String(cString: text)
    }
}

@inline(__always)
func checkStatus(_ status: Int32, _ context: @autoclosure () -> String? = nil) throws {
    if status < 0 { throw TorchError.fromBridge(context()) }
}

/// Runs `body` with a C array view of the tensors' handles (NULL for nil entries).
@inline(__always)
func withHandles<R>(_ tensors: [Tensor?], _ body: (UnsafePointer<bd_tensor?>) throws -> R) rethrows -> R {
    // An empty list still needs a valid pointer; the bridge reads none of it.
    let handles: [bd_tensor?] = tensors.isEmpty ? [nil] : tensors.map { $0?.handle }
    return try handles.withUnsafeBufferPointer { try body($0.baseAddress!) }
}

/// Collects `count` handles written by the bridge into owned tensors.
func takeHandles(_ buffer: [bd_tensor?], count: Int32) throws -> [Tensor] {
    if count < 0 { throw TorchError.fromBridge() }
    return buffer.prefix(Int(count)).map { Tensor(owning: $0!) }
}
