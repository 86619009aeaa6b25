import Foundation
import Geometry
import Media
import Torch

/// Which files of an `mp3d_skybox` folder hold the pixels.
public enum MatterportLayout: String, Sendable, Codable, CaseIterable {
    /// MVDiffusion: six cube faces `<scan>/matterport_skybox_images/<pano>_skybox{0..5}_sami.jpg`.
    case skybox
    /// PanFusion: one equirectangular `<scan>/matterport_stitched_images/<pano>.png` (H × 2H).
    case stitched
}

/// Matterport3D in MVDiffusion's `mp3d_skybox` layout (docs/datasets.md#matterport3d):
///
///     <root>/train.npy, test.npy     [N, 6] unicode arrays of face paths relative to <root>:
///                                    <scan>/matterport_skybox_images/<pano>_skybox<i>_sami.jpg
///     <root>/<scan>/matterport_skybox_images/<pano>_skybox{0..5}_sami.jpg
///     <root>/<scan>/blip3/<pano>_{0,45,…,315}.txt      one caption per view, first line used
///     <root>/<scan>/matterport_stitched_images/<pano>.png   (PanFusion's stitched layout)
///
/// The i-th path of a row is face i (0 up, 1–4 horizontal at yaw 270, 0, 90, 180, 5 down;
/// `CubeFace`). The synthetic rooms are written in exactly this layout, so they go through this
/// reader too.
public final class Matterport3D: PanoramaSource {
    /// One row of a split file.
    public struct Record: Sendable, Equatable {
        public let scan: String
        public let pano: String
        /// The six face paths as the split file lists them (relative to the root).
        public let faces: [String]
        public var identifier: String { "\(scan)/\(pano)" }
    }

    public let root: URL
    public let split: String
    public let layout: MatterportLayout
    public let views: ViewOptions
    public let records: [Record]

    public var count: Int { records.count }
    public var location: String { root.path }

    /// Opens `<root>/<split>.npy`.
    public init(root: URL, split: String = "train", layout: MatterportLayout = .skybox,
                views: ViewOptions = ViewOptions()) throws {
        self.root = root
        self.split = split
        self.layout = layout
        self.views = views
        let file = root.appendingPathComponent("\(split).npy")
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw DatasetError(file: file.path, "split file not found: is \(root.path) an mp3d_skybox folder? "
                               + "(see datasets/README.md)")
        }
        let array = try NpyArray(contentsOf: file)
        let paths = try array.strings(name: file.path)
        guard array.shape.count == 2, array.shape[1] == 6 || array.shape[0] == 0 else {
            throw DatasetError(file: file.path, "expected an [N, 6] array of face paths, found shape \(array.shape)")
        }
        records = try stride(from: 0, to: paths.count, by: 6).enumerated().map { row, start in
            try Self.record(Array(paths[start..<(start + 6)]), row: row, file: file.path)
        }
    }

    /// Parses a row the way MVDiffusion does: the caption folder is the first path's folder with
    /// `matterport_skybox_images` replaced by `blip3`, and the panorama id is the file name up to
    /// its first underscore.
    static func record(_ faces: [String], row: Int, file: String) throws -> Record {
        let first = faces[0].split(separator: "/").map(String.init)
        guard first.count >= 2, let name = first.last, let pano = name.split(separator: "_").first else {
            throw DatasetError(file: file, "row \(row): '\(faces[0])' is not <scan>/matterport_skybox_images/<pano>_skybox0_sami.jpg")
        }
        return Record(scan: first[0], pano: String(pano), faces: faces)
    }

    public func identifier(at index: Int) -> String { records[index].identifier }

    // MARK: Files of a panorama

    /// The caption file of `record` at `degree` (0, 45, …, 315).
    public func captionURL(_ record: Record, degree: Int) -> URL {
        let folder = (record.faces[0] as NSString).deletingLastPathComponent
            .replacingOccurrences(of: "matterport_skybox_images", with: "blip3")
        return root.appendingPathComponent(folder).appendingPathComponent("\(record.pano)_\(degree).txt")
    }

    /// PanFusion's stitched equirectangular image of `record`.
    public func stitchedURL(_ record: Record) -> URL {
        root.appendingPathComponent(record.scan).appendingPathComponent("matterport_stitched_images")
            .appendingPathComponent("\(record.pano).png")
    }

    /// PanFusion's whole-panorama caption.
    public func stitchedCaptionURL(_ record: Record) -> URL {
        root.appendingPathComponent(record.scan).appendingPathComponent("blip3_stitched")
            .appendingPathComponent("\(record.pano).txt")
    }

    /// The first line of the caption at `degree`, trimmed (MVDiffusion keeps the trailing newline;
    /// the tokenizer strips it anyway).
    public func caption(at index: Int, degree: Int) throws -> String {
        let record = records[index]
        let url = captionURL(record, degree: degree)
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw DatasetError(panorama: record.identifier, file: url.path,
                               FileManager.default.fileExists(atPath: url.path) ? "caption is not UTF-8 text"
                                                                                 : "caption file missing")
        }
        let line = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return line.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The six faces `[6, 3, S, S]` uint8 RGB, in `CubeFace` order.
    public func faces(at index: Int) throws -> Tensor {
        let record = records[index]
        var tensors: [Tensor] = []
        for (i, path) in record.faces.enumerated() {
            let url = root.appendingPathComponent(path)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw DatasetError(panorama: record.identifier, file: url.path, "skybox face \(i) missing")
            }
            let image: Image
            do { image = try Image(contentsOf: url) } catch {
                throw DatasetError(panorama: record.identifier, file: url.path, "unreadable skybox face \(i): "
                                   + ((error as? MediaError)?.message ?? "\(error)"))
            }
            guard image.width == image.height else {
                throw DatasetError(panorama: record.identifier, file: url.path,
                                   "skybox face \(i) is \(image.width)×\(image.height), not square")
            }
            tensors.append(try image.rgb8().tensor(.uint8))
        }
        guard Set(tensors.map(\.shape)).count == 1 else {
            throw DatasetError(panorama: record.identifier, "skybox faces differ in size: \(tensors.map(\.shape))")
        }
        return try Tensor.stack(tensors)
    }

    /// The stitched equirectangular panorama `[3, H, W]` uint8 (PanFusion layout).
    public func equirect(at index: Int) throws -> Tensor {
        let record = records[index]
        let url = stitchedURL(record)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw DatasetError(panorama: record.identifier, file: url.path, "stitched panorama missing")
        }
        do { return try Image(contentsOf: url).rgb8().tensor(.uint8) } catch {
            throw DatasetError(panorama: record.identifier, file: url.path,
                               "unreadable stitched panorama: " + ((error as? MediaError)?.message ?? "\(error)"))
        }
    }

    // MARK: Samples

    public func sample(at index: Int, yawOffset: Double) throws -> MultiViewSample {
        guard records.indices.contains(index) else {
            throw DatasetError(file: location, "panorama index \(index) is outside the \(split) split (\(count) panoramas)")
        }
        let record = records[index]
        let yaws = views.yaws(offset: yawOffset)
        let layout = try views.layout(yawOffset: yawOffset)
        // Captions first: they are cheap, and a missing one should fail before any decoding.
        let prompts = try yaws.map { yaw in
            views.promptPrefix + (try caption(at: index, degree: captionDegree(forYaw: yaw)))
        }
        let images = try withNoGrad { try renderViews(index: index, rotations: layout.rotationsTensor()) }
        return MultiViewSample(panoramaID: record.identifier, index: index, yawOffset: yawOffset, yaws: yaws,
                               images: images, layout: layout,
                               prompts: prompts)
    }

    /// `[V, 3, H, W]` in [−1, 1].
    private func renderViews(index: Int, rotations: Tensor) throws -> Tensor {
        let camera = views.camera
        let rendered: Tensor
        switch layout {
        case .skybox:
            var faces = try self.faces(at: index).to(dtype: .float32)
            let factor = views.prefilterFaces ? Int((Double(faces.shape[2]) / Double(camera.width)).rounded()) : 1
            if factor >= 2 { faces = try F.avgPool2d(faces, kernel: IntPair(factor)) }
            rendered = try CubeMapSampler(faces: faces).perspective(camera: camera, rotations: rotations).squeeze(dim: 0)
        case .stitched:
            let sampler = try EquirectSampler(try equirect(at: index))
            rendered = try sampler.perspective(camera: camera, rotations: rotations).squeeze(dim: 0)
        }
        return try rendered.clamp(min: 0, max: 255) / 127.5 - 1
    }
}
