import GRDB
import Ring
import StorageEngine
import Testing

@Suite("Fences and migration cursors")
struct FenceAndCursorTests {
    @Test("a fenced record is refused below the highest token seen for its lock on its key, across a reopen")
    func fences() throws {
        let directory = try TemporaryDirectory()
        do {
            let engine = try StorageEngine(path: directory.path(), sync: .full)
            #expect(try engine.apply([fenced("k", "first", ts: 10, "lock", 5)]) == [.applied])
            // The same token again is fine; a higher one too.
            #expect(try engine.apply([fenced("k", "second", ts: 11, "lock", 5)]) == [.applied])
            #expect(try engine.apply([fenced("k", "third", ts: 12, "lock", 7)]) == [.applied])
            #expect(try engine.apply([fenced("k", "stale", ts: 99, "lock", 6)]) == [.refused(highest: 7)])
            // Tokens are per lock name and per key.
            #expect(try engine.apply([fenced("k", "other lock", ts: 13, "other", 1)]) == [.applied])
            #expect(try engine.apply([fenced("j", "other key", ts: 13, "lock", 1)]) == [.applied])
            // An older version with a good token of another lock merges under the newer one.
            #expect(try engine.apply([fenced("k", "old", ts: 1, "lock", 7)])
                    == [.superseded(stored: try record("k", "x", ts: 13).version)])
            try engine.close()
        }
        let engine = try StorageEngine(path: directory.path(), sync: .full)
        #expect(try engine.fenceToken(key: Array("k".utf8), name: "lock") == 7)
        #expect(try engine.apply([fenced("k", "stale", ts: 100, "lock", 6)]) == [.refused(highest: 7)])
        let stored = try engine.get(key: Array("k".utf8))
        #expect(stored?.value == Array("other lock".utf8))
        #expect(stored?.fence == LockFence(name: "other", token: 1))
    }

    @Test("of two records fenced by one lock the higher token wins whatever the versions, in every arrival order")
    func tokenOrder() throws {
        // The stale holder wrote later by the clock (ts 100) with token 3; its successor wrote at ts 50 with token 5.
        let stale = try fenced("k", "stale", ts: 100, "lock", 3)
        let successor = try fenced("k", "successor", ts: 50, "lock", 5)
        for order in [[stale, successor], [successor, stale]] {
            let directory = try TemporaryDirectory()
            let engine = try StorageEngine(path: directory.path(), sync: .normal)
            for record in order { try engine.apply([record]) }
            #expect(try engine.get(key: Array("k".utf8)) == successor)
            #expect(stale.merged(with: successor) == successor && successor.merged(with: stale) == successor)
            #expect(stale.isSuperseded(by: successor) && !successor.isSuperseded(by: stale))
            // In one batch too.
            let batchDirectory = try TemporaryDirectory()
            let batchEngine = try StorageEngine(path: batchDirectory.path(), sync: .normal)
            try batchEngine.apply(order)
            #expect(try batchEngine.get(key: Array("k".utf8)) == successor)
        }
        // Unfenced records and records of other locks still order by version.
        let later = try record("k", "unfenced", ts: 200)
        #expect(successor.merged(with: later) == later && later.merged(with: successor) == later)
    }

    @Test("hints and scans keep a record's fence")
    func fencesTravel() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        let fencedRecord = try fenced("k", "v", ts: 7, "lock", 9)
        try engine.hints.addHints([fencedRecord], for: "127.0.0.1:7502")
        #expect(try engine.hints.hints(for: "127.0.0.1:7502", limit: 10).map(\.record) == [fencedRecord])
        try engine.apply([fencedRecord, try record("plain", "v", ts: 7)])
        let scanned = try engine.scan(arc: RingArc(first: 0, last: UInt32.max), limit: 10)
        #expect(Set(scanned.map(\.fence)) == [LockFence(name: "lock", token: 9), nil])
    }

    @Test("a database of schema version 1 (no fence columns) is upgraded in place, its rows kept")
    func upgradeFromVersion1() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path()
        do {
            // Exactly the tables version 1 wrote.
            let database = try DatabaseQueue(path: path)
            try database.writeWithoutTransaction { try $0.execute(sql: """
                CREATE TABLE records (position INTEGER NOT NULL, key BLOB NOT NULL, value BLOB, ts INTEGER NOT NULL,
                    writer INTEGER NOT NULL, PRIMARY KEY (position, key)) WITHOUT ROWID;
                CREATE TABLE hints (id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, position INTEGER NOT NULL,
                    key BLOB NOT NULL, value BLOB, ts INTEGER NOT NULL, writer INTEGER NOT NULL);
                INSERT INTO records VALUES (\(try HashRing.position(forKey: Array("old".utf8))), X'6F6C64', X'76', -9223372036854775800, 1);
                PRAGMA user_version = 1;
                """) }
            try database.close()
        }
        let engine = try StorageEngine(path: path, sync: .normal)
        let old = try engine.get(key: Array("old".utf8))
        #expect(old?.value == Array("v".utf8) && old?.fence == nil)
        #expect(try engine.apply([fenced("new", "v", ts: 1, "lock", 2)]) == [.applied])
        #expect(try engine.get(key: Array("new".utf8))?.fence == LockFence(name: "lock", token: 2))
        #expect(try engine.stats().liveKeys == 2 && engine.countedStats().liveKeys == 2)
    }

    private func fenced(_ key: String, _ value: String, ts: UInt64, _ lock: String, _ token: UInt64) throws -> VersionedRecord {
        try VersionedRecord(key: Array(key.utf8), value: Array(value.utf8), version: Version(timestamp: ts, writer: 1),
                            fence: LockFence(name: lock, token: token))
    }

    @Test("migration cursors are saved, loaded, listed and removed, across a reopen")
    func cursors() throws {
        let directory = try TemporaryDirectory()
        do {
            let engine = try StorageEngine(path: directory.path(), sync: .full)
            try engine.migrationCursors.save(MigrationCursor(arcIndex: 0, after: nil, keys: 0, bytes: 0), transfer: 1)
            let cursor = MigrationCursor(arcIndex: 3, after: ScanCursor(position: 42, key: [0, 1, 255]), keys: 700, bytes: 70_000)
            try engine.migrationCursors.save(cursor, transfer: UInt64.max)
            try engine.close()
        }
        let engine = try StorageEngine(path: directory.path(), sync: .full)
        #expect(try engine.migrationCursors.load(transfer: 1) == MigrationCursor())
        #expect(try engine.migrationCursors.load(transfer: UInt64.max)
                == MigrationCursor(arcIndex: 3, after: ScanCursor(position: 42, key: [0, 1, 255]), keys: 700, bytes: 70_000))
        #expect(try Set(engine.migrationCursors.transferIDs()) == [1, UInt64.max])
        try engine.migrationCursors.remove(transfer: 1)
        #expect(try engine.migrationCursors.load(transfer: 1) == nil)
        #expect(try engine.migrationCursors.transferIDs() == [UInt64.max])
    }

    @Test("deleteArcs removes the rows of several arcs in one go")
    func deleteArcs() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        let records = try (0..<300).map { try record("key-\($0)", "v", ts: 1) }
        try engine.apply(records)
        let arcs = [RingArc(first: 0, last: 1 << 30), RingArc(first: 3 << 30, last: 1 << 29)]
        let inside = records.filter { record in arcs.contains { $0.contains(record.position) } }
        #expect(try engine.deleteArcs(arcs) == inside.count)
        #expect(try allRecords(engine).count == records.count - inside.count)
    }
}
