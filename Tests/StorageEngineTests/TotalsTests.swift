import GRDB
import Ring
import StorageEngine
import TestKit
import Testing

/// The totals behind `stats()` and `pendingHintCount()` are kept with every
/// write (by the merge itself, or by triggers); these tests hold them against a
/// count of the rows.
@Suite("Totals kept with every write")
struct TotalsTests {
    /// Expects the kept totals to equal a count of the rows.
    private func expectTotalsMatch(_ engine: StorageEngine, _ step: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        var kept = try engine.stats()
        var counted = try engine.countedStats()
        kept.fileBytes = 0
        counted.fileBytes = 0
        #expect(kept == counted, "after \(step)", sourceLocation: sourceLocation)
        #expect(try engine.hints.pendingHintCount() == engine.hints.countedHintCount(), "after \(step)", sourceLocation: sourceLocation)
    }

    @Test("inserts, overwrites, tombstones, lost merges, arc deletes, purges and hint changes keep the totals exact, across a reopen")
    func totalsFollowEveryWrite() throws {
        let directory = try TemporaryDirectory()
        var generator = SeededGenerator(seed: 99)
        var keys: [[UInt8]] = (0..<400).map { _ in generator.bytes(count: Int.random(in: 1...20, using: &generator)) }
        keys = Array(Set(keys))
        var timestamp: UInt64 = 1_000
        do {
            let engine = try StorageEngine(path: directory.path(), sync: .normal)
            try expectTotalsMatch(engine, "creating the database")
            for round in 0..<20 {
                // A batch of new values, overwrites, tombstones and records that lose the merge.
                let batch = try (0..<60).map { _ -> VersionedRecord in
                    let key = keys.randomElement(using: &generator)!
                    let loses = Int.random(in: 0..<5, using: &generator) == 0
                    timestamp += 1
                    let value = Int.random(in: 0..<4, using: &generator) == 0
                        ? nil : generator.bytes(count: Int.random(in: 0...200, using: &generator))
                    return try VersionedRecord(key: key, value: value,
                                               version: Version(timestamp: loses ? 1 : timestamp, writer: 1))
                }
                try engine.apply(batch)
                try expectTotalsMatch(engine, "apply in round \(round)")
                let ids = try engine.hints.addHints(Array(batch.prefix(5)), for: "node-\(round % 3)")
                try expectTotalsMatch(engine, "adding hints in round \(round)")
                if round % 4 == 3 {
                    let first = UInt32.random(in: 0...UInt32.max, using: &generator)
                    try engine.deleteArc(RingArc(first: first, last: first &+ (1 << 29)))
                    try expectTotalsMatch(engine, "deleting an arc in round \(round)")
                    try engine.hints.removeHints(Array(ids.prefix(3)))
                    try expectTotalsMatch(engine, "removing hints in round \(round)")
                }
                if round % 7 == 6 {
                    try engine.purgeTombstones(olderThan: timestamp - 50)
                    try expectTotalsMatch(engine, "purging tombstones in round \(round)")
                    try engine.hints.removeAllHints(for: "node-1")
                    try expectTotalsMatch(engine, "removing a target's hints in round \(round)")
                }
            }
            #expect(try engine.stats().liveKeys > 0)
            #expect(try engine.hints.pendingHintCount().total > 0)
            try engine.close()
        }
        let reopened = try StorageEngine(path: directory.path(), sync: .normal)
        try expectTotalsMatch(reopened, "reopening")
        #expect(try reopened.stats().liveKeys > 0)
    }

    @Test("a database from before the totals (schema version 2) gets them counted once when it is opened")
    func totalsAreFilledForAnOlderDatabase() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path()
        let records = try randomRecords(count: 500, seed: 5)
        do {
            let engine = try StorageEngine(path: path, sync: .normal)
            try engine.apply(records)
            try engine.hints.addHints(Array(records.prefix(7)), for: "a")
            try engine.hints.addHints(Array(records.prefix(3)), for: "b")
            try engine.close()
        }
        do {
            // Back to what version 2 had: no totals tables, no triggers.
            let database = try DatabaseQueue(path: path)
            try database.writeWithoutTransaction { try $0.execute(sql: """
                DROP TRIGGER records_totals_delete;
                DROP TRIGGER hints_totals_insert; DROP TRIGGER hints_totals_delete;
                DROP TABLE record_totals; DROP TABLE hint_totals;
                PRAGMA user_version = 2;
                """) }
            try database.close()
        }
        let engine = try StorageEngine(path: path, sync: .normal)
        try expectTotalsMatch(engine, "the upgrade")
        #expect(try engine.stats().liveKeys == records.count { $0.value != nil })
        #expect(try engine.hints.pendingHintCount() == HintCounts(total: 10, byTarget: ["a": 7, "b": 3]))
        try engine.apply([record("after-upgrade", "v", ts: 1)])
        try expectTotalsMatch(engine, "a write after the upgrade")
    }

    @Test("a database of schema version 3 loses its per-row insert and update triggers, and the totals stay exact")
    func versionThreeTriggersAreDropped() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path()
        let records = try randomRecords(count: 300, seed: 8)
        do {
            let engine = try StorageEngine(path: path, sync: .normal)
            try engine.apply(records)
            try engine.close()
        }
        do {
            // Version 3 counted merges with these two triggers.
            let database = try DatabaseQueue(path: path)
            try database.writeWithoutTransaction { try $0.execute(sql: """
                CREATE TRIGGER records_totals_insert AFTER INSERT ON records BEGIN
                    UPDATE record_totals SET live_keys = live_keys + (NEW.value IS NOT NULL),
                        tombstones = tombstones + (NEW.value IS NULL),
                        value_bytes = value_bytes + ifnull(length(NEW.value), 0), key_bytes = key_bytes + length(NEW.key)
                    WHERE id = 1;
                END;
                CREATE TRIGGER records_totals_update AFTER UPDATE ON records BEGIN
                    UPDATE record_totals SET live_keys = live_keys + (NEW.value IS NOT NULL) - (OLD.value IS NOT NULL),
                        tombstones = tombstones + (NEW.value IS NULL) - (OLD.value IS NULL),
                        value_bytes = value_bytes + ifnull(length(NEW.value), 0) - ifnull(length(OLD.value), 0),
                        key_bytes = key_bytes + length(NEW.key) - length(OLD.key)
                    WHERE id = 1;
                END;
                PRAGMA user_version = 3;
                """) }
            try database.close()
        }
        let engine = try StorageEngine(path: path, sync: .normal)
        try expectTotalsMatch(engine, "the upgrade")
        // With a trigger left behind, these would be counted twice.
        try engine.apply([record("new-after-upgrade", "v", ts: 1), try VersionedRecord(key: records[0].key, value: [1, 2, 3],
                                                                                       version: Version(timestamp: .max, writer: 1))])
        try expectTotalsMatch(engine, "writes after the upgrade")
    }
}
