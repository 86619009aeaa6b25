// The call pipeline stages of `make bench` (issue 6): per-stage milliseconds and end-to-end frames per
// second on a 1280×720 synthetic call (a real room panorama, the real person photo, a known pan), with
// the real selfie segmenter, on the benchmark's thread count; and the viewport renderer against the
// tensor-op path it replaces (EquirectSampler's grid_sample on the same LibTorch).
import Foundation
import Support
import Geometry
import Media
import Torch
import VirtualBackground

enum CallBench {
    static let frames = 90
    static let warmup = 10

    static func run(_ options: Options) throws {
        // As `backdrop call` runs: the Swift stages on the benchmark's threads, LibTorch (the selfie
        // model, the mask's tensor ops) on one.
        let threads = Runtime.threads
        Parallel.threads = threads
        Runtime.threads = 1
        defer { (Runtime.threads, Parallel.threads) = (threads, nil) }
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first ?? "?"
        print("\ncall pipeline: 1280×720, FOV 60°, selfie segmenter on one LibTorch thread, \(threads) threads for the other stages (load average \(load))")
        let assets = Assets.root
        func image(_ path: String) throws -> Tensor {
            try Image(contentsOf: assets.appendingPathComponent(path)).rgb8().tensor(.uint8)
        }
        let room: Tensor, virtualRoom: Tensor, photo: Tensor, segmenter: Segmenter
        do {
            (room, virtualRoom, photo) = (try image("panoramas/interior.png"), try image("panoramas/courtyard.png"),
                                          try image("photos/astronaut.png"))
            segmenter = try Segmenter(.selfie)
        } catch {
            print("  skipped: \(error) (run `make setup`)")
            return
        }
        let camera = PinholeCamera(fov: 60, width: 1280, height: 720)
        let call = try SyntheticCall(room: room, person: photo, personMask: segmenter.probabilities(photo), camera: camera,
                                     path: SyntheticCall.panningPath(frames: frames + warmup))
        let inputs = try (0..<(frames + warmup)).map { try call.frame($0) }
        var settings = CallSettings()
        settings.skipThreshold = 0  // every frame runs the model: the stage's full cost
        var pipeline = try CallPipeline(background: virtualRoom, width: 1280, height: 720, segmenter: segmenter,
                                        settings: settings)
        for frame in inputs.prefix(warmup) { _ = try pipeline.process(frame) }
        // Timings count from after the warm-up: a fresh pipeline continues on the later frames.
        pipeline = try CallPipeline(background: virtualRoom, width: 1280, height: 720, segmenter: segmenter, settings: settings)
        for frame in inputs { _ = try pipeline.process(frame) }
        let timings = pipeline.timings
        // Targets apply to the mean (what a call sustains); the median shows the typical frame when a
        // shared machine stalls a few.
        let targets: [String: Double] = ["segmentation": 8, "tracking": 8, "viewport": 2, "composite": 3]
        print("  " + "stage".padding(toLength: 14, withPad: " ", startingAt: 0) + "  mean (ms)  median (ms)")
        for stage in CallTimings.stages {
            let ms = timings.milliseconds(stage)
            let target = targets[stage].map { String(format: "target ≤ %.0f ms %@", $0, ms <= $0 ? "ok" : "MISSED") } ?? ""
            print("  " + stage.padding(toLength: 14, withPad: " ", startingAt: 0)
                  + String(format: "%10.2f  %11.2f  ", ms, timings.medianMilliseconds(stage)) + target)
        }
        let fps = timings.framesPerSecond
        print("  " + "end to end".padding(toLength: 14, withPad: " ", startingAt: 0)
              + String(format: "%10.2f  %11.2f  %.1f fps (median frame: %.1f fps), target ≥ 30 fps %@", 1000 / fps,
                       timings.medianMilliseconds(), fps, 1000 / timings.medianMilliseconds(), fps >= 30 ? "ok" : "MISSED"))

        // The segmentation stage split: MediaPipe's input resize of the 720p frame, and the network.
        let frame = inputs[0]
        let resize = try medianTime(repeats: 20, warmup: 3) { _ = try segmenter.modelInput(frame) } * 1000
        let modelInput = try segmenter.modelInput(frame)
        let network = try medianTime(repeats: 20, warmup: 3) { _ = try segmenter.modelProbabilities(modelInput[0]) } * 1000
        print(String(format: "  segmentation split: input resize %.2f ms, network at 256² %.2f ms", resize, network))

        // The composite alone, with the mask at the model's size as the pipeline passes it.
        let mask = try (segmenter.modelProbabilities(frame) .>= 0.5).to(dtype: .float32)
        let viewport = try ViewportRenderer(panorama: virtualRoom, camera: camera).render(Orientation())
        let compositor = Compositor()
        let composite = try medianTime(repeats: 30, warmup: 3) {
            _ = try compositor.composite(person: frame, room: viewport, alpha: mask, binarize: true)
        } * 1000
        print(String(format: "  composite alone (256² mask resized on the fly): %.2f ms", composite))

        // The viewport alone: the grid-interpolated 8-bit renderer vs exact tensor ops (rays rotated
        // by matmul, atan2, grid_sample on the float panorama) for the same rotations.
        let renderer = try ViewportRenderer(panorama: virtualRoom, camera: camera)
        let sampler = try EquirectSampler(virtualRoom.to(dtype: .float32))
        let orientation = Orientation(yaw: 170, pitch: 5, roll: 2)
        let rotation = try orientation.matrix()
        let fast = try medianTime(repeats: 30, warmup: 3) { _ = try renderer.render(orientation) } * 1000
        ViewportRenderer.usesSIMD = false
        let portable = try medianTime(repeats: 30, warmup: 3) { _ = try renderer.render(orientation) } * 1000
        ViewportRenderer.usesSIMD = true
        Parallel.threads = 1
        let single = try medianTime(repeats: 30, warmup: 3) { _ = try renderer.render(orientation) } * 1000
        Parallel.threads = threads
        print(String(format: "  viewport renderer on one thread: %.2f ms (%.1f ns/pixel); portable C kernel %.2f ms (SIMD %.2f× its time)",
                     single, single * 1e6 / Double(1280 * 720), portable, fast / portable))
        Runtime.threads = threads
        let exact = try medianTime(repeats: 10, warmup: 2) {
            _ = try sampler.viewport(camera: camera, rotation: rotation).round().to(dtype: .uint8)
        } * 1000
        print(String(format: "  viewport alone: renderer %.2f ms, tensor-op path %.2f ms (%.2f× its time)", fast, exact, fast / exact))
    }
}
