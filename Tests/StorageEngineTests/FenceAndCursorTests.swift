import Ring
import StorageEngine
import Testing

@Suite("Fences and migration cursors")
struct FenceAndCursorTests {
    @Test("a fenced write is refused below the highest token seen for its lock on its key, across a reopen")
    func fences() throws {
        let directory = try TemporaryDirectory()
        do {
            let engine = try StorageEngine(path: directory.path(), sync: .full)
            #expect(try engine.applyFenced(record("k", "first", ts: 10), name: "lock", token: 5) == .accepted(.applied))
            // The same token again is fine; a higher one too.
            #expect(try engine.applyFenced(record("k", "second", ts: 11), name: "lock", token: 5) == .accepted(.applied))
            #expect(try engine.applyFenced(record("k", "third", ts: 12), name: "lock", token: 7) == .accepted(.applied))
            #expect(try engine.applyFenced(record("k", "stale", ts: 99), name: "lock", token: 6) == .refused(highest: 7))
            // Tokens are per lock name and per key.
            #expect(try engine.applyFenced(record("k", "other lock", ts: 13), name: "other", token: 1) == .accepted(.applied))
            #expect(try engine.applyFenced(record("j", "other key", ts: 13), name: "lock", token: 1) == .accepted(.applied))
            // An older version with a good token is accepted but merges under the newer one.
            #expect(try engine.applyFenced(record("k", "old", ts: 1), name: "lock", token: 7)
                    == .accepted(.superseded(stored: try record("k", "x", ts: 13).version)))
            #expect(throws: StorageError.self) { try engine.applyFenced(record("k", "v", ts: 50), name: "", token: 9) }
            try engine.close()
        }
        let engine = try StorageEngine(path: directory.path(), sync: .full)
        #expect(try engine.fenceToken(key: Array("k".utf8), name: "lock") == 7)
        #expect(try engine.applyFenced(record("k", "stale", ts: 100), name: "lock", token: 6) == .refused(highest: 7))
        #expect(try engine.get(key: Array("k".utf8))?.value == Array("other lock".utf8))
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
