// The camera-tracking stage of `make bench`: `CameraTracker` on 1280×720 frames with a person mask,
// milliseconds per frame. The frames are a rotating view with a person that stays in place — a
// synthetic texture rendered with the Swift-side geometry, so the benchmark needs no fetched assets —
// and the mask has the segmenter's model size (256×256), as the call pipeline passes it. Every frame
// is timed, so the re-detections (every few dozen frames) are in the mean; the median is the
// common frame. `backdrop-bench --tracking` runs this stage alone.
import Foundation
import Support
import Geometry
import Torch
import VirtualBackground

enum TrackingBench {
    static let width = 1280, height = 720
    static let frames = 120
    static let rounds = 3

    /// `--tracking`: this stage only (no Python reference needed).
    static func runChildIfRequested(_ arguments: [String] = CommandLine.arguments) -> Int32? {
        guard arguments.contains("--tracking") else { return nil }
        let threads = arguments.firstIndex(of: "--threads").flatMap { $0 + 1 < arguments.count ? Int(arguments[$0 + 1]) : nil }
        Runtime.threads = threads ?? 2
        do {
            try run()
            return 0
        } catch {
            FileHandle.standardError.write(Data("tracking benchmark: \(error)\n".utf8))
            return 1
        }
    }

    static func run(_ options: Options? = nil) throws {
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first ?? "?"
        let cores = ProcessInfo.processInfo.activeProcessorCount
        print("\ntracking: CameraTracker, \(width)×\(height) frames with a 256×256 person mask, \(cores) cores, ms per frame (load average \(load))")
        let (sequence, mask) = try makeSequence()
        var means: [Double] = [], medians: [Double] = [], cpu: [Double] = [], errors: [Double] = []
        for _ in 0..<rounds {
            let tracker = CameraTracker(settings: TrackerSettings(fov: 60))
            var samples: [Double] = []
            var last = Orientation()
            let cpuStart = processCPUSeconds()
            for frame in sequence {
                let start = DispatchTime.now().uptimeNanoseconds
                last = try tracker.track(frame, personMask: mask).orientation
                samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            cpu.append((processCPUSeconds() - cpuStart) * 1000 / Double(frames))
            // Frame 0 only detects; the rest is the steady state.
            let steady = samples.dropFirst().sorted()
            means.append(steady.reduce(0, +) / Double(steady.count))
            medians.append(steady[steady.count / 2])
            errors.append(abs(last.yaw - Double(frames - 1) * yawPerFrame))
        }
        let mean = means.min()!, median = medians.min()!
        // CPU time (all threads) per frame says what the work costs when other processes share the cores.
        print("  " + "workload".padding(toLength: 20, withPad: " ", startingAt: 0) + "  mean (ms)  median (ms)  cpu (ms)   target")
        print("  " + "track_1280x720".padding(toLength: 20, withPad: " ", startingAt: 0)
              + String(format: "  %9.2f  %11.2f  %8.2f   ≤ 8 ms %@", mean, median, cpu.min()!, mean <= 8 ? "ok" : "MISSED"))
        print(String(format: "  (yaw after %d frames off by %.3f°: the benchmark tracked what it timed)", frames - 1, errors.max()!))
    }

    static let yawPerFrame = 0.8

    /// A procedural equirectangular texture (value noise at a few octaves, smooth enough to render
    /// without aliasing) viewed along a yaw path, with a fixed textured block standing in for the person.
    static func makeSequence() throws -> ([Tensor], Tensor) {
        let generator = try Generator(seed: 0)
        var panorama = try Tensor.zeros([1, 3, 512, 1024])
        for (cells, weight) in [(8, 0.5), (32, 0.3), (128, 0.2)] {
            let noise = try Tensor.rand([1, 3, cells / 2, cells], generator: generator)
            panorama = try panorama + F.interpolate(noise, size: [512, 1024], mode: .bicubic, alignCorners: false) * (255 * weight)
        }
        let sampler = try EquirectSampler(panorama.clamp(min: 0, max: 255))
        let camera = PinholeCamera(fov: 60, width: width, height: height)
        let personBox = (x: 440..<840, y: 180..<720)
        var maskValues = [Float](repeating: 0, count: 256 * 256)
        for y in 0..<256 where y * height / 256 >= personBox.y.lowerBound {
            for x in 0..<256 where personBox.x.contains(x * width / 256) { maskValues[y * 256 + x] = 1 }
        }
        let person = try Tensor.rand([1, 3, personBox.y.count / 8, personBox.x.count / 8], generator: generator) * 255
        let personFull = try F.interpolate(person, size: [personBox.y.count, personBox.x.count], mode: .nearest)
        var sequence: [Tensor] = []
        for k in 0..<frames {
            let rotation = try Orientation(yaw: Double(k) * yawPerFrame, pitch: 2 * sin(Double(k) / 10)).matrix()
            let view = try sampler.viewport(camera: camera, rotation: rotation)
            let left = try view.narrow(dim: 3, start: 0, length: personBox.x.lowerBound)
            let right = try view.narrow(dim: 3, start: personBox.x.upperBound, length: width - personBox.x.upperBound)
            let middle = try Tensor.cat([view.narrow(dim: 3, start: personBox.x.lowerBound, length: personBox.x.count)
                .narrow(dim: 2, start: 0, length: personBox.y.lowerBound), personFull], dim: 2)
            let frame = try Tensor.cat([left, middle, right], dim: 3)
            sequence.append(try frame.round().clamp(min: 0, max: 255).to(dtype: .uint8).squeeze(dim: 0).contiguous())
        }
        return (sequence, try Tensor(maskValues, shape: [1, 256, 256]))
    }
}
