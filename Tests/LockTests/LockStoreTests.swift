import Foundation
import LockService
import Testing
import TestKit

@Suite struct LockStoreTests {
    func temporaryDirectory() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-lockstore-\(UUID().uuidString)")
    }

    @Test func recordsRoundTripAndTheLastWriteOfANameWins() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let held = LockRecord(name: "jobs", lastToken: 7, holder: .init(owner: "alice", token: 7, ttl: .milliseconds(1500),
                                                                       guardTTL: .seconds(30), expiresWallMicros: 1_700_000_000_000_000,
                                                                       session: "alice's CURVE key"))
        let free = LockRecord(name: "free", lastToken: UInt64(Int64.max) + 5, holder: nil)
        do {
            let store = try LockStore(directory: directory)
            #expect(try store.load().isEmpty)
            #expect(try store.loadLastToken() == 0)
            try store.save(LockChanges(records: [held, LockRecord(name: "free", lastToken: 1, holder: nil)], lastToken: 7))
            try store.save(LockChanges(records: [free], lastToken: free.lastToken))
            #expect(store.commits == 2)
            store.close()
        }
        let store = try LockStore(directory: directory)
        let loaded = try store.load().sorted { $0.name < $1.name }
        #expect(loaded == [free, held])
        #expect(try store.loadLastToken() == free.lastToken)
        store.close()
    }

    @Test func aRestoredTableContinuesTheTokensOfTheStore() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var clock = ManualClock()
        var table = LockTable()
        var effects: [LockEffect] = []
        let store = try LockStore(directory: directory)
        for owner in ["a", "b", "c"] {
            _ = try table.acquire(name: "jobs", owner: owner, ttl: .seconds(1), wait: .zero, waiter: 1, now: clock.now, effects: &effects)
            try store.save(table.takeChanges())
            clock.advance(.seconds(2))
            table.tick(now: clock.now, effects: &effects)
            try store.save(table.takeChanges())
        }
        store.close()

        let reopened = try LockStore(directory: directory)
        var restored = LockTable(restoring: try reopened.load(), lastToken: try reopened.loadLastToken(), now: ManualClock().now)
        let result = try restored.acquire(name: "jobs", owner: "d", ttl: .seconds(1), wait: .zero, waiter: 1,
                                          now: ManualClock().now, effects: &effects)
        #expect(result.grantedToken == 4)
        reopened.close()
    }

    @Test func aForgottenNameLeavesTheStoreWhileTheCounterKeepsItsTokens() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var clock = ManualClock()
        var table = LockTable(forgetAfter: .seconds(10))
        var effects: [LockEffect] = []
        let store = try LockStore(directory: directory)
        var last: UInt64 = 0
        for (index, owner) in ["a", "b"].enumerated() {
            let result = try table.acquire(name: "jobs", owner: owner, ttl: .seconds(1), wait: .zero, waiter: UInt64(index + 1),
                                           now: clock.now, effects: &effects)
            last = try #require(result.grantedToken)
            try table.release(name: "jobs", owner: owner, token: last, now: clock.now, effects: &effects)
        }
        _ = try table.acquire(name: "kept", owner: "c", ttl: .seconds(60), wait: .zero, waiter: 9, now: clock.now, effects: &effects)
        try store.save(table.takeChanges())
        #expect(try store.load().map(\.name).sorted() == ["jobs", "kept"])
        clock.advance(.seconds(10))
        table.tick(now: clock.now, effects: &effects)
        let changes = table.takeChanges()
        #expect(changes.forgotten == ["jobs"] && changes.records.isEmpty)
        try store.save(changes)
        store.close()

        let reopened = try LockStore(directory: directory)
        defer { reopened.close() }
        #expect(try reopened.load().map(\.name) == ["kept"])
        #expect(try reopened.loadLastToken() == last + 1)
        var restored = LockTable(restoring: try reopened.load(), lastToken: try reopened.loadLastToken(), now: ManualClock().now)
        let again = try restored.acquire(name: "jobs", owner: "d", ttl: .seconds(1), wait: .zero, waiter: 1,
                                         now: ManualClock().now, effects: &effects)
        #expect(try #require(again.grantedToken) > last + 1, "higher than every token of jobs and of kept")
    }
}
