// swift-tools-version:6.1
import Foundation
import PackageDescription

// LibTorch: Debian's `libtorch-dev` by default; `LIBTORCH=/path` switches to exactly the LibTorch at
// that path (an official libtorch zip or a PyTorch wheel's `torch/` folder, CPU or CUDA). Everything
// about the build follows the LibTorch it is pointed at (README, "GPU and current PyTorch"):
// - the C++ standard its headers need: C++17 for 1.x, C++20 for 2.x (read from its version header);
// - its libraries linked by their full paths, so that no same-named library elsewhere on the link
//   line (Debian's, under -L/usr/lib/...) can be picked instead;
// - its C++ ABI (`_GLIBCXX_USE_CXX11_ABI`), from its CMake config unless LIBTORCH_CXX11_ABI says;
// - `libtorch_cuda` (whose static initialisers register the CUDA kernels) only where it can load: when
//   LIBTORCH_CUDA=1, or by default when the NVIDIA driver is installed. A CPU machine can then load a
//   CUDA wheel's LibTorch, which needs only the CUDA runtime and CUPTI libraries beside it;
// - c10d's NCCL backend when libtorch_cuda is linked and the CUDA and NCCL headers are found, under
//   CUDA_HOME (default /usr/local/cuda) and NCCL_INCLUDE_DIR or NCCL_ROOT, as PyTorch's own build
//   names them (docs/distributed.md#nccl).
let environment = ProcessInfo.processInfo.environment
let libtorch = environment["LIBTORCH"].flatMap { $0.isEmpty ? nil : $0 }
let fileManager = FileManager.default

/// The LibTorch's major version from its version header (`TORCH_VERSION_MAJOR`).
func libtorchMajorVersion(include: String) -> Int? {
    for header in ["torch/headeronly/version.h", "torch/csrc/api/include/torch/version.h"] {
        guard let text = try? String(contentsOfFile: "\(include)/\(header)", encoding: .utf8) else { continue }
        for line in text.split(separator: "\n") where line.contains("#define TORCH_VERSION_MAJOR") {
            if let value = line.split(separator: " ").last.flatMap({ Int($0) }) { return value }
        }
    }
    return nil
}

let torchInclude = libtorch.map { "\($0)/include" } ?? "/usr/include"
let torchMajor = libtorchMajorVersion(include: torchInclude) ?? 1
let torchCxxStandard = torchMajor >= 2 ? "c++20" : "c++17"
let cxx11ABI: String = environment["LIBTORCH_CXX11_ABI"] ?? {
    let config = libtorch.map { "\($0)/share/cmake/Torch/TorchConfig.cmake" } ?? ""
    let text = (try? String(contentsOfFile: config, encoding: .utf8)) ?? ""
    return text.contains("_GLIBCXX_USE_CXX11_ABI=0") ? "0" : "1"
}()

/// `-DBACKDROP_NCCL` and the include folders of the CUDA runtime's and NCCL's headers, or [] when one is missing.
func ncclFlags() -> [String] {
    let cudaHome = environment["CUDA_HOME"] ?? environment["CUDA_PATH"] ?? "/usr/local/cuda"
    guard fileManager.fileExists(atPath: "\(cudaHome)/include/cuda_runtime_api.h") else { return [] }
    let candidates = [environment["NCCL_INCLUDE_DIR"], environment["NCCL_ROOT"].map { "\($0)/include" }, "\(cudaHome)/include", "/usr/include"]
    guard let nccl = candidates.compactMap({ $0 }).first(where: { fileManager.fileExists(atPath: "\($0)/nccl.h") }) else { return [] }
    return ["-DBACKDROP_NCCL", "-I\(cudaHome)/include", "-I\(nccl)"]
}

var torchIncludeFlags = ["-I\(torchInclude)/torch/csrc/api/include"]
var torchLinkFlags: [String] = []
var torchLibraries: [LinkerSetting] = []
if let root = libtorch {
    torchIncludeFlags = ["-I\(root)/include"] + torchIncludeFlags
    let lib = "\(root)/lib"
    torchLinkFlags = ["-Xlinker", "-rpath", "-Xlinker", lib]
    let driverPresent = ["/usr/lib/x86_64-linux-gnu/libcuda.so.1", "/usr/lib64/libcuda.so.1", "/usr/lib/libcuda.so.1",
                         "/usr/lib/aarch64-linux-gnu/libcuda.so.1", "/usr/lib/wsl/lib/libcuda.so.1"]
        .contains { fileManager.fileExists(atPath: $0) }
    let wantCUDA = environment["LIBTORCH_CUDA"].map { $0 == "1" } ?? driverPresent
    if wantCUDA, fileManager.fileExists(atPath: "\(lib)/libtorch_cuda.so") {
        torchLinkFlags += ["-Xlinker", "--no-as-needed", "-Xlinker", "\(lib)/libtorch_cuda.so", "-Xlinker", "--as-needed"]
        let nccl = ncclFlags()
        torchIncludeFlags += nccl
        // The NCCL path selects the rank's GPU through c10's CUDA library.
        if !nccl.isEmpty { torchLinkFlags += ["-Xlinker", "\(lib)/libc10_cuda.so"] }
    }
    // libtorch.so itself only pulls in libtorch_cpu (and, in CUDA builds, libtorch_cuda): the
    // bridge's symbols live in libtorch_cpu and libc10.
    torchLinkFlags += ["-Xlinker", "\(lib)/libtorch_cpu.so", "-Xlinker", "\(lib)/libc10.so"]
} else {
    torchLibraries = [.linkedLibrary("torch"), .linkedLibrary("torch_cpu"), .linkedLibrary("c10")]
}

let package = Package(
    name: "Backdrop",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Torch", targets: ["Torch"]),
        .library(name: "StableDiffusion", targets: ["StableDiffusion"]),
        .executable(name: "backdrop", targets: ["backdrop"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.19"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        .target(
            name: "CTorch",
            cxxSettings: [
                .unsafeFlags(torchIncludeFlags + ["-std=\(torchCxxStandard)", "-D_GLIBCXX_USE_CXX11_ABI=\(cxx11ABI)",
                                                  "-Wno-deprecated-declarations"]),
            ],
            linkerSettings: [.unsafeFlags(torchLinkFlags)] + torchLibraries + [.linkedLibrary("stdc++")]
        ),
        // libhdf5 (Debian's serial build): its type constants are run-time globals behind macros.
        .target(
            name: "CHDF5",
            cSettings: [.unsafeFlags(["-I/usr/include/hdf5/serial"])],
            linkerSettings: [.linkedLibrary("hdf5_serial")]
        ),
        .target(
            name: "Torch",
            dependencies: ["CTorch", "CHDF5", .product(name: "ZIPFoundation", package: "ZIPFoundation")]
        ),
        // libpng/libjpeg behind a C layer: their setjmp/longjmp error handling must not cross Swift frames.
        .target(
            name: "CImage",
            linkerSettings: [.linkedLibrary("png"), .linkedLibrary("jpeg")]
        ),
        // App support shared by the libraries' long work and the commands: asset paths, progress.
        .target(name: "Support"),
        .target(name: "Media", dependencies: ["Torch", "CImage"]),
        // SIMD pixel loops of the call pipeline (AVX2 chosen at run time, portable C otherwise).
        .target(name: "CKernels"),
        .target(name: "Geometry", dependencies: ["Torch"]),
        .target(name: "Datasets", dependencies: ["Torch", "Media", "Geometry", "Support"]),
        // ZIPFoundation's inflate reads OpenAI's gzipped CLIP vocabulary.
        .target(name: "StableDiffusion", dependencies: ["Torch", .product(name: "ZIPFoundation", package: "ZIPFoundation")]),
        // Metrics only (FID, IS, CLIP score, consistency); evaluating a run is Workflows' job.
        .target(name: "Evaluation", dependencies: ["Torch", "Media", "Geometry", "StableDiffusion", "CHDF5"]),
        .target(
            name: "Experiments",
            dependencies: ["Torch", "Geometry", "Support", .product(name: "Yams", package: "Yams"),
                           .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .target(name: "VirtualBackground", dependencies: ["Torch", "Media", "Geometry", "CKernels", "Support"]),
        .target(name: "MultiView", dependencies: ["Torch", "StableDiffusion", "Geometry", "Media", "Datasets", "Experiments", "Evaluation",
                                                  "Support"]),
        // Run-level jobs that combine the libraries: evaluating a run (generation, metrics, registry).
        .target(name: "Workflows", dependencies: ["Torch", "Media", "Geometry", "StableDiffusion", "Datasets", "Evaluation",
                                                  "Experiments", "MultiView", "Support"]),
        // The results site and the rating study over HTTP (`backdrop serve`), and as files (`backdrop report`).
        .target(name: "WebView", dependencies: ["Experiments", "Geometry", .product(name: "Hummingbird", package: "hummingbird"),
                                             .product(name: "HTTPTypes", package: "swift-http-types")],
                resources: [.copy("Assets")]),
        .target(name: "Parity", dependencies: ["Torch", "Geometry", "StableDiffusion", "Evaluation", "VirtualBackground", "MultiView",
                                               "Support"]),
        .executableTarget(
            name: "backdrop",
            dependencies: [
                "Torch", "StableDiffusion", "Parity", "Media", "Geometry", "Datasets", "Evaluation", "VirtualBackground",
                "Experiments", "MultiView", "Workflows", "Support", "WebView",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "backdrop-bench",
            dependencies: ["Torch", "Media", "Geometry", "StableDiffusion", "VirtualBackground", "Evaluation", "MultiView", "Support",
                           "Experiments", "WebView", .product(name: "Hummingbird", package: "hummingbird")],
            path: "Sources/BackdropBench"
        ),
        // The parsers of untrusted input under libFuzzer (`make fuzz`), or replaying inputs (tests).
        .executableTarget(
            name: "backdrop-fuzz",
            dependencies: ["Torch", "Media", "Datasets", "Experiments", "StableDiffusion", "VirtualBackground", "Evaluation", "Support"],
            path: "Sources/BackdropFuzz"
        ),
        // Fixture paths, the Python reference and fetched assets, for every test target.
        .target(name: "BackdropTestSupport", dependencies: ["Torch"], path: "Tests/TestSupport"),
        .testTarget(name: "TorchTests", dependencies: ["Torch", "BackdropTestSupport"]),
        .testTarget(name: "StableDiffusionTests", dependencies: ["StableDiffusion", "Parity", "BackdropTestSupport"]),
        .testTarget(name: "MediaTests", dependencies: ["Media", "Geometry", "Datasets", "BackdropTestSupport"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "Workflows", "Parity", "BackdropTestSupport"]),
        .testTarget(name: "ExperimentsTests", dependencies: ["Experiments", "BackdropTestSupport"]),
        .testTarget(name: "MultiViewTests", dependencies: ["MultiView", "Parity", "Workflows", "Media", "BackdropTestSupport"]),
        .testTarget(name: "WebViewTests", dependencies: ["WebView", "Experiments", "Media", "Torch", "BackdropTestSupport",
                                                      .product(name: "HummingbirdTesting", package: "hummingbird")]),
        .testTarget(name: "VirtualBackgroundTests", dependencies: ["VirtualBackground", "Parity", "BackdropTestSupport"]),
        // The command line itself: every command's options parsed in-process (the executable's
        // module is testable), and the failures that must reach a user as one line and an exit code.
        .testTarget(name: "CommandLineTests", dependencies: ["backdrop", "BackdropTestSupport", "Experiments", "WebView",
                                                           .product(name: "ArgumentParser", package: "swift-argument-parser")]),
    ],
    swiftLanguageModes: [.v5],
    cxxLanguageStandard: torchMajor >= 2 ? .cxx20 : .cxx17
)
