import Foundation
import Support
import Geometry
import Media
import Torch

/// The embedded default dataset: procedurally built rooms written in exactly Matterport3D's
/// `mp3d_skybox` layout (`Matterport3D`), so tests and the demo exercise the real reader:
///
///     <root>/train.npy, test.npy                                  [N, 6] unicode face paths
///     <root>/<scan>/matterport_skybox_images/<pano>_skybox{0..5}_sami.jpg   cube faces (`CubeFace`)
///     <root>/<scan>/blip3/<pano>_{0,45,…,315}.txt                 captions of the 8 views
///     (with `stitched`) <root>/<scan>/matterport_stitched_images/<pano>.png (S × 2S) and
///                       <root>/<scan>/blip3_stitched/<pano>.txt   PanFusion's layout
///
/// Room i depends only on (seed, i): a larger `count` with the same seed adds rooms without
/// changing the first ones. Five panoramas share a scan id, as rooms share a building; the test
/// split is the last ⌈count / 10⌉ panoramas (both splits hold the single room when count is 1).
public enum SyntheticRooms {
    public struct Options: Sendable {
        public var count: Int
        public var seed: UInt64
        /// Cube face size in pixels (Matterport's are 1024; faces at least as large as the views keep
        /// them sharp).
        public var faceSize: Int
        /// Also write PanFusion's stitched equirectangular images and captions.
        public var stitched: Bool
        public var jpegQuality: Int
        /// Resolution of the object buffers that captions are computed from.
        public var captionResolution: Int

        public init(count: Int, seed: UInt64 = 0, faceSize: Int = 256, stitched: Bool = false, jpegQuality: Int = 92,
                    captionResolution: Int = 48) {
            self.count = count
            self.seed = seed
            self.faceSize = faceSize
            self.stitched = stitched
            self.jpegQuality = jpegQuality
            self.captionResolution = captionResolution
        }
    }

    /// One rendered panorama.
    public struct Panorama {
        public let scan: String
        public let pano: String
        /// `[6, 3, S, S]` uint8, `CubeFace` order.
        public let faces: Tensor
        /// Captions of the views at yaw 0, 45, …, 315.
        public let captions: [String]
        /// A caption of the whole room.
        public let roomCaption: String
        /// `[3, S, 2S]` uint8 when requested.
        public let equirect: Tensor?
    }

    public static let panoramasPerScan = 5

    /// How a dataset folder was generated, written beside its splits as `synthrooms.json` so that a
    /// model trained on it can name its data (the release manifests do).
    public struct Recipe: Codable, Equatable, Sendable {
        public var seed: UInt64
        public var count: Int
        public var faceSize: Int
        public var jpegQuality: Int
        public var captionResolution: Int
    }

    public static let recipeFile = "synthrooms.json"

    /// The recipe of the dataset at `root`; nil for a folder without one (older or foreign datasets).
    public static func recipe(at root: URL) -> Recipe? {
        guard let data = try? Data(contentsOf: root.appendingPathComponent(recipeFile)) else { return nil }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try? decoder.decode(Recipe.self, from: data)
    }

    /// The wall colours captions name ("a pale blue wall"), in the generator's vocabulary.
    public static var wallColours: [String] { RoomGenerator.wallPaints.map(\.name) }

    /// Writes `options.count` rooms under `root`, reporting progress when given a reporter.
    @discardableResult
    public static func generate(into root: URL, options: Options, progress: ProgressReporter? = nil) throws -> [Matterport3D.Record] {
        guard options.count >= 1 else { throw DatasetError(file: root.path, "count must be at least 1") }
        guard (8...8192).contains(options.faceSize) else {
            throw DatasetError(file: root.path, "face size \(options.faceSize) is outside 8…8192")
        }
        var records: [Matterport3D.Record] = []
        for index in 0..<options.count {
            let panorama = try render(seed: options.seed, index: index, faceSize: options.faceSize,
                                      equirect: options.stitched, captionResolution: options.captionResolution)
            records.append(try write(panorama, into: root, quality: options.jpegQuality))
            progress?.update(index + 1)
        }
        let testCount = options.count == 1 ? 1 : max(1, (options.count + 9) / 10)
        let test = Array(records.suffix(testCount))
        let train = options.count == 1 ? records : Array(records.prefix(options.count - testCount))
        for (name, split) in [("train", train), ("test", test)] {
            try NpyWriter.write(strings: split.flatMap(\.faces), shape: [split.count, 6],
                                to: root.appendingPathComponent("\(name).npy"))
        }
        let recipe = Recipe(seed: options.seed, count: options.count, faceSize: options.faceSize,
                            jpegQuality: options.jpegQuality, captionResolution: options.captionResolution)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        try encoder.encode(recipe).write(to: root.appendingPathComponent(recipeFile), options: .atomic)
        progress?.finish()
        return records
    }

    /// The scan and panorama ids of room `index`: Matterport-like (11 alphanumerics, 32 hex digits).
    public static func identifiers(seed: UInt64, index: Int) -> (scan: String, pano: String) {
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        var g = SplitMix64(seed, 0x5343_414E, UInt64(index / panoramasPerScan))
        let scan = String((0..<11).map { _ in alphabet[Int(g.next() % UInt64(alphabet.count))] })
        var h = SplitMix64(seed, 0x5041_4E4F, UInt64(index))
        let pano = (0..<2).map { _ in String(format: "%016llx", h.next()) }.joined()
        return (scan, pano)
    }

    /// Renders room `index` of a dataset seeded with `seed`.
    public static func render(seed: UInt64, index: Int, faceSize: Int, equirect: Bool = false,
                              captionResolution: Int = 48) throws -> Panorama {
        let scene = RoomGenerator.make(seed: seed, index: index)
        let renderer = RoomRenderer(scene: scene)
        return try withNoGrad {
            // Faces: every face's rays in one batch.
            let camera = CubeMap.faceCamera(size: faceSize)
            let rays = try camera.rays().reshape([1, -1, 3])
            let world = try rays.matmul(CubeMap.faceRotations().mT()).reshape([-1, 3])  // [6·S², 3]
            let hits = try renderer.render(world)
            let faces = try Self.toImage(hits.rgb, [6, faceSize, faceSize])

            // Captions from object buffers of the eight views.
            let viewCamera = PinholeCamera(fov: 90, size: captionResolution)
            let viewRays = try viewCamera.rays().reshape([1, -1, 3])
            let yaws = (0..<8).map { Double($0) * 45 }
            let rotations = try Orientation.matrices(yaws.map { Orientation(yaw: $0) })
            let viewWorld = try viewRays.matmul(rotations.mT()).reshape([-1, 3])
            let ids: [Int64] = try renderer.render(viewWorld, shade: false).object.toArray()
            let perView = captionResolution * captionResolution
            let captions = (0..<8).map { v in
                RoomCaptions.view(scene, objects: Array(ids[(v * perView)..<((v + 1) * perView)]), width: captionResolution)
            }
            let visible = Set(ids.map(Int.init))
            let roomCaption = RoomCaptions.room(scene, visibleObjects: visible)

            var panorama: Tensor? = nil
            if equirect {
                let directions = try Equirect.directionGrid(width: 2 * faceSize, height: faceSize).reshape([-1, 3])
                panorama = try Self.toImage(renderer.render(directions).rgb, [1, faceSize, 2 * faceSize]).squeeze(dim: 0)
            }
            let (scan, pano) = identifiers(seed: seed, index: index)
            return Panorama(scan: scan, pano: pano, faces: faces, captions: captions, roomCaption: roomCaption,
                            equirect: panorama)
        }
    }

    /// `[N, 3]` float RGB in [0, 1] → `[B, 3, H, W]` uint8 for `shape` (B, H, W).
    private static func toImage(_ rgb: Tensor?, _ shape: [Int]) throws -> Tensor {
        guard let rgb else { throw DatasetError("renderer returned no colours") }
        return try (rgb * 255).round().clamp(min: 0, max: 255).to(dtype: .uint8)
            .reshape([shape[0], shape[1], shape[2], 3]).permute(0, 3, 1, 2).contiguous()
    }

    /// Writes one panorama's files; returns its split record.
    static func write(_ panorama: Panorama, into root: URL, quality: Int) throws -> Matterport3D.Record {
        let faceFolder = "\(panorama.scan)/matterport_skybox_images"
        var paths: [String] = []
        for face in 0..<6 {
            let path = "\(faceFolder)/\(panorama.pano)_skybox\(face)_sami.jpg"
            try Image(tensor: panorama.faces.select(dim: 0, index: face), range: .uint8)
                .write(to: root.appendingPathComponent(path), format: .jpeg(quality: quality))
            paths.append(path)
        }
        let captionFolder = root.appendingPathComponent(panorama.scan).appendingPathComponent("blip3")
        for (i, caption) in panorama.captions.enumerated() {
            try writeText(caption + "\n", to: captionFolder.appendingPathComponent("\(panorama.pano)_\(i * 45).txt"))
        }
        if let equirect = panorama.equirect {
            try Image(tensor: equirect, range: .uint8).write(
                to: root.appendingPathComponent("\(panorama.scan)/matterport_stitched_images/\(panorama.pano).png"))
            try writeText(panorama.roomCaption + "\n",
                          to: root.appendingPathComponent("\(panorama.scan)/blip3_stitched/\(panorama.pano).txt"))
        }
        return Matterport3D.Record(scan: panorama.scan, pano: panorama.pano, faces: paths)
    }

    static func writeText(_ text: String, to url: URL) throws {
        do { try writeAtomically(to: url) { try Data(text.utf8).write(to: $0) } } catch {
            throw DatasetError(file: url.path, "cannot write: \(failureReason(error))")
        }
    }
}
