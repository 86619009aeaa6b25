import ArgumentParser
import Torch

@main
struct Backdrop: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backdrop",
        abstract: "Text-driven, camera-aware 360° virtual backgrounds for video calls.",
        subcommands: [Info.self, FIDCommand.self, CLIPScoreCommand.self, EvalCommand.self, TableCommand.self, ParityCommand.self, GenerateCommand.self, SegmentCommand.self, TrackCommand.self, CallCommand.self, DemoCallCommand.self, DatasetCommand.self, TrainCommand.self, PanoramaCommand.self, ExportCommand.self, ImportMVDiffusionCommand.self, CacheCommand.self]
    )
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the linked LibTorch: version, devices, threads and default dtype.",
        discussion: "With --threads, the thread count is set first, so the report shows what other commands would use."
    )

    @OptionGroup var threads: ThreadOptions

    func run() throws {
        threads.apply()
        let cuda = Runtime.cudaDeviceCount
        print("LibTorch      \(Runtime.libtorchVersion)")
        print("devices       cpu" + (cuda > 0 ? ", cuda × \(cuda)" : " (no CUDA in this LibTorch build or no GPU)"))
        print("best device   \(Device.best)")
        print("threads       \(Runtime.threads)")
        print("default dtype \(Runtime.defaultDType)")
    }
}
