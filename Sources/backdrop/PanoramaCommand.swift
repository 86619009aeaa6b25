import ArgumentParser
import Datasets
import Experiments
import Foundation
import Media
import MultiView
import StableDiffusion
import Torch

struct PanoramaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "panorama",
        abstract: "Generate a 360° panorama from text: 8 jointly denoised views, stitched.",
        discussion: """
            With --run, the run's config gives the base model and view size and its latest checkpoint the CAA \
            weights; --weights takes CAA weights directly (a checkpoint's weights.safetensors or \
            `backdrop import-mvdiffusion` output). --baseline samples every view independently with plain SD \
            (the paper's baseline). Writes view_<i>.png, panorama.png and cameras.json (K and camera-to-world R \
            per view, row-major).
            """
    )

    @Argument(help: "The prompt (used for every view unless --prompts is given).") var prompt: String
    @Option(name: .customLong("run"), help: "Run name in the registry (its latest checkpoint).") var runName: String?
    @Option(help: "CAA weights (safetensors).") var weights: String?
    @Option(help: "Diffusers model folder (default: the run's base model).") var model: String?
    @Flag(help: "No CAA: independent views (the baseline).") var baseline = false
    @Option(help: "A file with one prompt per view.") var prompts: String?
    @Option(help: "DDIM steps.") var steps: Int = 50
    @Option(help: "Classifier-free guidance scale.") var guidance: Double = 9
    @Option(help: "Seed of the initial noise.") var seed: UInt64 = 0
    @Option(help: "View size in pixels (default: the run's, else 512).") var resolution: Int?
    @Option(help: "Number of views.") var views: Int = 8
    @Option(help: "Run registry.") var registry: String = "results/runs.sqlite"
    @Option(help: "cpu, cuda, cuda:N or best.") var device: String = "best"
    @Option(help: "Output folder.") var out: String

    func run() throws {
        var base = model.map(expandEnvironment)
        var size = resolution
        var caa: [String: Tensor]?
        var neighbours = NeighbourSet.ring
        if let runName {
            let registry = try RunRegistry(url: URL(fileURLWithPath: self.registry))
            guard let record = try registry.latestRun(named: runName) else {
                throw ValidationError("no run named '\(runName)' in \(self.registry)")
            }
            let config = try JSONDecoder.snakeCase.decode(RunConfig.self, from: Data(record.config.utf8))
            base = base ?? expandEnvironment(config.model.base)
            size = size ?? config.dataset.resolution
            neighbours = NeighbourSet(rawValue: config.caa.neighbours) ?? .ring
            guard let checkpoint = try CheckpointStore(runDirectory: URL(fileURLWithPath: record.outputDir)).latest() else {
                throw ValidationError("run '\(runName)' has no checkpoint yet")
            }
            if !baseline { caa = try SafetensorsFile(url: checkpoint.weights).loadAll() }
        } else if let weights, !baseline {
            caa = try SafetensorsFile(url: URL(fileURLWithPath: weights)).loadAll()
        } else if !baseline {
            throw ValidationError("give --run or --weights (or --baseline for plain SD views)")
        }
        guard let base else { throw ValidationError("give --model (the diffusers folder)") }
        let perView = try prompts.map { file in
            try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        } ?? [prompt]

        let target = try Device(parsing: device)
        let pipeline = try StableDiffusionPipeline.load(from: URL(fileURLWithPath: base), scheduler: .ddim, device: target)
        let options = ViewOptions(count: views, fov: 90, yawStep: 360 / Double(views), resolution: size ?? 512)
        let generator = try PanoramaGenerator(pipeline: pipeline, caaWeights: caa, views: options, neighbours: neighbours)
        let progress = ProgressReporter(title: baseline ? "baseline views" : "panorama", total: steps)
        let result = try generator.generate(prompts: perView, steps: steps, guidanceScale: guidance, seed: seed) { done, _ in
            progress.update(done)
        }
        progress.finish()
        let folder = URL(fileURLWithPath: out)
        try writePanorama(result, to: folder)
        print("wrote \(views) views, panorama.png (\(result.panorama.shape[2])×\(result.panorama.shape[1])) and cameras.json to \(folder.path)")
    }
}

/// view_<i>.png, panorama.png and cameras.json.
func writePanorama(_ result: PanoramaGenerator.Result, to folder: URL) throws {
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    for i in 0..<result.views.shape[0] {
        try Image(tensor: result.views.select(dim: 0, index: i), range: .signed)
            .write(to: folder.appendingPathComponent("view_\(i).png"))
    }
    try Image(tensor: result.panorama, range: .signed).write(to: folder.appendingPathComponent("panorama.png"))
    let k = try result.intrinsics.to(dtype: .float64).toArray(Double.self)
    let r = try result.rotations.to(dtype: .float64).toArray(Double.self)
    let cameras: [[String: Any]] = result.yaws.indices.map { i in
        ["view": i, "yaw_deg": result.yaws[i], "K": Array(k[(9 * i)..<(9 * i + 9)]), "R": Array(r[(9 * i)..<(9 * i + 9)])]
    }
    let json = try JSONSerialization.data(withJSONObject: ["convention": "K 3×3 and camera-to-world R 3×3 row-major; x right, y down, z forward",
                                                           "views": cameras], options: [.prettyPrinted, .sortedKeys])
    try writeAtomically(to: folder.appendingPathComponent("cameras.json")) { try json.write(to: $0) }
}

extension JSONDecoder {
    static var snakeCase: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}
