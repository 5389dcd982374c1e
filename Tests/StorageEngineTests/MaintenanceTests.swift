import StorageEngine
import Testing

@Suite("Tombstone purge and statistics")
struct MaintenanceTests {
    @Test("purge removes only tombstones older than the cut-off")
    func purge() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        try engine.apply([
            record("old-value", "v", ts: 5),
            record("old-tomb", nil, ts: 10),
            record("mid-tomb", nil, ts: 20),
            record("edge-tomb", nil, ts: 25),
            record("new-tomb", nil, ts: 30),
            record("new-value", "v", ts: 40),
        ])
        #expect(try engine.purgeTombstones(olderThan: 25) == 2)
        #expect(try engine.get(key: Array("old-tomb".utf8)) == nil)
        #expect(try engine.get(key: Array("mid-tomb".utf8)) == nil)
        #expect(try engine.get(key: Array("edge-tomb".utf8))?.isTombstone == true)
        #expect(try engine.get(key: Array("new-tomb".utf8))?.isTombstone == true)
        #expect(try engine.get(key: Array("old-value".utf8))?.value == Array("v".utf8))
        #expect(try engine.purgeTombstones(olderThan: 25) == 0)
        let stats = try engine.stats()
        #expect(stats.liveKeys == 2)
        #expect(stats.tombstones == 2)
        #expect(stats.valueBytes == 2)
    }

    @Test("purge works with HLC timestamps and a grace period")
    func purgeWithClock() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        let day: UInt64 = 86_400_000
        let now: UInt64 = 1_750_000_000_000
        try engine.apply([
            record("two-days", nil, ts: HybridLogicalClock.timestamp(milliseconds: now - 2 * day, counter: 9)),
            record("an-hour", nil, ts: HybridLogicalClock.timestamp(milliseconds: now - 3_600_000, counter: 0)),
        ])
        let cutOff = HybridLogicalClock.timestamp(milliseconds: now - day, counter: 0)
        #expect(try engine.purgeTombstones(olderThan: cutOff) == 1)
        #expect(try engine.get(key: Array("an-hour".utf8)) != nil)
    }

    @Test("stats follow overwrites and deletes")
    func statsFollowWrites() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        try engine.apply([record("a", "12345", ts: 1), record("b", "xy", ts: 1)])
        try engine.apply([record("a", "1", ts: 2), record("b", nil, ts: 2)])
        let stats = try engine.stats()
        #expect(stats.liveKeys == 1)
        #expect(stats.tombstones == 1)
        #expect(stats.valueBytes == 1)
        #expect(stats.keyBytes == 2)
    }
}
