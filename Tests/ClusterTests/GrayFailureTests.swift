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
///
/// The replica timeout is long (10 s) and failure detection slower still, so
/// the difference is plain: an operation that waited for the silent replica
/// takes the whole replica timeout, one that did not takes milliseconds. Every
/// operation must finish in under half of it.
@Suite(.serialized) struct GrayFailureTests {
    static let replicaTimeout = Duration.seconds(10)

    @Test(.timeLimit(.minutes(2)))
    func aPausedNodeThatIsStillUpDoesNotStallPutsAndGets() async throws {
        // Failure detection far slower than the test: the paused node stays "up".
        let cluster = try LocalCluster(nodes: 3, suspectAfter: 40, downAfter: 80)
        cluster.nodeArguments = ["--replica-timeout", "\(Self.replicaTimeout.components.seconds)"]
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
        // before the pause), through the two live coordinators. A lane stops at
        // its first wrong, failed or stalled operation.
        let bound = Self.replicaTimeout / 2
        // The client waits longer than the replica timeout, so a stall shows as one.
        let options = CallOptions(timeout: Self.replicaTimeout + .seconds(5))
        let (failed, slowest, operations) = try await withThrowingTaskGroup(of: ([String], Duration, Int).self) { group in
            for lane in 0..<4 {
                group.addTask {
                    let clock = ContinuousClock()
                    var failures: [String] = []
                    var slowest = Duration.zero
                    var operations = 0
                    func timed(_ what: String, _ body: () async throws -> Bool) async -> Bool {
                        let start = clock.now
                        do {
                            if try await !body() { failures.append("\(what): wrong answer") }
                        } catch {
                            failures.append("\(what): \(error)")
                        }
                        let took = clock.now - start
                        slowest = max(slowest, took)
                        operations += 1
                        return failures.isEmpty && took < bound
                    }
                    for step in 0..<25 {
                        let client = coordinators[(lane + step) % 2]
                        let key = "gray-\(lane)-\(step)"
                        guard await timed("put \(key)", {
                            let reply = try await client.call(StorageMethods.put, WirePutRequest.with {
                                $0.key = Data(key.utf8)
                                $0.value = Data("v-\(key)".utf8)
                            }, options: options)
                            return reply.acks >= 2
                        }) else { break }
                        guard await timed("get \(key)", {
                            let reply = try await client.call(StorageMethods.get, WireGetRequest.with { $0.key = Data(key.utf8) }, options: options)
                            return reply.found && reply.value == Data("v-\(key)".utf8)
                        }) else { break }
                        let old = before[(lane * 25 + step) % before.count]
                        guard await timed("get \(old)", {
                            let reply = try await client.call(StorageMethods.get, WireGetRequest.with { $0.key = Data(old.utf8) }, options: options)
                            return reply.found && reply.value == Data("v-\(old)".utf8)
                        }) else { break }
                    }
                    return (failures, slowest, operations)
                }
            }
            var failures: [String] = []
            var slowest = Duration.zero
            var operations = 0
            for try await (laneFailures, laneSlowest, laneOperations) in group {
                failures += laneFailures
                slowest = max(slowest, laneSlowest)
                operations += laneOperations
            }
            return (failures, slowest, operations)
        }
        #expect(failed.isEmpty, "\(failed.count) of \(operations) operations failed: \(failed.prefix(5))")
        let stalled = "the slowest operation took \(CheckReport.seconds(slowest)): a coordinator waited for the silent replica "
            + "(replica timeout \(CheckReport.seconds(Self.replicaTimeout)))"
        #expect(slowest < bound, "\(stalled)")
        #expect(operations == 300, "the lanes stopped after \(operations) of 300 operations")

        // A quorum that needs the silent replica fails when the replica timeout
        // expires, with UNAVAILABLE, before the client's own deadline.
        do {
            _ = try await coordinators[0].call(StorageMethods.put, WirePutRequest.with {
                $0.key = Data("gray-all-three".utf8)
                $0.value = Data("x".utf8)
                $0.quorum.w = 3
            }, options: CallOptions(timeout: Self.replicaTimeout * 3))
            Issue.record("a W=3 put succeeded with a replica paused")
        } catch {
            #expect(error.code == .unavailable, "\(error)")
            #expect(error.message.hasPrefix("only 2 of 3 replicas acknowledged, 3 needed"), "\(error)")
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
        }, options: options)
        try await cluster.stop()
    }
}
