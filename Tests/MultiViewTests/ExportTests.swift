import BackdropTestSupport
import Foundation
import Geometry
import StableDiffusion
import Torch
import XCTest

@testable import MultiView

final class ExportTests: XCTestCase {
    /// The exported graphs, loaded back through LibTorch and by Python's torch.jit.load, give the
    /// Swift models' outputs and keep the parameter names.
    func testExportedGraphsReproduceTheSwiftModels() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let base = try TestSupport.tinyStableDiffusion()
        let pipeline = try StableDiffusionPipeline.load(from: base, scheduler: .ddim)
        let model = try MultiViewUNet(unet: pipeline.unet, latentSize: 8)
        try withNoGrad {  // trained-looking CAA weights: not the identity
            for block in model.cp_blocks_encoder + [model.cp_blocks_mid] + model.cp_blocks_decoder {
                try block.transformer.attn1.to_out.weight.normal_(std: 0.1, generator: Generator(seed: 1))
            }
        }
        let cameras = try mvdiffusionLayout(views: 8, imageSize: 64, yawOffset: 0)
        let written = try DeploymentExport.export(model: model, vae: pipeline.vae, textEncoder: pipeline.textEncoder,
                                                  layout: cameras, baseModel: base, to: folder)

        let g = try Generator(seed: 7)
        let latents = try Tensor.randn([16, 4, 8, 8], generator: g)
        let timestep = try Tensor([Int64(321)], shape: [1])
        let context = try Tensor.randn([16, 77, 32], generator: g)
        let ids = try Tensor.randint(0, 49408, [8, 77], generator: g)
        let vaeLatents = try latents.narrow(dim: 0, start: 0, length: 8)
        let expected = try withNoGrad {
            (try model(latents, timestep: timestep, encoderHiddenStates: context, layout: cameras),
             try pipeline.vae.decode(vaeLatents), try pipeline.textEncoder(ids))
        }
        let graphs: [(String, URL, [Tensor], Tensor, Module)] = [
            ("unet_multiview", written.unet, [latents, timestep, context], expected.0, model),
            ("vae_decoder", written.vaeDecoder, [vaeLatents], expected.1, pipeline.vae),
            ("text_encoder", written.textEncoder, [ids], expected.2, pipeline.textEncoder),
        ]
        var names: [String: [String]] = [:]
        for (name, url, inputs, reference, module) in graphs {
            let loaded = try ScriptModule(contentsOf: url)
            let output = try withNoGrad { try loaded.run("forward", inputs)[0] }
            let error = try TestSupport.maxAbsDifference(output, reference)
            print("\(name): LibTorch reload max-abs \(error)")
            XCTAssertLessThanOrEqual(error, 1e-4, name)
            XCTAssertEqual(Set(try loaded.namedParameters().map(\.0)), Set(module.namedParameters().map(\.0)), name)
            names[name] = module.namedParameters().map(\.0)
        }
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: written.manifest)) as! [String: Any]
        XCTAssertEqual(manifest["views"] as? Int, 8)
        XCTAssertEqual(manifest["view_resolution"] as? Int, 64)
        XCTAssertEqual(try SafetensorsFile(url: written.caa).names.count, model.caaStateDict().count)

        try Safetensors.save(["latents": latents, "timestep": timestep, "context": context, "vae_latents": vaeLatents,
                              "input_ids": ids, "unet_multiview.output": expected.0, "vae_decoder.output": expected.1,
                              "text_encoder.output": expected.2], to: folder.appendingPathComponent("io.safetensors"))
        try JSONSerialization.data(withJSONObject: names).write(to: folder.appendingPathComponent("names.json"))
        let python = try TestSupport.runPythonTool("multiview_reference.py", ["--check-export", folder.path])
        XCTAssertEqual(python.status, 0, python.output)
    }

    /// MVDiffusion's checkpoint layout (a Lightning dict read with the restricted unpickler) imports
    /// into Backdrop's keys and loads into the multi-view UNet.
    func testImportMVDiffusionCheckpoint() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let checkpoint = folder.appendingPathComponent("pano.ckpt")
        let run = try TestSupport.runPythonTool("multiview_reference.py", ["--fake-mvdiffusion-ckpt", checkpoint.path, "--widths", "32,64"])
        XCTAssertEqual(run.status, 0, run.output)
        let caa = try MVDiffusionCheckpoint.caaWeights(checkpoint)
        let expected = try SafetensorsFile(url: URL(fileURLWithPath: checkpoint.path + ".expected.safetensors"))
        XCTAssertEqual(Set(caa.keys), Set(expected.names))
        for name in expected.names { XCTAssertEqual(try TestSupport.maxAbsDifference(caa[name]!, expected.tensor(name)), 0, name) }
        let model = try MultiViewUNet(unet: try tinyUNet(), latentSize: 8)
        XCTAssertEqual(Set(model.caaStateDict().keys), Set(caa.keys))
        for (key, tensor) in model.caaStateDict() { XCTAssertEqual(tensor.shape, caa[key]!.shape, key) }

        let notMVDiffusion = folder.appendingPathComponent("other.safetensors")
        try Safetensors.save(["x": try Tensor.zeros([1])], to: notMVDiffusion)
        XCTAssertThrowsError(try MVDiffusionCheckpoint.caaWeights(notMVDiffusion))
    }
}
