import Datasets
import Evaluation
import Experiments
import Foundation
import Media
import Support
import StableDiffusion
import Torch
import VirtualBackground

/// One parser of untrusted input, fed arbitrary bytes. A thrown error is the parser doing its job;
/// a crash, a sanitizer report or a hang is a finding (docs/security.md#fuzzing).
struct Harness {
    let name: String
    let run: (Data) throws -> Void

    static let all: [Harness] = [
        Harness(name: "safetensors") { data in
            let file = try SafetensorsFile(url: scratch(data, "input.safetensors"))
            for name in file.names { _ = try file.tensor(name) }
        },
        Harness(name: "pickle") { data in
            _ = try TorchPickle.loadPickle(data, context: "fuzz").tensors()
        },
        Harness(name: "torch-zip") { data in
            _ = try TorchPickle.load(scratch(data, "input.pt")).tensors()
        },
        Harness(name: "npy") { data in
            _ = try NpyArray(data: data, name: "fuzz")
        },
        Harness(name: "tflite") { data in
            _ = try TFLiteModel(bytes: [UInt8](data), name: "fuzz")
        },
        Harness(name: "y4m") { data in
            let reader = try Y4MReader(url: scratch(data, "input.y4m"))
            while try reader.nextFrame() != nil {}
        },
        Harness(name: "yaml-config") { data in
            _ = try RunConfig.parse(yaml: String(decoding: data, as: UTF8.self), file: "fuzz.yaml")
        },
        Harness(name: "image") { data in
            _ = try Image(data: data, name: "fuzz")
        },
        Harness(name: "clip-tokenizer") { data in
            _ = try tokenizer().encode(String(decoding: data, as: UTF8.self))
        },
        Harness(name: "hdf5-statistics") { data in
            _ = try FeatureStatistics.load(scratch(data, "input.h5"), expecting: .init(featureExtractor: "fuzz", resize: .tf1))
        },
    ]

    /// The input as a file, for the readers that take paths (memory-backed under /dev/shm when it exists).
    static func scratch(_ data: Data, _ name: String) throws -> URL {
        let url = scratchFolder.appendingPathComponent(name)
        try data.write(to: url)
        return url
    }

    static let scratchFolder: URL = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? URL(fileURLWithPath: "/dev/shm")
            : FileManager.default.temporaryDirectory
        let folder = base.appendingPathComponent("backdrop-fuzz-\(getpid())")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }()

    /// The real CLIP BPE vocabulary, fetched by `make setup` into $BACKDROP_ASSETS.
    nonisolated(unsafe) static var cachedTokenizer: CLIPTokenizer?
    static func tokenizer() throws -> CLIPTokenizer {
        if let cachedTokenizer { return cachedTokenizer }
        let made = try CLIPTokenizer(bpeVocabulary: Assets.root.appendingPathComponent("clip/bpe_simple_vocab_16e6.txt.gz"))
        cachedTokenizer = made
        return made
    }
}
