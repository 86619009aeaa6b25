import Foundation
import StableDiffusion
import Torch

/// transformers 4.40's `CLIPImageProcessor` for uint8 RGB images: Pillow resize (bicubic by
/// default, `PILResize`), centre crop, rescale by 1/255, normalise with the CLIP mean and std —
/// the same float32 arithmetic as its numpy code, so `pixel_values` agree to the last bit or so.
///
/// The defaults are OpenAI's (shortest side 224, crop 224×224); `load(from:)` reads a model
/// folder's `preprocessor_config.json` when there is one (e.g. 336 for ViT-L/14-336).
public struct CLIPImageProcessor: Sendable {
    /// Target of the resize: the shortest side to a length (aspect kept, the long side truncated
    /// as `int(size · long / short)`), or an exact size.
    public enum Size: Equatable, Sendable {
        case shortestEdge(Int)
        case exact(height: Int, width: Int)
    }

    public static let openAIMean: [Float] = [0.48145466, 0.4578275, 0.40821073]
    public static let openAIStd: [Float] = [0.26862954, 0.26130258, 0.27577711]

    /// nil skips the resize (`do_resize: false`).
    public var size: Size? = .shortestEdge(224)
    public var resample: PILFilter = .bicubic
    /// nil skips the crop (`do_center_crop: false`).
    public var cropSize: (height: Int, width: Int)? = (224, 224)
    /// nil skips the rescale (`do_rescale: false`).
    public var rescaleFactor: Double? = 1.0 / 255.0
    /// Per-channel mean and std; nil skips the normalisation (`do_normalize: false`).
    public var normalization: (mean: [Float], std: [Float])? = (openAIMean, openAIStd)

    public init() {}

    /// `directory/preprocessor_config.json` when present, else the OpenAI defaults.
    public static func load(from directory: URL) throws -> CLIPImageProcessor {
        let file = directory.appendingPathComponent("preprocessor_config.json")
        guard FileManager.default.fileExists(atPath: file.path) else { return CLIPImageProcessor() }
        return try CLIPImageProcessor(config: ConfigFile.object(from: file), file: file.path)
    }

    /// From the keys of a `preprocessor_config.json` (or `CLIPFeatureExtractor` config); missing
    /// keys take transformers' defaults, unknown keys are ignored.
    public init(config: [String: Any], file: String) throws {
        func flag(_ key: String) throws -> Bool {
            guard let value = config[key], !(value is NSNull) else { return true }
            guard let bool = value as? Bool else { throw LoadingError(file: file, key: key, "expected true or false, found \(value)") }
            return bool
        }
        func integer(_ value: Any, _ key: String) throws -> Int {
            guard let number = value as? NSNumber, number.doubleValue == number.doubleValue.rounded(), number.intValue > 0,
                  !(value is Bool) else {
                throw LoadingError(file: file, key: key, "expected a positive integer, found \(value)")
            }
            return number.intValue
        }
        func heightWidth(_ object: [String: Any], _ key: String) throws -> (Int, Int)? {
            guard let h = object["height"], let w = object["width"] else { return nil }
            return (try integer(h, key + ".height"), try integer(w, key + ".width"))
        }

        if try !flag("do_resize") {
            size = nil
        } else if let value = config["size"], !(value is NSNull) {
            if let object = value as? [String: Any] {
                if let edge = object["shortest_edge"] {
                    size = .shortestEdge(try integer(edge, "size.shortest_edge"))
                } else if let (h, w) = try heightWidth(object, "size") {
                    size = .exact(height: h, width: w)
                } else {
                    throw LoadingError(file: file, key: "size", "expected {\"shortest_edge\": N} or {\"height\": H, \"width\": W}")
                }
            } else {
                size = .shortestEdge(try integer(value, "size"))
            }
            // transformers' legacy flag: the shortest-edge value becomes a square target.
            if config["use_square_size"] != nil, case .shortestEdge(let s) = size { size = .exact(height: s, width: s) }
        }
        if let value = config["resample"], !(value is NSNull) {
            let code = try integer(value, "resample")
            guard let filter = PILFilter(rawValue: code) else {
                throw LoadingError(file: file, key: "resample", "unsupported PIL filter \(code) (1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)")
            }
            resample = filter
        }
        if try !flag("do_center_crop") {
            cropSize = nil
        } else if let value = config["crop_size"], !(value is NSNull) {
            if let object = value as? [String: Any] {
                guard let (h, w) = try heightWidth(object, "crop_size") else {
                    throw LoadingError(file: file, key: "crop_size", "expected N or {\"height\": H, \"width\": W}")
                }
                cropSize = (h, w)
            } else {
                let s = try integer(value, "crop_size")
                cropSize = (s, s)
            }
        }
        if try !flag("do_rescale") {
            rescaleFactor = nil
        } else if let value = config["rescale_factor"], !(value is NSNull) {
            guard let number = value as? NSNumber, !(value is Bool) else {
                throw LoadingError(file: file, key: "rescale_factor", "expected a number, found \(value)")
            }
            rescaleFactor = number.doubleValue
        }
        if try !flag("do_normalize") {
            normalization = nil
        } else {
            func channels(_ key: String, _ fallback: [Float]) throws -> [Float] {
                guard let value = config[key], !(value is NSNull) else { return fallback }
                if let number = value as? NSNumber, !(value is Bool) { return Array(repeating: number.floatValue, count: 3) }
                guard let list = value as? [NSNumber], list.count == 3 else {
                    throw LoadingError(file: file, key: key, "expected a number or 3 numbers, found \(value)")
                }
                return list.map(\.floatValue)
            }
            normalization = (try channels("image_mean", Self.openAIMean), try channels("image_std", Self.openAIStd))
        }
    }

    /// The size `resize` produces for an `height × width` input.
    public func resizedSize(height: Int, width: Int) -> (height: Int, width: Int) {
        switch size {
        case nil:
            return (height, width)
        case .exact(let h, let w):
            return (h, w)
        case .shortestEdge(let s):
            // transformers: int(s * long / short) in double precision, truncated.
            if width <= height { return (Int(Double(s * height) / Double(width)), s) }
            return (s, Int(Double(s * width) / Double(height)))
        }
    }

    /// Resize and centre crop: uint8 `[3, H, W]` → uint8 `[3, h, w]` (224×224 by default).
    public func resizeAndCrop(_ image: Tensor) throws -> Tensor {
        guard image.dtype == .uint8, image.rank == 3, image.shape[0] == 3, image.shape[1] > 0, image.shape[2] > 0 else {
            throw TorchError("CLIP image processor: expected a uint8 RGB image [3, H, W], got \(image.dtype) \(image.shape)")
        }
        let (h, w) = resizedSize(height: image.shape[1], width: image.shape[2])
        guard h > 0, w > 0 else { throw TorchError("CLIP image processor: image \(image.shape) resizes to an empty \(h)×\(w)") }
        var out = size == nil ? image : try PILResize.resize(image, height: h, width: w, filter: resample)
        if let (cropHeight, cropWidth) = cropSize {
            guard cropHeight <= h, cropWidth <= w else {
                throw TorchError("CLIP image processor: crop \(cropHeight)×\(cropWidth) is larger than the resized image \(h)×\(w)")
            }
            // transformers: top = (h − crop) // 2, likewise left.
            out = try out.narrow(dim: 1, start: (h - cropHeight) / 2, length: cropHeight)
                .narrow(dim: 2, start: (w - cropWidth) / 2, length: cropWidth)
        }
        return out
    }

    /// Rescale and normalise a resized uint8 `[..., 3, h, w]` batch into float32 pixel values.
    /// The rescale is a float64 product stored as float32 and the normalisation float32, as
    /// transformers' numpy code computes them.
    public func normalize(_ resized: Tensor) throws -> Tensor {
        var x: Tensor
        if let rescaleFactor {
            x = try (resized.to(dtype: .float64) * rescaleFactor).to(dtype: .float32)
        } else {
            x = try resized.to(dtype: .float32)
        }
        if let (mean, std) = normalization {
            let shape = [3, 1, 1]
            x = try (x - Tensor(mean, shape: shape).to(device: x.device)) / Tensor(std, shape: shape).to(device: x.device)
        }
        return x
    }

    /// `pixel_values`: uint8 RGB images `[3, H, W]` (any sizes) → float32 `[N, 3, h, w]`.
    public func callAsFunction(_ images: [Tensor]) throws -> Tensor {
        guard !images.isEmpty else { throw TorchError("CLIP image processor: no images") }
        return try normalize(Tensor.stack(images.map { try resizeAndCrop($0.to(device: .cpu)) }, dim: 0))
    }
}
