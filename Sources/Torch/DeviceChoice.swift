import Foundation

/// A device as a user names it in a config or on the command line: a concrete device, or `best`
/// (CUDA device 0 when the linked LibTorch has a usable GPU, else the CPU), resolved when used so that
/// a stored run config still says `best` on another machine.
public enum DeviceChoice: Hashable, Sendable, CustomStringConvertible, Encodable {
    case best
    case device(Device)

    /// Parses "cpu", "cuda", "cuda:N" and "best".
    public init(parsing text: String) throws {
        self = text == "best" ? .best : .device(try Device(parsing: text))
    }

    public var resolved: Device {
        switch self {
        case .best: .best
        case .device(let device): device
        }
    }

    /// The device, checked to exist in this process: a CUDA device on a CPU LibTorch (or beyond the
    /// visible GPUs) is an error that says so, not LibTorch's dispatcher dump at the first tensor.
    public func available() throws -> Device {
        let device = resolved
        if case .cuda(let index) = device, index >= Runtime.cudaDeviceCount {
            let count = Runtime.cudaDeviceCount
            throw TorchError("device \(self): " + (count == 0
                ? "this LibTorch (\(Runtime.libtorchVersion)) sees no CUDA device: it is a CPU build or no GPU is visible; " +
                  "use cpu, or build against a CUDA LibTorch (LIBTORCH=/path, see the README)"
                : "only \(count) CUDA device\(count == 1 ? "" : "s") visible (cuda:0…cuda:\(count - 1))"))
        }
        return device
    }

    public var description: String {
        switch self {
        case .best: "best"
        case .device(let device): device.description
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
