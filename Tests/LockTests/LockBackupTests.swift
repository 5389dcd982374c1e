import LockService
import RPC
import RingProtocol
import Testing
import TestKit

/// What a backup takes from the lock service (ExportState) and what a restore
/// gives back (ImportTokens).
@Suite(.serialized, .timeLimit(.minutes(2))) struct LockBackupTests {
    @Test func exportListsEveryRememberedNameAndTheCounter() async throws {
        let service = try InProcessLock()
        try await service.start()
        let alice = try service.client("alice")
        defer { alice.close() }
        let held = try await alice.acquire("held", ttl: .seconds(60))
        let freed = try await alice.acquire("freed", ttl: .seconds(60))
        try await alice.release("freed", token: freed.token)
        let rpc = try service.rpc()
        defer { rpc.close() }
        let export = try await rpc.call(LockMethods.exportState, WireLockExportRequest())
        #expect(export.lastToken == freed.token)
        #expect(export.locks.map(\.name) == ["freed", "held"], "a free name not forgotten yet is exported too")
        let heldInfo = try #require(export.locks.first { $0.name == "held" })
        #expect(heldInfo.holder.token == held.token && heldInfo.holder.owner == "alice")
        #expect(!export.locks[0].hasHolder && export.locks[0].lastToken == freed.token)
        try await service.stop()
    }

    @Test func importRaisesTheCounterDurablyAndNeverLowersIt() async throws {
        let service = try InProcessLock()
        try await service.start()
        let rpc = try service.rpc()
        defer { rpc.close() }
        let alice = try service.client("alice")
        defer { alice.close() }
        let first = try await alice.acquire("a", ttl: .seconds(60))
        #expect(first.token == 1)

        let raised = try await rpc.call(LockMethods.importTokens, WireLockImportTokensRequest.with { $0.lastToken = 1000 })
        #expect(raised.lastToken == 1000)
        let lower = try await rpc.call(LockMethods.importTokens, WireLockImportTokensRequest.with { $0.lastToken = 10 })
        #expect(lower.lastToken == 1000, "an import never lowers the counter")
        #expect(try await alice.acquire("b", ttl: .seconds(60)).token == 1001)

        // The raised counter alone (no lock record changed with it) is on disk.
        _ = try await rpc.call(LockMethods.importTokens, WireLockImportTokensRequest.with { $0.lastToken = 5000 })
        rpc.close()
        alice.close()
        try await service.stop()
        try await service.start()
        let bob = try service.client("bob")
        defer { bob.close() }
        #expect(try await bob.acquire("c", ttl: .seconds(60)).token == 5001)
        try await service.stop()
    }
}
