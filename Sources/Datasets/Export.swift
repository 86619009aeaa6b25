import Foundation
import Geometry
import Media
import Torch

/// Writes what training sees for one panorama: its views as PNG, the cameras and the prompts
/// (`backdrop dataset show`).
public enum SampleExport {
    /// Files written into `directory`: `view_0.png` … `view_{V-1}.png`, `cameras.json` (`CamerasFile`)
    /// and `prompts.txt`
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
        let camerasURL = directory.appendingPathComponent("cameras.json")
        let promptsURL = directory.appendingPathComponent("prompts.txt")
        do {
            try CamerasFile(layout: sample.layout, panorama: sample.panoramaID, yawOffset: sample.yawOffset).write(into: directory)
            try writeAtomically(to: promptsURL) { try Data((sample.prompts.joined(separator: "\n") + "\n").utf8).write(to: $0) }
        } catch {
            throw DatasetError(file: directory.path, "cannot write: \(failureReason(error))")
        }
        return written + [camerasURL, promptsURL]
    }
}
