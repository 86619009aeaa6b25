import Foundation
import Torch
import VirtualBackground
import XCTest

final class ScratchTests: XCTestCase {
    func testScratch() throws {
        let model = try TFLiteModel(contentsOf: URL(fileURLWithPath: NSHomeDirectory() + "/.cache/backdrop/assets/models/selfie_segmentation.tflite"))
        let graph = try TFLiteGraph(model: model)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "/tmp/small.u8")))
        let img = try bytes.withUnsafeBytes { try Tensor(bytes: $0, shape: [1, 256, 256, 3], dtype: .uint8) }
        let x = try (img.to(dtype: .float32) / 255).permute(0, 3, 1, 2).contiguous()
        let out = try graph([x])[0]
        let ref = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "/tmp/mp_small.f32")))
        let r = try ref.withUnsafeBytes { try Tensor(bytes: $0, shape: [1, 1, 256, 256], dtype: .float32) }
        print("shape", out.shape, "maxabs", try (out - r).abs().max().item(), "mean", try out.mean().item())
        Runtime.threads = 2
        for _ in 0..<3 { _ = try graph([x]) }
        let t0 = Date()
        for _ in 0..<20 { _ = try graph([x]) }
        print("ms", Date().timeIntervalSince(t0) / 20 * 1000)
    }
}
