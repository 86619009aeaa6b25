import BackdropTestSupport
import Foundation
import Torch
import XCTest

/// c10d through the bridge: two ranks (threads here, processes in training) rendezvous over a
/// TCPStore and run Gloo collectives; a missing peer is an error within the timeout.
final class ProcessGroupTests: XCTestCase {
    func testAllReduceBroadcastAllGatherAndBarrierAcrossTwoRanks() throws {
        let port = try ProcessGroup.freePort()
        var results = [[Float]](repeating: [], count: 2)
        var errors = [Error?](repeating: nil, count: 2)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 2) { rank in
            do {
                let group = try ProcessGroup(host: "127.0.0.1", port: port, rank: rank, worldSize: 2, timeout: 30)
                let summed = try Tensor([1, 2, 3] as [Float]) * Double(rank + 1)
                try group.allReduceSum(summed)
                let mean = try Tensor([Float(rank), 10])
                try group.allReduceMean(mean)
                let broadcast = try Tensor([Float(rank + 5)])
                try group.broadcast(broadcast, from: 1)
                let gathered = try group.allGather(try Tensor([Int64(rank), Int64(rank * 10), 7, 8], shape: [2, 2]))
                XCTAssertEqual(gathered.shape, [4, 2])
                try group.barrier()
                let values = try summed.toArray(Float.self) + mean.toArray(Float.self) + broadcast.toArray(Float.self)
                    + gathered.toArray(Int64.self).map(Float.init)
                lock.withLock { results[rank] = values }
            } catch {
                lock.withLock { errors[rank] = error }
            }
        }
        XCTAssertNil(errors[0] ?? errors[1])
        for rank in 0..<2 { XCTAssertEqual(results[rank], [3, 6, 9, 0.5, 10, 6, 0, 0, 7, 8, 1, 10, 7, 8], "rank \(rank)") }
    }

    /// Rank 1 never comes: rank 0 stops with an error once the timeout passes, not a hang.
    func testAMissingPeerIsAnErrorWithinTheTimeout() throws {
        let start = Date()
        XCTAssertThrowsError(try ProcessGroup(host: "127.0.0.1", port: try ProcessGroup.freePort(), rank: 0, worldSize: 2, timeout: 2)) {
            XCTAssertTrue("\($0)".contains("rank 0 of 2"), "\($0)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 20)
    }
}
