import RingstoreClient
import Testing

/// What the client does without any server: refusals and timeouts, never a hang.
@Suite struct KeyValueClientTests {
    /// A cluster whose placement and nodes listen nowhere (port 1 on loopback refuses connections).
    private func unreachableClient(context: ClientContext) throws -> KeyValueClient {
        let endpoints = ClusterEndpoints(placement: "tcp://127.0.0.1:1", nodes: ["127.0.0.1:2", "127.0.0.1:3"])
        return try KeyValueClient(context: context, endpoints: endpoints, caller: "test",
                                  configuration: .init(timeout: .milliseconds(150), maxNodeAttempts: 2))
    }

    @Test func anEmptyKeyIsRefusedWithoutAsking() async throws {
        let context = try ClientContext()
        let client = try unreachableClient(context: context)
        defer { client.close(); context.shutdown() }
        await #expect(throws: RingstoreError.invalidArgument("empty key")) { try await client.get(key: []) }
        await #expect(throws: RingstoreError.invalidArgument("empty key")) { try await client.put(key: [], value: [1]) }
        await #expect(throws: RingstoreError.invalidArgument("empty key")) { try await client.delete(key: []) }
    }

    @Test(.timeLimit(.minutes(1)))  // a hang guard, not a speed check
    func withoutPlacementTheStaticNodesAreUsed() async throws {
        let context = try ClientContext()
        let client = try unreachableClient(context: context)
        defer { client.close(); context.shutdown() }
        do {
            _ = try await client.put(key: Array("k".utf8), value: Array("v".utf8))
            Issue.record("a put without any server succeeded")
        } catch {
            #expect(error.code == .unavailable)
            #expect(error.neverSent)
        }
        #expect(await client.refreshRing() == false)
        let router = try #require(client.currentRouter)
        #expect(!router.isFromPlacement)
        #expect(router.ring.members.map(\.address) == ["127.0.0.1:2", "127.0.0.1:3"])
    }

    @Test func aClosedClientRefusesRequests() async throws {
        let context = try ClientContext()
        let client = try unreachableClient(context: context)
        client.close()
        client.close()
        await #expect(throws: RingstoreError.self) { try await client.get(key: Array("k".utf8)) }
        context.shutdown()
    }
}
