import Foundation
import Torch
import XCTest

@testable import MultiView

/// Where a worker stands, as torchrun, Slurm and `backdrop train --nproc` say it (docs/distributed.md#launching).
final class DistributedEnvironmentTests: XCTestCase {
    func testTorchrunVariables() throws {
        let found = try DistributedEnvironment.current(["RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1",
                                                        "MASTER_ADDR": "node0", "MASTER_PORT": "29400"])
        XCTAssertEqual(found, DistributedEnvironment(rank: 3, localRank: 1, worldSize: 4, masterAddress: "node0", masterPort: 29400))
        XCTAssertNil(try DistributedEnvironment.current(["RANK": "0", "WORLD_SIZE": "1"]), "one process is no group")
        XCTAssertNil(try DistributedEnvironment.current([:]))
        XCTAssertThrowsError(try DistributedEnvironment.current(["RANK": "4", "WORLD_SIZE": "4"]))
        XCTAssertThrowsError(try DistributedEnvironment.current(["WORLD_SIZE": "two"])) { XCTAssertTrue("\($0)".contains("WORLD_SIZE")) }
    }

    func testSlurmVariables() throws {
        let found = try DistributedEnvironment.current(["SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1",
                                                        "SLURM_JOB_NODELIST": "gpu[03-05,09],cpu1"])
        XCTAssertEqual(found, DistributedEnvironment(rank: 5, localRank: 1, worldSize: 8, masterAddress: "gpu03",
                                                     masterPort: DistributedEnvironment.defaultPort))
        XCTAssertEqual(DistributedEnvironment.firstHost(ofNodeList: "node7"), "node7")
        XCTAssertEqual(DistributedEnvironment.firstHost(ofNodeList: "a,b"), "a")
        XCTAssertEqual(DistributedEnvironment.firstHost(ofNodeList: "n[0012,0020-0031]"), "n0012")
        // torchrun's variables win over Slurm's (torchrun inside an allocation).
        XCTAssertEqual(try DistributedEnvironment.current(["SLURM_NTASKS": "8", "SLURM_PROCID": "5", "WORLD_SIZE": "2", "RANK": "1"])?.rank, 1)
    }

    /// `auto` picks NCCL only for CUDA in a build that has it; `nccl` elsewhere is a clear error.
    func testBackendChoice() throws {
        XCTAssertEqual(try DistributedEnvironment.backend(.auto, onCUDA: false, ncclAvailable: true), .gloo)
        XCTAssertEqual(try DistributedEnvironment.backend(.auto, onCUDA: true, ncclAvailable: false), .gloo)
        XCTAssertEqual(try DistributedEnvironment.backend(.auto, onCUDA: true, ncclAvailable: true), .nccl)
        XCTAssertEqual(try DistributedEnvironment.backend(.gloo, onCUDA: true, ncclAvailable: true), .gloo)
        XCTAssertEqual(try DistributedEnvironment.backend(.nccl, onCUDA: true, ncclAvailable: true), .nccl)
        XCTAssertThrowsError(try DistributedEnvironment.backend(.nccl, onCUDA: false, ncclAvailable: true)) {
            XCTAssertTrue("\($0)".contains("not CUDA"), "\($0)")
        }
        XCTAssertThrowsError(try DistributedEnvironment.backend(.nccl, onCUDA: true, ncclAvailable: false)) {
            XCTAssertTrue("\($0)".contains("no NCCL"), "\($0)")
        }
        // A build without NCCL (every CPU build) says so when asked for an NCCL group, instead of crashing.
        if ProcessGroup.ncclAvailable { return }
        XCTAssertThrowsError(try ProcessGroup(host: "127.0.0.1", port: try ProcessGroup.freePort(), rank: 0, worldSize: 1, timeout: 5,
                                              backend: .nccl)) { XCTAssertTrue("\($0)".contains("no NCCL"), "\($0)") }
    }

    /// The shard deals items strided and pads like DistributedSampler; draws for the global batch
    /// come back as this rank's rows.
    func testBatchShard() throws {
        let order = [9, 4, 7, 1, 3]
        XCTAssertEqual(BatchShard(rank: 0, worldSize: 2).indices(of: order), [9, 7, 3])
        XCTAssertEqual(BatchShard(rank: 1, worldSize: 2).indices(of: order), [4, 1, 9])
        XCTAssertEqual(BatchShard.whole.indices(of: order), order)
        let rows = try BatchShard(rank: 1, worldSize: 2).take([2, 3], rowsPerItem: 2) { shape in
            XCTAssertEqual(shape, [4, 3])
            return try Tensor((0..<12).map(Float.init), shape: [4, 3])
        }
        XCTAssertEqual(try rows.toArray(Float.self), [6, 7, 8, 9, 10, 11], "items of rank 1: the second of each pair")
    }
}
