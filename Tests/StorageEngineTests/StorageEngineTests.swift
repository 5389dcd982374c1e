import Foundation
import Ring
import StorageEngine
import Testing
import TestKit

@Suite("Storage engine: durability, reads and bad input")
struct StorageEngineTests {
    @Test("records survive close and reopen", arguments: SyncMode.allCases)
    func durableAcrossReopen(sync: SyncMode) throws {
        let directory = try TemporaryDirectory()
        let records = try randomRecords(count: 600, seed: 11)
        do {
            let engine = try StorageEngine(path: directory.path(), sync: sync)
            for batch in stride(from: 0, to: records.count, by: 50) {
                let results = try engine.apply(Array(records[batch..<batch + 50]))
                #expect(results.allSatisfy { $0.wasApplied })
            }
            try engine.close()
            #expect(engine.isClosed)
        }
        let reopened = try StorageEngine(path: directory.path(), sync: sync)
        defer { try? reopened.close() }
        #expect(reopened.syncMode == sync)
        for record in records {
            #expect(try reopened.get(key: record.key) == record)
        }
        #expect(try allRecords(reopened) == expectedState(records))
        let stats = try reopened.stats()
        #expect(stats.liveKeys == records.count(where: { !$0.isTombstone }))
        #expect(stats.tombstones == records.count(where: \.isTombstone))
        #expect(stats.valueBytes == records.reduce(0) { $0 + ($1.value?.count ?? 0) })
        #expect(stats.keyBytes == records.reduce(0) { $0 + $1.key.count })
        #expect(stats.fileBytes > 0)
    }

    @Test("records survive checkpoints, forced and automatic")
    func durableAcrossCheckpoints() throws {
        let directory = try TemporaryDirectory()
        let records = try randomRecords(count: 400, seed: 12)
        let options = StorageOptions(sync: .normal, cacheKibibytes: 1024, checkpointPages: 4)
        do {
            let engine = try StorageEngine(path: directory.path(), options: options)
            #expect(engine.options == options)
            try engine.apply(Array(records.prefix(200)))
            try engine.checkpoint()
            try engine.apply(Array(records.dropFirst(200)))
        }
        let reopened = try StorageEngine(path: directory.path(), options: options)
        #expect(try allRecords(reopened) == expectedState(records))
    }

    @Test("a released engine closes its database, so it can be opened again")
    func deinitCloses() throws {
        let directory = try TemporaryDirectory()
        do {
            let engine = try StorageEngine(path: directory.path(), sync: .normal)
            try engine.apply([record("kept", "by deinit", ts: 1)])
        }
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        #expect(try engine.get(key: Array("kept".utf8))?.value == Array("by deinit".utf8))
    }

    @Test("binary keys and values round-trip byte-exact")
    func binaryRoundTrip() throws {
        let directory = try TemporaryDirectory()
        var generator = SeededGenerator(seed: 3)
        let keys: [[UInt8]] = [
            [0], [0, 0, 0], [0xFF], [0xFF, 0xFE, 0x00, 0x80], [0xC3, 0x28], Array(0...255),
            generator.bytes(count: 1024), Array("plain".utf8), Array("plain\0".utf8),
        ]
        let values: [[UInt8]?] = [
            [], [0], Array(repeating: 0, count: 100), Array(0...255).reversed(),
            generator.bytes(count: 1 << 20), [0xC3, 0x28, 0x00], nil, Array("v".utf8), [0xFF],
        ]
        let records = try zip(keys, values).map { key, value in
            try VersionedRecord(key: key, value: value, version: Version(timestamp: 9, writer: 2))
        }
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        #expect(try engine.apply(records).allSatisfy { $0.wasApplied })
        try engine.close()

        let reopened = try StorageEngine(path: directory.path(), sync: .normal)
        for record in records {
            let stored = try #require(try reopened.get(key: record.key))
            #expect(stored.key == record.key)
            #expect(stored.value == record.value)
            #expect(stored.position == record.position)
        }
        // An empty value is a value, not a tombstone.
        let empty = try #require(try reopened.get(key: [0]))
        #expect(empty.value == [])
        #expect(!empty.isTombstone)
        #expect(try allRecords(reopened) == expectedState(records))
        // Prefixes and extensions of stored keys are other keys.
        #expect(try reopened.get(key: [0, 0]) == nil)
        #expect(try reopened.get(key: Array("plai".utf8)) == nil)
    }

    @Test("batched reads return each key's record in order")
    func batchedReads() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        let records = try randomRecords(count: 50, seed: 13)
        try engine.apply(records)
        let keys = records.map(\.key) + [Array("absent".utf8)] + [records[3].key]
        #expect(try engine.get(keys: keys) == records.map { $0 } + [nil, records[3]])
        #expect(try engine.get(keys: []).isEmpty)
        #expect(throws: StorageError.emptyKey) { try engine.get(keys: [[1], []]) }
    }

    @Test("tombstones are returned as tombstones, unknown keys as nil")
    func tombstoneReads() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        try engine.apply([record("gone", "v", ts: 1), record("gone", nil, ts: 2)])
        let stored = try #require(try engine.get(key: Array("gone".utf8)))
        #expect(stored.isTombstone)
        #expect(stored.version == Version(timestamp: 2, writer: 1))
        #expect(try engine.get(key: Array("never".utf8)) == nil)
    }

    @Test("an empty key is an error, not a crash")
    func emptyKey() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        #expect(throws: StorageError.emptyKey) {
            try VersionedRecord(key: [], value: [1], version: Version(timestamp: 1, writer: 1))
        }
        #expect(throws: StorageError.emptyKey) { try VersionedRecord.tombstone(key: [], version: Version(timestamp: 1, writer: 1)) }
        #expect(throws: StorageError.emptyKey) { try engine.get(key: []) }
        #expect(try engine.stats() == StorageStats(fileBytes: try engine.stats().fileBytes))
    }

    @Test("a second open of a database in use fails with databaseLocked")
    func exclusiveOwner() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        try engine.apply([record("k", "v", ts: 1)])
        #expect(throws: StorageError.databaseLocked) { try StorageEngine(path: directory.path(), sync: .normal) }
        try engine.close()
        let reopened = try StorageEngine(path: directory.path(), sync: .normal)
        #expect(try reopened.get(key: Array("k".utf8)) != nil)
    }

    @Test("a file that is not a database is refused with an error")
    func notADatabase() throws {
        let directory = try TemporaryDirectory()
        try Data(repeating: 0x5A, count: 8192).write(to: URL(fileURLWithPath: directory.path()))
        #expect(throws: StorageError.sqlite) { try StorageEngine(path: directory.path(), sync: .normal) }
        #expect(throws: StorageError.sqlite) { try StorageEngine(path: directory.path("missing/dir/node.db"), sync: .normal) }
        #expect(throws: StorageError.invalidArgument) { try StorageEngine(path: "", sync: .normal) }
    }

    @Test("a closed engine and its hint store throw closed")
    func useAfterClose() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        let hints = engine.hints
        try engine.close()
        try engine.close()
        #expect(throws: StorageError.closed) { try engine.apply([record("k", "v", ts: 1)]) }
        #expect(throws: StorageError.closed) { try engine.get(key: [1]) }
        #expect(throws: StorageError.closed) { try engine.stats() }
        #expect(throws: StorageError.closed) { try hints.pendingHintCount() }
    }

    @Test("a hint store kept past its engine's release reports closed")
    func hintStoreOutlivesEngine() throws {
        let directory = try TemporaryDirectory()
        var engine: StorageEngine? = try StorageEngine(path: directory.path(), sync: .normal)
        let hints = try #require(engine?.hints)
        try hints.addHints([record("k", "v", ts: 1)], for: "n:1")
        engine = nil
        #expect(throws: StorageError.closed) { try hints.pendingHintCount() }
        let reopened = try StorageEngine(path: directory.path(), sync: .normal)
        #expect(try reopened.hints.pendingHintCount().total == 1)
    }

    @Test("errors describe themselves and compare by kind")
    func errorDescriptions() {
        #expect(StorageError.emptyKey.description == "empty key")
        #expect(StorageError.closed == StorageError.closed)
        #expect(StorageError.closed != StorageError.emptyKey)
    }
}
