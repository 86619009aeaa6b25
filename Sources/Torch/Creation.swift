import CTorch

extension Tensor {
    public static func full(_ shape: [Int], _ value: Double, dtype: DType? = nil, device: Device = .cpu) throws -> Tensor {
        let sizes = shape.map(Int64.init)
        let (dev, idx) = device.code
        let type = Int32((dtype ?? Runtime.defaultDType).rawValue)
        return try .wrap(bd_full(sizes, Int32(sizes.count), value, type, dev, idx))
    }

    public static func zeros(_ shape: [Int], dtype: DType? = nil, device: Device = .cpu) throws -> Tensor {
        try full(shape, 0, dtype: dtype, device: device)
    }

    public static func ones(_ shape: [Int], dtype: DType? = nil, device: Device = .cpu) throws -> Tensor {
        try full(shape, 1, dtype: dtype, device: device)
    }

    /// Uninitialised storage; only for buffers that are written before they are read.
    public static func empty(_ shape: [Int], dtype: DType? = nil, device: Device = .cpu) throws -> Tensor {
        let sizes = shape.map(Int64.init)
        let (dev, idx) = device.code
        return try .wrap(bd_empty(sizes, Int32(sizes.count), Int32((dtype ?? Runtime.defaultDType).rawValue), dev, idx))
    }

    public func zerosLike() throws -> Tensor { try .zeros(shape, dtype: dtype, device: device) }
    public func onesLike() throws -> Tensor { try .ones(shape, dtype: dtype, device: device) }
    public func fullLike(_ value: Double) throws -> Tensor { try .full(shape, value, dtype: dtype, device: device) }

    /// Values start, start+step, … below end. Integer dtype (int64) unless one is given.
    public static func arange(_ start: Double = 0, _ end: Double, step: Double = 1, dtype: DType = .int64,
                              device: Device = .cpu) throws -> Tensor {
        let (dev, idx) = device.code
        return try .wrap(bd_arange(start, end, step, Int32(dtype.rawValue), dev, idx))
    }

    public static func linspace(_ start: Double, _ end: Double, count: Int, dtype: DType? = nil,
                                device: Device = .cpu) throws -> Tensor {
        let (dev, idx) = device.code
        return try .wrap(bd_linspace(start, end, Int64(count), Int32((dtype ?? Runtime.defaultDType).rawValue), dev, idx))
    }

    public static func eye(_ n: Int, dtype: DType? = nil, device: Device = .cpu) throws -> Tensor {
        let (dev, idx) = device.code
        return try .wrap(bd_eye(Int64(n), Int32((dtype ?? Runtime.defaultDType).rawValue), dev, idx))
    }

    /// Standard normal samples, drawn from `generator` (LibTorch's global one when nil).
    public static func randn(_ shape: [Int], dtype: DType? = nil, device: Device = .cpu,
                             generator: Generator? = nil) throws -> Tensor {
        try random(kind: 0, shape, dtype: dtype, device: device, generator: generator)
    }

    /// Uniform samples in [0, 1).
    public static func rand(_ shape: [Int], dtype: DType? = nil, device: Device = .cpu,
                            generator: Generator? = nil) throws -> Tensor {
        try random(kind: 1, shape, dtype: dtype, device: device, generator: generator)
    }

    private static func random(kind: Int32, _ shape: [Int], dtype: DType?, device: Device,
                               generator: Generator?) throws -> Tensor {
        let sizes = shape.map(Int64.init)
        let (dev, idx) = device.code
        let type = Int32((dtype ?? Runtime.defaultDType).rawValue)
        return try .wrap(bd_random(kind, sizes, Int32(sizes.count), type, dev, idx, generator?.handle))
    }

    /// Integers uniformly drawn from low..<high.
    public static func randint(_ low: Int, _ high: Int, _ shape: [Int], dtype: DType = .int64, device: Device = .cpu,
                               generator: Generator? = nil) throws -> Tensor {
        let sizes = shape.map(Int64.init)
        let (dev, idx) = device.code
        return try .wrap(bd_randint(Int64(low), Int64(high), sizes, Int32(sizes.count), Int32(dtype.rawValue), dev, idx,
                                    generator?.handle))
    }

    /// A random permutation of 0..<n (int64).
    public static func randperm(_ n: Int, device: Device = .cpu, generator: Generator? = nil) throws -> Tensor {
        let (dev, idx) = device.code
        return try .wrap(bd_randperm(Int64(n), dev, idx, generator?.handle))
    }
}
