// swift-tools-version:6.1
import Foundation
import PackageDescription

// LibTorch location. Debian's `libtorch-dev` by default; `LIBTORCH=/path/to/libtorch` switches to an
// official libtorch zip or a PyTorch wheel's `torch/` folder (CPU or CUDA).
let environment = ProcessInfo.processInfo.environment
let libtorch = environment["LIBTORCH"].flatMap { $0.isEmpty ? nil : $0 }
// Debian builds with the C++11 ABI; pre-cxx11 libtorch builds need LIBTORCH_CXX11_ABI=0.
let cxx11ABI = environment["LIBTORCH_CXX11_ABI"] ?? "1"

var torchIncludeFlags: [String] = []
var torchLinkFlags: [String] = []
if let root = libtorch {
    torchIncludeFlags = ["-I\(root)/include", "-I\(root)/include/torch/csrc/api/include"]
    torchLinkFlags = ["-L\(root)/lib", "-Xlinker", "-rpath", "-Xlinker", "\(root)/lib"]
    // CUDA kernels register themselves from static initialisers: keep libtorch_cuda even though
    // no symbol of it is referenced directly.
    if FileManager.default.fileExists(atPath: "\(root)/lib/libtorch_cuda.so") {
        torchLinkFlags += ["-Xlinker", "--no-as-needed", "-ltorch_cuda", "-Xlinker", "--as-needed"]
    }
} else {
    torchIncludeFlags = ["-I/usr/include/torch/csrc/api/include"]
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
    ],
    targets: [
        .target(
            name: "CTorch",
            cxxSettings: [
                .unsafeFlags(torchIncludeFlags + ["-std=c++17", "-D_GLIBCXX_USE_CXX11_ABI=\(cxx11ABI)", "-Wno-deprecated-declarations"]),
            ],
            linkerSettings: [
                .unsafeFlags(torchLinkFlags),
                .linkedLibrary("torch"),
                .linkedLibrary("torch_cpu"),
                .linkedLibrary("c10"),
                .linkedLibrary("stdc++"),
            ]
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
        .target(name: "Evaluation", dependencies: ["Torch", "Media", "Geometry", "StableDiffusion"]),
        .target(
            name: "Experiments",
            dependencies: ["Torch", "Geometry", "Support", .product(name: "Yams", package: "Yams"),
                           .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .target(name: "VirtualBackground", dependencies: ["Torch", "Media", "Geometry", "CKernels", "Support"]),
        .target(name: "MultiView", dependencies: ["Torch", "StableDiffusion", "Geometry", "Media", "Datasets", "Experiments", "Support"]),
        // Run-level jobs that combine the libraries: evaluating a run (generation, metrics, registry).
        .target(name: "Workflows", dependencies: ["Torch", "Media", "Geometry", "StableDiffusion", "Datasets", "Evaluation",
                                                  "Experiments", "MultiView", "Support"]),
        .target(name: "Parity", dependencies: ["Torch", "Geometry", "StableDiffusion", "Evaluation", "VirtualBackground", "MultiView",
                                               "Support"]),
        .executableTarget(
            name: "backdrop",
            dependencies: [
                "Torch", "StableDiffusion", "Parity", "Media", "Geometry", "Datasets", "Evaluation", "VirtualBackground",
                "Experiments", "MultiView", "Workflows", "Support",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "backdrop-bench",
            dependencies: ["Torch", "Media", "Geometry", "StableDiffusion", "VirtualBackground", "Evaluation", "MultiView", "Support"],
            path: "Sources/BackdropBench"
        ),
        // Fixture paths, the Python reference and fetched assets, for every test target.
        .target(name: "BackdropTestSupport", dependencies: ["Torch"], path: "Tests/TestSupport"),
        .testTarget(name: "TorchTests", dependencies: ["Torch", "BackdropTestSupport"]),
        .testTarget(name: "StableDiffusionTests", dependencies: ["StableDiffusion", "Parity", "BackdropTestSupport"]),
        .testTarget(name: "MediaTests", dependencies: ["Media", "Geometry", "Datasets", "BackdropTestSupport"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "Workflows", "Parity", "BackdropTestSupport"]),
        .testTarget(name: "ExperimentsTests", dependencies: ["Experiments", "BackdropTestSupport"]),
        .testTarget(name: "MultiViewTests", dependencies: ["MultiView", "Parity", "BackdropTestSupport"]),
        .testTarget(name: "VirtualBackgroundTests", dependencies: ["VirtualBackground", "Parity", "BackdropTestSupport"]),
    ],
    swiftLanguageModes: [.v5],
    cxxLanguageStandard: .cxx17
)
