import Foundation
import Torch

// Reading diffusers/transformers model folders: component configs (`config.json`,
// `scheduler_config.json`, `model_index.json`) and weights (`*.safetensors`, or `torch.save` files
// through the restricted unpickler), with errors that name the file, the key and the shapes.

/// A model folder, config or weights file that does not fit what the code expects.
public struct LoadingError: Error, CustomStringConvertible, Equatable {
    /// The file (or folder) at fault, as a path.
    public let file: String
    /// The config key or weight name at fault, when there is one.
    public let key: String?
    public let message: String

    public init(file: String, key: String? = nil, _ message: String) {
        self.file = file
        self.key = key
        self.message = message
    }

    public var description: String {
        key.map { "\(file): '\($0)': \(message)" } ?? "\(file): \(message)"
    }
}

// MARK: Configs

/// A string coding key, so config types can read diffusers' snake_case names without a `CodingKeys` enum.
public struct ConfigKey: CodingKey, ExpressibleByStringLiteral {
    public var stringValue: String
    public var intValue: Int?
    public init(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) { self.stringValue = "\(intValue)"; self.intValue = intValue }
    public init(stringLiteral value: String) { self.stringValue = value }
}

extension KeyedDecodingContainer {
    /// The value at `key`, or `defaultValue` when the key is absent or JSON `null` — how diffusers
    /// fills a config from its `__init__` defaults. A present value of the wrong type still throws.
    public func value<T: Decodable>(_ key: Key, default defaultValue: T) throws -> T {
        try decodeIfPresent(T.self, forKey: key) ?? defaultValue
    }
}

/// Decodes component configs; every failure names the file and the dotted key.
///
/// Config types decode with defaults for missing keys and ignore unknown ones, e.g.
/// ```swift
/// public init(from decoder: Decoder) throws {
///     let c = try decoder.container(keyedBy: ConfigKey.self)
///     hidden_size = try c.value("hidden_size", default: 512)
/// }
/// ```
public enum ConfigFile {
    public static func decode<T: Decodable>(_ type: T.Type = T.self, from url: URL) throws -> T {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw LoadingError(file: url.path, "cannot read the config file: \(failureReason(error))")
        }
        return try decode(type, from: data, file: url.path)
    }

    /// Decodes `data`, naming `file` in errors.
    public static func decode<T: Decodable>(_ type: T.Type = T.self, from data: Data, file: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        do {
            return try decoder.decode(T.self, from: quotingPythonFloats(data))
        } catch let error as DecodingError {
            throw describe(error, file: file)
        } catch let error as LoadingError {
            throw error
        } catch {
            throw LoadingError(file: file, "\(error)")
        }
    }

    /// A JSON object's top-level entries (for `model_index.json` and other files whose keys vary).
    public static func object(from url: URL) throws -> [String: Any] {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw LoadingError(file: url.path, "cannot read: \(failureReason(error))")
        }
        let value: Any
        do {
            value = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw LoadingError(file: url.path, "not valid JSON: \(failureReason(error))")
        }
        guard let object = value as? [String: Any] else {
            throw LoadingError(file: url.path, "expected a JSON object at the top level")
        }
        return object
    }

    /// Python's `json.dump` writes ±∞ and NaN as bare `Infinity`, `-Infinity`, `NaN` (diffusers'
    /// `lambda_min_clipped: -Infinity`); JSON has no such literals, so they are quoted for the
    /// decoder's non-conforming-float strategy.
    static func quotingPythonFloats(_ data: Data) -> Data {
        let bytes = [UInt8](data)
        guard bytes.contains(UInt8(ascii: "I")) || bytes.contains(UInt8(ascii: "N")) else { return data }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 16)
        var inString = false, escaped = false, i = 0
        while i < bytes.count {
            let byte = bytes[i]
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                out.append(byte)
                i += 1
                continue
            }
            if byte == UInt8(ascii: "\"") { inString = true }
            var matched = false
            for literal in ["-Infinity", "Infinity", "NaN"] {
                let token = Array(literal.utf8)
                if i + token.count <= bytes.count, Array(bytes[i..<i + token.count]) == token {
                    out += [UInt8(ascii: "\"")] + token + [UInt8(ascii: "\"")]
                    i += token.count
                    matched = true
                    break
                }
            }
            if !matched {
                out.append(byte)
                i += 1
            }
        }
        return Data(out)
    }

    static func describe(_ error: DecodingError, file: String) -> LoadingError {
        func path(_ codingPath: [CodingKey]) -> String? {
            codingPath.isEmpty ? nil : codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
                .joined(separator: ".")
        }
        switch error {
        case .typeMismatch(let type, let context):
            return LoadingError(file: file, key: path(context.codingPath),
                                "expected \(typeName(type)) (\(context.debugDescription))")
        case .valueNotFound(let type, let context):
            return LoadingError(file: file, key: path(context.codingPath), "expected \(typeName(type)), found null")
        case .keyNotFound(let key, let context):
            return LoadingError(file: file, key: path(context.codingPath + [key]), "required key is missing")
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                let underlying = context.underlyingError.map { " (\(failureReason($0)))" } ?? ""
                return LoadingError(file: file, "not valid JSON\(underlying)")
            }
            return LoadingError(file: file, key: path(context.codingPath), context.debugDescription)
        @unknown default:
            return LoadingError(file: file, "\(error)")
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        default: "\(type)"
        }
    }
}

// MARK: Model folders

/// A diffusers pipeline folder: `model_index.json` lists each component as `[library, class]`
/// (`"unet": ["diffusers", "UNet2DConditionModel"]`) and each component lives in a subfolder of
/// the same name. Components saved as `[null, null]` (a pipeline without safety checker) are absent.
public struct ModelFolder {
    public struct Component: Equatable, Sendable {
        public let library: String
        public let className: String
        public init(library: String, className: String) {
            self.library = library
            self.className = className
        }
    }

    public let url: URL
    /// The pipeline class (`_class_name`), e.g. "StableDiffusionPipeline".
    public let pipelineClass: String?
    public let components: [String: Component]

    public init(url: URL) throws {
        self.url = url
        let index = url.appendingPathComponent("model_index.json")
        guard FileManager.default.fileExists(atPath: index.path) else {
            throw LoadingError(file: index.path, "not found: \(url.path) is not a diffusers model folder")
        }
        let object = try ConfigFile.object(from: index)
        pipelineClass = object["_class_name"] as? String
        var components: [String: Component] = [:]
        for (name, value) in object where !name.hasPrefix("_") {
            // Non-list values are pipeline options (requires_safety_checker, …), not components.
            guard let pair = value as? [Any], pair.count == 2 else { continue }
            if pair[0] is NSNull || pair[1] is NSNull { continue }
            guard let library = pair[0] as? String, let className = pair[1] as? String else {
                throw LoadingError(file: index.path, key: name, "expected [library, class] strings, found \(pair)")
            }
            components[name] = Component(library: library, className: className)
        }
        self.components = components
    }

    /// The folder of `component`, checked to exist.
    public func directory(_ component: String) throws -> URL {
        let folder = url.appendingPathComponent(component)
        guard components[component] != nil || FileManager.default.fileExists(atPath: folder.path) else {
            throw LoadingError(file: url.appendingPathComponent("model_index.json").path, key: component,
                               "no such component (the folder has: \(components.keys.sorted().joined(separator: ", ")))")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw LoadingError(file: folder.path, "component folder '\(component)' is missing")
        }
        return folder
    }

    /// `ContentHash` of the folder's files (relative paths and bytes, in sorted path order): all of
    /// them, or those of `components` only. What was made from the folder is keyed by it, so that new
    /// weights under the same path are never mistaken for the old.
    public func contentHash(components: [String]? = nil) throws -> String {
        var hash = ContentHash()
        let files = (FileManager.default.enumerator(atPath: url.path)?.allObjects as? [String] ?? []).sorted()
        for relative in files where components.map({ $0.contains { relative.hasPrefix($0 + "/") } }) ?? true {
            let file = url.appendingPathComponent(relative)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: file.path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            hash.update(relative)
            try hash.update(contentsOf: file)
        }
        return hash.hex
    }

    public var unet: URL { get throws { try directory("unet") } }
    public var vae: URL { get throws { try directory("vae") } }
    public var textEncoder: URL { get throws { try directory("text_encoder") } }
    public var tokenizer: URL { get throws { try directory("tokenizer") } }
    public var scheduler: URL { get throws { try directory("scheduler") } }

    /// The component's config file: `config.json`, or `scheduler_config.json` for schedulers.
    public func configURL(_ component: String) throws -> URL {
        let folder = try directory(component)
        for name in ["config.json", "scheduler_config.json"] {
            let file = folder.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: file.path) { return file }
        }
        throw LoadingError(file: folder.path, "no config.json or scheduler_config.json")
    }
}

// MARK: Weights

/// The weight files of a component folder, in the order they are preferred: full-precision
/// safetensors, fp16-variant safetensors, a sharded safetensors index, then `torch.save` files.
public enum WeightFiles {
    static let preferred = [
        "diffusion_pytorch_model.safetensors", "model.safetensors",
        "diffusion_pytorch_model.fp16.safetensors", "model.fp16.safetensors",
        "diffusion_pytorch_model.safetensors.index.json", "model.safetensors.index.json",
        "diffusion_pytorch_model.bin", "pytorch_model.bin",
        "diffusion_pytorch_model.fp16.bin", "pytorch_model.fp16.bin",
    ]
    static let pickleExtensions: Set<String> = ["bin", "pt", "pth", "ckpt"]

    /// The weights file to read in `directory` (or `directory` itself when it is a file).
    public static func find(in directory: URL) throws -> URL {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory) else {
            throw LoadingError(file: directory.path, "no such file or folder")
        }
        if !isDirectory.boolValue { return directory }
        for name in preferred {
            let file = directory.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: file.path) { return file }
        }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).sorted()
        if let name = names.first(where: { $0.hasSuffix(".safetensors") })
            ?? names.first(where: { pickleExtensions.contains(($0 as NSString).pathExtension) }) {
            return directory.appendingPathComponent(name)
        }
        throw LoadingError(file: directory.path,
                           "no weights found (looked for *.safetensors, *.bin, *.pt, *.pth, *.ckpt; the folder has: \(names.prefix(12).joined(separator: ", ")))")
    }
}

/// Tensors by name without reading them all: safetensors are read one tensor at a time from the
/// memory-mapped file(s); `torch.save` files are unpickled whole.
struct WeightSource {
    let url: URL
    let shapes: [String: [Int]]
    let tensor: (String) throws -> Tensor

    init(url: URL) throws {
        self.url = url
        let path = url.path
        if url.lastPathComponent.hasSuffix(".safetensors.index.json") {
            // Sharded: {"weight_map": {name: shard file}}.
            let object = try ConfigFile.object(from: url)
            guard let map = object["weight_map"] as? [String: String] else {
                throw LoadingError(file: path, key: "weight_map", "expected an object mapping tensor names to files")
            }
            var files: [String: SafetensorsFile] = [:]
            for shard in Set(map.values) {
                files[shard] = try WeightSource.open(url.deletingLastPathComponent().appendingPathComponent(shard))
            }
            var shapes: [String: [Int]] = [:]
            for (name, shard) in map {
                guard let info = files[shard]?.info(name) else {
                    throw LoadingError(file: url.deletingLastPathComponent().appendingPathComponent(shard).path,
                                       key: name, "listed in \(url.lastPathComponent) but not in the shard")
                }
                shapes[name] = info.shape
            }
            self.shapes = shapes
            tensor = { name in
                guard let file = map[name].flatMap({ files[$0] }) else {
                    throw LoadingError(file: path, key: name, "no such tensor")
                }
                return try file.tensor(name)
            }
        } else if url.pathExtension == "safetensors" {
            let file = try WeightSource.open(url)
            var shapes: [String: [Int]] = [:]
            for name in file.names { shapes[name] = file.info(name)?.shape }
            self.shapes = shapes
            tensor = { name in
                do { return try file.tensor(name) } catch let error as TorchError {
                    throw LoadingError(file: path, key: name, error.message)
                }
            }
        } else {
            let state: [String: Tensor]
            do {
                state = try TorchPickle.loadStateDict(url)
            } catch let error as TorchError {
                throw LoadingError(file: path, error.message)
            }
            shapes = state.mapValues(\.shape)
            tensor = { name in
                guard let t = state[name] else { throw LoadingError(file: path, key: name, "no such tensor") }
                return t
            }
        }
    }

    private static func open(_ url: URL) throws -> SafetensorsFile {
        do {
            return try SafetensorsFile(url: url)
        } catch let error as TorchError {
            throw LoadingError(file: url.path, error.message)
        }
    }
}

/// Loads a component's weights into `module` with strict key checking: every parameter and buffer
/// of the module must be in the file with the same shape, and the file must have nothing else.
/// On a mismatch nothing is loaded and the error names the file, the keys and both shapes.
///
/// - Parameters:
///   - directory: a component folder (`unet/`, `text_encoder/`, …) or a weights file.
///   - dtype: converts the module's floating-point tensors first (fp16/bf16 on request); nil keeps
///     the module's dtype, converting the file's tensors to it.
///   - rename: maps a file key to the module's key (old checkpoint layouts); keys it maps to the
///     same name are an error.
///   - ignoring: file keys skipped when present (after renaming), like transformers'
///     `_keys_to_ignore_on_load_unexpected` (e.g. the `position_ids` buffer older CLIP files hold).
public func loadWeights(into module: Module, from directory: URL, dtype: DType? = nil, device: Device = .cpu,
                        rename: ((String) -> String)? = nil, ignoring: Set<String> = []) throws {
    let url = try WeightFiles.find(in: directory)
    let source = try WeightSource(url: url)
    let file = url.path

    var fileKey: [String: String] = [:]  // module key → file key
    for name in source.shapes.keys.sorted() where !ignoring.contains(rename?(name) ?? name) {
        let key = rename?(name) ?? name
        if let other = fileKey[key] {
            throw LoadingError(file: file, key: key, "both '\(other)' and '\(name)' are renamed to this key")
        }
        fileKey[key] = name
    }

    let own = module.namedTensors()
    let ownKeys = Set(own.map(\.0))
    let unexpected = fileKey.keys.filter { !ownKeys.contains($0) }.sorted()
    var missing: [String] = []
    var mismatched: [(key: String, expected: [Int], found: [Int])] = []
    for (key, tensor) in own {
        guard let name = fileKey[key], let shape = source.shapes[name] else { missing.append(key); continue }
        if shape != tensor.shape { mismatched.append((key, tensor.shape, shape)) }
    }
    if !missing.isEmpty || !unexpected.isEmpty || !mismatched.isEmpty {
        // One mismatch names its key directly, so callers (and tests) can read it off the error.
        let key = mismatched.count == 1 && missing.isEmpty && unexpected.isEmpty ? mismatched[0].key
            : missing.count == 1 && mismatched.isEmpty && unexpected.isEmpty ? missing[0] : nil
        throw LoadingError(file: file, key: key,
                           describe(missing: missing, unexpected: unexpected, mismatched: mismatched))
    }

    try module.to(device: device, dtype: dtype)
    // One tensor at a time, so a multi-gigabyte checkpoint is never in memory twice.
    try withNoGrad {
        for (key, target) in own {
            guard let name = fileKey[key] else { continue }
            let value = try source.tensor(name)
            // NaN weights would only show as a black image at the end (docs/security.md#non-finite-values).
            guard try value.isAllFinite() else { throw LoadingError(file: file, key: name, "holds NaN or infinite values") }
            do {
                try target.copy_(from: value)
            } catch let error as TorchError {
                throw LoadingError(file: file, key: key, error.message)
            }
        }
    }
}

/// The mismatch with long key lists shortened: a wrong model has hundreds of missing keys.
private func describe(missing: [String], unexpected: [String],
                      mismatched: [(key: String, expected: [Int], found: [Int])]) -> String {
    func list(_ keys: [String]) -> String {
        keys.prefix(10).joined(separator: ", ") + (keys.count > 10 ? ", … (\(keys.count) in all)" : "")
    }
    var parts: [String] = []
    for m in mismatched.prefix(10) {
        parts.append("shape mismatch for '\(m.key)': the model has \(m.expected), the file has \(m.found)")
    }
    if mismatched.count > 10 { parts.append("… \(mismatched.count) shape mismatches in all") }
    if !missing.isEmpty { parts.append("missing from the file: \(list(missing))") }
    if !unexpected.isEmpty { parts.append("not in the model: \(list(unexpected))") }
    return "weights do not match the model: " + parts.joined(separator: "; ")
}
