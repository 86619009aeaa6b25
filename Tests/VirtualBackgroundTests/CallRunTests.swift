import BackdropTestSupport
import Foundation
import Geometry
import Media
import Torch
@testable import VirtualBackground
import XCTest

/// A segmenter that sees the same person probability everywhere, on every frame.
private final class UniformSegmenter: PersonSegmenter {
    let probability: Double
    private(set) var calls = 0

    init(_ probability: Double) { self.probability = probability }

    func modelProbabilities(_ image: Tensor) throws -> Tensor {
        calls += 1
        return try Tensor.full([1, image.shape[image.rank - 2], image.shape[image.rank - 1]], probability, dtype: .float32)
    }

    func probabilities(_ image: Tensor) throws -> Tensor { try modelProbabilities(image) }
}

/// The runs behind `track`, `call`, `segment` and `demo-call` (VideoTracking, VideoCall, MaskExport,
/// DemoCall) and the rotations CSV they write, on small synthetic inputs: no fetched assets needed.
final class CallRunTests: XCTestCase {
    private func texture(_ height: Int, _ width: Int, seed: UInt64) throws -> Tensor {
        try Tensor.randint(0, 256, [3, height, width], dtype: .uint8, generator: Generator(seed: seed))
    }

    private func lines(_ url: URL) throws -> [String] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    // MARK: Rotations CSV

    func testRotationsCSVRowsRoundToFourDecimalsWithoutNegativeZero() throws {
        let text = RotationsCSV.text([Orientation(), Orientation(yaw: 1.234567, pitch: -0.00004, roll: -2.5)])
        XCTAssertEqual(text, "frame,yaw_deg,pitch_deg,roll_deg\n0,0.0000,0.0000,0.0000\n1,1.2346,0.0000,-2.5000\n")

        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("rotations.csv")
        try RotationsCSV.write([Orientation(yaw: 3)], to: url)
        XCTAssertEqual(try lines(url), ["frame,yaw_deg,pitch_deg,roll_deg", "0,3.0000,0.0000,0.0000"])
    }

    func testComparisonCSVHasBothPathsAndTheAngleBetweenThem() throws {
        let truth = [Orientation(), Orientation(yaw: 10), Orientation(yaw: 20)]
        let tracked = [Orientation(), Orientation(yaw: 9.5)]
        let rows = RotationsCSV.comparisonText(truth: truth, tracked: tracked).split(separator: "\n").map(String.init)
        XCTAssertEqual(rows, ["frame,true_yaw_deg,true_pitch_deg,true_roll_deg,yaw_deg,pitch_deg,roll_deg,error_deg",
                              "0,0.0000,0.0000,0.0000,0.0000,0.0000,0.0000,0.0000",
                              "1,10.0000,0.0000,0.0000,9.5000,0.0000,0.0000,0.5000"], "one row per frame of the shorter path")
    }

    // MARK: Tracking a video

    /// A still camera: every orientation is frame 0's, `maxFrames` stops early, the CSV is the report's.
    func testVideoTrackingOfAStillCameraStaysAtZeroAndWritesTheCSV() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let frames = folder.appendingPathComponent("frames")
        try FileManager.default.createDirectory(at: frames, withIntermediateDirectories: true)
        let still = try F.interpolate(texture(30, 40, seed: 1).to(dtype: .float32).unsqueeze(0), size: IntPair(120, 160),
                                      mode: .bilinear)[0].round().to(dtype: .uint8)
        for k in 0..<4 { try Image(tensor: still, range: .uint8).write(to: frames.appendingPathComponent("\(k).png"), format: .png) }
        let csv = folder.appendingPathComponent("rotations.csv")
        var progress: [Int] = []
        let report = try VideoTracking(input: frames, settings: TrackerSettings(fov: 60), maxFrames: 3, rotations: csv)
            .run(segmenter: nil) { done, _ in progress.append(done) }
        XCTAssertEqual(report.frames, 3)
        XCTAssertEqual(progress, [1, 2, 3])
        XCTAssertEqual([report.width, report.height], [160, 120])
        for orientation in report.orientations { XCTAssertLessThan(orientation.angle(to: Orientation()), 1e-3) }
        XCTAssertEqual(try String(contentsOf: csv, encoding: .utf8), RotationsCSV.text(report.orientations))
    }

    // MARK: Masks of a video

    /// A folder of frames: masks keep the frames' names, an unchanged frame is answered from the
    /// cache, post-processing thresholds and --raw keeps the probabilities.
    func testMaskExportNamesMasksAfterFramesAndSkipsUnchangedOnes() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let frames = folder.appendingPathComponent("frames")
        try FileManager.default.createDirectory(at: frames, withIntermediateDirectories: true)
        let a = try texture(24, 32, seed: 2), b = try texture(24, 32, seed: 3)
        for (name, frame) in [("a", a), ("b", a), ("c", b)] {
            try Image(tensor: frame, range: .uint8).write(to: frames.appendingPathComponent("\(name).png"), format: .png)
        }

        let masks = folder.appendingPathComponent("masks")
        let segmenter = UniformSegmenter(0.75)
        let report = try MaskExport(input: frames, output: masks, postProcessing: MaskPostProcessing(temporalSmoothing: 1))
            .run(segmenter: segmenter)
        XCTAssertFalse(report.isImage)
        XCTAssertEqual([report.frames, report.modelRuns, report.skippedFrames], [3, 2, 1])
        XCTAssertEqual(segmenter.calls, 2, "the repeated frame does not run the model")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: masks.path).sorted(), ["a.png", "b.png", "c.png"])
        let mask = try Image(contentsOf: masks.appendingPathComponent("c.png")).tensor(.uint8)
        XCTAssertEqual(mask.shape, [1, 24, 32])
        XCTAssertEqual(try mask.to(dtype: .float64).amin().item(), 255, "0.75 ≥ threshold 0.5: person everywhere")

        let raw = folder.appendingPathComponent("raw.png")
        let single = try MaskExport(input: frames.appendingPathComponent("a.png"), output: raw, postProcessing: nil)
            .run(segmenter: UniformSegmenter(0.75))
        XCTAssertTrue(single.isImage)
        let probabilities = try Image(contentsOf: raw).tensor(.uint8).to(dtype: .float64)
        XCTAssertEqual(try probabilities.amin().item(), 191, "round(0.75 · 255)")
        XCTAssertEqual(try probabilities.amax().item(), 191)
    }

    // MARK: A call over a video

    /// With the person everywhere the call passes the camera through; --limit stops early and the
    /// rotations CSV has a row per written frame.
    func testVideoCallWritesTheOutputAndRotationsUpToTheLimit() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let background = folder.appendingPathComponent("room.png")
        try Image(tensor: texture(64, 128, seed: 4), range: .uint8).write(to: background, format: .png)
        let input = folder.appendingPathComponent("in.y4m")
        let writer = try createVideoWriter(input, width: 64, height: 48, frameRate: 25)
        let frames = try (0..<5).map { try texture(48, 64, seed: 10 + UInt64($0)) }
        for frame in frames { try writer.append(frame) }
        try writer.finish()

        let output = folder.appendingPathComponent("out"), csv = folder.appendingPathComponent("rotations.csv")
        var settings = CallSettings()
        settings.mask = MaskPostProcessing(threshold: 0.5, temporalSmoothing: 1, minBlobFraction: 0)
        settings.skipThreshold = 0
        let report = try VideoCall(background: background, input: input, output: output, rotations: csv, limit: 3,
                                   settings: settings).run(segmenter: UniformSegmenter(1))
        XCTAssertEqual(report.frames, 3)
        XCTAssertEqual(report.timings.frames, 3)
        XCTAssertEqual(try lines(csv).count, 4)
        let written = try openVideo(output)
        let reread = try openVideo(input)
        var count = 0
        while let frame = try written.nextFrame() {
            let original = try XCTUnwrap(reread.nextFrame())
            XCTAssertLessThanOrEqual(try TestSupport.maxAbsDifference(frame, original), 1, "frame \(count): all person, no room")
            count += 1
        }
        XCTAssertEqual(count, 3)
    }

    // MARK: The demo call

    func testDemoCallStripFrames() {
        XCTAssertEqual(DemoCall.stripFrames(100), [0, 33, 66, 99])
        XCTAssertEqual(DemoCall.stripFrames(6), [0, 2, 4, 5])
        XCTAssertEqual(DemoCall.stripFrames(2), [0, 1])
    }

    /// The demo call on synthetic rooms with a segmenter that sees the person everywhere: every file,
    /// a strip whose mask column is all person and whose output column is the input, and a
    /// rotations CSV of the true path against the tracked one (held at 0: no background to track).
    func testDemoCallWritesVideosStripAndRotations() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let demo = DemoCall(room: try texture(64, 128, seed: 5), person: try texture(40, 30, seed: 6),
                            background: try texture(64, 128, seed: 7), frames: 4, width: 64, height: 48, fov: 60)
        var progress: [Int] = []
        let report = try demo.run(to: folder, segmenter: UniformSegmenter(1)) { progress.append($0) }
        XCTAssertEqual(progress, [1, 2, 3, 4])
        for file in report.files.all { XCTAssertTrue(FileManager.default.fileExists(atPath: file.path), file.lastPathComponent) }
        XCTAssertEqual(report.truth, SyntheticCall.panningPath(frames: 4))

        let strip = try Image(contentsOf: report.files.strip).rgb8().tensor(.uint8)
        XCTAssertEqual(strip.shape, [3, 4 * 48, 3 * 64], "input | mask | output at frames 0, 1, 2, 3")
        let (input, mask, output) = (try strip.narrow(dim: 2, start: 0, length: 64), try strip.narrow(dim: 2, start: 64, length: 64),
                                     try strip.narrow(dim: 2, start: 128, length: 64))
        XCTAssertEqual(try mask.to(dtype: .float64).amin().item(), 255)
        XCTAssertLessThanOrEqual(try TestSupport.maxAbsDifference(input, output), 1)

        let rows = try lines(report.files.rotations)
        XCTAssertEqual(rows.first, RotationsCSV.comparisonHeader)
        XCTAssertEqual(rows.count, 5)
        XCTAssertEqual(try String(contentsOf: report.files.rotations, encoding: .utf8),
                       RotationsCSV.comparisonText(truth: report.truth, tracked: report.tracked))
        for orientation in report.tracked { XCTAssertLessThan(orientation.angle(to: Orientation()), 1e-9) }
        XCTAssertEqual(report.accuracy.drift, report.truth[3].angle(to: report.tracked[3]), accuracy: 1e-12)
    }
}
