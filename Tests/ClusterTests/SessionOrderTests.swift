import Foundation
import Ring
import RingProtocol
import RingstoreClient
import Testing
import TestKit
import ZeroMQ

/// Session causality with the real executables: one client's writes of a key
/// are ordered as the client made them.
@Suite(.serialized, .timeLimit(.minutes(5))) struct SessionOrderTests {
    @Test func putStdinWritesTheLinesOfOneKeyInInputOrder() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        // 500 overwrites of each of two keys, interleaved with other keys, 32 lines in flight.
        var lines: [String] = []
        for index in 0..<500 {
            lines.append("hot-a\t\(index)")
            lines.append("other-\(index)\tx")
            lines.append("hot-b\t\(index)")
        }
        let target = cluster.ringctlTarget()
        let put = try await ToolRun.run("ringctl", ["put", "--stdin", "--concurrency", "32"] + target,
                                        stdin: lines.joined(separator: "\n") + "\n", timeout: .seconds(120))
        #expect(put.status == 0, "\(put.stderr)")
        #expect(put.stdout.split(separator: "\n").count == lines.count)
        for key in ["hot-a", "hot-b"] {
            let read = try await ToolRun.run("ringctl", ["get", key, "--r", "3"] + target)
            #expect(read.stdout == "499\n", "\(key): \(read.stdout) \(read.stderr)")
        }
        try await cluster.stop()
    }

    @Test func theClientLibrarySendsTheHighestVersionItHasSeen() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        let context = try ZMQContext()
        defer { context.shutdown() }
        let addresses = (0..<3).map(cluster.nodeAddress)
        let endpoints = ClusterEndpoints(placement: cluster.placementEndpoint, locks: cluster.lockEndpoint, nodes: addresses)
        let client = try KeyValueClient(context: cluster.clientContext(context: context), endpoints: endpoints, caller: "session-test")
        defer { client.close() }
        #expect(client.seenTimestamp == 0)
        let first = try await client.put(key: Array("a".utf8), value: Array("1".utf8))
        #expect(client.seenTimestamp == first.version.timestamp)

        // With N=1 every key lives on its first replica only. Pick "b" on one node and "c" on
        // another, so that c's node never sees b's version unless this client carries it there.
        let ring = try HashRing(members: addresses.map { try RingMember(address: $0) })
        func home(_ key: String) throws -> String { try ring.preferenceList(forKey: key, replicas: 1)[0].address }
        let b = try #require((0..<200).map { "b-\($0)" }.first { try home($0) != addresses[0] })
        let c = try #require((0..<200).map { "c-\($0)" }.first { try home($0) != home(b) && home($0) != addresses[0] })
        // Another session writes b through node 1, having seen a version a second ahead of every clock
        // (within the allowed drift): b's version is a second ahead.
        let other = try cluster.nodeClient(0)
        defer { other.close() }
        let theirs = try await other.call(StorageMethods.put, WirePutRequest.with {
            $0.key = Data(b.utf8)
            $0.value = Data("theirs".utf8)
            $0.quorum = WireQuorum.with { $0.n = 1; $0.w = 1 }
            $0.seenTimestamp = (UInt64(Date().timeIntervalSince1970 * 1000) + 1_000) << 16
        })
        // This client reads it: the version becomes the floor of its next write, wherever that goes.
        let read = try await client.get(key: Array(b.utf8), quorum: Quorum(n: 1, r: 1))
        #expect(read.version == Version(timestamp: theirs.version.timestamp, writer: theirs.version.writer) && client.seenTimestamp == theirs.version.timestamp)
        let next = try await client.put(key: Array(c.utf8), value: Array("after".utf8), quorum: Quorum(n: 1, w: 1))
        #expect(next.version.timestamp > theirs.version.timestamp, "a write after reading a version must be ordered after it")
        try await cluster.stop()
    }
}
