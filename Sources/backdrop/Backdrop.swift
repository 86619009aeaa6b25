import ArgumentParser
import Foundation
import Torch

@main
struct Backdrop: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backdrop",
        abstract: "Text-driven, camera-aware 360° virtual backgrounds for video calls.",
        subcommands: [Info.self, FIDCommand.self, CLIPScoreCommand.self, EvalCommand.self, TableCommand.self, ParityCommand.self, GenerateCommand.self, SegmentCommand.self, TrackCommand.self, CallCommand.self, DemoCallCommand.self, DatasetCommand.self, TrainCommand.self, PanoramaCommand.self, ExportCommand.self, ImportMVDiffusionCommand.self, PublishCommand.self, PaperCommand.self, CacheCommand.self, ServeCommand.self, StudyCommand.self, ReportCommand.self]
    )

    /// Usage errors (bad flags, values out of range) exit 64 with the usage line; a failure while
    /// working exits 1 with one line naming what failed and why (docs/security.md#errors).
    static func main() {
        // A reader that goes away (ffmpeg that quit, `| head`) is a write error to report, not a
        // silent death by SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exit(withError: error)
        }
        do {
            try command.run()
        } catch let error where isArgumentParserError(error) {
            // `--help` and `help CMD` run ArgumentParser's own help command, which ends by throwing
            // its (internal) error type: only ArgumentParser can print that one.
            exit(withError: error)
        } catch {
            FileHandle.standardError.write(Data("Error: \(failureReason(error))\n".utf8))
            Foundation.exit(1)
        }
    }
}

/// Errors ArgumentParser prints itself: help requests, usage and validation errors, exit codes.
private func isArgumentParserError(_ error: Error) -> Bool {
    String(reflecting: type(of: error)).hasPrefix("ArgumentParser.")
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the linked LibTorch: where it is, version, C++ ABI, CUDA and cuDNN, devices, threads, default dtype.",
        discussion: "With --threads, the thread count is set first, so the report shows what other commands would use."
    )

    @OptionGroup var threads: ThreadOptions

    func run() throws {
        threads.apply()
        let cuda = Runtime.cudaDeviceCount
        print("LibTorch      \(Runtime.libtorchVersion)")
        print("library       \(Runtime.libtorchLibrary)")
        print("C++ ABI       " + (Runtime.usesCXX11ABI ? "C++11 (_GLIBCXX_USE_CXX11_ABI=1)" : "pre-C++11 (_GLIBCXX_USE_CXX11_ABI=0)"))
        if let versions = Runtime.cudaVersions {
            let cudnn = versions.cudnn.map { "\($0.0).\($0.1).\($0.2)" } ?? "none"
            print("CUDA          runtime \(versions.runtime.0).\(versions.runtime.1), cuDNN \(cudnn)")
        } else {
            print("CUDA          none loaded (a CPU LibTorch, or its CUDA library was not linked: see LIBTORCH_CUDA)")
        }
        print("devices       cpu" + (cuda > 0 ? ", cuda × \(cuda)" : " (no CUDA device usable)"))
        print("best device   \(Device.best)")
        print("threads       \(Runtime.threads)")
        print("default dtype \(Runtime.defaultDType)")
    }
}
