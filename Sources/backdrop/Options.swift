import ArgumentParser
import Experiments
import Foundation
import Geometry
import MultiView
import Support
import Torch

// The options several commands share: one declaration, one meaning, one check each.

extension DeviceChoice: ExpressibleByArgument {
    public init?(argument: String) { try? self.init(parsing: argument) }
    public static var defaultCompletionKind: CompletionKind { .list(["best", "cpu", "cuda", "cuda:0"]) }
}

extension RunConfig.Split: ExpressibleByArgument {}

/// `--device`: where the models run.
struct DeviceOptions: ParsableArguments {
    @Option(help: "cpu, cuda, cuda:N or best (CUDA device 0 when there is one). Default: best; for a run, its training device.")
    var device: DeviceChoice?

    /// The device given, else `fallback` (a run's training device, or best).
    func resolved(default fallback: DeviceChoice = .best) throws -> Device { try (device ?? fallback).available() }
}

/// `--threads`: the CPU threads of the command's work: LibTorch's intra-op threads and Backdrop's
/// own parallel loops alike (default: LibTorch's choice, the cores).
struct ThreadOptions: ParsableArguments {
    @Option(help: "CPU threads for LibTorch and Backdrop's parallel loops (default: the cores).") var threads: Int?

    func validate() throws {
        if let threads, !(1...1024).contains(threads) {
            throw ValidationError("--threads must lie in 1…1024, not \(threads)")
        }
    }

    func apply() {
        if let threads { Runtime.threads = threads }
        Parallel.threads = Runtime.threads
    }
}

/// `--registry`: the SQLite run registry.
struct RegistryOptions: ParsableArguments {
    @Option(help: "Run registry (SQLite).") var registry: String = "results/runs.sqlite"

    var url: URL { URL(fileURLWithPath: registry) }

    /// The registry, which must exist (read-only commands never create one).
    func existing() throws -> RunRegistry {
        guard let registry = try existingIfAny() else {
            throw TorchError("no run registry at \(self.registry) (train a run first, or pass --registry)")
        }
        return registry
    }

    /// The registry, or nil when there is none at the path.
    /// Runs whose process died without a word are marked interrupted on the way.
    func existingIfAny() throws -> RunRegistry? {
        guard FileManager.default.fileExists(atPath: registry) else { return nil }
        let opened = try RunRegistry(url: url)
        try opened.markInterruptedRuns()
        return opened
    }

    /// A run by name or folder; without a registry only a folder resolves, and the error says where
    /// the registry was looked for.
    func run(_ nameOrFolder: String) throws -> Run {
        do {
            return try Run.resolve(nameOrFolder, registry: existingIfAny())
        } catch let error as TorchError where !FileManager.default.fileExists(atPath: registry) {
            throw TorchError("\(error.message) (looked for the registry at \(registry))")
        }
    }
}

/// `--run NAME|FOLDER [--step N]`: a trained run and one of its checkpoints.
struct RunOptions: ParsableArguments {
    @Option(name: .customLong("run"), help: "A run: its name in the registry (the newest of that name) or its folder.")
    var run: String
    @Option(help: "The checkpoint at this step (default: the latest).") var step: Int?
    @OptionGroup var registry: RegistryOptions

    var checkpoint: Run.CheckpointSelection { step.map { .step($0) } ?? .latest }

    func validate() throws {
        if let step, step < 0 { throw ValidationError("--step must be ≥ 0, not \(step)") }
    }

    func resolve() throws -> Run { try registry.run(run) }
}

/// Checks a field-of-view option with the one FOV check of the library.
func validateFOV(_ fov: Double, flag: String = "--fov") throws {
    do { try PinholeCamera.validate(fov: fov) } catch let error { throw ValidationError("\(flag): \(error)") }
}
extension NeighbourSet: ExpressibleByArgument {}
extension InitialNoise: ExpressibleByArgument {}

struct NoiseOptions: ParsableArguments {
    @Option(help: "How a panorama's views draw their initial latents: independent (the paper) or shared-mean (each view its own draw, all with view 0's per-channel mean; docs/models.md#initial-noise).")
    var noise: InitialNoise = .independent
}

/// Refuses an output path that names one of the command's inputs: writing it would destroy the
/// input before it is read (`call --input a.mp4 --out a.mp4`). Paths are compared after resolving
/// `..` and symbolic links.
func refuseOverwriting(_ inputs: [(flag: String, path: String?)], with output: String, flag: String = "--out") throws {
    func canonical(_ path: String) -> String {
        URL(fileURLWithPath: expandEnvironment(path)).standardizedFileURL.resolvingSymlinksInPath().path
    }
    let target = canonical(output)
    for (inputFlag, path) in inputs {
        if let path, canonical(path) == target {
            throw ValidationError("\(flag) \(output) is the \(inputFlag) file: writing it would destroy the input")
        }
    }
}

/// The range check of a numeric option; NaN and ±∞ lie in no range, so they are refused too.
func checkRange<Value: Comparable>(_ flag: String, _ value: Value, in range: ClosedRange<Value>, _ unit: String = "") throws {
    guard range.contains(value) else {
        throw ValidationError("\(flag) must lie in \(range.lowerBound)…\(range.upperBound)\(unit), not \(value)")
    }
}

/// Classifier-free guidance scales: beyond 100 the guided noise estimate leaves any range the
/// scheduler can bring back, and the image is black.
let guidanceRange = 0.0...100.0
/// Image and view sides in pixels.
let pixelSizeRange = 8...4096

/// `--height`/`--width` style sizes: in range and a multiple of 8 (the VAE's downsampling).
func validateLatentSize(_ flag: String, _ value: Int?) throws {
    guard let value else { return }
    try checkRange(flag, value, in: pixelSizeRange, " pixels")
    guard value % 8 == 0 else { throw ValidationError("\(flag) must be a multiple of 8, not \(value)") }
}
