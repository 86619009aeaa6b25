import BackdropTestSupport
import Foundation
import Geometry
import Parity
import Torch
import XCTest

@testable import MultiView

/// The CAA block against the float64 reference of tools/parity/caa.py (itself checked against
/// MVDiffusion's released code: 1.7e-5 max-abs at low PE frequencies).
final class CAATests: XCTestCase {
    static let cases = ["caa_ring_released_pe", "caa_ring_low_pe", "caa_all_low_pe_stride16", "caa_ring_six_views"]

    func folder(_ name: String) -> URL { TestSupport.fixture("parity/\(name)") }

    /// Key-grid positions, PE inputs and validity masks to 1e-4.
    func testGeometryMatchesReference() throws {
        for name in Self.cases {
            let inputs = try SafetensorsFile(url: folder(name).appendingPathComponent("inputs.safetensors"))
            let reference = try SafetensorsFile(url: folder(name).appendingPathComponent("geometry.safetensors"))
            let caseInfo = try JSONSerialization.jsonObject(with: Data(contentsOf: folder(name).appendingPathComponent("case.json"))) as! [String: Any]
            let args = caseInfo["args"] as! [String: Any]
            let x = try inputs.tensor("hidden_states")
            let layout = try ViewLayout(K: inputs.tensor("K"), R: inputs.tensor("R"), resolution: args["image_size"] as! Int)
            let g = try LevelGeometry(layout: layout, height: x.size(2), width: x.size(3),
                                      neighbours: NeighbourSet(rawValue: args["neighbours"] as! String)!)
            var worst = (grid: 0.0, pe: 0.0, maskMismatches: 0.0)
            for view in 0..<g.views {
                let grid = try g.keyPositions.select(dim: 0, index: view)
                let mask = try g.mask.select(dim: 0, index: view)
                let valid = try reference.tensor("view\(view).mask").to(dtype: .float32)
                worst.grid = max(worst.grid, try TestSupport.maxAbsDifference(grid, reference.tensor("view\(view).grid")))
                // PE inputs only matter where the sample is valid (invalid tokens are zeroed).
                let pe = try (g.peInput.select(dim: 0, index: view) - reference.tensor("view\(view).pe_input")) * valid.unsqueeze(-1)
                worst.pe = max(worst.pe, try pe.abs().amax().item())
                worst.maskMismatches += try (mask - valid).abs().sum().item()
            }
            print("\(name): key positions max-abs \(worst.grid), PE inputs \(worst.pe), mask mismatches \(worst.maskMismatches)")
            XCTAssertLessThan(worst.grid, 1e-4, name)
            XCTAssertLessThan(worst.pe, 1e-4, name)
            XCTAssertEqual(worst.maskMismatches, 0, name)
        }
    }

    func testBlockParityCases() throws {
        for name in Self.cases {
            let report = Parity.run(folder(name))
            for t in report.tensors { print("\(name) \(t.name): max-abs \(t.maxAbs) (atol \(report.atol))") }
            XCTAssertTrue(report.passed, "\(name): \(report.error ?? "") \(report.tensors.map { "\($0.name) \($0.maxAbs)" })")
        }
    }

    func testUntrainedBlockIsTheIdentityAndTrainable() throws {
        let views = 8, size = 32
        let layout = try mvdiffusionLayout(views: views, imageSize: size, yawOffset: 30)
        let g = try LevelGeometry(layout: layout, height: 4, width: 4, neighbours: .ring)
        let block = try CAABlock(channels: 64)
        let x = try Tensor.randn([2 * views, 64, 4, 4], generator: Generator(seed: 3))
        XCTAssertEqual(try TestSupport.maxAbsDifference(block(x, geometry: g), x), 0)
        // Gradients reach the zero-initialised output layers, so training can move away from identity.
        try block(x, geometry: g).square().sum().backward()
        XCTAssertGreaterThan(try block.transformer.attn1.to_out.weight.grad!.abs().amax().item(), 0)
        XCTAssertEqual(block.stateDict().count, 14, "MVDiffusion's 14 keys per block")
        XCTAssertEqual(Set(block.stateDict().keys), [
            "transformer.attn1.to_q.weight", "transformer.attn1.to_k.weight", "transformer.attn1.to_v.weight",
            "transformer.attn1.to_out.weight", "transformer.attn1.to_out.bias", "transformer.ff.net.0.proj.weight",
            "transformer.ff.net.0.proj.bias", "transformer.ff.net.2.weight", "transformer.ff.net.2.bias",
            "transformer.norm1.weight", "transformer.norm1.bias", "transformer.norm2.weight", "transformer.norm2.bias",
            "pe.freq_bands",
        ])
    }

    func testReleasedAndLimitedFrequencies() throws {
        let released = try CAABlock(channels: 320).pe.freq_bands
        XCTAssertEqual(released.shape, [1, 1, 80])
        XCTAssertEqual(try released.view([-1]).select(dim: 0, index: 79).item(), Foundation.pow(2, 79))
        let wide = try CAABlock(channels: 640).pe.freq_bands.view([-1])
        XCTAssertEqual(try wide.select(dim: 0, index: 1).item(), Foundation.pow(5000, 2.5 / 160), accuracy: 1e-6)
        let limited = try CAABlock(channels: 320, peMaxFrequency: 64).pe.freq_bands.view([-1])
        XCTAssertEqual(try limited.select(dim: 0, index: 79).item(), 64, accuracy: 1e-3)
        XCTAssertEqual(try limited.select(dim: 0, index: 0).item(), 1)
    }

    /// Yaw offsets move every view together: one cached geometry serves them all.
    func testCacheIsSharedAcrossYawOffsets() throws {
        let cache = CorrespondenceCache(imageSize: 64, neighbours: .ring)
        let layout0 = try mvdiffusionLayout(views: 8, imageSize: 64, yawOffset: 0)
        let layout1 = try mvdiffusionLayout(views: 8, imageSize: 64, yawOffset: 123)
        // A float32 round trip (the latent cache's storage) is the same layout too.
        let stored = try ViewLayout(K: layout1.intrinsicsTensor(), R: layout1.rotationsTensor(), resolution: 64)
        XCTAssertNotEqual(layout0, layout1)
        XCTAssertEqual(layout0.canonical(precision: 1e-6), layout1.canonical(precision: 1e-6))
        let a = try cache.geometry(layout0, height: 8, width: 8, device: .cpu)
        let b = try cache.geometry(layout1, height: 8, width: 8, device: .cpu)
        let c = try cache.geometry(stored, height: 8, width: 8, device: .cpu)
        XCTAssertEqual(cache.count, 1)
        XCTAssertTrue(a.sampleGrid === b.sampleGrid)
        XCTAssertTrue(a.sampleGrid === c.sampleGrid)
        let fresh = try LevelGeometry(layout: layout1, height: 8, width: 8, neighbours: .ring)
        XCTAssertLessThan(try TestSupport.maxAbsDifference(fresh.keyPositions, a.keyPositions), 1e-4)
        _ = try cache.geometry(layout0, height: 4, width: 4, device: .cpu)
        XCTAssertEqual(cache.count, 2)
        // Another field of view is another layout.
        _ = try cache.geometry(mvdiffusionLayout(views: 8, imageSize: 64, yawOffset: 0, fov: 100), height: 8, width: 8, device: .cpu)
        XCTAssertEqual(cache.count, 3)
    }
}

/// MVDiffusion's cameras: f = W/(2 tan(FOV/2)), principal point ((W−1)/2, (H−1)/2), yaw about +y.
func mvdiffusionCameras(views: Int, imageSize: Int, yawOffset: Double, fov: Double = 90) throws -> (Tensor, Tensor) {
    let f = 0.5 * Double(imageSize) / tan(fov * .pi / 360)
    let c = Double(imageSize - 1) / 2
    var k: [Double] = [], r: [Double] = []
    for i in 0..<views {
        let t = (yawOffset + 360 / Double(views) * Double(i)) * .pi / 180
        k += [f, 0, c, 0, f, c, 0, 0, 1]
        r += [cos(t), 0, sin(t), 0, 1, 0, -sin(t), 0, cos(t)]
    }
    return (try Tensor(k, shape: [views, 3, 3]), try Tensor(r, shape: [views, 3, 3]))
}

/// The same cameras as a view layout, built from the tensors (as a dataset file or parity case gives them).
func mvdiffusionLayout(views: Int, imageSize: Int, yawOffset: Double, fov: Double = 90) throws -> ViewLayout {
    let (K, R) = try mvdiffusionCameras(views: views, imageSize: imageSize, yawOffset: yawOffset, fov: fov)
    return try ViewLayout(K: K, R: R, resolution: imageSize)
}
