import Foundation
import Torch

/// MVDiffusion's released `pano.ckpt` (a PyTorch Lightning checkpoint): its CAA blocks live under
/// `mv_base_model.cp_blocks_encoder.{0…3}.`, `mv_base_model.cp_blocks_mid.` and
/// `mv_base_model.cp_blocks_decoder.{0…3}.` with 14 keys each.
public enum MVDiffusionCheckpoint {
    static let prefix = "mv_base_model."

    /// The CAA tensors keyed as `MultiViewUNet.caaStateDict()` (prefix removed).
    public static func caaWeights(_ url: URL) throws -> [String: Tensor] {
        let state = try TorchPickle.loadStateDict(url)
        var caa: [String: Tensor] = [:]
        for (key, tensor) in state where key.hasPrefix(prefix + "cp_blocks_") {
            caa[String(key.dropFirst(prefix.count))] = tensor
        }
        guard !caa.isEmpty else {
            throw TorchError("\(url.lastPathComponent): no mv_base_model.cp_blocks_* keys; is this MVDiffusion's pano.ckpt?")
        }
        let blocks = Set(caa.keys.map { $0.split(separator: ".").prefix($0.hasPrefix("cp_blocks_mid") ? 1 : 2).joined(separator: ".") })
        for block in blocks {
            let count = caa.keys.filter { $0.hasPrefix(block + ".") }.count
            guard count == 14 else {
                throw TorchError("\(url.lastPathComponent): CAA block \(block) has \(count) keys, expected MVDiffusion's 14")
            }
        }
        return caa
    }
}
