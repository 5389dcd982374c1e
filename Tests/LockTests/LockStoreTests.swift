import Foundation
import LockService
import Testing

@Suite struct LockStoreTests {
    func temporaryDirectory() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-lockstore-\(UUID().uuidString)")
    }

    @Test func recordsRoundTripAndTheLastWriteOfANameWins() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let held = LockRecord(name: "jobs", lastToken: 7, holder: .init(owner: "alice", token: 7, ttl: .milliseconds(1500),
                                                                       guardTTL: .seconds(30), expiresWallMicros: 1_700_000_000_000_000))
        let free = LockRecord(name: "free", lastToken: UInt64(Int64.max) + 5, holder: nil)
        do {
            let store = try LockStore(directory: directory)
            #expect(try store.load().isEmpty)
            try store.save([held, LockRecord(name: "free", lastToken: 1, holder: nil)])
            try store.save([free])
            #expect(store.commits == 2)
            store.close()
        }
        let store = try LockStore(directory: directory)
        let loaded = try store.load().sorted { $0.name < $1.name }
        #expect(loaded == [free, held])
        store.close()
    }

    @Test func aRestoredTableContinuesTheTokensOfTheStore() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var clock = FakeLockClock()
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
        var restored = LockTable(restoring: try reopened.load(), now: FakeLockClock().now)
        let result = try restored.acquire(name: "jobs", owner: "d", ttl: .seconds(1), wait: .zero, waiter: 1,
                                          now: FakeLockClock().now, effects: &effects)
        #expect(result.grantedToken == 4)
        reopened.close()
    }
}
