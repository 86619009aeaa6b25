import ArgumentParser
import Experiments
import Foundation
import Geometry
import MultiView
import StableDiffusion
import Support
import Torch

struct PanoramaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "panorama",
        abstract: "Generate a 360° panorama from text: jointly denoised views, stitched.",
        discussion: """
            With --run, the run gives everything: its base model, its view geometry (views, field of view, \
            resolution), its CAA settings and a checkpoint's weights (--step, default the latest). Without \
            a run, --weights takes CAA weights directly (a checkpoint's weights.safetensors, an export's \
            caa.safetensors or `backdrop import-mvdiffusion` output) for --model with the geometry of \
            --views, --fov and --resolution. --baseline samples every view independently with plain SD \
            (the paper's baseline). Writes view_<i>.png, panorama.png and cameras.json.
            """
    )

    @Argument(help: "The prompt (used for every view unless --prompts is given).") var prompt: String
    @Option(name: .customLong("run"), help: "A trained run: its name in the registry or its folder.") var runName: String?
    @Option(help: "With --run: the checkpoint at this step (default: the latest).") var step: Int?
    @Option(help: "Without --run: CAA weights (safetensors).") var weights: String?
    @Option(help: "Without --run: the diffusers model folder.") var model: String?
    @Option(help: "Without --run: ring (the released code) or all (the paper).") var neighbours: NeighbourSet = .ring
    @Option(help: "Without --run: number of views.") var views: Int = 8
    @Option(help: "Without --run: horizontal field of view of each view, degrees.") var fov: Double = 90
    @Option(help: "Without --run: view size in pixels.") var resolution: Int = 512
    @Flag(help: "No CAA: independent views (the baseline).") var baseline = false
    @Option(help: "A file with one prompt per view.") var prompts: String?
    @Option(help: "DDIM steps.") var steps: Int = 50
    @Option(help: "Classifier-free guidance scale.") var guidance: Double = 9
    @Option(help: "Seed of the initial noise.") var seed: UInt64 = 0
    @OptionGroup var noise: NoiseOptions
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var threads: ThreadOptions
    @Option(name: [.customLong("out"), .customLong("output")], help: "Output folder.") var out: String

    func validate() throws {
        if runName != nil {
            guard weights == nil, model == nil else { throw ValidationError("--run gives the model and weights: drop --weights and --model") }
        } else {
            guard model != nil else { throw ValidationError("give --run, or --model (with --weights, or --baseline)") }
            guard baseline || weights != nil else { throw ValidationError("give --weights (CAA weights), or --baseline for plain SD views") }
            guard step == nil else { throw ValidationError("--step selects a checkpoint of --run") }
        }
        guard views >= 2 else { throw ValidationError("--views must be at least 2, not \(views)") }
        try validateFOV(fov)
        guard resolution > 0, resolution % 8 == 0 else { throw ValidationError("--resolution must be a positive multiple of 8, not \(resolution)") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, not \(steps)") }
        try checkRange("--guidance", guidance, in: guidanceRange)
    }

    func run() throws {
        threads.apply()
        let source: PanoramaSource
        var target = try device.resolved()
        if let runName {
            let run = try registry.run(runName)
            source = .run(run, step.map { .step($0) } ?? .latest)
            target = try device.resolved(default: run.config.training.device)
        } else {
            source = .weights(model: URL(fileURLWithPath: expandEnvironment(model!)), caa: weights.map { URL(fileURLWithPath: $0) },
                              layout: try ViewLayout.horizon(count: views, fov: fov, resolution: resolution), neighbours: neighbours)
        }
        let perView = try prompts.map { file in
            try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        } ?? [prompt]
        let generator = try PanoramaGenerator.load(source, baseline: baseline, device: target)
        let progress = ProgressReporter(title: baseline ? "baseline views" : "panorama", total: steps)
        let result = try generator.generate(prompts: perView, steps: steps, guidanceScale: guidance, seed: seed, noise: noise.noise) { done, _ in
            progress.update(done)
        }
        progress.finish()
        let folder = URL(fileURLWithPath: out)
        try result.write(to: folder)
        print("wrote \(result.layout.count) views, panorama.png (\(result.panorama.shape[2])×\(result.panorama.shape[1])) " +
              "and cameras.json to \(folder.path)")
    }
}
