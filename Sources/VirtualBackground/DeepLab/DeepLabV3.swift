import Foundation
import Torch

/// torchvision's DeepLabV3 semantic segmentation (`deeplabv3_resnet50`, `deeplabv3_resnet101`,
/// `deeplabv3_mobilenet_v3_large`) with torchvision's parameter names, so `torch.save(model.state_dict())`
/// files load unchanged: `backbone.…` (the trunk as `IntermediateLayerGetter` keeps it),
/// `classifier.…` (`DeepLabHead`) and optionally `aux_classifier.…` (`FCNHead`).
///
/// `callAsFunction` is torchvision's forward: features → head → logits upsampled bilinearly
/// (align_corners false) to the input size. Inference only (batch norms use running statistics).
public final class DeepLabV3: Module {
    /// What a state dict's keys say about the network.
    public struct Architecture: Equatable, Sendable, CustomStringConvertible {
        public enum Backbone: Equatable, Sendable {
            /// Bottleneck ResNet with these blocks per stage ([3, 4, 6, 3] ResNet-50, [3, 4, 23, 3] ResNet-101).
            case resnet(blocks: [Int])
            case mobileNetV3Large
        }

        public var backbone: Backbone
        /// Output channels of the classifier (21 for torchvision's VOC-labelled COCO weights).
        public var numClasses: Int
        /// The auxiliary FCN head is present (torchvision's released weights have it).
        public var hasAuxClassifier: Bool

        public init(backbone: Backbone, numClasses: Int = 21, hasAuxClassifier: Bool = true) {
            self.backbone = backbone
            self.numClasses = numClasses
            self.hasAuxClassifier = hasAuxClassifier
        }

        public static let resnet50 = Architecture(backbone: .resnet(blocks: [3, 4, 6, 3]))
        public static let resnet101 = Architecture(backbone: .resnet(blocks: [3, 4, 23, 3]))
        public static let mobileNetV3Large = Architecture(backbone: .mobileNetV3Large)

        /// torchvision's builder name, e.g. `deeplabv3_resnet101`.
        public var name: String {
            switch backbone {
            case .resnet(let blocks): return "deeplabv3_resnet\(3 * blocks.reduce(0, +) + 2)"
            case .mobileNetV3Large: return "deeplabv3_mobilenet_v3_large"
            }
        }

        public var description: String {
            "\(name) (\(numClasses) classes, \(hasAuxClassifier ? "with" : "without") aux classifier)"
        }

        /// Reads the architecture from state-dict key names and shapes: the backbone from its first
        /// convolution's key, ResNet block counts from the `layer<i>.<j>` indices, the class count
        /// from the classifier's last convolution, the aux head from any `aux_classifier.` key.
        /// - Parameter source: the file, for messages.
        public static func infer(from shapes: [String: [Int]], source: String) throws -> Architecture {
            let backbone: Backbone
            if shapes["backbone.conv1.weight"] != nil {
                var blocks: [Int] = []
                for stage in 1...4 {
                    let prefix = "backbone.layer\(stage)."
                    let indices = Set(shapes.keys.compactMap { key -> Int? in
                        guard key.hasPrefix(prefix) else { return nil }
                        return Int(key.dropFirst(prefix.count).prefix { $0 != "." })
                    })
                    guard let last = indices.max(), indices.count == last + 1 else {
                        throw DeepLabError(source, "no consecutive blocks under key \(prefix)0…, so not a torchvision ResNet backbone")
                    }
                    blocks.append(last + 1)
                }
                guard shapes["backbone.layer1.0.conv3.weight"] != nil else {
                    throw DeepLabError(source, "no key backbone.layer1.0.conv3.weight: a basic-block ResNet (18/34), which torchvision's DeepLabV3 does not use")
                }
                // torchvision builds DeepLabV3 on these two only; other counts mean blocks are missing.
                guard blocks == [3, 4, 6, 3] || blocks == [3, 4, 23, 3] else {
                    throw DeepLabError(source, "the keys backbone.layer1…4 hold \(blocks) bottlenecks, neither ResNet-50's [3, 4, 6, 3] nor ResNet-101's [3, 4, 23, 3] (a truncated state dict?)")
                }
                backbone = .resnet(blocks: blocks)
            } else if let stem = shapes["backbone.0.0.weight"] {
                let last = "backbone.\(MobileNetV3LargeBackbone.featureCount - 1).0.weight"
                guard stem == [16, 3, 3, 3], shapes[last]?.prefix(2) == [960, 160],
                      shapes["backbone.\(MobileNetV3LargeBackbone.featureCount).0.weight"] == nil else {
                    throw DeepLabError(source, "key backbone.0.0.weight \(stem) and \(last) \(shapes[last].map { "\($0)" } ?? "missing") are not MobileNetV3-Large's ([16, 3, 3, 3] and [960, 160, 1, 1]); only the Large variant is supported")
                }
                backbone = .mobileNetV3Large
            } else {
                let sample = shapes.keys.sorted().prefix(6).joined(separator: ", ")
                throw DeepLabError(source, "not a torchvision DeepLabV3 state dict: neither backbone.conv1.weight (ResNet) nor backbone.0.0.weight (MobileNetV3) is present; keys begin \(sample)")
            }
            guard let logits = shapes["classifier.4.weight"], logits.count == 4, logits[0] > 0 else {
                throw DeepLabError(source, "key classifier.4.weight (the DeepLabHead's class logits) is missing or not a [classes, 256, 1, 1] convolution")
            }
            let aux = shapes.keys.contains { $0.hasPrefix("aux_classifier.") }
            return Architecture(backbone: backbone, numClasses: logits[0], hasAuxClassifier: aux)
        }
    }

    public let backbone: any DeepLabBackbone
    public let classifier: DeepLabHead
    public let aux_classifier: FCNHead?
    public let architecture: Architecture

    /// A network with default-initialised weights (load a state dict into it).
    public init(_ architecture: Architecture) throws {
        guard architecture.numClasses > 0 else { throw SegmentationError("DeepLabV3 needs at least one class") }
        self.architecture = architecture
        switch architecture.backbone {
        case .resnet(let blocks): backbone = try ResNetBackbone(blockCounts: blocks)
        case .mobileNetV3Large: backbone = try MobileNetV3LargeBackbone()
        }
        classifier = try DeepLabHead(inChannels: backbone.outChannels, numClasses: architecture.numClasses)
        aux_classifier = architecture.hasAuxClassifier
            ? try FCNHead(inChannels: backbone.auxChannels, numClasses: architecture.numClasses) : nil
        super.init()
        eval()
    }

    /// Loads a `torch.save`d state dict (`.pth`) of one of torchvision's DeepLabV3 models, inferring
    /// which one from its keys. Checkpoints of torchvision's reference training script (the state
    /// dict under `model`) and of `DataParallel` (keys prefixed `module.`) are accepted too.
    public convenience init(contentsOf url: URL) throws {
        let file = url.path
        let state = Self.modelEntries(of: try TorchPickle.loadStateDict(url))
        let architecture = try Architecture.infer(from: state.mapValues(\.shape), source: file)
        try self.init(architecture)
        try load(state, source: file)
    }

    /// Copies `state` into the network, or throws naming `source` and every missing, unexpected or
    /// mis-shaped key and changes nothing. Missing `num_batches_tracked` counters are accepted, as
    /// PyTorch's BatchNorm accepts them from checkpoints older than the counter.
    public func load(_ state: [String: Tensor], source: String) throws {
        var state = state
        for (key, counter) in namedBuffers() where key.hasSuffix(".num_batches_tracked") && state[key] == nil {
            state[key] = counter
        }
        do {
            try loadStateDict(state, strict: true)
        } catch let error as TorchError {
            throw DeepLabError(source, "does not match torchvision's \(architecture) as inferred from its keys; \(error.message)")
        }
    }

    /// The logits upsampled to the input size: `[B, 3, H, W]` normalised → `out` `[B, classes, H, W]`,
    /// and the auxiliary head's `aux` when asked for and present.
    public func callAsFunction(_ x: Tensor, aux: Bool = false) throws -> (out: Tensor, aux: Tensor?) {
        guard x.rank == 4, x.shape[1] == 3 else {
            throw SegmentationError("DeepLabV3 takes normalised images [B, 3, H, W], got \(x.shape)")
        }
        let size = IntPair(x.shape[2], x.shape[3])
        let wantAux = aux && aux_classifier != nil
        let features = try backbone.features(x, aux: wantAux)
        let out = try F.interpolate(classifier(features.out), size: size, mode: .bilinear, alignCorners: false)
        guard wantAux, let auxFeatures = features.aux, let aux_classifier else { return (out, nil) }
        return (out, try F.interpolate(aux_classifier(auxFeatures), size: size, mode: .bilinear, alignCorners: false))
    }

    /// The model's own entries of a state dict that may be wrapped as a training checkpoint (under
    /// `model.`, as torchvision's reference scripts save, and/or `module.`, as `DataParallel` names
    /// them), prefixes removed; anything else unchanged.
    public static func modelEntries(of state: [String: Tensor]) -> [String: Tensor] {
        for prefix in ["", "model.", "module.", "model.module."] where state["\(prefix)classifier.4.weight"] != nil {
            guard !prefix.isEmpty else { return state }
            return Dictionary(uniqueKeysWithValues: state.compactMap { key, value in
                key.hasPrefix(prefix) ? (String(key.dropFirst(prefix.count)), value) : nil
            })
        }
        return state
    }
}

/// A DeepLabV3 weights file that cannot be used; names the file and the offending key.
public struct DeepLabError: Error, CustomStringConvertible {
    public let file: String
    public let message: String
    public init(_ file: String, _ message: String) {
        self.file = file
        self.message = message
    }
    public var description: String { "\(file): \(message)" }
}
