import Foundation
import BackdropTestSupport
import XCTest

@testable import Torch

/// Every op group against PyTorch's values (fixtures from tools/make_op_fixtures.py), plus
/// hand-computed operator checks, error paths, generator determinism and dtype round trips.
final class OpsTests: XCTestCase {
    // MARK: Fixture cases

    struct Case {
        let name: String
        let op: String
        let args: Args
        let inputs: [String?]
        let outputs: [String]
        let atol: Double
    }

    static let fixtureDirectory = TestSupport.fixture("ops")

    static func loadCases() throws -> [Case] {
        let data = try Data(contentsOf: fixtureDirectory.appendingPathComponent("cases.json"))
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let list = root["cases"] as? [[String: Any]]
        else { throw TorchError("cases.json: expected {\"cases\": [...]}") }
        return try list.map { item in
            guard let name = item["name"] as? String, let op = item["op"] as? String,
                  let inputs = item["inputs"] as? [Any], let outputs = item["outputs"] as? [String],
                  let atol = item["atol"] as? Double
            else { throw TorchError("cases.json: malformed case \(item["name"] ?? "?")") }
            return Case(name: name, op: op, args: Args(raw: item["args"] as? [String: Any] ?? [:], name: name),
                        inputs: inputs.map { $0 as? String }, outputs: outputs, atol: atol)
        }
    }

    func testFixtureCases() throws {
        let cases = try Self.loadCases()
        let file = try SafetensorsFile(url: Self.fixtureDirectory.appendingPathComponent("tensors.safetensors"))
        var worst: [String: (error: Double, atol: Double, name: String)] = [:]
        var passed = 0
        for c in cases {
            do {
                let inputs = try c.inputs.map { try $0.map(file.tensor) }
                let expected = try c.outputs.map(file.tensor)
                let actual = try Self.run(c.op, c.args, inputs)
                guard actual.count == expected.count else {
                    XCTFail("\(c.name) [\(c.op)]: \(actual.count) outputs, expected \(expected.count)")
                    continue
                }
                var ok = true
                for (i, (a, e)) in zip(actual, expected).enumerated() {
                    guard a.shape == e.shape else {
                        XCTFail("\(c.name) [\(c.op)] output \(i): shape \(a.shape), expected \(e.shape)")
                        ok = false
                        continue
                    }
                    let error = try maxAbsError(a, e)
                    let group = c.op == "grad" ? "grad:\(c.args.raw["fn"] ?? "")" : c.op
                    if error > (worst[group]?.error ?? -1) { worst[group] = (error, c.atol, c.name) }
                    if !(error <= c.atol) {
                        XCTFail("\(c.name) [\(c.op)] output \(i): max-abs error \(error) > atol \(c.atol), shape \(e.shape)")
                        ok = false
                    }
                }
                if ok { passed += 1 }
            } catch {
                XCTFail("\(c.name) [\(c.op)] threw: \(error)")
            }
        }
        print("OpsTests: \(passed)/\(cases.count) fixture cases passed")
        for (group, w) in worst.sorted(by: { $0.key < $1.key }) {
            print("  \(group.padding(toLength: 24, withPad: " ", startingAt: 0)) max error \(w.error) (atol \(w.atol), \(w.name))")
        }
    }

    /// Max |a - e| over all elements; NaNs and infinities must sit at the same places.
    func maxAbsError(_ a: Tensor, _ e: Tensor) throws -> Double {
        let x = try a.toArray(Double.self), y = try e.toArray(Double.self)
        var worst = 0.0
        for (u, v) in zip(x, y) {
            if u.isNaN || v.isNaN {
                if u.isNaN != v.isNaN { return .infinity }
            } else if u.isInfinite || v.isInfinite {
                if u != v { return .infinity }
            } else {
                worst = Swift.max(worst, Swift.abs(u - v))
            }
        }
        return worst
    }

    // MARK: Dispatch

    /// The case's arguments, read from JSON.
    struct Args {
        let raw: [String: Any]
        let name: String

        private func value(_ key: String) throws -> Any {
            guard let v = raw[key] else { throw TorchError("\(name): missing argument '\(key)'") }
            return v
        }
        func has(_ key: String) -> Bool { raw[key].map { !($0 is NSNull) } ?? false }
        func int(_ key: String) throws -> Int {
            guard let v = try value(key) as? Int else { throw TorchError("\(name): '\(key)' is not an integer") }
            return v
        }
        func optInt(_ key: String) throws -> Int? { has(key) ? try int(key) : nil }
        func ints(_ key: String) throws -> [Int] {
            guard let v = try value(key) as? [Int] else { throw TorchError("\(name): '\(key)' is not a list of integers") }
            return v
        }
        func optInts(_ key: String) throws -> [Int]? { has(key) ? try ints(key) : nil }
        func double(_ key: String) throws -> Double {
            guard let v = try value(key) as? Double else { throw TorchError("\(name): '\(key)' is not a number") }
            return v
        }
        func optDouble(_ key: String) throws -> Double? { has(key) ? try double(key) : nil }
        func doubles(_ key: String) throws -> [Double] {
            guard let v = try value(key) as? [Double] else { throw TorchError("\(name): '\(key)' is not a list of numbers") }
            return v
        }
        func bool(_ key: String) throws -> Bool {
            guard let v = try value(key) as? Bool else { throw TorchError("\(name): '\(key)' is not a bool") }
            return v
        }
        func optBool(_ key: String) throws -> Bool? { has(key) ? try bool(key) : nil }
        func string(_ key: String) throws -> String {
            guard let v = try value(key) as? String else { throw TorchError("\(name): '\(key)' is not a string") }
            return v
        }
        func pair(_ key: String) throws -> IntPair { try IntPair(ints(key)) }
        func dtype(_ key: String = "dtype") throws -> DType {
            let text = try string(key)
            guard let type = DType.allCases.first(where: { $0.description == text }) else {
                throw TorchError("\(name): unknown dtype \(text)")
            }
            return type
        }
    }

    static let unaryOps: [String: (Tensor) throws -> Tensor] = [
        "neg": { try -$0 }, "abs": { try $0.abs() }, "exp": { try $0.exp() }, "log": { try $0.log() },
        "sqrt": { try $0.sqrt() }, "rsqrt": { try $0.rsqrt() }, "sin": { try $0.sin() }, "cos": { try $0.cos() },
        "tanh": { try $0.tanh() }, "sigmoid": { try $0.sigmoid() }, "relu": { try $0.relu() },
        "gelu": { try $0.gelu() }, "gelu_tanh": { try $0.gelu(approximate: .tanh) }, "silu": { try $0.silu() },
        "hardswish": { try $0.hardswish() }, "hardsigmoid": { try $0.hardsigmoid() }, "floor": { try $0.floor() },
        "ceil": { try $0.ceil() }, "round": { try $0.round() }, "sign": { try $0.sign() },
        "reciprocal": { try $0.reciprocal() }, "square": { try $0.square() }, "log1p": { try $0.log1p() },
        "expm1": { try $0.expm1() }, "erf": { try $0.erf() }, "atan": { try $0.atan() }, "asin": { try $0.asin() },
        "acos": { try $0.acos() }, "log2": { try $0.log2() }, "trunc": { try $0.trunc() },
        "logical_not": { try $0.logicalNot() }, "isnan": { try $0.isnan() }, "isfinite": { try $0.isfinite() },
    ]

    static let binaryOps: [String: (Tensor, Tensor) throws -> Tensor] = [
        "add": { try $0 + $1 }, "sub": { try $0 - $1 }, "mul": { try $0 * $1 }, "div": { try $0 / $1 },
        "pow": { try $0.pow($1) }, "maximum": { try $0.maximum($1) }, "minimum": { try $0.minimum($1) },
        "eq": { try $0 .== $1 }, "ne": { try $0 .!= $1 }, "lt": { try $0 .< $1 }, "le": { try $0 .<= $1 },
        "gt": { try $0 .> $1 }, "ge": { try $0.ge($1) }, "remainder": { try $0.remainder($1) },
        "atan2": { try $0.atan2($1) }, "floor_divide": { try $0.floorDivide($1) },
        "logical_and": { try $0.logicalAnd($1) }, "logical_or": { try $0.logicalOr($1) },
    ]

    static let scalarOps: [String: (Tensor, Double) throws -> Tensor] = [
        "add": { try $0 + $1 }, "sub": { try $0 - $1 }, "mul": { try $0 * $1 }, "div": { try $0 / $1 },
        "pow": { try $0.pow($1) }, "rsub": { try $1 - $0 }, "rdiv": { try $1 / $0 }, "rpow": { try Tensor.pow($1, $0) },
        "eq": { try $0 .== $1 }, "lt": { try $0 .< $1 }, "ge": { try $0 .>= $1 },
        "remainder": { try $0.remainder($1) }, "floor_divide": { try $0.floorDivide($1) },
    ]

    /// Runs one fixture op through the Swift API; nil inputs are absent optional tensors.
    static func run(_ op: String, _ a: Args, _ x: [Tensor?]) throws -> [Tensor] {
        func t(_ i: Int) throws -> Tensor {
            guard i < x.count, let tensor = x[i] else { throw TorchError("\(a.name): input \(i) is missing") }
            return tensor
        }
        func opt(_ i: Int) -> Tensor? { i < x.count ? x[i] : nil }

        switch op {
        // creation
        case "arange":
            return [try .arange(a.double("start"), a.double("end"), step: a.double("step"), dtype: a.dtype())]
        case "linspace":
            return [try .linspace(a.double("start"), a.double("end"), count: a.int("steps"), dtype: a.dtype())]
        case "eye": return [try .eye(a.int("n"), dtype: a.dtype())]
        case "full": return [try .full(a.ints("shape"), a.double("value"), dtype: a.dtype())]

        // views, indexing, joining
        case "reshape":
            let source = try a.optInts("permute").map { try t(0).permute($0) } ?? t(0)
            return [try source.reshape(a.ints("shape"))]
        case "view": return [try t(0).view(a.ints("shape"))]
        case "permute": return [try t(0).permute(a.ints("dims"))]
        case "contiguous":
            let permuted = try t(0).permute(a.ints("permute"))
            let result = try permuted.contiguous()
            guard result.isContiguous, !permuted.isContiguous else { throw TorchError("contiguous() is not contiguous") }
            return [result]
        case "clone":
            let copy = try t(0).clone()
            guard try !copy.sharesStorage(with: t(0)) else { throw TorchError("clone shares storage") }
            return [copy]
        case "transpose": return [try t(0).transpose(a.int("dim0"), a.int("dim1"))]
        case "slice":
            return [try t(0).slice(dim: a.int("dim"), start: a.optInt("start"), end: a.optInt("end"), step: a.int("step"))]
        case "narrow": return [try t(0).narrow(dim: a.int("dim"), start: a.int("start"), length: a.int("length"))]
        case "select": return [try t(0).select(dim: a.int("dim"), index: a.int("index"))]
        case "index_select": return [try t(0).indexSelect(dim: a.int("dim"), index: t(1))]
        case "gather": return [try t(0).gather(dim: a.int("dim"), index: t(1))]
        case "scatter": return [try t(0).scatter(dim: a.int("dim"), index: t(1), src: t(2))]
        case "scatter_add": return [try t(0).scatterAdd(dim: a.int("dim"), index: t(1), src: t(2))]
        case "index", "index_put":
            var next = 1
            let indices: [Tensor?] = try (a.raw["pattern"] as? [Bool] ?? []).map { present in
                guard present else { return nil }
                defer { next += 1 }
                return try t(next)
            }
            if op == "index" { return [try t(0).index(indices)] }
            let target = try t(0).clone()
            try target.indexPut_(indices, t(next), accumulate: a.bool("accumulate"))
            return [target]
        case "masked_fill": return [try t(0).maskedFill(t(1), a.double("value"))]
        case "masked_select": return [try t(0).maskedSelect(t(1))]
        case "where": return [try .where(t(0), t(1), t(2))]
        case "cat": return [try .cat(x.compactMap { $0 }, dim: a.int("dim"))]
        case "stack": return [try .stack(x.compactMap { $0 }, dim: a.int("dim"))]
        case "chunk": return try t(0).chunk(a.int("chunks"), dim: a.int("dim"))
        case "split_size": return try t(0).split(size: a.int("size"), dim: a.int("dim"))
        case "split_sizes": return try t(0).split(sizes: a.ints("sizes"), dim: a.int("dim"))
        case "repeat": return [try t(0).repeat(a.ints("repeats"))]
        case "expand": return [try t(0).expand(a.ints("shape"))]
        case "flip": return [try t(0).flip(a.ints("dims"))]
        case "roll": return [try t(0).roll(shifts: a.ints("shifts"), dims: a.ints("dims"))]
        case "squeeze": return [try a.optInt("dim").map { try t(0).squeeze(dim: $0) } ?? t(0).squeeze()]
        case "unsqueeze": return [try t(0).unsqueeze(a.int("dim"))]
        case "flatten": return [try t(0).flatten(start: a.int("start"), end: a.int("end"))]
        case "as_strided":
            return [try t(0).asStrided(a.ints("shape"), strides: a.ints("strides"), offset: a.int("offset"))]
        case "triu": return [try t(0).triu(diagonal: a.int("diagonal"))]
        case "tril": return [try t(0).tril(diagonal: a.int("diagonal"))]
        case "nonzero": return [try t(0).nonzero()]

        // elementwise
        case "unary":
            guard let f = unaryOps[try a.string("fn")] else { throw TorchError("\(a.name): no unary op") }
            return [try f(t(0))]
        case "binary":
            guard let f = binaryOps[try a.string("fn")] else { throw TorchError("\(a.name): no binary op") }
            return [try f(t(0), t(1))]
        case "binary_scalar":
            guard let f = scalarOps[try a.string("fn")] else { throw TorchError("\(a.name): no scalar op") }
            return [try f(t(0), a.double("scalar"))]
        case "clamp": return [try t(0).clamp(min: a.optDouble("min"), max: a.optDouble("max"))]
        case "lerp": return [try t(0).lerp(t(1), weight: a.double("weight"))]
        case "inplace":
            let target = try t(0).clone()
            switch try a.string("fn") {
            case "add_": try target.add_(t(1), alpha: a.double("alpha"))
            case "sub_": try target.sub_(t(1), alpha: a.double("alpha"))
            case "mul_": try target.mul_(t(1))
            case "div_": try target.div_(t(1))
            case "mul_scalar": try target.mul_(a.double("value"))
            case "div_scalar": try target.div_(a.double("value"))
            case "add_scalar": try target.addScalar_(a.double("value"))
            case "maximum_": try target.maximum_(t(1))
            case "addcmul_": try target.addcmul_(t(1), t(2), value: a.double("value"))
            case "addcdiv_": try target.addcdiv_(t(1), t(2), value: a.double("value"))
            case "sqrt_": try target.sqrt_()
            case "copy_": try target.copy_(from: t(1))
            case "fill_": try target.fill_(a.double("value"))
            case "zero_": try target.zero_()
            case let fn: throw TorchError("\(a.name): unknown in-place op \(fn)")
            }
            return [target]

        // reductions
        case "reduce":
            let dims = try a.ints("dims"), keep = try a.bool("keepdim"), v = try t(0)
            switch try a.string("fn") {
            case "sum": return [try v.sum(dims: dims, keepDim: keep)]
            case "mean": return [try v.mean(dims: dims, keepDim: keep)]
            case "amax": return [try v.amax(dims: dims, keepDim: keep)]
            case "amin": return [try v.amin(dims: dims, keepDim: keep)]
            case "prod": return [try v.prod(dims: dims, keepDim: keep)]
            case "logsumexp": return [try v.logsumexp(dims: dims, keepDim: keep)]
            case "any": return [try v.any(dims: dims, keepDim: keep)]
            case "all": return [try v.all(dims: dims, keepDim: keep)]
            case let fn: throw TorchError("\(a.name): unknown reduction \(fn)")
            }
        case "var", "std":
            let (dims, correction, keep) = try (a.ints("dims"), a.int("correction"), a.bool("keepdim"))
            return [op == "var" ? try t(0).variance(dims: dims, correction: correction, keepDim: keep)
                : try t(0).std(dims: dims, correction: correction, keepDim: keep)]
        case "max_dim", "min_dim":
            let r = op == "max_dim" ? try t(0).max(dim: a.int("dim"), keepDim: a.bool("keepdim"))
                : try t(0).min(dim: a.int("dim"), keepDim: a.bool("keepdim"))
            return [r.values, r.indices]
        case "max_all": return [try t(0).max()]
        case "min_all": return [try t(0).min()]
        case "argmax": return [try t(0).argmax(dim: a.optInt("dim"), keepDim: a.bool("keepdim"))]
        case "argmin": return [try t(0).argmin(dim: a.optInt("dim"), keepDim: a.bool("keepdim"))]
        case "cumsum": return [try t(0).cumsum(dim: a.int("dim"))]
        case "sort":
            let r = try t(0).sort(dim: a.int("dim"), descending: a.bool("descending"))
            return [r.values, r.indices]
        case "topk":
            let r = try t(0).topk(a.int("k"), dim: a.int("dim"), largest: a.bool("largest"))
            return [r.values, r.indices]

        // linear algebra
        case "matmul": return [try t(0).matmul(t(1))]
        case "bmm": return [try t(0).bmm(t(1))]
        case "baddbmm": return [try .baddbmm(t(0), t(1), t(2), beta: a.double("beta"), alpha: a.double("alpha"))]
        case "einsum": return [try .einsum(a.string("equation"), x.compactMap { $0 })]
        case "linear": return [try F.linear(t(0), t(1), opt(2))]
        case "eigh":
            let (w, v) = try Linalg.eigh(t(0), upper: a.bool("upper"))
            // Eigenvectors are defined up to sign: compare V diag(w) Vᵀ and VᵀV instead.
            let rebuilt = try (v * w.unsqueeze(-2)).matmul(v.mT())
            return [w, rebuilt, try v.mT().matmul(v)]
        case "eigvals":
            let values = try Linalg.eigvals(t(0))
            return [try values.real().sort().values, try values.imag().abs().max()]
        case "svd":
            let full = try a.bool("full_matrices")
            let (u, s, vh) = try Linalg.svd(t(0), fullMatrices: full)
            let (m, n, k) = (try t(0).size(-2), try t(0).size(-1), try s.size(-1))
            let expectedU = full ? [m, m] : [m, k], expectedVh = full ? [n, n] : [k, n]
            guard Array(u.shape.suffix(2)) == expectedU, Array(vh.shape.suffix(2)) == expectedVh else {
                throw TorchError("svd factor shapes U \(u.shape) Vh \(vh.shape), expected \(expectedU) and \(expectedVh)")
            }
            let uk = try u.narrow(dim: -1, start: 0, length: k), vhk = try vh.narrow(dim: -2, start: 0, length: k)
            return [s, try (uk * s.unsqueeze(-2)).matmul(vhk)]
        case "inv": return [try Linalg.inv(t(0))]
        case "det": return [try Linalg.det(t(0))]
        case "solve": return [try Linalg.solve(t(0), t(1))]
        case "matrix_norm": return [try Linalg.matrixNorm(t(0), a.string("ord"))]
        case "vector_norm":
            let ord = try a.raw["ord"] as? String == "inf" ? Double.infinity : a.double("ord")
            return [try Linalg.vectorNorm(t(0), ord: ord, dims: a.ints("dims"), keepDim: a.bool("keepdim"))]

        // neural-network functions
        case "conv2d":
            return [try F.conv2d(t(0), weight: t(1), bias: opt(2), stride: a.pair("stride"), padding: a.pair("padding"),
                                 dilation: a.pair("dilation"), groups: a.int("groups"))]
        case "conv_transpose2d":
            return [try F.convTranspose2d(t(0), weight: t(1), bias: opt(2), stride: a.pair("stride"),
                                          padding: a.pair("padding"), outputPadding: a.pair("output_padding"),
                                          groups: a.int("groups"), dilation: a.pair("dilation"))]
        case "avg_pool2d":
            return [try F.avgPool2d(t(0), kernel: a.pair("kernel"), stride: a.optInts("stride").map(IntPair.init),
                                    padding: a.pair("padding"), ceilMode: a.bool("ceil_mode"),
                                    countIncludePad: a.bool("count_include_pad"))]
        case "max_pool2d":
            return [try F.maxPool2d(t(0), kernel: a.pair("kernel"), stride: a.optInts("stride").map(IntPair.init),
                                    padding: a.pair("padding"), dilation: a.pair("dilation"), ceilMode: a.bool("ceil_mode"))]
        case "adaptive_avg_pool2d": return [try F.adaptiveAvgPool2d(t(0), outputSize: a.pair("output_size"))]
        case "adaptive_max_pool2d": return [try F.adaptiveMaxPool2d(t(0), outputSize: a.pair("output_size"))]
        case "group_norm":
            return [try F.groupNorm(t(0), groups: a.int("groups"), weight: opt(1), bias: opt(2), eps: a.double("eps"))]
        case "layer_norm":
            return [try F.layerNorm(t(0), shape: a.ints("shape"), weight: opt(1), bias: opt(2), eps: a.double("eps"))]
        case "batch_norm":
            let training = try a.bool("training")
            // Training updates the running statistics in place: work on copies and return them too.
            let mean = try training ? t(1).clone() : t(1), variance = try training ? t(2).clone() : t(2)
            let out = try F.batchNorm(t(0), runningMean: mean, runningVar: variance, weight: opt(3), bias: opt(4),
                                      training: training, momentum: a.double("momentum"), eps: a.double("eps"))
            return training ? [out, mean, variance] : [out]
        case "softmax": return [try F.softmax(t(0), dim: a.int("dim"))]
        case "log_softmax": return [try F.logSoftmax(t(0), dim: a.int("dim"))]
        case "embedding": return [try F.embedding(t(1), t(0))]
        case "interpolate":
            let mode: F.InterpolationMode = switch try a.string("mode") {
            case "nearest": .nearest
            case "bilinear": .bilinear
            default: .bicubic
            }
            let (alignCorners, antialias) = try (a.optBool("align_corners"), a.bool("antialias"))
            if let size = try a.optInts("size") {
                return [try F.interpolate(t(0), size: IntPair(size), mode: mode, alignCorners: alignCorners,
                                          antialias: antialias)]
            }
            let scale = try a.doubles("scale")
            return [try F.interpolate(t(0), scaleFactor: (scale[0], scale[1]), mode: mode, alignCorners: alignCorners,
                                      antialias: antialias)]
        case "grid_sample":
            let mode: F.GridSampleMode = switch try a.string("mode") {
            case "bilinear": .bilinear
            case "nearest": .nearest
            default: .bicubic
            }
            let padding: F.GridSamplePadding = switch try a.string("padding_mode") {
            case "zeros": .zeros
            case "border": .border
            default: .reflection
            }
            return [try F.gridSample(t(0), t(1), mode: mode, paddingMode: padding, alignCorners: a.bool("align_corners"))]
        case "pad":
            let mode: F.PadMode = switch try a.string("mode") {
            case "constant": .constant
            case "reflect": .reflect
            case "replicate": .replicate
            default: .circular
            }
            return [try F.pad(t(0), a.ints("pads"), mode: mode, value: a.double("value"))]
        case "sdpa":
            return [try F.scaledDotProductAttention(t(0), t(1), t(2), mask: opt(3), causal: a.bool("causal"),
                                                    scale: a.optDouble("scale"))]
        case "mse_loss", "cross_entropy":
            let reduction: F.Reduction = switch try a.string("reduction") {
            case "none": .none
            case "sum": .sum
            default: .mean
            }
            return [op == "mse_loss" ? try F.mseLoss(t(0), t(1), reduction: reduction)
                : try F.crossEntropy(t(0), t(1), reduction: reduction)]

        // gradients of sum(fn(inputs) * R), R being the last input
        case "grad":
            let wrt = try a.ints("wrt")
            let leaves: [Tensor?] = try x.dropLast().enumerated().map { i, input in
                try input.map { try wrt.contains(i) ? $0.requiringGrad(true) : $0 }
            }
            let out = try run(a.string("fn"), a, leaves)[0]
            try (out * t(x.count - 1)).sum().backward()
            return try wrt.map { i in
                guard let grad = leaves[i]?.grad else { throw TorchError("\(a.name): input \(i) got no gradient") }
                return grad
            }

        default:
            throw TorchError("\(a.name): no Swift dispatch for op '\(op)'")
        }
    }

    // MARK: Operators and broadcasting (hand-computed)

    func testOperatorsBroadcast() throws {
        let row = try Tensor([1.0, 2.0, 3.0] as [Float], shape: [1, 3])
        let column = try Tensor([10.0, 20.0] as [Float], shape: [2, 1])
        let sum = try row + column
        XCTAssertEqual(sum.shape, [2, 3])
        XCTAssertEqual(try sum.toArray(Float.self), [11, 12, 13, 21, 22, 23])
        XCTAssertEqual(try (column - row).toArray(Float.self), [9, 8, 7, 19, 18, 17])
        XCTAssertEqual(try (row * column).toArray(Float.self), [10, 20, 30, 20, 40, 60])
        XCTAssertEqual(try (column / row).toArray(Float.self), [10, 5, 10.0 / 3, 20, 10, 20.0 / 3])
        XCTAssertEqual(try (row + 1).toArray(Float.self), [2, 3, 4])
        XCTAssertEqual(try (1 + row).toArray(Float.self), [2, 3, 4])
        XCTAssertEqual(try (row - 1).toArray(Float.self), [0, 1, 2])
        XCTAssertEqual(try (10 - row).toArray(Float.self), [9, 8, 7])
        XCTAssertEqual(try (row * 2).toArray(Float.self), [2, 4, 6])
        XCTAssertEqual(try (2 * row).toArray(Float.self), [2, 4, 6])
        XCTAssertEqual(try (row / 2).toArray(Float.self), [0.5, 1, 1.5])
        XCTAssertEqual(try (6 / row).toArray(Float.self), [6, 3, 2])
        XCTAssertEqual(try (-row).toArray(Float.self), [-1, -2, -3])
        XCTAssertEqual(try row.pow(2).toArray(Float.self), [1, 4, 9])
        XCTAssertEqual(try Tensor.pow(2, row).toArray(Float.self), [2, 4, 8])
        XCTAssertEqual(try (row .< 2).toArray(Bool.self), [true, false, false])
        XCTAssertEqual(try (row .>= 2).toArray(Bool.self), [false, true, true])
        XCTAssertEqual(try (row .== row).toArray(Bool.self), [true, true, true])
        XCTAssertEqual(try (row .!= 2).toArray(Bool.self), [true, false, true])
        XCTAssertEqual(try row.clamp(min: 1.5, max: 2.5).toArray(Float.self), [1.5, 2, 2.5])
        // a compound expression: (row - mean)² summed
        let centred = try row - row.mean()
        XCTAssertEqual(try centred.square().sum().item(), 2, accuracy: 1e-6)
        // integer tensors keep their dtype under + and promote under /
        let ints = try Tensor([4, 7] as [Int64])
        XCTAssertEqual(try (ints + ints).dtype, .int64)
        XCTAssertEqual(try (ints / 2).toArray(Float.self), [2, 3.5])
    }

    func testSubscriptAndViews() throws {
        let t = try Tensor.arange(0, 24, dtype: .float32).reshape(2, 3, 4)
        XCTAssertEqual(try t[1].shape, [3, 4])
        XCTAssertEqual(try t[.all, 0].toArray(Float.self), [0, 1, 2, 3, 12, 13, 14, 15])
        XCTAssertEqual(try t[.all, .all, .r(1..<3)].shape, [2, 3, 2])
        XCTAssertEqual(try t[-1, -1, -1].item(), 23)
        XCTAssertEqual(try t[.newAxis, 0].shape, [1, 3, 4])
        XCTAssertEqual(try t[0, .range(start: nil, end: nil, step: 2)].toArray(Float.self), [0, 1, 2, 3, 8, 9, 10, 11])
        XCTAssertThrowsError(try t[0, 0, 0, 0])
        // views share storage and writes go through
        let row = try t.select(dim: 0, index: 1)
        XCTAssertTrue(row.sharesStorage(with: t))
        try row.fill_(-1)
        XCTAssertEqual(try t.sum().item(), Double((0..<12).reduce(0, +)) - 12, accuracy: 1e-6)
        XCTAssertEqual(try t.split(size: 3, dim: 2).map(\.shape), [[2, 3, 3], [2, 3, 1]])
        XCTAssertEqual(try t.split(size: 2, dim: 2).map(\.shape), [[2, 3, 2], [2, 3, 2]])
        XCTAssertEqual(try t.slice(dim: -1, start: -2).shape, [2, 3, 2])
        XCTAssertThrowsError(try t.slice(dim: 0, step: 0))
        XCTAssertThrowsError(try t.roll(shifts: [1, 2], dims: [0]))
        XCTAssertEqual(try t.chunk(10, dim: 1).count, 3)
        XCTAssertThrowsError(try t.chunk(2, dim: 3))
        XCTAssertThrowsError(try Tensor(scalar: Float(1)).slice(dim: 0, start: 0))
    }

    /// Channels-last keeps shape and values and puts channels innermost in memory (NHWC); a
    /// convolution of channels-last operands stays channels-last and equals the NCHW result.
    func testChannelsLastLayout() throws {
        let x = try Tensor.arange(0, 24, dtype: .float32).reshape(1, 2, 3, 4)
        let nhwc = try x.channelsLast()
        XCTAssertFalse(x.isChannelsLast)
        XCTAssertTrue(nhwc.isChannelsLast)
        XCTAssertEqual(nhwc.shape, [1, 2, 3, 4])
        XCTAssertEqual(try nhwc.toArray(Float.self), try x.toArray(Float.self))
        XCTAssertEqual(nhwc.strides, [24, 1, 8, 2])  // a pixel's two channels lie next to each other
        XCTAssertThrowsError(try Tensor.zeros([2, 3]).channelsLast())

        let g = try Generator(seed: 5)
        let input = try Tensor.randn([1, 8, 9, 11], generator: g), weight = try Tensor.randn([6, 8, 3, 3], generator: g)
        let reference = try F.conv2d(input, weight: weight, padding: IntPair(1))
        let result = try F.conv2d(input.channelsLast(), weight: weight.channelsLast(), padding: IntPair(1))
        XCTAssertTrue(result.isChannelsLast)
        XCTAssertLessThan(try TestSupport.maxAbsDifference(result, reference), 1e-4)
    }

    func testComplexRealImag() throws {
        let rotation = try Tensor([0, -1, 1, 0] as [Double], shape: [2, 2])
        let values = try Linalg.eigvals(rotation)
        XCTAssertEqual(values.dtype, .complex128)
        XCTAssertEqual(try values.real().toArray(Double.self).map { Swift.abs($0) }.max() ?? 1, 0, accuracy: 1e-12)
        XCTAssertEqual(try values.imag().sort().values.toArray(Double.self), [-1, 1])
        XCTAssertThrowsError(try rotation.imag())
    }

    func testDropout() throws {
        let x = try Tensor.ones([1000])
        XCTAssertEqual(try F.dropout(x, p: 0.5, training: false).sum().item(), 1000)
        XCTAssertEqual(try F.dropout(x, p: 0, training: true).sum().item(), 1000)
        XCTAssertEqual(try F.dropout(x, p: 1, training: true).sum().item(), 0)
        let kept = try F.dropout(x, p: 0.25, training: true)
        let values = Set(try kept.toArray(Float.self))
        XCTAssertTrue(values.isSubset(of: [0, Float(1 / 0.75)]), "\(values)")
        XCTAssertEqual(try kept.mean().item(), 1, accuracy: 0.15)
        XCTAssertThrowsError(try F.dropout(x, p: 1.5))
    }

    // MARK: Error paths: LibTorch's message comes back and the process keeps going

    func assertTorchError(_ body: @autoclosure () throws -> Any, contains fragments: [String],
                          file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try body()
            XCTFail("expected a TorchError", file: file, line: line)
        } catch let error as TorchError {
            XCTAssertTrue(fragments.contains { error.message.contains($0) },
                          "message \"\(error.message)\" contains none of \(fragments)", file: file, line: line)
            XCTAssertFalse(error.message.contains("unknown LibTorch failure"), file: file, line: line)
        } catch {
            XCTFail("expected a TorchError, got \(error)", file: file, line: line)
        }
    }

    func testErrorsCarryLibTorchMessages() throws {
        let a = try Tensor.ones([2, 3]), b = try Tensor.ones([2, 4])
        assertTorchError(try a + b, contains: ["must match the size of tensor b"])
        assertTorchError(try a.matmul(b), contains: ["cannot be multiplied"])
        let image = try Tensor.ones([1, 4, 5, 5]), weight = try Tensor.ones([8, 3, 3, 3])
        assertTorchError(try F.conv2d(image, weight: weight), contains: ["expected input[1, 4, 5, 5] to have 3 channels"])
        let ints = try Tensor([1, 2, 3, 4, 5, 6] as [Int64], shape: [3, 2])
        assertTorchError(try ints.matmul(a), contains: ["expected", "dtype", "scalar type"])
        assertTorchError(try a.indexSelect(dim: 0, index: Tensor([0.0] as [Float])), contains: ["int32 or int64", "index"])
        assertTorchError(try a.select(dim: 0, index: 5), contains: ["out of range"])
        assertTorchError(try a.indexSelect(dim: 1, index: Tensor([0, 7] as [Int64])), contains: ["out of range", "out of DATA bounds"])
        assertTorchError(try a.view([5]), contains: ["invalid for input of size 6"])
        assertTorchError(try Tensor.cat([a, Tensor.ones([3])], dim: 0), contains: ["Tensors must have same number of dimensions", "dimension"])
        assertTorchError(try Linalg.inv(Tensor.zeros([2, 2])), contains: ["singular", "not invertible"])
        // context from our side is prefixed, LibTorch's text follows
        do {
            _ = try a + b
        } catch let error as TorchError {
            XCTAssertTrue(error.message.hasPrefix("add [2, 3]"), error.message)
        }
        // the process and the thread's error state are fine afterwards
        XCTAssertEqual(try (a + a).sum().item(), 12)
        XCTAssertEqual(try a.mT().matmul(b).shape, [3, 4])
    }

    // MARK: Random generators

    func testGeneratorDeterminism() throws {
        let first = try Tensor.randn([64], generator: Generator(seed: 42)).toArray(Float.self)
        let again = try Tensor.randn([64], generator: Generator(seed: 42)).toArray(Float.self)
        let other = try Tensor.randn([64], generator: Generator(seed: 43)).toArray(Float.self)
        XCTAssertEqual(first, again)
        XCTAssertNotEqual(first, other)

        let generator = try Generator(seed: 7)
        let state = try generator.state()
        let draw1 = try Tensor.rand([16], generator: generator).toArray(Float.self)
        let draw2 = try Tensor.rand([16], generator: generator).toArray(Float.self)
        XCTAssertNotEqual(draw1, draw2)
        try generator.setState(state)
        XCTAssertEqual(try Tensor.rand([16], generator: generator).toArray(Float.self), draw1)

        let filled = try Tensor.zeros([32]), refilled = try Tensor.zeros([32])
        try filled.normal_(mean: 1, std: 2, generator: Generator(seed: 5))
        try refilled.normal_(mean: 1, std: 2, generator: Generator(seed: 5))
        XCTAssertEqual(try filled.toArray(Float.self), try refilled.toArray(Float.self))
        try filled.uniform_(from: -1, to: 1, generator: Generator(seed: 5))
        let u = try filled.toArray(Float.self)
        XCTAssertTrue(u.allSatisfy { $0 >= -1 && $0 < 1 })
        XCTAssertEqual(try Tensor.randperm(10, generator: Generator(seed: 1)).sort().values.toArray(Int64.self),
                       Array(0..<10))
        let ints = try Tensor.randint(3, 9, [200], generator: Generator(seed: 2)).toArray(Int64.self)
        XCTAssertTrue(ints.allSatisfy { (3..<9).contains($0) })
    }

    // MARK: dtype round trips

    func testDTypeRoundTrips() throws {
        let halfExact: [Float] = [0, 1.5, -2.25, 1024, 0.0009765625]
        let source = try Tensor(halfExact)
        for dtype in [DType.float16, .bfloat16, .float64] {
            let converted = try source.to(dtype: dtype)
            XCTAssertEqual(converted.dtype, dtype)
            XCTAssertEqual(try converted.toArray(Float.self), halfExact, "\(dtype)")
        }
        let doubles: [Double] = [1e-300, -3.141592653589793, 1e300]
        XCTAssertEqual(try Tensor(doubles).toArray(Double.self), doubles)
        let int64s: [Int64] = [Int64.min, -1, 0, Int64.max]
        XCTAssertEqual(try Tensor(int64s).toArray(Int64.self), int64s)
        let int32s: [Int32] = [Int32.min, 7, Int32.max]
        let i32 = try Tensor(int32s)
        XCTAssertEqual(i32.dtype, .int32)
        XCTAssertEqual(try i32.toArray(Int32.self), int32s)
        XCTAssertEqual(try i32.to(dtype: .int64).toArray(Int64.self), int32s.map(Int64.init))
        let bytes: [UInt8] = [0, 1, 128, 255]
        XCTAssertEqual(try Tensor(bytes).toArray(UInt8.self), bytes)
        XCTAssertEqual(try Tensor(bytes).to(dtype: .float32).toArray(Float.self), [0, 1, 128, 255])
        let flags = [true, false, true]
        let mask = try Tensor(flags)
        XCTAssertEqual(mask.dtype, .bool)
        XCTAssertEqual(try mask.toArray(Bool.self), flags)
        XCTAssertEqual(try mask.to(dtype: .uint8).toArray(UInt8.self), [1, 0, 1])
        #if arch(x86_64) || arch(arm64)
        let halves: [Float16] = [0.5, -65504, 3]
        XCTAssertEqual(try Tensor(halves).toArray(Float16.self), halves)
        #endif
        // rounding on the way down: bf16 keeps 8 bits of mantissa
        XCTAssertEqual(try Tensor([1.00390625] as [Float]).to(dtype: .bfloat16).toArray(Float.self), [1])
    }
}
