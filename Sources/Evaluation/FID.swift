import CHDF5
import Foundation
import Torch

/// Mean and covariance of Inception features, in float64 (fp32 statistics make FID depend on the
/// batch size — docs/metrics.md#fid).
public struct FeatureStatistics {
    /// `[D]`
    public let mean: Tensor
    /// `[D, D]`, rows = features (numpy `cov(rowvar=False)`, ddof 1)
    public let covariance: Tensor
    public let count: Int

    public init(mean: Tensor, covariance: Tensor, count: Int) throws {
        let d = try mean.size(0)
        guard mean.rank == 1, covariance.shape == [d, d] else {
            throw TorchError("statistics need a mean [D] and a covariance [D, D], got \(mean.shape) and \(covariance.shape)")
        }
        self.mean = try mean.to(dtype: .float64)
        self.covariance = try covariance.to(dtype: .float64)
        self.count = count
    }

    /// Statistics of features `[N, D]` (N ≥ 2).
    public init(features: Tensor) throws {
        guard features.rank == 2, try features.size(0) >= 2 else {
            throw TorchError("feature statistics need at least two feature rows [N, D], got \(features.shape)")
        }
        let x = try features.to(dtype: .float64)
        let n = try x.size(0)
        let mean = try x.mean(dim: 0)
        let centred = try x - mean
        let covariance = try centred.transpose(0, 1).matmul(centred) / Double(n - 1)
        try self.init(mean: mean, covariance: covariance, count: n)
    }

    /// A full-rank covariance needs more samples than dimensions; FID from fewer is biased and
    /// not comparable with published numbers.
    public var isRankDeficient: Bool { count <= mean.count }
}

/// Fréchet Inception Distance between two feature distributions:
/// ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁Σ₂), with tr √(Σ₁Σ₂) = Σ Re √λᵢ(Σ₁Σ₂) (torch-fidelity 0.4's
/// eigenvalue route, equal to scipy's `sqrtm` route). When the product is numerically singular
/// (a non-finite trace), both covariances get `eps`·I added and it is computed again, as pytorch-fid does.
public func frechetDistance(_ a: FeatureStatistics, _ b: FeatureStatistics, eps: Double = 1e-6) throws -> Double {
    guard a.mean.shape == b.mean.shape else {
        throw TorchError("FID of statistics with different feature sizes: \(a.mean.shape) and \(b.mean.shape)")
    }
    let difference = try a.mean - b.mean
    let meanTerm = try (difference * difference).sum().item()
    let traces = try a.covariance.diagonalSum() + b.covariance.diagonalSum()
    var rootTrace = try traceOfSquareRoot(a.covariance.matmul(b.covariance))
    if !rootTrace.isFinite {
        let offset = try Tensor.eye(try a.mean.size(0), dtype: .float64, device: a.mean.device) * eps
        rootTrace = try traceOfSquareRoot((a.covariance + offset).matmul(b.covariance + offset))
    }
    guard rootTrace.isFinite else { throw TorchError("FID is not finite: the covariances are degenerate") }
    return meanTerm + traces - 2 * rootTrace
}

/// Σ Re √λ over the eigenvalues λ of a square matrix.
func traceOfSquareRoot(_ matrix: Tensor) throws -> Double {
    try Linalg.eigvals(matrix).sqrt().real().sum().item()
}

extension Tensor {
    /// The trace of a square matrix.
    func diagonalSum() throws -> Double {
        let n = try size(0)
        return try (self * Tensor.eye(n, dtype: dtype, device: device)).sum().item()
    }
}

extension FeatureStatistics {
    /// Where the statistics came from; a cached file is only reused under the same provenance.
    public struct Provenance: Equatable, Sendable {
        /// `ContentHash` of the Inception weights file.
        public var featureExtractor: String
        public var resize: InceptionResize

        public init(featureExtractor: String, resize: InceptionResize) {
            (self.featureExtractor, self.resize) = (featureExtractor, resize)
        }
    }

    /// Writes `mu`, `sigma` and the provenance (`count`, `feature_extractor`, `resize`) to an HDF5
    /// file, atomically.
    public func save(to url: URL, provenance: Provenance) throws {
        let file = try HDF5File(creating: url)
        try file.write("mu", mean)
        try file.write("sigma", covariance)
        try file.setAttribute("count", "\(count)")
        try file.setAttribute("feature_extractor", provenance.featureExtractor)
        try file.setAttribute("resize", provenance.resize.rawValue)
        try file.commit()
    }

    /// Reads cached statistics; refuses a file made with other weights or another input path.
    ///
    /// A statistics file may come from anyone, and libhdf5 1.10 can hang or corrupt its heap on a
    /// crafted one (docs/security.md#known-findings), so it is parsed in a forked child process that
    /// gets `timeout` seconds; its crash or hang is an error naming the file.
    public static func load(_ url: URL, expecting provenance: Provenance, timeout: Double = 120) throws -> FeatureStatistics {
        var read = ch5_statistics()
        var error = [CChar](repeating: 0, count: 512)
        guard ch5_read_statistics_isolated(url.path, timeout, &read, &error, error.count) == 0 else {
            throw TorchError("\(url.path): \(String(cString: error))")
        }
        defer { ch5_free_statistics(&read) }
        let extractor = withUnsafeBytes(of: read.extractor) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let resize = withUnsafeBytes(of: read.resize) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard extractor == provenance.featureExtractor, resize == provenance.resize.rawValue else {
            throw TorchError("\(url.path): statistics were computed with Inception \(extractor) and resize " +
                             "\(resize), not \(provenance.featureExtractor) and \(provenance.resize.rawValue); " +
                             "delete the file to recompute")
        }
        let d = Int(read.dim)
        let mean = try Tensor(Array(UnsafeBufferPointer(start: read.mu, count: d)), shape: [d])
        let covariance = try Tensor(Array(UnsafeBufferPointer(start: read.sigma, count: d * d)), shape: [d, d])
        let statistics = try FeatureStatistics(mean: mean, covariance: covariance, count: Int(read.count))
        do {
            try statistics.validate()
        } catch let error as TorchError {
            throw TorchError("\(url.path): \(error.message)")
        }
        return statistics
    }

    /// Checks statistics read from a file (docs/security.md#non-finite-values): crafted ones gave
    /// `nan` or a negative FID. A covariance is symmetric positive semi-definite up to float64
    /// rounding, and the mean and covariance of fewer than two samples do not exist.
    public func validate() throws {
        guard count >= 2 else { throw TorchError("'count' is \(count): statistics need at least 2 samples") }
        guard try mean.isAllFinite(), try covariance.isAllFinite() else {
            throw TorchError("'mu' or 'sigma' holds NaN or infinite values")
        }
        let scale = max(try covariance.abs().amax().item(), 1e-300)
        let asymmetry = try (covariance - covariance.transpose(0, 1)).abs().amax().item()
        guard asymmetry <= 1e-9 * scale else {
            throw TorchError("'sigma' is not symmetric (largest |Σ − Σᵀ| = \(asymmetry), largest |Σ| = \(scale))")
        }
        let smallest = try Linalg.eigh(covariance).eigenvalues.amin().item()
        guard smallest >= -1e-6 * scale else {
            throw TorchError("'sigma' is not positive semi-definite (smallest eigenvalue \(smallest), largest |Σ| = \(scale))")
        }
    }
}
