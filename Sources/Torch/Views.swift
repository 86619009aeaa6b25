import CTorch

// Views, indexing and joining. Names and semantics follow PyTorch; dimensions may be negative
// (counted from the end) wherever PyTorch allows it.

extension Tensor {
    // MARK: Shape

    /// The same elements in a new shape; one entry may be -1. A view when the strides allow it.
    public func reshape(_ shape: [Int]) throws -> Tensor {
        let sizes = shape.map(Int64.init)
        return try .wrap(bd_reshape(handle, sizes, Int32(sizes.count)), "reshape \(self.shape) to \(shape)")
    }

    public func reshape(_ shape: Int...) throws -> Tensor { try reshape(shape) }

    /// Like `reshape` but never copies: throws when the strides do not allow a view.
    public func view(_ shape: [Int]) throws -> Tensor {
        let sizes = shape.map(Int64.init)
        return try .wrap(bd_view(handle, sizes, Int32(sizes.count)), "view \(self.shape) as \(shape)")
    }

    public func view(_ shape: Int...) throws -> Tensor { try view(shape) }

    /// Reorders the dimensions: result dimension i is input dimension `dims[i]`.
    public func permute(_ dims: [Int]) throws -> Tensor {
        let values = dims.map(Int64.init)
        return try .wrap(bd_permute(handle, values, Int32(values.count)), "permute \(shape) by \(dims)")
    }

    public func permute(_ dims: Int...) throws -> Tensor { try permute(dims) }

    public func transpose(_ dim0: Int, _ dim1: Int) throws -> Tensor {
        try .wrap(bd_transpose(handle, Int64(dim0), Int64(dim1)), "transpose \(shape)")
    }

    /// The transpose of a matrix `[M, N]` → `[N, M]`, or of the last two dimensions of a batch.
    public func mT() throws -> Tensor { try transpose(-2, -1) }

    /// Removes the size-1 dimension `dim` (a no-op when its size is not 1, as in PyTorch).
    public func squeeze(dim: Int) throws -> Tensor {
        try .wrap(bd_squeeze(handle, Int64(dim), false), "squeeze \(shape) at \(dim)")
    }

    /// Removes every size-1 dimension.
    public func squeeze() throws -> Tensor { try .wrap(bd_squeeze(handle, 0, true), "squeeze \(shape)") }

    /// Inserts a size-1 dimension so that it becomes dimension `dim` of the result.
    public func unsqueeze(_ dim: Int) throws -> Tensor {
        try .wrap(bd_unsqueeze(handle, Int64(dim)), "unsqueeze \(shape) at \(dim)")
    }

    /// Merges dimensions `start...end` into one.
    public func flatten(start: Int = 0, end: Int = -1) throws -> Tensor {
        try .wrap(bd_flatten(handle, Int64(start), Int64(end)), "flatten \(shape) \(start)...\(end)")
    }

    /// `self` when already contiguous, else a row-major copy.
    public func contiguous() throws -> Tensor { try .wrap(bd_contiguous(handle), "contiguous") }

    /// `self` when a rank-4 `[N, C, H, W]` tensor already lies in NHWC order in memory, else a copy
    /// that does. Shapes and indexing do not change; convolutions, pooling, resizes and elementwise
    /// ops keep the layout and run LibTorch's channels-last kernels, which are much faster for the
    /// small-channel convolutions of mobile networks.
    public func channelsLast() throws -> Tensor {
        guard rank == 4 else { throw TorchError("channels-last layout needs a rank-4 tensor, got \(shape)") }
        return try .wrap(bd_contiguous_channels_last(handle), "channels-last \(shape)")
    }

    /// Whether the tensor lies in channels-last (NHWC) order, as `channelsLast()` makes it.
    public var isChannelsLast: Bool { bd_is_channels_last(handle) }

    /// A copy with its own storage (differentiable).
    public func clone() throws -> Tensor { try .wrap(bd_clone(handle), "clone") }

    /// A view with explicit sizes, strides and storage offset (in elements). The caller is
    /// responsible for staying inside the storage; LibTorch checks the bounds it can.
    public func asStrided(_ shape: [Int], strides: [Int], offset: Int? = nil) throws -> Tensor {
        guard shape.count == strides.count else {
            throw TorchError("asStrided: \(shape.count) sizes but \(strides.count) strides")
        }
        let sizes = shape.map(Int64.init), steps = strides.map(Int64.init)
        return try .wrap(bd_as_strided(handle, sizes, steps, Int32(sizes.count), Int64(offset ?? storageOffset)),
                         "asStrided \(shape) strides \(strides)")
    }

    /// Broadcasts size-1 dimensions (and new leading ones) to `shape`; -1 keeps a size. No copy.
    public func expand(_ shape: [Int]) throws -> Tensor {
        let sizes = shape.map(Int64.init)
        return try .wrap(bd_expand(handle, sizes, Int32(sizes.count)), "expand \(self.shape) to \(shape)")
    }

    public func expand(_ shape: Int...) throws -> Tensor { try expand(shape) }

    /// `expand` to another tensor's shape.
    public func expand(as other: Tensor) throws -> Tensor { try expand(other.shape) }

    /// Tiles the tensor `repeats[i]` times along dimension i (copies, like `torch.Tensor.repeat`).
    public func `repeat`(_ repeats: [Int]) throws -> Tensor {
        let sizes = repeats.map(Int64.init)
        return try .wrap(bd_repeat(handle, sizes, Int32(sizes.count)), "repeat \(shape) by \(repeats)")
    }

    public func `repeat`(_ repeats: Int...) throws -> Tensor { try self.repeat(repeats) }

    // MARK: Slicing

    /// Elements `start..<end` by `step` along `dim`. Negative bounds count from the end and bounds
    /// past either end are clamped, as in Python's `t[start:end:step]`; `step` must be positive.
    public func slice(dim: Int = 0, start: Int? = nil, end: Int? = nil, step: Int = 1) throws -> Tensor {
        guard step > 0 else { throw TorchError("slice: step must be positive, got \(step)") }
        let d = try normalizedDim(dim)
        let n = shape[d]
        func clamp(_ value: Int?, _ fallback: Int) -> Int {
            guard let value else { return fallback }
            return Swift.min(Swift.max(value < 0 ? value + n : value, 0), n)
        }
        let lo = clamp(start, 0)
        let hi = Swift.max(clamp(end, n), lo)
        return try .wrap(bd_slice(handle, Int64(d), Int64(lo), Int64(hi), Int64(step)),
                         "slice \(shape) dim \(dim) \(lo)..<\(hi) step \(step)")
    }

    /// `length` elements from `start` along `dim` (a negative start counts from the end; no clamping).
    public func narrow(dim: Int, start: Int, length: Int) throws -> Tensor {
        try .wrap(bd_narrow(handle, Int64(dim), Int64(start), Int64(length)),
                  "narrow \(shape) dim \(dim) start \(start) length \(length)")
    }

    /// The slice at `index` along `dim`, with that dimension removed.
    public func select(dim: Int, index: Int) throws -> Tensor {
        try .wrap(bd_select(handle, Int64(dim), Int64(index)), "select \(shape) dim \(dim) index \(index)")
    }

    // MARK: Indexing

    /// Rows (along `dim`) picked by a 1-D int64/int32 `index`.
    public func indexSelect(dim: Int, index: Tensor) throws -> Tensor {
        try .wrap(bd_index_select(handle, Int64(dim), index.handle), "indexSelect \(shape) dim \(dim)")
    }

    /// `out[i][j][k] = self[index[i][j][k]][j][k]` for dim 0 (and so on); `index` is int64.
    public func gather(dim: Int, index: Tensor) throws -> Tensor {
        try .wrap(bd_gather(handle, Int64(dim), index.handle), "gather \(shape) dim \(dim)")
    }

    /// A copy with `src` written at `index` along `dim` (the reverse of `gather`).
    public func scatter(dim: Int, index: Tensor, src: Tensor) throws -> Tensor {
        try .wrap(bd_scatter(handle, Int64(dim), index.handle, src.handle, false), "scatter \(shape) dim \(dim)")
    }

    /// A copy with `src` added at `index` along `dim`; repeated indices accumulate.
    public func scatterAdd(dim: Int, index: Tensor, src: Tensor) throws -> Tensor {
        try .wrap(bd_scatter(handle, Int64(dim), index.handle, src.handle, true), "scatterAdd \(shape) dim \(dim)")
    }

    /// Advanced indexing `t[i0, i1, …]` with integer or boolean index tensors; nil takes a whole
    /// dimension (`:`).
    public func index(_ indices: [Tensor?]) throws -> Tensor {
        try withHandles(indices) { ptr in
            try .wrap(bd_index(handle, ptr, Int32(indices.count)), "index \(shape)")
        }
    }

    /// In place: `t[indices] = values` (or `+=` with `accumulate`).
    public func indexPut_(_ indices: [Tensor?], _ values: Tensor, accumulate: Bool = false) throws {
        try withHandles(indices) { ptr in
            try checkStatus(bd_index_put_(handle, ptr, Int32(indices.count), values.handle, accumulate),
                            "indexPut_ \(shape)")
        }
    }

    /// A copy with `value` wherever the (broadcast) boolean `mask` is true.
    public func maskedFill(_ mask: Tensor, _ value: Double) throws -> Tensor {
        try .wrap(bd_masked_fill(handle, mask.handle, value), "maskedFill \(shape) mask \(mask.shape)")
    }

    /// The elements where `mask` is true, as a 1-D tensor.
    public func maskedSelect(_ mask: Tensor) throws -> Tensor {
        try .wrap(bd_masked_select(handle, mask.handle), "maskedSelect \(shape) mask \(mask.shape)")
    }

    /// Elementwise `condition ? a : b`, broadcasting all three.
    public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        try .wrap(bd_where(condition.handle, a.handle, b.handle),
                  "where cond \(condition.shape) a \(a.shape) b \(b.shape)")
    }

    /// Indices of the non-zero elements, `[count, rank]` int64.
    public func nonzero() throws -> Tensor { try .wrap(bd_nonzero(handle), "nonzero") }

    // MARK: Joining and splitting

    /// Concatenates along an existing dimension.
    public static func cat(_ tensors: [Tensor], dim: Int = 0) throws -> Tensor {
        guard !tensors.isEmpty else { throw TorchError("cat: expected at least one tensor") }
        return try withHandles(tensors) { ptr in
            try .wrap(bd_cat(ptr, Int32(tensors.count), Int64(dim)), "cat \(tensors.map(\.shape)) dim \(dim)")
        }
    }

    /// Joins equally shaped tensors along a new dimension `dim`.
    public static func stack(_ tensors: [Tensor], dim: Int = 0) throws -> Tensor {
        guard !tensors.isEmpty else { throw TorchError("stack: expected at least one tensor") }
        return try withHandles(tensors) { ptr in
            try .wrap(bd_stack(ptr, Int32(tensors.count), Int64(dim)), "stack \(tensors.map(\.shape)) dim \(dim)")
        }
    }

    /// At most `chunks` views of size ceil(n / chunks) along `dim` (the last may be smaller).
    public func chunk(_ chunks: Int, dim: Int = 0) throws -> [Tensor] {
        guard chunks > 0 else { throw TorchError("chunk: expected a positive number of chunks, got \(chunks)") }
        // Never more pieces than elements along `dim` (one empty piece for an empty dimension).
        let capacity = Swift.min(chunks, Swift.max(shape[try normalizedDim(dim)], 1))
        var out = [bd_tensor?](repeating: nil, count: capacity)
        let n = bd_chunk(handle, Int64(chunks), Int64(dim), &out, Int32(capacity))
        if n < 0 { throw TorchError.fromBridge("chunk \(shape) into \(chunks) along \(dim)") }
        return try takeHandles(out, count: n)
    }

    /// Views of `size` elements along `dim`; the last may be smaller.
    public func split(size: Int, dim: Int = 0) throws -> [Tensor] {
        guard size > 0 else { throw TorchError("split: expected a positive size, got \(size)") }
        let n = shape[try normalizedDim(dim)]
        var sizes = Array(repeating: size, count: n / size)
        if n % size != 0 || n == 0 { sizes.append(n % size) }
        return try split(sizes: sizes, dim: dim)
    }

    /// Views with the given sizes along `dim`; the sizes must add up to the dimension's size.
    public func split(sizes: [Int], dim: Int = 0) throws -> [Tensor] {
        let values = sizes.map(Int64.init)
        var out = [bd_tensor?](repeating: nil, count: Swift.max(sizes.count, 1))
        let n = bd_split(handle, values, Int32(values.count), Int64(dim), &out, Int32(out.count))
        if n < 0 { throw TorchError.fromBridge("split \(shape) into \(sizes) along \(dim)") }
        return try takeHandles(out, count: n)
    }

    /// Reverses the order of elements along each of `dims` (copies).
    public func flip(_ dims: [Int]) throws -> Tensor {
        let values = dims.map(Int64.init)
        return try .wrap(bd_flip(handle, values, Int32(values.count)), "flip \(shape) along \(dims)")
    }

    public func flip(_ dims: Int...) throws -> Tensor { try flip(dims) }

    /// Rotates elements along `dims` by `shifts` (wrapping around). With no dims the tensor is
    /// rolled as if flattened.
    public func roll(shifts: [Int], dims: [Int] = []) throws -> Tensor {
        if dims.isEmpty {
            guard shifts.count == 1 else { throw TorchError("roll: one shift expected without dims, got \(shifts)") }
            return try flatten().roll(shifts: shifts, dims: [0]).reshape(shape)
        }
        guard shifts.count == dims.count else {
            throw TorchError("roll: \(shifts.count) shifts but \(dims.count) dims")
        }
        let s = shifts.map(Int64.init), d = dims.map(Int64.init)
        return try .wrap(bd_roll(handle, s, d, Int32(s.count)), "roll \(shape) by \(shifts) along \(dims)")
    }

    public func roll(_ shift: Int, dim: Int) throws -> Tensor { try roll(shifts: [shift], dims: [dim]) }

    /// The upper triangle of the last two dimensions (elements with `col - row >= diagonal`); the rest zero.
    public func triu(diagonal: Int = 0) throws -> Tensor {
        try .wrap(bd_triangle(handle, Int64(diagonal), true), "triu \(shape)")
    }

    /// The lower triangle of the last two dimensions (elements with `col - row <= diagonal`); the rest zero.
    public func tril(diagonal: Int = 0) throws -> Tensor {
        try .wrap(bd_triangle(handle, Int64(diagonal), false), "tril \(shape)")
    }

    // MARK: Helpers

    /// `dim` in 0..<rank, or an error naming the shape.
    func normalizedDim(_ dim: Int) throws -> Int {
        let r = rank
        let d = dim < 0 ? dim + r : dim
        guard d >= 0, d < r else {
            throw TorchError("dimension \(dim) out of range for a tensor of shape \(shape)")
        }
        return d
    }
}

// MARK: Subscript

/// One entry of a `t[...]` subscript: an integer (drops the dimension), a range, or the whole dimension.
public enum TensorIndex: Sendable {
    case at(Int)
    case range(start: Int?, end: Int?, step: Int)
    /// `:` — the whole dimension.
    case all
    /// `None` — a new size-1 dimension.
    case newAxis

    public static func r(_ range: Range<Int>, step: Int = 1) -> TensorIndex {
        .range(start: range.lowerBound, end: range.upperBound, step: step)
    }
}

extension TensorIndex: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int) { self = .at(value) }
}

extension Tensor {
    /// Basic indexing, e.g. `try t[.all, 0, .r(1..<3)]`; indices apply to the leading
    /// dimensions. Results are views.
    public subscript(_ indices: TensorIndex...) -> Tensor {
        get throws { try basicIndex(indices) }
    }

    public func basicIndex(_ indices: [TensorIndex]) throws -> Tensor {
        var result = self
        var dim = 0  // dimension of `result` that the next index addresses
        for index in indices {
            switch index {
            case .at(let i):
                guard dim < result.rank else { throw TorchError("too many indices for a tensor of shape \(shape)") }
                result = try result.select(dim: dim, index: i)
            case .range(let start, let end, let step):
                guard dim < result.rank else { throw TorchError("too many indices for a tensor of shape \(shape)") }
                result = try result.slice(dim: dim, start: start, end: end, step: step)
                dim += 1
            case .all:
                dim += 1
            case .newAxis:
                result = try result.unsqueeze(dim)
                dim += 1
            }
        }
        return result
    }
}
