import BackdropTestSupport
import Foundation
import Torch
import XCTest

/// The binary runs on exactly the LibTorch the build was pointed at (`make test-libtorch2` sets
/// BACKDROP_EXPECT_LIBTORCH to the wheel's `torch/` folder and BACKDROP_EXPECT_LIBTORCH_VERSION):
/// its libtorch_cpu is that folder's, its version that one's, and a CUDA LibTorch's CUDA library is not
/// forced into a process that cannot load CUDA.
final class LibTorchBuildTests: XCTestCase {
    func testLoadedLibTorchIsTheOneTheBuildWasPointedAt() throws {
        let library = Runtime.libtorchLibrary
        XCTAssertTrue(library.contains("libtorch_cpu"), "the loaded LibTorch library: '\(library)'")
        let environment = ProcessInfo.processInfo.environment
        if let expected = environment["BACKDROP_EXPECT_LIBTORCH"], !expected.isEmpty {
            let root = URL(fileURLWithPath: expected).resolvingSymlinksInPath().path
            let loaded = URL(fileURLWithPath: library).resolvingSymlinksInPath().path
            XCTAssertTrue(loaded.hasPrefix(root + "/"), "loaded \(loaded), expected a library under \(root)")
        }
        if let version = environment["BACKDROP_EXPECT_LIBTORCH_VERSION"], !version.isEmpty {
            XCTAssertEqual(Runtime.libtorchVersion, version)
        }
    }

    /// Without an NVIDIA driver no CUDA library of LibTorch is mapped (a CUDA wheel's LibTorch runs
    /// on the CPU with only its CUDA runtime and CUPTI beside it).
    func testNoCUDALibraryWithoutADriver() throws {
        let driver = ["/usr/lib/x86_64-linux-gnu/libcuda.so.1", "/usr/lib64/libcuda.so.1", "/usr/lib/libcuda.so.1"]
            .contains { FileManager.default.fileExists(atPath: $0) }
        try XCTSkipIf(driver, "an NVIDIA driver is installed: linking libtorch_cuda is intended here")
        let maps = try String(contentsOfFile: "/proc/self/maps", encoding: .utf8)
        XCTAssertFalse(maps.contains("libtorch_cuda"), "libtorch_cuda is mapped in a process without a CUDA driver")
        XCTAssertNil(Runtime.cudaVersions)
        XCTAssertEqual(Runtime.cudaDeviceCount, 0)
    }
}
