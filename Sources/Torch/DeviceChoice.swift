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
