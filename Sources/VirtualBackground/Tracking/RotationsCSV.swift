import Foundation
import Geometry
import Torch

/// The rotations CSV that `backdrop track`, `call --rotations` and `demo-call` write: one row per
/// frame (frame 0 first), the camera's orientation relative to the first frame in degrees
/// (R = Ry(yaw)·Rx(pitch)·Rz(roll), camera axes x right, y down, z forward), 4 decimals, negative
/// zero printed as 0. Files are written atomically.
public enum RotationsCSV {
    public static let header = "frame,yaw_deg,pitch_deg,roll_deg"
    /// The demo call's: the true orientation, the tracked one and the angle between them.
    public static let comparisonHeader = "frame,true_yaw_deg,true_pitch_deg,true_roll_deg,yaw_deg,pitch_deg,roll_deg,error_deg"

    /// `header` and a row `frame,yaw,pitch,roll` per orientation.
    public static func text(_ orientations: [Orientation]) -> String {
        var text = header + "\n"
        for (i, o) in orientations.enumerated() { text += "\(i),\(format(o.yaw)),\(format(o.pitch)),\(format(o.roll))\n" }
        return text
    }

    /// `comparisonHeader` and a row per frame of both paths (the shorter one's length).
    public static func comparisonText(truth: [Orientation], tracked: [Orientation]) -> String {
        var text = comparisonHeader + "\n"
        for (i, (t, e)) in zip(truth, tracked).enumerated() {
            text += "\(i)," + [t.yaw, t.pitch, t.roll, e.yaw, e.pitch, e.roll, t.angle(to: e)].map(format).joined(separator: ",") + "\n"
        }
        return text
    }

    public static func write(_ orientations: [Orientation], to url: URL) throws {
        try write(text(orientations), to: url)
    }

    public static func writeComparison(truth: [Orientation], tracked: [Orientation], to url: URL) throws {
        try write(comparisonText(truth: truth, tracked: tracked), to: url)
    }

    /// Degrees with 4 decimals; −0.00004 prints as 0.0000, not −0.0000.
    static func format(_ degrees: Double) -> String { String(format: "%.4f", (degrees * 1e4).rounded() / 1e4 + 0) }

    private static func write(_ text: String, to url: URL) throws {
        try writeAtomically(to: url) { try Data(text.utf8).write(to: $0) }
    }
}
