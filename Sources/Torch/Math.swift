import CTorch

// Elementwise math, in-place updates, reductions and linear algebra. Binary ops broadcast like
// PyTorch; every op throws the LibTorch message on failure (shape or dtype mismatch, …).

/// How `gelu` evaluates the Gaussian CDF: exactly with erf, or with PyTorch's tanh approximation.
public enum GeluApproximation: Sendable {
    case none, tanh
}

extension Tensor {
    // MARK: Unary

    private func unary(_ op: bd_unary_op, _ name: String) throws -> Tensor {
        try .wrap(bd_unary(op, handle), name)
    }

    public func neg() throws -> Tensor { try unary(BD_NEG, "neg") }
    public func abs() throws -> Tensor { try unary(BD_ABS, "abs") }
    public func exp() throws -> Tensor { try unary(BD_EXP, "exp") }
    public func log() throws -> Tensor { try unary(BD_LOG, "log") }
    public func log2() throws -> Tensor { try unary(BD_LOG2, "log2") }
    public func log1p() throws -> Tensor { try unary(BD_LOG1P, "log1p") }
    public func expm1() throws -> Tensor { try unary(BD_EXPM1, "expm1") }
    public func sqrt() throws -> Tensor { try unary(BD_SQRT, "sqrt") }
    public func rsqrt() throws -> Tensor { try unary(BD_RSQRT, "rsqrt") }
    public func square() throws -> Tensor { try unary(BD_SQUARE, "square") }
    public func reciprocal() throws -> Tensor { try unary(BD_RECIPROCAL, "reciprocal") }
    public func sin() throws -> Tensor { try unary(BD_SIN, "sin") }
    public func cos() throws -> Tensor { try unary(BD_COS, "cos") }
    public func atan() throws -> Tensor { try unary(BD_ATAN, "atan") }
    public func asin() throws -> Tensor { try unary(BD_ASIN, "asin") }
    public func acos() throws -> Tensor { try unary(BD_ACOS, "acos") }
    public func tanh() throws -> Tensor { try unary(BD_TANH, "tanh") }
    public func erf() throws -> Tensor { try unary(BD_ERF, "erf") }
    public func floor() throws -> Tensor { try unary(BD_FLOOR, "floor") }
    public func ceil() throws -> Tensor { try unary(BD_CEIL, "ceil") }
    /// Rounds half to even, like `torch.round`.
    public func round() throws -> Tensor { try unary(BD_ROUND, "round") }
    public func trunc() throws -> Tensor { try unary(BD_TRUNC, "trunc") }
    public func sign() throws -> Tensor { try unary(BD_SIGN, "sign") }
    public func sigmoid() throws -> Tensor { try unary(BD_SIGMOID, "sigmoid") }
    public func relu() throws -> Tensor { try unary(BD_RELU, "relu") }
    public func silu() throws -> Tensor { try unary(BD_SILU, "silu") }
    public func hardswish() throws -> Tensor { try unary(BD_HARDSWISH, "hardswish") }
    public func hardsigmoid() throws -> Tensor { try unary(BD_HARDSIGMOID, "hardsigmoid") }
    public func gelu(approximate: GeluApproximation = .none) throws -> Tensor {
        approximate == .tanh ? try unary(BD_GELU_TANH, "gelu(tanh)") : try unary(BD_GELU, "gelu")
    }
    public func logicalNot() throws -> Tensor { try unary(BD_LOGICAL_NOT, "logicalNot") }
    /// Boolean mask of NaN elements.
    public func isnan() throws -> Tensor { try unary(BD_ISNAN, "isnan") }
    /// Boolean mask of elements that are neither infinite nor NaN.
    public func isfinite() throws -> Tensor { try unary(BD_ISFINITE, "isfinite") }
    /// Whether no element is NaN or ±∞ (integer tensors always are finite).
    public func isAllFinite() throws -> Bool {
        guard dtype.isFloatingPoint else { return true }
        return try isfinite().all().item() != 0
    }
    /// Real part of a complex tensor (a view); a real tensor is returned as is.
    public func real() throws -> Tensor { try unary(BD_REAL, "real") }
    /// Imaginary part of a complex tensor (a view); throws for real tensors.
    public func imag() throws -> Tensor { try unary(BD_IMAG, "imag") }

    // MARK: Binary

    private func binary(_ op: bd_binary_op, _ other: Tensor, _ name: String) throws -> Tensor {
        try .wrap(bd_binary(op, handle, other.handle), "\(name) \(shape) \(dtype) with \(other.shape) \(other.dtype)")
    }

    private func binary(_ op: bd_binary_op, _ scalar: Double, _ name: String) throws -> Tensor {
        try .wrap(bd_binary_scalar(op, handle, scalar), "\(name) \(shape) \(dtype) with \(scalar)")
    }

    public func add(_ other: Tensor) throws -> Tensor { try binary(BD_ADD, other, "add") }
    public func add(_ scalar: Double) throws -> Tensor { try binary(BD_ADD, scalar, "add") }
    public func sub(_ other: Tensor) throws -> Tensor { try binary(BD_SUB, other, "sub") }
    public func sub(_ scalar: Double) throws -> Tensor { try binary(BD_SUB, scalar, "sub") }
    public func mul(_ other: Tensor) throws -> Tensor { try binary(BD_MUL, other, "mul") }
    public func mul(_ scalar: Double) throws -> Tensor { try binary(BD_MUL, scalar, "mul") }
    /// True division (integers give floats), like `torch.div`.
    public func div(_ other: Tensor) throws -> Tensor { try binary(BD_DIV, other, "div") }
    public func div(_ scalar: Double) throws -> Tensor { try binary(BD_DIV, scalar, "div") }
    public func pow(_ exponent: Tensor) throws -> Tensor { try binary(BD_POW, exponent, "pow") }
    public func pow(_ exponent: Double) throws -> Tensor { try binary(BD_POW, exponent, "pow") }
    /// `base ^ exponent` elementwise.
    public static func pow(_ base: Double, _ exponent: Tensor) throws -> Tensor {
        try exponent.binary(BD_RPOW, base, "pow(scalar base)")
    }
    public func maximum(_ other: Tensor) throws -> Tensor { try binary(BD_MAXIMUM, other, "maximum") }
    public func minimum(_ other: Tensor) throws -> Tensor { try binary(BD_MINIMUM, other, "minimum") }
    /// Python-style modulus: the result has the sign of the divisor.
    public func remainder(_ other: Tensor) throws -> Tensor { try binary(BD_REMAINDER, other, "remainder") }
    public func remainder(_ scalar: Double) throws -> Tensor { try binary(BD_REMAINDER, scalar, "remainder") }
    /// Division rounded towards negative infinity.
    public func floorDivide(_ other: Tensor) throws -> Tensor { try binary(BD_FLOOR_DIVIDE, other, "floorDivide") }
    public func floorDivide(_ scalar: Double) throws -> Tensor { try binary(BD_FLOOR_DIVIDE, scalar, "floorDivide") }
    /// `atan2(self, other)`: the angle of the point (other, self).
    public func atan2(_ other: Tensor) throws -> Tensor { try binary(BD_ATAN2, other, "atan2") }
    public func logicalAnd(_ other: Tensor) throws -> Tensor { try binary(BD_LOGICAL_AND, other, "logicalAnd") }
    public func logicalOr(_ other: Tensor) throws -> Tensor { try binary(BD_LOGICAL_OR, other, "logicalOr") }

    // Comparisons give bool tensors.
    public func eq(_ other: Tensor) throws -> Tensor { try binary(BD_EQ, other, "eq") }
    public func eq(_ scalar: Double) throws -> Tensor { try binary(BD_EQ, scalar, "eq") }
    public func ne(_ other: Tensor) throws -> Tensor { try binary(BD_NE, other, "ne") }
    public func ne(_ scalar: Double) throws -> Tensor { try binary(BD_NE, scalar, "ne") }
    public func lt(_ other: Tensor) throws -> Tensor { try binary(BD_LT, other, "lt") }
    public func lt(_ scalar: Double) throws -> Tensor { try binary(BD_LT, scalar, "lt") }
    public func le(_ other: Tensor) throws -> Tensor { try binary(BD_LE, other, "le") }
    public func le(_ scalar: Double) throws -> Tensor { try binary(BD_LE, scalar, "le") }
    public func gt(_ other: Tensor) throws -> Tensor { try binary(BD_GT, other, "gt") }
    public func gt(_ scalar: Double) throws -> Tensor { try binary(BD_GT, scalar, "gt") }
    public func ge(_ other: Tensor) throws -> Tensor { try binary(BD_GE, other, "ge") }
    public func ge(_ scalar: Double) throws -> Tensor { try binary(BD_GE, scalar, "ge") }

    /// Limits values to `[min, max]`; either bound may be omitted.
    public func clamp(min: Double? = nil, max: Double? = nil) throws -> Tensor {
        try .wrap(bd_clamp(handle, min ?? 0, max ?? 0, min != nil, max != nil), "clamp")
    }

    /// Elementwise bounds from tensors (broadcast).
    public func clamp(min: Tensor?, max: Tensor? = nil) throws -> Tensor {
        var result = self
        if let min { result = try result.maximum(min) }
        if let max { result = try result.minimum(max) }
        return result
    }

    /// `self + weight * (end - self)`.
    public func lerp(_ end: Tensor, weight: Double) throws -> Tensor {
        try .wrap(bd_lerp(handle, end.handle, weight), "lerp \(shape) with \(end.shape)")
    }

    // MARK: Operators

    public static func + (lhs: Tensor, rhs: Tensor) throws -> Tensor { try lhs.add(rhs) }
    public static func + (lhs: Tensor, rhs: Double) throws -> Tensor { try lhs.add(rhs) }
    public static func + (lhs: Double, rhs: Tensor) throws -> Tensor { try rhs.add(lhs) }
    public static func - (lhs: Tensor, rhs: Tensor) throws -> Tensor { try lhs.sub(rhs) }
    public static func - (lhs: Tensor, rhs: Double) throws -> Tensor { try lhs.sub(rhs) }
    public static func - (lhs: Double, rhs: Tensor) throws -> Tensor { try rhs.binary(BD_RSUB, lhs, "rsub") }
    public static func * (lhs: Tensor, rhs: Tensor) throws -> Tensor { try lhs.mul(rhs) }
    public static func * (lhs: Tensor, rhs: Double) throws -> Tensor { try lhs.mul(rhs) }
    public static func * (lhs: Double, rhs: Tensor) throws -> Tensor { try rhs.mul(lhs) }
    public static func / (lhs: Tensor, rhs: Tensor) throws -> Tensor { try lhs.div(rhs) }
    public static func / (lhs: Tensor, rhs: Double) throws -> Tensor { try lhs.div(rhs) }
    public static func / (lhs: Double, rhs: Tensor) throws -> Tensor { try rhs.binary(BD_RDIV, lhs, "rdiv") }
    public static prefix func - (operand: Tensor) throws -> Tensor { try operand.neg() }

    // The dotted comparison operators (declared by the standard library for SIMD) return masks.
    public static func .== (lhs: Tensor, rhs: Tensor) throws -> Tensor { try lhs.eq(rhs) }
    public static func .== (lhs: Tensor, rhs: Double) throws -> Tensor { try lhs.eq(rhs) }
    public static func .!= (lhs: Tensor, rhs: Tensor) throws -> Tensor { try lhs.ne(rhs) }
    public static func .!= (lhs: Tensor, rhs: Double) throws -> Tensor { try lhs.ne(rhs) }
    public static func .< (lhs: Tensor, rhs: Tensor) throws -> Tensor { try lhs.lt(rhs) }
    public static func .< (lhs: Tensor, rhs: Double) throws -> Tensor { try lhs.lt(rhs) }
    public static func .<= (lhs: Tensor, rhs: Tensor) throws -> Tensor { try lhs.le(rhs) }
    public static func .<= (lhs: Tensor, rhs: Double) throws -> Tensor { try lhs.le(rhs) }
    public static func .> (lhs: Tensor, rhs: Tensor) throws -> Tensor { try lhs.gt(rhs) }
    public static func .> (lhs: Tensor, rhs: Double) throws -> Tensor { try lhs.gt(rhs) }
    public static func .>= (lhs: Tensor, rhs: Tensor) throws -> Tensor { try lhs.ge(rhs) }
    public static func .>= (lhs: Tensor, rhs: Double) throws -> Tensor { try lhs.ge(rhs) }

    // MARK: In place
    // These write into `self` (the optimiser and weight-loading path); views write through to
    // their base. LibTorch refuses them on leaves that require grad while grad mode is on.

    /// `self += alpha * other`.
    public func add_(_ other: Tensor, alpha: Double = 1) throws {
        try checkStatus(bd_inplace_binary(BD_ADD, handle, other.handle, alpha), "add_ \(shape) with \(other.shape)")
    }
    /// `self -= alpha * other`.
    public func sub_(_ other: Tensor, alpha: Double = 1) throws {
        try checkStatus(bd_inplace_binary(BD_SUB, handle, other.handle, alpha), "sub_ \(shape) with \(other.shape)")
    }
    public func mul_(_ other: Tensor) throws {
        try checkStatus(bd_inplace_binary(BD_MUL, handle, other.handle, 1), "mul_ \(shape) with \(other.shape)")
    }
    public func mul_(_ scalar: Double) throws { try checkStatus(bd_inplace_scalar(BD_MUL, handle, scalar), "mul_") }
    public func div_(_ other: Tensor) throws {
        try checkStatus(bd_inplace_binary(BD_DIV, handle, other.handle, 1), "div_ \(shape) with \(other.shape)")
    }
    public func div_(_ scalar: Double) throws { try checkStatus(bd_inplace_scalar(BD_DIV, handle, scalar), "div_") }
    /// `self += scalar`.
    public func addScalar_(_ scalar: Double) throws {
        try checkStatus(bd_inplace_scalar(BD_ADD, handle, scalar), "addScalar_")
    }
    /// `self = maximum(self, other)`.
    public func maximum_(_ other: Tensor) throws {
        try checkStatus(bd_inplace_binary(BD_MAXIMUM, handle, other.handle, 1), "maximum_ \(shape) with \(other.shape)")
    }
    /// Copies `source` (broadcast, converted to this dtype and device) into `self`.
    public func copy_(from source: Tensor) throws {
        try checkStatus(bd_copy_(handle, source.handle), "copy_ \(source.shape) into \(shape)")
    }
    public func fill_(_ value: Double) throws { try checkStatus(bd_fill_(handle, value), "fill_") }
    public func zero_() throws { try fill_(0) }
    /// `self += value * a * b`.
    public func addcmul_(_ a: Tensor, _ b: Tensor, value: Double = 1) throws {
        try checkStatus(bd_addcmul_(handle, a.handle, b.handle, value), "addcmul_ \(shape)")
    }
    /// `self += value * a / b`.
    public func addcdiv_(_ a: Tensor, _ b: Tensor, value: Double = 1) throws {
        try checkStatus(bd_addcdiv_(handle, a.handle, b.handle, value), "addcdiv_ \(shape)")
    }
    public func sqrt_() throws { try checkStatus(bd_unary_(BD_SQRT, handle), "sqrt_") }
    public func neg_() throws { try checkStatus(bd_unary_(BD_NEG, handle), "neg_") }
    public func exp_() throws { try checkStatus(bd_unary_(BD_EXP, handle), "exp_") }
    /// Fills with normal samples from `generator` (LibTorch's global one when nil).
    public func normal_(mean: Double = 0, std: Double = 1, generator: Generator? = nil) throws {
        try checkStatus(bd_normal_(handle, mean, std, generator?.handle), "normal_")
    }
    /// Fills with uniform samples in `[from, to)`.
    public func uniform_(from: Double = 0, to: Double = 1, generator: Generator? = nil) throws {
        try checkStatus(bd_uniform_(handle, from, to, generator?.handle), "uniform_")
    }

    // MARK: Reductions
    // An empty `dims` reduces over every dimension.

    private func reduce(_ op: bd_reduce_op, _ dims: [Int], _ keepDim: Bool, _ name: String) throws -> Tensor {
        let values = dims.map(Int64.init)
        return try withUnsafePointerOrNil(values) { ptr in
            try .wrap(bd_reduce(op, handle, ptr, Int32(values.count), keepDim), "\(name) of \(shape) over \(dims)")
        }
    }

    public func sum(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(BD_SUM, dims, keepDim, "sum") }
    public func sum(dim: Int, keepDim: Bool = false) throws -> Tensor { try sum(dims: [dim], keepDim: keepDim) }
    public func mean(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(BD_MEAN, dims, keepDim, "mean") }
    public func mean(dim: Int, keepDim: Bool = false) throws -> Tensor { try mean(dims: [dim], keepDim: keepDim) }
    public func amax(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(BD_AMAX, dims, keepDim, "amax") }
    public func amax(dim: Int, keepDim: Bool = false) throws -> Tensor { try amax(dims: [dim], keepDim: keepDim) }
    public func amin(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(BD_AMIN, dims, keepDim, "amin") }
    public func amin(dim: Int, keepDim: Bool = false) throws -> Tensor { try amin(dims: [dim], keepDim: keepDim) }
    public func prod(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(BD_PROD, dims, keepDim, "prod") }
    public func prod(dim: Int, keepDim: Bool = false) throws -> Tensor { try prod(dims: [dim], keepDim: keepDim) }
    /// `log(sum(exp(x)))` computed without overflow.
    public func logsumexp(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor {
        try reduce(BD_LOGSUMEXP, dims, keepDim, "logsumexp")
    }
    public func logsumexp(dim: Int, keepDim: Bool = false) throws -> Tensor { try logsumexp(dims: [dim], keepDim: keepDim) }
    /// Whether any element is non-zero (bool).
    public func any(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(BD_ANY, dims, keepDim, "any") }
    /// Whether every element is non-zero (bool).
    public func all(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(BD_ALL, dims, keepDim, "all") }

    /// Variance with Bessel's `correction` (1: unbiased, 0: population).
    public func variance(dims: [Int] = [], correction: Int = 1, keepDim: Bool = false) throws -> Tensor {
        try moments(dims, correction, keepDim, std: false)
    }

    /// Standard deviation with Bessel's `correction`.
    public func std(dims: [Int] = [], correction: Int = 1, keepDim: Bool = false) throws -> Tensor {
        try moments(dims, correction, keepDim, std: true)
    }

    private func moments(_ dims: [Int], _ correction: Int, _ keepDim: Bool, std: Bool) throws -> Tensor {
        let values = dims.map(Int64.init)
        return try withUnsafePointerOrNil(values) { ptr in
            try .wrap(bd_var(handle, ptr, Int32(values.count), Int64(correction), keepDim, std),
                      "\(std ? "std" : "variance") of \(shape) over \(dims)")
        }
    }

    /// Largest values along `dim` and their positions (int64).
    public func max(dim: Int, keepDim: Bool = false) throws -> (values: Tensor, indices: Tensor) {
        try extremum(dim, keepDim, max: true)
    }

    /// Smallest values along `dim` and their positions (int64).
    public func min(dim: Int, keepDim: Bool = false) throws -> (values: Tensor, indices: Tensor) {
        try extremum(dim, keepDim, max: false)
    }

    /// The largest element, as a 0-dimensional tensor.
    public func max() throws -> Tensor { try amax() }
    /// The smallest element, as a 0-dimensional tensor.
    public func min() throws -> Tensor { try amin() }

    private func extremum(_ dim: Int, _ keepDim: Bool, max: Bool) throws -> (values: Tensor, indices: Tensor) {
        var values: bd_tensor?, indices: bd_tensor?
        try checkStatus(bd_max_dim(handle, Int64(dim), keepDim, max, &values, &indices),
                        "\(max ? "max" : "min") of \(shape) along \(dim)")
        return (try .wrap(values), try .wrap(indices))
    }

    /// Position of the largest element along `dim`, or in the flattened tensor when `dim` is nil.
    public func argmax(dim: Int? = nil, keepDim: Bool = false) throws -> Tensor {
        try .wrap(bd_argmax(handle, Int64(dim ?? 0), dim != nil, keepDim, true), "argmax of \(shape)")
    }

    public func argmin(dim: Int? = nil, keepDim: Bool = false) throws -> Tensor {
        try .wrap(bd_argmax(handle, Int64(dim ?? 0), dim != nil, keepDim, false), "argmin of \(shape)")
    }

    public func cumsum(dim: Int) throws -> Tensor { try .wrap(bd_cumsum(handle, Int64(dim)), "cumsum of \(shape)") }

    /// Sorted values along `dim` and the permutation that sorts them.
    public func sort(dim: Int = -1, descending: Bool = false) throws -> (values: Tensor, indices: Tensor) {
        var values: bd_tensor?, indices: bd_tensor?
        try checkStatus(bd_sort(handle, Int64(dim), descending, &values, &indices), "sort of \(shape)")
        return (try .wrap(values), try .wrap(indices))
    }

    /// The `k` largest (or smallest) values along `dim`, sorted, with their positions.
    public func topk(_ k: Int, dim: Int = -1, largest: Bool = true) throws -> (values: Tensor, indices: Tensor) {
        var values: bd_tensor?, indices: bd_tensor?
        try checkStatus(bd_topk(handle, Int64(k), Int64(dim), largest, &values, &indices), "topk \(k) of \(shape)")
        return (try .wrap(values), try .wrap(indices))
    }

    // MARK: Matrix products

    /// `torch.matmul`: dot, matrix-vector, matrix-matrix or batched (broadcast) products.
    public func matmul(_ other: Tensor) throws -> Tensor {
        try .wrap(bd_matmul(handle, other.handle), "matmul \(shape) \(dtype) with \(other.shape) \(other.dtype)")
    }

    /// Batched product `[B, N, M] × [B, M, P] → [B, N, P]` (no broadcasting).
    public func bmm(_ other: Tensor) throws -> Tensor {
        try .wrap(bd_bmm(handle, other.handle), "bmm \(shape) with \(other.shape)")
    }

    /// `beta * input + alpha * (a @ b)` over batches `[B, N, M] × [B, M, P]`.
    public static func baddbmm(_ input: Tensor, _ a: Tensor, _ b: Tensor, beta: Double = 1, alpha: Double = 1) throws -> Tensor {
        try .wrap(bd_baddbmm(input.handle, a.handle, b.handle, beta, alpha), "baddbmm \(input.shape) + \(a.shape) × \(b.shape)")
    }

    /// Einstein summation, e.g. `Tensor.einsum("bij,bjk->bik", a, b)`.
    public static func einsum(_ equation: String, _ tensors: Tensor...) throws -> Tensor {
        try einsum(equation, tensors)
    }

    public static func einsum(_ equation: String, _ tensors: [Tensor]) throws -> Tensor {
        try withHandles(tensors) { ptr in
            try .wrap(bd_einsum(equation, ptr, Int32(tensors.count)), "einsum '\(equation)' of \(tensors.map(\.shape))")
        }
    }
}

/// `torch.linalg`. Every function accepts batches `[..., N, N]` (or `[..., M, N]`).
public enum Linalg {
    /// Eigen-decomposition of symmetric (Hermitian) matrices: ascending eigenvalues `[..., N]` and
    /// orthonormal eigenvectors as columns `[..., N, N]`. Reads the lower triangle unless `upper`.
    public static func eigh(_ t: Tensor, upper: Bool = false) throws -> (eigenvalues: Tensor, eigenvectors: Tensor) {
        var values: bd_tensor?, vectors: bd_tensor?
        try checkStatus(bd_linalg_eigh(t.handle, upper, &values, &vectors), "eigh of \(t.shape)")
        return (try .wrap(values), try .wrap(vectors))
    }

    /// Eigenvalues of general square matrices, complex `[..., N]`, in no particular order.
    public static func eigvals(_ t: Tensor) throws -> Tensor {
        try .wrap(bd_linalg_eigvals(t.handle), "eigvals of \(t.shape)")
    }

    /// `A = U diag(S) Vh` with singular values descending. `fullMatrices: false` gives the reduced
    /// factors `[..., M, K]`, `[..., K]`, `[..., K, N]` with K = min(M, N).
    public static func svd(_ t: Tensor, fullMatrices: Bool = true) throws -> (U: Tensor, S: Tensor, Vh: Tensor) {
        var u: bd_tensor?, s: bd_tensor?, vh: bd_tensor?
        try checkStatus(bd_linalg_svd(t.handle, fullMatrices, &u, &s, &vh), "svd of \(t.shape)")
        return (try .wrap(u), try .wrap(s), try .wrap(vh))
    }

    public static func inv(_ t: Tensor) throws -> Tensor { try .wrap(bd_linalg_inv(t.handle), "inv of \(t.shape)") }

    public static func det(_ t: Tensor) throws -> Tensor { try .wrap(bd_linalg_det(t.handle), "det of \(t.shape)") }

    /// X with `A X = B`; `B` is `[..., N]` or `[..., N, K]`.
    public static func solve(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        try .wrap(bd_linalg_solve(a.handle, b.handle), "solve \(a.shape) with \(b.shape)")
    }

    /// Matrix norm over the last two dimensions: "fro", "nuc", or a number as text ("2", "-2",
    /// "1", "-1", "inf", "-inf").
    public static func matrixNorm(_ t: Tensor, _ ord: String = "fro") throws -> Tensor {
        try .wrap(bd_linalg_matrix_norm(t.handle, ord), "matrixNorm '\(ord)' of \(t.shape)")
    }

    /// `(Σ |x|^ord)^(1/ord)` over `dims` (all when empty); `ord` may be `.infinity`.
    public static func vectorNorm(_ t: Tensor, ord: Double = 2, dims: [Int] = [], keepDim: Bool = false) throws -> Tensor {
        let values = dims.map(Int64.init)
        return try withUnsafePointerOrNil(values) { ptr in
            try .wrap(bd_linalg_vector_norm(t.handle, ord, ptr, Int32(values.count), keepDim),
                      "vectorNorm \(ord) of \(t.shape) over \(dims)")
        }
    }
}

/// A pointer to the array's elements, or NULL for an empty array (the bridge then ignores it).
@inline(__always)
func withUnsafePointerOrNil<R>(_ values: [Int64], _ body: (UnsafePointer<Int64>?) throws -> R) rethrows -> R {
    if values.isEmpty { return try body(nil) }
    return try values.withUnsafeBufferPointer { try body($0.baseAddress) }
}
