import CTorch
import Foundation

/// A group of processes that train one model together, over LibTorch's c10d: a TCPStore at
/// `host:port` (served by rank 0) for the rendezvous, Gloo or NCCL for the collectives
/// (docs/distributed.md).
/// Every collective is in place and blocks until all ranks took part, or fails with an error
/// naming it once `timeout` passes (a peer that died or hangs).
public final class ProcessGroup: @unchecked Sendable {
    public let rank: Int
    public let worldSize: Int
    public let timeout: TimeInterval
    private let handle: bd_process_group

    /// c10d's backends: Gloo (CPU tensors, and CUDA tensors through host copies) and NCCL (CUDA).
    public enum Backend: Sendable { case gloo, nccl }

    /// Whether this build can make NCCL groups: it was built against a CUDA LibTorch with the CUDA
    /// and NCCL headers found (Package.swift, docs/distributed.md#nccl).
    public static var ncclAvailable: Bool { bd_dist_has_nccl() != 0 }

    /// `cudaDevice`: this rank's GPU, for NCCL (its local rank).
    public init(host: String, port: Int, rank: Int, worldSize: Int, timeout: TimeInterval,
                backend: Backend = .gloo, cudaDevice: Int = 0) throws {
        guard worldSize >= 1, (0..<worldSize).contains(rank) else {
            throw TorchError("process group: rank \(rank) is not in a world of \(worldSize)")
        }
        guard (1...65535).contains(port) else { throw TorchError("process group: port \(port) is not in 1…65535") }
        guard let handle = bd_dist_init(host, Int32(port), Int32(rank), Int32(worldSize), Int64(timeout * 1000),
                                        Int32(backend == .nccl ? BD_DIST_NCCL : BD_DIST_GLOO), Int32(cudaDevice)) else {
            throw TorchError.fromBridge("rank \(rank) of \(worldSize) joining \(host):\(port)")
        }
        (self.rank, self.worldSize, self.timeout, self.handle) = (rank, worldSize, timeout, handle)
    }

    deinit { bd_dist_free(handle) }

    /// Every rank's `tensor` summed, written into each rank's `tensor`.
    public func allReduceSum(_ tensor: Tensor) throws {
        try checkStatus(bd_dist_all_reduce_sum(handle, tensor.handle), "rank \(rank) of \(worldSize): all-reduce of \(tensor.shape)")
    }

    /// The mean over ranks, in place.
    public func allReduceMean(_ tensor: Tensor) throws {
        try allReduceSum(tensor)
        if worldSize > 1 { try tensor.mul_(1 / Double(worldSize)) }
    }

    /// Rank `root`'s `tensor` copied into every rank's.
    public func broadcast(_ tensor: Tensor, from root: Int = 0) throws {
        try checkStatus(bd_dist_broadcast(handle, tensor.handle, Int32(root)), "rank \(rank) of \(worldSize): broadcast of \(tensor.shape)")
    }

    /// Every rank's `tensor` (the same shape on each), concatenated in rank order along dim 0:
    /// `[worldSize · n, …]` on `tensor`'s device. Not differentiable: a caller that needs gradients
    /// puts its own part back in (CLIP's contrastive loss does).
    public func allGather(_ tensor: Tensor) throws -> Tensor {
        let shape = tensor.shape
        guard let rows = shape.first else { throw TorchError("rank \(rank) of \(worldSize): all-gather of a scalar") }
        let output = try Tensor.empty([rows * worldSize] + shape.dropFirst(), dtype: tensor.dtype, device: tensor.device)
        try checkStatus(bd_dist_all_gather(handle, tensor.handle, output.handle), "rank \(rank) of \(worldSize): all-gather of \(shape)")
        return output
    }

    /// Returns once every rank has called it.
    public func barrier() throws {
        try checkStatus(bd_dist_barrier(handle), "rank \(rank) of \(worldSize): barrier")
    }

    /// A TCP port nobody listens on now, the kernel's choice (for a rendezvous on one machine).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TorchError("cannot open a socket to find a free port: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw TorchError("cannot find a free port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
