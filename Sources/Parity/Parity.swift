import Foundation
import Torch

/// Runs a component on a case's inputs: the output tensors by their expected names. Outputs the
/// case does not expect are ignored; expected ones that are missing fail.
public typealias ParityRunner = (ParityCase) throws -> [String: Tensor]

/// How one expected tensor compared.
public struct TensorComparison: Sendable {
    public let name: String
    public let expectedShape: [Int]
    /// nil when the component produced no such tensor.
    public let actualShape: [Int]?
    /// max |out − exp| (NaN when either side has a NaN; infinite when missing or mis-shaped).
    public let maxAbs: Double
    /// max |out − exp| / max |exp|.
    public let maxRel: Double
    public let passed: Bool
    /// Why it failed when it did not get as far as comparing values.
    public let message: String?
}

/// The outcome of one case.
public struct ParityReport: Sendable {
    public let name: String
    public let component: String
    public let atol: Double, rtol: Double
    public let tensors: [TensorComparison]
    /// Set when the case could not be read or the component failed.
    public let error: String?
    public let seconds: Double

    public var passed: Bool { error == nil && !tensors.isEmpty && tensors.allSatisfy(\.passed) }
}

public enum Parity {
    /// Component name → runner, from every group in `componentGroups`.
    public static var runners: [String: ParityRunner] {
        var all: [String: ParityRunner] = [:]
        for group in componentGroups {
            all.merge(group) { first, _ in first }
        }
        return all
    }

    public static var components: [String] { runners.keys.sorted() }

    /// Whether `directory` holds a case.json.
    public static func isCase(_ directory: URL) -> Bool {
        FileManager.default.fileExists(atPath: directory.appendingPathComponent("case.json").path)
    }

    /// `directory` itself when it is a case, else the case folders directly inside it, sorted.
    public static func cases(in directory: URL) -> [URL] {
        if isCase(directory) { return [directory] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.sorted().map { directory.appendingPathComponent($0) }.filter(isCase)
    }

    /// Reads and runs one case; every problem ends up in the report, nothing is thrown.
    public static func run(_ directory: URL) -> ParityReport {
        let start = Date()
        func failed(_ component: String, _ message: String, _ tensors: [TensorComparison] = [], atol: Double = 0,
                    rtol: Double = 0) -> ParityReport {
            ParityReport(name: directory.lastPathComponent, component: component, atol: atol, rtol: rtol, tensors: tensors,
                         error: message, seconds: Date().timeIntervalSince(start))
        }
        let parityCase: ParityCase
        do { parityCase = try ParityCase(directory: directory) } catch { return failed("?", "\(error)") }
        guard let runner = runners[parityCase.component] else {
            return failed(parityCase.component, "unknown component '\(parityCase.component)' (known: \(components.joined(separator: ", ")))")
        }
        let outputs: [String: Tensor]
        do {
            outputs = try withNoGrad { try runner(parityCase) }
        } catch {
            let tensors = parityCase.expected.keys.sorted().map {
                TensorComparison(name: $0, expectedShape: parityCase.expected[$0]?.shape ?? [], actualShape: nil,
                                 maxAbs: .infinity, maxRel: .infinity, passed: false, message: "not computed")
            }
            return failed(parityCase.component, "\(error)", tensors, atol: parityCase.atol, rtol: parityCase.rtol)
        }
        let tensors = parityCase.expected.keys.sorted().map { name in
            compare(name, outputs[name], parityCase.expected[name]!, atol: parityCase.atol, rtol: parityCase.rtol)
        }
        return ParityReport(name: parityCase.name, component: parityCase.component, atol: parityCase.atol,
                            rtol: parityCase.rtol, tensors: tensors, error: nil, seconds: Date().timeIntervalSince(start))
    }

    /// Passes when max|out − exp| ≤ atol + rtol · max|exp| (compared in float64).
    public static func compare(_ name: String, _ output: Tensor?, _ expected: Tensor, atol: Double,
                               rtol: Double) -> TensorComparison {
        guard let output else {
            return TensorComparison(name: name, expectedShape: expected.shape, actualShape: nil, maxAbs: .infinity,
                                    maxRel: .infinity, passed: false, message: "the component produced no '\(name)'")
        }
        guard output.shape == expected.shape else {
            return TensorComparison(name: name, expectedShape: expected.shape, actualShape: output.shape, maxAbs: .infinity,
                                    maxRel: .infinity, passed: false,
                                    message: "shape \(output.shape), expected \(expected.shape)")
        }
        do {
            let out = try output.to(dtype: .float64, device: .cpu), exp = try expected.to(dtype: .float64, device: .cpu)
            let count = expected.count
            let maxAbs = count == 0 ? 0 : try (out - exp).abs().amax().item()
            let scale = count == 0 ? 0 : try exp.abs().amax().item()
            let nan = try count > 0 && out.isnan().any().item() != 0
            let maxRel = scale > 0 ? maxAbs / scale : (maxAbs == 0 ? 0 : .infinity)
            let passed = !nan && maxAbs <= atol + rtol * scale
            return TensorComparison(name: name, expectedShape: expected.shape, actualShape: output.shape,
                                    maxAbs: nan ? .nan : maxAbs, maxRel: nan ? .nan : maxRel, passed: passed,
                                    message: nan ? "the output has NaNs" : nil)
        } catch {
            return TensorComparison(name: name, expectedShape: expected.shape, actualShape: output.shape, maxAbs: .infinity,
                                    maxRel: .infinity, passed: false, message: "cannot compare: \(error)")
        }
    }
}
