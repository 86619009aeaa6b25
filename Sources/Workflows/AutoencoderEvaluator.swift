import Datasets
import Experiments
import Foundation
import Media
import MultiView
import StableDiffusion
import Support
import Torch

/// How well an autoencoder run's VAE reconstructs the views of a split: each view (yaw offset 0) is
/// encoded, its posterior mean decoded, and the PSNR of the reconstruction against the view is taken
/// on [0, 1] pixels after both are clamped (MAX 1), per view, then averaged
/// (docs/models.md#miniature-sd).
public struct AutoencoderEvaluator {
    public struct Report: Sendable {
        /// Mean of the per-view PSNRs, dB.
        public let psnr: Double
        public let worstPSNR: Double
        public let views: Int
        /// Originals (top row) above reconstructions (bottom row) of the first panoramas.
        public let contactSheet: URL
    }

    public let run: Run
    public let split: RunConfig.Split
    public var limit: Int?
    public var device: Device = .cpu

    public init(run: Run, split: RunConfig.Split) {
        self.run = run
        self.split = split
    }

    /// The VAE the run wrote (`<run>/model/vae`).
    public func evaluate() throws -> Report {
        let vae = try AutoencoderKL.load(from: ModelFolder(url: run.modelDirectory).vae, device: device)
        let source = try run.dataset(split: split)
        let count = min(source.count, limit ?? source.count)
        guard count > 0 else { throw DatasetError(file: run.datasetRoot.path, "the \(split.rawValue) split is empty") }
        var psnrs: [Double] = []
        var sheet: [Tensor] = []
        let progress = ProgressReporter(title: "reconstruct \(run.config.name)", total: count)
        try withNoGrad {
            for index in 0..<count {
                let views = try source.sample(at: index, yawOffset: 0).images.to(device: device)
                let reconstruction = try vae.reconstruct(views).clamp(min: -1, max: 1)
                let x = try (views.clamp(min: -1, max: 1) + 1) / 2, y = try (reconstruction + 1) / 2
                let mse = try ((x - y) * (x - y)).to(dtype: .float64).mean(dims: [1, 2, 3]).toArray(Double.self)
                psnrs += mse.map { 10 * log10(1 / max($0, 1e-10)) }
                if sheet.count < 8 { sheet.append(try Tensor.cat([x.to(device: .cpu), y.to(device: .cpu)], dim: 2)) }
                progress.update(index + 1)
            }
        }
        progress.finish()
        let folder = run.evaluationDirectory(split: split.rawValue)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        // Each row: a panorama's views side by side, originals above reconstructions.
        let rows = try sheet.prefix(4).map { pair in try Tensor.cat((0..<pair.shape[0]).map { try pair.select(dim: 0, index: $0) }, dim: 2) }
        let contactSheet = folder.appendingPathComponent("reconstructions.png")
        try Tensor.cat(rows, dim: 1).writeImage(to: contactSheet)
        return Report(psnr: psnrs.reduce(0, +) / Double(psnrs.count), worstPSNR: psnrs.min() ?? .nan, views: psnrs.count,
                      contactSheet: contactSheet)
    }
}
