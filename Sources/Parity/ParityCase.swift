import Foundation
import Support
import Torch

// A parity case pins one component to its reference implementation's numbers (format:
// docs/parity.md): CASE_DIR/case.json {"component", "model", "atol", "rtol", "args"},
// the model at CASE_DIR/<model>, inputs.safetensors and expected.safetensors.

/// A problem with a case folder or with running its component; the message names the file or key.
public struct ParityError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One case folder, read.
public struct ParityCase {
    public let directory: URL
    public let component: String
    /// The model file or folder (`model` resolved against the case folder).
    public let model: URL
    public let atol: Double
    public let rtol: Double
    public let args: Arguments
    public let inputs: [String: Tensor]
    public let expected: [String: Tensor]

    public var name: String { directory.lastPathComponent }

    public init(directory: URL) throws {
        self.directory = directory
        let caseFile = directory.appendingPathComponent("case.json")
        let data: Data
        do { data = try Data(contentsOf: caseFile) } catch {
            throw ParityError("\(caseFile.path): cannot read (is \(directory.path) a case folder?)")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ParityError("\(caseFile.path): not a JSON object")
        }
        let fields = Arguments(object, file: caseFile.path)
        component = try fields.string("component")
        // Relative to the case folder, unless absolute; `$BACKDROP_ASSETS/...` names fetched assets.
        let modelPath = expandEnvironment(try fields.string("model"))
        model = modelPath.hasPrefix("/") ? URL(fileURLWithPath: modelPath) : directory.appendingPathComponent(modelPath)
        atol = try fields.double("atol")
        rtol = try fields.double("rtol")
        args = object["args"] == nil ? Arguments([:], file: caseFile.path + " args")
            : Arguments(try fields.object("args"), file: "\(caseFile.path) args")
        func tensors(_ name: String, required: Bool) throws -> [String: Tensor] {
            let url = directory.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else {
                if required { throw ParityError("\(url.path): missing") }
                return [:]
            }
            do { return try Safetensors.load(url) } catch { throw ParityError("\(url.path): \(error)") }
        }
        // Components without inputs (the tokenizer) may omit inputs.safetensors.
        inputs = try tensors("inputs.safetensors", required: false)
        expected = try tensors("expected.safetensors", required: true)
    }

    /// An input tensor, or an error naming the file and the tensor.
    public func input(_ name: String) throws -> Tensor {
        guard let tensor = inputs[name] else {
            throw ParityError("\(directory.appendingPathComponent("inputs.safetensors").path): no tensor '\(name)' (has: \(inputs.keys.sorted().joined(separator: ", ")))")
        }
        return tensor
    }
}

/// The `args` object of a case (or case.json itself), with typed accessors whose errors name the key.
public struct Arguments {
    public let values: [String: Any]
    let file: String

    public init(_ values: [String: Any], file: String) {
        self.values = values
        self.file = file
    }

    private func value<T>(_ key: String, _ type: String, _ convert: (Any) -> T?) throws -> T {
        guard let raw = values[key] else { throw ParityError("\(file): missing '\(key)' (\(type))") }
        guard let value = convert(raw) else { throw ParityError("\(file): '\(key)' must be \(type), found \(raw)") }
        return value
    }

    public func has(_ key: String) -> Bool { values[key] != nil && !(values[key] is NSNull) }

    public func string(_ key: String) throws -> String { try value(key, "a string") { $0 as? String } }

    public func double(_ key: String) throws -> Double {
        try value(key, "a number") { ($0 as? NSNumber)?.doubleValue }
    }

    public func int(_ key: String) throws -> Int {
        try value(key, "an integer") { raw in
            (raw as? NSNumber).flatMap { $0.doubleValue.rounded() == $0.doubleValue ? $0.intValue : nil }
        }
    }

    public func strings(_ key: String) throws -> [String] { try value(key, "a list of strings") { $0 as? [String] } }

    public func object(_ key: String) throws -> [String: Any] { try value(key, "an object") { $0 as? [String: Any] } }

    public func double(_ key: String, default fallback: Double) throws -> Double { has(key) ? try double(key) : fallback }
    public func int(_ key: String, default fallback: Int) throws -> Int { has(key) ? try int(key) : fallback }
    public func string(_ key: String, default fallback: String) throws -> String { has(key) ? try string(key) : fallback }
}
