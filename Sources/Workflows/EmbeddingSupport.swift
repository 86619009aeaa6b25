import Torch

/// The rows of `[N, E]` scaled to unit L2 norm, so a matrix product gives cosines.
func unitRows(_ x: Tensor) throws -> Tensor {
    try x / Linalg.vectorNorm(x, ord: 2, dims: [-1], keepDim: true)
}
