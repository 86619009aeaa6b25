import Foundation
import Media
import Torch

/// Writes what training sees for one panorama: its views as PNG, the cameras and the prompts
/// (`backdrop dataset show`).
public enum SampleExport {
    /// Files written into `directory`: `view_0.png` … `view_{V-1}.png`, `cameras.json` (per view:
    /// yaw in degrees, K and R as row-major 9-element arrays, R camera-to-world) and `prompts.txt`
    /// (one prompt per line, view order). Returns the written URLs.
    @discardableResult
    public static func write(_ sample: MultiViewSample, to directory: URL) throws -> [URL] {
        var written: [URL] = []
        let views = sample.images.shape[0]
        for v in 0..<views {
            let url = directory.appendingPathComponent("view_\(v).png")
            try Image(tensor: sample.images.select(dim: 0, index: v), range: .signed).write(to: url)
            written.append(url)
        }
        let k: [Float] = try sample.intrinsics.contiguous().toArray()
        let r: [Float] = try sample.rotations.contiguous().toArray()
        var cameras: [[String: Any]] = []
        for v in 0..<views {
            let kv: [Double] = k[(9 * v)..<(9 * v + 9)].map { Double($0) }
            let rv: [Double] = r[(9 * v)..<(9 * v + 9)].map { Double($0) }
            cameras.append(["view": v, "yaw": sample.yaws[v], "K": kv, "R": rv])
        }
        let document: [String: Any] = [
            "panorama": sample.panoramaID,
            "yaw_offset": sample.yawOffset,
            "convention": "R maps camera to world; OpenCV camera axes (x right, y down, z forward); R = Ry(yaw); "
                + "K = [[f, 0, cx], [0, f, cy], [0, 0, 1]] with f = W / (2 tan(FOV / 2)), cx = (W - 1) / 2",
            "views": cameras,
        ]
        let json = try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys])
        let camerasURL = directory.appendingPathComponent("cameras.json")
        let promptsURL = directory.appendingPathComponent("prompts.txt")
        do {
            try writeAtomically(to: camerasURL) { try json.write(to: $0) }
            try writeAtomically(to: promptsURL) { try Data((sample.prompts.joined(separator: "\n") + "\n").utf8).write(to: $0) }
        } catch {
            throw DatasetError(file: directory.path, "cannot write: \(error.localizedDescription)")
        }
        return written + [camerasURL, promptsURL]
    }
}
