import Evaluation
import Foundation
import Torch

/// `inception`: the FID Inception from either weight file (pytorch-fid `.pth` or NVIDIA TorchScript).
enum InceptionComponents {
    static let runners: [String: ParityRunner] = ["inception": inception]

    /// args `resize` ("tf1" or "pytorch-fid"); `images` uint8 [N, 3, H, W] → `pool_2048` [N, 2048]
    /// and, when the weights have a classifier, `logits_unbiased` [N, 1008].
    static func inception(_ c: ParityCase) throws -> [String: Tensor] {
        let mode = try c.args.has("resize") ? c.args.string("resize") : "tf1"
        guard let resize = InceptionResize(rawValue: mode) else {
            throw ParityError("\(c.name): resize must be tf1 or pytorch-fid, found \(mode)")
        }
        let model = try InceptionV3.load(c.model)
        return try withInferenceMode {
            let pool = try model.features(resize.prepare(c.input("images"))).pool2048
            var out = ["pool_2048": pool]
            if model.fc != nil { out["logits_unbiased"] = try model.logits(pool, unbiased: true) }
            return out
        }
    }
}
