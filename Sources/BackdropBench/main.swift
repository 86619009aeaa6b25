// `make bench`: Swift over LibTorch against PyTorch eager on the same LibTorch and thread count.
// Each workload is timed as the median of repeated runs after warm-up, on both sides.
import Foundation
import Torch

struct Options {
    var threads = 2
    var repeats = 5
    /// One area alone instead of the default set: `--caa`, the CAA training step (`make bench-caa`;
    /// minutes); `--inception`, FID feature extraction (`make bench-inception`); `--call`, the call
    /// pipeline stages (`make bench-call`, and the end of `make bench`, in a fresh process so that the
    /// earlier workloads' allocations and threads do not colour it); `--segmentation`, the selfie model
    /// against MediaPipe's runtime (`make bench-segmentation`); `--text-to-image`, the miniature SD's
    /// training step (`make bench-pretrain`); `--serve`, 200 raters against the study pages (`make bench-serve`).
    var only: ((Options) throws -> Void)?
    var python = ProcessInfo.processInfo.environment["BACKDROP_PYTHON"] ?? "python3"

    init(_ arguments: [String]) {
        var it = arguments.dropFirst().makeIterator()
        while let flag = it.next() {
            switch flag {
            case "--threads": threads = it.next().flatMap(Int.init) ?? threads
            case "--repeats": repeats = it.next().flatMap(Int.init) ?? repeats
            case "--python": python = it.next() ?? python
            case "--caa": only = CAABench.run
            case "--inception": only = InceptionBench.run
            case "--call": only = CallBench.run
            case "--segmentation": only = SegmentationBench.run
            case "--text-to-image": only = TextToImageBench.run
            case "--serve": only = ServeBench.run
            default:
                print("usage: backdrop-bench [--threads N] [--repeats N] [--python PATH] [--caa | --inception | --call | --segmentation | --text-to-image | --serve]")
                exit(flag == "--help" || flag == "-h" ? 0 : 2)
            }
        }
    }
}

func medianTime(repeats: Int, warmup: Int = 2, _ body: () throws -> Void) rethrows -> Double {
    for _ in 0..<warmup { try body() }
    var samples: [Double] = []
    for _ in 0..<repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return samples.sorted()[samples.count / 2]
}

/// Runs tools/bench_reference.py and returns its timings.
func referenceTimings(_ options: Options) throws -> [String: Any] {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("tools/bench_reference.py")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [options.python, script.path, "--threads", "\(options.threads)", "--repeats", "\(options.repeats)"]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0,
          let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw TorchError("the Python reference benchmark failed (status \(process.terminationStatus))")
    }
    return json
}

func tinyAdds(_ n: Int = 100_000) throws -> () throws -> Void {
    let a = try Tensor([1, 2, 3, 4] as [Float]), b = try Tensor([4, 3, 2, 1] as [Float])
    return { for _ in 0..<n { _ = try a + b } }
}

/// The same stack as `conv_norm_attention` in tools/bench_reference.py.
func convNormAttention(batch: Int = 2, channels: Int = 128, size: Int = 32, groups: Int = 32,
                       heads: Int = 4) throws -> () throws -> Void {
    let g = try Generator(seed: 0)
    let x = try Tensor.randn([batch, channels, size, size], generator: g)
    func param(_ shape: [Int], scale: Double) throws -> Parameter {
        try Parameter(Tensor.randn(shape, generator: g) * scale)
    }
    let conv1w = try param([channels, channels, 3, 3], scale: 0.03), conv1b = try Parameter(.zeros([channels]))
    let normw = try Parameter(.ones([channels])), normb = try Parameter(.zeros([channels]))
    let conv2w = try param([channels, channels, 3, 3], scale: 0.03), conv2b = try Parameter(.zeros([channels]))
    let q = try param([channels, channels], scale: 0.05), k = try param([channels, channels], scale: 0.05)
    let v = try param([channels, channels], scale: 0.05), o = try param([channels, channels], scale: 0.05)
    let ob = try Parameter(.zeros([channels]))
    let all = [conv1w, conv1b, normw, normb, conv2w, conv2b, q, k, v, o, ob]
    return {
        var h = try F.conv2d(x, weight: conv1w, bias: conv1b, padding: 1)
        h = try F.groupNorm(h, groups: groups, weight: normw, bias: normb, eps: 1e-5).silu()
        h = try x + F.conv2d(h, weight: conv2w, bias: conv2b, padding: 1)
        let tokens = try h.flatten(start: 2, end: 3).transpose(1, 2)
        func split(_ t: Tensor) throws -> Tensor {
            try t.reshape([batch, size * size, heads, channels / heads]).transpose(1, 2)
        }
        let attended = try F.scaledDotProductAttention(split(F.linear(tokens, q)), split(F.linear(tokens, k)),
                                                       split(F.linear(tokens, v)))
        let merged = try attended.transpose(1, 2).reshape([batch, size * size, channels])
        let out = try tokens + F.linear(merged, o, ob)
        try out.square().mean().backward()
        for p in all { try p.setGrad(nil) }
    }
}

if let status = UNetBench.runChildIfRequested() { exit(status) }
if let status = CLIPBench.runChildIfRequested() { exit(status) }
if let status = InceptionBench.runChildIfRequested() { exit(status) }
if let status = CAABench.runChildIfRequested() { exit(status) }
if let status = TextToImageBench.runChildIfRequested() { exit(status) }
if let status = TrackingBench.runChildIfRequested() { exit(status) }
let options = Options(CommandLine.arguments)
Runtime.threads = options.threads
do {
    if let only = options.only {
        try only(options)
        exit(0)
    }
    let reference = try referenceTimings(options)
    print("Backdrop benchmarks — LibTorch \(Runtime.libtorchVersion), \(Runtime.threads) threads, median of \(options.repeats)")
    print("reference: PyTorch \(reference["torch_version"] ?? "?") eager, \(reference["threads"] ?? "?") threads")
    print("workload".padding(toLength: 34, withPad: " ", startingAt: 0) + "   swift (s)  pytorch (s)   ratio  target")
    let workloads: [(String, () throws -> Void, Double)] = [
        ("tiny_adds_1e5", try tinyAdds(), 0.5),
        ("conv_norm_attention_fwd_bwd", try convNormAttention(), 1.0),
    ]
    for (name, body, target) in workloads {
        let swift = try medianTime(repeats: options.repeats, body)
        let python = reference[name] as? Double ?? .nan
        let ratio = swift / python
        print(name.padding(toLength: 34, withPad: " ", startingAt: 0)
              + String(format: "  %10.4f  %11.4f  %6.2f×  ≤ %.1f× %@", swift, python, ratio, target,
                       ratio <= target ? "ok" : "MISSED"))
    }
    try SegmentationBench.run(options)
    try TrackingBench.run(options)
    try UNetBench.run(options)
    try CLIPBench.run(options)
    try InceptionBench.run(options)
} catch {
    FileHandle.standardError.write(Data("backdrop-bench: \(error)\n".utf8))
    exit(1)
}
