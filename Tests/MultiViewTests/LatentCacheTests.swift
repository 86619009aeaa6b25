import BackdropTestSupport
import Datasets
import Experiments
import Foundation
import Torch
import XCTest

@testable import MultiView

/// The HDF5 latent cache: built from a run config, readable by h5py, refused on a mismatching
/// attribute, and training from it repeats the losses of training with the VAE in the loop.
final class LatentCacheTests: XCTestCase {
    /// Synthetic rooms (7 training panoramas), the tiny model and a config with a 2-offset cache.
    func makeWorkspace(_ name: String = #function) throws -> (folder: URL, run: Run) {
        let folder = try TestSupport.temporaryDirectory(name)
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let model = try TestSupport.tinyStableDiffusion()
        _ = try SyntheticRooms.generate(into: folder.appendingPathComponent("rooms"), options: .init(count: 8, seed: 5, faceSize: 64))
        let yaml = """
            name: cache-test
            model: {base: \(model.path)}
            dataset: {kind: synthrooms, root: rooms, resolution: 64, views: 8, yaw_offset: random, latent_cache: cache/latents.h5, cache_offsets: 2}
            caa: {pe_max_frequency: 16}
            optimizer: {lr: 1.0e-3}
            schedule: {kind: cosine, interval: step, eta_min: 1.0e-5}
            training: {epochs: 2, batch_size: 1, checkpoint_every: 100, seed: 7, device: cpu}
            output_dir: run
            """
        let url = folder.appendingPathComponent("cache-test.yaml")
        try yaml.write(to: url, atomically: true, encoding: .utf8)
        return (folder, Run(config: try RunConfig.load(url), workingDirectory: folder))
    }

    func testCacheIsWrittenAtomicallyAndReadableByH5py() throws {
        let (folder, run) = try makeWorkspace()
        let url = try LatentCache.build(run: run)
        XCTAssertEqual(url.path, folder.appendingPathComponent("cache/latents.h5").path)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: url.deletingLastPathComponent().path)
        XCTAssertEqual(leftovers, ["latents.h5"], "no temporary file may remain")

        let cache = try LatentCache(url: url)
        XCTAssertEqual(cache.panoramaCount, 7)
        XCTAssertEqual(cache.offsetsPerPanorama, 2)
        XCTAssertEqual(cache.attributes["yaw_policy"], "random-set(2)")
        XCTAssertEqual(cache.attributes["model_hash"], try LatentCache.fingerprint(TestSupport.tinyStableDiffusion()))
        XCTAssertNotEqual(cache.attributes["model_hash"], try ContentHash.of(TestSupport.tinyStableDiffusion()))

        let (status, output) = try TestSupport.runPythonTool("hdf5_reference.py", ["--dump", url.path])
        XCTAssertEqual(status, 0, output)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        let datasets = try XCTUnwrap(json["datasets"] as? [String: [String: Any]])
        let attributes = try XCTUnwrap(json["attributes"] as? [String: String])
        XCTAssertEqual(Set(datasets.keys), ["latent_mean", "latent_logvar", "text_embeddings", "intrinsics", "rotations",
                                            "panorama_index", "yaw_offset", "valid", "token_ids"])
        for key in ["code_version", "model_hash", "resolution", "views", "fov", "yaw_policy", "prompt_prefix", "split", "seed"] {
            XCTAssertEqual(attributes[key], cache.attributes[key], key)
        }
        XCTAssertEqual(attributes["code_version"], "backdrop-cache-v2")
        XCTAssertEqual(attributes["prompt_prefix"], "This is one view of a scene. ")
        let mean = try XCTUnwrap(datasets["latent_mean"])
        XCTAssertEqual(mean["dtype"] as? String, "float32")
        let shape = try XCTUnwrap(mean["shape"] as? [Int])
        XCTAssertEqual(shape.prefix(2), [14, 8])
        XCTAssertEqual((mean["chunks"] as? [Int])?.first, 1, "one entry per chunk")
        XCTAssertEqual(mean["compression"] as? String, "gzip")
        XCTAssertEqual(datasets["panorama_index"]?["values"] as? [Double], (0..<7).flatMap { [Double($0), Double($0)] })

        // h5py's values of one entry equal what Swift reads back, and that entry's offset is one of
        // the panorama's configured offsets.
        let offsets = YawPolicy.randomSet(count: 2).offsets(seed: 7, index: 3)
        XCTAssertEqual(Array((datasets["yaw_offset"]?["values"] as? [Double] ?? [])[6...7]), offsets)
        let entry = try cache.entry(index: 3, yawOffset: offsets[1])
        let perEntry = entry.mean.count
        let pythonValues = Array((mean["values"] as? [Double] ?? [])[(7 * perEntry)..<(8 * perEntry)])
        let swiftValues = try entry.mean.to(dtype: .float64).flatten().toArray(Double.self)
        XCTAssertEqual(pythonValues.count, swiftValues.count)
        let worst = zip(pythonValues, swiftValues).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, 1e-12, "h5py vs Swift, first values \(pythonValues.prefix(3)) vs \(swiftValues.prefix(3))")
        XCTAssertThrowsError(try cache.entry(index: 3, yawOffset: 400)) { XCTAssertTrue("\($0)".contains("no entry"), "\($0)") }
    }

    /// The cache holds VAE latents and text embeddings: a new UNet or noise schedule (a text-to-image
    /// run's next stage) keeps it valid, a changed VAE does not.
    func testCacheFollowsOnlyTheModelPartsItHolds() throws {
        let (folder, run) = try makeWorkspace()
        let model = folder.appendingPathComponent("model")
        try FileManager.default.copyItem(at: TestSupport.tinyStableDiffusion(), to: model)
        var config = run.config
        config.model.base = model.path
        let copy = Run(config: config, workingDirectory: folder)
        try LatentCache.build(run: copy)
        let url = folder.appendingPathComponent("cache/latents.h5")
        func append(_ file: String) throws {
            let handle = try FileHandle(forWritingTo: model.appendingPathComponent(file))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data("\n".utf8))
            try handle.close()
        }
        try append("scheduler/scheduler_config.json")
        try append("unet/config.json")
        XCTAssertNoThrow(try LatentCache(url: url, run: copy, panoramaCount: 7))
        try append("vae/config.json")
        XCTAssertThrowsError(try LatentCache(url: url, run: copy, panoramaCount: 7)) { error in
            XCTAssertTrue("\(error)".contains("'model_hash'"), "\(error)")
        }
    }

    func testMismatchingAttributeIsRefusedNamingIt() throws {
        let (folder, run) = try makeWorkspace()
        try LatentCache.build(run: run)
        var other = run.config
        other.dataset.promptPrefix = "A view: "
        XCTAssertThrowsError(try Trainer(run: Run(config: other, workingDirectory: folder),
                                         registry: RunRegistry(url: folder.appendingPathComponent("runs.sqlite")))) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("'prompt_prefix'"), message)
            XCTAssertTrue(message.contains("'This is one view of a scene. ' in the cache"), message)
            XCTAssertTrue(message.contains("'A view: ' is expected"), message)
        }
        other = run.config
        other.dataset.cacheOffsets = 3
        XCTAssertThrowsError(try LatentCache(url: folder.appendingPathComponent("cache/latents.h5"),
                                             run: Run(config: other, workingDirectory: folder), panoramaCount: 7)) { error in
            XCTAssertTrue("\(error)".contains("'yaw_policy' is 'random-set(2)' in the cache but 'random-set(3)' is expected"), "\(error)")
        }
    }

    /// The same yaw offsets, generator and weights: the cached posterior gives the losses of the VAE
    /// in the loop (float32 mean/logvar; only the VAE's batch grouping differs).
    func testTrainingFromTheCacheRepeatsTheLossesOfTheVAEInTheLoop() throws {
        let (folder, run) = try makeWorkspace()
        func losses(_ tag: String) throws -> (losses: [Double], cached: Bool) {
            var c = run.config
            c.outputDir = "run-\(tag)"
            let trainer = try Trainer(run: Run(config: c, workingDirectory: folder),
                                      registry: RunRegistry(url: folder.appendingPathComponent("runs-\(tag).sqlite")))
            var losses: [Double] = []
            trainer.onStep = { losses.append($1) }
            trainer.stopAfterSteps = 3
            try trainer.run()
            return (losses, trainer.cache != nil)
        }
        let inLoop = try losses("vae")
        XCTAssertFalse(inLoop.cached)
        try LatentCache.build(run: run)
        let cached = try losses("cache")
        XCTAssertTrue(cached.cached)
        XCTAssertEqual(inLoop.losses.count, 3)
        XCTAssertEqual(cached.losses.count, 3)
        for (step, (a, b)) in zip(cached.losses, inLoop.losses).enumerated() {
            XCTAssertLessThanOrEqual(abs(a - b), 1e-6 * abs(b), "step \(step + 1): cache \(a), VAE in the loop \(b)")
        }
        print("cache vs VAE in the loop, first losses: \(cached.losses) vs \(inLoop.losses)")
    }
}
