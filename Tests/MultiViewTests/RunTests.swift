import BackdropTestSupport
import Datasets
import Experiments
import Foundation
import Geometry
import StableDiffusion
import Torch
import XCTest

@testable import MultiView

/// One `Run` resolves a trained run for every command: by name or folder, with its own geometry,
/// checkpoints by step, and CAA weights loaded one strict way.
final class RunTests: XCTestCase {
    /// A run trained for 2 steps on 4 views of 100° (not the 8 × 90° that commands used to assume).
    func trainedRun(_ name: String = #function) throws -> (folder: URL, run: Run, registry: RunRegistry) {
        let folder = try TestSupport.temporaryDirectory(name)
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let model = try TestSupport.tinyStableDiffusion()
        _ = try SyntheticRooms.generate(into: folder.appendingPathComponent("rooms"), options: .init(count: 4, seed: 2, faceSize: 64))
        let config = try RunConfig.parse(yaml: """
            name: geometry-run
            model: {base: \(model.path)}
            dataset: {kind: synthrooms, root: rooms, resolution: 64, views: 4, fov: 100}
            caa: {neighbours: all, pe_max_frequency: 16}
            training: {epochs: 1, max_steps: 2, checkpoint_every: 1, seed: 1, device: cpu}
            output_dir: runs/geometry
            """, file: "geometry.yaml")
        let registry = try RunRegistry(url: folder.appendingPathComponent("runs.sqlite"))
        let run = Run(config: config, workingDirectory: folder)
        try Trainer(run: run, registry: registry).run()
        return (folder, run, registry)
    }

    func testRunResolvesByNameAndByFolder() throws {
        let (folder, trained, registry) = try trainedRun()
        let byName = try Run.resolve("geometry-run", registry: registry, workingDirectory: folder)
        let byFolder = try Run.resolve("runs/geometry", registry: registry, workingDirectory: folder)
        for run in [byName, byFolder] {
            XCTAssertEqual(run.config, trained.config)
            XCTAssertEqual(run.directory.standardizedFileURL.path, trained.directory.standardizedFileURL.path)
            XCTAssertNotNil(run.record, "the registry row is found both ways")
            XCTAssertEqual(try run.checkpoint().state.step, 2)
            XCTAssertEqual(try run.checkpoint(.step(1)).state.step, 1)
            XCTAssertEqual(try run.layout(), try ViewLayout.horizon(count: 4, fov: 100, resolution: 64))
        }
        XCTAssertThrowsError(try byName.checkpoint(.step(7))) { XCTAssertTrue("\($0)".contains("steps: 1, 2"), "\($0)") }
        XCTAssertThrowsError(try Run.resolve("nope", registry: registry, workingDirectory: folder)) {
            XCTAssertTrue("\($0)".contains("runs: geometry-run"), "\($0)")
        }
    }

    /// `panorama --run` generates with the run's own view count and field of view (it used to take 90°
    /// and --views' default of 8 whatever the run was trained with).
    func testPanoramaOfARunUsesTheRunsGeometry() throws {
        let (folder, run, _) = try trainedRun()
        let out = folder.appendingPathComponent("panorama")
        let (status, output) = try TestSupport.runBackdrop(
            ["panorama", "a room", "--run", "geometry-run", "--steps", "2", "--device", "cpu", "--registry", "runs.sqlite",
             "--out", out.path], in: folder)
        XCTAssertEqual(status, 0, output)
        let cameras = try CamerasFile.read(out)
        XCTAssertEqual(try cameras.layout(), try run.layout())
        XCTAssertEqual(cameras.views.count, 4)
        XCTAssertEqual(cameras.views[1].yawDeg, 90, accuracy: 1e-9)
        XCTAssertEqual(cameras.views[0].K.row0.x, PinholeCamera(fov: 100, size: 64).focal, accuracy: 1e-9)
        for i in 0..<4 { XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("view_\(i).png").path)) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("view_4.png").path))
        // Flags that would contradict the run are refused before any work.
        let (refused, message) = try TestSupport.runBackdrop(
            ["panorama", "a room", "--run", "geometry-run", "--model", "x", "--out", out.path], in: folder)
        XCTAssertNotEqual(refused, 0)
        XCTAssertTrue(message.contains("--run gives the model"), message)
    }

    /// CAA weights load one way: strictly, naming what does not fit and changing nothing (the export
    /// command force-unwrapped a missing key and crashed).
    func testCAAWeightsLoadStrictlyOrNotAtAll() throws {
        let (_, run, _) = try trainedRun()
        let checkpoint = try run.checkpoint()
        var weights = try SafetensorsFile(url: checkpoint.weights).loadAll()
        let model = try run.multiViewModel(unet: UNet2DConditionModelFixture.load(run), vaeScale: 8)
        let removed = "cp_blocks_mid.transformer.attn1.to_q.weight"
        weights[removed] = nil
        let before = try model.caaStateDict()["cp_blocks_encoder.0.transformer.attn1.to_q.weight"]!.clone()
        XCTAssertThrowsError(try model.loadCAA(weights)) { XCTAssertTrue("\($0)".contains(removed), "\($0)") }
        XCTAssertEqual(try TestSupport.maxAbsDifference(model.caaStateDict()["cp_blocks_encoder.0.transformer.attn1.to_q.weight"]!,
                                                         before), 0, "a refused load changes nothing")
        let report = try model.loadCAA(weights, strict: false)
        XCTAssertEqual(report.missing, [removed])

        // The export of a run whose checkpoint lacks a key fails with that key, not a crash.
        try Safetensors.save(weights, to: checkpoint.weights)
        XCTAssertThrowsError(try DeploymentExport.export(run: run, to: run.directory.appendingPathComponent("export"))) {
            XCTAssertTrue("\($0)".contains(removed), "\($0)")
        }
    }
}

/// The run's frozen UNet, as the trainer loads it.
enum UNet2DConditionModelFixture {
    static func load(_ run: Run) throws -> StableDiffusion.UNet2DConditionModel {
        try .load(from: run.baseModel.appendingPathComponent("unet"), dtype: .float32, device: .cpu)
    }
}
