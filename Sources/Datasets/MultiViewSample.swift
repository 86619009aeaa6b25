import Foundation
import Geometry
import Torch

/// A dataset problem, naming the panorama (and the file when one is at fault).
public struct DatasetError: Error, CustomStringConvertible, LocalizedError {
    /// `<scan>/<pano>`, or nil for problems with the dataset as a whole (a split file).
    public let panorama: String?
    public let file: String?
    public let message: String

    public init(panorama: String? = nil, file: String? = nil, _ message: String) {
        self.panorama = panorama
        self.file = file
        self.message = message
    }

    public var description: String {
        var parts: [String] = []
        if let panorama { parts.append("panorama \(panorama)") }
        if let file { parts.append(file) }
        return (parts.isEmpty ? "" : parts.joined(separator: ": ") + ": ") + message
    }

    public var errorDescription: String? { description }
}

/// How the views of one panorama are made (MVDiffusion's defaults).
public struct ViewOptions: Hashable, Sendable, Codable {
    /// Number of views around the horizon.
    public var count = 8
    /// Horizontal field of view in degrees.
    public var fov = 90.0
    /// Yaw between neighbouring views in degrees.
    public var yawStep = 45.0
    /// View width and height in pixels.
    public var resolution = 512
    /// Prepended to each view's caption.
    public var promptPrefix = "This is one view of a scene. "
    /// Skybox faces k ≥ 2 times the view size are box-filtered by k before the views are sampled:
    /// the anti-aliasing MVDiffusion gets from warping at face resolution and then resizing (a 2×2
    /// average for 1024-pixel faces and 512-pixel views). Filtering first is 3.5–5× faster and, on a
    /// real panorama cut into 1024-pixel faces, 53.6 dB PSNR away from filtering after.
    public var prefilterFaces = true

    public init(count: Int = 8, fov: Double = 90, yawStep: Double = 45, resolution: Int = 512,
                promptPrefix: String = "This is one view of a scene. ", prefilterFaces: Bool = true) {
        self.count = count
        self.fov = fov
        self.yawStep = yawStep
        self.resolution = resolution
        self.promptPrefix = promptPrefix
        self.prefilterFaces = prefilterFaces
    }

    public var camera: PinholeCamera { PinholeCamera(fov: fov, size: resolution) }

    /// The views' cameras with every yaw shifted by `yawOffset` degrees, rounded to float32 as the
    /// latent cache stores them (a sample and its cached entry then have equal layouts).
    public func layout(yawOffset: Double) throws -> ViewLayout {
        try ViewLayout(camera: camera, yaws: yaws(offset: yawOffset)).float32Rounded
    }

    /// Each view's yaw in degrees, in [0, 360).
    public func yaws(offset: Double) -> [Double] { (0..<count).map { yaw(view: $0, offset: offset) } }

    /// Yaw of view i in degrees, in [0, 360).
    public func yaw(view i: Int, offset: Double) -> Double {
        let yaw = (offset + yawStep * Double(i)).truncatingRemainder(dividingBy: 360)
        return yaw < 0 ? yaw + 360 : yaw
    }
}

/// What a training step needs for one panorama.
public struct MultiViewSample: @unchecked Sendable {
    /// `<scan>/<pano>`.
    public let panoramaID: String
    /// Position in the split.
    public let index: Int
    /// Degrees added to every view's yaw.
    public let yawOffset: Double
    /// Yaw of each view in degrees, in [0, 360).
    public let yaws: [Double]
    /// `[V, 3, H, W]` float32 in [−1, 1] (x / 127.5 − 1, as MVDiffusion feeds the VAE).
    public let images: Tensor
    /// The views' cameras: K (the same for every view) and camera-to-world R = Ry(yaw).
    public let layout: ViewLayout
    /// One prompt per view: prefix + caption of the nearest 45°.
    public let prompts: [String]

    public init(panoramaID: String, index: Int, yawOffset: Double, yaws: [Double], images: Tensor,
                layout: ViewLayout, prompts: [String]) {
        self.panoramaID = panoramaID
        self.index = index
        self.yawOffset = yawOffset
        self.yaws = yaws
        self.images = images
        self.layout = layout
        self.prompts = prompts
    }

    /// Stacks samples into a batch: images `[B, V, 3, H, W]`, layouts `[B]`, prompts `[B][V]`.
    public static func collate(_ samples: [MultiViewSample]) throws
        -> (images: Tensor, layouts: [ViewLayout], prompts: [[String]]) {
        (try Tensor.stack(samples.map(\.images)), samples.map(\.layout), samples.map(\.prompts))
    }
}

/// The caption angle MVDiffusion pairs with a view yaw: the nearest multiple of 45° (NumPy's
/// round-half-to-even), modulo 360.
public func captionDegree(forYaw yaw: Double) -> Int {
    let step = (yaw / 45).rounded(.toNearestOrEven)
    let degree = Int(step) * 45 % 360
    return degree < 0 ? degree + 360 : degree
}

/// A split of panoramas that can render any of them as multi-view samples. Implemented by the
/// Matterport3D reader (skybox and stitched layouts, and so the synthetic rooms); a latent cache can
/// sit behind the same indices and identifiers.
public protocol PanoramaSource: AnyObject {
    /// Number of panoramas in the split.
    var count: Int { get }
    /// Where the data come from, for messages.
    var location: String { get }
    var views: ViewOptions { get }
    /// `<scan>/<pano>` of panorama `index`.
    func identifier(at index: Int) -> String
    /// Decodes panorama `index` and renders its views with every yaw shifted by `yawOffset` degrees.
    /// Errors are `DatasetError`s naming the panorama.
    func sample(at index: Int, yawOffset: Double) throws -> MultiViewSample
}
