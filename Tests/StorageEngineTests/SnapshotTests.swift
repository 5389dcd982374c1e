import Foundation
import StorageEngine
import Testing

@Suite("Snapshots: online copies, sealing, reading and merging")
struct SnapshotTests {
    @Test("SHA-256 matches the standard's test vectors, fed whole or in pieces")
    func sha256Vectors() throws {
        #expect(try SHA256Hasher.hex(of: []) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(try SHA256Hasher.hex(of: Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        let hasher = try SHA256Hasher()
        for piece in stride(from: 0, to: long.count, by: 5) { hasher.update(Array(long[piece..<min(piece + 5, long.count)])) }
        #expect(hasher.count == long.count)
        #expect(hasher.finish() == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test("a copy made in small steps while writes go on holds every write committed before it completed")
    func copyDuringWrites() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        let before = try randomRecords(count: 3000, seed: 7)
        try engine.apply(before)
        let copy = try engine.startSnapshot(to: directory.path("snapshot.sqlite"))
        var during: [VersionedRecord] = []
        var steps = 0
        // One page per step, with writes in between: overwrites, deletes and new keys.
        while try !copy.step(pages: 1) {
            steps += 1
            let batch = try [
                record("during-\(steps)", "value \(steps)", ts: 10_000 + UInt64(steps)),
                VersionedRecord(key: before[steps % before.count].key, value: Array("new \(steps)".utf8),
                                version: Version(timestamp: 20_000 + UInt64(steps), writer: 2)),
                VersionedRecord.tombstone(key: before[(steps * 7 + 1) % before.count].key,
                                          version: Version(timestamp: 30_000 + UInt64(steps), writer: 2)),
            ]
            try engine.apply(batch)
            during += batch
        }
        #expect(steps > 10, "the copy took \(steps) steps")
        #expect(copy.isComplete && copy.pagesRemaining == 0)
        // Writes after completion are not in it.
        try engine.apply([record("after", "x", ts: 50_000)])

        let summary = try SnapshotFile.seal(path: copy.path)
        let expected = expectedState(before + during)
        #expect(summary.liveKeys == expected.filter { !$0.isTombstone }.count)
        #expect(summary.tombstones == expected.filter(\.isTombstone).count)
        let attributes = try FileManager.default.attributesOfItem(atPath: copy.path)
        #expect(summary.sizeBytes == (attributes[.size] as? Int))
        #expect(summary.sha256 == (try SHA256Hasher.file(at: copy.path)).sha256)
        // Out of WAL mode: the header's read and write versions are 1, and nothing lies beside it.
        let header = try #require(FileHandle(forReadingAtPath: copy.path)).readData(ofLength: 20)
        #expect(header[18] == 1 && header[19] == 1)
        #expect(!FileManager.default.fileExists(atPath: copy.path + "-wal"))

        let reader = try SnapshotReader(path: copy.path)
        var read: [VersionedRecord] = []
        while case let batch = try reader.next(limit: 257), !batch.isEmpty { read += batch }
        #expect(read == expected)
        #expect(try reader.counts() == (summary.liveKeys, summary.tombstones))
    }

    @Test("an abandoned copy leaves no file, and closing the engine ends a copy in progress")
    func abandonAndClose() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        try engine.apply(try randomRecords(count: 2000, seed: 3))
        let first = try engine.startSnapshot(to: directory.path("first.sqlite"))
        #expect(try !first.step(pages: 1))
        first.abandon()
        #expect(!FileManager.default.fileExists(atPath: first.path))
        #expect(throws: StorageError.closed) { try first.step(pages: 1) }

        #expect(throws: StorageError.invalidArgument) {
            let existing = directory.path("taken.sqlite")
            _ = FileManager.default.createFile(atPath: existing, contents: Data([1]))
            _ = try engine.startSnapshot(to: existing)
        }

        let second = try engine.startSnapshot(to: directory.path("second.sqlite"))
        #expect(try !second.step(pages: 1))
        try engine.close()
        #expect(throws: StorageError.closed) { try second.step(pages: 1) }
        #expect(!FileManager.default.fileExists(atPath: second.path))
    }

    @Test("sealing refuses a file that is not a node database")
    func sealRefusesOtherFiles() throws {
        let directory = try TemporaryDirectory()
        let garbage = directory.path("garbage.sqlite")
        _ = FileManager.default.createFile(atPath: garbage, contents: Data(repeating: 0x5a, count: 8192))
        #expect(throws: StorageError.self) { try SnapshotFile.seal(path: garbage) }
        #expect(throws: StorageError.self) { try SnapshotReader(path: directory.path("missing.sqlite")) }
    }

    @Test("chunks read back the file in order, fewer bytes only at its end")
    func chunks() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("blob")
        let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        var joined: [UInt8] = []
        while case let chunk = try SnapshotFile.read(path: path, offset: joined.count, maxBytes: 4096), !chunk.isEmpty {
            #expect(chunk.count == 4096 || joined.count + chunk.count == bytes.count)
            joined += chunk
        }
        #expect(joined == bytes)
        #expect(try SnapshotFile.read(path: path, offset: 20_000, maxBytes: 10).isEmpty)
        #expect(throws: StorageError.io) { try SnapshotFile.read(path: directory.path("none"), offset: 0, maxBytes: 1) }
    }

    @Test("merging replicas' snapshots gives each key once, newest copy, and counts copies and tombstones")
    func merge() throws {
        let directory = try TemporaryDirectory()
        let all = try randomRecords(count: 1500, seed: 11)
        // Three replicas, each with two thirds of the keys, some at older versions.
        var files: [String] = []
        var written: [VersionedRecord] = []
        for replica in 0..<3 {
            let engine = try StorageEngine(path: directory.path("node-\(replica).db"), sync: .normal)
            var mine: [VersionedRecord] = []
            for (index, record) in all.enumerated() where index % 3 != replica {
                if index % 5 == replica {
                    // A stale copy: an older value this replica missed the update of.
                    mine.append(try VersionedRecord(key: record.key, value: Array("stale".utf8),
                                                    version: Version(timestamp: 0, writer: UInt64(replica))))
                } else {
                    mine.append(record)
                }
            }
            try engine.apply(mine)
            written += mine
            let copy = try engine.startSnapshot(to: directory.path("snap-\(replica).sqlite"))
            while try !copy.step(pages: 64) {}
            _ = try SnapshotFile.seal(path: copy.path)
            files.append(copy.path)
        }
        let merger = SnapshotMerger(readers: try files.map { try SnapshotReader(path: $0) }, batchRows: 100)
        var merged: [VersionedRecord] = []
        while case let batch = try merger.next(limit: 333), !batch.isEmpty { merged += batch }
        let expected = expectedState(written)
        #expect(merged == expected)
        #expect(merger.counts.rows == written.count)
        #expect(merger.counts.keys == all.count)
        #expect(merger.counts.duplicates == written.count - all.count)
        #expect(merger.counts.tombstones == expected.filter(\.isTombstone).count)
        #expect(!merged.contains { $0.value == Array("stale".utf8) })
    }
}
