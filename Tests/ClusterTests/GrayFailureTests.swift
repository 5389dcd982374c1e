import Foundation
import RPC
import RingProtocol
import Testing
import TestKit

#if canImport(Glibc)
import Glibc
#endif

/// Gray failure: a node that stops answering (SIGSTOP) but is not yet suspect
/// does not stall the cluster. Coordinators answer once W or R replicas did,
/// and give up on the silent replica after the replica timeout.
@Suite(.serialized) struct GrayFailureTests {
    @Test(.timeLimit(.minutes(1)))
    func aPausedNodeThatIsStillUpDoesNotStallPutsAndGets() async throws {
        // Failure detection far slower than the test: the paused node stays "up".
        let cluster = try LocalCluster(nodes: 3, suspectAfter: 30, downAfter: 60)
        try await cluster.startAndSettle()
        let coordinators = try [0, 1].map(cluster.nodeClient)
        defer { coordinators.forEach { $0.close() } }
        let before = (0..<50).map { "gray-before-\($0)" }
        for (index, key) in before.enumerated() {
            _ = try await coordinators[index % 2].call(StorageMethods.put, WirePutRequest.with {
                $0.key = Data(key.utf8)
                $0.value = Data("v-\(key)".utf8)
                $0.quorum.w = 3
            })
        }

        cluster.signalNode(2, SIGSTOP)
        defer { cluster.signalNode(2, SIGCONT) }
        // Four concurrent lanes of puts and gets (new keys and the ones written
        // before the pause), through the two live coordinators.
        let (failed, slowest) = try await withThrowingTaskGroup(of: ([String], Duration).self) { group in
            for lane in 0..<4 {
                group.addTask {
                    let clock = ContinuousClock()
                    var failures: [String] = []
                    var slowest = Duration.zero
                    func timed(_ what: String, _ body: () async throws -> Bool) async {
                        let start = clock.now
                        do {
                            if try await !body() { failures.append("\(what): wrong answer") }
                        } catch {
                            failures.append("\(what): \(error)")
                        }
                        slowest = max(slowest, clock.now - start)
                    }
                    for step in 0..<25 {
                        let client = coordinators[(lane + step) % 2]
                        let key = "gray-\(lane)-\(step)"
                        await timed("put \(key)") {
                            let reply = try await client.call(StorageMethods.put, WirePutRequest.with {
                                $0.key = Data(key.utf8)
                                $0.value = Data("v-\(key)".utf8)
                            })
                            return reply.acks >= 2
                        }
                        await timed("get \(key)") {
                            let reply = try await client.call(StorageMethods.get, WireGetRequest.with { $0.key = Data(key.utf8) })
                            return reply.found && reply.value == Data("v-\(key)".utf8)
                        }
                        let old = before[(lane * 25 + step) % before.count]
                        await timed("get \(old)") {
                            let reply = try await client.call(StorageMethods.get, WireGetRequest.with { $0.key = Data(old.utf8) })
                            return reply.found && reply.value == Data("v-\(old)".utf8)
                        }
                    }
                    return (failures, slowest)
                }
            }
            var failures: [String] = []
            var slowest = Duration.zero
            for try await (laneFailures, laneSlowest) in group {
                failures += laneFailures
                slowest = max(slowest, laneSlowest)
            }
            return (failures, slowest)
        }
        #expect(failed.isEmpty, "\(failed.count) of 300 operations failed: \(failed.prefix(5))")
        print("gray-failure: 300 puts and gets with node 2 paused, all succeeded: \(failed.isEmpty); "
            + "slowest \(CheckReport.seconds(slowest)) (replica timeout 1s)")

        // A quorum that needs the silent replica fails after the per-replica
        // deadline with UNAVAILABLE, well before the client's own deadline.
        do {
            _ = try await coordinators[0].call(StorageMethods.put, WirePutRequest.with {
                $0.key = Data("gray-all-three".utf8)
                $0.value = Data("x".utf8)
                $0.quorum.w = 3
            }, options: CallOptions(timeout: .seconds(8)))
            Issue.record("a W=3 put succeeded with a replica paused")
        } catch {
            #expect(error.code == .unavailable, "\(error)")
        }
        // The paused node was never suspected: this was the gray window.
        #expect(try await cluster.members().members[cluster.nodeAddress(2)]?.state == .up)

        cluster.signalNode(2, SIGCONT)
        try await cluster.waitHealthy(cluster.nodeEndpoints[2], StorageMethods.health)
        // Hints and read repair bring it up to date; a W=3 put works again.
        _ = try await coordinators[1].call(StorageMethods.put, WirePutRequest.with {
            $0.key = Data("gray-after".utf8)
            $0.value = Data("x".utf8)
            $0.quorum.w = 3
        })
        try await cluster.stop()
    }
}
