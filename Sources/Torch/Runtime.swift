import CTorch

/// Process-wide LibTorch settings.
public enum Runtime {
    /// LibTorch's version string, e.g. "1.13.1".
    public static var libtorchVersion: String { String(cString: bd_version()) }

    /// The loaded `libtorch_cpu` library file: shows which LibTorch the binary really runs on.
    public static var libtorchLibrary: String { String(cString: bd_library_path()) }

    /// Whether LibTorch (and the bridge) use the C++11 ABI of libstdc++ (`_GLIBCXX_USE_CXX11_ABI=1`).
    public static var usesCXX11ABI: Bool { bd_cxx11_abi() == 1 }

    /// The CUDA runtime and cuDNN versions of the loaded LibTorch's CUDA part as (major, minor) pairs;
    /// nil without one (a CPU LibTorch, or a CUDA LibTorch whose CUDA library was not linked).
    public static var cudaVersions: (runtime: (Int, Int), cudnn: (Int, Int, Int)?)? {
        var runtime = 0, cudnn = 0
        guard bd_cuda_versions(&runtime, &cudnn) == 0 else { return nil }
        // CUDART_VERSION is major·1000 + minor·10; cuDNN ≥ 9 is major·10000 + minor·100 + patch,
        // cuDNN 8 major·1000 + minor·100 + patch.
        let split = cudnn >= 90000 ? (cudnn / 10000, cudnn / 100 % 100, cudnn % 100) : (cudnn / 1000, cudnn / 100 % 10, cudnn % 100)
        return ((runtime / 1000, runtime % 1000 / 10), cudnn > 0 ? split : nil)
    }

    /// Number of CUDA devices usable by the linked LibTorch (0 for a CPU-only build).
    public static var cudaDeviceCount: Int { Int(bd_cuda_device_count()) }

    /// Intra-op threads LibTorch uses for one operation.
    public static var threads: Int {
        get { Int(bd_get_num_threads()) }
        set { bd_set_num_threads(Int32(max(1, newValue))) }
    }

    /// The dtype factory functions use when none is given (float32 unless changed).
    public static var defaultDType: DType {
        get { DType(rawValue: Int32(bd_get_default_dtype())) ?? .float32 }
        set { _ = bd_set_default_dtype(Int32(newValue.rawValue)) }
    }

    /// Seeds LibTorch's global generators (CPU and every CUDA device).
    public static func seed(_ value: UInt64) { bd_manual_seed(value) }

    /// Waits for queued CUDA work on a device; a no-op on the CPU.
    public static func synchronize(_ device: Device) throws {
        if case .cuda(let index) = device { try checkStatus(bd_cuda_synchronize(Int32(index))) }
    }
}

/// A seeded random-number generator on one device, for reproducible sampling.
public final class Generator: @unchecked Sendable {
    let handle: bd_generator
    public let device: Device

    public init(seed: UInt64, device: Device = .cpu) throws {
        let (dev, idx) = device.code
        guard let h = bd_generator_new(dev, idx, seed) else { throw TorchError.fromBridge("generator") }
        handle = h
        self.device = device
    }
    deinit { bd_generator_free(handle) }

    /// The generator's full state, as a uint8 tensor (for checkpoints).
    public func state() throws -> Tensor { try .wrap(bd_generator_get_state(handle)) }

    public func setState(_ state: Tensor) throws { try checkStatus(bd_generator_set_state(handle, state.handle)) }
}
