import ArgumentParser
import Experiments
import Foundation
import MultiView
import Support
import Torch
import Workflows

struct PaperCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "paper",
        abstract: "The paper's Table I on the miniature, from shipped weights: CAA against independent views.",
        discussion: """
            Evaluates <release>/caa on <release>/sd against the same SD with independent views (the \
            baseline) on the first --panoramas test panoramas of the synthetic rooms: FID against the real \
            test views, the CLIP score of the in-domain CLIP (<release>/clip) and overlap-PSNR consistency \
            with its ratio to the ground truth's. The release is registered as run --name (status \
            "released"), so the rows land in the registry like any evaluation; table1.{md,csv,tex} (beside \
            the published rows, labelled as the miniature) and contact-sheet.png (per test prompt, the \
            baseline's panorama above CAA's; prompts in contact-sheet.txt) go to --out. --noise applies \
            to both systems alike.
            """
    )

    @Option(help: "The shipped models: a folder with sd/, clip/ and caa/ (`backdrop publish`).") var release: String = "models/miniature"
    @Option(help: "The synthetic-rooms dataset whose test split is evaluated.") var dataset: String = "datasets/miniature-rooms"
    @Option(help: "Test panoramas per system (8 views each).") var panoramas: Int = 125
    @Option(help: "DDIM steps.") var steps: Int = 50
    @Option(help: "Classifier-free guidance scale.") var guidance: Double = 5
    @Option(help: "Seed of scene 0's noise (scene i uses seed + i).") var seed: UInt64 = 0
    @OptionGroup var noise: NoiseOptions
    @Option(help: "FID Inception weights (default: the fetched NVIDIA archive).") var inception: String?
    @Option(help: "Images per Inception/CLIP forward pass.") var batchSize: Int = 16
    @Option(help: "Registry name of the release's run (default: miniature, or miniature-shared-mean with --noise shared-mean, so the two protocols' rows stay apart).")
    var name: String?
    @Option(name: [.customLong("out"), .customLong("output")], help: "Output folder.") var out: String = "results/paper"
    @OptionGroup var registry: RegistryOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard (1...100_000).contains(panoramas) else { throw ValidationError("--panoramas must lie in 1…100000, not \(panoramas)") }
        guard (1...1000).contains(steps) else { throw ValidationError("--steps must lie in 1…1000, not \(steps)") }
        try checkRange("--guidance", guidance, in: guidanceRange)
        guard (1...1024).contains(batchSize) else { throw ValidationError("--batch-size must lie in 1…1024, not \(batchSize)") }
        for part in ["sd/model_index.json", "clip/config.json", "caa/manifest.json"] {
            let file = URL(fileURLWithPath: expandEnvironment(release)).appendingPathComponent(part)
            guard FileManager.default.fileExists(atPath: file.path) else { throw ValidationError("--release: \(file.path) not found") }
        }
    }

    func run() throws {
        threads.apply()
        var options = MiniaturePaper.Options(
            release: URL(fileURLWithPath: expandEnvironment(release)), dataset: URL(fileURLWithPath: expandEnvironment(dataset)),
            panoramas: panoramas,
            inceptionWeights: try inception.map { URL(fileURLWithPath: expandEnvironment($0)) } ?? defaultInceptionWeights(),
            out: URL(fileURLWithPath: out))
        options.steps = steps
        options.guidance = guidance
        options.seed = seed
        options.batchSize = batchSize
        options.noise = noise.noise
        options.runName = name ?? (noise.noise == .independent ? "miniature" : "miniature-\(noise.noise.rawValue)")
        options.device = try device.resolved()
        try FileManager.default.createDirectory(at: options.out, withIntermediateDirectories: true)
        let report = try MiniaturePaper(options: options).run(registry: RunRegistry(url: registry.url))
        for (system, evaluated) in [("baseline", report.baseline), ("CAA", report.model)] {
            print("\(system): scenes \(evaluated.scenesReused) reused, \(evaluated.scenesGenerated) generated, in \(evaluated.viewsFolder.path)")
        }
        print(report.table.render(.md))
        print("wrote \(report.tableFiles.map(\.path).joined(separator: ", ")), \(report.contactSheet.path) and \(report.contactSheetPrompts.path)")
    }
}
