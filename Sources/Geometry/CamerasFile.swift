import Foundation
import Torch

/// `cameras.json`: the cameras of a set of views, written beside every set of views Backdrop makes
/// (`panorama`, `dataset show`, evaluation) and read back by anyone who wants to reproject them.
/// One schema (docs/datasets.md, cameras.json):
///
///     {"convention": "…", "resolution": 512, "panorama": "<scan>/<pano>", "yaw_offset_deg": 0,
///      "views": [{"view": 0, "yaw_deg": 0, "K": [9 numbers], "R": [9 numbers]}, …]}
///
/// K and the camera-to-world R are row-major; `panorama` and `yaw_offset_deg` are present when the
/// views come from a dataset panorama.
public struct CamerasFile: Codable, Equatable, Sendable {
    public static let convention = "K 3×3 and camera-to-world R 3×3, row-major; OpenCV camera axes (x right, y down, "
        + "z forward); R = Ry(yaw)·Rx(pitch)·Rz(roll); K = [[f, 0, cx], [0, f, cy], [0, 0, 1]] with "
        + "f = W / (2 tan(FOV / 2)), cx = (W − 1) / 2, cy = (H − 1) / 2"

    public struct View: Codable, Equatable, Sendable {
        public var view: Int
        public var yawDeg: Double
        public var K: Matrix3
        public var R: Matrix3

        enum CodingKeys: String, CodingKey { case view, yawDeg = "yaw_deg", K, R }
    }

    public var convention: String
    public var resolution: Int
    public var panorama: String?
    public var yawOffsetDeg: Double?
    public var views: [View]

    enum CodingKeys: String, CodingKey {
        case convention, resolution, panorama, yawOffsetDeg = "yaw_offset_deg", views
    }

    public init(layout: ViewLayout, panorama: String? = nil, yawOffset: Double? = nil) {
        convention = Self.convention
        resolution = layout.resolution
        self.panorama = panorama
        yawOffsetDeg = yawOffset
        views = zip(layout.intrinsics, layout.rotations).enumerated().map { i, camera in
            View(view: i, yawDeg: layout.yaws[i], K: camera.0, R: camera.1)
        }
    }

    /// The views' layout, in file order.
    public func layout() throws -> ViewLayout {
        try ViewLayout(intrinsics: views.map(\.K), rotations: views.map(\.R), resolution: resolution)
    }

    /// Writes `cameras.json` into `folder` atomically.
    public func write(into folder: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(self)
        try writeAtomically(to: folder.appendingPathComponent("cameras.json")) { try data.write(to: $0) }
    }

    /// Reads a `cameras.json` file (or the one in a folder); errors name the file.
    public static func read(_ url: URL) throws -> CamerasFile {
        let file = url.hasDirectoryPath || url.pathExtension != "json" ? url.appendingPathComponent("cameras.json") : url
        let data: Data
        do { data = try Data(contentsOf: file) } catch {
            throw TorchError("\(file.path): cannot read: \(failureReason(error))")
        }
        let decoded: CamerasFile
        do { decoded = try JSONDecoder().decode(CamerasFile.self, from: data) } catch {
            throw TorchError("\(file.path): not a Backdrop cameras.json: \(error)")
        }
        guard decoded.views.map(\.view) == Array(decoded.views.indices) else {
            throw TorchError("\(file.path): views must be numbered 0, 1, … in order")
        }
        return decoded
    }
}
