import Experiments
import Foundation
import Torch

/// Where this process stands in a data-parallel run (docs/distributed.md#launching), as the
/// ecosystem's launchers say it: torchrun's `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`,
/// `MASTER_PORT` (which `backdrop train --nproc` sets too), else Slurm's `SLURM_PROCID`,
/// `SLURM_NTASKS`, `SLURM_LOCALID` and the first host of `SLURM_JOB_NODELIST`.
public struct DistributedEnvironment: Equatable, Sendable {
    public var rank: Int
    public var localRank: Int
    public var worldSize: Int
    public var masterAddress: String
    public var masterPort: Int
    public static let defaultPort = 29500

    public init(rank: Int, localRank: Int, worldSize: Int, masterAddress: String, masterPort: Int) {
        (self.rank, self.localRank, self.worldSize, self.masterAddress, self.masterPort) =
            (rank, localRank, worldSize, masterAddress, masterPort)
    }

    /// Joins the run's process group, over the backend `settings` name (docs/distributed.md#nccl):
    /// this rank trains on `device` (CUDA: the GPU of its local rank).
    public func join(_ settings: RunConfig.Distributed, device: DeviceChoice) throws -> ProcessGroup {
        let onCUDA = if case .cuda = try device.available() { true } else { false }
        let backend = try Self.backend(settings.backend, onCUDA: onCUDA, ncclAvailable: ProcessGroup.ncclAvailable)
        return try ProcessGroup(host: masterAddress, port: masterPort, rank: rank, worldSize: worldSize, timeout: settings.timeout,
                                backend: backend, cudaDevice: localRank)
    }

    /// `auto` is NCCL for a run on CUDA when this build has it, else Gloo; `nccl` needs both.
    static func backend(_ choice: RunConfig.Distributed.Backend, onCUDA: Bool, ncclAvailable: Bool) throws -> ProcessGroup.Backend {
        switch choice {
        case .gloo: return .gloo
        case .auto: return onCUDA && ncclAvailable ? .nccl : .gloo
        case .nccl:
            guard onCUDA else { throw TorchError("distributed.backend nccl: NCCL reduces CUDA tensors; training.device is not CUDA (use gloo or auto)") }
            guard ncclAvailable else {
                throw TorchError("distributed.backend nccl: this build of Backdrop has no NCCL; build it against a CUDA LibTorch with " +
                                 "the CUDA and NCCL headers found (CUDA_HOME, NCCL_INCLUDE_DIR; docs/distributed.md#nccl), or use gloo or auto")
            }
            return .nccl
        }
    }

    /// nil when the variables describe no more than one process.
    public static func current(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws
        -> DistributedEnvironment? {
        func int(_ name: String) throws -> Int? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            guard let value = Int(text) else { throw TorchError("\(name)=\(text) is not an integer") }
            return value
        }
        let port = try int("MASTER_PORT") ?? defaultPort
        let found: DistributedEnvironment
        if let world = try int("WORLD_SIZE") {
            found = DistributedEnvironment(rank: try int("RANK") ?? 0, localRank: try int("LOCAL_RANK") ?? 0, worldSize: world,
                                           masterAddress: environment["MASTER_ADDR"] ?? "127.0.0.1", masterPort: port)
        } else if let world = try int("SLURM_NTASKS") {
            let nodes = environment["SLURM_JOB_NODELIST"] ?? environment["SLURM_NODELIST"]
            found = DistributedEnvironment(rank: try int("SLURM_PROCID") ?? 0, localRank: try int("SLURM_LOCALID") ?? 0,
                                           worldSize: world,
                                           masterAddress: environment["MASTER_ADDR"] ?? nodes.flatMap { firstHost(ofNodeList: $0) } ?? "127.0.0.1",
                                           masterPort: port)
        } else {
            return nil
        }
        guard found.worldSize > 1 else { return nil }
        guard (0..<found.worldSize).contains(found.rank), found.localRank >= 0 else {
            throw TorchError("rank \(found.rank) (local \(found.localRank)) is not in a world of \(found.worldSize)")
        }
        guard (1...65535).contains(found.masterPort) else { throw TorchError("MASTER_PORT=\(found.masterPort) is not a port") }
        return found
    }

    /// The first host of a Slurm node list: `gpu[03-05,09],cpu1` → `gpu03`.
    public static func firstHost(ofNodeList list: String) -> String? {
        var first = "", depth = 0
        for character in list {
            if character == "," && depth == 0 { break }
            if character == "[" { depth += 1 } else if character == "]" { depth -= 1 }
            first.append(character)
        }
        guard let open = first.firstIndex(of: "[") else { return first.isEmpty ? nil : first }
        let prefix = first[..<open]
        let inside = first[first.index(after: open)...].prefix { $0 != "]" }
        let range = inside.split(separator: ",").first.map(String.init) ?? ""
        let start = range.split(separator: "-").first.map(String.init) ?? ""
        return start.isEmpty ? nil : prefix + start
    }
}

/// `backdrop train --nproc N`: starts N workers of the same command on this machine (ranks
/// `nodeRank·N …`), like `torchrun --nproc-per-node N`, and watches them. When one fails (an error,
/// a signal, a kill -9) the others are stopped and the launch fails naming it.
public struct DistributedLauncher {
    public var processesPerNode: Int
    public var nodes: Int = 1
    public var nodeRank: Int = 0
    public var masterAddress: String = "127.0.0.1"
    public var masterPort: Int

    public init(processesPerNode: Int, nodes: Int = 1, nodeRank: Int = 0, masterAddress: String = "127.0.0.1", masterPort: Int) {
        (self.processesPerNode, self.nodes, self.nodeRank, self.masterAddress, self.masterPort) =
            (processesPerNode, nodes, nodeRank, masterAddress, masterPort)
    }

    /// Runs `executable arguments` once per local rank; returns when all exited 0, throws when one did not.
    public func run(executable: URL, arguments: [String]) throws {
        let world = processesPerNode * nodes
        var workers: [(rank: Int, process: Process)] = []
        for local in 0..<processesPerNode {
            let rank = nodeRank * processesPerNode + local
            let process = Process()
            process.executableURL = executable
            process.arguments = arguments
            var environment = ProcessInfo.processInfo.environment
            environment["RANK"] = "\(rank)"
            environment["LOCAL_RANK"] = "\(local)"
            environment["WORLD_SIZE"] = "\(world)"
            environment["LOCAL_WORLD_SIZE"] = "\(processesPerNode)"
            environment["MASTER_ADDR"] = masterAddress
            environment["MASTER_PORT"] = "\(masterPort)"
            process.environment = environment
            try process.run()
            workers.append((rank, process))
        }
        // The first worker to fail decides: the others would wait for it until their timeout.
        while workers.contains(where: { $0.process.isRunning }) {
            if let failed = workers.first(where: { !$0.process.isRunning && !Self.succeeded($0.process) }) {
                for worker in workers where worker.process.isRunning { worker.process.terminate() }
                let deadline = Date().addingTimeInterval(10)
                while workers.contains(where: { $0.process.isRunning }), Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
                for worker in workers where worker.process.isRunning { kill(worker.process.processIdentifier, SIGKILL) }
                throw TorchError("rank \(failed.rank) of \(world) \(Self.describe(failed.process)); the other ranks were stopped")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        if let failed = workers.first(where: { !Self.succeeded($0.process) }) {
            throw TorchError("rank \(failed.rank) of \(world) \(Self.describe(failed.process))")
        }
    }

    static func succeeded(_ process: Process) -> Bool {
        process.terminationReason == .exit && process.terminationStatus == 0
    }

    static func describe(_ process: Process) -> String {
        process.terminationReason == .uncaughtSignal ? "was killed by signal \(process.terminationStatus)"
            : "exited with status \(process.terminationStatus)"
    }
}
