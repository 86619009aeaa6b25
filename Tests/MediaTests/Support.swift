import BackdropTestSupport
import Foundation
import Media
import Torch
import XCTest

/// Helpers of the media, geometry and dataset tests.
enum MediaTestSupport {
    /// PSNR in dB of two tensors in [0, 1] (optionally only where `mask` is true).
    static func psnr(_ a: Tensor, _ b: Tensor, mask: Tensor? = nil) throws -> Double {
        var squared = try (a.to(dtype: .float64) - b.to(dtype: .float64)).square()
        var count = Double(squared.count)
        if let mask {
            let m = try mask.to(dtype: .float64).expand(squared.shape)
            squared = try squared * m
            count = try m.sum().item()
        }
        let mse = try squared.sum().item() / max(count, 1)
        return mse == 0 ? .infinity : 10 * log10(1 / mse)
    }

    /// A real equirectangular panorama (blender-data's CC0 HDRIs, tone-mapped by `make setup`),
    /// `[3, H, W]` float in [0, 1].
    static func panorama(_ name: String = "interior") throws -> Tensor {
        try Image(contentsOf: TestSupport.asset("panoramas/\(name).png")).rgb8().tensor(.unit)
    }

    /// scikit-image's astronaut photo (512 × 512 RGB).
    static func astronaut() throws -> Image {
        try Image(contentsOf: TestSupport.asset("photos/astronaut.png"))
    }
}
