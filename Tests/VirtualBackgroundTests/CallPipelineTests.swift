import BackdropTestSupport
import Foundation
import Geometry
import Media
import Torch
import VirtualBackground
import XCTest

/// A segmenter that answers with a known mask, and misses the person on chosen frames.
private final class ScriptedSegmenter: PersonSegmenter {
    let mask: Tensor
    let missedFrames: Set<Int>
    private(set) var calls = 0

    init(mask: Tensor, missedFrames: Set<Int> = []) {
        self.mask = mask
        self.missedFrames = missedFrames
    }

    func modelProbabilities(_ image: Tensor) throws -> Tensor {
        defer { calls += 1 }
        return missedFrames.contains(calls) ? try mask.zerosLike() : mask
    }

    func probabilities(_ image: Tensor) throws -> Tensor { try modelProbabilities(image) }
}

/// The whole call pipeline on a synthetic call over real media (the interior panorama as the real
/// room, the astronaut photo as the person, the courtyard panorama as the virtual room).
final class CallPipelineTests: XCTestCase {
    private func image(_ path: String) throws -> Tensor {
        try Image(contentsOf: TestSupport.asset(path)).rgb8().tensor(.uint8)
    }

    private func makeCall(frames: Int, camera: PinholeCamera) throws -> SyntheticCall {
        let photo = try image("photos/astronaut.png")
        let mask = try Segmenter(.selfie).probabilities(photo)
        return try SyntheticCall(room: image("panoramas/interior.png"), person: photo, personMask: mask, camera: camera,
                                 path: SyntheticCall.panningPath(frames: frames, yawAmplitude: 8))
    }

    /// The person stays, the room is replaced by the virtual room's viewport for the tracked
    /// rotation, the tracked rotation follows the true one, and a frame where the segmenter misses
    /// the person does not make them vanish.
    func testCompositesTheTrackedViewportBehindThePerson() throws {
        let camera = PinholeCamera(fov: 60, width: 320, height: 180)
        let frames = 24
        let call = try makeCall(frames: frames, camera: camera)
        let virtualRoom = try image("panoramas/courtyard.png")
        let segmenter = ScriptedSegmenter(mask: call.personMask, missedFrames: [12])
        var settings = CallSettings()
        settings.mask = MaskPostProcessing(threshold: 0.5, temporalSmoothing: 1, minBlobFraction: 0)
        settings.skipThreshold = 0
        let pipeline = try CallPipeline(background: virtualRoom, width: camera.width, height: camera.height,
                                        segmenter: segmenter, settings: settings)
        let renderer = try ViewportRenderer(panorama: virtualRoom, camera: camera)
        let person = try call.personMask.gt(0.5)
        var tracked: [Orientation] = []
        for index in 0..<frames {
            let input = try call.frame(index)
            let result = try pipeline.process(input)
            tracked.append(result.orientation)
            // Person pixels come from the camera frame; background pixels from the virtual room seen
            // from the tracked orientation.
            let output = try result.output.to(dtype: .float32)
            let personError = try ((output - input.to(dtype: .float32)).abs() * person).sum().item()
                / (try person.sum().item() * 3)
            XCTAssertLessThan(personError, 0.5, "frame \(index): the person changed (mean |Δ| \(personError))")
            let room = try renderer.render(result.orientation).to(dtype: .float32)
            let background = try result.maskAtFrameSize().lt(0.5)
            let roomError = try ((output - room).abs() * background).sum().item() / (try background.sum().item() * 3)
            XCTAssertLessThan(roomError, 1, "frame \(index): the background is not the room's viewport (mean |Δ| \(roomError))")
        }
        XCTAssertEqual(segmenter.calls, frames)
        let accuracy = TrackingAccuracy(truth: call.path, tracked: tracked)
        XCTAssertLessThan(accuracy.meanOrientationError, 0.5, "tracking: \(accuracy)")
        XCTAssertEqual(pipeline.timings.frames, frames)
        XCTAssertGreaterThan(pipeline.timings.milliseconds("viewport"), 0)
        // Every stage has one sample per frame; the median is the middle one (or the middle two's mean).
        for stage in CallTimings.stages {
            let samples = (pipeline.timings.samples[stage] ?? []).sorted()
            XCTAssertEqual(samples.count, frames, stage)
            let middle = samples.count % 2 == 1 ? samples[samples.count / 2] : (samples[samples.count / 2 - 1] + samples[samples.count / 2]) / 2
            XCTAssertEqual(pipeline.timings.medianMilliseconds(stage), 1000 * middle, accuracy: 1e-9, stage)
        }
    }

    func testRejectsFramesOfTheWrongSize() throws {
        let pipeline = try CallPipeline(background: Tensor.zeros([3, 32, 64], dtype: .uint8), width: 64, height: 48,
                                        segmenter: ScriptedSegmenter(mask: Tensor.zeros([1, 48, 64])))
        XCTAssertThrowsError(try pipeline.process(Tensor.zeros([3, 48, 63], dtype: .uint8))) { error in
            XCTAssertTrue("\(error)".contains("[3, 48, 64]"), "\(error)")
        }
    }

    /// `backdrop call` through the executable: a Y4M call in, a Y4M call and the rotations CSV out.
    func testCallCommandWritesTheVideoAndRotations() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let camera = PinholeCamera(fov: 60, width: 160, height: 96)
        let call = try makeCall(frames: 6, camera: camera)
        let input = folder.appendingPathComponent("in.y4m")
        let writer = try createVideoWriter(input, width: 160, height: 96, frameRate: 25)
        for i in 0..<6 { try writer.append(call.frame(i)) }
        try writer.finish()
        let output = folder.appendingPathComponent("out.y4m"), csv = folder.appendingPathComponent("rotations.csv")
        let run = try TestSupport.runBackdrop(["call", "--background", TestSupport.asset("panoramas/courtyard.png").path,
                                               "--input", input.path, "--out", output.path, "--rotations", csv.path])
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertTrue(run.output.contains("end to end"), run.output)
        let reader = try openVideo(output)
        XCTAssertEqual([reader.width, reader.height], [160, 96])
        XCTAssertEqual(reader.frameRate, 25)
        var frames = 0
        while try reader.nextFrame() != nil { frames += 1 }
        XCTAssertEqual(frames, 6)
        let lines = try String(contentsOf: csv, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 7)
        XCTAssertEqual(lines[1], "0,0.0000,0.0000,0.0000")

        // --output is the other name of --out.
        let bad = try TestSupport.runBackdrop(["call", "--background", folder.appendingPathComponent("missing.png").path,
                                               "--input", input.path, "--output", output.path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.output.contains("missing.png"), bad.output)
    }

    /// `backdrop demo-call` on a short clip: videos, strip, rotations and the report.
    func testDemoCallWritesItsOutputsAndReportsTrackingError() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let run = try TestSupport.runBackdrop(["demo-call", "--frames", "6", "--width", "128", "--height", "72",
                                               "--out", folder.path])
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertTrue(run.output.contains("tracking:") && run.output.contains("segmentation"), run.output)
        let ext = FFmpeg.isAvailable ? "mp4" : "y4m"
        for name in ["input.\(ext)", "call.\(ext)", "strip.png", "rotations.csv"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path), name)
        }
        let strip = try Image(contentsOf: folder.appendingPathComponent("strip.png"))
        XCTAssertEqual([strip.width, strip.height], [3 * 128, 4 * 72], "input | mask | output at four moments")
        let rows = try String(contentsOf: folder.appendingPathComponent("rotations.csv"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(rows.count, 7)
    }
}
